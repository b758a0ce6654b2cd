"""The song model: tracks of notes in musical time, with tempo map and meter.

Time is in integer ticks at ``Song.resolution`` ticks per quarter note (960 by
default, the Guitar Pro resolution, which keeps triplets and 64ths exact).
Everything else in stemfill reads and writes this model; file formats and the
piano-roll codec are converters at its edges.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace

from stemfill.errors import SongError

RESOLUTION = 960  # ticks per quarter note
STEMS = ("drums", "bass", "guitar")  # the roll's channels, in order
STEM_OTHER = "other"


@dataclass(frozen=True, slots=True)
class Note:
    start: int  # ticks
    duration: int  # ticks, > 0
    pitch: int  # MIDI pitch 0..127 (drums: GM percussion key)
    velocity: int = 96
    string: int | None = None  # Guitar Pro string number (1 = highest), tabs only
    fret: int | None = None

    @property
    def end(self) -> int:
        return self.start + self.duration


@dataclass(frozen=True, slots=True)
class TempoChange:
    time: int  # ticks
    qpm: float  # quarter notes per minute


@dataclass(frozen=True, slots=True)
class TimeSignature:
    time: int  # ticks; must fall on a bar line of the previous meter
    numerator: int
    denominator: int


@dataclass(slots=True)
class Track:
    name: str
    program: int = 0  # General MIDI program 0..127
    is_drum: bool = False
    notes: list[Note] = field(default_factory=list)
    tuning: tuple[int, ...] | None = None  # MIDI pitch per string, string 1 (highest) first
    stem: str | None = None  # drums/bass/guitar/other; None = classify on demand

    def __post_init__(self) -> None:
        _check(0 <= self.program <= 127, f"track {self.name!r}: program {self.program} outside 0..127")
        if self.tuning is not None:
            self.tuning = tuple(int(p) for p in self.tuning)
            _check(all(0 <= p <= 127 for p in self.tuning), f"track {self.name!r}: tuning {self.tuning} outside 0..127")
        if self.stem is not None:
            _check(self.stem in STEMS + (STEM_OTHER,), f"track {self.name!r}: stem {self.stem!r} is not one of {STEMS + (STEM_OTHER,)}")
        for n in self.notes:
            _check_note(self.name, n)
        self.notes.sort(key=lambda n: (n.start, n.pitch))


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise SongError(message)


def _check_note(track: str, n: Note) -> None:
    if n.start >= 0 and n.duration > 0 and 0 <= n.pitch <= 127 and 0 <= n.velocity <= 127:
        return  # fast path: the messages below are only formatted for a bad note
    _check(n.start >= 0, f"track {track!r}: note start {n.start} is negative")
    _check(n.duration > 0, f"track {track!r}: note at tick {n.start} has duration {n.duration} <= 0")
    _check(0 <= n.pitch <= 127, f"track {track!r}: note pitch {n.pitch} outside 0..127")
    _check(0 <= n.velocity <= 127, f"track {track!r}: note velocity {n.velocity} outside 0..127")


@dataclass(slots=True)
class Song:
    tracks: list[Track]
    tempos: list[TempoChange] = field(default_factory=lambda: [TempoChange(0, 120.0)])
    time_signatures: list[TimeSignature] = field(default_factory=lambda: [TimeSignature(0, 4, 4)])
    resolution: int = RESOLUTION
    title: str = ""
    # the file set no meter: time_signatures[0] is the assumed 4/4, and writers leave it out
    implicit_meter: bool = False
    # one-line notes from the reader on what it could not read as written (e.g. notes dropped)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check(self.resolution > 0, f"resolution {self.resolution} must be > 0")
        _check(len(self.tempos) > 0, "tempos: at least one tempo is required")
        _check(len(self.time_signatures) > 0, "time_signatures: at least one time signature is required")
        self.tempos = sorted(self.tempos, key=lambda t: t.time)
        self.time_signatures = sorted(self.time_signatures, key=lambda t: t.time)
        _check(self.tempos[0].time == 0, f"tempos: first tempo at tick {self.tempos[0].time}, must be at 0")
        _check(self.time_signatures[0].time == 0, f"time_signatures: first at tick {self.time_signatures[0].time}, must be at 0")
        for t in self.tempos:
            _check(t.qpm > 0 and t.qpm < 10000, f"tempos: tempo {t.qpm} qpm at tick {t.time} must be in (0, 10000)")
        for ts in self.time_signatures:
            _check(1 <= ts.numerator <= 64, f"time_signatures: numerator {ts.numerator} at tick {ts.time} outside 1..64")
            _check(ts.denominator in (1, 2, 4, 8, 16, 32, 64), f"time_signatures: denominator {ts.denominator} at tick {ts.time} is not a power of two <= 64")

    # --- derived views -------------------------------------------------------
    @property
    def end(self) -> int:
        """Tick of the last note end (0 for a song with no notes)."""
        return max((n.end for t in self.tracks for n in t.notes), default=0)

    def bar_ticks(self, ts: TimeSignature) -> int:
        return self.resolution * 4 * ts.numerator // ts.denominator

    def bar_starts(self, end: int | None = None) -> list[int]:
        """Tick of every bar line from 0 up to (and covering) ``end`` (default: song end)."""
        end = self.end if end is None else end
        starts: list[int] = []
        sigs = self.time_signatures
        for i, ts in enumerate(sigs):
            if i > 0 and ts.time >= end:
                break  # a meter change at (or after) the song's end opens no bar
            stop = sigs[i + 1].time if i + 1 < len(sigs) else max(end, ts.time + 1)
            t = ts.time
            length = self.bar_ticks(ts)
            while t < stop:
                starts.append(t)
                t += length
        return starts or [0]

    @property
    def n_bars(self) -> int:
        return len(self.bar_starts()) if self.end > 0 else 0

    def qpm_at(self, tick: int) -> float:
        i = bisect.bisect_right([t.time for t in self.tempos], tick) - 1
        return self.tempos[max(i, 0)].qpm

    def seconds(self, tick: int) -> float:
        """Wall-clock time of ``tick`` under the tempo map."""
        sec, prev_t, prev_q = 0.0, 0, self.tempos[0].qpm
        for t in self.tempos[1:]:
            if t.time >= tick:
                break
            sec += (t.time - prev_t) / self.resolution * 60.0 / prev_q
            prev_t, prev_q = t.time, t.qpm
        return sec + (tick - prev_t) / self.resolution * 60.0 / prev_q

    def stem_tracks(self, stem: str) -> list[Track]:
        from stemfill.song.stems import classify_track

        return [t for t in self.tracks if (t.stem or classify_track(t)) == stem]

    def write(self, path, *, source=None, notes: list[str] | None = None):
        """Write the song as .mid/.midi or .gp5, atomically (``stemfill.write``; ``source``: the file it was
        read from, never overwritten, whose Guitar Pro tracks a .gp5 keeps as they were). Returns the path."""
        from stemfill.api import write

        return write(self, path, source=source, notes=notes)

    def with_resolution(self, resolution: int) -> "Song":
        """The same song with every tick rescaled to ``resolution`` (rounded)."""
        if resolution == self.resolution:
            return self
        f = resolution / self.resolution

        def sc(x: int) -> int:
            return int(round(x * f))

        tracks = [
            replace(t, notes=[replace(n, start=sc(n.start), duration=max(1, sc(n.end) - sc(n.start))) for n in t.notes])
            for t in self.tracks
        ]
        return Song(
            tracks=tracks,
            tempos=[replace(t, time=sc(t.time)) for t in self.tempos],
            time_signatures=[replace(t, time=sc(t.time)) for t in self.time_signatures],
            resolution=resolution,
            title=self.title,
            implicit_meter=self.implicit_meter,
            warnings=list(self.warnings),
        )
