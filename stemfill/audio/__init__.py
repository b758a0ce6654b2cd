"""Audio: rendering, the offline audio route and the Riffusion-based route.

``add`` is the public entry to the offline route (``stemfill.audio.add``); the rest is imported on use."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, Union

if TYPE_CHECKING:
    from stemfill.audio.symbolic import RouteResult

PathLike = Union[str, "os.PathLike[str]"]


def add(input: PathLike, out: PathLike, prompt: str, *, stem_out: PathLike | None = None,
        midi_out: PathLike | None = None, soundfont: PathLike | None = None, model: PathLike | None = None,
        seed: int = 0, steps: int | None = None, stem_level: float = -3.0,
        log: Callable[[str], None] | None = None) -> "RouteResult":
    """Add the stem ``prompt`` names ("add reggae drums", "add a bass") to the recording ``input`` and write the
    mix to ``out`` (.wav/.flac, the input's length, rate and channels), offline on the CPU: beats and bars
    (madmom), notes (basic-pitch), the piano-roll model of ``stemfill.fill``, FluidSynth. This is
    `stemfill audio --method symbolic`. ``stem_out``: also the new stem alone; ``midi_out``: its notes as MIDI;
    ``stem_level``: its loudness against the input, in dB; ``log``: gets one-line notes on what was heard.
    Returns what it heard and wrote (``RouteResult``: beats, qpm, notes heard and added, files written)."""
    from stemfill.audio.symbolic import add_stem_symbolic

    return add_stem_symbolic(input, out, prompt, stem_out=stem_out, midi_out=midi_out, soundfont=soundfont,
                             model=model, seed=seed, steps=steps, stem_level_db=stem_level, log=log)


__all__ = ["add"]
