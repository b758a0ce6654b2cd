"""How well a grid of N steps per beat fits the corpus, and how many notes leave the roll's pitch ranges.

    python bench/grid.py [FOLDER ...]        (default: ../shared/data/corpus)

Reads each MIDI file at its own ticks-per-quarter with symusic (not through read_midi, which
rescales to 960 ticks and would round away the very offsets measured here), classifies tracks
into stems with ``stems.classify_track``, and for steps_per_beat in (4, 6, 8, 12, 24) prints the
share of note starts, and of bass/guitar durations, that fall exactly on the grid
(``tick * steps_per_beat % tpq == 0``). Then the share of bass and guitar notes outside the roll's
48-row ranges (``roll.BASS_LOW`` / ``roll.GUITAR_LOW`` + 48), which the codec folds by octaves.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stemfill.song.io import MIDI_EXTS  # noqa: E402
from stemfill.pianoroll.grid import BASS_LOW, GUITAR_LOW, N_PITCHES  # noqa: E402
from stemfill.song.song import Track  # noqa: E402
from stemfill.song.stems import classify_track  # noqa: E402

GRIDS = (4, 6, 8, 12, 24)
LOW = {"bass": BASS_LOW, "guitar": GUITAR_LOW}


def load(files: list[Path]):
    """Per stem: list of (tpq, starts, durations, pitches) arrays; plus counts of files read/failed and tpq values."""
    from symusic import Score

    per = {s: [] for s in ("drums", "bass", "guitar")}
    failed, tpqs = 0, Counter()
    for f in files:
        try:
            score = Score(str(f))
        except Exception:  # noqa: BLE001 - a broken file is just not counted
            failed += 1
            continue
        tpq = int(score.ticks_per_quarter)
        tpqs[tpq] += 1
        for t in score.tracks:
            if len(t.notes) == 0:
                continue
            stem = classify_track(Track(name=str(t.name), program=int(t.program), is_drum=bool(t.is_drum)))
            if stem in per:
                a = t.notes.numpy()
                per[stem].append((tpq, a["time"].astype(np.int64), a["duration"].astype(np.int64),
                                  a["pitch"].astype(np.int64)))
    return per, len(files) - failed, failed, tpqs


def on_grid(parts, spb: int, field: int) -> tuple[int, int]:
    hit = total = 0
    for tpq, *arrays in parts:
        x = arrays[field]
        hit += int(np.count_nonzero(x * spb % tpq == 0))
        total += len(x)
    return hit, total


def pct(h: int, n: int) -> str:
    return f"{100 * h / n:.1f} %" if n else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="*", type=Path, default=[ROOT.parent / "shared" / "data" / "corpus"])
    a = ap.parse_args()
    files = sorted(f for i in a.inputs for f in (i.rglob("*") if i.is_dir() else [i]) if f.suffix.lower() in MIDI_EXTS)
    per, n_read, n_failed, tpqs = load(files)
    pitched = per["bass"] + per["guitar"]
    counts = {s: sum(len(p[1]) for p in per[s]) for s in per}
    print(f"{n_read} files read ({n_failed} failed); notes: " + ", ".join(f"{s} {counts[s]}" for s in per))
    print("ticks per quarter: " + ", ".join(f"{k} ({v} files)" for k, v in tpqs.most_common(6)))
    print()
    allp = per["drums"] + pitched
    friendly = [x for x in allp if x[0] % 24 == 0]
    print("Exactly on the grid (tick * steps_per_beat % tpq == 0); 'tpq%24=0 files' counts only files whose")
    print("resolution can hold every grid exactly; 'near' = start within 10 % of a step of a grid line.")
    print()
    print("| steps/beat | all starts | starts, tpq%24=0 files | drum starts | bass+guitar starts "
          "| bass+guitar durations | bass+guitar start and duration | all starts near |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for spb in GRIDS:
        s_all = on_grid(allp, spb, 0)
        s_fr = on_grid(friendly, spb, 0)
        s_dr = on_grid(per["drums"], spb, 0)
        s_pi = on_grid(pitched, spb, 0)
        d_pi = on_grid(pitched, spb, 1)
        both = sum(int(np.count_nonzero((s * spb % tpq == 0) & (d * spb % tpq == 0))) for tpq, s, d, _ in pitched)
        near = sum(int(np.count_nonzero(np.abs((s * spb / tpq + 0.5) % 1 - 0.5) <= 0.1)) for tpq, s, _, _ in allp)
        print(f"| {spb} | {pct(*s_all)} | {pct(*s_fr)} | {pct(*s_dr)} | {pct(*s_pi)} | {pct(*d_pi)} "
              f"| {pct(both, s_pi[1])} | {pct(near, s_all[1])} |")
    print()
    print("| stem | roll range (MIDI) | notes | below | above | outside |")
    print("|---|---|---:|---:|---:|---:|")
    for stem in ("bass", "guitar"):
        p = np.concatenate([x[3] for x in per[stem]]) if per[stem] else np.zeros(0, dtype=np.int64)
        lo, hi = LOW[stem], LOW[stem] + N_PITCHES
        below, above = int((p < lo).sum()), int((p >= hi).sum())
        print(f"| {stem} | {lo}..{hi - 1} | {len(p)} | {pct(below, len(p))} | {pct(above, len(p))} | {pct(below + above, len(p))} |")


if __name__ == "__main__":
    main()
