"""Render a Song stem by stem with FluidSynth: leakage-free synthetic stems.

Each stem's tracks go to their own MIDI file (tempo map baked into seconds, so excerpts
are a plain crop) and are rendered separately; the full mix is the float sum of the
rendered stems and a stem-removed mix is the sum of the others, so nothing of the
removed stem can leak into it.

FluidSynth is a system program (Debian/Ubuntu: ``apt-get install --no-install-recommends
fluidsynth``, which brings the TimGM6mb General MIDI soundfont as default-GM.sf2).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from stemfill.audio.spectrogram import SAMPLE_RATE
from stemfill.errors import AudioError
from stemfill.song.song import Song, Track

SOUNDFONT_CANDIDATES = (  # where Debian's packages put a General MIDI soundfont
    "/usr/share/sounds/sf2/default-GM.sf2",  # the alternatives link: FluidR3 or TimGM6mb
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",  # fluid-soundfont-gm
    "/usr/share/sounds/sf2/TimGM6mb.sf2",  # timgm6mb-soundfont (scripts/setup.sh installs it)
    "/usr/share/sounds/sf3/default-GM.sf3",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
)
_TICKS_PER_BEAT = 1000  # at a fixed 120 qpm: 1 tick = 0.5 ms
_DRUM_CHANNEL = 9


def fluidsynth_path() -> str:
    exe = shutil.which("fluidsynth")
    if not exe:
        raise AudioError("fluidsynth is not installed (apt-get install --no-install-recommends fluidsynth; "
                         "scripts/setup.sh does as root)")
    return exe


def _check_soundfont(p: Path) -> Path:
    if not p.exists():
        raise AudioError(f"{p}: soundfont not found")
    if not p.is_file():
        raise AudioError(f"{p}: is a folder, not a soundfont (.sf2) file")
    try:
        with open(p, "rb") as f:
            head = f.read(12)
    except OSError as e:
        raise AudioError(f"{p}: cannot read soundfont: {e.strerror or e}") from None
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise AudioError(f"{p}: not a SoundFont 2 (.sf2/.sf3) file")
    return p


def find_soundfont(soundfont: str | os.PathLike | None = None, *, option: str | None = "--soundfont") -> Path:
    """The given .sf2, else STEMFILL_SOUNDFONT, else the system's General MIDI soundfont (Debian paths).

    Raises AudioError naming a bad path, or, when none is found, naming ``option``.
    """
    cand = soundfont or os.environ.get("STEMFILL_SOUNDFONT")
    if cand:
        return _check_soundfont(Path(cand))
    for c in SOUNDFONT_CANDIDATES:
        if Path(c).is_file():
            return Path(c).resolve()
    how = f"pass {option} FILE.sf2 or set STEMFILL_SOUNDFONT" if option else "set STEMFILL_SOUNDFONT=FILE.sf2"
    raise AudioError(f"no General MIDI soundfont found (looked in {Path(SOUNDFONT_CANDIDATES[0]).parent}); "
                     f"{how}, or apt-get install timgm6mb-soundfont")


def check_renderer(soundfont: str | os.PathLike | None = None, *, option: str | None = "--soundfont") -> Path:
    """Before any work: FluidSynth is there and a soundfont is found. Returns the soundfont."""
    sf2 = find_soundfont(soundfont, option=option)
    fluidsynth_path()
    return sf2


def _seconds_fn(song: Song):
    """Vectorised tick -> seconds under the tempo map."""
    times = np.array([t.time for t in song.tempos], dtype=np.float64)
    qpms = np.array([t.qpm for t in song.tempos], dtype=np.float64)
    spt = 60.0 / (qpms * song.resolution)  # seconds per tick in each tempo span
    starts = np.concatenate([[0.0], np.cumsum(np.diff(times) * spt[:-1])])

    def f(ticks):
        ticks = np.asarray(ticks, dtype=np.float64)
        i = np.searchsorted(times, ticks, side="right") - 1
        i = np.clip(i, 0, len(times) - 1)
        return starts[i] + (ticks - times[i]) * spt[i]

    return f


def write_stem_midi(song: Song, tracks: list[Track], path: str | os.PathLike, *, start_s: float = 0.0,
                    duration_s: float | None = None) -> int:
    """Write ``tracks`` to a type-1 MIDI at a fixed 120 qpm with the song's timing in seconds.

    Only notes sounding in [start_s, start_s + duration_s) are kept, cut to the window and
    shifted to start at 0. Returns the number of notes written.
    """
    import mido

    sec = _seconds_fn(song)
    end_s = np.inf if duration_s is None else start_s + duration_s
    mid = mido.MidiFile(type=1, ticks_per_beat=_TICKS_PER_BEAT)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000, time=0)])
    mid.tracks.append(meta)
    channels = [c for c in range(16) if c != _DRUM_CHANNEL]
    n_written = 0
    for k, tr in enumerate(tracks):
        ch = _DRUM_CHANNEL if tr.is_drum else channels[k % len(channels)]
        events = []
        if tr.notes:
            on = sec([n.start for n in tr.notes])
            off = sec([n.end for n in tr.notes])
            for n, a, b in zip(tr.notes, on, off):
                if b <= start_s or a >= end_s:
                    continue
                a, b = max(a, start_s) - start_s, min(b, end_s) - start_s
                ta, tb = int(round(a * 2000)), int(round(b * 2000))
                if tb <= ta:
                    tb = ta + 1
                vel = max(1, n.velocity)
                events.append((ta, 1, mido.Message("note_on", channel=ch, note=n.pitch, velocity=vel)))
                events.append((tb, 0, mido.Message("note_off", channel=ch, note=n.pitch, velocity=0)))
                n_written += 1
        events.sort(key=lambda e: (e[0], e[1]))  # offs before ons at the same tick
        name = (tr.name[:60] or f"track {k}").encode("latin-1", "replace").decode("latin-1")  # MIDI text is latin-1
        mt = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
        if not tr.is_drum:
            mt.append(mido.Message("program_change", channel=ch, program=tr.program, time=0))
        now = 0
        for t, _, msg in events:
            mt.append(msg.copy(time=t - now))
            now = t
        mid.tracks.append(mt)
    mid.save(str(path))
    return n_written


def render_midi_file(midi_path: str | os.PathLike, soundfont: str | os.PathLike, wav: str | os.PathLike, *,
                     gain: float = 0.5) -> Path:
    """Render a MIDI file with FluidSynth to ``wav``: 44.1 kHz stereo 32-bit float, reverb and chorus off."""
    exe = fluidsynth_path()
    wav = Path(wav)
    cmd = [exe, "-ni", "-q", "-R", "0", "-C", "0", "-g", str(gain), "-r", str(SAMPLE_RATE),
           "-o", "audio.file.format=float", "-F", str(wav), str(soundfont), str(midi_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if r.returncode != 0 or not wav.exists():
        err = (r.stderr or r.stdout).strip().splitlines()
        raise AudioError(f"{Path(midi_path).name}: fluidsynth failed: {err[-1] if err else f'exit {r.returncode}'}")
    return wav


def render_midi(midi_path: str | os.PathLike, soundfont: str | os.PathLike, *, gain: float = 0.5,
                channels: int = 1) -> np.ndarray:
    """Render a MIDI file with FluidSynth at 44.1 kHz (reverb and chorus off): mono float32 ``(n,)`` with
    ``channels=1``, FluidSynth's stereo ``(n, 2)`` with ``channels=2``."""
    import soundfile as sf

    with tempfile.TemporaryDirectory(prefix="stemfill-fs-") as d:
        wav = render_midi_file(midi_path, soundfont, Path(d) / "out.wav", gain=gain)
        y, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    if sr != SAMPLE_RATE:
        raise AudioError(f"{midi_path}: fluidsynth wrote {sr} Hz, expected {SAMPLE_RATE}")
    if channels == 1:
        return y.mean(axis=1)
    return y if y.shape[1] == channels else np.repeat(y.mean(axis=1, keepdims=True), channels, axis=1)


