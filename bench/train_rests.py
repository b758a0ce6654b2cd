"""Train a rest model (``stemfill.generate.rests``): where a drummer (bassist, guitarist) sits out while the
song plays.

    python bench/train_rests.py --data CHUNKS --stem drums -o stemfill/models/default/drum-rests.json

Reads every song of the chunk folder's manifest with the stem, whole, from its file: per bar (in the song's
own meter) the features of the song's other parts (``rests.bar_features``) and whether the real part rests
there (no hit, no sounding note).
Fits the logistic regression on the TRAIN split's songs; on the VALID split's it prints the AUC and, per
threshold, the share of bars rested, the real rests caught and the bars rested where the drummer plays, and
keeps the threshold whose rest share is closest to the real one (``--threshold``: another, e.g. one chosen on
valid whole songs with ``bench/phrase.py``). ``crash_entry`` is the share of the train
split's entries (the first bar with drums after 2+ bars of rest) with a crash on the downbeat.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.5)


def song_rows(entry: dict, data: Path, stem: str = "drums"):
    """(features (n, F), rests (n,) bool, plays (n,) bool, entries, crashed entries) of one song, or None."""
    from phrase import song_file

    from stemfill.generate.controls import CRASH_ROWS
    from stemfill.generate.plan import song_bars
    from stemfill.generate.rests import bar_features, stem_parts
    from stemfill.pianoroll.grid import CHANNEL
    from stemfill.pianoroll.roll import encode, encode_context, n_steps
    from stemfill.song.io import read_song
    from stemfill.song.stems import classify_song

    song = read_song(song_file(entry, data))
    groups = classify_song(song)
    T = max(n_steps(song), 1)
    real = encode(song, length=T, groups=groups)
    c = CHANNEL[stem]
    if not real[c].any():
        return None
    other = encode_context(song, length=T, groups=groups)
    bars = song_bars(song, T)
    F, plays = bar_features(stem_parts(stem, real, other), bars)
    hits = np.array([real[c][:, b.start:b.start + b.length].any() for b in bars])
    entries = crashed = 0
    for k in range(2, len(bars)):
        if hits[k] and not hits[k - 1] and not hits[k - 2] and plays[k - 2:k].all():
            entries += 1
            crashed += stem == "drums" and bool(real[0][list(CRASH_ROWS), bars[k].start:bars[k].start + 2].any())
    return F, ~hits, plays, entries, crashed


def collect(manifest: dict, data: Path, split: str, stem: str = "drums"):
    from rich.progress import track

    from stemfill.datasets.chunks import in_split

    songs = [s for s in manifest["songs"] if in_split(s, split) and stem in s.get("stems", [])]
    X, Y, n_songs, entries, crashed, per_song = [], [], 0, 0, 0, []
    for e in track(songs, description=f"{split} songs"):
        try:
            r = song_rows(e, data, stem)
        except Exception as ex:  # a file that no longer reads: say so and go on
            print(f"skip {e['path']}: {ex}", file=sys.stderr)
            continue
        if r is None:
            continue
        F, rest, plays, en, cr = r
        X.append(F[plays])
        Y.append(rest[plays])
        per_song.append((F, rest, plays))
        n_songs += 1
        entries += en
        crashed += cr
    return np.concatenate(X), np.concatenate(Y), n_songs, entries, crashed, per_song


def hysteresis(model, per_song, enter: float, stay: float) -> tuple[float, float, float]:
    """(bars rested, real rests caught, rested where the drummer plays) when a rest begins above ``enter`` and
    goes on while the chance stays above ``stay`` (a trial: the shipped plan uses one threshold)."""
    R, Y = [], []
    for F, rest, plays in per_song:
        p = model.chance(F)
        out, on = np.zeros(len(p), dtype=bool), False
        for k in range(len(p)):
            on = p[k] > enter or (on and p[k] > stay)
            out[k] = on and plays[k]
        R.append(out[plays])
        Y.append(rest[plays])
    r, y = np.concatenate(R), np.concatenate(Y)
    return float(r.mean()), float(r[y].mean()), float(r[~y].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="chunk folder (its manifest lists the songs and splits)")
    ap.add_argument("--stem", choices=("drums", "bass", "guitar"), default="drums")
    ap.add_argument("-o", "--out", type=Path, required=True, help="the rest model to write (drum-rests.json, ...)")
    ap.add_argument("--C", type=float, default=1.0, help="inverse regularisation of the logistic regression")
    ap.add_argument("--threshold", type=float, default=None, help="rest above this chance (default: the one whose "
                    "share of rested valid bars is closest to the real share)")
    a = ap.parse_args()

    from sklearn.metrics import roc_auc_score

    from stemfill.generate.rests import train_rests

    t0 = time.perf_counter()
    manifest = json.loads((a.data / "manifest.json").read_text())
    Xt, Yt, nt, en, cr, _ = collect(manifest, a.data, "train", a.stem)
    Xv, Yv, nv, _, _, valid_songs = collect(manifest, a.data, "valid", a.stem)
    model = train_rests(a.stem, Xt, Yt, {}, C=a.C)
    p = model.chance(Xv)
    auc = float(roc_auc_score(Yv, p))
    print(f"{a.stem}: train: {nt} songs, {len(Yt)} bars where the song plays, the real part rests in {Yt.mean():.3f}")
    print(f"valid: {nv} songs, {len(Yv)} bars, the real part rests in {Yv.mean():.3f}; AUC {auc:.3f}")
    print("| threshold | bars rested | real rests caught | rested where the player plays |")
    print("|--:|--:|--:|--:|")
    rows = []
    for th in THRESHOLDS:
        r = p > th
        rows.append((th, float(r.mean()), float(r[Yv].mean()), float(r[~Yv].mean())))
        print(f"| {th} | {r.mean():.3f} | {r[Yv].mean():.3f} | {r[~Yv].mean():.3f} |")
    print("\nTrial, not used by the plan: a rest begins above one threshold and goes on above a lower one")
    print("| begin | go on | bars rested | real rests caught | rested where the player plays |")
    print("|--:|--:|--:|--:|--:|")
    for enter, stay in ((0.35, 0.2), (0.4, 0.2), (0.5, 0.15), (0.5, 0.25)):
        print(f"| {enter} | {stay} | " + " | ".join(f"{v:.3f}" for v in hysteresis(model, valid_songs, enter, stay)) + " |")
    th = a.threshold if a.threshold is not None else min(rows, key=lambda x: abs(x[1] - Yv.mean()))[0]
    model.threshold = float(th)
    model.crash_entry = round(cr / en, 3) if en else 0.0
    model.meta = {"trained_on": f"the real {a.stem} parts of the train split's songs (chunk manifest: corpus, "
                                "corpus-extra, onyxite, guitarpro, midi)",
                  "train_songs": nt, "train_bars": int(len(Yt)), "valid_songs": nv, "valid_auc": round(auc, 4),
                  "valid_rest_share": round(float(Yv.mean()), 4), "entries": en, "crashed_entries": cr,
                  "threshold_rows": rows, "command": f"python bench/train_rests.py --data CHUNKS --stem {a.stem} -o {a.out.name}"
                             + (f" --threshold {a.threshold}" if a.threshold is not None else "")}
    model.save(a.out)
    how = "as given" if a.threshold is not None else "closest rest share to the real one on valid"
    print(f"threshold {th} ({how}); crash on entry {model.crash_entry} "
          f"({cr} of {en} entries); wrote {a.out} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
