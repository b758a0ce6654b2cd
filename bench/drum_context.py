"""Does giving the model the drums heard in the audio help it add a bass (or a guitar)?

    python bench/beat_octave.py --data chunks --split test --roots corpus corpus-extra --exclude birthday \
        --seconds 30 --cache /tmp/beat-cache                     # renders and activations, once
    python bench/drum_context.py --cache /tmp/beat-cache --seeds 0 1 2 --json bass.json
    python bench/drum_context.py --data chunks --split test --roots corpus corpus-extra --exclude birthday \
        --without-drums --seeds 0 1 2 --json bass-no-drums.json  # the same songs, rendered without drums too
    python bench/drum_context.py --data chunks --split test --roots corpus corpus-extra --exclude birthday \
        --remove guitar --seeds 0 1 2 --json guitar.json

For every excerpt rendered without the ``--remove`` stem (bench/audio_route.py's excerpts; with ``--cache``,
bench/beat_octave.py's renders without the bass), the route's steps are run: beats (madmom), basic-pitch, then
the stem filled three ways on the same tracked grid and transcription, each with ``--seeds``:
- ``unknown``: the model fills drums alongside as unknown context (not kept), the route with drum_context=False;
- ``heard``: the drum hits found in the audio (``stemfill.audio.drums.drum_hits``) as a known drums track;
- ``true``: the song's real drum part put on the tracked grid: what perfect drum transcription would give.
With ``--without-drums`` the excerpts are rendered without their drums as well, so what ``drum_hits`` finds
there is what a song without drums gives it (pitched attacks), and ``true`` is left out. Scored: the new part's
onset F1 (mir_eval.onset, +-50 ms) against the real part, and the drum finder's F1 per class (kick 35/36,
snare 37-40, hi-hat 42/44/46) against the real drum part.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from audio_route import add_song_set_args  # noqa: E402

KIT = {"kick": (35, 36), "snare": (37, 38, 39, 40), "hat": (42, 44, 46)}
KEY_OF = {"kick": 36, "snare": 38, "hat": 42}


def f1(ref, est) -> float:
    import mir_eval

    ref, est = np.unique(np.round(ref, 3)), np.unique(np.round(est, 3))
    return float(mir_eval.onset.f_measure(ref, est, window=0.05)[0]) if len(ref) and len(est) else 0.0


def cached_excerpts(cache: Path):
    """(data, audio, rate) of every excerpt without its bass in bench/beat_octave.py's cache."""
    import soundfile as sf

    for f in sorted(cache.glob("*-bass.npz")):
        if f.with_suffix(".wav").exists():
            y, sr = sf.read(f.with_suffix(".wav"), dtype="float32")
            d = dict(np.load(f))
            yield {"name": f.stem, "ref_onsets": d["ref_bass_onsets"], **d}, y, sr


def rendered_excerpts(a):
    """(data, audio, rate) of bench/audio_route.py's excerpts without ``a.remove`` (and without drums if asked)."""
    import tempfile

    import soundfile as sf

    from audio_route import on_grid, onsets, pick_songs, render_excerpt
    from beat_octave import refs

    from stemfill.audio.beats import beat_activations
    from stemfill.audio.render import check_renderer

    sf2 = check_renderer()
    with tempfile.TemporaryDirectory(prefix="bench-drums-") as tmp:
        for p in pick_songs(a):
            wav = Path(tmp) / "in.wav"
            got = render_excerpt(p, a.remove, a.seconds, sf2, wav, silent=("drums",) if a.without_drums else ())
            if isinstance(got, str):
                continue
            song, kept, removed, dur = got
            y, sr = sf.read(wav, dtype="float32")
            yield ({"name": p.stem, "act": beat_activations(y, sr), "on_grid": on_grid(song, kept + removed),
                    "ref_onsets": onsets(song, removed, dur), **refs(song, kept + removed, dur)}, y, sr)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, help="bench/beat_octave.py's cache (excerpts with their drums)")
    ap.add_argument("--remove", choices=("bass", "guitar"), default="bass", help="the stem to add (rendered songs)")
    ap.add_argument("--without-drums", action="store_true", help="render the songs without their drums too")
    add_song_set_args(ap, seconds=30.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    from stemfill.audio.beats import beat_grid, decode_beats
    from stemfill.audio.drums import drum_hits
    from stemfill.audio.symbolic import fill_from_audio
    from stemfill.audio.transcribe import transcribe
    from stemfill.pianoroll.model import default_model_path, load_model
    from stemfill.song.song import RESOLUTION

    m = load_model(a.model or default_model_path())
    rows = []
    if a.cache and a.remove != "bass":
        ap.error("--cache holds renders without the bass: use --remove bass")
    stem = a.remove
    for d, y, sr in (cached_excerpts(a.cache) if a.cache else rendered_excerpts(a)):
        dur = len(y) / sr
        notes = transcribe(y, sr)
        hits = drum_hits(y, sr)
        ref_hits = d["ref_drum_hits"]
        row = {"excerpt": d["name"], "on_grid": round(float(d["on_grid"]), 3), "hits": len(hits),
               "true_hits": len(ref_hits)}
        if not a.without_drums:
            for name, keys in KIT.items():
                row[f"{name}_f1"] = round(f1(ref_hits[np.isin(ref_hits[:, 1], keys), 0],
                                             [t for t, k in hits if k == KEY_OF[name]]), 3)
        beats, positions = decode_beats(d["act"])
        grid = beat_grid(beats, positions, dur, RESOLUTION)
        variants = [("unknown", None), ("heard", hits)]
        if not a.without_drums:
            variants.append(("true", [(float(t), int(k)) for t, k in ref_hits]))
        for variant, given in variants:
            scores = []
            for seed in a.seeds:
                _, filled, new = fill_from_audio(notes, grid, (stem,), m, drum_hits=given, seed=seed)
                got = np.asarray(grid.to_seconds([n.start for t in new for n in t.notes]) if filled is not None else [])
                scores.append(f1(d["ref_onsets"], got[got < dur]))
            row[f"f1_{variant}"] = round(float(np.mean(scores)), 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary: dict = {"stem": stem, "without_drums": a.without_drums, "excerpts": len(rows), "seeds": a.seeds}
    for k in ("f1_unknown", "f1_heard", "f1_true", "kick_f1", "snare_f1", "hat_f1", "hits"):
        v = [r[k] for r in rows if k in r]
        if not v:
            continue
        summary[k] = {"mean": round(float(np.mean(v)), 3), "median": round(float(np.median(v)), 3)}
    for k in ("heard", "true"):
        if f"f1_{k}" not in rows[0]:
            continue
        diff = np.array([r[f"f1_{k}"] - r["f1_unknown"] for r in rows])
        summary[f"{k}_minus_unknown"] = {"mean": round(float(diff.mean()), 3), "better": int((diff > 0).sum()),
                                         "worse": int((diff < 0).sum())}
    print(json.dumps(summary, indent=1))
    if a.json:
        a.json.write_text(json.dumps({"summary": summary, "excerpts": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
