"""The phrase plan of a song: its bars in its own meter, its phrases and sections, where fills and crashes go.

``song_bars`` lays the song's bars on the roll's grid from its time signatures (3/4 and 6/8 bars are 36
steps, 7/8 bars 42, meter changes included). Phrases are ``PHRASE_BARS`` bars from the song's start;
section starts are the phrase starts where the known parts change most (``sections.section_starts`` on
these bars). ``make_plan`` then decides, with a seeded random draw:

* a fill in the bar before each section start (``PlanConfig.fill_section``) and at other phrase ends
  (``fill_phrase``, about the rate at which drummers end a 4-bar phrase with a fill);
* a crash on the downbeat after each fill and on each section start;
* bars asked for by the caller (``--fills``: ``forced_fills``) always get a fill.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stemfill.pianoroll.grid import STEPS_PER_BEAT

PHRASE_BARS = 4


@dataclass(frozen=True)
class Bar:
    start: int  # first step
    length: int  # steps
    meter: str  # "4/4", "3/4", "6/8" ...


@dataclass
class PlanConfig:
    """How often the planner asks for fills (the rest of the decoder's settings are ``drums.PatternConfig``)."""

    fill_section: float = 0.5  # chance of a fill in the bar before a section start
    fill_phrase: float = 0.08  # ... at the end of any other phrase of PHRASE_BARS bars
    crash_after_fill: float = 0.4  # chance of a crash on the downbeat after a planned fill (asked-for fills: always)
    crash_section: float = 0.2  # chance of a crash on a section start's downbeat (after a fill: always)


@dataclass
class Plan:
    bars: list[Bar]
    phrase_start: np.ndarray  # (n_bars,) bool
    section_start: np.ndarray  # (n_bars,) bool
    fill: np.ndarray  # (n_bars,) bool: the bar ends in a fill
    crash: np.ndarray  # (n_bars,) bool: a crash on the bar's downbeat
    notes: list[str] = field(default_factory=list)  # what the planner could not do, one line each
    constrain_fills: bool = False  # the decoder must follow ``fill`` and ``crash`` (a whole song's plan)
    rest: np.ndarray | None = None  # (n_bars,) bool: the drums rest in these bars (rests.py); None: nowhere
    bound: np.ndarray | None = None  # (n_bars,) bool: bars whose fill or none a request fixes, in every bar of a
    # phrase and by the request's own measure (controls.bar_attributes); None: none


def grid_bars(T: int, bar: int = 4 * STEPS_PER_BEAT) -> list[Bar]:
    """Bars of 4/4 from step 0 (chunks, rolls with no song)."""
    return [Bar(s, min(bar, T - s), "4/4") for s in range(0, T, bar)]


def meter_steps(meter: str) -> int:
    """Steps of one bar of ``meter`` ("4/4" -> 48, "3/4" and "6/8" -> 36, "7/8" -> 42)."""
    num, den = (int(v) for v in meter.split("/"))
    return num * STEPS_PER_BEAT * 4 // den


def song_bars(song, T: int) -> list[Bar]:
    """The song's bars on the roll's grid (``STEPS_PER_BEAT`` steps a quarter note) that start before step T;
    each as long as its meter makes it (the last may reach past T), a bar cut by a meter change as written."""
    starts = song.bar_starts()
    ticks = np.array(starts + [max(song.end, starts[-1] + 1)], dtype=np.float64)
    steps = np.rint(ticks * STEPS_PER_BEAT / song.resolution).astype(np.int64)
    sigs = sorted(song.time_signatures, key=lambda ts: ts.time)
    out = []
    for i, s in enumerate(starts):
        meter = "4/4"
        for ts in sigs:
            if ts.time <= s:
                meter = f"{ts.numerator}/{ts.denominator}"
        a = int(steps[i])
        b = int(steps[i + 1]) if i + 1 < len(starts) else a + meter_steps(meter)
        if a >= T:
            break
        if b > a:
            out.append(Bar(a, b - a, meter))
    return out


def phrase_spans(bars: list[Bar]) -> list[tuple[int, int]]:
    """(first step, end step) of each phrase of PHRASE_BARS bars."""
    spans = []
    for i in range(0, len(bars), PHRASE_BARS):
        last = bars[min(i + PHRASE_BARS, len(bars)) - 1]
        spans.append((bars[i].start, last.start + last.length))
    return spans


def section_mask(bars: list[Bar], roll: np.ndarray, known: np.ndarray, other: np.ndarray | None = None) -> np.ndarray:
    """(n_bars,) bool: the bars where a section starts, as the known parts show (``sections.section_starts`` on
    the song's phrases); none in a song shorter than two phrases."""
    from stemfill.generate.sections import section_starts

    n = len(bars)
    section = np.zeros(n, dtype=bool)
    if n >= 2 * PHRASE_BARS:
        for b in section_starts(roll, known, other, spans=phrase_spans(bars)):
            if 0 < b < n:
                section[b] = True
    return section


def make_plan(bars: list[Bar], roll: np.ndarray | None = None, known: np.ndarray | None = None,
              other: np.ndarray | None = None, cfg: PlanConfig | None = None, rng: np.random.Generator | None = None,
              forced_fills: set[int] | None = None, sections: bool = True, rest_model=None,
              parts: list[np.ndarray] | None = None) -> Plan:
    """The plan for ``bars``. ``roll``/``known``/``other``: what is known of the song, for its section starts
    (``sections=False`` or no roll: phrases only). ``forced_fills``: bars that must end in a fill.
    ``rest_model`` (``rests.RestModel``) and ``parts`` (the song's parts besides the drums, each (P, T): the bass,
    the guitar, the other tracks' sounding plane): the bars where the drums rest, in a whole song (``sections``), with a
    crash where they come in again after 2+ bars of rest (``rest_model.crash_entry`` of the time)."""
    cfg = cfg or PlanConfig()
    rng = rng or np.random.default_rng(0)
    n = len(bars)
    phrase = np.zeros(n, dtype=bool)
    phrase[::PHRASE_BARS] = True
    notes: list[str] = []
    if sections and roll is not None and known is not None:
        section = section_mask(bars, roll, known, other)
    else:
        section = np.zeros(n, dtype=bool)
    # a meter change starts a section too
    for i in range(1, n):
        if bars[i].meter != bars[i - 1].meter:
            section[i] = True
            phrase[i] = True
    fill = np.zeros(n, dtype=bool)
    draw = rng.random(n)
    for i in range(n - 1):
        nxt = i + 1
        if section[nxt]:
            fill[i] = draw[i] < cfg.fill_section
        elif phrase[nxt]:
            fill[i] = draw[i] < cfg.fill_phrase
    forced = np.zeros(n, dtype=bool)
    for b in forced_fills or ():
        if 0 <= b < n:
            forced[b] = True
    fill |= forced
    crash = section & (rng.random(n) < cfg.crash_section)
    after = forced | (fill & (rng.random(n) < float(cfg.crash_after_fill)))
    crash[1:] |= after[:-1]
    rest = None
    if sections and rest_model is not None and parts:
        rest = rest_model.rests(parts, bars)
        fill &= ~rest
        fill[:-1] &= ~rest[1:]  # no fill into a rest either
        crash &= ~rest
        entry = np.zeros(n, dtype=bool)
        entry[2:] = ~rest[2:] & rest[1:-1] & rest[:-2]
        if entry.any():  # (drawn only where the drums come in, so a song without rests plays as without the model)
            crash |= entry & (rng.random(n) < float(rest_model.crash_entry))
    return Plan(bars, phrase, section, fill, crash, notes, constrain_fills=sections, rest=rest)
