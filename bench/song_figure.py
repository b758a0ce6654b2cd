"""Draw a whole song with its drums taken out and filled again: the rest of the song, the real drums, the
filled drums and their notes a bar, with the section changes the song's other parts show.

    python bench/song_figure.py SONG -o docs/img/song-drums.png [--bars A-B] [--model M] [--seed S]
                                [--temperature T] [--fills [cells] none [sections]]

The drums are filled as ``stemfill midi SONG --add drums --replace`` fills them (``fill.fill_roll``: the model
hears the bass, the guitar and the song's other tracks), once per ``--fills`` value (none: as the model
plays them; sections: with a fill asked for in the bar before each section change; cells: the cell decoder,
the likeliest hits one by one, as before the pattern decoder). Dashed lines: the phrase starts that
``sections.section_starts`` marks as section changes. Crashes (crash, china, splash) are drawn as dots on
the drum rows' top, so a crash on a section's downbeat shows. Prints the section starts and the crash and
notes-a-bar counts it drew.
"""

from __future__ import annotations

import argparse
import sys
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
    ap.add_argument("--temperature", type=float, help="the drums' decoding temperature (default: the model's own)")
    ap.add_argument("--fills", nargs="+", choices=("cells", "none", "sections"), default=["none"],
                    help="one row of filled drums per value")
    a = ap.parse_args(argv)

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from stemfill.evaluation import phrase as PH
    from stemfill.files import atomic_path
    from stemfill.pianoroll.config import with_temperature
    from stemfill.generate.controls import BAR, CRASH_ROWS, StemControls, control_planes
    from stemfill.pianoroll.fill import fill_roll
    from stemfill.pianoroll.grid import CHANNEL
    from stemfill.pianoroll.model import load_model
    from stemfill.pianoroll.roll import DRUM_KIT, encode, encode_context, n_steps
    from stemfill.generate.sections import fill_bars, section_starts
    from stemfill.song.io import read_song
    from stemfill.song.stems import classify_song

    model = load_model(a.model)
    if a.temperature is not None:
        model.sampling = with_temperature(model.sampling, {"drums": a.temperature})
    song = read_song(a.song)
    groups = classify_song(song)
    T = max(n_steps(song), 1)
    real = encode(song, length=T, groups=groups)
    other = encode_context(song, length=T, groups=groups) if model.context_planes else None
    c = CHANNEL["drums"]
    if not real[c].any():
        print(f"error: {a.song}: the song has no drums to take out and fill again", file=sys.stderr)
        return 1
    known = np.ones((real.shape[0], T), dtype=bool)
    known[c] = False
    fills = {}
    for mode in dict.fromkeys(a.fills):
        planes = None
        if mode == "sections":
            bars = tuple(fill_bars(real, known, other))
            planes = control_planes({"drums": StemControls(fill_bars=bars)}, T, real.shape[1])
        from stemfill.generate.plan import song_bars

        kw = {"drums": None} if mode == "cells" else {"bars": song_bars(song, T)}  # cells: the cell decoder
        if mode == "sections":
            kw["fill_bars"] = list(bars)  # the pattern decoder plays a fill there, as `stemfill midi --fills sections`
        fills[mode] = fill_roll(model, real, known, seed=a.seed, other=other, controls=planes, **kw)[c]
    starts = section_starts(real, known, other)
    n_bars = -(-T // BAR)
    lo, hi = 1, n_bars
    if a.bars:
        x, _, y = a.bars.partition("-")
        lo, hi = int(x), int(y) if y else n_bars
    s0, s1 = (lo - 1) * BAR, min(hi * BAR, T)

    crash_rows = list(CRASH_ROWS)
    pitched = real[1:].any(0) | (other[0] > 0 if other is not None else False)  # (P, T) everything else sounding
    drums = {"real drums": (real[c], "#555555")}
    colors = {"cells": "#ff7f0e", "none": "#d62728", "sections": "#9467bd"}
    label = {"cells": "filled drums,\ncell decoder", "none": "filled drums", "sections": "filled, --fills\nsections"}
    drums.update({label[m]: (v, colors[m]) for m, v in fills.items()})
    fig = Figure(figsize=(14, 4.5 + 1.3 * len(drums)), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2 + len(drums), 1, sharex=True, gridspec_kw={"height_ratios": [2.2] + [1.2] * len(drums) + [0.9]})
    rows_used = np.flatnonzero(pitched[:, s0:s1].any(1))
    r0, r1 = (int(rows_used[0]), int(rows_used[-1]) + 1) if len(rows_used) else (0, pitched.shape[0])
    axes[0].imshow(pitched[r0:r1, s0:s1], aspect="auto", origin="lower", cmap="Greys", interpolation="nearest",
                   extent=(s0 / BAR + 1, s1 / BAR + 1, r0, r1))
    axes[0].set_ylabel("bass, guitar,\nother tracks\n(pitch row)")
    names = [k[0] for k in DRUM_KIT]
    for ax, (label, (roll, color)) in zip(axes[1:], drums.items()):
        ax.imshow(roll[: len(names), s0:s1], aspect="auto", origin="lower", interpolation="nearest",
                  cmap=_cmap(color), extent=(s0 / BAR + 1, s1 / BAR + 1, 0, len(names)))
        hits = np.flatnonzero(roll[crash_rows, s0:s1].any(0))
        ax.scatter((s0 + hits) / BAR + 1, np.full(len(hits), len(names) - 0.3), s=18, color=color, marker="v",
                   zorder=3, label="crash")
        ax.set_yticks(np.arange(len(names)) + 0.5, names, fontsize=6)
        ax.set_ylabel(label)
    bars = np.arange(lo, hi + 1)
    dens = {k: PH.bar_density(v, "drums") for k, (v, _) in drums.items()}
    for k, (_, color) in drums.items():
        axes[-1].step(bars, dens[k][lo - 1: hi], where="post", color=color, label=k.replace("\n", " "))
    axes[-1].set_ylabel("notes a bar")
    axes[-1].legend(loc="upper left", fontsize=7, ncol=3)
    axes[-1].set_xlabel("bar")
    sec_bars = [int(b) + 1 for b in starts if lo <= int(b) + 1 <= hi]  # section_starts gives 0-based bars
    for ax in axes:
        for b in sec_bars:
            ax.axvline(b, color="#1f77b4", linestyle="--", linewidth=1)
    axes[0].set_title(f"{a.song.name}: drums taken out and filled again (dashed: section changes the other parts show)",
                      fontsize=10)
    axes[-1].set_xlim(lo, hi + 1)
    fig.tight_layout()
    with atomic_path(a.out) as tmp:
        fig.savefig(tmp, format="png")
    crash = {k.replace("\n", " "): [b for b in sec_bars if roll_crash(v, crash_rows, (b - 1) * BAR)] for k, (v, _) in drums.items()}
    print(f"wrote {a.out}: bars {lo}-{hi}; section starts at bars {sec_bars}; crash on those downbeats: {crash}; "
          "notes a bar: " + ", ".join(f"{k.replace(chr(10), ' ')} {v[lo - 1:hi].mean():.1f}" for k, v in dens.items()))
    return 0


def roll_crash(drums: np.ndarray, rows: list[int], step: int) -> bool:
    """A crash, china or splash within ``phrase.CRASH_TOLERANCE`` steps of ``step`` (as the phrase metrics count)."""
    from stemfill.evaluation.phrase import CRASH_TOLERANCE as tol

    return bool(drums[rows, max(0, step - tol): step + tol + 1].any())


def _cmap(color: str):
    from matplotlib.colors import ListedColormap

    return ListedColormap(["white", color])


if __name__ == "__main__":
    raise SystemExit(main())
