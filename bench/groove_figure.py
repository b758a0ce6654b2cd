"""Draw a song's bass (or guitar) taken out and filled again, with and without the groove
(``generate/groove.py``): the real part, the part as the windows decode it, and the part whose bars keep a
rhythm; a band under a row marks the bars that repeat the rhythm of the bar before.

    python bench/groove_figure.py SONG -o docs/img/bass-groove.png [--stem bass|guitar] [--groove G]
                                  [--bars A-B] [--model M] [--seed S]

The part is filled as ``stemfill midi SONG --add STEM --replace`` fills it (``fill.fill_roll``, rests on),
once with the model's ``sampling.groove`` for the stem (or ``--groove``) and once with it 0. Prints, for the
drawn bars, the share of bars with the rhythm of the bar before and the notes a bar of each row.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("song", type=Path)
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=ROOT / "stemfill" / "models" / "default")
    ap.add_argument("--bars", help="bars to draw, A-B (1-based, B included; default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stem", choices=("bass", "guitar"), default="bass")
    ap.add_argument("--groove", type=float, help="the groove's change cost (default: the model's)")
    a = ap.parse_args(argv)

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from stemfill.evaluation import phrase as PH
    from stemfill.files import atomic_path
    from stemfill.generate.controls import BAR
    from stemfill.generate.plan import song_bars
    from stemfill.pianoroll.fill import fill_roll
    from stemfill.pianoroll.grid import CHANNEL
    from stemfill.pianoroll.model import load_model
    from stemfill.pianoroll.roll import encode, encode_context, n_steps
    from stemfill.song.io import read_song
    from stemfill.song.stems import classify_song

    model = load_model(a.model)
    song = read_song(a.song)
    groups = classify_song(song)
    T = max(n_steps(song), 1)
    real = encode(song, length=T, groups=groups)
    other = encode_context(song, length=T, groups=groups) if model.context_planes else None
    c = CHANNEL[a.stem]
    if not real[c].any():
        print(f"error: {a.song}: the song has no {a.stem} to take out and fill again", file=sys.stderr)
        return 1
    known = np.ones((real.shape[0], T), dtype=bool)
    known[c] = False
    gv = list(model.sampling.groove)
    shipped = gv[c]
    groove = shipped if a.groove is None else a.groove
    rows = {f"real {a.stem}": real[c]}
    plain = replace(model.sampling, groove=tuple(0.0 if i == c else v for i, v in enumerate(gv)))
    grooved = replace(model.sampling, groove=tuple(groove if i == c else v for i, v in enumerate(gv)))
    label = f"filled, groove {groove:g}" + (" (shipped)" if groove == shipped else "")
    for label, sampling in (("filled, no groove", plain), (label, grooved)):
        model.sampling = sampling
        rows[label] = fill_roll(model, real, known, seed=a.seed, other=other, bars=song_bars(song, T))[c]
    n_bars = -(-T // BAR)
    lo, hi = 1, n_bars
    if a.bars:
        x, _, y = a.bars.partition("-")
        lo, hi = int(x), int(y) if y else n_bars
    s0, s1 = (lo - 1) * BAR, min(hi * BAR, T)
    used = np.flatnonzero(np.any([v[:, s0:s1].any(1) for v in rows.values()], axis=0))
    r0, r1 = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, real.shape[1])

    fig = Figure(figsize=(14, 1.9 * len(rows) + 0.6), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), 1, sharex=True)
    colors = ["#555555", "#ff7f0e", "#d62728"]
    summary = []
    for ax, (label, x), color in zip(axes, rows.items(), colors):
        ax.imshow(x[r0:r1, s0:s1], aspect="auto", origin="lower", interpolation="nearest",
                  cmap=_cmap(color), extent=(lo, hi + 1, r0, r1))
        on = x.copy()
        on[:, 1:] &= ~x[:, :-1]
        starts = on.any(0)
        t = np.flatnonzero(starts[s0:s1])
        ax.scatter(lo + t / BAR, np.full(len(t), r0 - 0.5), s=6, color=color, marker="|", clip_on=False)
        for b in range(lo, hi + 1):
            ax.axvline(b, color="#bbbbbb", linewidth=0.5)
            prev, cur = starts[(b - 2) * BAR:(b - 1) * BAR], starts[(b - 1) * BAR:b * BAR]
            if b > lo and len(cur) == len(prev) == BAR and cur.any() and prev.any() and (cur == prev).all():
                ax.axvspan(b, b + 1, ymin=0, ymax=0.06, color=color, alpha=0.6)
        same, pairs = PH.rhythm_repeats(x[:, s0:s1], a.stem)
        dens = PH.bar_density(x[:, s0:s1], a.stem).mean()
        summary.append(f"{label}: rhythm of the bar before in {same} of {pairs} bars, {dens:.1f} notes a bar")
        ax.set_ylabel(label.replace(", ", ",\n"), fontsize=8)
    axes[0].set_title(f"{a.song.name}: {a.stem} taken out and filled again (band under a row: the bar repeats the "
                      "rhythm of the bar before)", fontsize=10)
    axes[-1].set_xlabel("bar")
    axes[-1].set_xlim(lo, hi + 1)
    fig.tight_layout()
    with atomic_path(a.out) as tmp:
        fig.savefig(tmp, format="png")
    print(f"wrote {a.out}: bars {lo}-{hi}; " + "; ".join(summary))
    return 0


def _cmap(color: str):
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("one", ["#ffffff", color])


if __name__ == "__main__":
    raise SystemExit(main())
