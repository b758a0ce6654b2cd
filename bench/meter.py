"""Do added drums follow the bar in songs not in 4/4? Per song of a split, the drums are taken out and filled
again over the whole song (``fill.fill_roll`` with the song's own bars), and the share of kick and of snare
hits on each beat of the bar (the song's meter: 3 beats in 3/4, 6 eighths in 6/8) is compared with the real
drummer's: the L1 distance of the two distributions (0 = the same, 2 = disjoint), averaged over kick and
snare and over the songs of each meter.

    python bench/meter.py --data CHUNKS [--split test] [--decoders cells,patterns] [--json OUT]
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


def beat_shares(drums: np.ndarray, bars, row: int) -> np.ndarray | None:
    """Share of ``row``'s hits on each beat unit of the bar (quarter notes; eighths in x/8 meters)."""
    from stemfill.pianoroll.grid import STEPS_PER_BEAT

    counts: dict[int, float] = {}
    for b in bars:
        num, den = (int(v) for v in b.meter.split("/"))
        unit = STEPS_PER_BEAT * 4 // den
        hits = np.flatnonzero(drums[row, b.start:b.start + b.length])
        for h in hits:
            if h % unit == 0:
                counts[h // unit] = counts.get(h // unit, 0) + 1
    total = sum(counts.values())
    if not total:
        return None
    n = max(counts) + 1
    v = np.zeros(max(n, 12))
    for k, c in counts.items():
        v[k] = c
    return v / total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--decoders", default="cells,patterns")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    from phrase import song_file

    from stemfill.datasets.chunks import read_manifest
    from stemfill.generate.decoder import drum_decoder_for
    from stemfill.generate.plan import song_bars
    from stemfill.generate.library import CLASS
    from stemfill.pianoroll.fast import load_fill_model
    from stemfill.pianoroll.fill import fill_roll
    from stemfill.pianoroll.model import default_model_path
    from stemfill.pianoroll.roll import encode, encode_context, n_steps
    from stemfill.song.io import read_song
    from stemfill.song.stems import classify_song

    model = load_fill_model(default_model_path())
    decoders = {d: drum_decoder_for(model, decoder=d) for d in a.decoders.split(",")}
    songs = [s for s in read_manifest(a.data)["songs"] if s["split"] == a.split and "drums" in s["stems"]]
    rows = []
    t0 = time.perf_counter()
    for e in songs:
        song = read_song(song_file(e, a.data))
        groups = classify_song(song)
        T = max(n_steps(song), 1)
        real = encode(song, length=T, groups=groups)
        other = encode_context(song, length=T, groups=groups) if model.context_planes else None
        known = np.ones((3, T), dtype=bool)
        known[0] = False
        bars = song_bars(song, T)
        meter = bars[0].meter if bars else "?"
        row = {"song": e["path"], "meter": meter}
        for name, dec in decoders.items():
            filled = fill_roll(model, real, known, seed=0, other=other, drums=dec, bars=bars)
            dist = []
            for r in (CLASS["kick"], CLASS["snare"]):
                g, t = beat_shares(filled[0], bars, r), beat_shares(real[0], bars, r)
                if g is not None and t is not None:
                    dist.append(float(np.abs(g - t).sum()))
            row[name] = float(np.mean(dist)) if dist else None
        rows.append(row)
        print(f"{e['path']} ({meter}): " + ", ".join(f"{k} {row[k]:.2f}" for k in decoders if row[k] is not None),
              file=sys.stderr)
    groups_: dict[str, list[dict]] = {}
    for r in rows:
        groups_.setdefault("4/4" if r["meter"] == "4/4" else r["meter"], []).append(r)
    print(f"\nL1 distance of kick and snare beat shares from the real drummer's ({a.split} split, "
          f"{time.perf_counter() - t0:.0f} s; 0 = the same)\n")
    print("| meter | songs | " + " | ".join(decoders) + " |")
    print("|---|---|" + "---|" * len(decoders))
    for m, rs in sorted(groups_.items(), key=lambda kv: -len(kv[1])):
        vals = [np.mean([r[k] for r in rs if r[k] is not None]) for k in decoders]
        print(f"| {m} | {len(rs)} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
