"""What naming the key (``stemfill midi --add bass --add guitar --key ...``) does when only drums are known.

    python bench/key.py --data chunks/quality-corpus --split test
    python bench/key.py --data chunks/quality-corpus --split test --fixed-keys
    python bench/key.py --data chunks/quality-corpus --split test --songs

Fills bass and guitar of every chunk (of the split) that has all three stems, with only the drums
known: the harness's "bass+guitar" case, with its chunk pick, batches and random streams, so the
"as filled" rows are the numbers of docs/results.md. Every system of ``--systems`` (default: random,
rule, retrieval, model) is scored three ways, on pitch-class-per-beat F1 and frame F1
(docs/evaluation.md):

- as filled (the agreement metrics of the results table);
- moved into the real key: ``key.fit_key``, the move ``--key`` makes, into the Krumhansl-Schmuckler
  estimate of the real bass + guitar, applied alike to every system's fill (the key a musician names);
- any key: ``keyfree/pc_beat_F1``, the best of the 12 rotations per chunk.

``--fixed-keys``: also the model's fills moved into each of the 24 keys, one key for every chunk, the
best a part that commits to a key without hearing one can do on this split's keys.

``--songs``: whole songs of the split instead, those with other pitched tracks (keys, synths, vocals,
not in the roll) besides drums, bass and guitar. Bass and guitar are removed and filled again, with
the new parts left in the model's key or moved into the key of the other tracks (the default of
``fill_song``); scored against the real parts over the whole song.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from stemfill.datasets.chunks import load_chunks
from stemfill.evaluation import harness
from stemfill.evaluation import metrics as M
from stemfill.evaluation.baselines import get_system
from stemfill.pianoroll import key as K
from stemfill.pianoroll.model import load_model
from stemfill.pianoroll.grid import CHANNEL

BASS, GUITAR = CHANNEL["bass"], CHANNEL["guitar"]
hist = K.pitched_hist


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="stemfill/models/default")
    ap.add_argument("--data", default="chunks/quality-corpus")
    ap.add_argument("--split", default="test")
    ap.add_argument("--systems", default="random,rule,retrieval,model", help="comma-separated (chunks mode)")
    ap.add_argument("--fixed-keys", action="store_true", help="also the model's fills moved into each of the 24 keys")
    ap.add_argument("--limit", type=int, help="evaluate only N chunks (the harness's seeded pick)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--songs", action="store_true", help="whole songs with other pitched tracks (see above)")
    a = ap.parse_args()
    if a.songs:
        return songs(load_model(a.model), a)
    chunks = load_chunks(a.data, a.split)
    sel = harness.select(len(chunks), a.limit, a.seed)
    cases = harness.make_cases(chunks.present[sel])  # the harness's cases and their order (its random streams)
    ci, case = next((i, c) for i, c in enumerate(cases) if set(c.missing) == {BASS, GUITAR})
    def batches():  # anew for every system: each gets the harness's fresh random streams
        return harness.case_batches(chunks, sel[case.idx], case.missing, ci, a.seed)

    truth = chunks.rolls[sel[case.idx]]
    generated = np.zeros(truth.shape[:2] + truth.shape[-1:], dtype=bool)  # (N, 3, T): the steps each channel generates
    generated[:, list(case.missing)] = True
    real_keys = [K.estimate_key(hist(t)) for t in truth]
    names = [n.strip() for n in a.systems.split(",") if n.strip()]
    train = load_chunks(a.data, "train") if {"random", "retrieval"} & set(names) else None
    print(f"{len(truth)} chunks ({a.data}, {a.split}) with drums, bass and guitar; bass and guitar removed, "
          "only drums known\n")
    print("| system | fill | bass pc F1 | bass frame F1 | guitar pc F1 | guitar frame F1 | seconds |\n"
          "|---|---|---:|---:|---:|---:|---:|")
    anykey, fills = {}, {}
    for name in names:
        system = get_system(name, model_path=a.model, train_chunks=train, seed=a.seed)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = np.concatenate([system.fill(masked, known, rng) for _, known, masked, rng, _ in batches()]).astype(bool)
        sec = time.perf_counter() - t0
        fills[name] = out
        keyed = into_keys(out, generated, real_keys)
        for label, o in (("as filled", out), ("moved into the real key", keyed)):
            print(f"| {name} | {label} | {_cells(o, truth)} | {sec:.0f} |")
        anykey[name] = [float(np.mean(M.pc_beat_f1_any_key(out[:, c], truth[:, c]))) for c in (BASS, GUITAR)]
    print("\n| system | bass pc F1 any key | guitar pc F1 any key |\n|---|---:|---:|")
    for name, (b, g) in anykey.items():
        print(f"| {name} | {b:.3f} | {g:.3f} |")
    if "model" in fills:
        out = fills["model"]
        hit = np.array([K.estimate_key(hist(o)) == k for o, k in zip(out, real_keys)])
        print(f"\nThe model's key (Krumhansl-Schmuckler estimate of its bass + guitar) equals the real one in "
              f"{hit.mean():.1%} of the chunks. Its fills as filled, by whether it did:\n\n"
              "| the model's key | chunks | bass pc F1 | bass frame F1 | guitar pc F1 | guitar frame F1 |\n"
              "|---|---:|---:|---:|---:|---:|")
        for label, m in (("the real key", hit), ("another key", ~hit)):
            if m.any():
                print(f"| {label} | {int(m.sum())} | {_cells(out[m], truth[m])} |")
        if a.fixed_keys:
            rows = [(K.key_name(*k), _scores(into_keys(out, generated, [k] * len(out)), truth))
                    for k in ((tonic, minor) for minor in (False, True) for tonic in range(12))]
            print("\nThe model's fills, every chunk moved into one fixed key (24 keys, by guitar pc F1):\n\n"
                  "| key | bass pc F1 | bass frame F1 | guitar pc F1 | guitar frame F1 |\n|---|---:|---:|---:|---:|")
            for k, v in sorted(rows, key=lambda r: -r[1][2]):
                print(f"| {k} | {_fmt(v)} |")


def into_keys(out: np.ndarray, generated: np.ndarray, keys) -> np.ndarray:
    """Each filled chunk's new bass and guitar moved into its key with ``key.fit_key`` (as ``--key`` does)."""
    moved = out.copy()
    for i, k in enumerate(keys):
        moved[i], _ = K.fit_key(out[i], generated[i], k)
    return moved


