"""Two Note-F1 protocols for drums, side by side: insertion (this project's task: no bar of the drums is known)
and continuation (Ou et al., NeurIPS 2025, "USMA": the previous 4 bars of the real drums are known, the next
4 are filled; as released, their metric scores only the last bar of each segment).

For each song of a split with drums and at least one other stem, every 8-bar window from the song's start
(4/4 bars of 48 steps, as the chunks count them; windows that hop 4 bars) is cut out; the drums of its last 4
bars are filled by

* ``insertion``: the model, hearing everything but the drums in all 8 bars;
* ``continuation``: the model, also hearing the real drums of the first 4 bars;
* ``copy``: the baseline USMA's protocol invites, the first 4 bars of the real drums played again;

and scored with ``metrics.note_f1_usma`` (16th-note onset + drum class, one to one) over the 4 filled bars
and over their last bar only. Means over windows whose real drums play in the scored span.

    python bench/continuation.py --data CHUNKS [--split test] [--songs 0] [--decoder model|cells|patterns]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
BAR = 48


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--songs", type=int, default=0, help="first N songs of the split (0: all)")
    ap.add_argument("--decoder", default="model", choices=("model", "cells", "patterns"))
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    from phrase import song_file

    from stemfill.datasets.chunks import read_manifest
    from stemfill.evaluation.metrics import note_f1_usma
    from stemfill.generate.decoder import drum_decoder_for
    from stemfill.pianoroll.fast import load_fill_model
    from stemfill.pianoroll.fill import fill_roll
    from stemfill.pianoroll.model import default_model_path
    from stemfill.pianoroll.roll import encode, encode_context, n_steps
    from stemfill.song.io import read_song
    from stemfill.song.stems import classify_song

    model = load_fill_model(default_model_path())
    drums = "model" if a.decoder == "model" else drum_decoder_for(model, decoder=a.decoder)
    songs = [s for s in read_manifest(a.data)["songs"] if s["split"] == a.split and "drums" in s["stems"]
             and len(s["stems"]) > 1]
    if a.songs:
        songs = songs[:a.songs]
    scores: dict[str, dict[str, list[float]]] = {k: {"4 bars": [], "last bar": []}
                                                  for k in ("insertion", "continuation", "copy")}
    t0 = time.perf_counter()
    for si, e in enumerate(songs):
        song = read_song(song_file(e, a.data))
        groups = classify_song(song)
        T = max(n_steps(song), 1)
        real = encode(song, length=T, groups=groups)
        other = encode_context(song, length=T, groups=groups) if model.context_planes else None
        for w0 in range(0, T - 8 * BAR + 1, 4 * BAR):
            r = real[..., w0:w0 + 8 * BAR]
            o = other[..., w0:w0 + 8 * BAR] if other is not None else None
            target = r[0, :, 4 * BAR:]
            if not target.any():
                continue
            known_ins = np.ones((3, 8 * BAR), bool)
            known_ins[0] = False
            known_con = np.ones((3, 8 * BAR), bool)
            known_con[0, 4 * BAR:] = False
            seed = si * 10_000 + w0
            fills = {
                "insertion": fill_roll(model, r, known_ins, seed=seed, other=o, drums=drums)[0, :, 4 * BAR:],
                "continuation": fill_roll(model, r, known_con, seed=seed, other=o, drums=drums)[0, :, 4 * BAR:],
                "copy": r[0, :, :4 * BAR],
            }
            for k, g in fills.items():
                scores[k]["4 bars"].append(float(note_f1_usma(g, target, "drums")))
                if target[:, 3 * BAR:].any():
                    scores[k]["last bar"].append(float(note_f1_usma(g[:, 3 * BAR:], target[:, 3 * BAR:], "drums")))
        print(f"{e['path']}: {len(scores['copy']['4 bars'])} windows so far ({time.perf_counter() - t0:.0f} s)",
              file=sys.stderr)
    print(f"\nDrums Note-F1 x 100 ({a.split} split, {len(songs)} songs, {len(scores['copy']['4 bars'])} windows; "
          f"decoder: {a.decoder})\n")
    print("| system | 4 filled bars | last bar only (USMA as released) |")
    print("|---|---|---|")
    for k, v in scores.items():
        print(f"| {k} | {100 * np.mean(v['4 bars']):.1f} | {100 * np.mean(v['last bar']):.1f} |")
    if a.json:
        a.json.write_text(json.dumps({k: {m: float(np.mean(x)) for m, x in v.items()} for k, v in scores.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
