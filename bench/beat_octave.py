"""Tempo octaves of the symbolic route's beat tracker, on the songs of bench/audio_route.py.

    python bench/beat_octave.py --data chunks --split test --roots corpus corpus-extra --exclude birthday \
        --seconds 30 --cache /tmp/beat-cache --json beats.json

Per song and per render (without drums, without bass; the excerpts of bench/audio_route.py), madmom's beat and
downbeat activations and basic-pitch's notes are computed once (kept in ``--cache``, with the render). Each is
decoded as madmom does (``plain``) and again around half that tempo (``half``, stemfill.audio.beats.half_tempo);
three rules choose between them: ``score>=Q`` (stemfill's: the half tempo where beats.octave_score >= Q: the
beat network's alternate-beat accents x where the transcribed notes start x a log-normal tempo prior),
``parity>=Q`` (the earlier rule: beat_parity alone) and ``half_cost<=C`` (the half tempo where its best path is at
most C less likely, log-probability per 100 frames). Scored against the MIDI's beats (mir_eval, 70 ms, first 5 s skipped): beat F-measure, and the tempo
octave: the tracked median tempo over the MIDI's, rounded to a power of 2 (1 = right, 2 = double time, 0.5 =
half time). Only "score-like" songs (notes on the MIDI's own grid, ``on_grid`` >= 0.5) have MIDI beats that are
the music's, so the octave counts mean most over those.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from audio_route import add_song_set_args, midi_beats, on_grid, pick_songs, render_excerpt


def refs(song, tracks, dur: float) -> dict:
    """The real bass's note starts and the real drum hits ``(seconds, key)`` of an excerpt, up to ``dur`` s."""
    from audio_route import onsets

    from stemfill.song.stems import classify_track

    drums = [t for t in tracks if (t.stem or classify_track(t)) == "drums"]
    bass = [t for t in tracks if (t.stem or classify_track(t)) == "bass"]
    hits = [(song.seconds(n.start), n.pitch) for t in drums for n in t.notes]
    return {"ref_bass_onsets": onsets(song, bass, dur),
            "ref_drum_hits": np.array([h for h in hits if h[0] < dur], np.float64).reshape(-1, 2)}


def prepare(path: Path, remove: str, seconds: float, sf2, cache: Path) -> dict | None:
    """Render, track (activations) and transcribe one excerpt, or read them from ``cache``."""
    import soundfile as sf

    from stemfill.audio.beats import import_madmom
    from stemfill.audio.transcribe import transcribe

    key = f"{path.stem[:60]}-{remove}"
    f = cache / f"{key}.npz"
    if f.exists():
        z = np.load(f, allow_pickle=False)
        return {k: z[k] for k in z.files}
    wav = cache / f"{key}.wav"
    got = render_excerpt(path, remove, seconds, sf2, wav)
    if isinstance(got, str):
        return None
    song, kept, removed, dur = got
    y, sr = sf.read(wav, dtype="float32")
    import_madmom()
    from madmom.audio.signal import Signal
    from madmom.features.downbeats import RNNDownBeatProcessor

    act = RNNDownBeatProcessor(num_threads=1)(Signal(y, sample_rate=sr))
    notes = transcribe(y, sr)
    out = {"act": act.astype(np.float32), "ref_beats": midi_beats(song, dur), "dur": np.float64(dur),
           **refs(song, kept + removed, dur),
           "qpm_true": np.float64(song.tempos[0].qpm), "on_grid": np.float64(on_grid(song, kept + removed)),
           "meter": np.int64(song.time_signatures[0].numerator),
           "note_starts": np.array([n.start for n in notes], np.float64),
           "note_pitches": np.array([n.pitch for n in notes], np.int64)}
    np.savez(f, **out)  # the wav stays beside it, for other experiments on the same excerpts
    wav.with_suffix(".mid").unlink(missing_ok=True)
    return out


COSTS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0)
PARITIES = (1.3, 1.4, 1.5, 1.6, 1.8, 2.0, 2.5)
SCORES = (1.5, 1.8, 2.2, 2.5, 3.0)


