"""Whole songs: do filled drums mark phrases as the real drummer does, do filled parts follow the song's
density contour, and what is the Note-F1 (USMA's definition) per 4-bar segment?

    python bench/phrase.py --data CHUNKS [--model M] [--split test|valid] [--songs N] [--no-band]
                           [--fills none|phrase|often|sections] [--seed S] [--json OUT]

Songs: the test (or ``--split valid``) split of the chunk folder's manifest (the first ``--songs`` of a seeded shuffle; 0: all),
and the band split (``stemfill.datasets.chunks.BAND``: onyxite test songs and the multi-track guitarpro
songs, all of them), each read whole from its file (the manifest's root + path). For every song and every
stem it has (drums, bass, guitar), that one stem is removed and filled over the whole song by
``fill.fill_roll`` (what ``stemfill midi --add STEM --replace`` does: the model hears the other stems and,
if it has context planes, the song's other tracks) and compared with the real part:

* drums: crash-on-phrase-downbeat rate, snare+tom hits a beat in the last beat of each 4-bar phrase vs
  elsewhere (fill rate = their ratio), share of phrase-ending bars (and of other bars) that end in a fill,
  notes a bar (``stemfill.evaluation.phrase``); real and filled, pooled over the songs' phrases;
* every stem: density contour correlation (Pearson over bars of notes a bar, mean over songs where it is
  defined) and Note-F1 as USMA defines it (``metrics.note_f1_usma_segments``: 16th-note onset + exact
  pitch, one-to-one, per 4-bar segment from the song's start, averaged over all segments of the set where
  the real part has notes);
* every stem: rhythm kept (``phrase.rhythm_repeats``: successive bars with the same note-start times);
* every stem: rests (bars where the song plays and the real part has no hit or sounding note, and whether the
  filled part rests there too), and whole-song realism: the two-sample test of ``stemfill eval --realism``
  (``evaluation.realism``: logistic, folds grouped by song) on every 4-bar segment from the song's start
  where the real song sounds, real part against filled part, the rest of the song the same.

``--fills`` asks the filled drums for fills (``controls.StemControls(fill_every=...)``: none, phrase = every
4th bar, often = every 2nd; sections = the bar before each section change that the song's other parts
show, ``sections.fill_bars``); only a model with control planes takes it. Prints markdown tables; ``--json``
writes every number and the per-song rows.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "stemfill" / "models" / "default"
STEMS_ORDER = ("drums", "bass", "guitar")


def song_file(entry: dict, data: Path) -> Path:
    """The file of a manifest song entry: its root (as given to convert, maybe relative to where convert ran:
    tried as it is, from the project root and from the chunk folder's parent) joined with its path."""
    root, rel = Path(entry["root"]), entry["path"]
    for base in (Path.cwd(), ROOT, data.resolve().parent):
        p = (base / root / rel) if not root.is_absolute() else root / rel
        if p.is_file():
            return p
    raise FileNotFoundError(f"{entry['root']}/{rel}: not found from {Path.cwd()}, {ROOT} or {data.resolve().parent}")


def pick_songs(manifest: dict, n: int, seed: int, band: bool, split: str = "test") -> dict[str, list[dict]]:
    """{set name: manifest entries}: ``split`` (the first ``n`` of a seeded shuffle of that split; 0: all)
    and, with ``band``, "band" (all of it)."""
    from stemfill.datasets.chunks import BAND, in_split

    songs = manifest["songs"]
    held = [s for s in songs if in_split(s, split)]
    order = np.random.default_rng(seed).permutation(len(held))
    sets = {split: [held[i] for i in (order[:n] if n else order)]}
    if band:
        sets["band"] = [s for s in songs if in_split(s, BAND)]
    return sets


def fill_song_stems(model, path: Path, seed: int, fills: str | None, drums="model",
                    stems: tuple[str, ...] = STEMS_ORDER) -> dict:
    """Read one song, fill each of its stems alone over the whole song, and measure (see module doc).
    Returns {"stems": {stem: {...}}, "steps": T, "seconds": s}."""
    from stemfill.evaluation import metrics as M
    from stemfill.evaluation import phrase as PH
    from stemfill.generate.controls import FILL_PATTERNS, StemControls, control_planes
    from stemfill.pianoroll.fill import fill_roll
    from stemfill.pianoroll.grid import CHANNEL
    from stemfill.pianoroll.roll import encode, encode_context, n_steps
    from stemfill.song.io import read_song
    from stemfill.song.stems import classify_song

    t0 = time.perf_counter()
    song = read_song(path)
    groups = classify_song(song)
    T = max(n_steps(song), 1)
    real = encode(song, length=T, groups=groups)
    other = encode_context(song, length=T, groups=groups) if model.context_planes else None
    has = real.any(axis=(1, 2))
    out: dict = {"steps": int(T), "stems": {}}
    for stem in stems:
        c = CHANNEL[stem]
        if not has[c] or not np.delete(has, c).any():
            continue
        known = np.ones((real.shape[0], T), dtype=bool)
        known[c] = False
        from stemfill.generate.plan import song_bars

        planes, forced, dec, sb = None, None, drums, song_bars(song, T)
        if stem == "drums" and fills == "sections":
            from stemfill.generate.sections import fill_bars

            bars = tuple(fill_bars(real, known, other))
            planes = control_planes({"drums": StemControls(fill_bars=bars)}, T, real.shape[1])
            forced = list(bars)
        elif stem == "drums" and fills is not None:
            every = FILL_PATTERNS[fills]
            planes = control_planes({"drums": StemControls(fill_every=every)}, T, real.shape[1])
            forced = [b for b in range(len(sb)) if every and b % every == every - 1]
            if not every and dec is not None:  # --fills none: the pattern decoder plans none either
                from dataclasses import replace

                from stemfill.generate.decoder import drum_decoder_for

                d = drum_decoder_for(model) if dec == "model" else dec
                dec = d if d is None else replace(d, plan=replace(d.plan, fill_section=0.0, fill_phrase=0.0,
                                                                    crash_after_fill=0.0))
        # what `stemfill midi --fills ...` does: the control planes steer the network, the pattern decoder
        # plays the fills at those bars (fill.fill_song)
        filled = fill_roll(model, real, known, seed=seed, other=other, controls=planes, drums=dec, bars=sb,
                           fill_bars=forced)
        g, r = filled[c], real[c]
        contour = PH.density_contour_corr(g, r, stem)
        res = {"note_f1_segments": [None if np.isnan(v) else float(v) for v in M.note_f1_usma_segments(g, r, stem)],
               "contour_r": None if np.isnan(contour) else contour,
               "notes_a_bar": {"real": float(PH.bar_density(r, stem).mean()),
                               "filled": float(PH.bar_density(g, stem).mean())}}
        if stem == "drums":
            res["phrase"] = {"real": vars(PH.phrase_counts(r)), "filled": vars(PH.phrase_counts(g))}
        res["rhythm_repeats"] = {"real": PH.rhythm_repeats(r, stem), "filled": PH.rhythm_repeats(g, stem)}
        # rests: the bars where the song plays (another stem or track starts a note) and the real part has no
        # hit or sounding note
        song_on = np.delete(real, c, axis=0)[:, :, :T]
        if other is not None:
            song_on = np.concatenate([song_on, other[:, :, :T].astype(bool)])
        plays = PH.bar_density(song_on.any(axis=0), "bass") > 0
        rd, gd = _sounds(r, len(plays)), _sounds(g, len(plays))
        res["rests"] = {"song_bars": int(plays.sum()), "real_rests": int((plays & ~rd).sum()),
                        "both_rest": int((plays & ~rd & ~gd).sum()),
                        "filled_rests_where_real_plays": int((plays & rd & ~gd).sum()),
                        "filled_rests": int((plays & ~gd).sum())}
        res["_features"] = _segment_features(real, filled, other, c)
        out["stems"][stem] = res
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


SEGMENT = 4  # bars of a realism segment, as the chunks stemfill eval --realism reads


def _segment_features(real: np.ndarray, filled: np.ndarray, other: np.ndarray | None, c: int) -> tuple:
    """The realism features (``evaluation.realism.segment_features``) of the real and the filled part of each
    4-bar segment of a whole song (from step 0) where the real song sounds (any stem or other track):
    (real (n, D), filled (n, D))."""
    from stemfill.evaluation.phrase import BAR
    from stemfill.evaluation.realism import segment_features

    L = SEGMENT * BAR
    T = real.shape[-1]
    starts = [s for s in range(0, T - L + 1, L)
              if real[:, :, s:s + L].any() or (other is not None and other[:, :, s:s + L].any())]
    if not starts:
        return np.zeros((0, 0)), np.zeros((0, 0))
    r = np.stack([real[:, :, s:s + L] for s in starts])
    f = r.copy()
    f[:, c] = np.stack([filled[c, :, s:s + L] for s in starts])
    o = np.stack([other[:, :, s:s + L] for s in starts]) if other is not None else None
    return segment_features(r, c, other=o), segment_features(f, c, other=o)


def _sounds(x: np.ndarray, n_bars: int) -> np.ndarray:
    """(n_bars,) bool: a channel (P, T) has a hit or a sounding note in each bar of ``BAR`` steps."""
    from stemfill.evaluation.phrase import BAR

    on = x.any(axis=0)
    on = np.concatenate([on, np.zeros(n_bars * BAR - len(on), dtype=bool)])
    return on[:n_bars * BAR].reshape(n_bars, BAR).any(axis=1)


def summarise(rows: list[dict]) -> dict:
    """Pool the per-song rows of one set of songs."""
    from stemfill.evaluation.phrase import PhraseCounts

    s: dict = {"songs": len(rows)}
    for stem in STEMS_ORDER:
        have = [r["stems"][stem] for r in rows if stem in r["stems"]]
        segs = [v for h in have for v in h["note_f1_segments"] if v is not None]
        rs = [h["contour_r"] for h in have if h["contour_r"] is not None]
        d = {"songs": len(have), "segments": len(segs), "note_f1": float(np.mean(segs)) if segs else None,
             "contour_r": float(np.mean(rs)) if rs else None, "contour_songs": len(rs)}
        if stem == "drums" and have:
            for side in ("real", "filled"):
                pc = sum((PhraseCounts(**h["phrase"][side]) for h in have), PhraseCounts())
                d[side] = {"crash_rate": pc.crash_rate, "end_hits_per_beat": pc.end_hits_per_beat,
                           "other_hits_per_beat": pc.other_hits_per_beat, "fill_rate": pc.fill_rate,
                           "end_fill_share": pc.end_fill_share, "other_fill_share": pc.other_fill_share,
                           "downbeats": pc.downbeats, "phrase_ends": pc.end_bars,
                           # notes a bar over all bars of the set (each song's mean weighted by its bars)
                           "notes_a_bar": _weighted([(h["notes_a_bar"][side], h["bars"]) for h in have])}
        rest = {k: sum(h["rests"][k] for h in have if "rests" in h) for k in
                ("song_bars", "real_rests", "both_rest", "filled_rests_where_real_plays", "filled_rests")}
        if rest["song_bars"]:
            d["rests"] = {**rest, "real_rest_share": rest["real_rests"] / rest["song_bars"],
                          "filled_rest_share": rest["filled_rests"] / rest["song_bars"],
                          "rests_kept": rest["both_rest"] / max(rest["real_rests"], 1),
                          "false_rests": rest["filled_rests_where_real_plays"]
                          / max(rest["song_bars"] - rest["real_rests"], 1)}
        reps = [h["rhythm_repeats"] for h in have if "rhythm_repeats" in h]
        if reps:  # the share of successive bars (both playing) with the same note-start times
            d["rhythm_kept"] = {side: sum(v[side][0] for v in reps) / max(sum(v[side][1] for v in reps), 1)
                                for side in ("real", "filled")}
        feats = [h["_features"] for h in have if "_features" in h and len(h["_features"][0])]
        if len(feats) >= 2:  # realism of whole songs: 4-bar segments, folds grouped by song
            from stemfill.evaluation.realism import two_sample_accuracy

            real = np.concatenate([f[0] for f in feats])
            fake = np.concatenate([f[1] for f in feats])
            groups = np.concatenate([np.full(len(f[0]), i) for i, f in enumerate(feats)])
            res = two_sample_accuracy(real, fake, groups)
            d["realism"] = {"accuracy": res["accuracy"], "std": res["std"], "segments": int(len(real))}
        s[stem] = d
    return s


def _weighted(pairs) -> float | None:
    w = sum(b for _, b in pairs)
    return sum(v * b for v, b in pairs) / w if w else None


def _f(v, digits: int = 3, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    return f"{100 * v:.1f}" if pct else f"{v:.{digits}f}"


def markdown(summary: dict) -> str:
    """The two tables: drum phrase measures (real vs filled) and Note-F1 / density contour per stem."""
    lines = ["| songs | drums | crash on phrase downbeat | snare+tom a beat: phrase end | elsewhere | fill rate "
             "(ratio) | phrase ends with a fill | other bars with a fill | notes a bar |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|"]
    for name, s in summary.items():
        d = s.get("drums", {})
        if "real" not in d:
            continue
        label = f"{name} ({d['songs']} songs, {d['real']['downbeats']} phrases)"
        for side in ("real", "filled"):
            v = d[side]
            lines.append(f"| {label if side == 'real' else ''} | {side} | {_f(v['crash_rate'])} | "
                         f"{_f(v['end_hits_per_beat'], 2)} | {_f(v['other_hits_per_beat'], 2)} | "
                         f"{_f(v['fill_rate'], 2)} | {_f(v['end_fill_share'])} | {_f(v['other_fill_share'])} | "
                         f"{_f(v['notes_a_bar'], 1)} |")
    rows = [(name, t, s[t]["rests"]) for name, s in summary.items() for t in STEMS_ORDER if "rests" in s.get(t, {})]
    if rows:
        lines += ["", "| songs | stem | bars the song plays | the part rests there: real | filled | real rests the "
                  "filled part keeps | filled rests where the real part plays |", "|---|---|--:|--:|--:|--:|--:|"]
        for name, t, v in rows:
            lines.append(f"| {name} | {t} | {v['song_bars']} | {_f(v['real_rest_share'])} | "
                         f"{_f(v['filled_rest_share'])} | {_f(v['rests_kept'])} | {_f(v['false_rests'])} |")
    rows = [(name, t, s[t]["rhythm_kept"]) for name, s in summary.items() for t in STEMS_ORDER
            if "rhythm_kept" in s.get(t, {})]
    if rows:
        lines += ["", "| songs | stem | bars with the rhythm of the bar before: real | filled |", "|---|---|--:|--:|"]
        lines += [f"| {name} | {t} | {_f(v['real'])} | {_f(v['filled'])} |" for name, t, v in rows]
    lines += ["", "| songs | Note-F1 % drums (segments) | bass | guitar | contour r drums (songs) | bass | guitar "
              "| realism drums (4-bar segments) | bass | guitar |", "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for name, s in summary.items():
        cells = [f"{_f(s[t]['note_f1'], pct=True)} ({s[t]['segments']})" for t in STEMS_ORDER]
        cells += [f"{_f(s[t]['contour_r'])} ({s[t]['contour_songs']})" for t in STEMS_ORDER]
        cells += [f"{_f(s[t]['realism']['accuracy'])} ({s[t]['realism']['segments']})" if "realism" in s[t] else "–"
                  for t in STEMS_ORDER]
        lines.append(f"| {name} ({s['songs']} songs) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def with_settings(dec, text: str):
    """The drum decoder ``dec`` with its PatternConfig / PlanConfig fields set from "key=value,key=value"."""
    import dataclasses

    kv = dict(x.split("=", 1) for x in text.split(",") if x)
    for part in ("patterns", "plan"):
        cfg = getattr(dec, part)
        fields = {f.name: f for f in dataclasses.fields(cfg)}
        mine = {k: v for k, v in kv.items() if k in fields}
        conv = {k: (v if isinstance(getattr(cfg, k), str) else bool(int(v)) if isinstance(getattr(cfg, k), bool)
                    else type(getattr(cfg, k))(float(v))) for k, v in mine.items()}
        setattr(dec, part, dataclasses.replace(cfg, **conv))
    unknown = set(kv) - {f.name for f in dataclasses.fields(dec.patterns)} - {f.name for f in dataclasses.fields(dec.plan)}
    if unknown:
        raise SystemExit(f"error: --patterns: unknown settings {sorted(unknown)}")
    return dec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="chunk folder (its manifest lists the songs and splits)")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model folder (default: the shipped default)")
    ap.add_argument("--songs", type=int, default=20, help="songs of --split (seeded pick; 0: all)")
    ap.add_argument("--split", default="test", choices=("test", "valid"), help="the split to fill songs of")
    ap.add_argument("--no-band", action="store_true", help="leave out the band split")
    ap.add_argument("--fills", choices=("none", "phrase", "often", "sections"), help="ask the filled drums for fills "
                    "(a model with control planes only)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the song pick and of the fills")
    ap.add_argument("--stems", default=",".join(STEMS_ORDER), help="stems to fill, comma-separated (default: all)")
    ap.add_argument("--drum-decoder", choices=("model", "cells", "patterns"), default="model",
                    help="drums by cells or by whole phrases from the shipped library (default: the model's own)")
    ap.add_argument("--patterns", default="", metavar="KEY=VALUE,...",
                    help="pattern decoder settings (generate.drums.PatternConfig and generate.plan.PlanConfig "
                         "fields, e.g. vary=0,density_margin=1.5), to compare settings on valid")
    ap.add_argument("--json", type=Path, help="write every number and the per-song rows here")
    a = ap.parse_args(argv)

    from stemfill.datasets.chunks import read_manifest, root_name
    from stemfill.errors import StemfillError
    from stemfill.evaluation.phrase import BAR
    from stemfill.pianoroll.model import load_model

    command = " ".join(["python bench/phrase.py"] + [shlex.quote(x) for x in (sys.argv[1:] if argv is None else argv)])
    try:
        model = load_model(a.model)
        if a.fills is not None and not model.control_planes:
            raise StemfillError(f"{a.model}: this model has no control planes, so --fills cannot be passed to it; "
                                "use a model trained with `stemfill train --controls`")
        sets = pick_songs(read_manifest(a.data), a.songs, a.seed, not a.no_band, a.split)
    except StemfillError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    from stemfill.generate.decoder import drum_decoder_for

    drums = "model" if a.drum_decoder == "model" else drum_decoder_for(model, decoder=a.drum_decoder)
    if a.patterns:
        drums = with_settings(drum_decoder_for(model, decoder="patterns"), a.patterns)
    t0 = time.perf_counter()
    done: dict[str, dict] = {}  # file -> result (a song in both sets is filled once)
    per_set: dict[str, list[dict]] = {}
    for name, entries in sets.items():
        per_set[name] = []
        for e in entries:
            key = f"{e['root']}/{e['path']}"
            if key not in done:
                try:
                    r = fill_song_stems(model, song_file(e, a.data), a.seed, a.fills, drums,
                                        tuple(x for x in STEMS_ORDER if x in a.stems.split(",")))
                except (StemfillError, FileNotFoundError) as err:
                    print(f"skipping {key}: {err}", file=sys.stderr)
                    continue
                r.update(song=key, root=root_name(e), split=e["split"])
                r["bars"] = -(-r["steps"] // BAR)
                for st in r["stems"].values():
                    st["bars"] = r["bars"]
                done[key] = r
                print(f"{name}: {key}: {r['steps']} steps, {', '.join(r['stems'])} ({r['seconds']} s; "
                      f"{time.perf_counter() - t0:.0f} s in all)", file=sys.stderr)
            per_set[name].append(done[key])
    if "band" in per_set:  # the band split by source: onyxite test songs are held out, guitarpro ones may not be
        for root in ("onyxite", "guitarpro"):
            per_set[f"band: {root}"] = [r for r in per_set["band"] if r["root"] == root]
    summary = {name: summarise(rows) for name, rows in per_set.items() if rows}
    wall = time.perf_counter() - t0
    print(f"command: `{command}`\nmodel: {a.model}\nwall: {wall:.0f} s\n")
    print(markdown(summary))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        songs = {k: [{**r, "stems": {t: {x: y for x, y in v.items() if x != "_features"}
                                       for t, v in r["stems"].items()}} for r in rows]
                 for k, rows in per_set.items() if not k.startswith("band: ")}
        report = {"command": command, "model": str(a.model), "fills": a.fills, "seed": a.seed,
                  "wall_seconds": round(wall, 1), "summary": summary, "songs": songs}
        a.json.write_text(json.dumps(_json_safe(report), indent=1) + "\n")
    return 0


def _json_safe(x):
    """NaN -> null, numpy scalars -> Python numbers."""
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


if __name__ == "__main__":
    sys.exit(main())
