"""Does choosing one articulation per 4-bar window make the new bass or guitar harder to tell from real parts?
(docs/generation.md, "Bass and guitar").

Not part of the product: the script that measured the trial table, kept so that its numbers can be re-measured
(the shipped version, found by the same bisection on lengths rather than on the drawn roll, is
``stemfill/generate/articulation.py``).

    python bench/trials/articulation.py --data CHUNKS --split valid --stem guitar --limit 600 [--short 1 3]

The shipped model fills the chunks with ``--stem`` missing (units on, as shipped). Each window's notes then keep
their starts and pitches and get new lengths: every note's log2 length moves by one factor per window toward
the time left to the part's next note start (held, up to legato) or toward ``--short`` steps (clipped), the
factor found by bisection so that the window's mean log2 note length meets a target:

- ``oracle``: the real part's own mean (an upper bound: it reads the answer);
- ``quantile``: the window's rank among the filled windows by its own mean, mapped onto the distribution of the
  real parts' means in ``--calib`` TRAIN chunks (the spread of real articulation, ranked by the decoder's);
- ``random``: a mean drawn from that train distribution (the spread alone, unrelated to the song).

It prints onset, pitch-class and frame F1, the spread (std over windows) of the mean log2 length and the
realism two-sample accuracy (logistic and boosting, by song: ``stemfill eval --realism``'s tests).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def window_means(parts: np.ndarray, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """(mean log2 note length, note count) of each window (B, P, L): the shipped module's."""
    from stemfill.generate.articulation import window_means as wm

    return wm(parts, stem)


def articulate(part: np.ndarray, stem: str, alpha: float, short: float = 1.0, ring: bool = False) -> np.ndarray:
    """``part`` (P, L) with every note's log2 length moved by ``alpha`` in [-1, 1]: toward the steps to the
    part's next note start (alpha > 0; notes already longer keep their length; ``ring``: to the next note start
    on the note's own row, as a guitarist lets a string ring under the next strum) or toward ``short``."""
    from stemfill.evaluation import metrics as M

    _, r, t, d = M.notes(part[None], stem)
    L = part.shape[-1]
    if ring:  # notes come sorted by row, then start: the next note of the same row
        nxt_t = np.r_[t[1:], L]
        room = np.where(np.r_[r[1:] == r[:-1], False], nxt_t, L) - t
    else:
        times = np.unique(t)
        nxt = np.searchsorted(times, t, side="right")
        room = np.where(nxt < len(times), times[np.minimum(nxt, len(times) - 1)], L) - t
    ld = np.log2(d)
    goal = np.log2(np.maximum(room, d)) if alpha >= 0 else np.full(len(d), np.log2(short))
    nd = np.clip(np.round(2 ** (ld + abs(alpha) * (goal - ld))), 1, None).astype(np.int64)
    out = np.zeros_like(part)
    for ri, ti, di in zip(r, t, nd):
        out[ri, ti:ti + di] = True
    for ri, ti in zip(r, t):  # a note held into the next one on its row ends a step early: both keep their start
        if ti > 0 and out[ri, ti - 1] and not part[ri, ti - 1]:
            out[ri, ti - 1] = False
    return out


def to_target(part: np.ndarray, stem: str, target: float, short: float = 1.0, ring: bool = False) -> np.ndarray:
    """``articulate`` with the factor that brings the window's mean log2 note length to ``target``."""
    if not part.any():
        return part
    lo, hi = -1.0, 1.0
    for _ in range(14):
        mid = (lo + hi) / 2
        m, _ = window_means(articulate(part, stem, mid, short, ring)[None], stem)
        lo, hi = (mid, hi) if m[0] < target else (lo, mid)
    return articulate(part, stem, (lo + hi) / 2, short, ring)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="valid", choices=("valid", "test"))
    ap.add_argument("--stem", default="guitar", choices=("bass", "guitar"))
    ap.add_argument("--limit", type=int, default=600)
    ap.add_argument("--calib", type=int, default=3000, help="train chunks whose real parts give the distribution")
    ap.add_argument("--short", type=float, nargs="+", default=[1.0])
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    from stemfill.datasets.chunks import load_chunks
    from stemfill.evaluation import harness
    from stemfill.evaluation import metrics as M
    from stemfill.evaluation.realism import segment_features, two_sample_accuracy
    from stemfill.pianoroll import fill as F
    from stemfill.pianoroll.model import default_model_path, load_model
    from stemfill.song.song import STEMS

    t0 = time.perf_counter()
    stem, c = a.stem, STEMS.index(a.stem)
    tr = load_chunks(a.data, "train", require=(stem,))
    pick = harness.select(len(tr), a.calib, a.seed)
    tm, tn = window_means(tr.rolls[pick, c], stem)
    calib = np.sort(tm[tn > 0])
    ch = load_chunks(a.data, a.split)
    sel = harness.select(len(ch), a.limit, a.seed)
    sel = sel[ch.present[sel, c]]
    truth, other, song = ch.rolls[sel], ch.context[sel], ch.song_index[sel]
    known = np.ones((len(sel), 3), bool)
    known[:, c] = False
    cells = F.fill_chunks(load_model(default_model_path(), device="cpu"), truth, known, seed=a.seed, other=other,
                          batch=16, drums=None)
    real = segment_features(truth, c, other=other)
    rm, rn = window_means(truth[:, c], stem)
    dm, dn = window_means(cells[:, c], stem)
    print(f"{len(sel)} {a.split} chunks, {stem} missing; real spread of the mean log2 length {rm[rn > 0].std():.2f} "
          f"(train {calib.std():.2f}) ({time.perf_counter() - t0:.0f} s)")
    print("| target | short | onset F1 | pc F1 | frame F1 | spread | logistic | boosting |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|")

    def report(name: str, short: str, part: np.ndarray) -> None:
        out = truth.copy()
        out[:, c] = part
        s = M.score_stem(out, truth, c)
        g = segment_features(out, c, other=other)
        acc = [two_sample_accuracy(real, g, song, classifier=k)["accuracy"] for k in ("logistic", "boosting")]
        m, n = window_means(part, stem)
        print(f"| {name} | {short} | {s['agree/onset_F1'].mean():.3f} | {s['agree/pc_beat_F1'].mean():.3f} | "
              f"{s['agree/frame_F1'].mean():.3f} | {m[n > 0].std():.2f} | {acc[0]:.3f} | {acc[1]:.3f} |", flush=True)

    report("shipped", "–", cells[:, c])
    rank = (np.argsort(np.argsort(dm, kind="stable"), kind="stable") + 0.5) / len(dm)
    rng = np.random.default_rng(a.seed)
    targets = {"oracle": np.where(rn > 0, rm, dm), "quantile": np.quantile(calib, rank),
               "random": rng.choice(calib, len(dm))}
    for short in a.short:
        for name, tgt in targets.items():
            report(name, f"{short:g}", np.stack([to_target(cells[i, c], stem, tgt[i], short) for i in range(len(sel))]))
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