def log_p(act: np.ndarray, min_bpm: float, max_bpm: float) -> float:
    """The log-probability per 100 frames of madmom's best bar-pointer path through ``act`` in that tempo range."""
    from madmom.features.downbeats import (
        DBNDownBeatTrackingProcessor,
        threshold_activations,
    )

    from stemfill.audio.beats import BEATS_PER_BAR, FPS

    proc = DBNDownBeatTrackingProcessor(beats_per_bar=list(BEATS_PER_BAR), fps=FPS, min_bpm=min_bpm, max_bpm=max_bpm)
    a, _ = threshold_activations(act, proc.threshold)
    return 100.0 * max(float(hmm.viterbi(a)[1]) for hmm in proc.hmms) / max(len(a), 1)


def rule(row: dict, stat: str | None, limit: float | None) -> dict:
    """The scores of the beats a halving rule keeps: the slower grid where ``row[stat]`` passes ``limit``."""
    if stat is None or "half" not in row:
        return row["plain"]
    take = row[stat] <= limit if stat == "half_cost" else row[stat] >= limit  # parity, octave_score: at least
    return row["half"] if take else row["plain"]


def score(beats: np.ndarray, d: dict) -> dict:
    import mir_eval

    ref = mir_eval.beat.trim_beats(d["ref_beats"])
    est = mir_eval.beat.trim_beats(np.asarray(beats, np.float64))
    qpm = 60 / float(np.median(np.diff(beats))) if len(beats) > 1 else 0.0
    octave = 2.0 ** round(np.log2(qpm / float(d["qpm_true"]))) if qpm else 0.0
    return {"beat_f": round(float(mir_eval.beat.f_measure(ref, est)), 3), "qpm": round(qpm, 1), "octave": octave}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_song_set_args(ap, seconds=30.0)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    from stemfill.audio.beats import (
        MAX_QPM,
        MIN_QPM,
        _decode,
        beat_parity,
        half_tempo,
        import_madmom,
        octave_score,
    )
    from stemfill.audio.render import check_renderer

    import_madmom()
    sf2 = check_renderer()
    a.cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for p in pick_songs(a):
        for remove in ("drums", "bass"):
            d = prepare(p, remove, a.seconds, sf2, a.cache)
            if d is None:
                continue
            row = {"song": str(p), "remove": remove, "qpm_true": round(float(d["qpm_true"]), 1),
                   "on_grid": round(float(d["on_grid"]), 3), "meter": int(d["meter"])}
            found = _decode(d["act"])
            row["plain"] = score(found[:, 0], d)
            row["parity"] = round(beat_parity(d["act"], found[:, 0]), 3)
            row["octave_score"] = round(octave_score(d["act"], found[:, 0], d["note_starts"]), 3)
            slower = half_tempo(d["act"], found)
            if slower is not None:
                row["half"] = score(slower[:, 0], d)
                qpm = 60 / float(np.median(np.diff(found[:, 0])))
                row["half_cost"] = round(log_p(d["act"], MIN_QPM, MAX_QPM) -
                                         log_p(d["act"], qpm / 2 / 1.25, qpm / 2 * 1.25), 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {}
    rules = [("plain", None, None)] + [(f"half_cost<={c}", "half_cost", c) for c in COSTS] + \
            [(f"parity>={q}", "parity", q) for q in PARITIES] + [(f"score>={q}", "octave_score", q) for q in SCORES]
    for group, sel in (("all", rows), ("score_like", [r for r in rows if r["on_grid"] >= 0.5])):
        for name, stat, limit in rules:
            res = [rule(r, stat, limit) for r in sel]
            oct_ = [x["octave"] for x in res]
            summary[f"{group} {name}"] = {
                "n": len(sel), "beat_f_mean": round(float(np.mean([x["beat_f"] for x in res])), 3),
                "beat_f_median": round(float(np.median([x["beat_f"] for x in res])), 3),
                "right_octave": sum(o == 1 for o in oct_), "double": sum(o == 2 for o in oct_),
                "half": sum(o == 0.5 for o in oct_), "other": sum(o not in (0.5, 1, 2) for o in oct_)}
    for k, v in summary.items():
        print(k.ljust(32), json.dumps(v))
    if a.json:
        a.json.write_text(json.dumps({"summary": summary, "songs": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
