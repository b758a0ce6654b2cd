"""Which MIDI parser should stemfill use? Files/s for symusic, mido and pretty_midi on a folder.

    python bench/midi_readers.py [FOLDER] [--repeat N]

Each reader goes from file bytes to a list of notes per track (so mido, which only
parses messages, also pairs note-on/off here), plus the full ``read_midi`` path
(stemfill's reader: parse + checks + rescale to a Song). Default folder:
../shared/data/corpus. Prints one row per reader: files/s, notes/s, failures.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data" / "corpus"


def read_symusic(data: bytes, path: Path) -> int:
    from symusic import Score

    return sum(len(t.notes) for t in Score.from_midi(data).tracks)


def read_mido(data: bytes, path: Path) -> int:
    import io

    import mido

    mid = mido.MidiFile(file=io.BytesIO(data))
    n = 0
    for track in mid.tracks:
        t, active, notes = 0, {}, []
        for msg in track:
            t += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                active.setdefault((msg.channel, msg.note), []).append(t)
            elif msg.type in ("note_on", "note_off"):
                starts = active.get((msg.channel, msg.note))
                if starts:
                    notes.append((starts.pop(0), t, msg.note))
        n += len(notes)
    return n


def read_pretty_midi(data: bytes, path: Path) -> int:
    import io

    import pretty_midi

    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    return sum(len(i.notes) for i in pm.instruments)


def read_stemfill(data: bytes, path: Path) -> int:
    from stemfill.song.midi import read_midi

    return sum(len(t.notes) for t in read_midi(path).tracks)


READERS = {"symusic": read_symusic, "mido": read_mido, "pretty_midi": read_pretty_midi, "stemfill.read_midi (symusic)": read_stemfill}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=str(DEFAULT))
    ap.add_argument("--repeat", type=int, default=1, help="passes over the folder per reader (best pass is kept)")
    args = ap.parse_args()
    files = sorted(Path(args.folder).rglob("*.mid"))
    if not files:
        sys.exit(f"no .mid files under {args.folder}")
    blobs = [(f, f.read_bytes()) for f in files]  # exclude disk time from the parse
    warnings.simplefilter("ignore")
    for fn in READERS.values():  # import cost out of the timings
        try:
            fn(blobs[0][1], blobs[0][0])
        except Exception:
            pass
    print(f"{len(files)} files, {sum(len(b) for _, b in blobs) / 1e6:.1f} MB, best of {args.repeat}")
    print(f"{'reader':30s} {'files/s':>9s} {'notes/s':>11s} {'failed':>7s} {'seconds':>8s}")
    for name, fn in READERS.items():
        best = None
        for _ in range(args.repeat):
            notes = failed = 0
            t0 = time.perf_counter()
            for f, data in blobs:
                try:
                    notes += fn(data, f)
                except Exception:
                    failed += 1
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        print(f"{name:30s} {len(files) / best:9.1f} {notes / best:11.0f} {failed:7d} {best:8.2f}")


if __name__ == "__main__":
    main()
