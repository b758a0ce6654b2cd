"""Style words as reference grooves: "reggae drums" -> a one-drop bar to play like (``--like`` without a file).

Each style is one bar of drums written out here by hand from the genre's standard, textbook pattern
(no third-party material: the grid positions below are the whole source). A style is used the way a
``--like`` reference is: its density, syncopation, toms, fills and groove become the new part's
controls (``controls.reference_controls``), over the song's own harmony and form. Only drums have
styles; a style word for bass or guitar, or one not listed, is reported as not used.

Positions are steps of a 4/4 bar at 12 steps a beat: 0 = beat 1, 6 = its 8th, 3/9 = 16ths, 8 = the
swung 8th (the last triplet).
"""

from __future__ import annotations

import numpy as np

from stemfill.generate.controls import BAR
from stemfill.pianoroll.grid import N_PITCHES
from stemfill.pianoroll.roll import DRUM_KIT
from stemfill.song.song import STEMS

_ROW = {name: i for i, (name, _, _) in enumerate(DRUM_KIT)}
EIGHTHS = tuple(range(0, BAR, 6))
SIXTEENTHS = tuple(range(0, BAR, 3))
QUARTERS = (0, 12, 24, 36)
OFFBEATS = (6, 18, 30, 42)

STYLES: dict[str, dict[str, tuple[int, ...]]] = {
    "rock": {"kick": (0, 24, 30), "snare": (12, 36), "closed hi-hat": EIGHTHS},
    "reggae": {"kick": (24,), "side stick": (24,), "closed hi-hat": OFFBEATS},  # the one drop: nothing on beat 1
    "funk": {"kick": (0, 9, 30), "snare": (12, 36, 21, 45), "closed hi-hat": SIXTEENTHS},
    "metal": {"kick": SIXTEENTHS, "snare": (12, 36), "china": QUARTERS},
    "swing": {"ride": (0, 12, 20, 24, 36, 44), "pedal hi-hat": (12, 36), "kick": (0,)},
    "disco": {"kick": QUARTERS, "snare": (12, 36), "open hi-hat": OFFBEATS, "closed hi-hat": QUARTERS},
    "halftime": {"kick": (0, 9), "snare": (24,), "closed hi-hat": EIGHTHS},
    "punk": {"kick": (0, 12, 24, 36), "snare": (6, 18, 30, 42), "crash": (0,), "closed hi-hat": EIGHTHS},
}
ALIASES = {"one-drop": "reggae", "ska": "reggae", "dub": "reggae", "funky": "funk", "heavy": "metal",
           "jazz": "swing", "jazzy": "swing", "swung": "swing", "half-time": "halftime", "dance": "disco",
           "four-on-the-floor": "disco", "rocking": "rock"}


def style_name(word: str) -> str | None:
    """The style a word names (its alias resolved), or None."""
    w = word.lower().strip()
    w = ALIASES.get(w, w)
    return w if w in STYLES else None


def style_roll(name: str, bars: int = 4) -> np.ndarray:
    """(3, N_PITCHES, bars * BAR) bool: ``bars`` bars of the style's drums (bass and guitar empty)."""
    pattern = STYLES[name]
    roll = np.zeros((len(STEMS), N_PITCHES, bars * BAR), dtype=bool)
    for drum, steps in pattern.items():
        for b in range(bars):
            roll[STEMS.index("drums"), _ROW[drum], [b * BAR + s for s in steps]] = True
    return roll


def check_style(word: str, add: list[str]) -> str:
    """The style ``--style WORD`` names; StemfillError (one line) for an unknown one or no drums to add."""
    from stemfill.errors import StemfillError

    name = style_name(word)
    if name is None:
        raise StemfillError(f"--style {word!r}: known styles are {', '.join(STYLES)}")
    if "drums" not in add:
        raise StemfillError(f"--style {word!r}: styles are drum grooves, and drums are not being added (--add drums)")
    return name


def prompt_styles(words, add: list[str]) -> tuple[str | None, list[str]]:
    """(the drum style that prompt words name, or None; the words not used). A style is used only where
    drums are being added; the first style word wins and later ones are reported as not used."""
    chosen, unused = None, []
    for w in words:
        name = style_name(w)
        if name is not None and chosen is None and "drums" in add:
            chosen = name
        else:
            unused.append(w)
    return chosen, unused
