"""The bass and the guitar keep their groove: in a whole song, a bar takes a rhythm the part already plays
elsewhere in the song when that costs the network's fit less than a change of groove would.

The decoders pick each window's likeliest note starts on their own, so a new part's rhythm shifts from bar to
bar: on whole valid songs the new bass repeated the bar before's exact rhythm in 6 % of bars and the guitar in
5 %, real players in 24 % and 22 % (``bench/phrase.py``, "rhythm kept"). ``choose_rhythms`` picks one rhythm
per bar by Viterbi over the song's own bar rhythms (each distinct set of note-start times the part plays in a
bar of that length, within ``COUNT_SLACK`` starts of the bar's own count): a bar's score for rhythm ``u`` is how
much less the network expects ``u``'s note starts than the bar's own (``sum_t (u_t - own_t) * (logit q_t -
theta)``, ``q_t`` the network's rise of P around step t, ``theta`` the logit at the bar's weakest own start, so
the bar's own rhythm scores best or ties), and changing rhythm from one bar to the next costs ``change`` nats (a
quarter of it at a phrase start, nothing at a section start). The bars whose rhythm changed are played again
on those note starts: the bass line decoded again from the network's P (``groove_line``), the guitar's chords
struck again where the new rhythm puts them (``groove_chords``).
"""

from __future__ import annotations

import numpy as np

from stemfill.evaluation.metrics import notes, onsets
from stemfill.generate.plan import PHRASE_BARS, Bar

PHRASE_SHARE = 0.25  # share of the change cost paid at a phrase start
COUNT_SLACK = 2  # a bar's rhythm keeps within this many note starts of its own, so the song's density contour stays


def bar_rhythms(x: np.ndarray, bars: list[Bar], open_: np.ndarray) -> list[np.ndarray | None]:
    """Each bar's note starts (length,) bool of a part ``x`` (P, T), or None where the bar is not wholly open
    (``open_`` (T,)), runs past the roll, or has no note start."""
    T = x.shape[-1]
    starts = onsets(x, "bass").any(axis=0)
    out: list[np.ndarray | None] = []
    for b in bars:
        e = b.start + b.length
        r = starts[b.start:e] if e <= T else None
        out.append(r.copy() if r is not None and r.any() and open_[b.start:e].all() else None)
    return out


def onset_logits(p: np.ndarray) -> np.ndarray:
    """(T,) logit of a note start at each step of P ``p`` (P, T): the rise of P summed over rows and over the
    step and its two neighbours (a start the network spreads over two steps counts at both), in [0.01, 0.99]."""
    up = np.maximum(np.diff(p, axis=-1, prepend=0.0), 0.0).sum(axis=0)
    rise = up + np.pad(up[:-1], (1, 0)) + np.pad(up[1:], (0, 1))
    q = np.clip(rise, 0.01, 0.99)
    return np.log(q) - np.log1p(-q)


def choose_rhythms(own: list[np.ndarray | None], logit: np.ndarray, bars: list[Bar], change: float,
                   phrase_start: np.ndarray, section_start: np.ndarray) -> list[np.ndarray | None]:
    """Each bar's rhythm (as ``own``: None where the bar is not decoded again) chosen by Viterbi: candidates
    are the distinct rhythms of ``own`` of the bar's length; a chain of consecutive eligible bars of one
    length is decoded at a time."""
    n = len(bars)
    out: list[np.ndarray | None] = list(own)
    rhythms: dict[int, np.ndarray] = {}  # bar length -> the distinct rhythms of that length (U, length)
    i = 0
    while i < n:
        if own[i] is None:
            i += 1
            continue
        j = i
        while j + 1 < n and own[j + 1] is not None and bars[j + 1].length == bars[i].length:
            j += 1
        if j > i:
            L = bars[i].length
            if L not in rhythms:
                rhythms[L] = np.unique(np.stack([r for r in own if r is not None and len(r) == L]), axis=0)
            cand = rhythms[L]
            score = np.zeros(len(cand))
            sizes = cand.sum(axis=1)
            back = []
            for k in range(i, j + 1):
                lg = logit[bars[k].start:bars[k].start + L]
                r = own[k]
                theta = lg[r].min()
                em = (cand.astype(np.float64) - r) @ (lg - theta)  # (U,)
                em = np.where(np.abs(sizes - r.sum()) <= COUNT_SLACK, em, -np.inf)
                em += 1e-6 * (cand == r).all(axis=1)  # a tie keeps the bar's own
                if k > i:
                    cost = 0.0 if section_start[k] else change * (PHRASE_SHARE if phrase_start[k] else 1.0)
                    best = int(score.argmax())
                    moved = score[best] - cost
                    stay = score >= moved
                    back.append(np.where(stay, np.arange(len(cand)), best))
                    score = np.where(stay, score, moved) + em
                else:
                    score = em
            u = int(score.argmax())
            for k in range(j, i - 1, -1):
                out[k] = cand[u].copy()
                if k > i:
                    u = int(back[k - i - 1][u])
        i = j + 1
    return out


