"""Wall time, CPU time and peak memory of `stemfill midi` as a user runs it: the whole process.

    python bench/fill.py [SONG] [--add bass|bass,guitar] [--runs 5] [--minutes 20] [--model PATH]
                         [--steps N] [--candidates K] [--threads N] [--engine auto|onnx|torch]
                         [--options "--density high"]

Every run starts a fresh ``python -m stemfill.cli midi SONG --add ...`` (start-up, imports, model
load, read, fill, write) and takes its wall time, CPU time (user + sys) and peak RSS from the
kernel (``os.wait4``). The table gives the median of ``--runs`` runs (and the fastest) for:

* ``imports``: ``python -c "import stemfill.pianoroll.fill, ENGINE"`` (the fill module and what runs the
  network: onnxruntime or torch, as ``--engine`` says; auto counts onnxruntime), the fixed cost of any fill;
* the song (default: ../shared/data/midi/All The Small Things.mid);
* a synthetic long song, the same song repeated bar-aligned to at least ``--minutes`` minutes
  (0: skip), to show that time grows linearly with the song and memory does not.

The stem is ``--replace``d where the song already has one. Peak RSS includes the engine itself. ``--engine``
goes to `stemfill midi` (default: its own choice, STEMFILL_ENGINE or auto).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SONG = ROOT.parent / "shared" / "data" / "midi" / "All The Small Things.mid"


def run_once(cmd: list[str], env: dict) -> tuple[float, float, float, str]:
    """(wall s, CPU s, peak RSS MB, stdout) of one child process, from the kernel's account of it."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if p.returncode:
            raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{err.read().decode()[-2000:]}")
        return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, out.read().decode()


def repeated(song, minutes: float):
    """``song`` played over and over, each copy starting on the bar line after the last one ends."""
    from stemfill.song.song import Song

    last = song.bar_starts()[-1]
    ts = [t for t in song.time_signatures if t.time <= last][-1]
    period = last + song.bar_ticks(ts)
    copies = max(1, -(-minutes * 60 // song.seconds(period)))
    shift = [k * period for k in range(int(copies))]
    tracks = [replace(t, notes=[replace(n, start=n.start + s) for s in shift for n in t.notes]) for t in song.tracks]
    return Song(tracks=tracks, tempos=[replace(t, time=t.time + s) for s in shift for t in song.tempos],
                time_signatures=[replace(t, time=t.time + s) for s in shift for t in song.time_signatures],
                resolution=song.resolution, title=f"{song.title} x{len(shift)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("song", nargs="?", default=str(SONG))
    ap.add_argument("--add", default="bass", help="stem(s) to add, comma-separated: bass or bass,guitar")
    ap.add_argument("--runs", type=int, default=5, help="runs per row (the table gives medians)")
    ap.add_argument("--minutes", type=float, default=20.0, help="length of the repeated song (0: skip it)")
    ap.add_argument("--model", default=None, help="model folder (default: the shipped one)")
    ap.add_argument("--steps", type=int, default=0, help="0 = the model's own default")
    ap.add_argument("--candidates", type=int, default=0, help="0 = the model's own default")
    ap.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS for the runs (0: torch's default)")
    ap.add_argument("--engine", default="", help="`stemfill midi --engine`: auto, onnx or torch (default: its own)")
    ap.add_argument("--options", default="", help="more `stemfill midi` options, e.g. \"--density high\" (controls)")
    a = ap.parse_args()

    from stemfill.song.io import read_song, write_song

    adds = a.add.split(",")
    env = dict(os.environ)
    if a.threads:
        env["OMP_NUM_THREADS"] = str(a.threads)
    song = read_song(a.song)
    replace_stem = any(t.notes for s in adds for t in song.stem_tracks(s))
    with tempfile.TemporaryDirectory() as tmp:
        songs = [(Path(a.song), song)]
        if a.minutes > 0:
            long = repeated(song, a.minutes)
            songs.append((write_song(long, Path(tmp) / "long.mid"), long))

        def fill_cmd(path: Path) -> list[str]:
            cmd = [sys.executable, "-m", "stemfill.cli", "midi", str(path), "-o", str(Path(tmp) / "out.mid")]
            cmd += [x for s in adds for x in ("--add", s)] + (["--replace"] if replace_stem else [])
            cmd += ["--model", a.model] if a.model else []
            cmd += ["--steps", str(a.steps)] if a.steps else []
            cmd += ["--candidates", str(a.candidates)] if a.candidates else []
            cmd += ["--engine", a.engine] if a.engine else []
            return cmd + shlex.split(a.options)

        lib = "torch" if a.engine == "torch" else "onnxruntime"
        rows = [(f"imports ({lib} + fill module)", "", [sys.executable, "-c", f"import stemfill.pianoroll.fill, {lib}"])]
        for path, s in songs:
            what = f"`stemfill midi --add {' --add '.join(adds)}{' ' + a.options if a.options else ''}`"
            rows.append((what, f"{path.name}: {s.seconds(s.end) / 60:.1f} min, {s.n_bars} bars", fill_cmd(path)))
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start; runs per row: {a.runs}")
        shown = ["python"] + [x.replace(tmp, "TMP") for x in rows[1][2][1:]]
        print(f"command: {shlex.join(shown)}\n")
        results = []
        for what, where, cmd in rows:
            runs = [run_once(cmd, env) for _ in range(a.runs)]
            notes = re.findall(r"\((\d+) notes\)", runs[-1][3])
            ran = re.findall(r" with (onnxruntime|torch): added ", runs[-1][3])
            results.append((what, where, runs, "+".join(notes), "".join(ran)))
            print(f"  {what} {where}: " + ", ".join(f"{w:.2f}" for w, _, _, _ in runs) + " s", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end\n")
    print("| what | song | engine | wall s, median (fastest) | CPU s, median | peak RSS MB, median | notes added |")
    print("|---|---|---|---:|---:|---:|---:|")
    for what, where, runs, notes, ran in results:
        wall, cpu, rss = (statistics.median(r[i] for r in runs) for i in range(3))
        print(f"| {what} | {where} | {ran} | {wall:.2f} ({min(r[0] for r in runs):.2f}) | {cpu:.2f} | {rss:.0f} | {notes} |")


if __name__ == "__main__":
    sys.exit(main())
