"""Chunk shards on disk and the in-memory ``Chunks`` the model and evaluation read.

Layout of a converted folder (written by ``stemfill convert``)::

    OUT/manifest.json          config, one entry per song, skipped files with reasons
    OUT/shards/<hash16>.npz    one shard per song: packed rolls of its chunks

A shard holds ``rolls`` (n_chunks, 3, N_PITCHES, chunk_len/8) uint8, bit-packed along
time, and ``offsets`` (n_chunks,) int64, each chunk's first step in the song.
A manifest song entry has at least: id, path, hash, split, stems, tempo, bars,
n_steps, n_chunks, shard (relative path). ``stemfill.datasets.convert`` writes the full
schema: ``config`` (steps_per_beat, n_pitches, bass_low, guitar_low, stems, chunk_len, hop,
min_stems, require_all, seed, split, max_bars, format), ``counts`` (songs and chunks per
split), ``songs`` (also root, title, time_signature, chunk_stems) and ``skipped`` (path, root,
one-line reason, kind: error / duplicate / filtered, hash when known).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stemfill.errors import StemfillError
from stemfill.pianoroll.roll import pack, unpack
from stemfill.pianoroll.song import STEMS

SPLITS = ("train", "valid", "test")


@dataclass
class Chunks:
    rolls: np.ndarray  # bool (N, 3, N_PITCHES, chunk_len)
    song_index: np.ndarray  # (N,) index into ``songs``
    offsets: np.ndarray  # (N,) first step of each chunk in its song
    songs: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rolls)

    @property
    def present(self) -> np.ndarray:
        """(N, 3) bool: which stems have at least one note in each chunk."""
        return self.rolls.any(axis=(2, 3))


def save_shard(path: Path, rolls: np.ndarray, offsets: np.ndarray) -> None:
    from stemfill.pianoroll.io import atomic_write_bytes

    buf = io.BytesIO()
    np.savez_compressed(buf, rolls=pack(rolls), offsets=np.asarray(offsets, dtype=np.int64),
                        length=np.int64(rolls.shape[-1]))
    atomic_write_bytes(path, buf.getvalue())


def load_shard(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as z:
        return unpack(z["rolls"], int(z["length"])), z["offsets"]


def read_manifest(root: str | Path) -> dict:
    p = Path(root) / "manifest.json"
    if not p.exists():
        raise StemfillError(f"{root}: no manifest.json; make one with `stemfill convert SONGS -o {root}`")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise StemfillError(f"{p}: corrupt manifest ({e})") from e


def load_chunks(root: str | Path, split: str | None = "train", require: tuple[str, ...] = ()) -> Chunks:
    """All chunks of one split (None = every split). ``require``: keep chunks where these stems have notes."""
    if split is not None and split not in SPLITS:
        raise StemfillError(f"unknown split {split!r}; expected one of {SPLITS}")
    m = read_manifest(root)
    songs = [s for s in m["songs"] if split is None or s["split"] == split]
    rolls, idx, offs = [], [], []
    for i, s in enumerate(songs):
        if not s.get("n_chunks"):
            continue
        r, o = load_shard(Path(root) / s["shard"])
        rolls.append(r)
        offs.append(o)
        idx.append(np.full(len(r), i))
    if not rolls:
        raise StemfillError(f"{root}: split {split!r} has no chunks")
    ch = Chunks(np.concatenate(rolls), np.concatenate(idx), np.concatenate(offs), songs, m.get("config", {}))
    if require:
        keep = ch.present[:, [STEMS.index(s) for s in require]].all(axis=1)
        ch = Chunks(ch.rolls[keep], ch.song_index[keep], ch.offsets[keep], songs, ch.config)
    return ch
