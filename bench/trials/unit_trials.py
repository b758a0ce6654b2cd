"""Settings of the bass's and guitar's unit decoder (stemfill/generate/units.py) on held-out chunks
(docs/generation.md, "The guitar plays real guitarists' bars").

Not part of the product: the script that measured the tables, kept so that their numbers can be re-measured.

    python bench/trials/unit_trials.py --data CHUNKS --split valid --stem guitar --limit 600 SETTING ...

The shipped model fills the chunks with ``--stem`` missing (the rest known, the song's other tracks heard) with
its units off, keeping the network's P; each SETTING then chooses the bars again with the model folder's
library and critic and prints onset, pitch-class and frame F1, notes a bar and the realism two-sample accuracy
(logistic and boosting, by song: the tests of ``stemfill eval --realism``) against the real parts. The first
row is the decoder without units. SETTING is ``key=value,...`` of ``UnitConfig`` fields (``keep=0.3``,
``w_critic=0.5``), ``art=W``: the draw's score less W x the standard deviation over its bars of their notes'
mean log2 length (a cost on changing articulation from bar to bar), ``density=L``: the draw's score less L x its
note starts beyond the decoder's own part's,
as a share of those (a cost the shipped decoder does not have), ``own=0``: draws from units alone, the
decoder's bars left out (as the critic's training draws), and ``players=M,per=K``: one player per draw, K draws
from each of the M train songs whose bars fit the window best (a unit's songs: the library's train chunks, as
``bench/train_units.py`` takes them; a song's fit: the sum over the window's bars of its best unit's pitch-free
fit), so that a draw keeps one player's articulation, density and voicing.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="valid", choices=("valid", "test"))
    ap.add_argument("--stem", default="guitar", choices=("bass", "guitar"))
    ap.add_argument("--limit", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", type=Path, help="model folder (default: the shipped one)")
    ap.add_argument("settings", nargs="*", default=["density=0"])
    a = ap.parse_args(argv)
    from stemfill.datasets.chunks import load_chunks
    from stemfill.evaluation import harness
    from stemfill.evaluation import metrics as M
    from stemfill.evaluation.realism import segment_features, two_sample_accuracy
    from stemfill.generate.critic import get_critic
    from stemfill.generate.units import DEFAULTS, get_library, part_features, unit_draws
    from stemfill.pianoroll import fill as F
    from stemfill.pianoroll.model import default_model_path, load_model
    from stemfill.song.song import STEMS

    t0 = time.perf_counter()
    folder = a.model or default_model_path()
    stem, c = a.stem, STEMS.index(a.stem)
    lib, critic = get_library(folder, stem), get_critic(folder, stem)
    ch = load_chunks(a.data, a.split)
    sel = harness.select(len(ch), a.limit, a.seed)
    sel = sel[ch.present[sel, c]]
    truth, other, song = ch.rolls[sel], ch.context[sel], ch.song_index[sel]
    model = load_model(folder, device="cpu")
    model.sampling = replace(model.sampling, units=(False, False, False))
    known = np.ones((len(sel), 3), bool)
    known[:, c] = False
    probs: list = []
    cells = F.fill_chunks(model, truth, known, seed=a.seed, other=other, batch=16, drums=None, probs=probs)
    p = probs[0][:, c]
    real = segment_features(truth, c, other=other)
    print(f"{len(sel)} {a.split} chunks, {stem} missing ({time.perf_counter() - t0:.0f} s)")
    print(f"| setting | onset F1 | pc F1 | frame F1 | notes a bar (real "
          f"{M.note_density(truth[:, c], stem).mean():.1f}) | logistic | boosting |")
    print("|---|--:|--:|--:|--:|--:|--:|")

    def report(name: str, part: np.ndarray) -> None:
        out = truth.copy()
        out[:, c] = part
        s = M.score_stem(out, truth, c)
        g = segment_features(out, c, other=other)
        acc = [two_sample_accuracy(real, g, song, classifier=k)["accuracy"] for k in ("logistic", "boosting")]
        print(f"| {name} | {s['agree/onset_F1'].mean():.3f} | {s['agree/pc_beat_F1'].mean():.3f} | "
              f"{s['agree/frame_F1'].mean():.3f} | {M.note_density(part, stem).mean():.1f} | {acc[0]:.3f} | "
              f"{acc[1]:.3f} |", flush=True)

    report("no units", cells[:, c])
    open_ = np.ones(truth.shape[-1] // 48, dtype=bool)
    players_of = None
    for setting in a.settings:
        kw = dict(kv.split("=") for kv in setting.split(",") if kv)
        density = float(kw.pop("density", 0))
        art = float(kw.pop("art", 0))
        own = bool(int(kw.pop("own", 1)))
        players, per = int(kw.pop("players", 0)), int(kw.pop("per", 8))
        if players and players_of is None:
            players_of = unit_songs(a.data, lib, stem, c)
        cfg = replace(DEFAULTS[stem], **{k: type(getattr(DEFAULTS[stem], k))(v) for k, v in kw.items()})
        part = cells[:, c].copy()
        for i in range(len(sel)):
            rng = np.random.default_rng([a.seed, i])
            if players:
                outs, score = player_draws(lib, players_of, cfg, cells[i, c], p[i], open_, rng, players, per, own)
            else:
                outs, score = unit_draws(lib, cfg, cells[i, c], p[i], open_, rng, cfg.draws, with_own=own)
            if len(outs) > 1 and critic is not None and cfg.w_critic:
                score = score - cfg.w_critic * critic.logit_fake(part_features(cells[i], c, outs, other[i]))
            if density:
                starts = M.onsets(cells[i, c][None], stem).sum() + 1
                score = score - density * np.maximum(M.onsets(outs, stem).sum(axis=(1, 2)) - starts, 0) / starts
            if art:
                score = score - art * bar_length_spread(outs, stem)
            part[i] = outs[int(np.argmax(score))]
        report(setting, part)
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


def unit_songs(data: Path, lib, stem: str, c: int) -> tuple[np.ndarray, np.ndarray]:
    """The library's units by train song: (units sorted by song, the first index of each song's units)."""
    from stemfill.datasets.chunks import load_chunks, root_name
    from stemfill.generate.units import MAX_NOTES, bar_notes

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from train_units import SOURCES

    index = {(tuple(lib.start[k, :n]), tuple(lib.end[k, :n]), tuple(lib.rel[k, :n])): k
             for k, n in enumerate(lib.n.tolist())}
    tr = load_chunks(data, "train", require=(stem,))
    four = np.array([tr.songs[i].get("time_signature") == "4/4" and root_name(tr.songs[i]) in SOURCES
                     for i in tr.song_index]) & (tr.offsets % 48 == 0)
    pairs = set()
    for j in np.flatnonzero(four):
        for t0, t1, row in bar_notes(tr.rolls[j:j + 1, c], stem):
            k = index.get((tuple(t0), tuple(t1), tuple(row - row[0]))) if len(t0) <= MAX_NOTES[stem] else None
            if k is not None:
                pairs.add((int(tr.song_index[j]), k))
    pairs = np.array(sorted(pairs))
    _, first = np.unique(pairs[:, 0], return_index=True)
    return pairs[:, 1], first


def player_draws(lib, players_of, cfg, part: np.ndarray, p: np.ndarray, open_: np.ndarray, rng, players: int,
                 per: int, own: bool) -> tuple[np.ndarray, np.ndarray]:
    """``unit_draws`` from the units of each of the ``players`` train songs that fit the window best, ``per``
    draws each; all draws and their fits."""
    from stemfill.generate.units import BAR, UnitLibrary, note_rise, unit_draws

    units, first = players_of
    q = note_rise(p)
    total = np.zeros(len(first))
    for b in range(p.shape[-1] // BAR):
        sl = slice(b * BAR, (b + 1) * BAR)
        if not open_[b] or not part[:, sl].any():
            continue
        pb, qb = p[:, sl], q[:, sl]
        ps = np.r_[0.0, np.cumsum(pb.sum(0))]
        pre = (2 * ((ps[lib.end] - ps[lib.start]) * lib.on).sum(1) / (lib.cells + pb.sum() + 1e-6)
               + 2 * (qb.sum(0)[lib.start] * lib.on).sum(1) / (lib.n + qb.sum() + 1e-6))
        total += np.maximum.reduceat(pre[units], first)
    outs, scores = [], []
    for s in np.argsort(-total)[:players]:
        k = units[first[s]:first[s + 1] if s + 1 < len(first) else len(units)]
        sub = UnitLibrary(lib.start[k], lib.end[k], lib.rel[k], lib.n[k], lib.count[k], lib.meta)
        o, f = unit_draws(sub, cfg, part, p, open_, rng, per, with_own=own)
        outs.append(o)
        scores.append(f)
    return np.concatenate(outs), np.concatenate(scores)


def bar_length_spread(parts: np.ndarray, stem: str) -> np.ndarray:
    """(m,) standard deviation over the 48-step bars of each part (m, P, L) of the mean log2 length of the notes
    starting in the bar (bars with none left out; 0 where fewer than two bars have notes)."""
    from stemfill.evaluation import metrics as M

    m, _, L = parts.shape
    nb = L // 48
    b, _, t, dur = M.notes(parts, stem)
    k = b * nb + t // 48
    n = np.bincount(k, minlength=m * nb).reshape(m, nb)
    mean = np.bincount(k, np.log2(dur), minlength=m * nb).reshape(m, nb) / np.maximum(n, 1)
    out = np.zeros(m)
    for i in range(m):
        v = mean[i][n[i] > 0]
        out[i] = v.std() if len(v) > 1 else 0.0
    return out


if __name__ == "__main__":
    raise SystemExit(main())
