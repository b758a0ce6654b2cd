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
* a note-on that symusic leaves unpaired (two note-ons of one pitch, one note-off) ends
  at the next note-off of its pitch, as in pretty_midi; one never ended is dropped
  and counted in ``Song.warnings`` ("2 notes dropped: 2 note-ons never ended").
* tempo map and time signatures are kept; invalid time signatures (numerator 0,
  denominator not a power of two) are dropped; MIDI's defaults (120 qpm, 4/4)
  fill tick 0 when the file sets nothing there (``Song.implicit_meter`` for 4/4).
* a data byte above 127 (a controller value or program of 168, as some editors write) is corrupt data that
  symusic refuses; mido reads such a file with the byte clipped to 127, and the clipped file is read again,
  with a line in ``Song.warnings``. A file mido cannot read either stays refused.
* every failure is a ``MidiReadError`` naming the file, raised from the cause.

Writing
-------
MIDI type 1 at the song's resolution: a conductor track (title, tempos, time
signatures; none for an implicit 4/4), then one named track per Track with its
program change. Drums go on channel 10 (index 9), other tracks on 0-8, 10-15 in
order; past 15 pitched tracks, a channel is shared, preferably by tracks with the
same program. Tempos are stored as whole microseconds per quarter. MIDI pairs
note-on/off first-in first-out, so of two overlapping notes of one pitch, one
inside the other comes back as two notes that end in the order they started.
"""

from __future__ import annotations

import bisect
import io
import os
import re
import struct
from collections import defaultdict, deque
from pathlib import Path

import numpy as np

from stemfill.errors import MidiReadError
from stemfill.song.song import RESOLUTION, Note, Song, SongError, TempoChange, TimeSignature, Track

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
    repaired: list[str] = []
    try:
        from symusic import Score

        try:
            score = Score.from_midi(data)
        except Exception as e:  # noqa: BLE001 - a data byte past 127: clip it as mido does, else re-raise
            fixed = _clipped(data) if _DATA_BYTE.fullmatch(_message(e)) else None
            if fixed is None:
                raise
            data, score = fixed, Score.from_midi(fixed)
            repaired.append(f"corrupt data bytes clipped to 127 ({_reason(e)})")
        tpq = int(score.ticks_per_quarter)
        raw_tracks = [
            (str(t.name), int(t.program), bool(t.is_drum), t.notes.numpy()) for t in score.tracks if len(t.notes) > 0
        ]
        raw_tracks, warnings = _place_unpaired(data, raw_tracks)
        warnings = repaired + warnings
        raw_tempos = [(int(t.time), int(t.mspq)) for t in score.tempos]
        raw_sigs = [(int(t.time), int(t.numerator), int(t.denominator)) for t in score.time_signatures]
    except Exception as e:  # symusic raises RuntimeError (and others) on corrupt data
        raise MidiReadError(name, f"corrupt MIDI data: {_reason(e)}") from e

    if not raw_tracks:
        raise MidiReadError(name, "no notes in the file" + "".join(f" ({w})" for w in warnings))

    def sc(ticks):  # rescale to RESOLUTION, round half up (exact integer arithmetic)
        return (ticks * RESOLUTION + tpq // 2) // tpq

    tracks = []
    for name_, program, is_drum, arr in raw_tracks:
        start = np.asarray(arr["time"], dtype="int64")
        end = sc(start + np.asarray(arr["duration"], dtype="int64"))
        start = sc(start)
        dur = end - start
        dur[dur <= 0] = MIN_DURATION
        pitch, vel = np.asarray(arr["pitch"], dtype="int64"), np.asarray(arr["velocity"], dtype="int64")
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
            implicit_meter=not any(sc(t) == 0 and _valid_meter(n, d) for t, n, d in raw_sigs),
            warnings=warnings,
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
        if _valid_meter(num, den):
            by_tick[sc(time)] = (num, den)
    by_tick.setdefault(0, (4, 4))
    return [TimeSignature(t, n, d) for t, (n, d) in sorted(by_tick.items())]


def _valid_meter(numerator: int, denominator: int) -> bool:
    return 1 <= numerator <= 64 and denominator in (1, 2, 4, 8, 16, 32, 64)


def _clipped(data: bytes) -> bytes | None:
    """The file as mido reads it with data bytes above 127 clipped to 127, written again; None where mido
    cannot read it either."""
    import mido

    try:
        mf = mido.MidiFile(file=io.BytesIO(data), clip=True)
        out = io.BytesIO()
        mf.save(file=out)
    except Exception:  # noqa: BLE001 - still unreadable: the caller keeps symusic's error
        return None
    return out.getvalue()


_DATA_BYTE = re.compile(r"Get (\w+)=(\d+)")  # symusic's message for a data byte past 127


def _message(e: BaseException) -> str:
    return re.sub(r"\s+", " ", str(e)).strip() or type(e).__name__


def _reason(e: BaseException) -> str:
    """symusic's message as one readable line ('Get program=208' -> 'program 208 outside 0..127')."""
    msg = _message(e)
    m = _DATA_BYTE.fullmatch(msg)
    if m:
        return f"{m[1].replace('_', ' ')} {m[2]} outside 0..127"
    return msg.removeprefix("MiniMidi: ").removesuffix(": iostream error").replace("Invaild", "Invalid")


