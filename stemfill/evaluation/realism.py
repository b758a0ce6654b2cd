"""Realism: can a small classifier tell filled stems from real ones? (a classifier two-sample test)

``segment_features`` turns one stem of each chunk (its 4-bar segment, seen within its chunk) into
plain numbers: where in the bar its notes start, how many, which drum classes, the intervals,
lengths, chord sizes and register of a pitched part, and how it lines up with the rest of the chunk.
``two_sample_accuracy`` trains a logistic regression (or gradient boosting) to tell real from filled
feature rows, cross-validated with folds grouped by song, and returns the held-out accuracy: 0.5 =
the classifier cannot tell them apart, 1.0 = it always can. ``telltales`` gives the statistics that
most often give a filled part away (drum-class shares of hits, repeated pitches and interval sizes,
notes per onset, notes a bar). Definitions: docs/evaluation.md ("Realism").

Rolls are bool: a chunk (3, P, L) or a batch (B, 3, P, L), one stem's channel (P, L) or (B, P, L);
drums are onset rolls with kit-class rows (``roll.DRUM_KIT``), bass and guitar frame rolls whose row
``% 12`` is the pitch class (both start on a C, as do the context planes).
"""

from __future__ import annotations

import numpy as np

from stemfill.evaluation import metrics as M
from stemfill.pianoroll.grid import CONTEXT_PLANES, STEPS_PER_BEAT
from stemfill.pianoroll.roll import DRUM_KIT
from stemfill.song.song import STEMS

_KIT = [name for name, _, _ in DRUM_KIT]
# Drum-class groups (rows of DRUM_KIT) whose shares of all hits the tell-tales report.
DRUM_GROUPS = {
    "toms": tuple(_KIT.index(n) for n in ("low tom", "mid tom", "high tom")),
    "cymbals": tuple(_KIT.index(n) for n in ("crash", "ride", "ride bell", "china", "splash")),
    "hihats": tuple(_KIT.index(n) for n in ("closed hi-hat", "pedal hi-hat", "open hi-hat")),
}
TELLTALES = {
    "drums": ("toms", "cymbals", "hihats", "notes_per_bar"),
    "bass": ("repeat_rate", "median_interval", "notes_per_onset", "notes_per_bar"),
    "guitar": ("repeat_rate", "median_interval", "notes_per_onset", "notes_per_bar"),
}
# Bins of |interval| in semitones between successive notes: 0..7 each, 8-11, the octave, beyond.
INTERVAL_EDGES = (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 13)
# Bins of note length in steps (12 a beat): <16th, <8th, <dotted 8th, <beat, <1.5 beats, <2 beats, <bar, longer.
DURATION_EDGES = (1, 3, 6, 9, 12, 18, 24, 48)
CLASSIFIERS = ("logistic", "boosting")


def _batch_chunks(rolls) -> np.ndarray:
    x = np.asarray(rolls, dtype=bool)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"expected a chunk (3, P, L) or a batch (B, 3, P, L), got shape {x.shape}")
    return x


def _hist(b: np.ndarray, v: np.ndarray, edges, n: int) -> np.ndarray:
    """(n, len(edges)) share of the values v of item b in each bin [edges[i], edges[i+1]) (last: open);
    an item with no values has zeros."""
    k = len(edges)
    idx = np.searchsorted(np.asarray(edges), v, side="right") - 1
    ok = idx >= 0
    h = np.bincount(b[ok] * k + idx[ok], minlength=n * k).reshape(n, k).astype(np.float64)
    return M._div(h, h.sum(axis=1, keepdims=True))


