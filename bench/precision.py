"""bf16 against fp32 for `stemfill train` on this machine: seconds a step and the losses of two runs that differ in
``--precision`` only (docs/training.md, "bf16").

    for P in fp32 bf16; do
      stemfill train --data chunks -o runs/prec-$P --steps 300 --batch 16 --warmup 100 --val-every 100 \\
          --ckpt-every 300 --sample-every 0 --log-every 10 --size large --seed 0 --precision $P
    done
    python bench/precision.py runs/prec-fp32 runs/prec-bf16

Seconds a step: the median over the stretches between validations (each stretch's wall time over its steps,
the validation's own time left out). Also the validation losses and the mean training loss of the last stretch.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def summary(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in rows if "loss" in r and "wall" in r]
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    cuts = [0] + [s for s, _ in val]
    rates, last = [], []
    for a, b in zip(cuts, cuts[1:]):
        stretch = [r for r in train if a < r["step"] <= b]
        if len(stretch) >= 2:  # from the first log line after a validation to the stretch's last
            rates.append((stretch[-1]["wall"] - stretch[0]["wall"]) / (stretch[-1]["step"] - stretch[0]["step"]))
            last = stretch
    return {"run": str(run), "s_per_step": statistics.median(rates) if rates else None, "stretches": len(rates),
            "val_loss": val, "train_loss_last_stretch": statistics.mean(r["loss"] for r in last) if last else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders (each with its log.jsonl)")
    a = ap.parse_args(argv)
    print("| run | s a step (median of stretches) | validation loss by step | train loss, last stretch |")
    print("|---|--:|---|--:|")
    for run in a.runs:
        s = summary(run)
        vals = " / ".join(f"{v:.5f} ({k})" for k, v in s["val_loss"])
        rate = "–" if s["s_per_step"] is None else f"{s['s_per_step']:.3f} ({s['stretches']})"
        loss = "–" if s["train_loss_last_stretch"] is None else f"{s['train_loss_last_stretch']:.4f}"
        print(f"| {run.name} | {rate} | {vals} | {loss} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
