"""Do the onnxruntime and torch engines write the same fill when they draw the same noise?

    python bench/fill_engines.py [SONG ...] [--add bass|bass,guitar] [--seed 0]

The engines draw their noise from different generators (numpy's, torch's), so a seed gives a different fill
on each. Here torch's ``torch.bernoulli`` is replaced by draws from the numpy stream the onnxruntime engine
uses (the same calls, in the same order), so the only difference left is the network's logits (onnxruntime
against torch: ~2e-5 apart) and the two samplers' float rounding. Per song: the generated cells of each
engine and how many differ. Default songs: ../shared/data/midi/*.mid with ``--add bass`` (``--replace``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from stemfill.pianoroll.fast import load_fill_model
from stemfill.pianoroll.fill import fill_song
from stemfill.pianoroll.model import default_model_path
from stemfill.song.io import read_song

ROOT = Path(__file__).resolve().parents[1]


def generated(song, add: list[str], engine: str, seed: int) -> np.ndarray:
    """The cells ``engine`` generates for ``add``, torch's noise drawn from numpy's default_rng(seed)."""
    draws = np.random.default_rng(seed)
    real = torch.bernoulli

    def bernoulli(p, generator=None):
        return torch.from_numpy((draws.random(tuple(p.shape), dtype=np.float32) < p.numpy()).astype(np.float32))

    torch.bernoulli = bernoulli
    try:
        res = fill_song(song, add, load_fill_model(default_model_path(), engine), seed=seed, replace=True)
    finally:
        torch.bernoulli = real
    return res.roll & res.generated[:, None, :]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("songs", nargs="*")
    ap.add_argument("--add", default="bass")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    songs = a.songs or sorted(str(p) for p in (ROOT.parent / "shared" / "data" / "midi").glob("*.mid"))
    add = a.add.split(",")
    print("| song | cells (onnxruntime) | cells (torch) | differing |\n|---|---:|---:|---:|")
    for path in songs:
        song = read_song(path)
        x, y = generated(song, add, "onnx", a.seed), generated(song, add, "torch", a.seed)
        print(f"| {Path(path).name} | {int(x.sum())} | {int(y.sum())} | {int((x != y).sum())} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
