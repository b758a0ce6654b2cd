"""Train the drum decoder's realism critic (stemfill/generate/critic.py) on the TRAIN split only.

    python bench/train_critic.py --data CHUNKS [--limit 2500] -o stemfill/models/default/drum-critic.npz

The critic belongs to the model whose decoder it learned: the fill reads ``drum-critic.npz`` from the model's
folder (``generate.critic.get_critic``).

Takes up to ``--limit`` train chunks that have drums (a seeded pick), removes their drums, lets the shipped
model and pattern decoder (without a critic) fill them, and fits a logistic regression on the 4-bar features
of ``evaluation.realism.segment_features`` (the drums with the song's other stems and tracks) to tell the
decoder's drums from the real ones. Valid and test chunks are never read.
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
    ap.add_argument("--limit", type=int, default=2500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", type=Path, help="the model whose decoder the critic learns (default: the shipped one)")
    ap.add_argument("-o", "--out", type=Path, required=True)
    a = ap.parse_args(argv)
    from stemfill.datasets.chunks import load_chunks, read_manifest
    from stemfill.evaluation import harness
    from stemfill.evaluation.realism import feature_names, segment_features
    from stemfill.generate.critic import train_critic
    from stemfill.generate.decoder import DrumDecoder, decode_roll_drums
    from stemfill.generate.library import get_library
    from stemfill.pianoroll import fill as F
    from stemfill.pianoroll.model import default_model_path, load_model

    t0 = time.perf_counter()
    ch = load_chunks(a.data, "train")
    sel = harness.select(len(ch), a.limit, a.seed)
    sel = sel[ch.present[sel, 0]]
    truth, other = ch.rolls[sel], ch.context[sel]
    known = np.ones((len(sel), 3), bool)
    known[:, 0] = False
    model = load_model(a.model or default_model_path(), device="cpu")
    probs: list = []
    cells = F.fill_chunks(model, truth, known, seed=a.seed, other=other, batch=16, drums=None, probs=probs)
    p = probs[0][:, 0]
    dec = DrumDecoder(get_library())  # no critic: it learns what the plain phrase draw gives away
    fake = truth.copy()
    for i in range(len(sel)):
        fake[i, 0] = decode_roll_drums(dec, cells[i, 0], p[i], np.ones(truth.shape[-1], bool),
                                       seed=a.seed * 1_000_003 + i, sections=False)
    real_x, fake_x = segment_features(truth, 0, other=other), segment_features(fake, 0, other=other)
    man = read_manifest(a.data)
    meta = {"stem": "drums", "features": feature_names("drums"), "split": "train", "chunks": int(len(sel)),
            "data_songs": man.get("counts", {}).get("songs", {}).get("train"),
            "command": "python bench/train_critic.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    critic = train_critic(real_x, fake_x, meta)
    critic.save(a.out)
    print(f"{len(sel)} train chunks; critic's accuracy on them {critic.meta['train_accuracy']:.3f}; wrote {a.out} "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
