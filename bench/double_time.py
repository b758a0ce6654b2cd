"""A double-time case of the symbolic route, before and after the octave check chose from what the song plays.

    python bench/double_time.py ../shared/data/corpus/select/4aeaa587-93fea687432b1315df484891ac977227.mid

The song (valid split; a performance MIDI, so its own beats are not the music's) is rendered for 60 s without
drums from where they first play (bench/audio_route.py's excerpt) and the route adds "reggae drums" twice: with
the earlier octave rule (beats.beat_parity alone, ``parity``) and with stemfill's (beats.octave_score,
``score``). The song's beats: madmom's activations decoded within 1.25x of half the tracker's double tempo
(beats.half_tempo; 89.6 qpm here), the same reference for both runs. Printed: the tempo heard and the share of
the new drum hits within 50 ms of that reference's eighth-note and sixteenth-note grids.
"""
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from audio_route import render_excerpt  # noqa: E402


def main(argv=None) -> int:
    import soundfile as sf

    import stemfill.audio.beats as B
    from stemfill.audio.render import check_renderer
    from stemfill.audio.symbolic import add_stem_symbolic
    from stemfill.song.io import read_song

    argv = sys.argv[1:] if argv is None else argv
    sf2 = check_renderer()
    score_rule = B.octave_score
    for path in map(Path, argv):
        with tempfile.TemporaryDirectory(prefix="bench-double-") as d:
            d = Path(d)
            got = render_excerpt(path, "drums", 60.0, sf2, d / "in.wav")
            if isinstance(got, str):
                print(json.dumps({"song": path.name, "skipped": got}))
                continue
            y, sr = sf.read(d / "in.wav", dtype="float32")
            act = B.beat_activations(y, sr)
            half = B.half_tempo(act, B._decode(act))
            if half is None:
                print(json.dumps({"song": path.name, "skipped": "no half-tempo decoding"}))
                continue
            ref = half[:, 0]

            def grid(k: int) -> np.ndarray:
                return np.concatenate([np.linspace(a, b, k, endpoint=False) for a, b in zip(ref[:-1], ref[1:])])

            for rule in ("parity", "score"):
                B.octave_score = score_rule if rule == "score" else (
                    lambda act, times, note_starts=None: B.beat_parity(act, times))
                r = add_stem_symbolic(d / "in.wav", d / "out.wav", "add reggae drums", midi_out=d / f"{rule}.mid")
                part = read_song(d / f"{rule}.mid")
                hits = np.array(sorted(part.seconds(n.start) for t in part.tracks for n in t.notes))
                hits = hits[(hits >= ref[0]) & (hits < ref[-1])]
                share = lambda g: float(np.mean(np.abs(hits[:, None] - g[None, :]).min(axis=1) <= 0.05))
                print(json.dumps({"song": path.name, "rule": rule, "qpm_tracked": round(r.qpm, 1),
                                  "song_qpm": round(60 / float(np.median(np.diff(ref))), 1), "hits": len(hits),
                                  "on_8th": round(share(grid(2)), 3), "on_16th": round(share(grid(4)), 3)}))
            B.octave_score = score_rule
    return 0


if __name__ == "__main__":
    sys.exit(main())
