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
from stemfill.pianoroll.song import Song, Track

SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
)
_TICKS_PER_BEAT = 1000  # at a fixed 120 qpm: 1 tick = 0.5 ms
_DRUM_CHANNEL = 9


def fluidsynth_path() -> str:
    exe = shutil.which("fluidsynth")
    if not exe:
        raise AudioError("fluidsynth is not installed (apt-get install --no-install-recommends fluidsynth)")
    return exe


def find_soundfont(soundfont: str | os.PathLike | None = None) -> Path:
    """The given .sf2, else STEMFILL_SOUNDFONT, else the system's General MIDI soundfont."""
    cand = soundfont or os.environ.get("STEMFILL_SOUNDFONT")
    if cand:
        p = Path(cand)
        if not p.is_file():
            raise AudioError(f"{p}: soundfont not found")
        return p
    for c in SOUNDFONT_CANDIDATES:
        if Path(c).is_file():
            return Path(c)
    raise AudioError("no General MIDI soundfont found; pass --soundfont FILE.sf2 (apt-get install fluidsynth brings one)")


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
        mt = mido.MidiTrack([mido.MetaMessage("track_name", name=tr.name[:60] or f"track {k}", time=0)])
        if not tr.is_drum:
            mt.append(mido.Message("program_change", channel=ch, program=tr.program, time=0))
        now = 0
        for t, _, msg in events:
            mt.append(msg.copy(time=t - now))
            now = t
        mid.tracks.append(mt)
    mid.save(str(path))
    return n_written


def render_midi(midi_path: str | os.PathLike, soundfont: str | os.PathLike, *, gain: float = 0.5) -> np.ndarray:
    """Render a MIDI file with FluidSynth to mono float32 at 44.1 kHz (reverb and chorus off)."""
    import soundfile as sf

    exe = fluidsynth_path()
    with tempfile.TemporaryDirectory(prefix="stemfill-fs-") as d:
        wav = Path(d) / "out.wav"
        cmd = [exe, "-ni", "-q", "-R", "0", "-C", "0", "-g", str(gain), "-r", str(SAMPLE_RATE),
               "-o", "audio.file.format=float", "-F", str(wav), str(soundfont), str(midi_path)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode != 0 or not wav.exists():
            err = (r.stderr or r.stdout).strip().splitlines()
            raise AudioError(f"{midi_path}: fluidsynth failed: {err[-1] if err else f'exit {r.returncode}'}")
        y, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    if sr != SAMPLE_RATE:
        raise AudioError(f"{midi_path}: fluidsynth wrote {sr} Hz, expected {SAMPLE_RATE}")
    return y.mean(axis=1)


def render_stems(song: Song, soundfont: str | os.PathLike | None = None, *, start_s: float = 0.0,
                 duration_s: float | None = None, include_other: bool = True) -> dict[str, np.ndarray]:
    """Render each stem of ``song`` separately: ``{stem: mono float32 at 44.1 kHz}``, all the same length.

    Stems come from stemfill.pianoroll.stems (drums / bass / guitar / other); stems with
    no notes in the window are left out. With ``duration_s`` the arrays are exactly that long.
    """
    from stemfill.pianoroll.stems import classify_song

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
