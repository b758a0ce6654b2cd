"""Bars where nothing but the drums could play: how often real drummers rest in the silent bars inside a song,
and in the bars before the song's other parts start (train and valid splits). The rates quoted in
``stemfill.generate.rests.RestModel.rests``.

    python bench/trials/silent_bars.py --data CHUNKS
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: train_rests, phrase
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    from train_rests import song_rows

    from stemfill.datasets.chunks import in_split

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="chunk folder (its manifest lists the songs and splits)")
    a = ap.parse_args()
    manifest = json.loads((a.data / "manifest.json").read_text())
    print("| split | silent bars inside the song | drums rest there | bars before the others start | drums rest there |")
    print("|---|--:|--:|--:|--:|")
    for split in ("train", "valid"):
        silent = silent_rest = lead = lead_rest = 0
        for e in [s for s in manifest["songs"] if in_split(s, split) and "drums" in s.get("stems", [])]:
            r = song_rows(e, a.data)
            if r is None:
                continue
            _, rest, plays, _, _ = r
            sounding = np.flatnonzero(plays | ~rest)
            if not len(sounding) or not plays.any():
                continue
            first = int(np.flatnonzero(plays)[0])
            inside = ~plays[first:sounding[-1] + 1]
            silent += int(inside.sum())
            silent_rest += int((inside & rest[first:sounding[-1] + 1]).sum())
            lead += first
            lead_rest += int(rest[:first].sum())
        print(f"| {split} | {silent} | {silent_rest / max(silent, 1):.3f} | {lead} | {lead_rest / max(lead, 1):.3f} |")


if __name__ == "__main__":
    main()
