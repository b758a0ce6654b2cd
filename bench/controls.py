"""Measured controllability: does each control move its attribute, what does it cost, and does --like work.

On chunks of one split (test by default) where a stem plays, that stem alone is removed and filled
again: with no control (auto), and with each control at low, mid and high. Per control it prints

* the mean achieved attribute per level (the same measure the model was conditioned on, controls.py),
* monotonic: the share of songs (achieved attribute averaged over the song's chunks) with low < mid < high,
* spearman: requested number vs achieved, per chunk, for numbers drawn between the training data's
  10th and 90th percentiles (density in notes a bar, register in semitones, complexity as a share),
* the fit cost: agreement with the real part (onset F1, pitch-class F1) and the density error
  (|notes a bar - the real part's|) at each level, beside auto;
* the realism cost: the classifier two-sample test of ``stemfill eval --realism`` (evaluation/realism.py)
  telling the filled parts from the real ones of the same chunks, folds grouped by song (0.5 = cannot
  tell). With 60 chunks a stem its folds spread by about +-0.1: read it for large moves only.

``--like``: each chunk takes a reference part from a chunk of another song; the filled part's groove
distance to the reference (``controls.groove_distance``) with the reference's controls vs auto.

    python bench/controls.py --data CHUNKS [--model DIR] [--chunks 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemfill.datasets.chunks import load_chunks  # noqa: E402
from stemfill.evaluation.metrics import score_stem  # noqa: E402
from stemfill.evaluation.realism import segment_features, two_sample_accuracy  # noqa: E402
from stemfill.generate.controls import (LEVELS, StemControls, bar_attributes, control_planes,  # noqa: E402
                                        groove, groove_distance, reference_controls)
from stemfill.pianoroll.fill import fill_chunks  # noqa: E402
from stemfill.pianoroll.model import default_model_path, load_model  # noqa: E402
from stemfill.song.song import STEMS  # noqa: E402

CONTROLS = {"drums": ["density", "syncopation", "fill"], "bass": ["density", "syncopation", "register"],
            "guitar": ["density", "syncopation", "register"]}
FILL_LEVELS = {"low": 0, "mid": 4, "high": 2}  # --fills none, phrase, often


def pick_chunks(ch, stem: str, n: int, seed: int) -> np.ndarray:
    """Up to n chunks where ``stem`` plays in at least 3 bars and another stem has notes, spread over songs."""
    c = STEMS.index(stem)
    _, plays = bar_attributes(torch.from_numpy(ch.rolls))
    ok = (plays[:, c].sum(-1) >= 3).numpy() & (np.delete(ch.present, c, axis=1).any(1))
    idx = np.flatnonzero(ok)
    rng = np.random.default_rng(seed)
    rng.shuffle(idx)
    # round robin over songs, so that a long song does not take every pick
    by_song: dict[int, list[int]] = {}
    for i in idx:
        by_song.setdefault(int(ch.song_index[i]), []).append(int(i))
    out: list[int] = []
    while len(out) < n and any(by_song.values()):
        for s in list(by_song):
            if by_song[s] and len(out) < n:
                out.append(by_song[s].pop())
    return np.array(sorted(out))


def achieved(rolls: np.ndarray, stem: str, attr: str) -> np.ndarray:
    """(N,) the stem's attribute per chunk: density and fill averaged over all bars, others over bars it plays."""
    raw, plays = bar_attributes(torch.from_numpy(rolls))
    v = raw[(stem, attr)].numpy()
    p = plays[:, STEMS.index(stem)].numpy()
    if attr in ("density", "fill"):
        return v.mean(1)
    return np.where(p.any(1), (v * p).sum(1) / np.maximum(p.sum(1), 1), np.nan)


DRUMS = "model"  # the drum decoder (main sets it from --drum-decoder and --patterns)


def fill_with(model, rolls, known, other, stem: str, reqs: list[StemControls | None], seed: int) -> np.ndarray:
    P, L = rolls.shape[2], rolls.shape[3]
    ctrl = None
    if any(r is not None and not r.empty() for r in reqs):
        ctrl = np.stack([control_planes({stem: r} if r is not None else {}, L, P) for r in reqs])
    return fill_chunks(model, rolls, known, seed=seed, other=other, controls=ctrl, drums=DRUMS)


