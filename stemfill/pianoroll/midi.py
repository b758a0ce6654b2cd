"""Standard MIDI files <-> Song.

Reading uses symusic (a C++ parser, ~170x faster than mido on the corpus: see
``bench/midi_readers.py``); we check the header ourselves first because symusic
silently accepts MIDI type 2, a zero division and SMPTE time. Writing uses mido,
which gives exact control over tracks, channels and event order.

Reading
-------
* one Track per (MIDI track, channel, program), the usual convention; channel 10
  (index 9) is drums. Tracks without notes are dropped.
* ticks are rescaled to ``Song.resolution`` (960 per quarter), rounded.
* a note of zero length (also one that rounds to zero) gets ``MIN_DURATION`` ticks.
* tempo map and time signatures are kept; invalid time signatures (numerator 0,
  denominator not a power of two) are dropped; MIDI's defaults (120 qpm, 4/4)
  fill tick 0 when the file sets nothing there.
* every failure is a ``MidiReadError`` naming the file, raised from the cause.

Writing
-------
MIDI type 1 at the song's resolution: a conductor track (title, tempos, time
signatures), then one named track per Track with its program change. Drums go on
channel 10 (index 9), other tracks on 0-8, 10-15 in order; past 15 pitched tracks,
a channel is shared, preferably by tracks with the same program. Tempos are stored
as whole microseconds per quarter. MIDI pairs note-on/off first-in first-out, so
of two overlapping notes of one pitch, one inside the other comes back as two
notes that end in the order they started.
"""

from __future__ import annotations

import io
import os
import re
import struct
from pathlib import Path

import numpy as np

from stemfill.errors import MidiReadError
from stemfill.pianoroll.song import RESOLUTION, Note, Song, SongError, TempoChange, TimeSignature, Track

MIN_DURATION = RESOLUTION // 16  # ticks given to a zero-length note (a 64th note)
MAX_QPM = 1000.0  # faster tempos are taken as corrupt data
DRUM_CHANNEL = 9
MELODIC_CHANNELS = tuple(c for c in range(16) if c != DRUM_CHANNEL)
DEFAULT_QPM = 120.0  # MIDI's default tempo when a file sets none
_HEADER = struct.Struct(">4sIHHh")  # b"MThd", length, format, tracks, division


# --- reading -----------------------------------------------------------------


def read_midi(path: str | os.PathLike) -> Song:
    """Read a standard MIDI file (type 0 or 1) into a Song at ``RESOLUTION`` ticks per quarter."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise MidiReadError(p, f"cannot read file: {e.strerror or e}") from e
    return midi_from_bytes(data, name=p, title=p.stem)


def midi_from_bytes(data: bytes, name: str | os.PathLike = "<bytes>", title: str = "") -> Song:
    """Parse MIDI file bytes; ``name`` is the file named in errors."""
    _check_header(data, name)
    try:
        from symusic import Score

        score = Score.from_midi(data)
        tpq = int(score.ticks_per_quarter)
        raw_tracks = [
            (str(t.name), int(t.program), bool(t.is_drum), t.notes.numpy()) for t in score.tracks if len(t.notes) > 0
        ]
        raw_tempos = [(int(t.time), int(t.mspq)) for t in score.tempos]
        raw_sigs = [(int(t.time), int(t.numerator), int(t.denominator)) for t in score.time_signatures]
    except Exception as e:  # symusic raises RuntimeError (and others) on corrupt data
        raise MidiReadError(name, f"corrupt MIDI data: {_reason(e)}") from e

    if not raw_tracks:
        raise MidiReadError(name, "no notes in the file")

    def sc(ticks):  # rescale to RESOLUTION, round half up (exact integer arithmetic)
        return (ticks * RESOLUTION + tpq // 2) // tpq

    tracks = []
    for name_, program, is_drum, arr in raw_tracks:
        start = arr["time"].astype("int64")
        end = sc(start + arr["duration"].astype("int64"))
        start = sc(start)
        dur = end - start
        dur[dur <= 0] = MIN_DURATION
        pitch, vel = arr["pitch"].astype("int64"), arr["velocity"].astype("int64")
        order = np.lexsort((vel, dur, pitch, start))  # a fixed order, also for notes sharing start and pitch
        notes = [
            Note(s, d, p, v)
            for s, d, p, v in zip(start[order].tolist(), dur[order].tolist(), pitch[order].tolist(), vel[order].tolist())
        ]
        label = name_.replace("\x00", "").strip() or ("Drums" if is_drum else gm_program_name(program))
        tracks.append((label, program, is_drum, notes))

    tempos = _tempo_map(raw_tempos, sc, name)
    sigs = _time_signatures(raw_sigs, sc)
    try:
        return Song(
            tracks=[Track(name=n, program=p, is_drum=d, notes=notes) for n, p, d, notes in tracks],
            tempos=tempos,
            time_signatures=sigs,
            resolution=RESOLUTION,
            title=title,
        )
    except SongError as e:  # should not happen after the checks above; still one line, still ours
        raise MidiReadError(name, f"invalid song: {e}") from e


def _check_header(data: bytes, name) -> None:
    if len(data) == 0:
        raise MidiReadError(name, "empty file")
    if len(data) < _HEADER.size or data[:4] != b"MThd":
        raise MidiReadError(name, "not a MIDI file (no MThd header)")
    _, length, fmt, _n, division = _HEADER.unpack_from(data)
    if length < 6:
        raise MidiReadError(name, f"corrupt MIDI header (length {length} < 6)")
    if fmt == 2:
        raise MidiReadError(name, "MIDI type 2 (independent sequences) is not supported")
    if fmt > 2:
        raise MidiReadError(name, f"unknown MIDI type {fmt}")
    if division == 0:
        raise MidiReadError(name, "zero ticks per beat in the MIDI header")
    if division < 0:
        raise MidiReadError(name, "SMPTE time division (frames per second) is not supported")


def _tempo_map(raw: list[tuple[int, int]], sc, name) -> list[TempoChange]:
    """Tempo changes at 960 ticks; one per tick (the last wins); 120 qpm at 0 unless set."""
    by_tick: dict[int, float] = {}
    for time, mspq in sorted(raw, key=lambda x: x[0]):
        if mspq <= 0:
            raise MidiReadError(name, f"tempo of 0 at tick {time}")
        qpm = 60_000_000 / mspq
        if qpm > MAX_QPM:
            raise MidiReadError(name, f"absurd tempo {qpm:.0f} qpm at tick {time} (max {MAX_QPM:.0f})")
        by_tick[sc(time)] = qpm
    by_tick.setdefault(0, DEFAULT_QPM)
    return [TempoChange(t, q) for t, q in sorted(by_tick.items())]


def _time_signatures(raw: list[tuple[int, int, int]], sc) -> list[TimeSignature]:
    """Valid time signatures at 960 ticks, one per tick (the last wins), 4/4 at 0 unless set."""
    by_tick: dict[int, tuple[int, int]] = {}
    for time, num, den in sorted(raw, key=lambda x: x[0]):
        if 1 <= num <= 64 and den in (1, 2, 4, 8, 16, 32, 64):
            by_tick[sc(time)] = (num, den)
    by_tick.setdefault(0, (4, 4))
    return [TimeSignature(t, n, d) for t, (n, d) in sorted(by_tick.items())]


def _reason(e: BaseException) -> str:
    """symusic's message as one readable line ('Get program=208' -> 'program 208 outside 0..127')."""
    msg = re.sub(r"\s+", " ", str(e)).strip() or type(e).__name__
    m = re.fullmatch(r"Get (\w+)=(\d+)", msg)
    if m:
        return f"{m[1].replace('_', ' ')} {m[2]} outside 0..127"
    return msg.removeprefix("MiniMidi: ").removesuffix(": iostream error").replace("Invaild", "Invalid")


