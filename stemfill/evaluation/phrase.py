"""Phrase-level measures of whole-song parts: does a drum part mark its phrases the way drummers do, and does
a filled part follow the song's build-ups and breakdowns? (Issue 13, item 2.)

* **Crash on the phrase downbeat**: the share of 4-bar phrase downbeats with a crash, china or splash hit
  within +-1 step.
* **Fill rate**: snare and tom hits (``controls.SNARE_ROWS`` + ``controls.TOM_ROWS``) per beat in the last
  beat of each phrase, against per beat in every other beat; and the share of phrase-ending bars that end
  in a fill as ``controls.bar_attributes`` defines one (toms twice in the last two beats, or three
  snare/tom hits in the last beat: the definition the model's fill control was trained on).
* **Density contour**: Pearson correlation, over the bars of a whole song, of notes a bar (note starts;
  drums: hits) in a filled part and in the real part.
* **Rhythm kept**: of the pairs of successive bars that both start notes, the share whose note-start times
  are the same (any pitch): a player keeps a groove for a while; a part whose bars are decoded on their own
  shifts it from bar to bar.

The grid is the roll's: bars of ``BAR`` = 48 steps (4/4 at 12 steps a beat) and phrases of ``PHRASE_BARS``
bars, both counted from the song's step 0, as the model's windows and the chunks are. A song in another
meter (3/4, 7/8) is measured on that grid, not on its written bars.

``phrase_counts`` returns the counts behind the drum rates, which add up over songs (``PhraseCounts + ...``),
so a set of songs can be pooled; the plain functions give one song's rate. Rates over nothing are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from stemfill.generate.controls import BAR, CRASH_ROWS, SNARE_ROWS, TOM_ROWS, bar_attributes
from stemfill.pianoroll.grid import STEPS_PER_BEAT
from stemfill.song.song import STEMS

PHRASE_BARS = 4
FILL_ROWS = SNARE_ROWS + TOM_ROWS  # snare, side stick, clap; low, mid, high tom
CRASH_TOLERANCE = 1  # steps either side of the downbeat


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


@dataclass
class PhraseCounts:
    """Counts behind the drum phrase rates of one part (or of several, added up)."""
    downbeats: int = 0  # phrase downbeats inside the song
    crash_downbeats: int = 0  # ... with a crash / china / splash within the tolerance
    end_beats: int = 0  # last beats of whole phrases
    end_hits: int = 0  # snare and tom hits in them
    other_beats: int = 0  # every other whole beat
    other_hits: int = 0  # snare and tom hits in them
    end_bars: int = 0  # last bars of whole phrases
    end_bar_fills: int = 0  # ... that end in a fill (controls.bar_attributes)
    other_bars: int = 0  # every other whole bar
    other_bar_fills: int = 0  # ... that end in a fill

    def __add__(self, other: "PhraseCounts") -> "PhraseCounts":
        return PhraseCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def crash_rate(self) -> float:
        """Share of phrase downbeats with a crash."""
        return _ratio(self.crash_downbeats, self.downbeats)

    @property
    def end_hits_per_beat(self) -> float:
        """Snare and tom hits per phrase-ending beat."""
        return _ratio(self.end_hits, self.end_beats)

    @property
    def other_hits_per_beat(self) -> float:
        """Snare and tom hits per beat elsewhere."""
        return _ratio(self.other_hits, self.other_beats)

    @property
    def fill_rate(self) -> float:
        """Snare and tom hits per phrase-ending beat over those per beat elsewhere (1: no more at phrase ends;
        NaN where there are none elsewhere)."""
        return _ratio(self.end_hits_per_beat, self.other_hits_per_beat) if self.end_beats else float("nan")

    @property
    def end_fill_share(self) -> float:
        """Share of phrase-ending bars that end in a fill."""
        return _ratio(self.end_bar_fills, self.end_bars)

    @property
    def other_fill_share(self) -> float:
        """Share of the other bars that end in a fill."""
        return _ratio(self.other_bar_fills, self.other_bars)


def _drums(drums) -> np.ndarray:
    x = np.asarray(drums, dtype=bool)
    if x.ndim != 2:
        raise ValueError(f"expected a drum channel (P, T), got shape {x.shape}")
    return x


def phrase_downbeats(T: int, phrase_bars: int = PHRASE_BARS) -> np.ndarray:
    """Steps of the phrase downbeats inside a song of T steps: bar 0 of every ``phrase_bars`` bars from step 0."""
    return np.arange(0, max(T, 0), phrase_bars * BAR)


def bar_fills(drums) -> np.ndarray:
    """(n_whole_bars,) bool: each whole bar of a drum channel (P, T) ends in a fill, by
    ``controls.bar_attributes``' definition (the one the fill control learns)."""
    import torch

    x = _drums(drums)
    nb = x.shape[1] // BAR
    if nb == 0:
        return np.zeros(0, dtype=bool)
    roll = np.zeros((1, len(STEMS), x.shape[0], nb * BAR), dtype=bool)
    roll[0, STEMS.index("drums")] = x[:, :nb * BAR]
    raw, _ = bar_attributes(torch.from_numpy(roll))
    return raw[("drums", "fill")][0].numpy() > 0


