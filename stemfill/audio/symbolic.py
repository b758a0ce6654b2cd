"""The symbolic audio route: add a stem to a recording through the piano-roll model, offline on a CPU.

    audio -> beats + downbeats (madmom)  -> beat grid: tempo map from the beats, bars from the downbeats
          -> pitched notes (basic-pitch)  -> Song on that grid: low notes bass, the rest guitar (by register)
          -> the asked stem filled by the same model and code as ``stemfill midi`` (``fill_song``)
          -> the new stem rendered with FluidSynth on the tracked beats -> loudness-matched -> mixed in

What the model is given (``split_notes``): adding drums, notes below ``BASS_SPLIT`` are the bass and
the rest the guitar; adding bass, every note is guitar (the bass is what is missing); adding guitar,
low notes are the bass and the rest an "other" track (the roll ignores it; its key still guides the
new part). When a pitched stem is added, the drums are given as the onsets heard in three bands
(``drums.drum_hits``: kick, snare, hi-hat), a known drums track the new part plays along with; they
are not in the output. With ``drum_context=False`` the model fills drums alongside as unknown context
instead (not kept either).

The output has the input's length in samples, sample rate and channel count: the stem is rendered in
stereo, resampled, and put in every channel (stereo as rendered for 2-channel input, mono otherwise).
Loudness: the stem's gated RMS (400 ms blocks, BS.1770-style -70 dBFS and -10 dB gates, no K-weighting)
is set ``stem_level_db`` below the input's; if the sum would clip, mix and stem are scaled down together
(so ``mix - stem`` is the input, scaled). Every output is checked before any work and written atomically.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stemfill.audio.beats import BeatGrid, beat_activations, beat_grid, decode_beats, import_madmom
from stemfill.audio.drums import drum_hits
from stemfill.audio.prompt import parse_prompt
from stemfill.errors import AudioError, ModelError

BASS_SPLIT = 48  # MIDI C3: transcribed notes below it go to the bass (when the bass is known)
BASS_LOW = 40  # MIDI E2, a guitar's lowest note: notes below it are a bass's (or a piano's left hand)
BASS_SHARE = 0.45  # ... sounding this share of the clip: "the song has a bass already" (has_bass; docs/audio.md)
STEM_LEVEL_DB = -3.0  # the new stem's loudness relative to the input's
MIDI_OUT_EXTS = (".mid", ".midi")
METHODS = ("auto", "symbolic", "subtractive", "sdedit")
_GATE_ABS_DB = -70.0
_GATE_REL_DB = -10.0
_BLOCK_S = 0.4


# --- choosing the method ---------------------------------------------------------------------------


def paper_model_cached(repo_id: str | None = None) -> bool:
    """Whether the paper's pipeline (model_index.json, UNet config and weights) is in the local HF cache."""
    from stemfill.audio.pipeline import SUBTRACTIVE_MODEL

    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    repo_id = repo_id or SUBTRACTIVE_MODEL

    def cached(name: str) -> bool:
        return isinstance(try_to_load_from_cache(repo_id, name), str)

    weights = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin",
               "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.fp16.bin")
    return cached("model_index.json") and cached("unet/config.json") and any(cached(f"unet/{w}") for w in weights)


def choose_method(method: str, model: str | None = None) -> tuple[str, str]:
    """``(method, why)``: ``auto`` is the paper's model where it is cached or ``--model`` is given, else symbolic."""
    from stemfill.audio.pipeline import SUBTRACTIVE_MODEL

    if method not in METHODS:
        raise AudioError(f"method {method!r}: expected one of {', '.join(METHODS)}")
    if method != "auto":
        return method, "asked for with --method"
    if model:
        return "subtractive", f"--model {model} given"
    if paper_model_cached():
        return "subtractive", f"the paper's model {SUBTRACTIVE_MODEL} is in the local Hugging Face cache"
    return "symbolic", (f"the paper's model {SUBTRACTIVE_MODEL} is not in the local Hugging Face cache, so the offline "
                        "CPU route; --method subtractive fetches the model where there is internet")


# --- audio -> Song ---------------------------------------------------------------------------------


