"""The README's controls picture: one song's drums filled with --density low, --density high, --like a
reference and --style, one panel each: the new drum part's first bars, one row per kit class, and the
notes a bar each version plays over the whole song.

    python bench/controls_figure.py examples/riff.mid --like examples/drums.mid --style reggae -o docs/img/controls.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemfill.generate.controls import (bar_attributes, groove, groove_distance, parse_controls,  # noqa: E402
                                        read_reference, resolve_controls)
from stemfill.generate.styles import style_roll  # noqa: E402
from stemfill.pianoroll.fill import fill_song  # noqa: E402
from stemfill.pianoroll.roll import DRUM_KIT  # noqa: E402
from stemfill.pianoroll.model import default_model_path, load_model  # noqa: E402
from stemfill.song.io import read_song  # noqa: E402
from stemfill.song.song import STEMS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("song")
    ap.add_argument("--stem", default="drums")
    ap.add_argument("--like", default=None)
    ap.add_argument("--style", default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bars", type=int, default=4, help="bars to draw")
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args()
    model = load_model(args.model or default_model_path())
    song = read_song(args.song)
    stem = args.stem
    versions = [("auto", None, None), ("--density low", {"density": ["low"]}, None),
                ("--density high", {"density": ["high"]}, None)]
    if args.like:
        versions.append((f"--like {Path(args.like).name}", {}, read_reference(args.like)))
    if args.style:
        versions.append((f"--style {args.style}", {}, style_roll(args.style)))
    c = STEMS.index(stem)
    grooves = {title: groove(torch.from_numpy(ref[None, ..., :ref.shape[-1] // 48 * 48]))[0, c].numpy()
               for title, _, ref in versions if ref is not None}
    panels = []
    for title, options, ref in versions:
        controls = None
        if options is not None:
            req = parse_controls([stem], options)
            controls = resolve_controls(req, [stem], model.controls, ref, title)
        res = fill_song(song, [stem], model, seed=args.seed, replace=True, controls=controls)
        whole = torch.from_numpy(res.roll[None, ..., :res.roll.shape[-1] // 48 * 48])
        raw, _ = bar_attributes(whole)
        per_bar = float(np.mean(raw[(stem, "density")].numpy()))
        c = STEMS.index(stem)
        dist = {name: groove_distance(groove(whole)[0, c].numpy(), g) for name, g in grooves.items()}
        print(f"{title}: {per_bar:.1f} {stem} notes a bar; groove distance to "
              + ", ".join(f"{k} {v:.3f}" for k, v in dist.items()))
        panels.append((f"{title}: {per_bar:.1f} notes a bar", res.roll[0, :len(DRUM_KIT), :args.bars * 48]))
    draw(panels, args.out, f"{Path(args.song).name} + new {stem}")
    print(f"wrote {args.out}")


def draw(panels, out: str, title: str) -> None:
    """One drum grid per version: kit classes (rows that any version plays) against steps, beats marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(set(np.flatnonzero(np.any([p.any(1) for _, p in panels], axis=0))))
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 1.0 + 0.28 * len(rows) * len(panels)), squeeze=False)
    for ax, (name, roll) in zip(axes[:, 0], panels):
        ax.imshow(roll[rows], aspect="auto", interpolation="nearest", cmap="Reds", origin="lower", vmin=0, vmax=1.2)
        ax.set_yticks(range(len(rows)), [DRUM_KIT[r][0] for r in rows], fontsize=7)
        ax.set_xticks(range(0, roll.shape[1] + 1, 12), [f"bar {i // 48 + 1}" if i % 48 == 0 else "" for i in
                                                        range(0, roll.shape[1] + 1, 12)], fontsize=7)
        for x in range(0, roll.shape[1], 12):
            ax.axvline(x - 0.5, color="0.85" if x % 48 else "0.5", lw=0.5)
        ax.set_title(name, fontsize=9, loc="left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
