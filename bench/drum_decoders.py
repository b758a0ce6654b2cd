"""Compare drum decoder settings on held-out chunks, drums missing: onset F1, the realism two-sample test
(logistic and boosting, folds by song) and a few telltales, one line per setting.

    python bench/drum_decoders.py --data CHUNKS [--split valid] [--limit 300] SETTING [SETTING ...]

SETTING is ``cells`` (the cell decoder) or ``LIBRARY[:key=value...]`` (with the shipped critic; ``w_critic=0``:
without it) with keys of
``generate.drums.PatternConfig`` and ``generate.plan.PlanConfig`` (e.g.
``stemfill/models/default/drum-patterns.npz:phrase_temperature=1``). Choose on valid; report on test with
``stemfill eval``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/phrase.py

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="valid")
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("settings", nargs="+")
    a = ap.parse_args(argv)
    from stemfill.datasets.chunks import load_chunks
    from stemfill.evaluation import harness
    from stemfill.evaluation import metrics as M
    from stemfill.evaluation import realism as R
    from stemfill.evaluation.baselines import ModelSystem
    from stemfill.generate.decoder import DrumDecoder
    from stemfill.generate.library import load_library

    ch = load_chunks(a.data, a.split)
    sel = harness.select(len(ch), a.limit, 0)
    sel = sel[ch.present[sel, 0]]
    truth = ch.rolls[sel]
    other = ch.context[sel] if ch.context is not None else None
    known = np.ones((len(sel), 3), bool)
    known[:, 0] = False
    masked = truth.copy()
    masked[:, 0] = False
    names = R.feature_names("drums", 12)
    real = R.segment_features(truth, 0, 12, other)
    system = ModelSystem(None)
    print("| setting | onset F1 | realism | boosting | bar repeat (real) | rows used (real) | notes a bar (real) | toms share (real) |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    from stemfill.generate.controls import TOM_ROWS

    toms = list(TOM_ROWS)  # the roll rows of the low, mid and high tom
    real_toms = truth[:, 0, toms].sum() / max(truth[:, 0].sum(), 1)
    for name in a.settings:
        t0 = time.perf_counter()
        if name == "cells":
            dec = None
        else:
            lib, *kv = name.split(":")
            from phrase import with_settings  # bench/phrase.py: PatternConfig / PlanConfig fields from key=value

            from stemfill.generate.critic import get_critic
            from stemfill.pianoroll.model import default_model_path

            dec = with_settings(DrumDecoder(load_library(lib), critic=get_critic(default_model_path(), "drums")),
                                ",".join(kv))
        system.drums = dec
        filled = system.fill(masked, known, np.random.default_rng(0), other=other)
        f1 = np.nanmean(M.score_stem(filled, truth, 0, 12)["agree/onset_F1"])
        g = R.segment_features(filled, 0, 12, other)
        looks = {"gen": [g], "real": [real], "gen_x": [filled[:, 0]], "real_x": [truth[:, 0]]}
        acc = harness._realism(looks, ch.song_index[sel], "drums", 12, 0, "logistic")["realism/accuracy"]
        boost = harness._realism(looks, ch.song_index[sel], "drums", 12, 0, "boosting")["realism/accuracy"]
        col = {k: names.index(k) for k in ("bar_repeat", "rows_used", "density")}
        cells = " | ".join(f"{g[:, i].mean():.2f} ({real[:, i].mean():.2f})" for i in col.values())
        cells += f" | {filled[:, 0, toms].sum() / max(filled[:, 0].sum(), 1):.3f} ({real_toms:.3f})"
        print(f"| {name} | {f1:.3f} | {acc:.3f} | {boost:.3f} | {cells} |  <!-- {time.perf_counter() - t0:.0f} s -->", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