def _scores(o: np.ndarray, truth: np.ndarray) -> list[float]:
    """[bass pc F1, bass frame F1, guitar pc F1, guitar frame F1], means over the chunks."""
    return [float(np.mean(f(o[:, c], truth[:, c]))) for c in (BASS, GUITAR) for f in (M.pc_beat_f1, M.frame_f1)]


def _fmt(values) -> str:
    return " | ".join(f"{v:.3f}" for v in values)


def _cells(o: np.ndarray, truth: np.ndarray) -> str:
    return _fmt(_scores(o, truth))


def songs(model, a) -> None:
    import json
    from pathlib import Path

    from stemfill.pianoroll.fill import fill_song
    from stemfill.song.io import read_song
    from stemfill.pianoroll.roll import encode, n_steps

    manifest = json.loads((Path(a.data) / "manifest.json").read_text())
    rows, t0 = {False: [], True: []}, time.perf_counter()
    for entry in manifest["songs"]:
        if entry["split"] != a.split or not {"drums", "bass", "guitar"} <= set(entry["stems"]):
            continue
        song = read_song(Path(entry["root"]) / entry["path"])
        if K.other_tracks_key(song) is None:  # no other pitched tracks
            continue
        real = encode(song, length=max(n_steps(song), 1))
        for follow in (False, True):
            filled = fill_song(song, ["bass", "guitar"], model, seed=a.seed, replace=True,
                               follow_other=follow).roll
            T = min(real.shape[-1], filled.shape[-1])
            rows[follow].append([float(f(filled[None, c, :, :T], real[None, c, :, :T])[0])
                                 for c in (BASS, GUITAR) for f in (M.pc_beat_f1, M.frame_f1)])
    n = len(rows[True])
    print(f"{n} songs ({a.data}, {a.split}) with drums, bass, guitar and other pitched tracks; bass and guitar "
          f"removed and filled again; {time.perf_counter() - t0:.0f} s\n")
    print("| new bass + guitar | bass pc F1 | bass frame F1 | guitar pc F1 | guitar frame F1 |\n|---|---:|---:|---:|---:|")
    for follow, name in ((False, "in the model's key"), (True, "moved into the other tracks' key (default)")):
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in np.mean(rows[follow], axis=0)) + " |")


if __name__ == "__main__":
    main()
