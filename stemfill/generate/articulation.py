"""How long the new bass's and guitar's notes are held: one articulation per window, as players commit to one.

The decoders place the notes' starts and pitches well, but each note ends where the network's P falls, and P
is the average of what players do: in every window some notes are clipped and some held. Real players
commit to an articulation for a passage, all short or all held; over the valid split's 4-bar windows the mean
log2 note length of a real guitar part spreads twice as wide as the decoder's (std 1.22 against 0.69; bass
1.12 against 0.53), and note lengths are what the realism classifier reads most (docs/generation.md).

``ArticulationModel`` moves each window's note lengths, keeping every note's start and pitch:

- **Target.** The window's mean log2 note length ``m`` (its notes in the steps being filled) is mapped
  through two quantile tables measured on the TRAIN split (``bench/train_articulation.py``): its quantile
  among the decoder's windows, then the real parts' mean at that quantile; the target is ``m + strength x
  (that - m)``. A window the decoder plays held stays held, only more so: the decoder's ranking is kept and
  the spread becomes the players'.
- **Lengths.** One factor ``a`` in [-1, 1] per window moves every note's log2 length toward its room
  (``a > 0``: the steps to the part's next note start, or for ``ring`` the next start on the note's own row,
  as a guitarist lets a string ring; never past the filled steps) or toward ``short`` steps (``a < 0``),
  found by bisection so the window's mean meets the target.

A model folder turns it on by holding ``bass-articulation.json`` / ``guitar-articulation.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stemfill.errors import StemfillError

FORMAT = "stemfill-articulation/1"
MIN_NOTES = 3  # a window with fewer filled notes keeps its lengths
_BISECT = 20


@dataclass
class ArticulationModel:
    """One stem's articulation: the decoder's and the real parts' quantiles of the mean log2 note length of a
    window (``decoded``, ``real``: same length, increasing), how far to move toward the real one
    (``strength``), the shortest target length (``short`` steps) and whether notes may ring under later
    starts on other rows (``ring``)."""

    stem: str
    decoded: np.ndarray
    real: np.ndarray
    strength: float = 0.7
    short: float = 2.0
    ring: bool = False
    meta: dict = field(default_factory=dict)

    def target(self, mean: float) -> float:
        """The window mean log2 length this model moves a window of mean ``mean`` to."""
        return float(mean + self.strength * (np.interp(mean, self.decoded, self.real) - mean))

    def apply(self, part: np.ndarray, free: np.ndarray) -> np.ndarray:
        """``part`` (P, L) bool with the lengths of its notes that lie wholly in the ``free`` steps (L,) moved
        to this model's target (module doc); the other notes are kept as they are."""
        notes = free_notes(part, free, self.ring)
        if notes is None or len(notes[0]) < MIN_NOTES:
            return part
        r, t, d, room = notes
        mean = float(np.log2(d).mean())
        goal = self.target(mean)
        if abs(goal - mean) < 0.01:
            return part
        lo, hi = -1.0, 1.0
        for _ in range(_BISECT):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if np.log2(_lengths(d, room, mid, self.short)).mean() < goal else (lo, mid)
        return _render(part, r, t, d, _lengths(d, room, (lo + hi) / 2, self.short))

    def save(self, path: str | os.PathLike) -> Path:
        from stemfill.files import atomic_write_bytes

        d = {"format": FORMAT, "stem": self.stem, "decoded": np.round(self.decoded, 5).tolist(),
             "real": np.round(self.real, 5).tolist(), "strength": self.strength, "short": self.short,
             "ring": self.ring, "meta": self.meta}
        atomic_write_bytes(Path(path), (json.dumps(d, indent=1) + "\n").encode())
        return Path(path)


