"""How well a song's bass and guitar sit on what its other tracks play: the share of bass and guitar note
starts whose pitch class the other pitched tracks sound at that step, among the starts where they sound
anything. Run it on a filled song and on the original to compare.

    python bench/context_fit.py SONG [SONG ...]
"""

from __future__ import annotations

import sys

import numpy as np


def main(argv=None) -> int:
    from stemfill.pianoroll.grid import CONTEXT_LOW, LOW_NOTE, N_PITCHES
    from stemfill.pianoroll.roll import encode, encode_context
    from stemfill.song.io import read_song
    from stemfill.song.stems import classify_song

    for path in (argv if argv is not None else sys.argv[1:]):
        song = read_song(path)
        groups = classify_song(song)
        roll, ctx = encode(song, groups=groups), encode_context(song, groups=groups)
        pcs = np.zeros((12, roll.shape[2]), bool)
        for row in range(N_PITCHES):
            pcs[(CONTEXT_LOW + row) % 12] |= ctx[0, row]
        for c, stem in ((1, "bass"), (2, "guitar")):
            on = roll[c] & ~np.pad(roll[c], ((0, 0), (1, 0)))[:, :-1]
            rows, steps = np.nonzero(on)
            sounding = pcs[:, steps].any(0)
            shared = pcs[(LOW_NOTE[stem] + rows) % 12, steps]
            share = float(shared[sounding].mean()) if sounding.any() else float("nan")
            print(f"{path}: {stem}: {len(rows)} notes; {share:.3f} of the starts where the other tracks sound "
                  "are on a pitch class they sound")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