def gm_program_name(program: int) -> str:
    """General MIDI instrument name of a program 0..127 (e.g. 33 -> 'Electric Bass (finger)')."""
    from pretty_midi import program_to_instrument_name

    return program_to_instrument_name(program)


# --- writing -----------------------------------------------------------------


def write_midi(song: Song, path: str | os.PathLike) -> None:
    """Write ``song`` as a type-1 MIDI file at ``path`` (io.write_song wraps this atomically)."""
    Path(path).write_bytes(midi_bytes(song))


def midi_bytes(song: Song) -> bytes:
    """The type-1 MIDI file of ``song``, as bytes."""
    import mido

    mid = mido.MidiFile(type=1, ticks_per_beat=song.resolution, charset="utf-8")
    conductor: list[tuple[int, int, int, mido.MetaMessage]] = []
    if song.title:
        conductor.append((0, 0, 0, mido.MetaMessage("track_name", name=song.title)))
    for ts in song.time_signatures:
        msg = mido.MetaMessage("time_signature", numerator=ts.numerator, denominator=ts.denominator)
        conductor.append((ts.time, 1, 0, msg))
    for t in song.tempos:
        mspq = min(16_777_215, round(60_000_000 / t.qpm))
        conductor.append((t.time, 2, 0, mido.MetaMessage("set_tempo", tempo=mspq)))
    mid.tracks.append(_delta_track(conductor))

    for track, channel in zip(song.tracks, assign_channels(song.tracks)):
        events: list[tuple[int, int, int, object]] = [
            (0, 0, 0, mido.MetaMessage("track_name", name=track.name)),
            (0, 1, 0, mido.Message("program_change", channel=channel, program=track.program)),
        ]
        for n in track.notes:
            # at one tick, note-offs (2) come before note-ons (3), so touching notes stay apart, and
            # note-ons go in order of their ends, so first-in first-out pairing finds each its own end
            on = mido.Message("note_on", channel=channel, note=n.pitch, velocity=max(1, n.velocity))
            events.append((n.start, 3, n.end, on))
            events.append((n.end, 2, 0, mido.Message("note_off", channel=channel, note=n.pitch, velocity=0)))
        mid.tracks.append(_delta_track(events))

    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def assign_channels(tracks: list[Track]) -> list[int]:
    """MIDI channel (0-based) per track: drums 9; others 0-8, 10-15, then shared (same program first)."""
    out: list[int] = []
    free = list(MELODIC_CHANNELS)
    program_of: dict[int, int] = {}  # channel -> program of its first track
    reuse = 0
    for t in tracks:
        if t.is_drum:
            out.append(DRUM_CHANNEL)
            continue
        if free:
            ch = free.pop(0)
            program_of[ch] = t.program
        else:
            same = [c for c, p in program_of.items() if p == t.program]
            if same:
                ch = same[0]
            else:
                ch = MELODIC_CHANNELS[reuse % len(MELODIC_CHANNELS)]
                reuse += 1
        out.append(ch)
    return out


def _delta_track(events: list[tuple[int, int, int, object]]):
    """Sort (tick, order, sub-order, message) and turn absolute ticks into deltas; end with end_of_track."""
    import mido

    track = mido.MidiTrack()
    now = 0
    for tick, _order, _sub, msg in sorted(events, key=lambda e: e[:3]):
        msg.time = tick - now
        track.append(msg)
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track
