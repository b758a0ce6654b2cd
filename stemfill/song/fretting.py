"""Strings and frets for a part that has none: the fingering a player would choose.

``fret_notes(notes, tuning)`` puts every note of a bass or guitar part on a string, and
``choose_tuning(pitches, stem)`` picks the instrument for its range. The Guitar Pro writer
uses both for parts that come without a tab (stemfill's added parts, MIDI tracks); tracks
read from a tab keep their own strings and frets.

The model
---------
Notes that start together are a *shape*: one note per string, higher pitches on higher
strings, the fretted notes within ``MAX_SPAN`` frets (lowest to highest fret: 4, a stretch
over five frets) and at most three of them above the lowest fret (the index finger can bar
that one). The fretting hand sits at a *position* p (the index finger's fret) and reaches
frets p .. p + 3 (p + 4 as a stretch); open strings sound from any position. A dynamic
programme (Viterbi) over (shape, position) for each onset in turn finds the cheapest path:

* moving the hand costs ``SHIFT`` plus ``SHIFT_PER_FRET`` per fret (half as much after a rest
  of a beat or more: there is time to move);
* high positions cost a little (``HEIGHT`` per fret, more above the 12th), so a part sits low on
  the neck and low notes go on low strings; in a line, an open string costs slightly more than
  a stopped one (``OPEN_LOW``), so it is taken where it saves a shift or a stretch; in a chord
  in the first five positions it costs nothing (open chords); above, ``OPEN_HIGH``. These weights are the ones under which the real tabs in
  ../shared/data/guitarpro come out closest to what their tabbers wrote (``bench/fretting.py``);
* a string still sounding from an earlier note may not be reused without cutting that note
  (``CUT``), so held notes keep ringing.

What cannot be played
---------------------
A pitch below the lowest open string or above the top fret moves by octaves onto the neck (the
tuning is chosen for the part's range, so this is rare: bass below A0, guitar below A1). A shape
that fits on no set of strings within the span loses the fewest notes: octave doublings first,
then inner notes; the lowest and the highest note go last. We drop rather than move notes by an
octave because every note that is written then keeps the pitch the model (or the file) gave it;
``Fretting.dropped`` and ``Fretting.moved`` count both.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from stemfill.song.song import RESOLUTION, Note

MAX_FRET = 24
MAX_SPAN = 4  # fretted notes of one shape: highest fret - lowest fret
HAND = 3  # frets p .. p + HAND without a stretch
MAX_ABOVE_INDEX = 3  # stopped notes above the index finger's fret in one shape (three fingers)
SHIFT, SHIFT_PER_FRET = 1.0, 0.25
HEIGHT, HEIGHT_HIGH = 0.03, 0.15  # per fret of the hand's position; per fret above 12
STRETCH = 0.8
OPEN_LOW, OPEN_HIGH = 0.1, 0.3  # an open string in positions 1-5 / above (bench/fretting.py: closest to tabbers)
CUT = 10.0

# tunings, string 1 (highest) first, in the order tried: the first that holds the part's range
BASS_TUNINGS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("4-string E A D G", (43, 38, 33, 28)),
    ("4-string drop D", (43, 38, 33, 26)),
    ("5-string B E A D G", (43, 38, 33, 28, 23)),
    ("5-string drop A", (43, 38, 33, 28, 21)),
    ("6-string B E A D G C", (48, 43, 38, 33, 28, 23)),
)
GUITAR_TUNINGS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("standard E A D G B E", (64, 59, 55, 50, 45, 40)),
    ("drop D", (64, 59, 55, 50, 45, 38)),
    ("drop C", (62, 57, 53, 48, 43, 36)),
    ("7-string B", (64, 59, 55, 50, 45, 40, 35)),
    ("7-string drop A", (64, 59, 55, 50, 45, 40, 33)),
)
MAX_STRINGS = 7


def tuning_name(tuning: Sequence[int]) -> str:
    for name, t in BASS_TUNINGS + GUITAR_TUNINGS:
        if tuple(tuning) == t:
            return name
    return " ".join(str(p) for p in tuning)


def choose_tuning(pitches: Sequence[int], stem: str, max_fret: int = MAX_FRET) -> tuple[int, ...]:
    """A tuning for a part of these pitches: the first of the stem's list that holds them all.

    Bass: 4-string E, drop D, 5-string B, 5-string drop A, 6-string B..C. Guitar (and any other
    stem that fits on one): standard, drop D, drop C, 7-string B, 7-string drop A. If none holds
    the range: a bass or guitar takes the one that holds the most notes (the rest move by
    octaves); another part (a piano, a flute written as tab) gets seven strings spread to hold
    its whole range, so its pitches survive the tab.
    """
    if not len(pitches):
        return (BASS_TUNINGS if stem == "bass" else GUITAR_TUNINGS)[0][1]
    lo, hi = min(pitches), max(pitches)
    options = [t for _, t in (BASS_TUNINGS if stem == "bass" else GUITAR_TUNINGS)]
    for t in options:
        if min(t) <= lo and hi <= max(t) + max_fret:
            return t
    if stem in ("bass", "guitar"):
        return max(options, key=lambda t: sum(min(t) <= p <= max(t) + max_fret for p in pitches))
    step = max(5, -(-(hi - lo - max_fret) // (MAX_STRINGS - 1)))
    return tuple(lo + step * k for k in range(MAX_STRINGS - 1, -1, -1))


@dataclass
class Fretting:
    notes: list[Note]  # with string and fret, sorted by start then pitch
    dropped: list[Note] = field(default_factory=list)  # did not fit a shape
    moved: list[tuple[Note, int]] = field(default_factory=list)  # (note as given, pitch written): off the neck
    merged: int = 0  # notes that repeated another's start and pitch


@dataclass
class _Shape:
    notes: list[Note]
    strings: tuple[int, ...]  # index into the low-to-high string order, per note
    frets: tuple[int, ...]


def fret_notes(notes: Sequence[Note], tuning: Sequence[int], max_fret: int = MAX_FRET,
               beat: int = RESOLUTION, hand: bool = True) -> Fretting:
    """Strings (1 = highest) and frets for ``notes`` on an instrument tuned ``tuning`` (string 1 first).

    Notes keep start, duration, pitch and velocity, except those moved by octaves onto the neck
    (``moved``) and those dropped from shapes that no hand can hold (``dropped``); see the module.
    ``beat``: ticks per quarter note (a rest this long makes a hand shift cheaper). ``hand=False``
    (a piano or a pad written as tab): one note per string is the only limit on a shape.
    """
    tuning = tuple(int(p) for p in tuning)
    if not tuning:
        raise ValueError("fret_notes needs a tuning with at least one string")
    order = sorted(range(len(tuning)), key=lambda s: (tuning[s], -s))  # string indices, lowest open pitch first
    opens = [tuning[s] for s in order]
    low, high = min(tuning), max(tuning) + max_fret
    out = Fretting(notes=[])
    groups: dict[int, dict[int, Note]] = {}
    for n in notes:
        p = n.pitch
        while p < low:
            p += 12
        while p > high:
            p -= 12
        if p != n.pitch:
            out.moved.append((n, p))
            n = replace(n, pitch=p)
        g = groups.setdefault(n.start, {})
        if p in g:
            out.merged += 1
            if n.duration <= g[p].duration:
                continue
        g[p] = n
    starts = sorted(groups)
    shapes: list[list[_Shape]] = []
    for t in starts:
        chord = sorted(groups[t].values(), key=lambda n: n.pitch)
        cands = _shapes(chord, opens, max_fret, hand)
        if not cands:
            keep = _fewest_dropped(chord, opens, max_fret, hand)
            out.dropped.extend(n for n in chord if n not in keep)
            chord = keep
            cands = _shapes(chord, opens, max_fret, hand)
        shapes.append(cands)
    path = _viterbi(starts, shapes, len(tuning), max_fret, beat, hand)
    for shape in path:
        for n, s, f in zip(shape.notes, shape.strings, shape.frets):
            out.notes.append(replace(n, string=order[s] + 1, fret=f))
    out.notes.sort(key=lambda n: (n.start, n.pitch))
    return out


def _shapes(chord: list[Note], opens: list[int], max_fret: int, hand: bool = True) -> list[_Shape]:
    """Every playable shape: ascending pitches on ascending strings, span and fingers within reach."""
    out = []
    for strings in itertools.combinations(range(len(opens)), len(chord)):
        frets = tuple(n.pitch - opens[s] for n, s in zip(chord, strings))
        if all(0 <= f <= max_fret for f in frets) and (not hand or _reachable(frets)):
            out.append(_Shape(chord, strings, frets))
    return out


def _reachable(frets: Sequence[int]) -> bool:
    stopped = [f for f in frets if f > 0]
    if not stopped:
        return True
    lo = min(stopped)
    return max(stopped) - lo <= MAX_SPAN and sum(f > lo for f in stopped) <= MAX_ABOVE_INDEX


def _fewest_dropped(chord: list[Note], opens: list[int], max_fret: int, hand: bool) -> list[Note]:
    """The largest playable subset of ``chord``; among equals the one that drops doublings, then inner notes."""
    k = len(chord)
    for size in range(min(k, len(opens)), 0, -1):
        best, best_cost = None, None
        for keep in itertools.combinations(range(k), size):
            if not _shapes([chord[i] for i in keep], opens, max_fret, hand):
                continue
            kept_pc = {chord[i].pitch % 12 for i in keep}
            cost = 0
            for i in set(range(k)) - set(keep):
                cost += 4 if i == 0 else 3 if i == k - 1 else 1 if chord[i].pitch % 12 in kept_pc else 2
            if best_cost is None or cost < best_cost:
                best, best_cost = keep, cost
        if best is not None:
            return [chord[i] for i in best]
    return []


def _viterbi(starts: list[int], shapes: list[list[_Shape]], n_strings: int, max_fret: int,
             beat: int, hand: bool = True) -> list[_Shape]:
    """The cheapest (shape, position) path; one shape per onset (onsets with no shape are skipped)."""
    top = max(1, max_fret - HAND)
    positions = np.arange(1, top + 1)
    cost = None  # per state of the previous onset
    prev_pos = prev_ends = None
    prev_end_all = None
    back: list[tuple[np.ndarray, list[_Shape], np.ndarray]] = []  # (best previous state, shapes, shape index per state)
    for t, cands in zip(starts, shapes):
        if not cands:
            continue
        st_shape, st_pos, local = [], [], []
        masks, ends = [], []
        for j, sh in enumerate(cands):
            stopped = [f for f in sh.frets if f > 0]
            if stopped:
                lo, hi = min(stopped), max(stopped)
                ps = range(max(1, hi - HAND - 1), min(lo, top) + 1) if hand else [min(lo, top)]
            else:
                ps = positions
            n_open = sum(f == 0 for f in sh.frets)
            mask = np.zeros(n_strings, dtype=bool)
            end = np.zeros(n_strings, dtype=np.int64)
            for n, s in zip(sh.notes, sh.strings):
                mask[s] = True
                end[s] = n.end
            for p in ps:
                c = HEIGHT * (p - 1) + HEIGHT_HIGH * max(0, max(sh.frets) - 12)
                if stopped and max(stopped) > p + HAND:
                    c += STRETCH
                if len(sh.frets) == 1 or p > 5:  # a chord's open strings are its open shape: no cost
                    c += n_open * (OPEN_LOW if p <= 5 else OPEN_HIGH)
                st_shape.append(j)
                st_pos.append(int(p))
                local.append(c)
                masks.append(mask)
                ends.append(end)
        st_pos_a = np.array(st_pos)
        local_a = np.array(local)
        mask_a = np.array(masks)
        end_a = np.array(ends)
        if cost is None:
            total = local_a
            best_prev = np.zeros(len(st_pos), dtype=np.int64)
            new_ends = np.where(mask_a, end_a, 0)
        else:
            rest = prev_end_all is not None and t - prev_end_all >= beat
            dp = np.abs(prev_pos[:, None] - st_pos_a[None, :])
            move = np.where(dp > 0, SHIFT + SHIFT_PER_FRET * dp, 0.0) * (0.5 if rest else 1.0)
            held = prev_ends > t  # (S_prev, strings)
            clash = held.astype(np.int64) @ mask_a.T.astype(np.int64)
            trans = cost[:, None] + move + CUT * clash
            best_prev = np.argmin(trans, axis=0)
            total = trans[best_prev, np.arange(len(st_pos))] + local_a
            new_ends = np.where(mask_a, end_a, prev_ends[best_prev])
        back.append((best_prev, cands, np.array(st_shape)))
        cost, prev_pos, prev_ends = total, st_pos_a, new_ends
        chord_end = max(n.end for n in cands[0].notes)
        prev_end_all = chord_end if prev_end_all is None else max(prev_end_all, chord_end)
    if cost is None:
        return []
    path = []
    state = int(np.argmin(cost))
    for best_prev, cands, st_shape in reversed(back):
        path.append(cands[st_shape[state]])
        state = int(best_prev[state])
    return path[::-1]
