"""The symbolic route on recordings that drift and breathe: humanized renders of held-out songs, "add drums".

    python bench/humanized.py SONG.mid ... --seconds 45 --json humanized.json
    python bench/humanized.py --data chunks --split test --roots corpus corpus-extra --exclude birthday

Per song (bench/audio_route.py's excerpt: from the bar where the drums first play, without them), every note
time t (seconds) of the other parts is moved to w(t) + jitter, then rendered (FluidSynth, mono 44.1 kHz):
w(t) = t + A sin(2 pi t / P) * P / (2 pi) with A = ``--drift`` (0.08: the tempo swings +-8 % around the
score's, over a period of P = 20 s), and jitter: each note start moved by a normal draw, sd ``--jitter`` (12 ms),
chords together (one draw per onset time). The route (``stemfill.audio.symbolic.add_stem_symbolic``, "add
drums") adds a drum part; its kick and snare hits (GM 35-40) are scored against the recording's onsets, found
in the render by librosa's onset detector (as for a real recording): the share of hits within 50 ms of an
onset, and the same for the same hits moved off the beat — the chance level: 3/8 of a tracked beat later
(``shifted``: 1/8 beat from the nearest sixteenth note, 62 ms at 120 qpm) and half a beat later (``half_beat``:
onto the eighth notes between the beats, where a busy song has onsets too).
Scored too: the beat F-measure (mir_eval, 70 ms) of the tracked beats against the warped score beats.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from audio_route import add_song_set_args, excerpt, pick_songs  # noqa: E402

KICK_SNARE = range(35, 41)
PERIOD_S = 20.0


def warp_fn(drift: float):
    k = 2 * np.pi / PERIOD_S
    return lambda t: np.asarray(t, np.float64) + drift * np.sin(k * np.asarray(t, np.float64)) / k


def humanize(song, tracks, drift: float, jitter_s: float, rng):
    """``tracks`` of ``song`` as a Song at 120 qpm with 1 ms ticks, its note times warped and jittered."""
    from stemfill.song.song import Note, Song, TempoChange, Track

    w = warp_fn(drift)
    starts = sorted({n.start for t in tracks for n in t.notes})
    shift = dict(zip(starts, rng.normal(0.0, jitter_s, len(starts))))
    out = []
    for t in tracks:
        notes = []
        for n in t.notes:
            a = float(w(song.seconds(n.start))) + shift[n.start]
            b = float(w(song.seconds(n.end)))
            a = max(0.0, a)
            notes.append(Note(int(round(a * 1000)), max(1, int(round((b - a) * 1000))), n.pitch, n.velocity))
        out.append(Track(t.name, program=t.program, is_drum=t.is_drum, notes=notes, stem=t.stem))
    return Song(tracks=out, tempos=[TempoChange(0, 120.0)], resolution=500, title=song.title)


def run_one(path: Path, seconds: float, sf2, drift: float, jitter_s: float, seed: int) -> dict:
    import librosa
    import mir_eval
    import soundfile as sf

    from stemfill.audio.render import render_midi, write_stem_midi
    from stemfill.audio.symbolic import add_stem_symbolic
    from stemfill.song.io import read_song
    from stemfill.song.stems import classify_song

    song = read_song(path)
    groups = classify_song(song)
    removed = [song.tracks[i] for i in groups["drums"] if song.tracks[i].notes]
    kept = [t for i, t in enumerate(song.tracks) if i not in groups["drums"] and t.notes]
    if not removed or not kept:
        return {"song": str(path), "skipped": "no drums or nothing else"}
    song, kept, removed = excerpt(song, kept, removed, seconds)
    if not kept:
        return {"song": str(path), "skipped": "nothing but drums in the excerpt"}
    human = humanize(song, kept, drift, jitter_s, np.random.default_rng(seed))
    w = warp_fn(drift)
    with tempfile.TemporaryDirectory(prefix="bench-human-") as d:
        d = Path(d)
        write_stem_midi(human, human.tracks, d / "in.mid")
        y = render_midi(d / "in.mid", sf2)[: int(seconds * 44_100)]
        if np.abs(y).max() < 1e-4:
            return {"song": str(path), "skipped": "silent excerpt"}
        y = (0.7 / np.abs(y).max() * y).astype(np.float32)
        sf.write(d / "in.wav", y, 44_100, subtype="PCM_16")
        try:
            r = add_stem_symbolic(d / "in.wav", d / "out.wav", "add drums", midi_out=d / "drums.mid", seed=seed)
        except Exception as e:  # a bench goes on: one line per failed song
            return {"song": str(path), "skipped": f"route failed: {e}"}
        part = read_song(d / "drums.mid")
    dur = len(y) / 44_100
    onsets = librosa.onset.onset_detect(y=y, sr=44_100, units="time", hop_length=441)
    hits = np.array(sorted(part.seconds(n.start) for t in part.tracks for n in t.notes if n.pitch in KICK_SNARE))
    hits = hits[hits < dur]
    beats = np.asarray(r.beats)
    if not len(hits) or len(beats) < 2 or not len(onsets):
        return {"song": str(path), "skipped": "no kick or snare hits, beats or onsets"}
    period = np.interp(hits, beats[1:], np.diff(beats))  # the local tracked beat period at each hit
    near = lambda t: float(np.mean(np.abs(t[:, None] - onsets[None, :]).min(axis=1) <= 0.05))
    ref_beats = w(np.arange(0, song.end + song.resolution, song.resolution, dtype=np.float64)
                  / song.resolution * 60.0 / song.tempos[0].qpm)
    ref_beats = ref_beats[ref_beats < dur]
    beat_f = float(mir_eval.beat.f_measure(mir_eval.beat.trim_beats(ref_beats), mir_eval.beat.trim_beats(beats)))
    return {"song": str(path), "seconds": round(dur, 1), "qpm_score": round(song.tempos[0].qpm, 1),
            "qpm_tracked": round(r.qpm, 1), "beat_f": round(beat_f, 3), "kick_snare_hits": len(hits),
            "on_onsets": round(near(hits), 3), "shifted_on_onsets": round(near(hits + 3 * period / 8), 3),
            "half_beat_on_onsets": round(near(hits + period / 2), 3)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_song_set_args(ap, seconds=45.0)
    ap.add_argument("--drift", type=float, default=0.08, help="peak tempo deviation (0.08: +-8 %%)")
    ap.add_argument("--jitter", type=float, default=0.012, help="sd of each onset's timing jitter, seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    from stemfill.audio.render import check_renderer

    sf2 = check_renderer()
    rows = []
    for p in pick_songs(a):
        row = run_one(p, a.seconds, sf2, a.drift, a.jitter, a.seed)
        rows.append(row)
        print(json.dumps(row), flush=True)
    ok = [r for r in rows if "skipped" not in r]
    summary = {"songs": len(ok), "skipped": len(rows) - len(ok), "drift": a.drift, "jitter_s": a.jitter}
    for k in ("beat_f", "on_onsets", "shifted_on_onsets", "half_beat_on_onsets"):
        if ok:
            summary[f"{k}_mean"] = round(float(np.mean([r[k] for r in ok])), 3)
            summary[f"{k}_median"] = round(float(np.median([r[k] for r in ok])), 3)
    if ok:
        summary["songs_at_75pct_and_twice_shifted"] = sum(r["on_onsets"] >= 0.75 and
                                                          r["on_onsets"] >= 2 * r["shifted_on_onsets"] for r in ok)
    print(json.dumps(summary))
    if a.json:
        a.json.write_text(json.dumps({"summary": summary, "songs": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