def fit(out: np.ndarray, truth: np.ndarray, stem: str, other: np.ndarray, songs: np.ndarray) -> dict[str, float]:
    c = STEMS.index(stem)
    s = score_stem(out, truth, c)
    res = {"onset_F1": float(np.mean(s["agree/onset_F1"]))}
    if "agree/pc_beat_F1" in s:
        res["pc_F1"] = float(np.mean(s["agree/pc_beat_F1"]))
    dens_gen = achieved(out, stem, "density")
    dens_real = achieved(truth, stem, "density")
    res["density_err"] = float(np.mean(np.abs(dens_gen - dens_real)))
    real = segment_features(truth, c, other=other)
    fake = segment_features(out, c, other=other)
    res["realism"] = two_sample_accuracy(real, fake, songs)["accuracy"]
    return res


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    ok = ~(np.isnan(a) | np.isnan(b))
    return float(spearmanr(a[ok], b[ok]).statistic) if ok.sum() > 2 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="chunk folder (stemfill convert)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    ap.add_argument("--chunks", type=int, default=60, help="chunks per stem")
    ap.add_argument("--stems", default="drums,bass,guitar")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--control-guidance", type=float, default=None, help="override the model's control_guidance")
    ap.add_argument("--control-steer", type=float, default=None, help="override the model's control_steer")
    ap.add_argument("--drum-decoder", choices=("model", "cells", "patterns"), default="model",
                    help="drums cell by cell or by whole phrases (default: the model's own)")
    ap.add_argument("--patterns", default="", metavar="KEY=VALUE,...",
                    help="pattern decoder settings (PatternConfig / PlanConfig fields), as bench/phrase.py takes them")
    args = ap.parse_args()

    model = load_model(args.model or default_model_path())
    if args.control_guidance is not None:
        model.sampling.control_guidance = args.control_guidance
    if args.control_steer is not None:
        model.sampling.control_steer = args.control_steer
    global DRUMS
    if args.drum_decoder == "cells":
        DRUMS = None
    elif args.drum_decoder == "patterns" or args.patterns:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from phrase import with_settings  # bench/phrase.py: PatternConfig / PlanConfig fields from key=value
        from stemfill.generate.decoder import drum_decoder_for

        DRUMS = with_settings(drum_decoder_for(model, decoder="patterns"), args.patterns)
    results_decoder = {"drum_decoder": args.drum_decoder, "patterns": args.patterns}
    cfg = model.controls
    if cfg is None:
        sys.exit(f"error: {args.model or 'the default model'}: has no controls")
    ch = load_chunks(args.data, args.split)
    other_all = ch.context_or_empty()
    results: dict = {"split": args.split, "model": str(args.model or "default"),
                     "control_guidance": model.sampling.control_guidance,
               "control_steer": model.sampling.control_steer, **results_decoder, "stems": {}}
    rng = np.random.default_rng(args.seed)
    for stem in args.stems.split(","):
        c = STEMS.index(stem)
        idx = pick_chunks(ch, stem, args.chunks, args.seed)
        rolls, other, songs = ch.rolls[idx], other_all[idx], ch.song_index[idx]
        n = len(idx)
        known = np.ones((n, len(STEMS)), dtype=bool)
        known[:, c] = False
        res: dict = {"chunks": n, "songs": int(len(set(songs.tolist()))), "controls": {}}
        auto = fill_with(model, rolls, known, other, stem, [None] * n, args.seed)
        res["auto"] = fit(auto, rolls, stem, other, songs)
        for attr in CONTROLS[stem]:
            per_level, fits = {}, {}
            for level, unit in LEVELS.items():
                if attr == "fill":
                    reqs = [StemControls(fill_every=FILL_LEVELS[level])] * n
                else:
                    reqs = [StemControls({attr: unit})] * n
                out = fill_with(model, rolls, known, other, stem, reqs, args.seed)
                per_level[level] = achieved(out, stem, attr)
                fits[level] = fit(out, rolls, stem, other, songs)
            song_means = {lv: {} for lv in LEVELS}
            for lv, v in per_level.items():
                for s in set(songs.tolist()):
                    m = v[songs == s]
                    m = m[~np.isnan(m)]
                    if len(m):
                        song_means[lv][s] = float(m.mean())
            common = set.intersection(*(set(d) for d in song_means.values()))
            mono = [song_means["low"][s] < song_means["mid"][s] < song_means["high"][s] for s in common]
            entry = {
                "real": float(np.nanmean(achieved(rolls, stem, attr))),
                "auto": float(np.nanmean(achieved(auto, stem, attr))),
                "levels": {lv: float(np.nanmean(v)) for lv, v in per_level.items()},
                "monotonic_songs": float(np.mean(mono)) if mono else float("nan"),
                "songs_compared": len(common),
                "fit": fits,
            }
            if attr != "fill":  # numbers: requested raw value vs achieved
                units = rng.uniform(0.1, 0.9, size=n)
                reqs = [StemControls({attr: float(u)}) for u in units]
                out = fill_with(model, rolls, known, other, stem, reqs, args.seed)
                requested = np.array([cfg.from_unit(stem, attr, u) for u in units])
                entry["spearman"] = spearman(requested, achieved(out, stem, attr))
            res["controls"][attr] = entry
        # --like: a reference part from another song's chunk
        perm = rng.permutation(n)
        for i in range(n):  # move references that come from the same song
            if songs[perm[i]] == songs[i]:
                j = next((j for j in range(n) if songs[perm[j]] != songs[i] and songs[perm[i]] != songs[j]), None)
                if j is not None:
                    perm[i], perm[j] = perm[j], perm[i]
        refs = rolls[perm]
        reqs = [reference_controls(refs[i], stem, cfg) for i in range(n)]
        liked = fill_with(model, rolls, known, other, stem, reqs, args.seed)
        g_ref = groove(torch.from_numpy(refs))[:, c].numpy()
        g_auto = groove(torch.from_numpy(auto))[:, c].numpy()
        g_like = groove(torch.from_numpy(liked))[:, c].numpy()
        g_real = groove(torch.from_numpy(rolls))[:, c].numpy()
        d_auto = np.array([groove_distance(g_auto[i], g_ref[i]) for i in range(n)])
        d_like = np.array([groove_distance(g_like[i], g_ref[i]) for i in range(n)])
        d_real = np.array([groove_distance(g_real[i], g_ref[i]) for i in range(n)])
        res["like"] = {"groove_dist_auto": float(d_auto.mean()), "groove_dist_like": float(d_like.mean()),
                       "groove_dist_real": float(d_real.mean()), "closer_share": float(np.mean(d_like < d_auto)),
                       "fit": fit(liked, rolls, stem, other, songs)}
        results["stems"][stem] = res
        print_stem(stem, res)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")


