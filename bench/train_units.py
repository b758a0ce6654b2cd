"""Build a stem's unit library and train its critic (stemfill/generate/units.py) from the TRAIN split only.

    python bench/train_units.py --data CHUNKS --stem bass|guitar [--limit 1500] [--model FOLDER] -o stemfill/models/default

Writes two files into the model folder ``-o`` (they belong to the model whose P they were chosen by):

- ``<stem>-patterns.npz``: the distinct bars of the stem's real parts in the train split's 4/4 songs from the
  folders whose licence allows shipping them with the weights (``corpus``, ``corpus-extra``, ``onyxite``),
  taken from chunks that start on a bar line.
- ``<stem>-critic.npz``: a logistic regression on the 4-bar features of ``evaluation.realism.segment_features``
  telling real parts from the decoder's: ``--limit`` train chunks with the stem (a seeded pick) have it removed
  and filled by the model's own decoder (line or cells, without units); the fakes are that part and 4 parts
  drawn from units alone (``unit_draws`` without the decoder's bars). Valid and test chunks are never read.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

SOURCES = ("corpus", "corpus-extra", "onyxite")  # licences that allow shipping (docs/model-card.md)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--stem", choices=("bass", "guitar"), required=True)
    ap.add_argument("--limit", type=int, default=1500)
    ap.add_argument("--draws", type=int, default=4, help="unit-only lines per chunk among the critic's fakes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", type=Path, help="the model whose P chooses the bars (default: the folder -o)")
    ap.add_argument("-o", "--out", type=Path, required=True, help="the model folder to write both files into")
    a = ap.parse_args(argv)
    from stemfill.datasets.chunks import load_chunks, read_manifest, root_name
    from stemfill.evaluation import harness
    from stemfill.evaluation.realism import feature_names, segment_features
    from stemfill.generate.units import DEFAULTS, build_library, library_path, part_features, unit_draws
    from stemfill.generate.critic import critic_path, train_critic
    from stemfill.pianoroll import fill as F
    from stemfill.pianoroll.grid import STEPS_PER_BEAT
    from stemfill.pianoroll.model import load_model
    from stemfill.song.song import STEMS

    t0 = time.perf_counter()
    cmd = "python bench/train_units.py " + " ".join(sys.argv[1:] if argv is None else argv)
    stem, c = a.stem, STEMS.index(a.stem)
    man = read_manifest(a.data)
    ch = load_chunks(a.data, "train", require=(stem,))
    four = np.array([ch.songs[i].get("time_signature") == "4/4" and root_name(ch.songs[i]) in SOURCES
                     for i in ch.song_index]) & (ch.offsets % 48 == 0)
    sources = sorted({ch.songs[i]["root"] for i in ch.song_index[four]})
    lib = build_library(ch.rolls[four, c], stem, {"steps_per_beat": STEPS_PER_BEAT, "split": "train",
                                                  "sources": sources, "chunks": int(four.sum()), "command": cmd})
    lib.save(library_path(a.out, stem))
    print(f"{lib.meta['bars']} {stem} bars of {int(four.sum())} train chunks -> {len(lib)} units: "
          f"{library_path(a.out, stem)}")

    sel = harness.select(len(ch), a.limit, a.seed)
    truth, other = ch.rolls[sel], ch.context[sel]
    model = load_model(a.model or a.out, device="cpu")
    model.sampling = replace(model.sampling, units=(False, False, False))  # the critic learns what the decoder gives away
    known = np.ones((len(sel), 3), bool)
    known[:, c] = False
    probs: list = []
    cells = F.fill_chunks(model, truth, known, seed=a.seed, other=other, batch=16, drums=None, probs=probs)
    p = probs[0][:, c]
    cfg = DEFAULTS[stem]
    fakes = [segment_features(cells, c, other=other)]
    rng = np.random.default_rng(a.seed)
    open_ = np.ones(truth.shape[-1] // 48, dtype=bool)
    for i in range(len(sel)):
        outs, _ = unit_draws(lib, cfg, cells[i, c], p[i], open_, rng, a.draws, with_own=False)
        fakes.append(part_features(cells[i], c, outs, other[i]))
    real_x, fake_x = segment_features(truth, c, other=other), np.concatenate(fakes)
    meta = {"stem": stem, "features": feature_names(stem), "split": "train", "chunks": int(len(sel)),
            "fakes": int(len(fake_x)), "data_songs": man.get("counts", {}).get("songs", {}).get("train"),
            "command": cmd}
    critic = train_critic(real_x, fake_x, meta)
    critic.save(critic_path(a.out, stem))
    print(f"{len(sel)} train chunks, {len(fake_x)} fakes; critic's accuracy on them {critic.meta['train_accuracy']:.3f}; "
          f"wrote {critic_path(a.out, stem)} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    from stemfill.errors import StemfillError

    try:
        raise SystemExit(main())
    except StemfillError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1)
