"""The chained guitar pass against the joint fill, chunk by chunk (docs/generation.md, "No chained pass at all").

Not part of the product: the script that measured the paired differences, kept so that they can be re-measured.

    python bench/trials/chain_paired.py --data CHUNKS --split test --limit 300

For the cases of ``stemfill eval --triples`` with bass and guitar both missing (bass+guitar; all three, chunks
with other tracks), the chunks of the harness's seeded pick are filled twice with the shipped model, with
``chain_pitched`` on and off, and the guitar's onset and pitch-class F1 of each chunk compared: the mean
difference (off - on) and its 95 % interval from a bootstrap over songs (2,000 resamples), since a song's chunks
are not independent.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="valid", choices=("valid", "test", "band"))
    ap.add_argument("--limit", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    from stemfill.datasets.chunks import load_chunks
    from stemfill.evaluation import harness
    from stemfill.evaluation import metrics as M
    from stemfill.pianoroll import fill as F
    from stemfill.pianoroll.model import default_model_path, load_model

    ch = load_chunks(a.data, a.split)
    sel = harness.select(len(ch), a.limit, a.seed)
    model = load_model(default_model_path(), device="cpu")
    present = ch.present[sel]
    heard = ch.context[sel].reshape(len(sel), -1).any(axis=1)
    print("| case | measure | chain on | chain off | off - on | 95 % interval (songs) | chunks / songs |")
    print("|---|---|--:|--:|--:|--:|--:|")
    for name, missing, rows in (("bass+guitar", (1, 2), present.all(axis=1)),
                                ("all three", (0, 1, 2), present.all(axis=1) & heard)):
        idx = sel[rows]
        truth, other = ch.rolls[idx], ch.context[idx]
        known = np.ones((len(idx), 3), dtype=bool)
        known[:, list(missing)] = False
        scores = {}
        for chain in (True, False):
            model.sampling = replace(model.sampling, chain_pitched=chain)
            out = F.fill_chunks(model, np.where(known[:, :, None, None], truth, False), known, seed=a.seed, other=other)
            s = M.score_stem(out, truth, 2)
            scores[chain] = {"onset F1": s["agree/onset_F1"], "pc F1": s["agree/pc_beat_F1"]}
        song = ch.song_index[idx]
        songs = np.unique(song)
        weight = np.array([(song == s).sum() for s in songs])
        rng = np.random.default_rng(a.seed)
        for measure in ("onset F1", "pc F1"):
            d = scores[False][measure] - scores[True][measure]
            per_song = np.array([np.nanmean(d[song == s]) for s in songs])
            boots = []
            for _ in range(2000):
                b = rng.integers(0, len(songs), len(songs))
                boots.append(np.nansum(per_song[b] * weight[b]) / weight[b].sum())
            lo, hi = np.percentile(boots, [2.5, 97.5])
            print(f"| {name} | {measure} | {np.nanmean(scores[True][measure]):.3f} | "
                  f"{np.nanmean(scores[False][measure]):.3f} | {np.nanmean(d):+.3f} | [{lo:+.3f}, {hi:+.3f}] | "
                  f"{len(idx)} / {len(songs)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