RENDER_EXTS = (".wav", ".flac")
PEAK = 0.89  # -1 dBFS: renders louder than this are scaled down


def render_song_file(song: Song, out: str | os.PathLike, soundfont: str | os.PathLike | None = None, *,
                     tracks: list[Track] | None = None) -> dict:
    """Render ``song`` (or only ``tracks`` of it) to a stereo 44.1 kHz 16-bit .wav / .flac, written atomically.

    Every track plays on its own MIDI channel with its General MIDI program (drums on channel 10), timed by
    the song's tempo map. A render peaking above -1 dBFS is scaled down to it. Returns a summary dict.
    """
    import soundfile as sf

    from stemfill.files import atomic_path

    out = Path(out)
    sf2 = check_renderer(soundfont)
    tracks = [t for t in (song.tracks if tracks is None else tracks) if t.notes]
    if not tracks:
        raise AudioError(f"{out}: nothing to render: the song has no notes")
    with tempfile.TemporaryDirectory(prefix="stemfill-mid-") as d:
        mid = Path(d) / "song.mid"
        n = write_stem_midi(song, tracks, mid)
        y = render_midi(mid, sf2, channels=2)
    peak = float(np.abs(y).max()) if y.size else 0.0
    if peak > PEAK:
        y = y * (PEAK / peak)
    fmt = "FLAC" if out.suffix.lower() == ".flac" else "WAV"
    with atomic_path(out) as tmp:
        sf.write(str(tmp), y, SAMPLE_RATE, subtype="PCM_16", format=fmt)
    return {"output": str(out), "seconds": len(y) / SAMPLE_RATE, "notes": n, "tracks": len(tracks),
            "soundfont": str(sf2)}


def render_stems(song: Song, soundfont: str | os.PathLike | None = None, *, start_s: float = 0.0,
                 duration_s: float | None = None, include_other: bool = True) -> dict[str, np.ndarray]:
    """Render each stem of ``song`` separately: ``{stem: mono float32 at 44.1 kHz}``, all the same length.

    Stems come from stemfill.song.stems (drums / bass / guitar / other); stems with
    no notes in the window are left out. With ``duration_s`` the arrays are exactly that long.
    """
    from stemfill.song.stems import classify_song

    sf2 = find_soundfont(soundfont)
    groups = classify_song(song)
    out: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="stemfill-mid-") as d:
        for stem, idx in groups.items():
            if not idx or (stem == "other" and not include_other):
                continue
            mid = Path(d) / f"{stem}.mid"
            if write_stem_midi(song, [song.tracks[i] for i in idx], mid, start_s=start_s, duration_s=duration_s) == 0:
                continue
            out[stem] = render_midi(mid, sf2)
    if not out:
        return out
    n = int(round(duration_s * SAMPLE_RATE)) if duration_s is not None else max(len(y) for y in out.values())
    return {k: _fit(y, n) for k, y in out.items()}


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    return y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))


def instrument_names(song: Song, stem: str) -> list[str]:
    """General MIDI names of a stem's tracks (for captions), most notes first."""
    import pretty_midi

    tracks = sorted(song.stem_tracks(stem), key=lambda t: -len(t.notes))
    if stem == "drums":
        return ["Drum Kit"] if tracks else []
    names: list[str] = []
    for t in tracks:
        nm = pretty_midi.program_to_instrument_name(t.program)
        if nm not in names:
            names.append(nm)
    return names
