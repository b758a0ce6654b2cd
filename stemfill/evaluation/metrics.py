"""Metrics for one filled stem: statistics, fit to the context, agreement with the real stem,
and set-level distribution distances. Definitions: docs/evaluation.md.

Every per-roll function takes one channel ``(P, L)`` (returns a float) or a batch
``(B, P, L)`` (returns ``(B,)``). Bars are 4/4: ``BEATS_PER_BAR * steps_per_beat`` steps;
a trailing partial bar counts as a bar (padded with silence) except in groove consistency.
Ratios over an empty set of notes are 0; metrics that compare two things that are both
empty are 1 (F1) ; metrics that need something that is not there are NaN ("undefined")
and are left out of the means (``np.nanmean``) - they never raise.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from stemfill.pianoroll.grid import BEATS_PER_BAR, LOW_NOTE as LOW, STEPS_PER_BEAT
from stemfill.song.song import STEMS

QN_MIN_STEPS = 3  # qualified note: at least 3 steps = a 16th note at 12 steps per beat
PITCHED = ("bass", "guitar")
assert all(v % 12 == 0 for v in LOW.values()), "pitch rows must start on a C so that row % 12 is the pitch class"

STATS = {
    "drums": ("EB", "UPC", "DP", "density", "polyphony", "GC"),
    "bass": ("EB", "UPC", "QN", "density", "polyphony", "range", "GC"),
    "guitar": ("EB", "UPC", "QN", "density", "polyphony", "range", "GC"),
}
# The metrics a model must beat the baselines on (agreement with the real stem).
AGREEMENT = ("agree/onset_F1", "agree/pc_beat_F1", "agree/frame_F1")


# --------------------------------------------------------------------------- helpers


def _batch(x) -> tuple[np.ndarray, bool]:
    x = np.asarray(x, dtype=bool)
    if x.ndim == 2:
        return x[None], True
    if x.ndim != 3:
        raise ValueError(f"expected a channel (P, L) or a batch (B, P, L), got shape {x.shape}")
    return x, False


def _ret(v: np.ndarray, single: bool):
    v = np.asarray(v, dtype=np.float64)
    return float(v[0]) if single else v


def _div(num, den, empty: float = 0.0) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, empty, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def bar_steps(spb: int = STEPS_PER_BEAT) -> int:
    return BEATS_PER_BAR * spb


def _split(x: np.ndarray, size: int) -> np.ndarray:
    """(B, P, L) -> (B, P, n, size), zero-padding the last segment."""
    B, P, L = x.shape
    n = max(1, math.ceil(L / size))
    pad = n * size - L
    if pad:
        x = np.concatenate([x, np.zeros((B, P, pad), dtype=x.dtype)], axis=2)
    return x.reshape(B, P, n, size)


def onsets(x, stem: str) -> np.ndarray:
    """Note starts: drums are onset rolls already; pitched rolls start a note at each run's first step."""
    x = np.asarray(x, dtype=bool)
    if stem == "drums":
        return x
    on = x.copy()
    on[..., 1:] &= ~x[..., :-1]
    return on


