"""The symbolic audio route on synthetic renders: speed, memory, beat F-measure, the new part's onset F1.

    python bench/audio_route.py examples/riff.mid --remove drums                       # one song
    stemfill convert ../shared/data/corpus ../shared/data/corpus-extra ../shared/data/onyxite \
        ../shared/data/guitarpro ../shared/data/midi -o chunks                          # the model's data and splits
    python bench/audio_route.py --data chunks --split test --roots corpus corpus-extra --exclude birthday \
        --remove drums --seconds 30 --json d.json                                       # the songs of docs/audio.md
    python bench/audio_route.py SONG.mid --remove bass --seconds 180                   # timing of a 3-minute excerpt
    python bench/audio_route.py SONG.mid --remove drums --seconds 60 --minutes 1 5 10 --runs 1
        # time and peak memory of `stemfill audio` on 1, 5 and 10 minutes (the excerpt looped), in a fresh process each

Per song: the MIDI without the ``--remove`` stem is rendered with FluidSynth (mono, 44.1 kHz; ``--seconds``
from the bar where the removed part first plays, at the tempo there), the route (stemfill.audio.symbolic.add_stem_symbolic) adds that stem back, and we score
- beat F-measure of the tracked beats against the MIDI's beats (mir_eval: 70 ms window, first 5 s skipped),
  also over the "score-like" songs alone: those whose notes sit on the MIDI's own grid (``on_grid``), since
  a performance recorded against a nominal 120 qpm has MIDI beats that are not the music's;
- onset F1 (mir_eval.onset, +-50 ms) of the new part's note starts against the removed part's, over the excerpt;
- the ceiling: the same F1 for the symbolic fill made from the true MIDI (stemfill midi's code on the song
  without the stem), which is what the route loses to beat-tracking and transcription errors;
- on_8th / on_16th: the share of the new part's note starts within 50 ms of the MIDI's eighth-note / sixteenth-note
  grid (a part played at twice the song's tempo lands on its sixteenths; meaningful for score-like songs).
With ``--minutes``, only time and memory: the excerpt is looped to that length and the route runs in a child
process (``stemfill.audio.symbolic.add_stem_symbolic``), whose peak resident memory is read with ``os.wait4``.
Stage timings are wall-clock on this machine; peak memory is the process's maximum resident set.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def midi_beats(song, seconds: float) -> np.ndarray:
    ticks = np.arange(0, song.end + song.resolution, song.resolution)
    t = np.array([song.seconds(int(k)) for k in ticks])
    return t[t < seconds]


def onsets(song, tracks, seconds: float) -> np.ndarray:
    t = np.unique(np.round([song.seconds(n.start) for tr in tracks for n in tr.notes], 3))
    return t[t < seconds]


def excerpt(song, tracks, removed, seconds: float):
    """(song cropped to ``seconds`` from the bar where the removed part first plays, its tracks, the removed part's).

    Notes are cut to the excerpt and shifted to start at 0; the tempo and meter are those at its start."""
    from dataclasses import replace

    from stemfill.song.song import Song, TempoChange, TimeSignature

    first = min(n.start for t in removed for n in t.notes)
    start = max(b for b in song.bar_starts() if b <= first)
    qpm = song.qpm_at(start)
    end = start + int(seconds * qpm / 60 * song.resolution)
    ts = [t for t in song.time_signatures if t.time <= start][-1]

    def crop(ts_):
        out = []
        for t in ts_:
            ns = [replace(n, start=n.start - start, duration=min(n.end, end) - n.start)
                  for n in t.notes if start <= n.start < end]
            out.append(replace(t, notes=ns))
        return out

    kept, gone = crop(tracks), crop(removed)
    cut = Song(tracks=kept + gone, tempos=[TempoChange(0, qpm)], time_signatures=[TimeSignature(0, ts.numerator,
               ts.denominator)], resolution=song.resolution, title=song.title)
    return cut, [t for t in kept if t.notes], [t for t in gone if t.notes]


def on_grid(song, tracks) -> float:
    """Share of note starts within 1/48 beat of the MIDI's own 16th-note grid: near 1 for a score-like file whose
    beats are the music's, about 1/6 (chance) for a performance recorded against a nominal tempo, whose MIDI
    beats are not the music's (the beat F-measure against them then means nothing)."""
    step = song.resolution / 4
    starts = np.array([n.start for t in tracks for n in t.notes], dtype=np.float64)
    if not len(starts):
        return 0.0
    off = np.abs(starts / step - np.rint(starts / step)) * step  # ticks off the grid
    return float(np.mean(off <= song.resolution / 48))


def render_excerpt(path: Path, remove: str, seconds: float, sf2, wav: Path, silent: tuple[str, ...] = ()):
    """Render ``seconds`` of the song without its ``remove`` stem to ``wav`` (mono 44.1 kHz, peak 0.7).

    Returns ``(song excerpt, kept tracks, removed tracks, duration s)``, or a reason (str) to skip the song.
    ``silent``: stems also left out of the render (they stay in the kept tracks)."""
    import soundfile as sf

    from stemfill.audio.render import render_midi, write_stem_midi
    from stemfill.song.io import read_song
    from stemfill.song.stems import classify_song, classify_track

    song = read_song(path)
    groups = classify_song(song)
    removed = [song.tracks[i] for i in groups[remove] if song.tracks[i].notes]
    kept = [t for i, t in enumerate(song.tracks) if i not in groups[remove] and t.notes]
    if not removed or not kept:
        return f"no {remove} part or nothing else"
    song, kept, removed = excerpt(song, kept, removed, seconds)
    if not removed or not kept:
        return f"no {remove} part or nothing else in the excerpt"
    mid = wav.with_suffix(".mid")
    heard = [t for t in kept if (t.stem or classify_track(t)) not in silent]
    if not heard:
        return f"nothing left to hear without {', '.join((remove, *silent))}"
    write_stem_midi(song, heard, mid)
    y = render_midi(mid, sf2)[: int(seconds * 44_100)]
    if np.abs(y).max() < 1e-4:
        return "silent excerpt"
    sf.write(wav, (0.7 / np.abs(y).max() * y).astype(np.float32), 44_100, subtype="PCM_16")
    return song, kept, removed, len(y) / 44_100


def run_one(path: Path, remove: str, seconds: float, model, sf2, seed: int = 0, route_options=None) -> dict:
    import mir_eval

    from stemfill.audio.symbolic import add_stem_symbolic
    from stemfill.pianoroll.fill import fill_song
    from stemfill.song.io import read_song
    from stemfill.song.song import Song

    with tempfile.TemporaryDirectory(prefix="bench-route-") as d:
        d = Path(d)
        wav = d / "in.wav"
        got = render_excerpt(path, remove, seconds, sf2, wav)
        if isinstance(got, str):
            return {"song": str(path), "skipped": got}
        song, kept, removed, dur = got
        try:
            r = add_stem_symbolic(wav, d / "out.wav", f"add {remove}", midi_out=d / "part.mid", model=model, seed=seed,
                                  **(route_options or {}))
        except Exception as e:  # a bench goes on: one line per failed song
            return {"song": str(path), "skipped": f"route failed: {e}"}
        part = read_song(d / "part.mid")
    ref_beats = mir_eval.beat.trim_beats(midi_beats(song, dur))
    est_beats = mir_eval.beat.trim_beats(np.asarray(r.beats))
    ref_on = onsets(song, removed, dur)
    got_on = onsets(part, part.tracks, dur)
    # the ceiling: the symbolic fill from the true MIDI without the stem
    from stemfill.pianoroll.model import load_model

    m = load_model(model) if model else None
    if m is None:
        from stemfill.pianoroll.model import default_model_path

        m = load_model(default_model_path())
    without = Song(tracks=kept, tempos=song.tempos, time_signatures=song.time_signatures, resolution=song.resolution)
    filled = fill_song(without, [remove], m, seed=seed).song  # every kept stem known, drums too
    new = [t for t in filled.tracks[len(kept):] if t.stem == remove]
    ceil_on = onsets(filled, new, dur)
    f = lambda ref, est: float(mir_eval.onset.f_measure(ref, est, window=0.05)[0]) if len(ref) and len(est) else 0.0
    beats = midi_beats(song, dur + 1)

    def on_grid_share(k: int) -> float:  # share of the new part's starts within 50 ms of the MIDI's 1/k-beat grid
        grid = np.concatenate([np.linspace(a, b, k, endpoint=False) for a, b in zip(beats[:-1], beats[1:])])
        if not len(got_on) or not len(grid):
            return 0.0
        return float(np.mean(np.abs(got_on[:, None] - grid[None, :]).min(axis=1) <= 0.05))

    return {"song": str(path), "seconds": round(dur, 1), "on_grid": round(on_grid(song, kept + removed), 3),
            "qpm_true": round(song.tempos[0].qpm, 1),
            "qpm_tracked": round(r.qpm, 1), "beat_f": round(float(mir_eval.beat.f_measure(ref_beats, est_beats)), 3),
            "onset_f1": round(f(ref_on, got_on), 3), "onset_f1_ceiling": round(f(ref_on, ceil_on), 3),
            "on_8th": round(on_grid_share(2), 3), "on_16th": round(on_grid_share(4), 3),
            "notes_heard": r.notes_heard, "notes_added": r.notes_added,
            "timings": {k: round(v, 2) for k, v in r.timings.items()}, "realtime_factor": round(r.timings["total"] / dur, 3)}


def eligible(path: Path) -> bool:
    """A bench song: drums, bass and guitar all play, so drums and bass are scored on the same songs. (Tempo
    changes do not matter: the excerpt is rendered at the tempo where it starts.)"""
    from stemfill.song.io import read_song
    from stemfill.song.stems import stems_present

    try:
        s = read_song(path)
    except Exception:
        return False
    return len(stems_present(s)) == 3


def pick_songs(a) -> list[Path]:
    """The songs named on the command line, then the eligible songs of ``--split`` from ``--data`` / ``--corpus``."""
    import re

    songs = list(a.songs)
    found: list[Path] = []
    if a.data:
        # the manifest's split is stemfill convert's: content hash (seed 0), then the leak check, which moves a
        # held-out song that shares most of its bars with an earlier split's song into that split
        man = json.loads((a.data / "manifest.json").read_text())
        for e in man["songs"]:
            if e.get("split") != a.split or (a.roots and Path(e["root"]).name not in a.roots):
                continue
            found.append(Path(e["root"]) / e["path"])
    if a.corpus:
        # the content-hash split alone: without the leak check, a copy of a training song can be in it
        from stemfill.datasets.convert import file_hash, split_of

        found += [x for x in sorted(a.corpus.rglob("*")) if x.suffix.lower() in (".mid", ".midi")
                  and split_of(file_hash(x)) == a.split]
    if a.exclude:
        found = [p for p in found if not re.search(a.exclude, str(p), flags=re.IGNORECASE)]
    for p in found:
        if a.n_songs and len(songs) >= a.n_songs:
            break
        if eligible(p):
            songs.append(p)
    return songs


def summarise(rows: list[dict], keys=("beat_f", "onset_f1", "onset_f1_ceiling", "on_8th", "on_16th")) -> dict:
    """Means and medians of ``keys`` over the scored songs, and over the score-like ones (``on_grid`` >= 0.5)."""
    ok = [r for r in rows if "skipped" not in r]
    out: dict = {"songs": len(ok), "skipped": len(rows) - len(ok)}
    score_like = [r for r in ok if r["on_grid"] >= 0.5]  # the MIDI's beats are the music's
    out["score_like_songs"] = len(score_like)
    for name, group in (("", ok), ("_score_like", score_like)):
        for k in keys:
            if group:
                v = [r[k] for r in group]
                out[f"{k}{name}_mean"] = round(float(np.mean(v)), 3)
                out[f"{k}{name}_median"] = round(float(np.median(v)), 3)
    if ok:
        out["realtime_factor_mean"] = round(float(np.mean([r["realtime_factor"] for r in ok])), 3)
    return out


def add_song_set_args(ap: argparse.ArgumentParser, seconds: float) -> None:
    """The options that pick the songs (``pick_songs``) and the excerpt length, shared by the audio benches."""
    ap.add_argument("songs", nargs="*", type=Path, help="MIDI / Guitar Pro files")
    ap.add_argument("--data", type=Path, help="a chunks folder (stemfill convert): the songs of --split in its "
                    "manifest (the project's split: content hash, then the leak check)")
    ap.add_argument("--roots", nargs="+", default=None, help="with --data: only songs from these input folders "
                    "(names, e.g. corpus corpus-extra)")
    ap.add_argument("--corpus", type=Path, help="a folder of songs: those of --split by content hash alone (seed 0; "
                    "no leak check, so prefer --data)")
    ap.add_argument("--exclude", default=None, help="leave out songs whose path matches this regular expression "
                    "(case-insensitive)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--songs", dest="n_songs", type=int, default=0, help="at most this many songs (0: all)")
    ap.add_argument("--seconds", type=float, default=seconds, help="excerpt length (from the start)")


_CHILD = """
import json, sys
from stemfill.audio.symbolic import add_stem_symbolic
r = add_stem_symbolic(sys.argv[1], sys.argv[2], sys.argv[3])
print(json.dumps({"timings": r.timings, "seconds": r.seconds, "qpm": r.qpm}))
"""


def run_long(path: Path, remove: str, seconds: float, minutes: float, sf2, runs: int) -> dict:
    """Time and peak memory of the route on the excerpt looped to ``minutes``, in a fresh process per run."""
    import os
    import subprocess

    import soundfile as sf

    with tempfile.TemporaryDirectory(prefix="bench-route-long-") as d:
        d = Path(d)
        got = render_excerpt(path, remove, seconds, sf2, d / "excerpt.wav")
        if isinstance(got, str):
            return {"song": str(path), "skipped": got}
        y, sr = sf.read(d / "excerpt.wav", dtype="float32")
        n = int(minutes * 60 * sr)
        sf.write(d / "in.wav", np.tile(y, n // len(y) + 1)[:n], sr, subtype="PCM_16")
        del y
        out = []
        for _ in range(runs):
            t = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(d / "in.wav"), str(d / "out.wav"),
                                     f"add {remove}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            stdout = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            wall = time.perf_counter() - t
            if proc.returncode != 0:
                return {"song": str(path), "skipped": f"route failed (exit {proc.returncode})"}
            res = json.loads(stdout.strip().splitlines()[-1])
            out.append({"wall_s": wall, "peak_rss_gb": usage.ru_maxrss / 2**20, **res["timings"]})
    med = {k: round(float(np.median([o[k] for o in out])), 2) for k in out[0]}
    return {"song": str(path), "minutes": minutes, "runs": runs, **med,
            "realtime_factor": round(med["total"] / (minutes * 60), 3)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_song_set_args(ap, seconds=60.0)
    ap.add_argument("--remove", choices=("drums", "bass", "guitar"), default="drums")
    ap.add_argument("--model", type=Path, default=None, help="piano-roll model (default: the shipped one)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-drum-context", action="store_true", help="let the model fill drums as unknown context "
                    "instead of giving it the drum hits heard (adding bass or guitar)")
    ap.add_argument("--no-octave-check", action="store_true",
                    help="keep madmom's tempo where it looks like double time")
    ap.add_argument("--octave-rule", choices=("score", "parity"), default="score",
                    help="score: stemfill's octave check (beats.octave_score); parity: the earlier one, the beat "
                    "network's alternate-beat accents alone (beats.beat_parity), for before/after comparisons")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--minutes", type=float, nargs="+", default=None,
                    help="time and peak memory only: the excerpt looped to each of these lengths (minutes)")
    ap.add_argument("--runs", type=int, default=3, help="with --minutes: runs per length (medians)")
    a = ap.parse_args(argv)
    from stemfill.audio.render import check_renderer

    sf2 = check_renderer()
    if a.octave_rule == "parity":
        import stemfill.audio.beats as beats_module

        beats_module.octave_score = lambda act, times, note_starts=None: beats_module.beat_parity(act, times)
    songs = pick_songs(a)
    if a.minutes:
        rows = [run_long(p, a.remove, a.seconds, m, sf2, a.runs) for p in songs for m in a.minutes]
        print("| clip | load | beats | transcription | drum hits | fill | render + mix | total | x real time | "
              "peak memory |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            if "skipped" in r:
                print(f"| {r['song']}: skipped ({r['skipped']}) |")
                continue
            print(f"| {r['minutes']:g} min | {r['load']:.1f} s | {r['beats']:.1f} s | {r['transcription']:.1f} s | "
                  f"{r.get('drums', 0):.1f} s | {r['fill']:.1f} s | {r['render_mix']:.1f} s | {r['total']:.1f} s | "
                  f"{r['realtime_factor']:.2f} | {r['peak_rss_gb']:.2f} GiB |")
        if a.json:
            a.json.write_text(json.dumps({"long": rows}, indent=1) + "\n")
        return 0
    print(f"{len(songs)} songs", file=sys.stderr, flush=True)
    rows = []
    t0 = time.perf_counter()
    for p in songs:
        row = run_one(p, a.remove, a.seconds, a.model, sf2, seed=a.seed,
                      route_options={"drum_context": not a.no_drum_context, "octave_check": not a.no_octave_check})
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {"remove": a.remove, "drum_context": not a.no_drum_context, "octave_check": not a.no_octave_check,
               "octave_rule": a.octave_rule,
               **summarise(rows), "wall_s": round(time.perf_counter() - t0, 1),
               "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}
    print(json.dumps(summary))
    if a.json:
        a.json.write_text(json.dumps({"summary": summary, "songs": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
