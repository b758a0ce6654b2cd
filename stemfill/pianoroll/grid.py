"""The piano roll's grid and shape: the one place its numbers live.

A roll is (stems, pitch rows, time steps) of booleans. Time is counted in steps of
1/``STEPS_PER_BEAT`` of a quarter note; the model sees windows of ``WINDOW`` steps
(``WINDOW_BARS`` bars of 4/4). Bass and guitar rows are semitones from their low notes;
drum rows are kit classes (``roll.DRUM_KIT``). A chunk folder's manifest and a model's
config record these numbers, so data and models of another grid are refused, not misread.
"""

from __future__ import annotations

from stemfill.song.song import STEMS

CHANNEL = {s: i for i, s in enumerate(STEMS)}  # stem -> roll channel
STEPS_PER_BEAT = 12  # 16ths and 8th/16th triplets fall on the grid (bench/grid.py)
BEATS_PER_BAR = 4  # the 4/4 bar that windows are counted in
WINDOW_BARS = 4
WINDOW = WINDOW_BARS * BEATS_PER_BAR * STEPS_PER_BEAT  # 192 steps: the training chunk and fill window
N_PITCHES = 48  # rows per channel: four octaves
BASS_LOW = 24  # C1: bass rows are C1 .. B4
GUITAR_LOW = 36  # C2: guitar rows are C2 .. B5
LOW_NOTE = {"bass": BASS_LOW, "guitar": GUITAR_LOW}  # MIDI pitch of row 0, per pitched stem

# The context: what the song's other pitched tracks (keys, strings, synths, brass, vocals) play,
# always known to the model. Planes of N_PITCHES rows from CONTEXT_LOW (notes outside fold by octaves).
CONTEXT_PLANES = ("sounding", "onset")
CONTEXT_LOW = 36  # C2: context rows are C2 .. B5
