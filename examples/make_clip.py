"""Write examples/riff-no-drums.wav: the first 8 bars of riff.mid's guitar with a root-note bass, no drums.

    python examples/make_clip.py       (needs FluidSynth and a General MIDI soundfont: scripts/setup.sh)

The README's audio example adds drums to it offline: ``stemfill audio examples/riff-no-drums.wav
--prompt "add reggae drums" -o out.wav``. Rendered with TimGM6mb (GPL-2, MuseScore 1.3's soundfont),
mono, 44.1 kHz, 16 bit, about 15 s. Original material, free to use.
"""

from pathlib import Path

import numpy as np
import soundfile as sf

from stemfill.audio.render import find_soundfont, render_midi, write_stem_midi
from stemfill.song.io import read_song
from stemfill.song.song import Note, Track

HERE = Path(__file__).parent
BARS = 8


def main(out: Path = HERE / "riff-no-drums.wav") -> None:
    song = read_song(HERE / "riff.mid")
    bar = song.bar_ticks(song.time_signatures[0])
    guitar = next(t for t in song.tracks if not t.is_drum)
    g_notes = [n for n in guitar.notes if n.start < BARS * bar]
    onsets = sorted({n.start for n in g_notes})
    roots = {s: min(n.pitch for n in g_notes if n.start == s) - 12 for s in onsets}
    quarter = song.resolution
    b_notes = [Note(s, quarter - 40 if s % quarter == 0 else quarter // 2 - 20, roots[s], 100)
               for s in onsets if s % (quarter // 2) == 0 and (s % quarter == 0 or s % bar >= 2 * quarter)]
    tracks = [Track("Rhythm Guitar", program=29, notes=g_notes),
              Track("Bass", program=33, notes=b_notes)]
    mid = out.with_suffix(".tmp.mid")
    try:
        write_stem_midi(song, tracks, mid)
        y = render_midi(mid, find_soundfont())
    finally:
        mid.unlink(missing_ok=True)
    y = y[: int(song.seconds(BARS * bar) * 44_100) + 22_050]  # the last bar and half a second of its tail
    y = (0.7 / np.abs(y).max()) * y
    sf.write(out, y.astype(np.float32), 44_100, subtype="PCM_16")
    print(f"wrote {out} ({len(y) / 44_100:.1f} s)")


if __name__ == "__main__":
    main()
