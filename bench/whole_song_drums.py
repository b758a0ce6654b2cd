"""Whole songs, drums only: how a drum decoder setting follows the song. For each song of a split with drums
and another stem, the drums are taken out and filled again over the whole song (``fill.fill_roll`` with the
song's bars); per setting: the density contour correlation with the real part (mean over songs), notes a bar
(filled and real) and the USMA Note-F1 of the 4-bar segments.

    python bench/whole_song_drums.py --data CHUNKS [--split valid] [--songs 12] SETTING [SETTING ...]

SETTING is ``cells`` or ``patterns[:key=value...]`` with keys of ``generate.drums.PatternConfig`` and
``generate.plan.PlanConfig`` (e.g. ``patterns:w_density=1:density_margin=2``), on the shipped library.
Quicker than ``bench/phrase.py`` for choosing settings on valid.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="valid")
    ap.add_argument("--songs", type=int, default=12, help="the first N songs of the split (0: all)")
    ap.add_argument("settings", nargs="+")
    a = ap.parse_args(argv)
    from phrase import song_file

    from stemfill.datasets.chunks import read_manifest
    from stemfill.evaluation import metrics as M
    from stemfill.evaluation import phrase as PH
    from stemfill.generate.decoder import DrumDecoder
    from stemfill.generate.drums import PatternConfig
    from stemfill.generate.library import get_library
    from stemfill.generate.plan import PlanConfig, song_bars
    from stemfill.pianoroll.fast import load_fill_model
    from stemfill.pianoroll.fill import fill_roll
    from stemfill.pianoroll.model import default_model_path
    from stemfill.pianoroll.roll import encode, encode_context, n_steps
    from stemfill.song.io import read_song

    model = load_fill_model(default_model_path())
    songs = [s for s in read_manifest(a.data)["songs"] if s["split"] == a.split and "drums" in s["stems"]
             and len(s["stems"]) > 1]
    songs = songs[:a.songs] if a.songs else songs
    data = []
    for e in songs:
        song = read_song(song_file(e, a.data))
        T = max(n_steps(song), 1)
        known = np.ones((3, T), bool)
        known[0] = False
        data.append((encode(song, length=T), encode_context(song, length=T), known, song_bars(song, T)))
    print(f"| setting ({len(data)} {a.split} songs) | contour r | notes a bar (real) | Note-F1 % |")
    print("|---|--:|--:|--:|")
    for setting in a.settings:
        t0 = time.perf_counter()
        dec = None
        if setting != "cells":
            kv = dict(x.split("=") for x in setting.split(":")[1:])
            dec = DrumDecoder(get_library(),
                              PatternConfig(**{k: float(v) for k, v in kv.items() if k in PatternConfig.__dataclass_fields__}),
                              PlanConfig(**{k: float(v) for k, v in kv.items() if k in PlanConfig.__dataclass_fields__}))
        rs, dens, f1s = [], [], []
        for real, other, known, bars in data:
            f = fill_roll(model, real, known, seed=0, other=other, drums=dec, bars=bars)
            c = PH.density_contour_corr(f[0], real[0], "drums")
            if not np.isnan(c):
                rs.append(c)
            dens.append((PH.bar_density(f[0], "drums").mean(), PH.bar_density(real[0], "drums").mean()))
            f1s.extend(v for v in M.note_f1_usma_segments(f[0], real[0], "drums") if not np.isnan(v))
        d = np.array(dens)
        print(f"| {setting} | {np.mean(rs):.3f} | {d[:, 0].mean():.1f} ({d[:, 1].mean():.1f}) | {100 * np.mean(f1s):.1f} |"
              f"  <!-- {time.perf_counter() - t0:.0f} s -->", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