def window_means(parts: np.ndarray, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """(mean log2 note length, note count) of each window of ``parts`` (B, P, L)."""
    from stemfill.evaluation.metrics import notes

    b, _, _, d = notes(parts, stem)
    n = np.bincount(b, minlength=len(parts))
    return np.bincount(b, np.log2(d), minlength=len(parts)) / np.maximum(n, 1), n


def train_articulation(stem: str, decoded: np.ndarray, real: np.ndarray, strength: float, short: float,
                       ring: bool, meta: dict, n_quantiles: int = 101) -> ArticulationModel:
    """A model from the window means of the decoder's parts and of the real ones (windows with notes)."""
    if len(decoded) < 2 or len(real) < 2:
        raise StemfillError(f"too few {stem} windows to measure an articulation from")
    q = np.linspace(0.0, 1.0, n_quantiles)
    return ArticulationModel(stem, np.quantile(decoded, q), np.quantile(real, q), float(strength), float(short),
                             bool(ring), dict(meta, windows={"decoded": int(len(decoded)), "real": int(len(real))}))


def free_notes(part: np.ndarray, free: np.ndarray, ring: bool):
    """(row, start, length, room) of the notes of ``part`` (P, L) lying wholly in ``free`` (L,) steps: room is
    the steps to the next note start (of the part, or for ``ring`` of the note's row) or to the next step not
    free, whichever comes first, and never less than the note's own length. None where there are none."""
    from stemfill.evaluation.metrics import notes

    free = np.asarray(free, dtype=bool)
    L = part.shape[-1]
    _, r, t, d = notes(part[None], "bass")  # any pitched stem reads the same; sorted by row, then start
    fc = np.r_[0, np.cumsum(~free)]
    inside = fc[t + d] == fc[t]
    if not inside.any():
        return None
    blocked = np.flatnonzero(~free)
    wall = blocked[np.minimum(np.searchsorted(blocked, t), len(blocked) - 1)] if len(blocked) else np.full(len(t), L)
    wall = np.where((wall >= t) & (len(blocked) > 0), wall, L)
    if ring:
        same = np.r_[r[1:] == r[:-1], False]
        nxt = np.where(same, np.r_[t[1:], L], L)
    else:
        times = np.unique(t)
        k = np.searchsorted(times, t, side="right")
        nxt = np.where(k < len(times), times[np.minimum(k, len(times) - 1)], L)
    room = np.maximum(np.minimum(nxt, wall) - t, d)
    return r[inside], t[inside], d[inside], room[inside]


def _lengths(d: np.ndarray, room: np.ndarray, a: float, short: float) -> np.ndarray:
    """New note lengths: log2 lengths moved by ``a`` toward the room (a > 0) or toward ``short`` (a < 0)."""
    ld = np.log2(d)
    goal = np.log2(room) if a >= 0 else np.full(len(d), np.log2(short))
    return np.clip(np.round(2.0 ** (ld + abs(a) * (goal - ld))), 1, room).astype(np.int64)


def _render(part: np.ndarray, r, t, d, nd) -> np.ndarray:
    """``part`` with the notes (r, t, d) replaced by notes of lengths ``nd``; a note held into the next note of
    its row stops a step before it, so both keep their start (the step before a note start is never sounding
    in a roll)."""
    out = part.copy()
    for ri, ti, di in zip(r.tolist(), t.tolist(), d.tolist()):
        out[ri, ti:ti + di] = False
    for ri, ti, di in zip(r.tolist(), t.tolist(), nd.tolist()):
        out[ri, ti:ti + di] = True
    starts = part[:, 1:] & ~part[:, :-1]
    out[:, :-1] &= ~starts
    return out


def load_articulation(path: str | os.PathLike, stem: str | None = None) -> ArticulationModel:
    """Read an articulation model (of ``stem``, where given); one line naming the path where it is not one."""
    p = Path(path)
    try:
        d = json.loads(p.read_text())
        m = ArticulationModel(str(d["stem"]), np.asarray(d["decoded"], np.float64), np.asarray(d["real"], np.float64),
                              float(d["strength"]), float(d["short"]), bool(d["ring"]), d.get("meta", {}))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise StemfillError(f"{p}: not a stemfill articulation model ({e.__class__.__name__})") from None
    if d.get("format") != FORMAT:
        raise StemfillError(f"{p}: not a stemfill articulation model (format {d.get('format')!r})")
    if stem is not None and m.stem != stem:
        raise StemfillError(f"{p}: an articulation model of the {m.stem}, not of the {stem}")
    if len(m.decoded) < 2 or len(m.decoded) != len(m.real) or np.any(np.diff(m.decoded) < 0):
        raise StemfillError(f"{p}: its quantile tables are not two increasing lists of one length")
    return m


def articulation_path(folder: str | os.PathLike, stem: str) -> Path:
    return Path(folder) / f"{stem}-articulation.json"


def get_articulation(folder: str | os.PathLike | None, stem: str) -> ArticulationModel | None:
    """The ``stem`` articulation model of a model folder (None where there is no folder or none), read once."""
    from stemfill.files import read_once

    if folder is None or not (p := articulation_path(folder, stem)).exists():
        return None
    return read_once(p, load_articulation, stem)
