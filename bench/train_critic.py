"""Train a decoder's realism critic (stemfill/generate/critic.py) on the TRAIN split only.

    python bench/train_critic.py --data CHUNKS [--stem drums|bass|guitar] [--limit 2500] \
        -o stemfill/models/default/STEM-critic.npz

Takes up to ``--limit`` train chunks that have the stem (a seeded pick), removes it, lets the shipped model fill
it, and fits a logistic regression on the 4-bar features of ``evaluation.realism.segment_features`` (the stem with
the song's other stems and tracks) to tell the decoder's part from the real one. Valid and test chunks are never
read.

* drums: the drums alone are removed; the pattern decoder plays them without a critic.
* bass, guitar: each chunk has the stem removed alone, with the drums or with the other pitched stem (a seeded
  third each, as ``stemfill eval`` has its cases), and the plain decode fills it (no takes, ``generate.takes``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--stem", choices=("drums", "bass", "guitar"), default="drums")
    ap.add_argument("--limit", type=int, default=2500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--out", type=Path, required=True)
    a = ap.parse_args(argv)
    from stemfill.datasets.chunks import load_chunks, read_manifest
    from stemfill.evaluation import harness
    from stemfill.evaluation.realism import feature_names, segment_features
    from stemfill.generate.critic import train_critic
    from stemfill.generate.decoder import DrumDecoder, decode_roll_drums
    from stemfill.generate.library import get_library
    from stemfill.generate.takes import TakeConfig
    from stemfill.pianoroll.grid import CHANNEL
    from stemfill.pianoroll import fill as F
    from stemfill.pianoroll.model import default_model_path, load_model

    t0 = time.perf_counter()
    c = CHANNEL[a.stem]
    ch = load_chunks(a.data, "train")
    sel = harness.select(len(ch), a.limit, a.seed)
    sel = sel[ch.present[sel, c]]
    truth, other = ch.rolls[sel], ch.context[sel]
    model = load_model(default_model_path(), device="cpu")
    if a.stem == "drums":
        known = np.ones((len(sel), 3), bool)
        known[:, 0] = False
        kn = F._known_full(known, truth.shape)
        probs: list = []
        cells = F._sample_windows(model, truth & kn, kn, None, F._generator(model, a.seed), None, 1, 16, "mbr", other,
                                  None, probs)
        p = np.concatenate(probs)[:, 0]
        dec = DrumDecoder(get_library())  # no critic: it learns what the plain phrase draw gives away
        fake = truth.copy()
        for i in range(len(sel)):
            fake[i, 0] = decode_roll_drums(dec, cells[i, 0], p[i], np.ones(truth.shape[-1], bool),
                                           seed=a.seed * 1_000_003 + i, sections=False)
    else:
        model.takes = TakeConfig(draws=1)  # the plain decode: what the critic learns to tell
        known = np.ones((len(sel), 3), bool)
        known[:, c] = False
        case = np.random.default_rng(a.seed).integers(0, 3, len(sel))  # alone, with the drums, with the other
        known[case == 1, CHANNEL["drums"]] = False
        known[case == 2, CHANNEL["guitar" if a.stem == "bass" else "bass"]] = False
        fake = np.empty_like(truth)
        for k in range(3):
            i = np.flatnonzero(case == k)
            fake[i] = F.fill_chunks(model, truth[i], known[i], seed=a.seed + k, other=other[i])
    real_x, fake_x = segment_features(truth, c, other=other), segment_features(fake, c, other=other)
    man = read_manifest(a.data)
    meta = {"stem": a.stem, "features": feature_names(a.stem), "split": "train", "chunks": int(len(sel)),
            "data_songs": man.get("counts", {}).get("songs", {}).get("train"),
            "command": "python bench/train_critic.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    critic = train_critic(real_x, fake_x, meta)
    critic.save(a.out)
    print(f"{len(sel)} train chunks; critic's accuracy on them {critic.meta['train_accuracy']:.3f}; wrote {a.out} "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
