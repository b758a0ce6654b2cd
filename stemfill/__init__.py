"""stemfill: add a missing instrument stem to a song.

The public API (``stemfill/api.py``; imported on first use, so ``import stemfill`` stays cheap)::

    song = stemfill.read("song.gp5")
    take = stemfill.fill(song, add=["bass"], bars="17-24", density="high", seed=1)
    take.song.write("out.gp5")
    stemfill.render(take.song, "out.wav")
    stemfill.audio.add("take.wav", "out.wav", "add reggae drums")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = ("read", "write", "fill", "plan_fill", "render", "Take", "FillPlan")
_SONG = ("Song", "Track", "Note")
__all__ = ["__version__", *_API, *_SONG, "StemfillError", "audio"]

if TYPE_CHECKING:  # pragma: no cover
    from stemfill import audio
    from stemfill.api import FillPlan, Take, fill, plan_fill, read, render, write
    from stemfill.errors import StemfillError
    from stemfill.song.song import Note, Song, Track


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module("stemfill.api"), name)
    if name in _SONG:
        return getattr(importlib.import_module("stemfill.song.song"), name)
    if name == "StemfillError":
        from stemfill.errors import StemfillError

        return StemfillError
    if name == "audio":
        return importlib.import_module("stemfill.audio")
    raise AttributeError(f"module 'stemfill' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
