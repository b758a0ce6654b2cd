"""Whole-song filling across window seams: are the gaps between first-pass windows filled as densely, and
as well, as the windows themselves? With and without the model's ``partial_mass``.

    python bench/seams.py --data chunks --split valid --songs 14
    python bench/seams.py --cases bass+guitar --partial-mass on --songs 8   # one case, one setting

Takes the split's songs that have drums, bass and guitar (from the chunks' manifest), removes the stem(s)
of each case, fills the whole song with ``fill_roll`` (two passes; stemfill/pianoroll/fill.py; a model that hears
the song's other tracks gets them, as in ``stemfill midi``), and prints, per
setting: note starts a bar (steps where a generated note starts) inside first-pass windows and inside
the second-pass gaps, the real part's in the same places, and the agreement F1s over the whole song
(scored per 192-step segment, as the harness does).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from stemfill.evaluation import metrics as M
from stemfill.pianoroll.fill import WINDOW, fill_roll, gap_steps
from stemfill.pianoroll.model import load_model
from stemfill.song.io import read_song
from stemfill.pianoroll.grid import BASS_LOW, GUITAR_LOW, STEPS_PER_BEAT
from stemfill.pianoroll.roll import encode, encode_context
from stemfill.song.stems import classify_song
from stemfill.song.song import STEMS

CASES = (("bass", [1]), ("guitar", [2]), ("bass+guitar", [1, 2]))
LOW = {1: BASS_LOW, 2: GUITAR_LOW}


def pitch_sums(onsets: np.ndarray, c: int, where: np.ndarray) -> list[float]:
    """[sum of MIDI pitches, count] of the note starts (P, T) at the steps ``where``."""
    o = onsets[:, where]
    return [float((o.sum(1) * (LOW[c] + np.arange(o.shape[0]))).sum()), float(o.sum())]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="stemfill/models/default")
    ap.add_argument("--data", default="chunks")
    ap.add_argument("--split", default="valid")
    ap.add_argument("--songs", type=int, default=14)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", default="bass,guitar,bass+guitar", help="comma-separated, from: bass, guitar, bass+guitar")
    ap.add_argument("--partial-mass", choices=("both", "on", "off"), default="both")
    a = ap.parse_args()
    cases = [(n, m) for n, m in CASES if n in a.cases.split(",")]
    settings = {"both": (False, True), "on": (True,), "off": (False,)}[a.partial_mass]
    manifest = json.loads((Path(a.data) / "manifest.json").read_text())
    picked = [s for s in manifest["songs"] if s["split"] == a.split and set(s["stems"]) >= set(STEMS)][:a.songs]
    model = load_model(a.model)
    rolls, others = [], []
    for s in picked:  # root: as given to convert
        song = read_song(Path(s["root"]) / s["path"])
        groups = classify_song(song)
        rolls.append(encode(song, groups=groups))
        # the song's other tracks, as `stemfill midi` passes them to a model that hears them
        others.append(encode_context(song, length=rolls[-1].shape[-1], groups=groups) if model.context_planes else None)
    print(f"{len(rolls)} {a.split} songs with drums, bass and guitar ({a.data}); seed {a.seed}\n")
    print("| case | stem | partial_mass | starts/bar in windows | in gaps | real (windows / gaps) "
          "| mean pitch in windows | in gaps | real (windows / gaps) | onset F1 | pc F1 | frame F1 | seconds |\n"
          "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case, missing in cases:
        for on in settings:
            model.sampling.partial_mass = on
            acc = {c: np.zeros(6) for c in missing}  # gen/real starts in windows, in gaps, steps in each
            pit = {c: np.zeros(8) for c in missing}  # pitch sum and count: gen/real in windows, in gaps
            f1s = {c: [] for c in missing}
            t0 = time.perf_counter()
            for roll, other in zip(rolls, others):
                T = roll.shape[-1]
                known = np.ones((3, T), dtype=bool)
                known[missing] = False
                out = fill_roll(model, roll, known, seed=a.seed, other=other)
                gap = gap_steps(T)
                n = T // WINDOW
                seg = lambda x: x[:, :n * WINDOW].reshape(x.shape[0], n, WINDOW).transpose(1, 0, 2)  # noqa: E731
                for c in missing:
                    go, ro = M.onsets(out[c], STEMS[c]), M.onsets(roll[c], STEMS[c])
                    g, r = go.any(0), ro.any(0)
                    pit[c] += pitch_sums(go, c, ~gap) + pitch_sums(ro, c, ~gap) + pitch_sums(go, c, gap) + pitch_sums(ro, c, gap)
                    acc[c] += [g[~gap].sum(), r[~gap].sum(), g[gap].sum(), r[gap].sum(), (~gap).sum(), gap.sum()]
                    gs, rs = seg(out[c]), seg(roll[c])
                    f1s[c].append([M.onset_f1(gs, STEMS[c], rs, STEMS[c]).mean(), M.pc_beat_f1(gs, rs).mean(),
                                   M.frame_f1(gs, rs).mean()])
            dt = time.perf_counter() - t0
            bar = 4 * STEPS_PER_BEAT
            for c in missing:
                gw, rw, gg, rg, sw, sg = acc[c]
                on_, pc, fr = np.mean(f1s[c], axis=0)
                mp = pit[c][0::2] / np.maximum(pit[c][1::2], 1)  # gen/real windows, gen/real gaps
                print(f"| {case} | {STEMS[c]} | {'on' if on else 'off'} | {gw / sw * bar:.2f} | {gg / sg * bar:.2f} "
                      f"| {rw / sw * bar:.2f} / {rg / sg * bar:.2f} | {mp[0]:.1f} | {mp[2]:.1f} | {mp[1]:.1f} / {mp[3]:.1f} "
                      f"| {on_:.3f} | {pc:.3f} | {fr:.3f} | {dt:.0f} |")


if __name__ == "__main__":
    main()
