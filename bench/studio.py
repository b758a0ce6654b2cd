"""`stemfill studio` as a user meets it: Generate to a playable take, the page's first paint, the server's memory.

    python bench/studio.py [SONG] [--add bass] [--takes 30] [--paints 5] [--starts 3]

Starts the real command (``stemfill studio SONG --no-browser``) and, over HTTP as the page does:

* waits for the song's own render (the page asks for it as it opens, to play the original);
* makes ``--takes`` takes of one stem (``--replace``d where the song has it; seeds 0, 1, ...), each timed from the
  Generate request to the end of the download of its .wav (what the page's player plays): the first take of
  ``--starts`` fresh servers apart (it loads the model), then the median of the others on the last server;
* the server's resident memory after every 10 takes and its peak (VmHWM) after the last;
* in Debian's chromium (Playwright), ``--paints`` fresh page loads: first contentful paint, and the moment the
  song's piano roll is drawn (its ``roll-drawn`` mark), from navigation start.

Default song: the 3-minute bench song of bench/fill.py (../shared/data/midi/All The Small Things.mid).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from studio_screenshot import CHROMIUM_ARGS, start_studio, stop  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SONG = ROOT.parent / "shared" / "data" / "midi" / "All The Small Things.mid"


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, MB, from /proc."""
    got = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            got[k] = int(v.split()[0]) / 1024
    return got["VmRSS"], got["VmHWM"]


def row(name: str, xs: list[float], unit: str) -> str:
    if not xs:
        return f"| {name} | - | - | - | 0 |"
    return (f"| {name} | {statistics.median(xs):.2f} {unit} | {min(xs):.2f} {unit} | {max(xs):.2f} {unit} "
            f"| {len(xs)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("song", nargs="?", type=Path, default=SONG)
    ap.add_argument("--add", default="bass", help="the stem to add")
    ap.add_argument("--takes", type=int, default=30)
    ap.add_argument("--paints", type=int, default=5)
    ap.add_argument("--starts", type=int, default=3, help="fresh servers, for the first take's time")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    a = ap.parse_args()
    if not a.song.exists():
        raise SystemExit(f"{a.song}: no such file (the default is the shared data's bench song)")

    opened, first = [], []
    for run in range(a.starts):  # fresh servers: the song's render as it opens, and the first take (model load)
        tmp = tempfile.mkdtemp(prefix="bench-studio-")
        proc, url = start_studio(a.song, tmp)
        try:
            c = httpx.Client(base_url=url, timeout=600)
            sid = c.get("/api/state").json()["first"]
            info = c.get(f"/api/songs/{sid}").json()
            stems = {t["stem"] for t in info["tracks"] if t["count"]}
            t0 = time.perf_counter()
            c.get(f"/api/songs/{sid}/takes/original/download.wav?inline=1").raise_for_status()
            opened.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            r = c.post(f"/api/songs/{sid}/takes", json={"stems": [a.add], "seed": 0, "replace": a.add in stems})
            r.raise_for_status()
            c.get(f"/api/songs/{sid}/takes/{r.json()['id']}/download.wav?inline=1").raise_for_status()
            first.append(time.perf_counter() - t0)
            print(f"start {run + 1}: song rendered in {opened[-1]:.2f} s, first take playable in {first[-1]:.2f} s",
                  file=sys.stderr)
        finally:
            if run < a.starts - 1:
                stop(proc)
                shutil.rmtree(tmp, ignore_errors=True)
    # the last server goes on: more takes, its memory, and the page
    try:
        gen, playable, mem = [], [], []
        for i in range(1, a.takes):
            t0 = time.perf_counter()
            r = c.post(f"/api/songs/{sid}/takes", json={"stems": [a.add], "seed": i, "replace": a.add in stems})
            r.raise_for_status()
            t1 = time.perf_counter()
            w = c.get(f"/api/songs/{sid}/takes/{r.json()['id']}/download.wav?inline=1")
            w.raise_for_status()
            t2 = time.perf_counter()
            gen.append(t1 - t0)
            playable.append(t2 - t0)
            if (i + 1) % 10 == 0:
                mem.append((i + 1, *rss_mb(proc.pid)))
            print(f"take {i + 1}: generate {t1 - t0:.2f} s, playable {t2 - t0:.2f} s", file=sys.stderr)
        kept = len(c.get(f"/api/songs/{sid}/takes").json()["takes"])

        fcp, drawn = [], []
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=a.chromium, args=CHROMIUM_ARGS)
            for _ in range(a.paints):
                ctx = b.new_context(viewport={"width": 1400, "height": 900})
                page = ctx.new_page()
                page.goto(url)
                page.wait_for_function("performance.getEntriesByName('roll-drawn').length > 0", timeout=60_000)
                f, d = page.evaluate("""() => [
                    (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime,
                    performance.getEntriesByName('roll-drawn')[0].startTime]""")
                if f is not None:
                    fcp.append(f / 1000)
                drawn.append(d / 1000)
                ctx.close()
            b.close()
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)

    dur = info["seconds"]
    print(f"\n{a.song.name}: {dur / 60:.1f} min, {info['n_bars']} bars, "
          f"{sum(t['count'] for t in info['tracks'])} notes; add {a.add}"
          f"{' (replace)' if a.add in stems else ''}; {os.cpu_count()} CPUs\n")
    print("| measure | median | fastest | slowest | runs |")
    print("|---|---|---|---|---|")
    print(row("the song's own render, per stem (as the page opens)", opened, "s"))
    print(row("Generate -> playable take, first of a server (loads the model)", first, "s"))
    print(row("Generate -> playable take, later takes", playable, "s"))
    print(row("  of which the model (request answered)", gen, "s"))
    print(row("first contentful paint", fcp, "s"))
    print(row("song's piano roll drawn", drawn, "s"))
    for n, cur, peak in mem:
        print(f"| server memory after {n} takes ({min(n, kept)} kept) | {cur:.0f} MB resident | | peak {peak:.0f} MB | |")


if __name__ == "__main__":
    main()
