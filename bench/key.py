"""What naming the key (``stemfill midi --add bass --add guitar --key ...``) does when only drums are known.

    python bench/key.py --data chunks/quality-corpus --split test
    python bench/key.py --data chunks/quality-corpus --split test --songs

``--songs``: whole songs of the split instead, those with other pitched tracks (keys, synths, vocals,
not in the roll) besides drums, bass and guitar. Bass and guitar are removed and filled again, with
the new parts left in the model's key or moved into the key of the other tracks (the default of
``fill_song``); scored against the real parts over the whole song.

Fills bass and guitar of every chunk (of the split) that has all three stems, with only the drums
known, as the harness's "bass+guitar" case does (same chunk pick and seed). Scores the model's fill as
it is, and after ``key.fit_key``'s move into the key a musician would name: the Krumhansl-Schmuckler
estimate of the real bass+guitar. Prints pitch-class-per-beat F1 and frame F1 (docs/evaluation.md).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from stemfill.datasets.chunks import load_chunks
from stemfill.evaluation import harness
from stemfill.evaluation import metrics as M
from stemfill.pianoroll import key as K
from stemfill.pianoroll.fill import fill_chunks, load_model
from stemfill.pianoroll.roll import CHANNEL

BASS, GUITAR = CHANNEL["bass"], CHANNEL["guitar"]
hist = K.pitched_hist


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="stemfill/models/default")
    ap.add_argument("--data", default="chunks/quality-corpus")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, help="evaluate only N chunks (the harness's seeded pick)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--songs", action="store_true", help="whole songs with other pitched tracks (see above)")
    a = ap.parse_args()
    model = load_model(a.model)
    if a.songs:
        return songs(model, a)
    chunks = load_chunks(a.data, a.split)
    sel = harness.select(len(chunks), a.limit, a.seed)
    case = next(c for c in harness.make_cases(chunks.present[sel], ("pair",)) if set(c.missing) == {BASS, GUITAR})
    truth = chunks.rolls[sel[case.idx]]
    known = np.ones(truth.shape[:2], dtype=bool)
    known[:, [BASS, GUITAR]] = False
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = fill_chunks(model, np.where(known[:, :, None, None], truth, False), known, seed=a.seed)
    keyed = out.copy()
    right = 0
    for i in range(len(truth)):
        real_key = K.estimate_key(hist(truth[i]))
        right += K.estimate_key(hist(out[i])) == real_key
        s = K.best_shift(hist(out[i]), *real_key)
        for c in (BASS, GUITAR):
            keyed[i, c] = K.transpose(out[i, c], s)
    print(f"{len(truth)} chunks ({a.data}, {a.split}), only drums known; {time.perf_counter() - t0:.0f} s; "
          f"the model's own key estimate equals the real one in {right / len(truth):.1%}\n")
    print("| fill | bass pc F1 | bass frame F1 | guitar pc F1 | guitar frame F1 |\n|---|---:|---:|---:|---:|")
    for name, o in (("model, its own key", out), ("model, --key = the real key", keyed)):
        cells = [f"{float(np.mean(f(o[:, c], truth[:, c]))):.3f}" for c in (BASS, GUITAR) for f in (M.pc_beat_f1, M.frame_f1)]
        print(f"| {name} | " + " | ".join(cells) + " |")


def songs(model, a) -> None:
    import json
    from pathlib import Path

    from stemfill.pianoroll.fill import fill_song_detail
    from stemfill.pianoroll.io import read_song
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
            _, filled, _ = fill_song_detail(song, ["bass", "guitar"], model, seed=a.seed, replace=True,
                                            follow_other=follow)
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
