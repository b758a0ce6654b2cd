"""What naming the key (``stemfill midi --add bass --add guitar --key ...``) does when only drums are known.

    python bench/key.py --data chunks/quality-corpus --split test

Fills bass and guitar of every chunk (of the split) that has all three stems, with only the drums
known, as the harness's "bass+guitar" case does (same chunk pick and seed). Scores the model's fill as
it is, and after ``key.fit_key``'s move into the key a musician would name: the Krumhansl-Schmuckler
estimate of the real bass+guitar. Prints pitch-class-per-beat F1 and frame F1 (docs/evaluation.md).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from stemfill.datasets.chunks import load_chunks
from stemfill.evaluation import harness
from stemfill.evaluation import metrics as M
from stemfill.pianoroll import key as K
from stemfill.pianoroll.fill import fill_chunks, load_model
from stemfill.pianoroll.roll import BASS_LOW, CHANNEL, GUITAR_LOW

BASS, GUITAR = CHANNEL["bass"], CHANNEL["guitar"]


def hist(roll: np.ndarray) -> np.ndarray:
    return K.chroma(roll[BASS], BASS_LOW) + K.chroma(roll[GUITAR], GUITAR_LOW)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="stemfill/models/default")
    ap.add_argument("--data", default="chunks/quality-corpus")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, help="evaluate only N chunks (the harness's seeded pick)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    model = load_model(a.model)
    chunks = load_chunks(a.data, a.split)
    sel = harness.select(len(chunks), a.limit, a.seed)
    case = next(c for c in harness.make_cases(chunks.present[sel], ("pair",)) if set(c.missing) == {BASS, GUITAR})
    truth = chunks.rolls[sel[case.idx]]
    known = np.ones(truth.shape[:2], dtype=bool)
    known[:, [BASS, GUITAR]] = False
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = fill_chunks(model, np.where(known[:, :, None, None], truth, False), known, seed=a.seed)
    keyed = out.copy()
    right = 0
    for i in range(len(truth)):
        real_key = K.estimate_key(hist(truth[i]))
        right += K.estimate_key(hist(out[i])) == real_key
        s = K.best_shift(hist(out[i]), *real_key)
        for c in (BASS, GUITAR):
            keyed[i, c] = K.transpose(out[i, c], s)
    print(f"{len(truth)} chunks ({a.data}, {a.split}), only drums known; {time.perf_counter() - t0:.0f} s; "
          f"the model's own key estimate equals the real one in {right / len(truth):.1%}\n")
    print("| fill | bass pc F1 | bass frame F1 | guitar pc F1 | guitar frame F1 |\n|---|---:|---:|---:|---:|")
    for name, o in (("model, its own key", out), ("model, --key = the real key", keyed)):
        cells = [f"{float(np.mean(f(o[:, c], truth[:, c]))):.3f}" for c in (BASS, GUITAR) for f in (M.pc_beat_f1, M.frame_f1)]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
