"""Ticks -> Guitar Pro note values: each beat's division, snapping, and the split into tied values.

Guitar Pro gives every beat one note value (whole .. 64th), a dot, and a tuplet (3:2, 5:4, 7:4,
9:8, 11:8, 13:8; 6:4, 10:8, 12:8 are the same ratios). A track is written one quarter-note beat at
a time (the last beat of a bar of 7/8 or 5/16 is shorter): a beat takes the coarsest *division*
(``DIVISIONS``: into 1, 2, 3, 4, 5, ... 24 equal parts) whose grid holds every note start and
end, and every tempo change, that falls inside it. Where none does but each half of the beat has
one (16th triplets, then two 16ths), the halves are written apart; only then are the mixed
divisions into 12, 20 or 24 parts tried for the whole beat. Straight divisions (1, 2, 4, 8, 16)
are written with plain (and dotted) values, and a note may run on across such beats; the others
are written as tuplets that fill their beat (or half beat) exactly, so a bracket never straddles
a beat (quarter-note triplets come out as triplet quarter + tied triplet eighths).

A note is written exactly when its start and end lie on their beat's grid: everything on the
roll's 12-steps-per-beat grid, 16ths, 32nds, 64ths, and 3-, 5-, 6-, 7-, 9-, 10-, 11-, 12-, 13-
and 20-tuplets (the non-integer ones, 7, 9, 11, 13, as the gp5 reader rounds them; a 5-, 7-,
9-... division needs two or more distinct times in the beat: one time alone that happens to fall
on such a grid is a played note, not a tuplet). Where no division holds a beat's times (played
MIDI, a beat mixing triplets and quintuplets), they move to the coarsest straight or triplet
division (``NEAR``) within ``TOLERANCE`` ticks that keeps every note in the beat at least one
step long, or whose step is a 32nd or less (``MAX_LENGTHEN``: a 10-tick drum hit is written as
a 32nd rather than forcing 64th triplets on its beat); the 24-per-beat grid (40 ticks, 64th
triplets) always qualifies. A note shorter than its step is lengthened to one step.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from stemfill.song.song import RESOLUTION

BEAT = RESOLUTION  # the written beat: a quarter note
WHOLE = 4 * RESOLUTION
VALUES = (1, 2, 4, 8, 16, 32, 64)  # whole .. 64th: what Guitar Pro 5 writes
# tuplet ratios (enters, times) in the order tried; 6:4, 10:8 and 12:8 equal 3:2, 5:4 and 3:2
TUPLETS = ((1, 1), (3, 2), (5, 4), (7, 4), (9, 8), (11, 8), (13, 8))
DIVISIONS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 20, 24)  # parts per beat, coarsest first
FALLBACK = 24  # always fits within TOLERANCE: 40-tick steps
NEAR = (1, 2, 4, 3, 8, 6, 16, 12, 24)  # what off-grid times move to: straight values and triplets only
PLAIN = ((1, 1), (3, 2))  # tuplets taken from a single time in a beat
MIXED = (12, 20, 24)  # 3 x 4, 5 x 4 parts: tried after each half of the beat in its own division
TOLERANCE = RESOLUTION // 48  # 20 ticks: half a step of the fallback grid
MAX_LENGTHEN = RESOLUTION // 8  # a note too short for the grid may become a 32nd (a 10-tick drum hit), no longer


@dataclass(frozen=True, slots=True)
class NoteValue:
    """One Guitar Pro duration: value (1 = whole .. 64), dotted, tuplet (enters, times)."""

    value: int
    dotted: bool = False
    tuplet: tuple[int, int] = (1, 1)

    @property
    def ticks(self) -> Fraction:
        t = Fraction(WHOLE, self.value) * (Fraction(3, 2) if self.dotted else 1)
        return t * Fraction(self.tuplet[1], self.tuplet[0])


@dataclass(frozen=True, slots=True)
class Division:
    """A beat cut into ``parts`` steps of ``unit`` (a note value, possibly in a tuplet)."""

    parts: int
    unit: NoteValue

    @property
    def straight(self) -> bool:
        return self.unit.tuplet == (1, 1)


def division(length: int, parts: int) -> Division | None:
    """The division of a beat of ``length`` ticks into ``parts`` equal note values, or None if GP has no such value."""
    step = Fraction(length, parts)
    for enters, times in TUPLETS:
        plain = step * Fraction(enters, times)  # the step's value before the tuplet
        if plain.denominator == 1 and plain.numerator > 0 and WHOLE % plain.numerator == 0:
            value = WHOLE // plain.numerator
            if value in VALUES and parts % enters == 0:  # whole tuplet groups fill the beat
                return Division(parts, NoteValue(value, False, (enters, times)))
    return None


def _grid_point(start: int, length: int, parts: int, t: int) -> int:
    """``t`` moved to the nearest of the beat's grid points (integers: round(k * length / parts))."""
    k = round(Fraction((t - start) * parts, length))
    return start + round(Fraction(k * length, parts))