def _onset_times(x: np.ndarray, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """(b, t) of every distinct onset time of a channel batch (B, P, L), sorted by (b, t)."""
    return np.nonzero(M.onsets(x, stem).any(axis=1))


def _lines(x: np.ndarray, stem: str):
    """Per onset time of a pitched channel batch: (b, t, lowest row starting there, notes starting there),
    sorted by (b, t); the lowest notes in time order are the 'successive notes' the intervals are taken over."""
    b, r, t, _ = M.notes(x, stem)
    order = np.lexsort((r, t, b))
    b, r, t = b[order], r[order], t[order]
    first = np.ones(len(b), dtype=bool)
    first[1:] = (b[1:] != b[:-1]) | (t[1:] != t[:-1])
    starts = np.flatnonzero(first)
    count = np.diff(np.append(starts, len(b)))
    return b[starts], t[starts], r[starts], count


def _intervals(x: np.ndarray, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """(b, |interval| in semitones) between the lowest notes of successive onset times within each item."""
    b, _, low, _ = _lines(x, stem)
    same = b[1:] == b[:-1]
    return b[1:][same], np.abs(np.diff(low))[same]


def _rest_onsets(rolls: np.ndarray, c: int, other: np.ndarray | None) -> np.ndarray:
    """(B, L) whether anything else in the chunk starts a note at each step: the other stems, and the
    context's onset plane where there is one."""
    on = np.zeros((rolls.shape[0], rolls.shape[-1]), dtype=bool)
    for i, s in enumerate(STEMS):
        if i != c:
            on |= M.onsets(rolls[:, i], s).any(axis=1)
    if other is not None:
        on |= np.asarray(other, dtype=bool)[:, CONTEXT_PLANES.index("onset")].any(axis=1)
    return on


def _rest_pitch_classes(rolls: np.ndarray, c: int, other: np.ndarray | None) -> np.ndarray:
    """(B, 12, L) pitch classes the rest of the chunk sounds at each step: the other pitched stem(s) and
    the context's sounding plane."""
    B, L = rolls.shape[0], rolls.shape[-1]
    pc = np.zeros((B, 12, L), dtype=bool)
    for i, s in enumerate(STEMS):
        if i != c and s in M.PITCHED:
            pc |= M._pc(rolls[:, i])
    if other is not None:
        pc |= M._pc(np.asarray(other, dtype=bool)[:, CONTEXT_PLANES.index("sounding")])
    return pc


def feature_names(stem: str, steps_per_beat: int = STEPS_PER_BEAT) -> list[str]:
    """Names of the columns ``segment_features`` returns for ``stem``."""
    names = [f"pos/{i}" for i in range(M.bar_steps(steps_per_beat))]
    names += ["density", "onset_times", "empty_bars", "co_onset", "groove", "bar_repeat", "rows_used"]
    if stem == "drums":
        names += [f"kit/{k}" for k in _KIT] + ["hits_per_onset"]
    else:
        names += [f"interval/{e}" for e in INTERVAL_EDGES] + [f"duration/{e}" for e in DURATION_EDGES]
        names += ["log2_duration", "notes_per_onset", "register_mean", "register_low", "register_high",
                  "pitch_classes", "pc_in_rest"]
    return names


def segment_features(rolls, c: int, steps_per_beat: int = STEPS_PER_BEAT, other=None) -> np.ndarray:
    """(B, D) features of channel ``c`` of chunks ``rolls`` (B, 3, P, L); ``other``: the chunks' context
    planes (B, 2, P, L: sounding, onset) or None. Columns as ``feature_names``:

    * ``pos/i``: share of the stem's onset times at step i of the bar (4/4, ``steps_per_beat`` a beat);
    * ``density`` notes (drum hits) a bar, ``onset_times`` distinct onset times a bar, ``empty_bars``
      share of bars with nothing sounding, ``co_onset`` share of onset times on which the rest of the
      chunk (other stems, context) also starts a note, ``groove`` groove consistency (0 when undefined),
      ``bar_repeat`` how much each bar repeats the one before, counting which row (drum class or pitch)
      starts where (``bar_repeat``), ``rows_used`` distinct rows (drum classes, pitches) that start notes;
    * drums: ``kit/<class>`` share of hits per kit class, ``hits_per_onset``;
    * pitched: ``interval/<lo>`` share of |interval| (semitones, between the lowest notes of successive
      onset times) in each ``INTERVAL_EDGES`` bin, ``duration/<lo>`` share of note lengths (steps) in each
      ``DURATION_EDGES`` bin, ``log2_duration`` their mean, ``notes_per_onset``, ``register_mean`` /
      ``_low`` / ``_high`` (row of the notes' mean, lowest and highest pitch over the row count; 0 when
      silent), ``pitch_classes`` used a bar, ``pc_in_rest`` share of the stem's sounding (pitch class,
      step) cells that the rest of the chunk (other pitched stem, context) also sounds, among the steps
      where the rest sounds anything.
    """
    rolls = _batch_chunks(rolls)
    stem = STEMS[c]
    x = rolls[:, c]
    B, P, L = x.shape
    spb = steps_per_beat
    bar = M.bar_steps(spb)
    bars = L / bar
    cols = []

    on = M.onsets(x, stem)  # (B, P, L)
    bt, tt = np.nonzero(on.any(axis=1))  # every distinct onset time, as _onset_times
    pos = np.bincount(bt * bar + tt % bar, minlength=B * bar).reshape(B, bar).astype(np.float64)
    n_times = pos.sum(axis=1)
    cols.append(M._div(pos, n_times[:, None]))
    rest = _rest_onsets(rolls, c, other)
    co = M._div(np.bincount(bt, weights=rest[bt, tt].astype(np.float64), minlength=B), n_times)
    groove = np.nan_to_num(np.asarray(M.groove_consistency(x, stem, spb), dtype=np.float64))
    cols.append(np.stack([M.note_density(x, stem, spb), n_times / bars, M.empty_bar_rate(x, spb), co, groove,
                          bar_repeat(on, bar), on.any(axis=2).sum(axis=1)], 1))

    if stem == "drums":
        hits = x[:, :len(_KIT)].sum(axis=2).astype(np.float64)  # (B, kit classes); the rows below stay empty
        cols.append(M._div(hits, hits.sum(axis=1, keepdims=True)))
        cols.append(M._div(hits.sum(axis=1), n_times)[:, None])
    else:
        ib, iv = _intervals(x, stem)
        cols.append(_hist(ib, iv, INTERVAL_EDGES, B))
        nb, nr, _, nd = M.notes(x, stem)
        cols.append(_hist(nb, nd, DURATION_EDGES, B))
        n_notes = np.bincount(nb, minlength=B)
        log_dur = M._div(np.bincount(nb, weights=np.log2(nd), minlength=B), n_notes)
        rows = x.any(axis=2)
        has = rows.any(axis=1)
        low = np.where(has, np.argmax(rows, axis=1), 0) / P
        high = np.where(has, P - 1 - np.argmax(rows[:, ::-1], axis=1), 0) / P
        mean = M._div(np.bincount(nb, weights=nr, minlength=B), n_notes) / P
        upc = M.used_pitch_classes(x, stem, spb)
        rest_pc = _rest_pitch_classes(rolls, c, other)  # (B, 12, L)
        own_pc = M._pc(x)  # (B, 12, L)
        rest_on = rest_pc.any(axis=1, keepdims=True)
        shared = M._div((own_pc & rest_pc).sum(axis=(1, 2)), (own_pc & rest_on).sum(axis=(1, 2)))
        cols.append(np.stack([log_dur, M._div(n_notes, n_times), mean, low, high, upc, shared], 1))
    return np.concatenate([np.asarray(v, dtype=np.float64).reshape(B, -1) for v in cols], axis=1)


def bar_repeat(on: np.ndarray, bar: int) -> np.ndarray:
    """(B,) mean Jaccard similarity of the (row, step-in-bar) onset sets of successive full bars of an onset
    batch (B, P, L), over the pairs where either bar has an onset; 0 where none has. Unlike ``groove``
    (onset times only) it sees which drum or pitch plays: a groove kept on the hi-hat repeats, one that
    moves hits between classes at random from bar to bar does not."""
    B, P, L = on.shape
    n = L // bar
    if n < 2:
        return np.zeros(B)
    b = on[..., : n * bar].reshape(B, P, n, bar)
    inter = (b[:, :, 1:] & b[:, :, :-1]).sum(axis=(1, 3)).astype(np.float64)  # (B, n - 1)
    union = (b[:, :, 1:] | b[:, :, :-1]).sum(axis=(1, 3)).astype(np.float64)
    pairs = (union > 0).sum(axis=1)
    return M._div(np.where(union > 0, inter / np.maximum(union, 1), 0).sum(axis=1), pairs)


# --------------------------------------------------------------------------- the two-sample test


def _classifier(kind: str, seed: int):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logistic":
        from sklearn.linear_model import LogisticRegression

        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    if kind == "boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=100, max_leaf_nodes=8, learning_rate=0.1,
                                              random_state=seed)
    raise ValueError(f"unknown classifier {kind!r}; expected one of {CLASSIFIERS}")


def two_sample_accuracy(real_feats, fake_feats, groups, seed: int = 0, n_splits: int = 5,
                        classifier: str = "logistic") -> dict:
    """Held-out accuracy of a classifier telling ``real_feats`` (n, D) from ``fake_feats`` (m, D).

    ``groups``: the song of each row, either one array for both sets (n == m, the rows paired: the real
    and the filled stem of one chunk) or n + m values (real rows first). Folds are grouped by song
    (``GroupKFold``, shuffled with ``seed``, ``min(n_splits, songs)`` folds), so a song's chunks are
    never both trained on and tested; each row is predicted once, by the model of the fold that held it
    out. NaN features count as 0. Returns {"accuracy": share of all rows predicted right, "std": standard
    deviation of the per-fold accuracies, "folds", "n_real", "n_fake"}; accuracy and std are None with
    fewer than two songs or an empty set.
    """
    from sklearn.model_selection import GroupKFold

    real = np.nan_to_num(np.atleast_2d(np.asarray(real_feats, dtype=np.float64)))
    fake = np.nan_to_num(np.atleast_2d(np.asarray(fake_feats, dtype=np.float64)))
    n, m = len(real), len(fake)
    groups = np.asarray(groups)
    if len(groups) == n == m:
        groups = np.concatenate([groups, groups])
    if len(groups) != n + m:
        raise ValueError(f"{len(groups)} groups for {n} real and {m} filled rows")
    out = {"accuracy": None, "std": None, "folds": 0, "n_real": int(n), "n_fake": int(m)}
    k = min(n_splits, len(np.unique(groups)))
    if n == 0 or m == 0 or k < 2:
        return out
    X = np.concatenate([real, fake])
    y = np.concatenate([np.ones(n, dtype=int), np.zeros(m, dtype=int)])
    right = np.zeros(n + m, dtype=bool)
    fold_acc = []
    for train, test in GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(X, y, groups):
        if len(np.unique(y[train])) < 2:  # one class only in the training folds: guess that class
            pred = np.full(len(test), y[train][0])
        else:
            pred = _classifier(classifier, seed).fit(X[train], y[train]).predict(X[test])
        right[test] = pred == y[test]
        fold_acc.append(right[test].mean())
    out.update(accuracy=float(right.mean()), std=float(np.std(fold_acc)), folds=int(k))
    return out


def control_accuracy(real_feats, groups, seed: int = 0, n_splits: int = 5, classifier: str = "logistic") -> dict:
    """The test's noise floor: ``two_sample_accuracy`` of real rows against other real rows of the same
    songs. Each song's rows (``groups``, one per row) are shuffled with ``seed`` and dealt alternately to
    the two sides, the first side of each song picked at random, so that both sides hold the same songs,
    as the real and the filled side of the real test do; one side plays 'real', the other 'filled'. Both
    are real, so the accuracy differs from 0.5 only by chance."""
    real = np.atleast_2d(np.asarray(real_feats, dtype=np.float64))
    groups = np.asarray(groups)
    if len(groups) != len(real):
        raise ValueError(f"{len(groups)} groups for {len(real)} rows")
    rng = np.random.default_rng(seed)
    side = np.zeros(len(real), dtype=bool)
    for g in np.unique(groups):
        rows = rng.permutation(np.flatnonzero(groups == g))
        side[rows] = (np.arange(len(rows)) + rng.integers(0, 2)) % 2 == 1
    return two_sample_accuracy(real[side], real[~side], np.concatenate([groups[side], groups[~side]]), seed,
                               n_splits, classifier)


# --------------------------------------------------------------------------- tell-tale statistics


def stem_telltales(x, stem: str, steps_per_beat: int = STEPS_PER_BEAT) -> dict[str, float | None]:
    """The tell-tale statistics of one stem over a batch of channels (B, P, L) (or one (P, L)), pooled:

    * drums: ``toms``, ``cymbals``, ``hihats`` = share of all hits in those kit classes (``DRUM_GROUPS``;
      cymbals are crash, ride, ride bell, china and splash);
    * pitched: ``repeat_rate`` = share of successive-note intervals that are 0 (the lowest note of each
      onset time against the previous onset time's, within a chunk), ``median_interval`` = the mean over
      chunks (with an interval) of each chunk's median |interval| in semitones, ``notes_per_onset`` = notes
      starting per onset time;
    * all: ``notes_per_bar`` = notes (hits) starting a bar (4/4 bars of ``4 * steps_per_beat`` steps).

    A share of nothing (no hits, no intervals) is None.
    """
    x, _ = M._batch(x)
    B, _, L = x.shape
    n_on = int(M.onsets(x, stem).sum())
    out: dict[str, float | None] = {}
    if stem == "drums":
        hits = x.sum(axis=(0, 2))
        tot = int(hits.sum())
        for g, rows in DRUM_GROUPS.items():
            out[g] = float(hits[list(rows)].sum() / tot) if tot else None
    else:
        ib, iv = _intervals(x, stem)
        out["repeat_rate"] = float((iv == 0).mean()) if len(iv) else None
        meds = [np.median(iv[ib == b]) for b in np.unique(ib)]
        out["median_interval"] = float(np.mean(meds)) if meds else None
        n_times = len(_onset_times(x, stem)[0])
        out["notes_per_onset"] = float(n_on / n_times) if n_times else None
    out["notes_per_bar"] = float(n_on / (B * L / M.bar_steps(steps_per_beat))) if B and L else None
    return out


def telltales(rolls, steps_per_beat: int = STEPS_PER_BEAT) -> dict[str, dict[str, float | None]]:
    """``stem_telltales`` of every stem of chunks ``rolls`` (B, 3, P, L) or (3, P, L): {stem: {stat: value}}."""
    rolls = _batch_chunks(rolls)
    return {s: stem_telltales(rolls[:, i], s, steps_per_beat) for i, s in enumerate(STEMS)}