def phrase_counts(drums, phrase_bars: int = PHRASE_BARS, tolerance: int = CRASH_TOLERANCE) -> PhraseCounts:
    """The counts behind a drum part's phrase rates (``PhraseCounts``); drums: one channel (P, T) of hits.

    Downbeats are every phrase's bar 0 inside the song; beats and bars are counted only where they lie
    whole inside it, and a phrase end only where the whole phrase does."""
    x = _drums(drums)
    P, T = x.shape
    c = PhraseCounts()
    down = phrase_downbeats(T, phrase_bars)
    crash = x[list(r for r in CRASH_ROWS if r < P)].any(axis=0)  # (T,)
    c.downbeats = len(down)
    c.crash_downbeats = int(sum(crash[max(0, d - tolerance):d + tolerance + 1].any() for d in down))
    nbeats = T // STEPS_PER_BEAT
    hits = x[list(r for r in FILL_ROWS if r < P), :nbeats * STEPS_PER_BEAT].sum(axis=0)
    per_beat = hits.reshape(nbeats, STEPS_PER_BEAT).sum(axis=1)  # (nbeats,)
    beats_per_phrase = phrase_bars * BAR // STEPS_PER_BEAT
    end_beat = (np.arange(nbeats) + 1) % beats_per_phrase == 0
    c.end_beats, c.end_hits = int(end_beat.sum()), int(per_beat[end_beat].sum())
    c.other_beats, c.other_hits = int((~end_beat).sum()), int(per_beat[~end_beat].sum())
    fills = bar_fills(x)
    end_bar = (np.arange(len(fills)) + 1) % phrase_bars == 0
    c.end_bars, c.end_bar_fills = int(end_bar.sum()), int(fills[end_bar].sum())
    c.other_bars, c.other_bar_fills = int((~end_bar).sum()), int(fills[~end_bar].sum())
    return c


def crash_on_downbeat_rate(drums, phrase_bars: int = PHRASE_BARS, tolerance: int = CRASH_TOLERANCE) -> float:
    """Share of the phrase downbeats of a drum channel (P, T) with a crash, china or splash within
    +-``tolerance`` steps. No downbeat (T = 0): NaN."""
    return phrase_counts(drums, phrase_bars, tolerance).crash_rate


def fill_rate(drums, phrase_bars: int = PHRASE_BARS) -> float:
    """Snare and tom hits per beat in the last beat of each phrase, over the same per beat in every other
    beat (``PhraseCounts.fill_rate``). No whole phrase, or no such hit elsewhere: NaN."""
    return phrase_counts(drums, phrase_bars).fill_rate


def phrase_end_fill_share(drums, phrase_bars: int = PHRASE_BARS) -> float:
    """Share of the phrase-ending bars of a drum channel (P, T) that end in a fill (``bar_fills``). No whole
    phrase: NaN."""
    return phrase_counts(drums, phrase_bars).end_fill_share


def bar_density(x, stem: str) -> np.ndarray:
    """(n_bars,) note starts (drums: hits) in each bar of a channel (P, T); a trailing partial bar counts
    (what it holds)."""
    from stemfill.evaluation.metrics import onsets

    x = np.asarray(x, dtype=bool)
    if x.ndim != 2:
        raise ValueError(f"expected a channel (P, T), got shape {x.shape}")
    per_step = onsets(x, stem).sum(axis=0)
    n = -(-len(per_step) // BAR)
    per_step = np.concatenate([per_step, np.zeros(n * BAR - len(per_step), dtype=per_step.dtype)])
    return per_step.reshape(n, BAR).sum(axis=1)


def density_contour_corr(gen, real, stem: str) -> float:
    """Pearson correlation over the bars of a whole song between the notes a bar of a filled part and of
    the real part, both channels (P, T) of one song. NaN where either is constant (also: fewer than two
    bars), where the correlation is undefined."""
    g, r = bar_density(gen, stem).astype(np.float64), bar_density(real, stem).astype(np.float64)
    if g.shape != r.shape:
        raise ValueError(f"the two parts differ in length: {g.shape[0]} and {r.shape[0]} bars")
    if len(g) < 2 or g.std() == 0 or r.std() == 0:
        return float("nan")
    return float(np.corrcoef(g, r)[0, 1])


def rhythm_repeats(x, stem: str) -> tuple[int, int]:
    """(pairs of successive bars whose note-start times are the same, pairs of successive bars that both start
    notes) of a channel (P, T), on bars of ``BAR`` steps; counts add up over songs."""
    from stemfill.evaluation.metrics import onsets

    x = np.asarray(x, dtype=bool)
    if x.ndim != 2:
        raise ValueError(f"expected a channel (P, T), got shape {x.shape}")
    on = onsets(x, stem).any(axis=0)
    n = len(on) // BAR
    bars = on[:n * BAR].reshape(n, BAR)
    both = bars[1:].any(axis=1) & bars[:-1].any(axis=1)
    same = both & (bars[1:] == bars[:-1]).all(axis=1)
    return int(same.sum()), int(both.sum())
