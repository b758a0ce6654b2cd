"""Where a song's sections change, from what is known of it: the phrase starts where the harmony, the
density or the register of the known parts (the stems kept and the other tracks' context) changes most.

Phrases are ``PHRASE_BARS`` bars of ``controls.BAR`` steps from the song's first step (the grid the
controls and the phrase metrics count on). Per phrase: a pitch-class histogram of the sounding pitched
cells, the onsets a bar (log), and the mean sounding row. The *novelty* of a phrase start is how far
these move from the phrase before (half the L1 distance of the histograms, in [0, 1], plus the change
of log density, plus the register change in octaves). ``section_starts`` keeps the phrase starts whose
novelty is at least ``min_novelty`` and among the song's top ``share``: a drummer's fill goes in the bar
before each (``fill_bars``).
"""

from __future__ import annotations

import numpy as np

from stemfill.generate.controls import BAR

PHRASE_BARS = 4
SHARE = 0.25  # at most this share of a song's phrase starts are section starts
MIN_NOVELTY = 0.5  # ... and only where the known parts change at least this much


def phrase_features(roll: np.ndarray, known: np.ndarray, other: np.ndarray | None,
                    spans: list[tuple[int, int]] | None = None) -> np.ndarray:
    """(n_phrases, 14) per phrase: pitch-class histogram (12, summing to 1 where anything sounds), log
    onsets a bar, mean sounding row / 12. roll (3, P, T) bool; known (3, T) or (3, P, T) bool; other: the
    context planes (2, P, T: sounding, onset) or None. Drums count for density only. ``spans``: the phrases'
    (start, end) steps where the song's bars are not 4/4 from step 0 (``generate.plan.phrase_spans``)."""
    C, P, T = roll.shape
    kn = np.broadcast_to(known[:, None, :] if known.ndim == 2 else known, roll.shape)
    x = roll & kn
    pitched = [x[1], x[2]] + ([other[0] > 0] if other is not None else [])
    onsets = [x[0]] + [p & ~np.pad(p, ((0, 0), (1, 0)))[:, :-1] for p in pitched[:2]]
    if other is not None:
        onsets.append(other[1] > 0)
    sounding = np.stack(pitched).sum(0)  # (P, T)
    starts = np.stack(onsets).sum((0, 1))  # (T,)
    span = PHRASE_BARS * BAR
    if spans is None:
        spans = [(k * span, min(T, (k + 1) * span)) for k in range(max(1, -(-T // span)))]
    n = len(spans)
    feats = np.zeros((n, 14))
    rows = np.arange(P)
    for k, (a, e) in enumerate(spans):
        s = sounding[:, a:e]
        per_row = s.sum(1).astype(float)
        hist = np.bincount(rows % 12, weights=per_row, minlength=12)
        total = hist.sum()
        if total > 0:
            feats[k, :12] = hist / total
            feats[k, 13] = (per_row * rows).sum() / total / 12.0
        bars = max(1.0, (min(e, T) - a) / (span / PHRASE_BARS))
        feats[k, 12] = np.log1p(starts[a:e].sum() / bars)
    return feats


def novelty(feats: np.ndarray) -> np.ndarray:
    """(n_phrases,) how much the known parts change at each phrase start (0 for the first)."""
    out = np.zeros(len(feats))
    if len(feats) < 2:
        return out
    a, b = feats[:-1], feats[1:]
    out[1:] = 0.5 * np.abs(b[:, :12] - a[:, :12]).sum(1) + np.abs(b[:, 12] - a[:, 12]) + np.abs(b[:, 13] - a[:, 13])
    return out


def section_starts(roll: np.ndarray, known: np.ndarray, other: np.ndarray | None = None, share: float = SHARE,
                   min_novelty: float = MIN_NOVELTY, spans: list[tuple[int, int]] | None = None) -> list[int]:
    """The song bars (0-based) where a section starts: phrase starts with novelty >= ``min_novelty`` among
    the song's top ``share`` of phrase starts (ties kept). ``spans``: as ``phrase_features``."""
    nov = novelty(phrase_features(roll, known, other, spans))
    if len(nov) < 2:
        return []
    k = max(1, int(round(share * (len(nov) - 1))))
    cut = max(min_novelty, np.sort(nov[1:])[::-1][k - 1])
    return [int(i) * PHRASE_BARS for i in np.flatnonzero(nov >= cut) if i > 0]


def fill_bars(roll: np.ndarray, known: np.ndarray, other: np.ndarray | None = None, **kw) -> list[int]:
    """The song bars that should end in a drum fill: the bar before each section start."""
    return [b - 1 for b in section_starts(roll, known, other, **kw)]
