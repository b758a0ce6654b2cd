"""Song <-> 3-channel binary piano roll (drums, bass, guitar) x pitch rows x time steps.

The grid
--------
The numbers live in ``grid``:
* ``STEPS_PER_BEAT`` steps per quarter note (12, as in MuseGAN: 16ths *and* 8th/16th
  triplets fall on the grid; ``bench/grid.py`` measures the share of notes each grid
  keeps exactly on the corpus, see docs/benchmarks.md).
* ``N_PITCHES`` rows per channel. Bass rows are MIDI ``BASS_LOW``.., guitar rows
  MIDI ``GUITAR_LOW``.., drum rows are kit classes (``DRUM_KIT``), the rest of the
  drum channel stays empty. Notes outside a range are folded by octaves into it
  (counted by ``bench/grid.py``).

Note starts
-----------
Bass and guitar are frame rolls (1 while a note sounds). Two touching notes of the
same pitch would merge, so the earlier note is shortened by one step: a run of ones
is always exactly one note. Drums are onset rolls: every 1 is one hit.
"""

from __future__ import annotations

import numpy as np

from stemfill.pianoroll.grid import CHANNEL, CONTEXT_LOW, CONTEXT_PLANES, LOW_NOTE, N_PITCHES, STEPS_PER_BEAT
from stemfill.song.song import RESOLUTION, STEMS, Note, Song, Track
from stemfill.song.stems import classify_song


# Drum kit classes: (name, representative GM key written back, GM keys mapped to it)
DRUM_KIT: tuple[tuple[str, int, tuple[int, ...]], ...] = (
    ("kick", 36, (35, 36)),
    ("snare", 38, (38, 40)),
    ("side stick", 37, (37,)),
    ("clap", 39, (39,)),
    ("closed hi-hat", 42, (42,)),
    ("pedal hi-hat", 44, (44,)),
    ("open hi-hat", 46, (46,)),
    ("low tom", 45, (41, 43, 45)),
    ("mid tom", 47, (47, 48)),
    ("high tom", 50, (50,)),
    ("crash", 49, (49, 57)),
    ("ride", 51, (51, 59)),
    ("ride bell", 53, (53,)),
    ("china", 52, (52,)),
    ("splash", 55, (55,)),
    ("tambourine", 54, (54,)),
    ("cowbell", 56, (56,)),
    ("other percussion", 75, tuple(range(27, 35)) + tuple(range(58, 88)) + (0,)),
)
N_DRUM_CLASSES = len(DRUM_KIT)
DRUM_CLASS_OF_KEY = np.full(128, N_DRUM_CLASSES - 1, dtype=np.int64)
for _i, (_name, _key, _keys) in enumerate(DRUM_KIT):
    DRUM_CLASS_OF_KEY[list(_keys)] = _i
DRUM_KEY_OF_CLASS = np.array([k for _, k, _ in DRUM_KIT])

# Defaults for a track the model writes. No tuning: the Guitar Pro writer picks one for the
# part's range (4/5/6-string bass, drop tunings) and frets it (fretting.py).
NEW_TRACK = {
    "drums": dict(name="Drums (stemfill)", program=0, is_drum=True, tuning=None),
    "bass": dict(name="Bass (stemfill)", program=33, is_drum=False, tuning=None),
    "guitar": dict(name="Guitar (stemfill)", program=29, is_drum=False, tuning=None),
}


def ticks_to_step(tick: int | np.ndarray, resolution: int, steps_per_beat: int = STEPS_PER_BEAT):
    return np.rint(np.asarray(tick) * steps_per_beat / resolution).astype(np.int64)


def pitch_row(stem: str, pitch: int | np.ndarray) -> np.ndarray:
    """Row of a pitch in its stem's channel (octave-folded into range; drums: kit class)."""
    p = np.asarray(pitch, dtype=np.int64)
    if stem == "drums":
        return DRUM_CLASS_OF_KEY[np.clip(p, 0, 127)]
    return _fold(p, LOW_NOTE[stem])


def _fold(p: np.ndarray, low: int) -> np.ndarray:
    """Rows of MIDI pitches ``p`` in N_PITCHES rows from ``low``, folded by octaves into range."""
    r = np.asarray(p, dtype=np.int64) - low
    r = np.where(r < 0, r % 12, r)
    return np.where(r >= N_PITCHES, N_PITCHES - 12 + (r % 12), r)


def encode_context(song: Song, steps_per_beat: int = STEPS_PER_BEAT, length: int | None = None,
                   groups: dict[str, list[int]] | None = None) -> np.ndarray:
    """The song's other pitched tracks -> bool (len(CONTEXT_PLANES), N_PITCHES, T): where each pitch
    sounds, and where notes start. Tracks of stem 'other' that are not drums; none: all False."""
    T = n_steps(song, steps_per_beat) if length is None else length
    ctx = np.zeros((len(CONTEXT_PLANES), N_PITCHES, T), dtype=bool)
    groups = classify_song(song) if groups is None else groups
    notes = [n for i in groups["other"] if not song.tracks[i].is_drum for n in song.tracks[i].notes]
    if not notes or T == 0:
        return ctx
    starts = ticks_to_step(np.array([n.start for n in notes]), song.resolution, steps_per_beat)
    ends = ticks_to_step(np.array([n.end for n in notes]), song.resolution, steps_per_beat)
    rows = _fold(np.array([n.pitch for n in notes]), CONTEXT_LOW)
    keep = starts < T
    starts, rows = starts[keep], rows[keep]
    ends = np.clip(np.maximum(ends[keep], starts + 1), 0, T)
    ctx[1, rows, starts] = True
    # sounding: +1 at each start, -1 at each end, per row; a cell sounds where the running sum is > 0
    delta = np.zeros((N_PITCHES, T + 1), dtype=np.int32)
    np.add.at(delta, (rows, starts), 1)
    np.add.at(delta, (rows, ends), -1)
    ctx[0] = np.cumsum(delta, axis=1)[:, :T] > 0
    return ctx