def split_notes(notes, stems: tuple[str, ...]) -> dict[str, list]:
    """Transcribed notes -> {"bass": [...], "guitar": [...], "other": [...]} for the stems being added."""
    out: dict[str, list] = {"bass": [], "guitar": [], "other": []}
    for n in notes:
        if "bass" in stems:
            out["guitar" if "guitar" not in stems else "other"].append(n)
        elif "guitar" in stems:
            out["bass" if n.pitch < BASS_SPLIT else "other"].append(n)
        else:
            out["bass" if n.pitch < BASS_SPLIT else "guitar"].append(n)
    return out


def song_from_audio(notes, grid: BeatGrid, stems: tuple[str, ...], title: str = ""):
    """A Song on ``grid`` holding the transcribed ``notes`` split for ``stems`` (see ``split_notes``)."""
    from stemfill.song.song import Note, Song, TimeSignature, Track

    res = grid.resolution
    programs = {"bass": 33, "guitar": 29, "other": 0}
    tracks = []
    for part, ns in split_notes(notes, stems).items():
        if not ns:
            continue
        a = np.rint(grid.to_ticks([n.start for n in ns])).astype(int)
        b = np.rint(grid.to_ticks([n.end for n in ns])).astype(int)
        song_notes = [Note(int(s), int(max(1, e - s)), int(n.pitch), int(np.clip(round(n.amplitude * 127), 1, 127)))
                      for n, s, e in zip(ns, a, b)]
        tracks.append(Track(name=f"{part.capitalize()} (from audio)", program=programs[part], notes=song_notes,
                            stem=part))
    return Song(tracks=tracks, tempos=grid.tempos(), time_signatures=[TimeSignature(0, grid.beats_per_bar, 4)],
                resolution=res, title=title)


