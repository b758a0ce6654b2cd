"""The symbolic route's "seems to have a bass already" warning (stemfill.audio.symbolic.has_bass), measured.

    python bench/beat_octave.py SONGS... --cache C-test          # renders each excerpt without drums / without bass
    python bench/bass_present.py C-test C-valid                  # ... then this, on those renders

Each ``*-drums.wav`` render of bench/beat_octave.py's cache still has its bass, each ``*-bass.wav`` has none.
Per render: the share of the clip during which transcribed notes below E2 (MIDI 40) sound; the warning fires at
``BASS_SHARE`` or more. Prints how many renders with and without a bass pass each threshold.
"""

from __future__ import annotations

import argparse
import glob
import sys

import numpy as np


def low_share(notes, seconds: float, low: int) -> float:
    spans = sorted((n.start, n.end) for n in notes if n.pitch < low)
    covered, end = 0.0, -np.inf
    for a, b in spans:
        if b > end:
            covered += b - max(a, end)
            end = b
    return covered / seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("caches", nargs="+", help="bench/beat_octave.py --cache folders")
    a = ap.parse_args(argv)
    import soundfile as sf

    from stemfill.audio.symbolic import BASS_LOW, BASS_SHARE
    from stemfill.audio.transcribe import transcribe

    with_bass, without = [], []
    for d in a.caches:
        for w in sorted(glob.glob(f"{d}/*.wav")):
            y, sr = sf.read(w, dtype="float32")
            share = low_share(transcribe(y, sr), len(y) / sr, BASS_LOW)
            (with_bass if w.endswith("-drums.wav") else without).append(share)
    print(f"{len(with_bass)} renders with their bass, {len(without)} without")
    print("| share of the clip with notes below E2 at least | renders with a bass | renders without |")
    print("|---|---|---|")
    for t in (0.25, 0.35, BASS_SHARE, 0.55):
        print(f"| {t:.2f}{' (BASS_SHARE)' if t == BASS_SHARE else ''} | {sum(v >= t for v in with_bass)} | "
              f"{sum(v >= t for v in without)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