def gm_program_name(program: int) -> str:
    """General MIDI instrument name of a program 0..127 (e.g. 33 -> 'Electric Bass (finger)')."""
    from pretty_midi import program_to_instrument_name

    return program_to_instrument_name(program)


# --- note-ons symusic leaves unpaired -------------------------------------------
#
# symusic pairs each note-off with the earliest open note-on of its channel and pitch (within a
# MIDI track) and drops a note-on that no note-off is left for: two note-ons of one pitch and one
# note-off give one note. pretty_midi ends every open note of the pitch at that note-off and gives
# two. A fast pass over the track bytes counts the note-ons; only where there are more than
# symusic's notes (almost never), a second pass pairs them as symusic does and places each note-on
# left over as pretty_midi does, ending at the next note-off of its channel and pitch after its
# start; those with none after them are dropped and counted in ``Song.warnings``. Zero-length
# notes, which pretty_midi drops, are kept (``MIN_DURATION``).


def _track_chunks(data: bytes) -> list[tuple[int, int]]:
    """(first byte, end) of the track chunks symusic reads: as many MTrk chunks as the header names."""
    n_tracks = struct.unpack_from(">H", data, 10)[0]
    pos, size, out = 8 + struct.unpack_from(">I", data, 4)[0], len(data), []
    while pos + 8 <= size and len(out) < n_tracks:
        kind, length = data[pos:pos + 4], struct.unpack_from(">I", data, pos + 4)[0]
        pos += 8
        if kind == b"MTrk":
            out.append((pos, min(pos + length, size)))
        pos += length
    return out


def _scan_track(data: bytes, i: int, end: int, events: list | None = None) -> int:
    """The note-ons (velocity > 0) in the track chunk ``data[i:end]``, read as symusic reads it.

    With a list ``events``, also appends (tick, status, data1, data2) for every note-on, note-off and
    program change, and (tick, 0xFF, name bytes, 0) for a track name."""
    ons = tick = status = 0
    while i < end:
        b = data[i]
        i += 1
        delta = b & 0x7F
        while b > 0x7F and i < end:
            b = data[i]
            i += 1
            delta = (delta << 7) | (b & 0x7F)
        tick += delta
        if i >= end:
            break
        b = data[i]
        if b > 0x7F:  # a status byte (else a data byte: running status, the last status again)
            i += 1
            if b == 0xFF or b == 0xF0 or b == 0xF7:  # meta event or sysex: skip its payload
                meta = -1
                if b == 0xFF:
                    if i >= end or data[i] == 0x2F:  # end of track
                        break
                    meta = data[i]
                    i += 1
                length = 0
                while i < end:
                    c = data[i]
                    i += 1
                    length = (length << 7) | (c & 0x7F)
                    if c < 0x80:
                        break
                if meta == 3 and events is not None:
                    events.append((tick, 0xFF, data[i:i + length], 0))
                i += length
                continue
            status = b
        if 0x80 <= status < 0xA0:  # note-off, note-on
            if i + 2 > end:
                break
            if status >= 0x90 and data[i + 1]:
                ons += 1
            if events is not None:
                events.append((tick, status, data[i], data[i + 1]))
            i += 2
        elif 0xC0 <= status < 0xE0 or status == 0xF1 or status == 0xF3:  # one data byte
            if events is not None and status < 0xD0 and i < end:
                events.append((tick, status, data[i], 0))
            i += 1
        elif status < 0xF0 or status == 0xF2:
            i += 2
    return ons