def notes(x, stem: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Batch (B, P, L) -> (b, row, start, duration) of every note; drum hits last one step."""
    x, _ = _batch(x)
    if stem == "drums":
        b, r, t = np.nonzero(x)
        return b, r, t, np.ones_like(t)
    d = np.diff(x.astype(np.int8), axis=-1, prepend=0, append=0)
    b, r, t0 = np.nonzero(d == 1)
    _, _, t1 = np.nonzero(d == -1)  # same C order: runs pair up within each (b, row)
    return b, r, t0, t1 - t0


def _pc(x: np.ndarray) -> np.ndarray:
    """(B, P, ...) pitched rows -> (B, 12, ...) any-per-pitch-class."""
    B, P = x.shape[:2]
    pad = (-P) % 12
    if pad:
        x = np.concatenate([x, np.zeros((B, pad) + x.shape[2:], dtype=x.dtype)], axis=1)
    return x.reshape((B, -1, 12) + x.shape[2:]).any(axis=1)


def _lowest_pc(x: np.ndarray) -> np.ndarray:
    """(B, P, n) any -> (B, n) pitch class of the lowest row sounding, -1 where none."""
    has = x.any(axis=1)
    return np.where(has, np.argmax(x, axis=1) % 12, -1)


def f1(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """F1 of two boolean sets per batch item (all axes but the first). Both empty: 1; one empty: 0."""
    p = pred.reshape(len(pred), -1)
    r = ref.reshape(len(ref), -1)
    tp = (p & r).sum(1)
    den = p.sum(1) + r.sum(1)
    return _div(2 * tp, den, empty=1.0)


# --------------------------------------------------------------------------- per-stem statistics


def empty_bar_rate(x, spb: int = STEPS_PER_BEAT):
    """EB: share of bars with no note sounding. An empty roll gives 1."""
    x, one = _batch(x)
    bars = _split(x, bar_steps(spb)).any(axis=(1, 3))  # (B, n)
    return _ret(1.0 - bars.mean(axis=1), one)


def used_pitch_classes(x, stem: str, spb: int = STEPS_PER_BEAT):
    """UPC: pitch classes sounding per bar, averaged over all bars (drums: kit classes hit). Empty: 0."""
    x, one = _batch(x)
    bars = _split(x, bar_steps(spb)).any(axis=3)  # (B, P, n)
    used = bars if stem == "drums" else _pc(bars)
    return _ret(used.sum(axis=1).mean(axis=1), one)


def qualified_note_rate(x, min_steps: int = QN_MIN_STEPS):
    """QN: share of notes at least ``min_steps`` long (pitched). No notes: 0."""
    x, one = _batch(x)
    b, _, _, dur = notes(x, "bass")
    tot = np.bincount(b, minlength=len(x))
    ok = np.bincount(b, weights=dur >= min_steps, minlength=len(x))
    return _ret(_div(ok, tot), one)


def drum_pattern_rate(x, spb: int = STEPS_PER_BEAT):
    """DP: share of drum hits on the 16th-note grid (which holds the 8th grid). No hits: 0."""
    x, one = _batch(x)
    grid = (np.arange(x.shape[-1]) % (spb // 4)) == 0
    return _ret(_div(x[..., grid].sum(axis=(1, 2)), x.sum(axis=(1, 2))), one)


def note_density(x, stem: str, spb: int = STEPS_PER_BEAT):
    """Notes (drums: hits) starting per bar; bars = L / bar length (a fraction for a partial bar)."""
    x, one = _batch(x)
    n = onsets(x, stem).sum(axis=(1, 2))
    return _ret(n / (x.shape[-1] / bar_steps(spb)), one)


def polyphony(x):
    """Mean number of rows on per step, over the steps where any is on (drums: hits per hit step). Empty: 0."""
    x, one = _batch(x)
    on = x.sum(axis=1)
    return _ret(_div(on.sum(axis=1), (on > 0).sum(axis=1)), one)


def pitch_range(x):
    """Highest minus lowest row used, in semitones. Empty: 0."""
    x, one = _batch(x)
    rows = x.any(axis=2)
    has = rows.any(axis=1)
    hi = x.shape[1] - 1 - np.argmax(rows[:, ::-1], axis=1)
    lo = np.argmax(rows, axis=1)
    return _ret(np.where(has, hi - lo, 0), one)


def groove_consistency(x, stem: str, spb: int = STEPS_PER_BEAT):
    """GC (muspy): 1 - mean Hamming distance (as a share of the bar) between consecutive full bars'
    onset patterns (onset times, pitch ignored). Fewer than two full bars: NaN. Silent bars count."""
    x, one = _batch(x)
    bar = bar_steps(spb)
    n = x.shape[-1] // bar
    if n < 2:
        return _ret(np.full(len(x), np.nan), one)
    pat = onsets(x[..., : n * bar], stem).any(axis=1).reshape(len(x), n, bar)
    ham = (pat[:, 1:] != pat[:, :-1]).mean(axis=2)  # (B, n-1)
    return _ret(1.0 - ham.mean(axis=1), one)


def stem_stats(x, stem: str, spb: int = STEPS_PER_BEAT) -> dict[str, np.ndarray]:
    """The statistics of ``STATS[stem]`` for a batch (B, P, L): {name: (B,)}."""
    x, _ = _batch(x)
    f = {
        "EB": lambda: empty_bar_rate(x, spb),
        "UPC": lambda: used_pitch_classes(x, stem, spb),
        "QN": lambda: qualified_note_rate(x),
        "DP": lambda: drum_pattern_rate(x, spb),
        "density": lambda: note_density(x, stem, spb),
        "polyphony": lambda: polyphony(x),
        "range": lambda: pitch_range(x),
        "GC": lambda: groove_consistency(x, stem, spb),
    }
    return {k: np.asarray(f[k](), dtype=np.float64) for k in STATS[stem]}


# --------------------------------------------------------------------------- fit to the context

# Harte, Sandler & Gasser (2006) tonal centroid: fifths, minor thirds, major thirds circles.
_L = np.arange(12)
TONAL_MATRIX = np.stack([
    np.sin(_L * 7 * np.pi / 6), np.cos(_L * 7 * np.pi / 6),
    np.sin(_L * 3 * np.pi / 2), np.cos(_L * 3 * np.pi / 2),
    0.5 * np.sin(_L * 2 * np.pi / 3), 0.5 * np.cos(_L * 2 * np.pi / 3),
])  # (6, 12)


def chroma(x, size: int) -> np.ndarray:
    """(B, P, L) pitched -> (B, n, 12) sounding steps per pitch class in each segment of ``size`` steps."""
    x, _ = _batch(x)
    seg = _split(x, size).sum(axis=3)  # (B, P, n)
    B, P, n = seg.shape
    pad = (-P) % 12
    if pad:
        seg = np.concatenate([seg, np.zeros((B, pad, n), dtype=seg.dtype)], axis=1)
    return seg.reshape(B, -1, 12, n).sum(axis=1).transpose(0, 2, 1).astype(np.float64)


def tonal_centroid(ch: np.ndarray) -> np.ndarray:
    """(..., 12) chroma -> (..., 6) tonal centroid of the L1-normalised chroma (0 for silence)."""
    s = ch.sum(axis=-1, keepdims=True)
    return _div(ch, s) @ TONAL_MATRIX.T


def tonal_distance(a, b, spb: int = STEPS_PER_BEAT):
    """TD (MuseGAN): Euclidean distance between two pitched stems' tonal centroids per bar,
    averaged over bars where both sound. No such bar: NaN."""
    a, one = _batch(a)
    b, _ = _batch(b)
    ca, cb = chroma(a, bar_steps(spb)), chroma(b, bar_steps(spb))
    both = (ca.sum(-1) > 0) & (cb.sum(-1) > 0)
    d = np.linalg.norm(tonal_centroid(ca) - tonal_centroid(cb), axis=-1)
    return _ret(_div((d * both).sum(1), both.sum(1), empty=np.nan), one)


def onset_grid(x, stem: str, spb: int = STEPS_PER_BEAT) -> np.ndarray:
    """(B, P, L) -> (B, n16) whether any note starts in each 16th-note cell."""
    x, _ = _batch(x)
    on = onsets(x, stem).any(axis=1)[:, None]
    return _split(on, spb // 4).any(axis=3)[:, 0]


def onset_f1(a, stem_a: str, b, stem_b: str, spb: int = STEPS_PER_BEAT):
    """F1 of the 16th-note cells where notes start in ``a`` vs ``b`` (pitch ignored)."""
    a, one = _batch(a)
    b, _ = _batch(b)
    return _ret(f1(onset_grid(a, stem_a, spb), onset_grid(b, stem_b, spb)), one)


def context_onset_f1(gen, stem: str, context: dict[str, np.ndarray], spb: int = STEPS_PER_BEAT):
    """F1 of the filled stem's onset cells vs the union of the context stems' onset cells."""
    gen, one = _batch(gen)
    ref = np.zeros(onset_grid(gen, stem, spb).shape, dtype=bool)
    for s, c in context.items():
        ref |= onset_grid(_batch(c)[0], s, spb)
    return _ret(f1(onset_grid(gen, stem, spb), ref), one)


def bass_root_agreement(bass, guitar, spb: int = STEPS_PER_BEAT):
    """Share of beats, among those where both sound, whose lowest bass pitch class equals the
    lowest guitar pitch class (the chord root estimate). No such beat: NaN."""
    bass, one = _batch(bass)
    guitar, _ = _batch(guitar)
    lb = _lowest_pc(_split(bass, spb).any(axis=3))
    lg = _lowest_pc(_split(guitar, spb).any(axis=3))
    both = (lb >= 0) & (lg >= 0)
    return _ret(_div((both & (lb == lg)).sum(1), both.sum(1), empty=np.nan), one)


# --------------------------------------------------------------------------- agreement with the real stem


def pc_beat_f1(gen, real, spb: int = STEPS_PER_BEAT):
    """F1 of the (beat, pitch class) pairs sounding in the filled vs the real pitched stem."""
    gen, one = _batch(gen)
    real, _ = _batch(real)
    g = _pc(_split(gen, spb).any(axis=3))
    r = _pc(_split(real, spb).any(axis=3))
    return _ret(f1(g, r), one)


def pc_beat_f1_any_key(gen, real, spb: int = STEPS_PER_BEAT):
    """``pc_beat_f1`` of the filled stem moved to whichever of the 12 keys agrees best with the real one.

    Not an agreement metric the model must win: with only drums known nothing says which key the song is
    in, so ``pc_beat_f1`` there mostly scores a guessed key. This one scores the part's harmony and
    rhythm up to that guess (a part that hedges over every pitch class gains little from it)."""
    gen, one = _batch(gen)
    real, _ = _batch(real)
    g = _pc(_split(gen, spb).any(axis=3))  # (B, 12, beats)
    r = _pc(_split(real, spb).any(axis=3))
    best = np.max([f1(np.roll(g, s, axis=1), r) for s in range(12)], axis=0)
    return _ret(best, one)


def frame_f1(gen, real):
    """F1 of the exact (row, step) cells on (drums: hits)."""
    gen, one = _batch(gen)
    real, _ = _batch(real)
    return _ret(f1(gen, real), one)


# --------------------------------------------------------------------------- one filled stem, all metrics


def score_stem(out: np.ndarray, truth: np.ndarray, c: int, spb: int = STEPS_PER_BEAT) -> dict[str, np.ndarray]:
    """All per-chunk metrics of channel ``c`` of filled rolls ``out`` (B, 3, P, L) against ``truth``.

    Returns {key: (B,)}: ``stat/<S>/gen``, ``stat/<S>/real``, ``stat/<S>/absdiff``; ``fit/...``
    (against the other channels of ``out``: the known ones are real, missing ones generated);
    ``agree/...``. Keys that do not apply to the stem are absent.
    """
    stem = STEMS[c]
    gen, real = out[:, c], truth[:, c]
    res: dict[str, np.ndarray] = {}
    sg, sr = stem_stats(gen, stem, spb), stem_stats(real, stem, spb)
    for k in sg:
        res[f"stat/{k}/gen"], res[f"stat/{k}/real"] = sg[k], sr[k]
        res[f"stat/{k}/absdiff"] = np.abs(sg[k] - sr[k])
    others = {STEMS[i]: out[:, i] for i in range(len(STEMS)) if i != c}
    if stem in PITCHED:
        other = "guitar" if stem == "bass" else "bass"
        res["fit/TD"] = tonal_distance(gen, others[other], spb)
        bass, gtr = (gen, others["guitar"]) if stem == "bass" else (others["bass"], gen)
        res["fit/root_agree"] = bass_root_agreement(bass, gtr, spb)
    res["fit/onset_F1_context"] = context_onset_f1(gen, stem, others, spb)
    mix_on = np.stack([onsets(out[:, i], s).any(axis=1) for i, s in enumerate(STEMS)], 1)  # (B, 3, L)
    res["fit/groove_mix"] = groove_consistency(mix_on, "drums", spb)
    res["agree/onset_F1"] = onset_f1(gen, stem, real, stem, spb)
    if stem in PITCHED:
        res["agree/pc_beat_F1"] = pc_beat_f1(gen, real, spb)
        res["keyfree/pc_beat_F1"] = pc_beat_f1_any_key(gen, real, spb)
    res["agree/frame_F1"] = frame_f1(gen, real)
    return res


def note_values(x, stem: str) -> dict[str, np.ndarray]:
    """Values pooled for the distribution metrics: pitch (MIDI; drums: kit class index),
    duration in steps (pitched only), inter-onset interval in steps (distinct onset times)."""
    x, _ = _batch(x)
    b, r, t, d = notes(x, stem)
    out = {"pitch": (r + LOW.get(stem, 0)).astype(np.float64)}
    if stem in PITCHED:
        out["duration"] = d.astype(np.float64)
    bt, tt = np.nonzero(onsets(x, stem).any(axis=1))  # sorted by (b, t)
    gap = np.diff(tt)
    out["ioi"] = gap[bt[1:] == bt[:-1]].astype(np.float64)
    return out


# --------------------------------------------------------------------------- distribution level

OA_GRID = {"pitch": np.linspace(0, 128, 513), "duration": np.linspace(0, 96, 385), "ioi": np.linspace(0, 96, 385)}
_MIN_BW = 0.5  # kernel width used when the sample has no spread
_trapz = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz


def _kde(v: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian KDE of v on grid: scipy's ``gaussian_kde`` bandwidth (Scott's rule), evaluated
    over the distinct values with their counts (same result, much faster for note data)."""
    from scipy.stats import gaussian_kde

    v = np.clip(v, grid[0], grid[-1])
    sigma = _MIN_BW  # degenerate sample (one value, or all equal): a fixed narrow kernel
    if len(v) >= 2 and np.std(v) > 0:
        try:
            sigma = float(np.sqrt(gaussian_kde(v).covariance[0, 0]))
        except (np.linalg.LinAlgError, ValueError):
            pass
    u, c = np.unique(v, return_counts=True)
    k = np.exp(-0.5 * ((grid[:, None] - u[None]) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    return k @ (c / c.sum())


def overlap_area(a, b, grid: np.ndarray) -> float:
    """OA (mgeval): area under min(KDE_a, KDE_b) on ``grid`` (trapezoid), each KDE renormalised to 1 on
    the grid. Both empty: 1; one empty: 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        return 1.0 if len(a) == len(b) else 0.0
    pa, pb = _kde(a, grid), _kde(b, grid)
    pa, pb = pa / _trapz(pa, grid), pb / _trapz(pb, grid)
    return float(np.clip(_trapz(np.minimum(pa, pb), grid), 0.0, 1.0))


def frechet_distance(x: np.ndarray, y: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to feature sets x (N, D) and y (M, D), after
    standardising both with y's (the real set's) mean and std (std 0 -> 1). NaN features -> 0.
    Fewer than two rows: covariance 0. A singular product gets ``eps`` on the diagonal."""
    x, y = np.nan_to_num(np.atleast_2d(x).astype(np.float64)), np.nan_to_num(np.atleast_2d(y).astype(np.float64))
    if len(x) == 0 or len(y) == 0:
        return float("nan")
    mu, sd = y.mean(0), y.std(0)
    sd[sd == 0] = 1.0
    x, y = (x - mu) / sd, (y - mu) / sd

    def cov(z):
        return np.atleast_2d(np.cov(z, rowvar=False)) if len(z) > 1 else np.zeros((z.shape[1], z.shape[1]))

    from scipy import linalg

    m1, m2, s1, s2 = x.mean(0), y.mean(0), cov(x), cov(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singular products are handled below
        covmean = linalg.sqrtm(s1 @ s2)
        if not np.all(np.isfinite(covmean)):
            off = np.eye(len(s1)) * eps
            covmean = linalg.sqrtm((s1 + off) @ (s2 + off))
    covmean = np.real(covmean)
    d = float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    return max(d, 0.0)


# --------------------------------------------------------------------------- Note-F1 as USMA defines it

USMA_SEGMENT = 4 * BEATS_PER_BAR * STEPS_PER_BEAT  # 192 steps: the 4-bar segment USMA scores


def _usma_cells(on: np.ndarray, spb: int) -> np.ndarray:
    """Onsets (B, P, L) -> (B, P, n16) note starts per (pitch row, 16th-note cell); a start at step s falls
    in cell s // (spb / 4), rounded down as smg-metrics does (onset tick // ticks per 16th)."""
    return _split(on, spb // 4).sum(axis=3)


def _usma_f1(g: np.ndarray, r: np.ndarray) -> np.ndarray:
    """(B, P, n) per-key note counts of the two sides -> (B,) F1 of their one-to-one matching. A key
    matches min(count_gen, count_real) times, so F1 = 2 * matches / (notes_gen + notes_real); a side
    without notes gives 0."""
    m = np.minimum(g, r).sum(axis=(1, 2))
    ng, nr = g.sum(axis=(1, 2)), r.sum(axis=(1, 2))
    return np.where((ng > 0) & (nr > 0), _div(2 * m, ng + nr), 0.0)


def note_f1_usma(gen, real, stem: str, spb: int = STEPS_PER_BEAT):
    """Note-F1 of a filled stem against the real one as USMA (Ou et al., NeurIPS 2025, appendix C.1)
    defines it, and as the ``smg-metrics`` package (5.4.3, ``smg_metrics.note_f1``) computes it from MIDI:
    each note start is quantised down to its 16th-note cell and keyed with its exact pitch (drums: the kit
    class, the roll's row); the notes of the two sides are matched one to one on equal keys; P = matches /
    notes filled, R = matches / notes real, F1 = 2PR / (P + R). Either side without notes: 0, as in
    smg-metrics. Durations do not count.

    Implemented here rather than imported: smg-metrics is a 28 MB wheel (chord-model weights) that pulls
    in muspy and miditoolkit for this one count. Its ``compute_all`` on MIDI files written from random drum
    and bass rolls gave the same values as this function (checked once by hand with smg-metrics 5.4.3; it is
    no test dependency, and tests/test_phrase.py checks hand-counted cases instead). Per 4-bar segment, as USMA
    reports it: ``note_f1_usma_segments``."""
    gen, one = _batch(gen)
    real, _ = _batch(real)
    g = _usma_cells(onsets(gen, stem), spb)
    r = _usma_cells(onsets(real, stem), spb)
    return _ret(_usma_f1(g, r), one)


def note_f1_usma_segments(gen, real, stem: str, seg: int = USMA_SEGMENT, spb: int = STEPS_PER_BEAT) -> np.ndarray:
    """``note_f1_usma`` of each ``seg``-step segment (4 bars) of two whole-song channels (P, T), counted
    from step 0 (a trailing partial segment counts, padded with silence). Note starts are found on the
    whole song first, so a note held across a segment boundary starts only once. Returns (n_segments,);
    NaN where the real segment has no note start (nothing to match against: USMA scores segments that
    have the target part), so ``np.nanmean`` of it is USMA's segment average."""
    gen = np.asarray(gen, dtype=bool)
    real = np.asarray(real, dtype=bool)
    if gen.ndim != 2 or gen.shape != real.shape:
        raise ValueError(f"expected two channels (P, T) of one shape, got {gen.shape} and {real.shape}")

    def per_segment(x):  # (P, T) -> (n_seg, P, seg) onsets
        on = _split(onsets(x, stem)[None], seg)[0]  # (P, n, seg)
        return on.transpose(1, 0, 2)

    g, r = per_segment(gen), per_segment(real)
    f = _usma_f1(_usma_cells(g, spb), _usma_cells(r, spb))
    return np.where(r.any(axis=(1, 2)), f, np.nan)
