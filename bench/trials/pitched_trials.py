"""Trials of other bass and guitar decoders on held-out chunks (docs/generation.md, "Tried and not shipped").

Not part of the product: the scripts that measured the table, kept so that its numbers can be re-measured.

    python bench/trials/pitched_trials.py --data CHUNKS --split valid --stem bass --limit 300 SETTING ...

The network's P and the shipped decoder's output for the chunks (``--stem`` missing, the rest known, the
song's other tracks heard) are computed once and cached in ``--cache``; each SETTING then decodes them
another way and prints onset F1, pitch-class F1, the realism two-sample accuracy (logistic, by song: the
same test as ``stemfill eval --realism``) and a few tell-tales against the real parts. SETTING is
``key=value,...``, one of:

* ``v2=1[,temp=T]``: real bars of the stem (train split), transposed, chosen by the network's P, the
  cell decoder's note starts and the context's chords (``decode2``);
* ``rp=1``: the line's rhythm kept, pitches redrawn by forward filtering, backward sampling with an
  interval bigram of the train split (``repitch``);
* ``gap=1,alpha=A[,minn=N]``: notes joined across short dips of P (the shipped ``join``), then notes
  shorter than N steps dropped;
* ``avoid=1,rho=R``: a note repeating the note before takes the runner-up row (the shipped ``line_repeat``);
* ``seg=1``: real guitar rhythms of the train split chosen per bar, chords from P (``decode_rhythms``);
* ``low=1,lg=G[,nb=N,lift=1][,fb=J,alpha=A]``: an onset's isolated lowest note G+ semitones under the next
  dropped or lifted (``low_drop``); with ``fb`` an onset whose lowest note jumps J+ above the one before also
  plays that note where P allows (``fill_bottom``); ``fb=J,alpha=A`` alone does only the latter.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from stemfill.datasets.chunks import load_chunks
from stemfill.evaluation import harness
from stemfill.evaluation import metrics as M
from stemfill.evaluation import realism as R

B = 48  # steps in a 4/4 bar
RR = 36  # rows a transposed bar may span
DATA = None  # the chunk folder (set by main)


# --- real bars, transposed (v2) ----------------------------------------------
def bars_of(rolls, c):
    x = rolls[:, c]  # (N, 48, 192)
    return x.reshape(len(x), 48, 4, B).transpose(0, 2, 1, 3).reshape(-1, 48, B)
def build(c, min_count=1):
    ch = load_chunks(DATA, "train")
    bars = bars_of(ch.rolls[ch.present[:, c]], c)
    keep = bars.any((1, 2))
    bars = bars[keep]
    low = bars.any(2).argmax(1)
    high = 47 - bars.any(2)[:, ::-1].argmax(1)
    ok = high - low < RR
    bars, low = bars[ok], low[ok]
    rel = np.zeros((len(bars), RR, B), bool)
    for i in range(len(bars)):
        rel[i] = np.roll(bars[i], -low[i], axis=0)[:RR]
    flat = np.packbits(rel.reshape(len(rel), -1), axis=1)
    u, inv, cnt = np.unique(flat, axis=0, return_inverse=True, return_counts=True)
    X = np.unpackbits(u, axis=1)[:, :RR * B].reshape(-1, RR, B).astype(bool)
    m = cnt >= min_count
    print("bars", len(bars), "unique", len(u), "kept", m.sum(), file=sys.stderr)
    return X[m], cnt[m]
def onsets(x):  # frame bits (..., R, L) -> onset bits
    prev = np.concatenate([np.zeros_like(x[..., :1]), x[..., :-1]], -1)
    return x & ~prev
class Lib:
    def __init__(self, X, cnt):
        self.X, self.cnt = X, cnt
        self.h = X.any(2)[:, ::-1].argmax(1); self.h = RR - self.h  # height
        self.Xf = X.reshape(len(X), -1).astype(np.float32)
        self.On = onsets(X); self.Xo = self.On.reshape(len(X), -1).astype(np.float32)
        self.occ = X.any(1).astype(np.float32); self.ons = self.On.any(1).astype(np.float32)
        self.nf = self.Xf.sum(1); self.no = self.Xo.sum(1)
def fold(x):  # (48, L) -> (12, L)
    return x.reshape(4, 12, -1).sum(0)

def decode2(lib, p, rng, cells, chord, K=300, w_r=1.0, w_p=1.0, a=1.0, b=0.5, temp=0.0, repeat=0.0, blur=0):
    """Rhythm: onset-column Dice with the cell decode; pitch: mean harmonic fit of the pattern's note starts,
    H = a * P_pc(network, normalized per step) + b * chord pc share (context)."""
    p = p.astype(np.float32)
    out = np.zeros_like(p, dtype=bool)
    con = onsets(cells).any(0).astype(np.float32)  # (192,)
    if blur:
        con = np.maximum(con, 0.5 * np.maximum(np.roll(con, 1), np.roll(con, -1)))
    ppc = fold(p); ppc = ppc / (ppc.max(0, keepdims=True) + 1e-6)
    ch = chord / (chord.max(0, keepdims=True) + 1e-6)
    Hpc = a * ppc + b * ch  # (12, 192)
    H = np.tile(Hpc, (4, 1))  # (48, 192) row r -> pc r%12 (rows start at C)
    prev = None
    for bi in range(p.shape[1] // B):
        sl = slice(bi * B, (bi + 1) * B)
        c = con[sl]
        if cells[:, sl].sum() == 0:
            prev = None; continue
        s1 = 2 * (lib.ons @ c) / (lib.ons.sum(1) + c.sum() + 1e-6)
        cand = np.argpartition(-s1, K)[:K]
        if prev is not None and prev[0] not in cand: cand = np.append(cand, prev[0])
        Hp = np.concatenate([H[:, sl], np.zeros((RR, B), np.float32)])
        # register: prefer the network's register: frame P
        Pp = np.concatenate([p[:, sl], np.zeros((RR, B), np.float32)])
        W = np.stack([Hp[t:t + RR].ravel() for t in range(48)])
        Wf = np.stack([Pp[t:t + RR].ravel() for t in range(48)])
        sp = (lib.Xo[cand] @ W.T) / (lib.no[cand, None] + 1e-6)  # mean harmonic fit of note starts
        sf = 2 * (lib.Xf[cand] @ Wf.T) / (lib.nf[cand, None] + p[:, sl].sum() + 1e-6)
        s = w_r * s1[cand, None] + w_p * sp + sf
        bad = np.arange(48)[None, :] + lib.h[cand, None] > 48
        s[bad] = -np.inf
        if prev is not None:
            j = np.where(cand == prev[0])[0][0]
            s[j, prev[1]] += repeat
        best_t = s.argmax(1); sm = s.max(1)
        g = sm + (temp * rng.gumbel(size=sm.shape) if temp > 0 else 0)
        j = int(np.argmax(g)); t = int(best_t[j])
        prev = (cand[j], t)
        out[t:t + RR, sl] |= lib.X[cand[j]][:48 - t] if t + RR > 48 else lib.X[cand[j]]
    return out

# --- rhythms and chords (seg) ------------------------------------------------
def onset_times(x):  # (R, L) frame -> (L,) bool any-row onsets
    prev = np.concatenate([np.zeros_like(x[:, :1]), x[:, :-1]], 1)
    return (x & ~prev).any(0)
def rhythm_library(c):
    ch = load_chunks(DATA, "train")
    rolls = ch.rolls[ch.present[:, c], c]
    out = []
    for x in rolls:
        o = onset_times(x)
        for b in range(4):
            out.append(o[b * B:(b + 1) * B])
    out = np.array(out)
    u, cnt = np.unique(np.packbits(out, axis=1), axis=0, return_counts=True)
    R = np.unpackbits(u, axis=1)[:, :B].astype(bool)
    keep = R.any(1)
    return R[keep], cnt[keep]
def decode_rhythms(p, lib, cnt, rng, temp=0.0, repeat=0.0, w_n=0.5, n_scale=1.0, k_scale=1.0, hold=0.5, w_c=0.0, src="rise", cells=None):
    R, L = p.shape
    p = p.astype(np.float32)
    prev = np.concatenate([np.zeros_like(p[:, :1]), p[:, :-1]], 1)
    rise = np.maximum(p - prev, 0).sum(0)
    if src == "cells":
        o_all = onset_times(cells).astype(np.float32)
    else:
        o_all = np.minimum(rise / (np.percentile(rise, 90) + 1e-6), 1.0)
    Rf = lib.astype(np.float32); nR = Rf.sum(1); lc = np.log(cnt)
    chosen = np.zeros(L, bool)
    prv = -1
    for b in range(L // B):
        o = o_all[b * B:(b + 1) * B]
        pb = p[:, b * B:(b + 1) * B]
        if pb.sum() < 1.0:
            prv = -1; continue
        n_exp = n_scale * (onset_times(cells[:, b * B:(b + 1) * B]).sum() if cells is not None else o.sum())
        s = 2 * (Rf @ o) / (nR + o.sum() + 1e-6) - w_n * np.abs(nR - n_exp) / (n_exp + 1) + w_c * lc
        if prv >= 0: s[prv] += repeat
        if temp > 0: s = s + temp * rng.gumbel(size=s.shape)
        j = int(np.argmax(s)); prv = j
        chosen[b * B:(b + 1) * B] = lib[j]
    x = np.zeros((R, L), bool)
    st = np.flatnonzero(chosen)
    for i, s0 in enumerate(st):
        end = st[i + 1] if i + 1 < len(st) else L
        a = p[:, s0:min(s0 + 3, end)].mean(1)
        k = int(np.clip(round(k_scale * a.sum()), 1, 6))
        rows = np.argsort(-a)[:k]
        nxt_rows = set()
        if i + 1 < len(st):
            e2 = st[i + 2] if i + 2 < len(st) else L
            a2 = p[:, st[i + 1]:min(st[i + 1] + 3, e2)].mean(1)
            nxt_rows = set(np.argsort(-a2)[:int(np.clip(round(k_scale * a2.sum()), 1, 6))].tolist())
        for r in rows:
            t = s0 + 1
            while t < end and p[r, t] >= hold * a[r]:
                t += 1
            if t == end and r in nxt_rows and end < L:
                t = end - 1
            x[r, s0:max(t, s0 + 1)] = True
    return x

# --- line re-pitching, joins, repeat avoidance ---------------------------------
def notes_of(x):
    """frame roll (48, L) -> list of (row, start, end) runs, sorted by start, lowest row first."""
    out = []
    for r in range(x.shape[0]):
        v = np.diff(np.r_[0, x[r].astype(np.int8), 0])
        for s, e in zip(np.flatnonzero(v == 1), np.flatnonzero(v == -1)):
            out.append((s, r, e))
    out.sort()
    return out
def interval_prior(rolls, c, lim=24):
    h = np.ones(2 * lim + 1)
    for x in rolls[:, c]:
        ns = notes_of(x)
        # monophonic line: lowest note at each start
        line = {}
        for s, r, e in ns:
            line.setdefault(s, r)
        rows = [line[s] for s in sorted(line)]
        d = np.diff(np.asarray(rows, dtype=np.int64))
        d = d[np.abs(d) <= lim]
        np.add.at(h, d + lim, 1)
    return np.log(h / h.sum())
def repitch(x, p, logprior, rng, alpha=1.0, temp=1.0, lim=24):
    """Keep the rhythm of frame roll x (48, L); redraw each line note's pitch by forward filtering,
    backward sampling: emission P^alpha (mean P over the note), transition the interval prior."""
    ns = notes_of(x)
    line, extra = {}, []
    for s, r, e in ns:
        if s in line: extra.append((s, r, e))
        else: line[s] = (r, e)
    starts = sorted(line)
    if not starts: return x
    R = x.shape[0]
    em = np.stack([np.log(p[:, s:line[s][1]].mean(1) + 1e-6) * alpha for s in starts])  # (n, R)
    d = np.arange(R)[None, :] - np.arange(R)[:, None]  # to - from
    tr = np.where(np.abs(d) <= lim, logprior[np.clip(d + lim, 0, 2 * lim)], -1e9)
    n = len(starts)
    fw = np.zeros((n, R)); fw[0] = em[0]
    for i in range(1, n):
        m = fw[i - 1][:, None] + tr
        mx = m.max(0)
        fw[i] = em[i] + mx + np.log(np.exp(m - mx).sum(0))
    out = np.zeros_like(x)
    rows = np.zeros(n, int)
    def draw(v):
        v = v / temp; v = np.exp(v - v.max()); return rng.choice(R, p=v / v.sum())
    rows[-1] = draw(fw[-1])
    for i in range(n - 2, -1, -1):
        rows[i] = draw(fw[i] + tr[:, rows[i + 1]])
    for i, s in enumerate(starts):
        e = line[s][1]
        if i + 1 < n and rows[i + 1] == rows[i] and starts[i + 1] <= e:
            e = min(e, starts[i + 1] - 1)
        out[rows[i], s:max(e, s + 1)] = True
    for s, r, e in extra:  # chord notes above the line: keep their interval to the line
        i = starts.index(s); rr = r - line[s][0] + rows[i]
        if 0 <= rr < R: out[rr, s:e] = True
    return out

def close_gaps(x, p, alpha=0.7, maxgap=2):
    """Join a row's notes across a gap of <= maxgap steps where P in the gap stays >= alpha x P at the gap's edges."""
    x = x.copy()
    R, L = x.shape
    for r in np.flatnonzero(x.any(1)):
        v = np.diff(np.r_[0, x[r].astype(np.int8), 0])
        ends = np.flatnonzero(v == -1); starts = np.flatnonzero(v == 1)
        for e, s2 in zip(ends[:-1], starts[1:]):
            g = s2 - e
            if g <= maxgap:
                edge = min(p[r, e - 1], p[r, s2])
                if p[r, e:s2].min() >= alpha * edge:
                    x[r, e:s2] = True
    return x

def _onset_groups(x):
    """(onset bits, onset times, the rows starting at each) of a frame roll (R, L)."""
    on = x.copy()
    on[:, 1:] = x[:, 1:] & ~x[:, :-1]
    ts = np.flatnonzero(on.any(0))
    return on, ts, [np.flatnonzero(on[:, t]) for t in ts]


def low_drop(x, gap=12.0, nb=1, lift=0):
    """An onset's lowest note that sits >= gap semitones under its next note and is not started at the nb onsets on
    either side is dropped (lift=1: moved up by octaves to the next note or above, instead)."""
    x = x.copy()
    on, ts, groups = _onset_groups(x)
    for k, (t, g) in enumerate(zip(ts, groups)):
        if len(g) < 2 or g[1] - g[0] < gap:
            continue
        lo = g[0]
        near = {int(r) for j in range(max(0, k - int(nb)), min(len(ts), k + int(nb) + 1)) if j != k for r in groups[j]}
        if lo in near:
            continue
        e = t
        while e < x.shape[1] and x[lo, e] and (e == t or not on[lo, e]):
            e += 1
        seg = x[lo, t:e].copy()
        x[lo, t:e] = False
        if lift:
            up = lo + 12
            while up < g[1]:
                up += 12
            if up < x.shape[0]:
                x[up, t:e] |= seg
    return x


def fill_bottom(x, p, jump=7.0, alpha=0.5):
    """An onset whose lowest note jumps >= jump semitones above the one before also plays that earlier note, where
    P there is >= alpha x the onset's best P, held as long as the onset's shortest note."""
    x = x.copy()
    on, ts, _ = _onset_groups(x)
    prev = None
    for t in ts:
        g = np.flatnonzero(on[:, t])
        lo = g[0]
        if prev is not None and lo - prev >= jump and p[prev, t] >= alpha * p[g, t].max() and not x[prev, t]:
            e = t + 1
            while e < x.shape[1] and x[g, e].all() and not on[g, e].any():
                e += 1
            x[prev, t:e] = True
            lo = prev
        prev = lo
    return x


def avoid_repeat(x, p, rho=0.5, octave=False):
    """Line notes of x: where a note repeats the previous note's pitch and the runner-up row's P mass over the
    note is >= rho x the best, play the runner-up."""
    ns = notes_of(x)
    line = {}
    for s, r, e in ns:
        line.setdefault(s, (r, e))
    starts = sorted(line)
    out = x.copy()
    prev = None
    for i, s in enumerate(starts):
        r, e = line[s]
        m = p[:, s:e].sum(1)
        if prev is not None and r == prev:
            order = np.argsort(-m)
            alt = [q for q in order[:3] if q != r]
            if alt and m[alt[0]] >= rho * m[r]:
                out[r, s:e] = False
                out[alt[0], s:e] = True
                r = alt[0]
        prev = r
    return out

def drop_short(x, n):
    out = x.copy()
    for s, r, e in notes_of(x):
        if e - s < n:
            out[r, s:e] = False
    return out

def cache_p(split: str, c: int, limit: int, cache: Path, model: Path | None) -> Path:
    """The chunks' network P and the shipped decoder's output for stem c, computed once."""
    from stemfill.pianoroll import fill as F
    from stemfill.pianoroll.model import default_model_path, load_model

    out = cache / f"p-{split}-{c}-{limit}-{'default' if model is None else model.name}.npz"
    if out.exists():
        return out
    ch = load_chunks(DATA, split)
    sel = harness.select(len(ch), limit, 0)
    sel = sel[ch.present[sel, c]]
    truth = ch.rolls[sel]
    known = np.ones((len(sel), 3), bool)
    known[:, c] = False
    masked = truth.copy()
    masked[:, c] = False
    m = load_model(model or default_model_path(), device="cpu")
    kn = F._known_full(known, truth.shape)
    probs: list = []
    got = F._sample_windows(m, masked & kn, kn, None, F._generator(m, 0), None, 1, 16, "mbr", ch.context[sel], None,
                            probs)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, sel=sel, p=np.concatenate(probs)[:, c].astype(np.float16), cells=got[:, c],
                        song=ch.song_index[sel])
    return out


def main(argv=None) -> int:
    global DATA
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="valid")
    ap.add_argument("--stem", choices=("bass", "guitar"), default="bass")
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--cache", type=Path, default=Path("trials-cache"))
    ap.add_argument("--model", type=Path, help="model folder (default: the shipped one); the table's 'before' "
                    "rows used a copy with the sampling's join and line_repeat set to 0")
    ap.add_argument("settings", nargs="*")
    a = ap.parse_args(argv)
    DATA = a.data
    c = {"bass": 1, "guitar": 2}[a.stem]
    stem = a.stem
    d = np.load(cache_p(a.split, c, a.limit, a.cache, a.model))
    ch = load_chunks(DATA, a.split)
    sel = d["sel"]
    truth = ch.rolls[sel]
    other = ch.context[sel]
    songs = d["song"]
    real = R.segment_features(truth, c, 12, other)

    def report(name, filled, t0):
        sc = M.score_stem(filled, truth, c, 12)
        f1 = np.nanmean(sc["agree/onset_F1"])
        pc = np.nanmean(sc["agree/pc_beat_F1"])
        g = R.segment_features(filled, c, 12, other)
        looks = {"gen": [g], "real": [real], "gen_x": [filled[:, c]], "real_x": [truth[:, c]]}
        r = harness._realism(looks, songs, stem, 12, 0, "logistic")
        names = R.feature_names(stem, 12)
        col = [names.index(k) for k in ("bar_repeat", "rows_used", "density", "interval/0", "notes_per_onset")]
        cells = " | ".join(f"{g[:, i].mean():.2f} ({real[:, i].mean():.2f})" for i in col)
        print(f"| {name} | {f1:.3f} | {pc:.3f} | {np.nanmean(sc['agree/frame_F1']):.3f} | {r['realism/accuracy']:.3f} | "
              f"{cells} | {time.perf_counter() - t0:.0f} s", flush=True)

    print(f"{len(sel)} {a.split} chunks, {stem} missing")
    print("| setting | onset F1 | pc F1 | frame F1 | realism | bar repeat (real) | rows used | notes a bar | "
          "repeated pitch | notes an onset | time |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    t0 = time.perf_counter()
    f = truth.copy()
    f[:, c] = d["cells"]
    report("the model's own decoder", f, t0)
    lib = None
    for arg in a.settings:
        kw = {k: float(v) for k, v in (x.split("=") for x in arg.split(",") if x)}
        t0 = time.perf_counter()
        f = truth.copy()
        p_all = d["p"].astype(np.float32)
        if kw.pop("seg", 0):
            rl = rhythm_library(c)
            for i in range(len(sel)):
                f[i, c] = decode_rhythms(p_all[i], *rl, np.random.default_rng(i), cells=d["cells"][i], **kw)
        elif kw.pop("low", 0) or "fb" in kw:
            fb, alpha = kw.pop("fb", 0.0), kw.pop("alpha", 0.5)
            for i in range(len(sel)):
                f[i, c] = d["cells"][i]
                if "lg" in kw:
                    f[i, c] = low_drop(f[i, c], kw["lg"], kw.get("nb", 1), kw.get("lift", 0))
                if fb:
                    f[i, c] = fill_bottom(f[i, c], p_all[i], fb, alpha)
        elif kw.pop("avoid", 0):
            for i in range(len(sel)):
                f[i, c] = avoid_repeat(d["cells"][i], p_all[i], **kw)
        elif kw.pop("gap", 0):
            mn = int(kw.pop("minn", 0))
            for i in range(len(sel)):
                f[i, c] = close_gaps(d["cells"][i], p_all[i], **kw)
                if mn:
                    f[i, c] = drop_short(f[i, c], mn)
        elif kw.pop("rp", 0):
            prior = interval_prior(load_chunks(DATA, "train").rolls[::4], c)
            for i in range(len(sel)):
                f[i, c] = repitch(d["cells"][i], p_all[i], prior, np.random.default_rng(i), **kw)
        elif kw.pop("v2", 0):
            if lib is None:
                lib = Lib(*build(c))
            if "K" in kw:
                kw["K"] = int(kw["K"])
            for i in range(len(sel)):
                chord = fold(other[i, 0].astype(np.float32)) + sum(fold(truth[i, k].astype(np.float32))
                                                                   for k in (1, 2) if k != c)
                f[i, c] = decode2(lib, p_all[i], np.random.default_rng(i), d["cells"][i], chord, **kw)
        else:
            print(f"unknown setting {arg!r}", file=sys.stderr)
            return 1
        report(arg, f, t0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
