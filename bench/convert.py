"""Benchmark `stemfill convert`: a first run into a temp folder, then a resumed second run.

    python bench/convert.py [FOLDER ...] [--jobs N ...] [--profile]

Prints one row per --jobs value: files found, songs converted, seconds, files/s, peak memory
(this process and the largest worker, from getrusage maxrss), and the second (resume) run's time.
--profile adds a cProfile of a serial run (where the time goes, by function).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stemfill.datasets.convert import convert  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data"


def _mib(kib: int) -> float:
    return kib / 1024


def run(inputs: list[Path], jobs: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="stemfill-bench-"))
    try:
        out = tmp / "out"
        t = time.perf_counter()
        rep = convert(inputs, out, jobs=jobs)
        first = time.perf_counter() - t
        t = time.perf_counter()
        rep2 = convert(inputs, out, jobs=jobs)
        second = time.perf_counter() - t
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dict(jobs=jobs, files=rep.n_files, converted=rep.converted, skipped=len(rep.skipped), chunks=rep.n_chunks,
                seconds=first, rate=rep.n_files / first, resume=second, resume_done=rep2.done, mib=size / 2**20,
                rss_self=_mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
                rss_child=_mib(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))


def profile(inputs: list[Path]) -> None:
    import cProfile
    import pstats

    with tempfile.TemporaryDirectory() as tmp:
        pr = cProfile.Profile()
        pr.enable()
        convert(inputs, Path(tmp) / "out", jobs=1)
        pr.disable()
    pstats.Stats(pr).sort_stats("cumulative").print_stats(25)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="*", type=Path, default=[DEFAULT])
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    print(f"inputs: {', '.join(map(str, a.inputs))}")
    print("| jobs | files | converted | skipped | chunks | seconds | files/s | resume s (done) | shards MiB | peak RSS main / worker MiB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for j in a.jobs:
        r = run(a.inputs, j)
        print(f"| {r['jobs']} | {r['files']} | {r['converted']} | {r['skipped']} | {r['chunks']} | {r['seconds']:.2f} | "
              f"{r['rate']:.1f} | {r['resume']:.2f} ({r['resume_done']}) | {r['mib']:.1f} | "
              f"{r['rss_self']:.0f} / {r['rss_child']:.0f} |", flush=True)
    if a.profile:
        profile(a.inputs)


if __name__ == "__main__":
    main()