@dataclass(slots=True)
class Cell:
    """A stretch of a bar written in one division: a beat, or half of one."""

    start: int
    length: int
    division: Division


class Grid:
    """The written grid of one track: every bar cut into beats (or half beats), each with its division.

    ``bars``: (start, length) of every bar, in order and touching. ``spans``: (start, end) of
    every note (ticks); ``points``: other times that must fall on the grid (tempo changes).
    """

    def __init__(self, bars: list[tuple[int, int]], spans: Iterable[tuple[int, int]], points: Iterable[int] = ()):
        beats: list[tuple[int, int]] = []
        for m0, length in bars:
            for b0 in range(m0, m0 + length, BEAT):
                beats.append((b0, min(BEAT, m0 + length - b0)))
        starts = [b for b, _ in beats]
        end = bars[-1][0] + bars[-1][1] if bars else 0

        def inside(t: int) -> int | None:  # the beat t falls strictly inside
            i = bisect.bisect_right(starts, t) - 1
            return None if i < 0 or t >= end or t == starts[i] else i

        times: list[list[int]] = [[] for _ in beats]  # per beat: the times strictly inside it
        pairs: list[list[tuple[int, int]]] = [[] for _ in beats]  # per beat: notes that start and end in it
        for a, b in spans:
            ia, ib = inside(a), inside(b)
            for t, i in ((a, ia), (b, ib)):
                if i is not None:
                    times[i].append(t)
            home = ia if ia is not None else ib
            if home is not None and starts[home] <= a and b <= starts[home] + beats[home][1]:
                pairs[home].append((a, b))
        for t in points:
            if (i := inside(t)) is not None:
                times[i].append(t)
        self.cells: list[Cell] = []
        self.inexact = 0  # beats whose times moved
        for (b0, length), ts, ps in zip(beats, times, pairs):
            cells, exact = _choose(b0, length, ts, ps)
            self.cells.extend(cells)
            self.inexact += not exact
        self._starts = [c.start for c in self.cells]
        self._end = end

    def _cell(self, t: int, strictly: bool = True) -> Cell | None:
        """The cell ``t`` falls inside (strictly: None on a cell boundary); None outside the bars."""
        i = bisect.bisect_right(self._starts, t) - 1
        if i < 0 or t >= self._end or (strictly and t == self._starts[i]):
            return None
        return self.cells[i]

    def snap(self, t: int) -> int:
        """``t`` on its cell's grid."""
        c = self._cell(t)
        return t if c is None else _grid_point(c.start, c.length, c.division.parts, t)

    def snap_span(self, a: int, b: int) -> tuple[int, int]:
        """A note's (start, end) on the grid; at least one step long."""
        a2, b2 = self.snap(a), self.snap(b)
        if b2 <= a2:
            c = self._cell(a2, strictly=False)
            if c is not None:
                k = round(Fraction((a2 - c.start) * c.division.parts, c.length))
                b2 = c.start + round(Fraction((k + 1) * c.length, c.division.parts))
            else:
                b2 = a2 + BEAT // FALLBACK
        return a2, b2

    def tuplet_bounds(self, m0: int, m1: int) -> set[int]:
        """Cell lines in [m0, m1] around tuplet cells: a written piece never crosses one."""
        out: set[int] = set()
        i = bisect.bisect_left(self._starts, m0)
        while i < len(self.cells) and self.cells[i].start < m1:
            c = self.cells[i]
            if not c.division.straight:
                out.update((c.start, c.start + c.length))
            i += 1
        return out

    def values(self, a: int, b: int) -> list[NoteValue]:
        """Tied note values that fill [a, b) (both on the grid, not crossing a tuplet cell)."""
        c = self._cell(a, strictly=False)
        if c is not None and not c.division.straight:
            steps = round(Fraction((b - a) * c.division.parts, c.length))
            return split_steps(steps, c.division.unit)
        return split_straight(b - a)


