"""Agreement F1 (and bass-guitar fit, density) of the model under different sampling settings.

    python bench/sampling.py --data chunks --split valid --limit 150 --cases single \
        --settings 8:1 4:2 2:2 1:2          # steps:guidance[:threshold|count|line[@S[/F]][:candidates[:mbr|score]]]

``count`` is count decoding for every channel (no line decoding); ``line`` is count decoding with the
bass decoded as a line (``diffusion.decode_line``) with the model's own start multipliers, ``line@S``
with ``line_starts`` S everywhere, ``line@S/F`` with S where a pitched stem is known and F where the
guitar is being filled too (``line_starts_free``).
The setting's guidance holds for the first pass; where bass and guitar are both missing, the chained
guitar pass uses the model's ``chain_guidance`` (``--chain-guidance``: another number, or ``same``).

Used to choose the shipped model's sampling defaults on the valid split (docs/model-card.md).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from stemfill.datasets.chunks import load_chunks
from stemfill.evaluation import harness
from stemfill.pianoroll.fill import fill_chunks
from stemfill.pianoroll.model import load_model


class Setting:
    name = "model"

    def __init__(self, model, steps: int, guidance: float, candidates: int = 1, select: str = "mbr"):
        self.model, self.steps, self.guidance = model, steps, guidance
        self.candidates, self.select = candidates, select

    def fill(self, rolls, known, rng):
        # the setting's guidance as the model's default, so that the chained guitar pass keeps ``chain_guidance``
        self.model.sampling = replace(self.model.sampling, guidance=self.guidance)
        return fill_chunks(self.model, rolls, known, steps=self.steps, seed=int(rng.integers(2**31 - 1)),
                           candidates=self.candidates, select=self.select)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="stemfill/models/default")
    ap.add_argument("--data", default="chunks")
    ap.add_argument("--split", default="valid")
    ap.add_argument("--limit", type=int, default=150)
    ap.add_argument("--cases", default="single", help="single, pair or single,pair")
    ap.add_argument("--settings", nargs="+", default=["8:1", "4:2", "2:2", "1:2"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chain", choices=("model", "on", "off"), default="model",
                    help="chain_pitched: with bass and guitar both missing, bass first, then guitar given it")
    ap.add_argument("--scale", choices=("model", "on", "off"), default="model",
                    help="line_scale: with only drums known, the bass line keeps to one diatonic scale")
    ap.add_argument("--chain-guidance", default="model",
                    help="guidance of the chained guitar pass: 'model' (the model's), 'same' (the setting's), or a number")
    a = ap.parse_args()
    model = load_model(a.model)
    base = model.sampling  # the model's own sampling settings, with the options' changes; each setting starts from it
    if a.chain_guidance != "model":
        base = replace(base, chain_guidance=None if a.chain_guidance == "same" else float(a.chain_guidance))
    if a.chain != "model":
        base = replace(base, chain_pitched=a.chain == "on")
    if a.scale != "model":
        base = replace(base, line_scale=a.scale == "on")
    chunks = load_chunks(a.data, a.split)
    print("| setting | seconds | case | onset F1 | pc F1 | frame F1 | pc F1 any key | root agree | TD | onsets/bar gen | real |\n"
          "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for spec in a.settings:
        parts = spec.split(":")
        steps, guidance = int(parts[0]), float(parts[1])
        th = parts[2] if len(parts) > 2 and parts[2] else "0.5"
        counted = th == "count" or th.startswith("line")
        sampling = replace(base, decode="count" if counted else "threshold", threshold=0.5 if counted else float(th),
                           line=(False, th.startswith("line"), False))
        if th.startswith("line@"):
            s, _, f = th[5:].partition("/")
            sampling = replace(sampling, line_starts=float(s), line_starts_free=float(f or s))
        model.sampling = sampling
        cands = int(parts[3]) if len(parts) > 3 else 1
        sel = parts[4] if len(parts) > 4 else "mbr"
        t0 = time.perf_counter()
        with torch.inference_mode():
            rep = harness.evaluate(Setting(model, steps, guidance, cands, sel), chunks, kinds=tuple(a.cases.split(",")),
                                   seed=a.seed, limit=a.limit)
        dt = time.perf_counter() - t0
        for key, v in rep.items():
            f = lambda m: "–" if v.get(m) is None else f"{v[m]:.3f}"  # noqa: E731
            print(f"| {spec} | {dt:.0f} | {key} | {f('agree/onset_F1')} | {f('agree/pc_beat_F1')} | {f('agree/frame_F1')} "
                  f"| {f('keyfree/pc_beat_F1')} | {f('fit/root_agree')} | {f('fit/TD')} | {f('stat/density/gen')} | {f('stat/density/real')} |")


if __name__ == "__main__":
    main()
