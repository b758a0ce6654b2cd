"""The bass and the guitar as players' bars: the decoder's bar or a real player's bar, transposed, chosen by fit
and a critic.

The line decoder (``pianoroll.fast.decode_line``) plays the likeliest bass note at each of the network's note
starts. Where the network is unsure which passing note a bassist would play, the root holds the most P, so the
line repeats its root and jumps octaves: on valid chunks 41 % of its intervals were repeats and 11 % octaves,
against 27 % and 3 % in real parts, with half the real share of 1- and 2-semitone steps. The guitar's count
decoder plays the likeliest cells, so the bottom of its chords comes and goes from strum to strum.
``decode_units`` lets each 4/4 bar of a window be played either by the decoder's bar or by a real player's bar:

- **Units.** A ``UnitLibrary`` holds the distinct bars of one stem's real parts (``build_library``): for the bass
  the lowest note of every note start, for the guitar every note, as (start, end, pitch relative to the bar's
  first, lowest note).
- **Fit.** A unit at transposition ``r`` scores ``dice(P, cells) + dice(Q, starts)``: the expected Dice overlap
  of its cells with the network's P and of its note starts with Q (the rise of P at each pitch). The decoder's
  own bar is scored the same way. Per bar, ``prefilter`` units are kept by the pitch-free version of that score,
  then their transpositions that put the first note on one of the bar's ``rows`` rows of most P are scored and
  the ``top`` best kept.
- **Choice.** ``draws`` 4-bar combinations are drawn (the first is the decoder's part itself; the others take in
  each bar the candidate with the best fit plus Gumbel noise at ``temperature``, the decoder's bar with ``keep``
  more), and the window plays the one with the best total fit less ``w_critic`` times the critic's log-odds of
  its being a decoder's part and not a real one (``generate.critic``: ``bass-critic.npz``, ``guitar-critic.npz``,
  trained on the train split).

A bar is decoded by units only where it is a whole 48-step bar of the window, wholly unknown, and the decoder
plays in it; the rest keep the decoder's notes.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from stemfill.errors import StemfillError
from stemfill.pianoroll.grid import BEATS_PER_BAR, STEPS_PER_BEAT

FORMAT = "stemfill-units/1"
BAR = BEATS_PER_BAR * STEPS_PER_BEAT  # 48 steps: a bar of 4/4, the only meter a library holds
MAX_NOTES = {"bass": 16, "guitar": 32}  # bars with more notes are left out of a library


@dataclass(frozen=True)
class UnitConfig:
    """How a part's bars are chosen (``decode_units``); ``DEFAULTS`` per stem, chosen on the valid split
    (docs/generation.md)."""

    prefilter: int = 1000  # units a bar keeps by their pitch-free fit before their transpositions are scored
    rows: int = 12  # transpositions scored: the first note on one of the bar's this many rows of most P
    top: int = 30  # candidates a bar keeps (unit, transposition) by fit
    draws: int = 32  # 4-bar combinations the critic chooses among (the first: the line decoder's bars)
    temperature: float = 0.1  # Gumbel noise on a candidate's fit in a draw
    keep: float = 0.3  # fit added to the line decoder's own bar in a draw
    w_critic: float = 0.25  # weight of the critic's log-odds against the combination's summed fit


DEFAULTS = {"bass": UnitConfig(keep=0.3), "guitar": UnitConfig(keep=0.1)}


@dataclass
class UnitLibrary:
    """Distinct bars of one stem's real parts (``meta["stem"]``): note ``start`` and ``end`` steps in the bar and
    pitch ``rel`` to the bar's first, lowest note, (K, MAX_NOTES[stem]) each, ``n`` notes a bar (K,), ``count``
    how often it was played."""

    start: np.ndarray
    end: np.ndarray
    rel: np.ndarray
    n: np.ndarray
    count: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.n)

    @cached_property
    def on(self) -> np.ndarray:
        """(K, MAX_NOTES) which note slots a unit uses."""
        return np.arange(self.start.shape[1])[None, :] < self.n[:, None]

    @cached_property
    def cells(self) -> np.ndarray:
        """(K,) cells a unit sounds."""
        return ((self.end - self.start) * self.on).sum(1)

    @cached_property
    def span(self) -> tuple[np.ndarray, np.ndarray]:
        """(K,) each unit's lowest and highest pitch from its first note."""
        rel = np.where(self.on, self.rel, 0)
        return rel.min(1), rel.max(1)

    def save(self, path: str | os.PathLike) -> Path:
        from stemfill.files import atomic_write_bytes

        buf = io.BytesIO()
        np.savez_compressed(buf, meta=np.array(json.dumps(dict(self.meta, format=FORMAT))),
                            start=self.start.astype(np.int8), end=self.end.astype(np.int8),
                            rel=self.rel.astype(np.int8), n=self.n.astype(np.int8), count=self.count.astype(np.int32))
        atomic_write_bytes(Path(path), buf.getvalue())
        return Path(path)


