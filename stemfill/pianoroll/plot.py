"""Draw a 3-stem piano roll (drums, bass, guitar) as a PNG, one panel per stem, bar lines, legend.

``compare=`` puts a second roll (e.g. generated) beside the first (e.g. real), same scales.
Uses matplotlib's object API (no pyplot state, no display needed); the file is written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from stemfill.pianoroll.grid import LOW_NOTE, STEPS_PER_BEAT
from stemfill.pianoroll.roll import DRUM_KIT, N_DRUM_CLASSES
from stemfill.song.song import STEMS

COLORS = {"drums": "#d62728", "bass": "#1f77b4", "guitar": "#2ca02c"}
_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def _pitch_name(p: int) -> str:
    return f"{_NAMES[p % 12]}{p // 12 - 1}"


def _rows(stem: str, channel: np.ndarray) -> tuple[int, int]:
    """Row range (lo, hi) to show: drums the kit classes; pitched the sounding span padded to octaves."""
    if stem == "drums":
        return 0, N_DRUM_CLASSES
    used = np.flatnonzero(channel.any(axis=-1))
    if len(used) == 0:
        return 0, 24
    lo = (int(used[0]) // 12) * 12
    hi = min(channel.shape[0], (int(used[-1]) // 12 + 1) * 12)
    return lo, hi


def plot_roll(
    roll: np.ndarray,
    path: str | os.PathLike,
    steps_per_beat: int = STEPS_PER_BEAT,
    bar_starts_steps: list[int] | np.ndarray | None = None,
    title: str | None = None,
    compare: np.ndarray | None = None,
    labels: tuple[str, str] = ("real", "generated"),
    first_bar: int = 1,
    dpi: int = 110,
) -> Path:
    """Write ``roll`` (3, P, T) as a PNG at ``path``; return the path.

    ``bar_starts_steps``: step of each bar line (default: every 4 beats). ``compare``: a second
    roll of the same shape drawn in a second column (``labels`` name the two columns).
    ``first_bar``: the number printed under the first bar line (for a roll cut from a song).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from stemfill.files import atomic_path

    rolls = [np.asarray(roll, dtype=bool)]
    if compare is not None:
        rolls.append(np.asarray(compare, dtype=bool))
        if rolls[1].shape[:2] != rolls[0].shape[:2]:
            raise ValueError(f"compare roll has shape {rolls[1].shape}, roll has {rolls[0].shape}")
    for r in rolls:
        if r.ndim != 3 or r.shape[0] != len(STEMS):
            raise ValueError(f"roll must have shape ({len(STEMS)}, pitches, steps), got {r.shape}")
    T = max(r.shape[-1] for r in rolls)
    if bar_starts_steps is None:
        bar_starts_steps = np.arange(0, T + 1, 4 * steps_per_beat)
    bars = [int(b) for b in bar_starts_steps if 0 <= b <= T]

    # rows to show per stem: the union over the rolls, so both columns share a y scale
    spans = []
    for c, stem in enumerate(STEMS):
        los, his = zip(*(_rows(stem, r[c]) for r in rolls))
        spans.append((min(los), max(his)))
    heights = [max(hi - lo, 12) for lo, hi in spans]

    ncols = len(rolls)
    width = min(40.0, max(7.0, T / (8 * steps_per_beat) * 1.6)) * (1 if ncols == 1 else 0.75) * ncols + 1.5
    fig = Figure(figsize=(width, 1.0 + sum(heights) / 9), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(STEMS), ncols, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": heights, "hspace": 0.08, "wspace": 0.04})
    for col, r in enumerate(rolls):
        for c, stem in enumerate(STEMS):
            ax = axes[c, col]
            lo, hi = spans[c]
            img = np.zeros((hi - lo, T), dtype=np.uint8)
            img[:, : r.shape[-1]] = r[c, lo:hi]
            cmap = ListedColormap(["#ffffff", COLORS[stem]])
            ax.imshow(img, aspect="auto", origin="lower", interpolation="nearest", cmap=cmap, vmin=0, vmax=1,
                      extent=(0, T, lo - 0.5, hi - 0.5))
            for b in bars:
                ax.axvline(b, color="#555555", lw=0.6 if b else 0.9)
            for beat in range(0, T, steps_per_beat):
                if beat not in bars:
                    ax.axvline(beat, color="#dddddd", lw=0.3, zorder=0)
            ax.set_xlim(0, T)
            if stem == "drums":
                ticks = list(range(lo, hi))
                ax.set_yticks(ticks)
                ax.set_yticklabels([DRUM_KIT[t][0] for t in ticks] if col == 0 else [], fontsize=5)
            else:
                ticks = list(range(lo - lo % 12, hi, 12))
                ax.set_yticks(ticks)
                ax.set_yticklabels([_pitch_name(LOW_NOTE[stem] + t) for t in ticks] if col == 0 else [], fontsize=7)
            if col == 0:
                ax.set_ylabel(stem, color=COLORS[stem], fontsize=9, fontweight="bold")
            if c == 0 and ncols > 1:
                ax.set_title(labels[col], fontsize=10)
        ax = axes[-1, col]
        every = max(1, len(bars) // 32)  # label at most ~32 bars
        ax.set_xticks(bars[::every])
        ax.set_xticklabels([str(first_bar + i) for i in range(0, len(bars), every)], fontsize=7)
        ax.set_xlabel("bar")
    handles = [Patch(color=COLORS[s], label=s) for s in STEMS]
    fig.legend(handles=handles, loc="upper right", ncol=3, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, x=0.02, ha="left", fontsize=11)
    fig.subplots_adjust(left=0.05, right=0.99, top=1 - 0.5 / fig.get_figheight(), bottom=0.45 / fig.get_figheight())
    p = Path(path)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", pad_inches=0.1)
    return p


def _bar_starts_steps(song, T: int) -> list[int]:
    from stemfill.pianoroll.roll import ticks_to_step

    starts = [int(s) for s in ticks_to_step(song.bar_starts(), song.resolution)]
    return [s for s in starts if s < max(T, 1)] or [0]


def plot_song(song, path: str | os.PathLike, bars=None, title: str | None = None) -> Path:
    """Draw a song's drums, bass and guitar; ``bars``: a ``bars.BarRange`` (or its text) to draw only those."""
    from stemfill.song.bars import parse_bars
    from stemfill.pianoroll.roll import encode

    r = encode(song)
    starts = _bar_starts_steps(song, r.shape[-1])
    rng = parse_bars(bars) if isinstance(bars, str) else bars
    first, last = rng.resolve(len(starts)) if rng is not None else (1, len(starts))
    lo = starts[first - 1]
    hi = starts[last] if last < len(starts) else r.shape[-1]
    title = f"{title or song.title or 'song'} - bars {first}-{last}"
    return plot_roll(r[:, :, lo:hi], path, STEPS_PER_BEAT, [s - lo for s in starts[first - 1:last]], title=title,
                     first_bar=first)


def plot_fill(song, filled: np.ndarray, generated: np.ndarray, path: str | os.PathLike, title: str) -> Path:
    """Draw a fill: the input (the filled roll without its generated cells) left, the filled roll right."""
    before = filled & ~generated[:, None, :]
    return plot_roll(before, path, STEPS_PER_BEAT, _bar_starts_steps(song, filled.shape[-1]), title=title,
                     compare=filled, labels=("input", "filled"))