def drum_track(hits, grid: BeatGrid):
    """A drums Track of ``(seconds, GM key)`` hits (``drums.drum_hits``) on ``grid``, one tick-long note each."""
    from stemfill.song.song import Note, Track

    ticks = np.rint(grid.to_ticks([t for t, _ in hits])).astype(int) if hits else np.zeros(0, int)
    notes = sorted({(int(k), int(key)) for k, (_, key) in zip(ticks, hits)})
    return Track(name="Drums (from audio)", program=0, is_drum=True, stem="drums",
                 notes=[Note(k, max(1, grid.resolution // 12), key, 100) for k, key in notes])


def fill_from_audio(notes, grid: BeatGrid, stems: tuple[str, ...], model, *, drum_hits=None, steps=None,
                    seed: int = 0, title: str = "", controls=None):
    """``(song heard, filled song, new tracks)``: the transcribed ``notes`` on ``grid`` with ``stems`` filled.

    Drums the model is not asked for are context: the ``drum_hits`` heard (``drums.drum_hits``) where given,
    else filled alongside as unknown (one stem added) and not kept. ``controls``: how the new stems play
    (``fill_song``'s argument), e.g. a style's drums."""
    from stemfill.pianoroll.fill import fill_song

    song = song_from_audio(notes, grid, stems, title=title)
    if not any(t.stem in ("bass", "guitar") for t in song.tracks):
        return song, None, []
    add = list(stems)
    context = []
    if "drums" not in add:
        if drum_hits:
            song.tracks.append(drum_track(drum_hits, grid))
        elif len(add) < 2:
            context = ["drums"]
    filled = fill_song(song, add + context, model, steps=steps, seed=seed, controls=controls).song
    return song, filled, [tr for tr in filled.tracks[len(song.tracks):] if tr.stem in add]


# --- loudness and writing --------------------------------------------------------------------------


def _block_ms(x: np.ndarray, n: int) -> np.ndarray:
    """Mean square of each whole ``n``-sample block of ``x`` (samples, channels), in float64, 64 blocks at a time."""
    x = x.reshape(len(x), -1)
    k = len(x) // n
    if k == 0:
        return np.zeros(0)
    return np.concatenate([np.mean(x[i * n:min(i + 64, k) * n].astype(np.float64).reshape(-1, n, x.shape[1]) ** 2,
                                   axis=(1, 2)) for i in range(0, k, 64)])


def _gate(ms: np.ndarray) -> float:
    """The RMS over the blocks' mean squares ``ms`` that pass the absolute and relative gates; 0 when none does."""
    ms = ms[ms > 10 ** (_GATE_ABS_DB / 10)]
    if not len(ms):
        return 0.0
    ms = ms[ms > np.mean(ms) * 10 ** (_GATE_REL_DB / 10)]
    return float(np.sqrt(np.mean(ms)))


def gated_rms(x: np.ndarray, sr: int) -> float:
    """RMS over 400 ms blocks that pass an absolute (-70 dBFS) and a relative (-10 dB) gate; 0 for silence."""
    x = x.reshape(len(x), -1)
    n = max(1, int(_BLOCK_S * sr))
    if len(x) < n:
        return _gate(np.array([np.mean(x.astype(np.float64) ** 2)]))
    return _gate(_block_ms(x, n))


class _StemStream:
    """The rendered stem (FluidSynth's 44.1 kHz stereo float WAV) as the mix needs it, read ``read(n)`` samples at a
    time: resampled to ``sr`` (soxr, streaming), cut or padded with silence to ``n_total`` samples, and in
    ``channels`` channels (stereo as rendered for 2, the mono sum in every channel otherwise)."""

    def __init__(self, wav: Path, sr: int, n_total: int, channels: int):
        import soundfile as sf

        self.f = sf.SoundFile(str(wav))
        self.resampler = None
        if self.f.samplerate != sr:
            import soxr

            self.resampler = soxr.ResampleStream(self.f.samplerate, sr, self.f.channels, dtype="float32",
                                                 quality="HQ")
        self.left, self.channels = n_total, channels
        self.buf = np.zeros((0, self.f.channels), np.float32)
        self.done = False

    def _more(self) -> None:
        block = self.f.read(1 << 16, dtype="float32", always_2d=True)
        last = len(block) == 0
        if self.resampler is not None:
            block = self.resampler.resample_chunk(block, last=last)
        self.buf = np.concatenate([self.buf, block])
        self.done = last

    def read(self, n: int) -> np.ndarray:
        n = min(n, self.left)
        while len(self.buf) < n and not self.done:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        if len(out) < n:
            out = np.concatenate([out, np.zeros((n - len(out), out.shape[1]), np.float32)])
        self.left -= n
        if self.channels != out.shape[1]:
            out = np.repeat(out.mean(axis=1, keepdims=True), self.channels, axis=1)
        return out

    def close(self) -> None:
        self.f.close()


def _mix_blocks(in_path: Path, stem_wav: Path, sr: int, n_in: int, channels: int):
    """Yield ``(input block, stem block)`` pairs, 64 x 400 ms at a time, through the whole input (one pass)."""
    import soundfile as sf

    stem = _StemStream(stem_wav, sr, n_in, channels)
    try:
        for x in sf.blocks(str(in_path), blocksize=64 * max(1, int(_BLOCK_S * sr)), dtype="float32", always_2d=True):
            yield x, stem.read(len(x))
    finally:
        stem.close()


def mix_stem(in_path: Path, stem_wav: Path, *, sr: int, n_in: int, channels: int, stem_level_db: float, outs,
             log=None) -> float:
    """Mix the rendered stem into the input, streaming: its gated RMS set ``stem_level_db`` below the input's, both
    scaled down together where the sum would clip. ``outs``: ``(path, format, subtype, what)`` to write, ``what``
    "mix" or "stem" (in the input's channel layout). Memory: a few blocks, whatever the length.
    Returns the stem's gain in dB."""
    import soundfile as sf

    from stemfill.files import atomic_path

    n = max(1, int(_BLOCK_S * sr))
    ms_in, ms_s, sq_in, sq_s, count = [], [], 0.0, 0.0, 0
    for x, s in _mix_blocks(in_path, stem_wav, sr, n_in, channels):  # pass 1: loudness
        ms_in.append(_block_ms(x, n))
        ms_s.append(_block_ms(s, n))
        sq_in += float(np.square(x, dtype=np.float64).sum())
        sq_s += float(np.square(s, dtype=np.float64).sum())
        count += x.size
    if n_in < n:  # shorter than one block: plain mean squares, as gated_rms does
        l_in, l_s = _gate(np.array([sq_in / max(count, 1)])), _gate(np.array([sq_s / max(count, 1)]))
    else:
        l_in, l_s = _gate(np.concatenate(ms_in)), _gate(np.concatenate(ms_s))
    gain = np.float32(10 ** (stem_level_db / 20) * l_in / l_s if l_s > 0 else 0.0)
    peak = 0.0
    for x, s in _mix_blocks(in_path, stem_wav, sr, n_in, channels):  # pass 2: the mix's peak
        peak = max(peak, float(np.abs(x + gain * s).max(initial=0.0)))
    scale = np.float32(1.0)
    if peak > 1.0:
        scale = np.float32(0.999 / peak)
        if log is not None:
            log(f"mix scaled down by {20 * np.log10(1 / scale):.1f} dB to keep it from clipping")
    import contextlib

    with contextlib.ExitStack() as stack:  # pass 3: write, each output under a temporary name, renamed at the end
        files = []
        for path, fmt, subtype, what in outs:
            tmp = stack.enter_context(atomic_path(path))
            try:
                f = stack.enter_context(sf.SoundFile(str(tmp), "w", samplerate=sr, channels=channels, format=fmt,
                                                     subtype=subtype))
            except sf.LibsndfileError as e:  # its message names the hidden temp file: only the reason is kept
                raise AudioError(f"{path}: cannot write audio: {(e.error_string or 'libsndfile error').strip()}") \
                    from None
            files.append((f, what))
        for x, s in _mix_blocks(in_path, stem_wav, sr, n_in, channels):
            st = (gain * scale) * s
            mix = scale * x + st
            for f, what in files:
                f.write(mix if what == "mix" else st)
        for f, _ in files:
            f.close()
    return float(20 * np.log10(gain)) if gain > 0 else float("-inf")


class _Stages:
    """One transient rich progress bar per stage of the route on stderr, where ``show`` (a terminal); else nothing."""

    def __init__(self, show: bool, name: str):
        self.show, self.name = show, name
        self.bar = None
        self.task = None

    def __enter__(self):
        if self.show:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn(f"{self.name}: {{task.description}}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def wrap(self, log):
        """``log`` that takes the bar away while it writes, so that its line stands on its own above the bar."""
        if self.bar is None:
            return log

        def say(line: str) -> None:
            self.bar.stop()
            log(line)
            self.bar.start()

        return say

    def stage(self, what: str, total: int | None = None):
        """Start a stage; returns ``progress(done, total)`` for the stage's windows."""
        if self.bar is None:
            return None
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(what, total=total)

        def update(done: int, total_: int) -> None:
            self.bar.update(self.task, completed=done, total=total_)

        return update


def has_bass(notes, seconds: float) -> bool:
    """Whether the transcription sounds like a song with a bass already: notes below ``BASS_LOW`` (E2, a guitar's
    lowest string) sound for at least ``BASS_SHARE`` of the clip (threshold from bench/bass_present.py, on
    renders with and without their bass, docs/audio.md)."""
    spans = sorted((n.start, n.end) for n in notes if n.pitch < BASS_LOW)
    covered, end = 0.0, -np.inf
    for a, b in spans:  # the union of the low notes' spans
        if b > end:
            covered += b - max(a, end)
            end = b
    return seconds > 0 and covered / seconds >= BASS_SHARE


@dataclass
class RouteResult:
    output: str
    stems: tuple[str, ...]
    style_words: tuple[str, ...]
    seconds: float
    sample_rate: int
    channels: int
    qpm: float
    beats_per_bar: int
    beats: np.ndarray
    notes_heard: int
    notes_added: int
    stem_gain_db: float
    timings: dict[str, float] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    midi_notes: list = field(default_factory=list)  # (onset s, pitch) of the new part, for tests and reports


def add_stem_symbolic(in_path, out_path, prompt: str, *, stem_out=None, midi_out=None, soundfont=None,
                      model=None, seed: int = 0, steps: int | None = None, stem_level_db: float = STEM_LEVEL_DB,
                      drum_context: bool = True, octave_check: bool = True, log=None, on_start=None,
                      progress: bool = False) -> RouteResult:
    """Write ``out_path``: the recording at ``in_path`` with the stem ``prompt`` names, via the piano-roll model.

    ``stem_out``: also the new stem alone (same length, rate, channels, and the level it has in the mix);
    ``midi_out``: its notes as MIDI on the tracked tempo map (tick 0 = 0 s). ``model``: the piano-roll model
    (default: the embedded one). ``drum_context``: when a pitched stem is added, give the model the drum hits
    heard (``drums.drum_hits``) instead of letting it fill drums as unknown context. ``octave_check``: decode
    the beats again at half the tempo where they look like double time (``beats.decode_beats``: the beat network's
    accents, where the transcribed notes start, a tempo prior). ``log``: a callable
    for one-line notes (stderr in the CLI). ``on_start``: called
    once the prompt, the paths, the renderer, the model and the input audio have been checked, before any work.
    ``progress``: a bar per stage on stderr (a terminal). Beats, notes and drum hits are found a minute of audio
    at a time, so memory stays flat in the clip's length (docs/audio.md).
    """
    import soundfile as sf

    from stemfill.audio.infer import AUDIO_OUT_EXTS, check_audio_output
    from stemfill.audio.render import check_renderer, render_midi_file, write_stem_midi
    from stemfill.audio.spectrogram import SAMPLE_RATE, load_audio
    from stemfill.audio.transcribe import _import_basic_pitch, transcribe
    from stemfill.files import check_output_path
    from stemfill.pianoroll.model import default_model_path, load_model
    from stemfill.song.song import Song

    log = log or (lambda line: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    # 1. everything that can be checked cheaply, before any work
    in_path, out_path = Path(in_path), Path(out_path)
    p = parse_prompt(prompt)
    if not in_path.exists():
        raise AudioError(f"{in_path}: no such file")
    outs = [out_path] + [Path(x) for x in (stem_out, midi_out) if x is not None]
    if len({o.resolve() for o in outs}) != len(outs):
        raise AudioError(f"{' / '.join(map(str, outs))}: -o, --stem-out and --midi-out must be different files")
    check_output_path(out_path, in_path, exts=AUDIO_OUT_EXTS)
    if stem_out is not None:
        check_output_path(stem_out, in_path, exts=AUDIO_OUT_EXTS)
    if midi_out is not None:
        check_output_path(midi_out, in_path, exts=MIDI_OUT_EXTS)
    sf2 = check_renderer(soundfont)
    model_path = Path(model) if model is not None else default_model_path()
    if not model_path.exists():
        raise ModelError(f"{model_path}: no such model file or folder")
    import_madmom()
    _import_basic_pitch()
    y, in_sr, n_channels = load_audio(in_path)  # mono 44.1 kHz; AudioError on missing/corrupt/silent/short
    info = sf.info(str(in_path))  # the original is read again block by block for the mix (memory)
    n_in = int(info.frames)
    (fmt, subtype), (stem_fmt, stem_subtype) = (check_audio_output(o, in_sr, n_channels, info.subtype)
                                                for o in (out_path, Path(stem_out) if stem_out else out_path))
    if on_start is not None:
        on_start()
    from stemfill.generate.styles import prompt_styles

    style, unused = prompt_styles(p.style_words, list(p.stems))
    if unused:
        log(f"style words not used: {', '.join(unused)} (only drum styles are known: "
            "rock, reggae, funk, metal, swing, disco, halftime, punk; the rest follows the song)")
    timings["load"] = time.perf_counter() - t0

    # 2. beats -> grid; notes (and drum hits) -> Song
    with _Stages(progress, in_path.name) as bar:
        log = bar.wrap(log)
        t = time.perf_counter()
        notes = transcribe(y, SAMPLE_RATE, progress=bar.stage("notes"))
        timings["transcription"] = time.perf_counter() - t
        t = time.perf_counter()
        act = beat_activations(y, SAMPLE_RATE, progress=bar.stage("beats"))
        beats, positions = decode_beats(act, note_starts=[n.start for n in notes],
                                        **({} if octave_check else {"parity_min": None}))
        timings["beats"] = time.perf_counter() - t
        hits = None
        if drum_context and "drums" not in p.stems:
            t = time.perf_counter()
            hits = drum_hits(y, SAMPLE_RATE, progress=bar.stage("drum hits"))
            timings["drums"] = time.perf_counter() - t
        del y, act  # the original (x) is kept for the mix
        if "bass" in p.stems and has_bass(notes, n_in / in_sr):
            log(f"warning: {in_path} seems to have a bass already (low notes under E2 through much of it); "
                "adding another")
        m = load_model(model_path)
        controls = None
        if style is not None:
            if m.controls is None:
                log(f"style words not used: {style} ({model_path} has no controls)")
            else:
                from stemfill.generate.controls import reference_controls
                from stemfill.generate.styles import style_roll

                controls = {"drums": reference_controls(style_roll(style), "drums", m.controls)}
                log(f"style: {style} drums (asked of the model as a reference groove: docs/controls.md)")
        from stemfill.song.song import RESOLUTION

        grid = beat_grid(beats, positions, n_in / in_sr, RESOLUTION)
        bar.stage("fill")

        # 3. fill with the piano-roll model
        t = time.perf_counter()
        song, filled_song, new_tracks = fill_from_audio(notes, grid, p.stems, m, drum_hits=hits, steps=steps, seed=seed,
                                                        title=in_path.stem, controls=controls)
        pitched = [tr for tr in song.tracks if not tr.is_drum]
        log(f"heard {len(beats)} beats at ~{grid.qpm:.0f} qpm in {grid.beats_per_bar}/4 and {len(notes)} notes "
            f"({', '.join(f'{len(tr.notes)} as {tr.stem}' for tr in pitched) or 'none'})"
            + (f"; {len(hits)} onsets in the kick, snare and hi-hat bands, given as drum context" if hits else ""))
        if filled_song is None:
            raise AudioError(f"{in_path}: no pitched notes heard that the model could follow; "
                             f"it cannot add {' and '.join(p.stems)} to drums it cannot transcribe")
        add = list(p.stems)
        timings["fill"] = time.perf_counter() - t
        n_added = sum(len(tr.notes) for tr in new_tracks)
        if n_added == 0:
            raise AudioError(f"{in_path}: the model wrote no {' or '.join(add)} notes; try another --seed")

        # 4. render on the tracked beats, level, mix
        bar.stage("render and mix")
        t = time.perf_counter()
        outs = [(out_path, fmt, subtype, "mix")]
        if stem_out is not None:
            outs.append((Path(stem_out), stem_fmt, stem_subtype, "stem"))
        with tempfile.TemporaryDirectory(prefix="stemfill-route-") as d:
            mid, wav = Path(d) / "stem.mid", Path(d) / "stem.wav"
            write_stem_midi(filled_song, new_tracks, mid)
            render_midi_file(mid, sf2, wav)
            gain_db = mix_stem(in_path, wav, sr=in_sr, n_in=n_in, channels=n_channels, stem_level_db=stem_level_db,
                               outs=outs, log=log)
        timings["render_mix"] = time.perf_counter() - t

    # 5. the part's notes
    written = [str(o[0]) for o in outs]
    if midi_out is not None:
        from stemfill.song.io import write_song

        write_song(Song(tracks=new_tracks, tempos=filled_song.tempos, time_signatures=filled_song.time_signatures,
                        resolution=filled_song.resolution, title=filled_song.title), midi_out)
        written.append(str(midi_out))
    timings["total"] = time.perf_counter() - t0
    onsets = [(float(grid.to_seconds(n.start)), n.pitch) for tr in new_tracks for n in tr.notes]
    return RouteResult(output=str(out_path), stems=p.stems, style_words=p.style_words, seconds=n_in / in_sr,
                       sample_rate=in_sr, channels=n_channels, qpm=grid.qpm, beats_per_bar=grid.beats_per_bar,
                       beats=beats, notes_heard=len(notes), notes_added=n_added,
                       stem_gain_db=gain_db, timings=timings,
                       written=written, midi_notes=sorted(onsets))
