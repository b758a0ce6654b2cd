"""Track -> stem (drums / bass / guitar / other), from drum flag, GM program, tuning and name."""

from __future__ import annotations

import re

from stemfill.song.song import STEM_OTHER, STEMS, Song, Track

_BASS_NAME = re.compile(r"\bbass|basse|bajo|baixo|contrabass|\bbs\b", re.I)
_GUITAR_NAME = re.compile(r"guit|gtr|gitar|guitarra|\bgt\b|rhythm|lead|distort|overdrive|acoustic|electric", re.I)
_NOT_BASS = re.compile(r"bassoon|bass\s*drum|kick", re.I)
# tracks that borrow a guitar/bass program but carry another part (common in karaoke files)
_NOT_STEM = re.compile(r"vocal|voice|vox|melody|sing|choir|lyric|piano|organ|keys|synth|string|sax|trumpet|flute", re.I)
_SAYS_STEM = re.compile(r"guit|gtr|bass|\d\s*-?\s*strings?\b", re.I)  # ... unless it also says guitar or bass ("7-string")


def classify_track(track: Track) -> str:
    """Return the stem a track belongs to.

    Order of evidence: the drum flag; then, for every pitched track, a name that says it
    carries another part (vocals, synth, piano, ...: 'other' unless it also says guitar or
    bass); then the General MIDI program: outside the guitar (24-31) and bass (32-39)
    families a track is 'other', also in a tab (Guitar Pro gives every track strings: a
    tab's "Intro" on String Ensemble or "Voice" on Synth Lead is no guitar). Inside them, a
    Guitar Pro track (one with a string tuning) is told bass or guitar by its name, then its
    strings, then its program; a MIDI track by its program.
    """
    if track.is_drum:
        return "drums"
    name = track.name or ""
    if _NOT_STEM.search(name) and not _SAYS_STEM.search(name):
        return STEM_OTHER
    if not 24 <= track.program <= 39:
        return STEM_OTHER
    if track.tuning:
        # A tab: 4-6 strings with a low string below C2 (36) is a bass; names win over strings.
        if _BASS_NAME.search(name) and not _NOT_BASS.search(name):
            return "bass"
        if _GUITAR_NAME.search(name):
            return "guitar"
        if len(track.tuning) <= 6 and min(track.tuning) < 36 and max(track.tuning) <= 55:
            return "bass"
        return "bass" if track.program >= 32 else "guitar"
    return "guitar" if track.program <= 31 else "bass"


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
