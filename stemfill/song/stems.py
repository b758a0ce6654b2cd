"""Track -> stem (drums / bass / guitar / other), from drum flag, GM program, tuning and name."""

from __future__ import annotations

import re

from stemfill.song.song import STEM_OTHER, STEMS, Song, Track

_BASS_NAME = re.compile(r"\bbass|basse|bajo|baixo|contrabass|\bbs\b", re.I)
_GUITAR_NAME = re.compile(r"guit|gtr|gitar|guitarra|\bgt\b|rhythm|lead|distort|overdrive|acoustic|electric", re.I)
_DRUM_NAME = re.compile(r"drum|percussion|\bkit\b|batterie|bater", re.I)
_NOT_BASS = re.compile(r"bassoon|bass\s*drum|kick", re.I)
# tracks that borrow a guitar/bass program but carry another part (common in karaoke files)
_NOT_STEM = re.compile(r"vocal|voice|vox|melody|sing|choir|lyric|piano|organ|keys|synth|string|sax|trumpet|flute", re.I)


def classify_track(track: Track) -> str:
    """Return the stem a track belongs to.

    Order of evidence: the drum flag; for Guitar Pro tracks (those with a string
    tuning) the tuning and name; then the General MIDI program (guitars 24-31,
    basses 32-39); the track name breaks ties for programs outside those families.
    """
    if track.is_drum:
        return "drums"
    name = track.name or ""
    if track.tuning:
        # A tab: 4-6 strings with a low string below E2 (40) is a bass; names win over strings.
        if _BASS_NAME.search(name) and not _NOT_BASS.search(name):
            return "bass"
        if _GUITAR_NAME.search(name):
            return "guitar"
        if len(track.tuning) <= 6 and min(track.tuning) < 36 and max(track.tuning) <= 55:
            return "bass"
        if 32 <= track.program <= 39:
            return "bass"
        return "guitar"
    if _NOT_STEM.search(name) and not re.search(r"guit|gtr|bass", name, re.I):
        return STEM_OTHER
    if 24 <= track.program <= 31:
        return "guitar"
    if 32 <= track.program <= 39:
        return "bass"
    if _DRUM_NAME.search(name):
        return STEM_OTHER  # a pitched track named "drums" but not on channel 10: keep, don't roll
    return STEM_OTHER


def classify_song(song: Song) -> dict[str, list[int]]:
    """Map each stem (and 'other') to the indices of the tracks that belong to it."""
    out: dict[str, list[int]] = {s: [] for s in STEMS + (STEM_OTHER,)}
    for i, t in enumerate(song.tracks):
        out[t.stem or classify_track(t)].append(i)
    return out


def stems_present(song: Song) -> list[str]:
    """Stems (in roll order) that have at least one note in the song."""
    groups = classify_song(song)
    return [s for s in STEMS if any(song.tracks[i].notes for i in groups[s])]
