"""Wall time and peak memory to fill one stem (or two) of a real ~3-minute song on this machine.

    python bench/fill.py [SONG] [--model PATH] [--add bass|bass,guitar] [--steps 8 16 24] [--candidates K]

Model: --model, else the shipped default (stemfill/models/default), else a freshly
initialised model of the default config (timings are the same; the notes are noise).
Peak memory is the process's max RSS (resource.getrusage), which includes torch itself.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import tempfile
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SONG = ROOT.parent / "shared" / "data" / "midi" / "All The Small Things.mid"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("song", nargs="?", default=str(SONG))
    ap.add_argument("--model", default=None)
    ap.add_argument("--add", default="bass", help="stem(s) to add, comma-separated: bass or bass,guitar")
    ap.add_argument("--steps", type=int, nargs="+", default=[0], help="0 = the model's own default")
    ap.add_argument("--candidates", type=int, default=0, help="0 = the model's own default")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)

    from stemfill.pianoroll.fill import fill_song_detail, window_plan
    from stemfill.pianoroll.io import read_song
    from stemfill.pianoroll.model import build_model, load_model
    from stemfill.pianoroll.roll import n_steps

    default = ROOT / "stemfill" / "models" / "default"
    if a.model:
        model, which = load_model(a.model), a.model
    elif (default / "model.safetensors").exists():
        model, which = load_model(default), "shipped default"
    else:
        torch.manual_seed(0)
        model, which = build_model().eval(), "fresh default config (untrained)"
    song = read_song(a.song)
    T = n_steps(song)
    win = model.config.window
    T_pad, p1, p2 = window_plan(T, win, win // 4)
    secs = song.seconds(song.end)
    print(f"song: {Path(a.song).name}: {secs:.0f} s, {song.n_bars} bars, {T} steps -> {len(p1)} + {len(p2)} windows of {win}")
    print(f"model: {which}, {model.net.n_params() / 1e6:.2f} M params; torch threads {torch.get_num_threads()}")
    adds = a.add.split(",")
    replace = any(t.notes for s in adds for t in song.stem_tracks(s))
    cfg = model.config
    print(f"model defaults: {cfg.sample_steps} steps, guidance {cfg.guidance}, decode {cfg.decode}, "
          f"candidates {cfg.candidates}")
    cands = a.candidates or cfg.candidates
    rows = []
    for steps in a.steps:
        steps = steps or model.config.sample_steps
        t0 = time.perf_counter()
        out, _, _ = fill_song_detail(song, adds, model, steps=steps, seed=0, candidates=cands, replace=replace)
        dt = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append((f"fill_song, {steps} steps", dt, rss, sum(len(t.notes) for t in out.tracks[-len(adds):])))
    if not a.model:
        # the whole command as a user runs it: start-up, model load, read, fill, write
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "stemfill.cli", "midi", a.song, "-o", str(Path(tmp) / "out.mid")]
            for s in adds:
                cmd += ["--add", s]
            if replace:
                cmd.append("--replace")
            if a.candidates:
                cmd += ["--candidates", str(a.candidates)]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            dt = time.perf_counter() - t0
            rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            rows.append(("`stemfill midi` end to end", dt, rss, None))
    print(f"\n| what | candidates | wall s | peak RSS MB | notes written |\n|---|---:|---:|---:|---:|")
    for what, dt, rss, n in rows:
        print(f"| {what} | {cands} | {dt:.2f} | {rss:.0f} | {'' if n is None else n} |")


if __name__ == "__main__":
    sys.exit(main())