def _new_starts(x: np.ndarray, p: np.ndarray, open_: np.ndarray, bars: list[Bar], change: float,
                section_start: np.ndarray | None, min_note: int):
    """(note starts (T,) bool with the moved bars' chosen rhythms, the moved bars' indices) of a part ``x``;
    None where no bar moves."""
    n = len(bars)
    if change <= 0 or n < 2:
        return None
    own = bar_rhythms(x, bars, open_)
    phrase = np.zeros(n, dtype=bool)
    phrase[::PHRASE_BARS] = True
    section = np.zeros(n, dtype=bool) if section_start is None else np.asarray(section_start, dtype=bool)
    chosen = choose_rhythms(own, onset_logits(p), bars, change, phrase, section)
    moved = [k for k in range(n) if own[k] is not None and not np.array_equal(own[k], chosen[k])]
    if not moved:
        return None
    T = x.shape[-1]
    starts = onsets(x, "bass").any(axis=0)
    in_moved = np.zeros(T, dtype=bool)
    for k in moved:
        b = bars[k]
        starts[b.start:b.start + b.length] = chosen[k]
        in_moved[b.start:b.start + b.length] = True
    # a start too close to the next (a bar's last-step anticipation before a bar that starts on its downbeat):
    # the one in a moved bar goes
    t = np.flatnonzero(starts)
    for t1, t2 in zip(t[:-1], t[1:]):
        if t2 - t1 < max(2, min_note) and starts[t1] and starts[t2]:
            if in_moved[t1]:
                starts[t1] = False
            elif in_moved[t2]:
                starts[t2] = False
    return starts, moved


def _runs(moved: list[int], bars: list[Bar], starts: np.ndarray):
    """Each run of consecutive moved bars as (its first step, its first note start, the first note start after
    it or the roll's end)."""
    after = np.flatnonzero(starts)
    T = len(starts)
    k = 0
    while k < len(moved):
        j = k
        while j + 1 < len(moved) and moved[j + 1] == moved[j] + 1:
            j += 1
        a, e = bars[moved[k]].start, bars[moved[j]].start + bars[moved[j]].length
        f = int(after[np.searchsorted(after, a)])  # the run's bars have starts
        i = np.searchsorted(after, e)
        yield a, f, int(after[i]) if i < len(after) else T
        k = j + 1


def _splice(x: np.ndarray, y: np.ndarray, starts: np.ndarray, moved: list[int], bars: list[Bar],
            open_: np.ndarray) -> np.ndarray:
    """``x`` with ``y`` from each moved run's first note start to the next start after it; before that first
    start, only what ``x`` holds over from the bar before the run; the known steps as ``x``."""
    out = x.copy()
    for a, f, g in _runs(moved, bars, starts):
        held = x[:, a - 1] if a > 0 else np.zeros(x.shape[0], dtype=bool)
        out[:, a:f] = np.logical_and.accumulate(x[:, a:f], axis=1) & held[:, None]
        out[:, f:g] = y[:, f:g]
    out[:, ~open_] = x[:, ~open_]
    return out


def groove_line(x: np.ndarray, p: np.ndarray, open_: np.ndarray, bars: list[Bar], change: float,
                section_start: np.ndarray | None = None, sounding: float = 0.3, min_note: int = 0,
                repeat: float = 0.0, known: np.ndarray | None = None) -> np.ndarray:
    """The bass line ``x`` (P, T) bool with its wholly open bars' rhythms chosen by ``choose_rhythms``;
    ``p`` (P, T) the network's P where open, ``open_`` (T,) the steps being filled, ``section_start``
    (n_bars,) bool (None: none), ``known`` (P, T) the known notes. Bars whose rhythm changed are decoded again
    (``fast.decode_line`` with those note starts, ``sounding``, ``min_note``, ``repeat`` as the model's line
    decoding); the other cells are returned as they were."""
    from stemfill.pianoroll.fast import decode_line

    got = _new_starts(x, p, open_, bars, change, section_start, min_note)
    if got is None:
        return x
    starts, moved = got
    pk = p if known is None else np.where(known, 1.0, np.where(open_[None, :], p, 0.0))
    y = decode_line(pk[None].astype(np.float32), ~open_[None], 1.0, sounding, min_note, repeat=repeat,
                    onsets=starts[None])[0] > 0
    return _splice(x, y, starts, moved, bars, open_)


def groove_chords(x: np.ndarray, p: np.ndarray, open_: np.ndarray, bars: list[Bar], change: float,
                  section_start: np.ndarray | None = None, min_note: int = 0) -> np.ndarray:
    """The guitar ``x`` (P, T) bool with its wholly open bars' rhythms chosen by ``choose_rhythms`` (as
    ``groove_line``). In the bars whose rhythm changed, each new note start strikes the chord ``x`` sounds over
    the time up to the next start (the rows sounding at least half as long as the longest there; where ``x``
    sounds nothing, the rows holding the most P, as many as ``x``'s notes an onset), held as long as ``x``'s
    notes in that bar last (their median; at most up to the next start)."""
    got = _new_starts(x, p, open_, bars, change, section_start, min_note)
    if got is None:
        return x
    starts, moved = got
    per_onset = onsets(x, "guitar").sum(axis=0)
    width = max(1, int(round(per_onset[per_onset > 0].mean()))) if (per_onset > 0).any() else 1
    bar_of = np.zeros(x.shape[-1], dtype=np.int64)
    for k, b in enumerate(bars):
        bar_of[b.start:b.start + b.length] = k
    y = np.zeros_like(x)
    t_all = np.flatnonzero(starts)
    for a, f, g in _runs(moved, bars, starts):
        ts = t_all[(t_all >= f) & (t_all < g)]
        for t, nxt in zip(ts, list(ts[1:]) + [g]):
            span = x[:, t:nxt].sum(axis=1)
            rows = np.flatnonzero(span >= max(1, span.max()) / 2) if span.any() else \
                np.argsort(-p[:, t:nxt].sum(axis=1))[:width]
            b = bars[bar_of[t]]
            lens = notes(x[None, :, b.start:b.start + b.length], "guitar")[3]
            hold = int(np.median(lens)) if len(lens) else nxt - t
            y[rows, t:t + max(min(hold, nxt - t), 1)] = True
    return _splice(x, y, starts, moved, bars, open_)