def _acc(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def print_stem(stem: str, res: dict) -> None:
    a = res["auto"]
    print(f"\n## {stem}: {res['chunks']} chunks from {res['songs']} songs; auto: "
          + ", ".join(f"{k} {_acc(v)}" for k, v in a.items()))
    print("| control | real | auto | low | mid | high | monotonic songs | spearman | onset F1 low/mid/high | "
          "pc F1 low/mid/high | density err low/mid/high | realism low/mid/high |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for attr, e in res["controls"].items():
        lv = e["levels"]
        f = e["fit"]
        pc = "/".join(f"{f[x]['pc_F1']:.3f}" for x in LEVELS) if "pc_F1" in f["low"] else "-"
        print(f"| {attr} | {e['real']:.2f} | {e['auto']:.2f} | {lv['low']:.2f} | {lv['mid']:.2f} | {lv['high']:.2f} | "
              f"{e['monotonic_songs']:.0%} of {e['songs_compared']} | {e.get('spearman', float('nan')):.2f} | "
              + "/".join(f"{f[x]['onset_F1']:.3f}" for x in LEVELS) + f" | {pc} | "
              + "/".join(f"{f[x]['density_err']:.1f}" for x in LEVELS) + " | "
              + "/".join(_acc(f[x].get("realism")) for x in LEVELS) + " |")
    lk = res["like"]
    print(f"--like: groove distance to the reference {lk['groove_dist_auto']:.3f} (auto) -> "
          f"{lk['groove_dist_like']:.3f} (like); closer in {lk['closer_share']:.0%} of chunks; "
          f"the real part's {lk['groove_dist_real']:.3f}; fit with --like: "
          + ", ".join(f"{k} {_acc(v)}" for k, v in lk["fit"].items()))


if __name__ == "__main__":
    main()
