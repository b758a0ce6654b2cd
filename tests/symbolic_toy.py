"""Toy data for the model tests: chunk folders and songs with a learnable drums/bass/guitar pattern."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stemfill.datasets.chunks import save_shard
from stemfill.pianoroll.grid import CHANNEL, N_PITCHES
from stemfill.song.song import Note, Song, Track

L = 192


def toy_rolls(n: int, seed: int = 0, length: int = L) -> np.ndarray:
    """(n, 3, 48, length) bool: per bar a root; guitar triad 8ths, bass root quarters, kick/snare/hat.
    Some chunks lack a stem (empty channel), as in real data."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 3, N_PITCHES, length), dtype=bool)
    for i in range(n):
        for bar in range(length // 48):
            root = int(rng.integers(0, 12))
            b0 = bar * 48
            for s in range(b0, b0 + 48, 6):
                for iv in (0, 4, 7):
                    out[i, CHANNEL["guitar"], 12 + root + iv, s:s + 5] = True
            for s in range(b0, b0 + 48, 12):
                out[i, CHANNEL["bass"], 12 + root, s:s + 11] = True
            for s in range(b0, b0 + 48, 24):
                out[i, CHANNEL["drums"], 0, s] = True
                out[i, CHANNEL["drums"], 1, s + 12] = True
            out[i, CHANNEL["drums"], 4, b0:b0 + 48:6] = True
        drop = rng.integers(0, 6)
        if drop < 3:
            out[i, drop] = False
    return out


def make_chunk_folder(root: Path, n_train: int = 64, n_valid: int = 16, seed: int = 0) -> Path:
    root = Path(root)
    songs = []
    for split, n, s in (("train", n_train, seed), ("valid", n_valid, seed + 1)):
        rolls = toy_rolls(n, s)
        shard = f"shards/{split}.npz"
        (root / "shards").mkdir(parents=True, exist_ok=True)
        save_shard(root / shard, rolls, np.arange(n) * L)
        songs.append(dict(id=split, path=f"{split}.mid", hash=split, split=split, stems=["drums", "bass", "guitar"],
                          tempo=120.0, bars=n * 4, n_steps=n * L, n_chunks=n, shard=shard))
    (root / "manifest.json").write_text(json.dumps({"config": {"chunk_len": L}, "songs": songs, "skipped": []}))
    return root


def toy_song(bars: int = 6, stems=("drums", "guitar"), res: int = 480) -> Song:
    """A small song with the toy pattern in the given stems (GM programs so stems classify)."""
    q = res  # ticks per quarter
    tracks = []
    roots = [0, 5, 7, 3, 0, 9, 2, 4] * (bars // 8 + 1)
    if "drums" in stems:
        notes = []
        for b in range(bars):
            for k in range(8):
                notes.append(Note(b * 4 * q + k * q // 2, q // 4, 42, 80))
            for k in (0, 2):
                notes.append(Note(b * 4 * q + k * q, q // 4, 36, 100))
                notes.append(Note(b * 4 * q + (k + 1) * q, q // 4, 38, 100))
        tracks.append(Track(name="Drums", is_drum=True, notes=notes))
    if "guitar" in stems:
        notes = [Note(b * 4 * q + k * q // 2, q // 2 - 20, 48 + roots[b] + iv, 90)
                 for b in range(bars) for k in range(8) for iv in (0, 4, 7)]
        tracks.append(Track(name="Guitar", program=29, notes=notes))
    if "bass" in stems:
        notes = [Note(b * 4 * q + k * q, q - 20, 36 + roots[b], 90) for b in range(bars) for k in range(4)]
        tracks.append(Track(name="Bass", program=33, notes=notes))
    return Song(tracks=tracks, resolution=res, title="toy")
