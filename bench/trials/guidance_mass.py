"""How classifier-free guidance scales the guitar's P mass (docs/generation.md, "Guidance and density").

    python bench/trials/guidance_mass.py --data CHUNKS [--split valid] [--chunks 96] [--model MODEL]

Takes the first ``--chunks`` of the harness's seeded pick (600 chunks of the split) that have bass and guitar,
removes the guitar (drums and bass known, the other tracks heard), and prints the guitar's summed P at the last
step for guidance 1, 1.25, 1.5 and 2 against the real guitar's cells: count decoding plays that many cells.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="valid")
    ap.add_argument("--chunks", type=int, default=96)
    ap.add_argument("--model", type=Path, help="model folder (default: the shipped one)")
    a = ap.parse_args(argv)
    import torch

    from stemfill.datasets.chunks import load_chunks
    from stemfill.evaluation import harness
    from stemfill.pianoroll.diffusion import full_mask
    from stemfill.pianoroll.model import default_model_path, load_model

    ch = load_chunks(a.data, a.split)
    sel = harness.select(len(ch), 600, 0)
    sel = sel[ch.present[sel, 1] & ch.present[sel, 2]][:a.chunks]
    m = load_model(a.model or default_model_path())
    x0 = torch.from_numpy(ch.rolls[sel])
    other = torch.from_numpy(ch.context[sel]).float()
    kn = torch.ones(len(sel), 3, dtype=torch.bool)
    kn[:, 2] = False
    known = full_mask(kn, x0.shape)
    ctx = x0 & known
    t = torch.ones(len(sel))
    x = torch.bernoulli(m.r.expand(x0.shape).float(), generator=torch.Generator().manual_seed(0))
    real = x0[:, 2].sum((1, 2)).float()
    print(f"{len(sel)} {a.split} chunks, guitar missing; real guitar cells a chunk: {real.mean():.1f}")
    print("| guidance | guitar's summed P a chunk | median ratio to the real part's cells |")
    print("|--:|--:|--:|")
    with torch.no_grad():
        for g in (1.0, 1.25, 1.5, 2.0):
            s = torch.sigmoid(m.guided_logits(x, known, ctx, t, g, other))[:, 2].sum((1, 2))
            print(f"| {g} | {s.mean():.1f} | {(s / real.clamp_min(1)).median():.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
