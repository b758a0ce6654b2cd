"""Put generated pitched parts in a key the musician names (``stemfill midi --key "E minor"``).

When only drums are known, nothing in the song tells the model the key, and it was trained with
pitch-shift augmentation, so it picks one by chance. ``fit_key`` moves the generated bass and
guitar together by the transposition (-6..+5 semitones) whose pitch-class histogram correlates
best with the Krumhansl-Kessler profile of the named key, so intervals, voicings and the line
between the two parts stay as the model wrote them.
"""

from __future__ import annotations

import numpy as np

from stemfill.errors import StemfillError
from stemfill.pianoroll.grid import BASS_LOW, CHANNEL, GUITAR_LOW
from stemfill.song.stems import STEM_OTHER, classify_song

# Krumhansl & Kessler (1982) key profiles, tonic first
MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
SHIFTS = range(-6, 6)
NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def parse_key(name: str) -> tuple[int, bool]:
    """'E minor', 'Em', 'F#', 'Bb major', 'c' (lower case = minor) -> (tonic pitch class, minor)."""
    import pretty_midi

    try:
        k = pretty_midi.key_name_to_key_number(name.strip())
    except (ValueError, AttributeError):
        raise StemfillError(f"--key {name!r}: not a key; write e.g. 'E minor', 'Em', 'A', 'Bb major'") from None
    return k % 12, k >= 12


def key_name(tonic: int, minor: bool) -> str:
    return f"{NAMES[tonic % 12]} {'minor' if minor else 'major'}"


def profile(tonic: int, minor: bool) -> np.ndarray:
    return np.roll(MINOR if minor else MAJOR, tonic % 12)


def chroma(rows: np.ndarray, low: int) -> np.ndarray:
    """(P, T) bool roll whose row 0 is MIDI pitch ``low`` -> sounding steps per pitch class (12,)."""
    c = np.zeros(12)
    np.add.at(c, (low + np.arange(rows.shape[0])) % 12, rows.sum(axis=1))
    return c


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; 0 where a histogram is flat (no key at all)."""
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / den if den > 0 else 0.0


def best_shift(hist: np.ndarray, tonic: int, minor: bool) -> int:
    """The transposition in -6..+5 semitones that makes the pitch-class histogram fit the key best
    (the smallest move among equals; 0 for a flat histogram)."""
    prof = profile(tonic, minor)
    scores = {s: _corr(np.roll(hist, s), prof) for s in SHIFTS}
    return max(sorted(SHIFTS, key=abs), key=lambda s: scores[s])


def transpose(rows: np.ndarray, shift: int) -> np.ndarray:
    """Move a (P, T) roll ``shift`` rows (semitones); a note pushed off the range comes back an octave inward."""
    P = rows.shape[0]
    out = np.zeros_like(rows)
    for r in np.flatnonzero(rows.any(axis=1)):
        t = r + shift
        while t >= P:
            t -= 12
        while t < 0:
            t += 12
        if 0 <= t < P:
            out[t] |= rows[r]
    return out


def estimate_key(hist: np.ndarray) -> tuple[int, bool]:
    """The Krumhansl-Schmuckler key estimate of a pitch-class histogram."""
    best, arg = -np.inf, (0, False)
    for minor in (False, True):
        for tonic in range(12):
            r = _corr(hist, profile(tonic, minor))
            if r > best:
                best, arg = r, (tonic, minor)
    return arg


PITCHED = ((CHANNEL["bass"], BASS_LOW), (CHANNEL["guitar"], GUITAR_LOW))  # (channel, MIDI pitch of row 0)


def pitched_hist(roll: np.ndarray) -> np.ndarray:
    """Sounding steps per pitch class of the bass and guitar of a roll (3, P, T)."""
    return sum(chroma(roll[c], low) for c, low in PITCHED)


def check_key_request(roll: np.ndarray, generated: np.ndarray, key: str) -> tuple[int, bool]:
    """Why ``key`` cannot be applied to this fill, as a ``StemfillError``; else the parsed key.

    roll: (3, P, T); generated: (3, T) bool, the steps each channel generates. Valid before sampling
    (the generated cells are still empty) and after.
    """
    tonic, minor = parse_key(key)
    adds, own = _pitched_parts(roll, generated)
    if not adds:
        raise StemfillError("--key places a new bass or guitar part in a key; add bass or guitar")
    if own:
        raise StemfillError("--key: the song's own bass or guitar notes already set its key; "
                            "--key is for songs where neither bass nor guitar is known")
    return tonic, minor


def _pitched_parts(roll: np.ndarray, generated: np.ndarray) -> tuple[bool, bool]:
    """(a bass or guitar part is generated, the song has bass or guitar notes of its own)."""
    gen = np.asarray(generated, dtype=bool)
    return (any(gen[c].any() for c, _ in PITCHED),
            any((roll[c] & ~gen[c][None, :]).any() for c, _ in PITCHED))


def key_is_free(roll: np.ndarray, generated: np.ndarray) -> bool:
    """True where new bass or guitar is written and no bass or guitar of the song's own sets a key."""
    adds, own = _pitched_parts(roll, generated)
    return adds and not own


def fit_key(roll: np.ndarray, generated: np.ndarray, key: str | tuple[int, bool]) -> tuple[np.ndarray, int]:
    """Move the generated bass and guitar of a filled roll (3, P, T) into ``key`` (a name, or (tonic
    pitch class, minor)); ``check_key_request`` says when it cannot. Returns the new roll and the shift."""
    if isinstance(key, str):
        tonic, minor = check_key_request(roll, generated, key)
    else:
        tonic, minor = key
    hist = pitched_hist(roll)
    shift = best_shift(hist, tonic, minor)
    out = roll.copy()
    for c, _ in PITCHED:
        out[c] = transpose(roll[c], shift)
    return out, shift


def other_tracks_key(song, groups: dict[str, list[int]] | None = None) -> tuple[int, bool] | None:
    """The key of a song's pitched tracks that are not drums, bass or guitar (keys, synths, vocals,
    strings...): the Krumhansl-Schmuckler estimate of their pitch classes weighted by duration. None
    where there are none (or their pitch classes are flat). ``groups``: the song's ``classify_song``."""
    hist = np.zeros(12)
    for i in (classify_song(song) if groups is None else groups)[STEM_OTHER]:
        t = song.tracks[i]
        if not t.is_drum:
            for n in t.notes:
                hist[n.pitch % 12] += n.duration
    if not hist.any() or np.allclose(hist, hist.mean()):
        return None
    return estimate_key(hist)


def chosen_key(roll: np.ndarray, generated: np.ndarray) -> tuple[int, bool] | None:
    """The key the model chose for a fill whose bass and guitar are all generated (Krumhansl-Schmuckler
    estimate of the new parts); None where the song's own bass or guitar set the key, or none was added."""
    if not key_is_free(roll, generated):
        return None
    hist = pitched_hist(roll)
    return estimate_key(hist) if hist.any() else None