def _exact(b0: int, length: int, times: list[int], parts: Iterable[int]) -> Division | None:
    """The first division (of ``parts``) whose grid holds all ``times`` (a 5-, 7-, 9-... one needs two of them)."""
    distinct = len(set(times))
    for p in parts:
        d = division(length, p)
        if d is None or (d.unit.tuplet not in PLAIN and distinct < 2):
            continue  # one time alone on a 5-, 7-, 9-... grid is far likelier a played note than a tuplet
        if all(_grid_point(b0, length, p, t) == t for t in times):
            return d
    return None


def _choose(b0: int, length: int, times: list[int], pairs: list[tuple[int, int]]) -> tuple[list[Cell], bool]:
    """(cells, exact) for one beat: the coarsest division that holds its times; else each half in its own;
    else a mixed one (12, 20, 24 parts); else the coarsest of ``NEAR`` within TOLERANCE that keeps every
    note at least one step long, or whose step is at most ``MAX_LENGTHEN`` (a shorter note becomes one step)."""
    if (d := _exact(b0, length, times, [p for p in DIVISIONS if p not in MIXED])) is not None:
        return [Cell(b0, length, d)], True
    half = length // 2
    if length % 2 == 0 and half % (WHOLE // 64) == 0:
        mid = b0 + half
        left = _exact(b0, half, [t for t in times if t < mid], DIVISIONS)
        right = _exact(mid, half, [t for t in times if t > mid], DIVISIONS)
        if left is not None and right is not None:
            return [Cell(b0, half, left), Cell(mid, half, right)], True
    if (d := _exact(b0, length, times, MIXED)) is not None:
        return [Cell(b0, length, d)], True
    near = [d for p in NEAR if (d := division(length, p)) is not None] or [
        d for p in DIVISIONS if (d := division(length, p)) is not None]  # a beat of 5/64: 64ths only
    for d in near:
        short_ok = d.unit.ticks <= MAX_LENGTHEN
        if all(abs(_grid_point(b0, length, d.parts, t) - t) <= TOLERANCE for t in times) and (short_ok or all(
                _grid_point(b0, length, d.parts, b) > _grid_point(b0, length, d.parts, a) for a, b in pairs)):
            return [Cell(b0, length, d)], False
    return [Cell(b0, length, next((d for d in near if d.parts == FALLBACK), near[-1]))], False


_STRAIGHT = sorted((NoteValue(v, dot) for v in VALUES for dot in (False, True) if not (dot and v == 64)),
                   key=lambda n: -n.ticks)


def split_straight(length: int) -> list[NoteValue]:
    """Plain and dotted values, longest first, that add up to ``length`` ticks (a multiple of a 64th)."""
    if length <= 0 or length % (WHOLE // 64):
        raise ValueError(f"{length} ticks is not a whole number of 64ths")
    out = []
    for nv in _STRAIGHT:
        while length >= nv.ticks:
            out.append(nv)
            length -= int(nv.ticks)
    return out


def split_steps(steps: int, unit: NoteValue) -> list[NoteValue]:
    """``steps`` steps of ``unit`` (a tuplet value) as values of that tuplet, longest first (1, 2, 3 = dotted 2, 4, 6, ...)."""
    sizes = []
    k = 1
    while unit.value // k >= 1:
        sizes.append((k, NoteValue(unit.value // k, False, unit.tuplet)))
        if k > 1:
            sizes.append((k * 3 // 2, NoteValue(unit.value // k, True, unit.tuplet)))
        k *= 2
    sizes.sort(key=lambda s: -s[0])
    out = []
    for size, nv in sizes:
        while steps >= size:
            out.append(nv)
            steps -= size
    return out