def bar_notes(x: np.ndarray, stem: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The notes of each whole 48-step bar (from step 0) of rolls ``x`` (N, P, L) that has any: (start, end, row)
    arrays, sorted by start then row, notes cut at the bar's end; for the bass only the lowest note of each
    note start."""
    from stemfill.evaluation.metrics import notes

    b, r, t, d = notes(x, stem)
    nb = x.shape[-1] // BAR
    key = b * nb + t // BAR
    order = np.lexsort((r, t, key))
    key, r, t, d = key[order], r[order], t[order], d[order]
    if stem == "bass":
        low = np.ones(len(key), dtype=bool)
        low[1:] = (key[1:] != key[:-1]) | (t[1:] != t[:-1])
        key, r, t, d = key[low], r[low], t[low], d[low]
    keep = t < nb * BAR
    key, r, t, d = key[keep], r[keep], t[keep], d[keep]
    out = []
    cut = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, dtype=np.int64)
    for s, e in zip(cut, np.r_[cut[1:], len(key)]):
        t0 = t[s:e] % BAR
        out.append((t0, np.minimum(t0 + d[s:e], BAR), r[s:e]))
    return out


def build_library(x: np.ndarray, stem: str, meta: dict | None = None) -> UnitLibrary:
    """The distinct bars (``bar_notes``) of ``stem`` rolls (N, P, L) of 4/4 windows starting on a bar line; bars
    of more than ``MAX_NOTES[stem]`` notes are left out."""
    seen: dict[tuple, int] = {}
    for t0, t1, row in bar_notes(x, stem):
        if len(t0) > MAX_NOTES[stem]:
            continue
        k = (tuple(t0.tolist()), tuple(t1.tolist()), tuple((row - row[0]).tolist()))
        seen[k] = seen.get(k, 0) + 1
    if not seen:
        raise StemfillError(f"no {stem} bars to build a unit library from")
    K, m = len(seen), MAX_NOTES[stem]
    start, end, rel = (np.zeros((K, m), np.int64) for _ in range(3))
    n, count = np.zeros(K, np.int64), np.zeros(K, np.int64)
    for i, ((t0, t1, dp), c) in enumerate(seen.items()):
        start[i, :len(t0)], end[i, :len(t0)], rel[i, :len(t0)], n[i], count[i] = t0, t1, dp, len(t0), c
    return UnitLibrary(start, end, rel, n, count, dict(meta or {}, stem=stem, bars=int(count.sum()), patterns=K))


def load_library(path: str | os.PathLike, stem: str | None = None) -> UnitLibrary:
    """Read a unit library (of ``stem``, where given); StemfillError (one line naming ``path``) for a missing,
    foreign, other-grid, other-stem or empty one."""
    p = Path(path)
    if not p.exists():
        raise StemfillError(f"{p}: no such unit library")
    try:
        with np.load(p, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            lib = UnitLibrary(*(z[k].astype(np.int64) for k in ("start", "end", "rel", "n", "count")), meta=meta)
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        raise StemfillError(f"{p}: not a stemfill unit library") from None
    if meta.get("format") != FORMAT:
        raise StemfillError(f"{p}: not a stemfill unit library (format {meta.get('format')!r})")
    if stem is not None and meta.get("stem") != stem:
        raise StemfillError(f"{p}: a unit library of the {meta.get('stem')}, not of the {stem}")
    if meta.get("steps_per_beat") != STEPS_PER_BEAT:
        raise StemfillError(f"{p}: a unit library of {meta.get('steps_per_beat')} steps a beat; this version uses "
                            f"{STEPS_PER_BEAT}")
    if len(lib) == 0:
        raise StemfillError(f"{p}: the unit library is empty")
    return lib


def library_path(folder: str | os.PathLike, stem: str) -> Path:
    """Where a model folder keeps its ``stem`` unit library (``bass-patterns.npz``, ``guitar-patterns.npz``)."""
    return Path(folder) / f"{stem}-patterns.npz"


def get_library(folder: str | os.PathLike | None, stem: str) -> UnitLibrary | None:
    """The ``stem`` unit library of a model folder (None where there is no folder or no library), read once."""
    from stemfill.files import read_once

    if folder is None or not (p := library_path(folder, stem)).exists():
        return None
    return read_once(p, load_library, stem)


# --- choosing ------------------------------------------------------------------------------------------------

def note_rise(p: np.ndarray) -> np.ndarray:
    """(P, L) the rise of P at each row and step: where the network expects a note of that pitch to start."""
    return np.maximum(np.diff(p, axis=-1, prepend=0.0), 0.0).astype(np.float32)


def bar_candidates(lib: UnitLibrary, p: np.ndarray, q: np.ndarray, cfg: UnitConfig) -> tuple[np.ndarray, ...]:
    """The ``cfg.top`` best (unit, transposition row, fit) of one bar's P ``p`` and rise ``q`` (P, 48)."""
    P = p.shape[0]
    ps = np.r_[0.0, np.cumsum(p.sum(0))]
    pre = (2 * ((ps[lib.end] - ps[lib.start]) * lib.on).sum(1) / (lib.cells + p.sum() + 1e-6)
           + 2 * (q.sum(0)[lib.start] * lib.on).sum(1) / (lib.n + q.sum() + 1e-6))
    cand = np.sort(np.argpartition(-pre, cfg.prefilter)[:cfg.prefilter]) if len(pre) > cfg.prefilter else np.arange(len(pre))
    st, en, rel, n, on = lib.start[cand], lib.end[cand], lib.rel[cand], lib.n[cand], lib.on[cand]
    cp = np.zeros((3 * P, BAR + 1), np.float32)  # P's running sum over steps, rows padded by P on each side
    cp[P:2 * P, 1:] = np.cumsum(p, 1)
    cq = np.zeros((3 * P, BAR), np.float32)
    cq[P:2 * P] = q
    r = np.arange(P) if cfg.rows >= P else np.sort(np.argsort(-p.sum(1), kind="stable")[:cfg.rows])
    rows = np.clip(P + rel[:, :, None] + r, 0, 3 * P - 1)  # (K, MAX_NOTES, transpositions)
    w = on[:, :, None]
    cover = ((cp[rows, en[:, :, None]] - cp[rows, st[:, :, None]]) * w).sum(1)
    starts = (cq[rows, st[:, :, None]] * w).sum(1)
    fit = (2 * cover / (lib.cells[cand][:, None] + p.sum() + 1e-6) + 2 * starts / (n[:, None] + q.sum() + 1e-6))
    lo, hi = lib.span[0][cand], lib.span[1][cand]
    fits = (r[None] + lo[:, None] >= 0) & (r[None] + hi[:, None] < P)  # every note on the roll
    fit = np.where(fits, fit, -np.inf).ravel()
    best = np.argsort(-fit, kind="stable")[:cfg.top]
    best = best[np.isfinite(fit[best])]
    return cand[best // len(r)], r[best % len(r)], fit[best]


def own_fit(p: np.ndarray, q: np.ndarray, x: np.ndarray, stem: str) -> float:
    """The same fit for a bar ``x`` (P, 48) the decoder played (for the bass, its lowest note at each start)."""
    from stemfill.evaluation.metrics import onsets

    on = onsets(x[None], stem)[0]
    if stem == "bass":
        on &= np.cumsum(on, axis=0) == 1
    return float(2 * (p * x).sum() / (x.sum() + p.sum() + 1e-6) + 2 * (q * on).sum() / (on.sum() + q.sum() + 1e-6))


def render(lib: UnitLibrary, k: int, row: int, out: np.ndarray) -> None:
    """Write unit ``k`` transposed to ``row`` into a bar ``out`` (P, 48), which must be empty."""
    for j in range(lib.n[k]):
        out[row + lib.rel[k, j], lib.start[k, j]:lib.end[k, j]] = True


def unit_draws(lib: UnitLibrary, cfg: UnitConfig, part: np.ndarray, p: np.ndarray, open_: np.ndarray,
               rng: np.random.Generator, n: int, with_own: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Distinct parts (m, P, L), m <= n, and their summed fit (m,): the first plays in every open bar where the
    decoder's ``part`` plays the best candidate (the decoder's own bar where ``with_own``), the others draw each
    bar's candidate by fit plus Gumbel noise (``cfg.temperature``; the decoder's bar gets ``cfg.keep`` more). Bars
    not open, or where the part is silent, keep the part."""
    P, L = part.shape
    stem = lib.meta.get("stem", "bass")
    q = note_rise(p)
    slots = []  # per bar: None (keeps the part) or (fits, units, rows), unit -1 the decoder's own bar
    for b in range(L // BAR):
        sl = slice(b * BAR, (b + 1) * BAR)
        if not open_[b] or not part[:, sl].any():
            slots.append(None)
            continue
        k, r, f = bar_candidates(lib, p[:, sl], q[:, sl], cfg)
        if with_own:
            k, r, f = np.r_[-1, k], np.r_[0, r], np.r_[own_fit(p[:, sl], q[:, sl], part[:, sl], stem), f]
        slots.append((f, k, r) if len(f) else None)
    if all(s is None for s in slots):
        return part[None], np.zeros(1)
    picks = np.zeros((max(1, n), len(slots)), dtype=np.int64)
    total = np.zeros(len(picks))
    for b, s in enumerate(slots):
        if s is None:
            continue
        fit, k = s[0], s[1]
        noisy = fit[None] + cfg.temperature * rng.gumbel(size=(len(picks), len(fit))) + cfg.keep * (k == -1)
        picks[:, b] = np.argmax(noisy, axis=1)
        picks[0, b] = 0 if with_own else int(np.argmax(fit))
        total += fit[picks[:, b]]
    picks, first = np.unique(picks, axis=0, return_index=True)
    outs = np.repeat(part[None], len(picks), axis=0)
    for i, pick in enumerate(picks):
        for b, s in enumerate(slots):
            if s is not None and s[1][pick[b]] >= 0:
                sl = slice(b * BAR, (b + 1) * BAR)
                outs[i, :, sl] = False
                render(lib, int(s[1][pick[b]]), int(s[2][pick[b]]), outs[i, :, sl])
    return outs, total[first]


def decode_units(lib: UnitLibrary, critic, cfg: UnitConfig, window: np.ndarray, c: int, p: np.ndarray,
                 open_: np.ndarray, rng: np.random.Generator, other: np.ndarray | None = None) -> np.ndarray:
    """Channel ``c`` of one window (module doc). ``window`` (3, P, L): the filled window (channel ``c`` the
    decoder's); ``p`` (P, L) the network's P of it; ``open_`` (n_bars,) which 48-step bars may be played by
    units; ``other``: the window's context planes, for the critic. Returns the new part (P, L)."""
    outs, score = unit_draws(lib, cfg, window[c], p, open_, rng, cfg.draws)
    if len(outs) > 1 and critic is not None and cfg.w_critic:
        score = score - cfg.w_critic * critic.logit_fake(part_features(window, c, outs, other))
    return outs[int(np.argmax(score))]


def part_features(window: np.ndarray, c: int, parts: np.ndarray, other: np.ndarray | None) -> np.ndarray:
    """The realism features (``evaluation.realism.segment_features``) of each part (m, P, L) as channel ``c`` of
    ``window`` (3, P, L) with its context planes ``other``."""
    from stemfill.evaluation.realism import segment_features

    rolls = np.repeat(window[None], len(parts), axis=0)
    rolls[:, c] = parts
    o = None if other is None else np.repeat(other[None], len(parts), axis=0)
    return np.nan_to_num(segment_features(rolls, c, other=o))
