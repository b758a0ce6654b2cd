"""Measure a stem's articulation model (stemfill/generate/articulation.py) on the TRAIN split only.

    python bench/train_articulation.py --data CHUNKS --stem bass|guitar [--limit 2500] [--strength 0.7]
        [--short 2] [--ring] [--model FOLDER] -o stemfill/models/default

``--limit`` train chunks with the stem (a seeded pick) have it removed and filled by the model as it decodes
without an articulation model (units on where the model has them); the quantiles of the mean log2 note length
of those windows and of the same windows' real parts are written to ``<stem>-articulation.json`` in the model
folder ``-o`` with the settings (chosen on the valid split: docs/generation.md). Valid and test chunks are
never read. Turn it on with config.json's ``sampling.articulation``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--stem", choices=("bass", "guitar"), required=True)
    ap.add_argument("--limit", type=int, default=2500)
    ap.add_argument("--strength", type=float, default=0.7)
    ap.add_argument("--short", type=float, default=2.0)
    ap.add_argument("--ring", action="store_true", help="notes may ring under later starts on other rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", type=Path, help="the model whose decoder is measured (default: the folder -o)")
    ap.add_argument("-o", "--out", type=Path, required=True, help="the model folder to write the file into")
    a = ap.parse_args(argv)
    from stemfill.datasets.chunks import load_chunks
    from stemfill.evaluation import harness
    from stemfill.generate.articulation import articulation_path, train_articulation, window_means
    from stemfill.pianoroll import fill as F
    from stemfill.pianoroll.model import load_model
    from stemfill.song.song import STEMS

    t0 = time.perf_counter()
    cmd = "python bench/train_articulation.py " + " ".join(sys.argv[1:] if argv is None else argv)
    stem, c = a.stem, STEMS.index(a.stem)
    ch = load_chunks(a.data, "train", require=(stem,))
    sel = harness.select(len(ch), a.limit, a.seed)
    truth, other = ch.rolls[sel], ch.context[sel]
    model = load_model(a.model or a.out, device="cpu")
    model.sampling = replace(model.sampling, articulation=(False, False, False))  # the decoder as it is without
    known = np.ones((len(sel), 3), bool)
    known[:, c] = False
    cells = F.fill_chunks(model, truth, known, seed=a.seed, other=other, batch=16, drums=None)
    dm, dn = window_means(cells[:, c], stem)
    rm, rn = window_means(truth[:, c], stem)
    m = train_articulation(stem, dm[dn > 0], rm[rn > 0], a.strength, a.short, a.ring,
                           {"split": "train", "chunks": int(len(sel)), "seed": a.seed, "command": cmd})
    m.save(articulation_path(a.out, stem))
    print(f"{stem}: {len(sel)} train chunks; mean log2 note length of a window: decoder "
          f"{dm[dn > 0].mean():.2f} +- {dm[dn > 0].std():.2f}, real {rm[rn > 0].mean():.2f} +- {rm[rn > 0].std():.2f} "
          f"-> {articulation_path(a.out, stem)} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