def _place_unpaired(data: bytes, raw_tracks: list) -> tuple[list, list[str]]:
    """``raw_tracks`` (name, program, is_drum, notes in file ticks) with the note-ons symusic left
    unpaired placed as pretty_midi places them, and the warnings for those that cannot be."""
    chunks = _track_chunks(data)
    n_read = sum(len(notes["time"]) for *_, notes in raw_tracks)
    n_ons = sum(_scan_track(data, a, b) for a, b in chunks)
    if n_ons == n_read:  # every note-on became a note (the usual case: one pass, ~0.2 us per byte)
        return raw_tracks, []

    paired: dict[tuple, list] = defaultdict(list)  # (chunk, channel, program) -> its paired notes
    placed: dict[tuple, list] = defaultdict(list)  # ... -> notes placed here
    names: dict[int, bytes] = {}
    unended = 0
    for k, (a, b) in enumerate(chunks):
        events: list = []
        _scan_track(data, a, b, events)
        program = [0] * 16
        opened: dict[tuple[int, int], deque] = defaultdict(deque)
        offs: dict[tuple[int, int], list[int]] = defaultdict(list)
        for tick, status, d1, d2 in events:
            if status == 0xFF:
                names.setdefault(k, d1)
                continue
            channel, kind = status & 0x0F, status >> 4
            if kind == 12:
                program[channel] = d1
            elif kind == 9 and d2:
                opened[channel, d1].append((tick, d2, program[channel]))
            else:
                offs[channel, d1].append(tick)
                if opened[channel, d1]:
                    start, _, prog = opened[channel, d1].popleft()
                    paired[k, channel, prog].append((start, tick - start, d1))
        for (channel, pitch), notes in opened.items():
            ends = offs[channel, pitch]
            for start, velocity, prog in notes:
                j = bisect.bisect_right(ends, start)  # pretty_midi: the next note-off after the start
                if j < len(ends):
                    placed[k, channel, prog].append((start, ends[j] - start, pitch, velocity))
                else:
                    unended += 1

    if sum(len(v) for v in paired.values()) != n_read:  # the bytes read otherwise than symusic reads them
        missing = n_ons - n_read
        return raw_tracks, [f"up to {missing} notes may be missing: corrupt note data"] if missing > 0 else []

    fields = ("time", "duration", "pitch", "velocity")
    out = [(n, p, d, {f: np.asarray(notes[f], dtype="int64") for f in fields}) for n, p, d, notes in raw_tracks]
    content = [(d, sorted(zip(*(cols[f].tolist() for f in fields[:3])))) for _, _, d, cols in out]
    unmatched = 0
    for (k, channel, prog), notes in placed.items():
        is_drum, mine = channel == DRUM_CHANNEL, sorted(paired[k, channel, prog])
        if not mine:  # all its notes were unpaired: a track symusic did not make
            name = names.get(k, b"").decode("utf-8", "replace")
            out.append((name, prog, is_drum, {f: np.zeros(0, dtype="int64") for f in fields}))
            cols = out[-1][3]
        elif (is_drum, mine) in content:
            cols = out[content.index((is_drum, mine))][3]
        else:  # no track of symusic's holds exactly these paired notes: leave them out, say so
            unmatched += len(notes)
            continue
        for f, values in zip(fields, zip(*notes)):
            cols[f] = np.concatenate([cols[f], np.asarray(values, dtype="int64")])
    lost = unended + unmatched
    if not lost:
        return out, []
    why = [f"{unended} note-on{'s' * (unended != 1)} never ended"] if unended else []
    why += [f"{unmatched} unpaired in a track read otherwise"] if unmatched else []
    return out, [f"{lost} note{'s' * (lost != 1)} dropped: {', '.join(why)}"]


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
        if song.implicit_meter and (ts.time, ts.numerator, ts.denominator) == (0, 4, 4):
            continue  # the input set no meter; 4/4 is what a reader assumes without one
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
        # mido checks every value of every message it makes (most of the time of writing a long part): the
        # notes' values are checked once here, as mido would, and their messages made unchecked
        checked = _notes_in_range(track.notes)
        for n in track.notes:
            # at one tick, note-offs (2) come before note-ons (3), so touching notes stay apart, and
            # note-ons go in order of their ends, so first-in first-out pairing finds each its own end
            on = mido.Message("note_on", skip_checks=checked, channel=channel, note=n.pitch, velocity=max(1, n.velocity))
            events.append((n.start, 3, n.end, on))
            off = mido.Message("note_off", skip_checks=checked, channel=channel, note=n.pitch, velocity=0)
            events.append((n.end, 2, 0, off))
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


def _notes_in_range(notes) -> bool:
    """Every note's pitch and (at least 1) velocity is a MIDI data byte with integer ticks: what mido checks."""
    return all(isinstance(n.start, int) and isinstance(n.end, int) and 0 <= n.pitch <= 127
               and isinstance(n.pitch, int) and isinstance(n.velocity, int) and n.velocity <= 127 for n in notes)


def _delta_track(events: list[tuple[int, int, int, object]]):
    """Sort (tick, order, sub-order, message) and turn absolute ticks into deltas; end with end_of_track."""
    import mido

    track = mido.MidiTrack()
    now = 0
    for tick, _order, _sub, msg in sorted(events, key=lambda e: e[:3]):
        if type(tick) is int and tick >= now:  # a valid delta: set it without mido's check
            vars(msg)["time"] = tick - now
        else:
            msg.time = tick - now
        track.append(msg)
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track