def n_steps(song: Song, steps_per_beat: int = STEPS_PER_BEAT) -> int:
    return int(ticks_to_step(song.end, song.resolution, steps_per_beat)) + 1 if song.end else 0


def encode(song: Song, steps_per_beat: int = STEPS_PER_BEAT, length: int | None = None,
           groups: dict[str, list[int]] | None = None) -> np.ndarray:
    """Song -> bool array (3, N_PITCHES, T). Tracks of stem 'other' are left out (``encode_context``).
    ``groups``: the song's tracks by stem (``stems.classify_song``), where the caller has them."""
    T = n_steps(song, steps_per_beat) if length is None else length
    roll = np.zeros((len(STEMS), N_PITCHES, T), dtype=bool)
    groups = classify_song(song) if groups is None else groups
    for stem in STEMS:
        c = CHANNEL[stem]
        notes = [n for i in groups[stem] for n in song.tracks[i].notes]
        if not notes:
            continue
        starts = ticks_to_step(np.array([n.start for n in notes]), song.resolution, steps_per_beat)
        ends = ticks_to_step(np.array([n.end for n in notes]), song.resolution, steps_per_beat)
        rows = pitch_row(stem, np.array([n.pitch for n in notes]))
        keep = starts < T
        starts, ends, rows = starts[keep], np.minimum(ends[keep], T), rows[keep]
        if stem == "drums":
            roll[c, rows, starts] = True
            continue
        ends = np.maximum(ends, starts + 1)
        onset = np.zeros((N_PITCHES, T), dtype=bool)
        onset[rows, starts] = True
        for r, s, e in zip(rows, starts, ends):
            roll[c, r, s:e] = True
        # one-step gap before every onset that touches a sounding step of the same pitch
        touch = onset[:, 1:] & roll[c, :, :-1]
        # the earlier note gives up its last step, unless it is a one-step note (that step
        # is its onset): then the later note gives up its first step, if it has more than one
        one_step = touch & onset[:, :-1]
        roll[c, :, :-1] &= ~(touch & ~one_step)
        later_first = np.zeros_like(onset)
        later_first[:, 1:] = one_step
        later_first[:, :-1] &= roll[c, :, 1:] & ~onset[:, 1:]
        later_first[:, -1] = False
        roll[c] &= ~later_first
    return roll


def decode_stem(roll_channel: np.ndarray, stem: str, steps_per_beat: int = STEPS_PER_BEAT,
                resolution: int = RESOLUTION, velocity: int = 96, offset_ticks: int = 0) -> list[Note]:
    """One channel (N_PITCHES, T) -> notes. Pitched: each run of ones is a note. Drums: each one is a hit."""
    step = resolution / steps_per_beat
    ch = np.asarray(roll_channel, dtype=bool)
    notes: list[Note] = []
    if stem == "drums":
        rows, steps = np.nonzero(ch[:len(DRUM_KEY_OF_CLASS)])  # rows past the kit's classes are no drum
        dur = max(1, int(round(step)))
        for r, s in zip(rows, steps):
            notes.append(Note(offset_ticks + int(round(s * step)), dur, int(DRUM_KEY_OF_CLASS[r]), velocity))
    else:
        low = LOW_NOTE[stem]
        d = np.diff(ch.astype(np.int8), axis=1, prepend=0, append=0)
        for r in range(ch.shape[0]):
            on = np.flatnonzero(d[r] == 1)
            off = np.flatnonzero(d[r] == -1)
            for s, e in zip(on, off):
                t0, t1 = int(round(s * step)), int(round(e * step))
                notes.append(Note(offset_ticks + t0, max(1, t1 - t0), low + r, velocity))
    notes.sort(key=lambda n: (n.start, n.pitch))
    return notes


def decode(roll: np.ndarray, steps_per_beat: int = STEPS_PER_BEAT, resolution: int = RESOLUTION,
           stems: tuple[str, ...] = STEMS) -> dict[str, list[Note]]:
    """Roll (3, N_PITCHES, T) -> {stem: notes} for the requested stems."""
    return {s: decode_stem(roll[CHANNEL[s]], s, steps_per_beat, resolution) for s in stems}


def new_track(stem: str, notes: list[Note]) -> Track:
    """A fresh track for a generated stem, with GM defaults (and a tab tuning for bass/guitar)."""
    return Track(notes=notes, stem=stem, **NEW_TRACK[stem])


def pack(roll: np.ndarray) -> np.ndarray:
    """Bit-pack a bool roll along time (8 steps per byte)."""
    return np.packbits(roll, axis=-1)


def unpack(packed: np.ndarray, length: int) -> np.ndarray:
    return np.unpackbits(packed, axis=-1, count=length).astype(bool)
