"""Chunk shards on disk and the in-memory ``Chunks`` the model and evaluation read.

Layout of a converted folder (written by ``stemfill convert``)::

    OUT/manifest.json          config, one entry per song, skipped files with reasons
    OUT/shards/<hash16>.npz    one shard per song: packed rolls of its chunks
    OUT/shards/<hash16>.variants.npz  only with guitar variants (below): that song's variant chunks
    OUT/manifest.journal       only while converting (or after a run killed outright): one JSON
                               line per finished song, folded into the manifest at the end

A shard holds ``rolls`` (n_chunks, 3, N_PITCHES, chunk_len/8) uint8, bit-packed along
time, ``context`` (n_chunks, len(CONTEXT_PLANES), N_PITCHES, chunk_len/8) the same way: what
the song's other pitched tracks play (``roll.encode_context``), and ``offsets`` (n_chunks,)
int64, each chunk's first step in the song. Folders of format 1 (before the context) are
refused with a message to convert again.

A manifest song entry has at least: id, path, hash, split, stems, tempo, bars,
n_steps, n_chunks, shard (relative path). ``stemfill.datasets.convert`` writes the full
schema: ``config`` (steps_per_beat, n_pitches, bass_low, guitar_low, stems, chunk_len, hop,
min_stems, require_all, seed, split, max_bars, guitar_variants, format), ``counts`` (songs and chunks per
split), ``songs`` (also root, title, time_signature, chunk_stems) and ``skipped`` (path, root,
one-line reason, kind: error / duplicate / filtered, hash when known).

A song converted with ``--guitar-variants`` N > 0 that has two or more guitar tracks may also have
``shards/<hash16>.variants.npz``: the same arrays plus ``variant`` (n,) int64 (1, 2, ...), chunks in
which one guitar track alone is the guitar stem and the others are context (``convert.guitar_variants``).
Its manifest entry then has ``variant_shard`` and ``variants`` (per variant: variant, track index,
track name, n_chunks, chunk_stems); ``n_chunks`` and ``counts.chunks`` count variant 0 only, and
``counts.variant_chunks`` the rest. ``load_chunks`` reads them only with ``variants=True``: training
uses them, evaluation does not. Folders without them read as before, and older code reads a folder
with them as one without.

Beside the three splits ``stemfill convert`` assigns (by content hash, unchanged), ``load_chunks`` reads
the evaluation split ``band`` (``BAND``): real band parts, selected from the manifest's song entries by
their input folder (``root``), see ``in_split``. It is for scoring only, never for training.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stemfill.errors import StemfillError
from stemfill.pianoroll.grid import CONTEXT_PLANES
from stemfill.pianoroll.roll import pack, unpack
from stemfill.song.song import STEMS

SPLITS = ("train", "valid", "test")
# The "band" evaluation split (issue 13): the test-split songs of the onyxite folder (band transcriptions) and
# the multi-track songs (at least two of drums, bass, guitar) of the guitarpro folder, whatever split convert
# gave them: folder name -> the convert splits taken from it. Not a split convert assigns; a model trained on
# a folder's train split has seen the guitarpro songs convert put there (say so where band numbers are shown).
BAND = "band"
BAND_SOURCES = {"onyxite": ("test",), "guitarpro": SPLITS}
EVAL_SPLITS = SPLITS + (BAND,)


CONTEXT_FORMAT = 2  # the first chunk format whose shards hold the context


@dataclass
class Chunks:
    rolls: np.ndarray  # bool (N, 3, N_PITCHES, chunk_len)
    song_index: np.ndarray  # (N,) index into ``songs``
    offsets: np.ndarray  # (N,) first step of each chunk in its song
    songs: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    context: np.ndarray | None = None  # bool (N, len(CONTEXT_PLANES), N_PITCHES, chunk_len); None: all empty
    variant: np.ndarray | None = None  # (N,) guitar variant of each chunk (0: the song as converted); None: all 0

    def context_or_empty(self) -> np.ndarray:
        """The context planes, all False where the folder has none."""
        if self.context is not None:
            return self.context
        n, _, p, length = self.rolls.shape
        return np.zeros((n, len(CONTEXT_PLANES), p, length), dtype=bool)

    def subset(self, keep: np.ndarray) -> "Chunks":
        return Chunks(self.rolls[keep], self.song_index[keep], self.offsets[keep], self.songs, self.config,
                      None if self.context is None else self.context[keep],
                      None if self.variant is None else self.variant[keep])

    def __len__(self) -> int:
        return len(self.rolls)

    @property
    def present(self) -> np.ndarray:
        """(N, 3) bool: which stems have at least one note in each chunk."""
        return self.rolls.any(axis=(2, 3))


def save_shard(path: Path, rolls: np.ndarray, offsets: np.ndarray, context: np.ndarray | None = None,
               variant: np.ndarray | None = None) -> None:
    from stemfill.files import atomic_write_bytes

    buf = io.BytesIO()
    extra = {} if context is None else {"context": pack(context)}
    if variant is not None:
        extra["variant"] = np.asarray(variant, dtype=np.int64)
    np.savez_compressed(buf, rolls=pack(rolls), offsets=np.asarray(offsets, dtype=np.int64),
                        length=np.int64(rolls.shape[-1]), **extra)
    atomic_write_bytes(path, buf.getvalue())


def load_shard(path: Path, with_context: bool = False, with_variant: bool = False):
    """(rolls, offsets), then the context (or None) ``with_context``, then each chunk's guitar variant
    ``with_variant`` (zeros in a shard without them)."""
    with np.load(path) as z:
        length = int(z["length"])
        out = (unpack(z["rolls"], length), z["offsets"])
        if with_context:
            out += (unpack(z["context"], length) if "context" in z.files else None,)
        if with_variant:
            out += (z["variant"] if "variant" in z.files else np.zeros(len(out[1]), dtype=np.int64),)
        return out


def read_manifest(root: str | Path) -> dict:
    p = Path(root) / "manifest.json"
    if not p.exists():
        raise StemfillError(f"{root}: no manifest.json; make one with `stemfill convert SONGS -o {root}`")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise StemfillError(f"{p}: corrupt manifest ({e})") from e


def root_name(song: dict) -> str:
    """The name of the input folder a manifest song entry came from ("corpus", "onyxite", ...)."""
    return Path(str(song.get("root", ""))).name


def in_split(song: dict, split: str | None) -> bool:
    """Whether a manifest song entry belongs to ``split``: one of ``SPLITS`` (the entry's own "split", as
    convert assigned it), None (any), or ``BAND``: a song from a ``BAND_SOURCES`` folder in one of the
    splits taken from it, with at least two of drums, bass and guitar (its "stems")."""
    if split is None:
        return True
    if split == BAND:
        taken = BAND_SOURCES.get(root_name(song), ())
        return song.get("split") in taken and len(song.get("stems", ())) >= 2
    return song.get("split") == split


def load_chunks(root: str | Path, split: str | None = "train", require: tuple[str, ...] = (),
                roots: tuple[str, ...] | None = None, exclude: str | None = None, variants: bool = False) -> Chunks:
    """All chunks of one split (None = every split; ``BAND``: the band evaluation split, ``in_split``).
    ``require``: keep chunks where these stems have notes. ``roots``: keep songs from these input folders
    only (names, as ``root_name``). ``exclude``: leave out the songs of this split (e.g. train chunks for a
    baseline scored on the band split, which takes songs from the train split too). ``variants``: also the
    songs' guitar variants (module doc), after each song's own chunks; ``Chunks.variant`` says which."""
    for s in (split, exclude):
        if s is not None and s not in EVAL_SPLITS:
            raise StemfillError(f"unknown split {s!r}; expected one of {EVAL_SPLITS}")
    m = read_manifest(root)
    fmt = m.get("config", {}).get("format")
    if fmt is not None and int(fmt) < CONTEXT_FORMAT:
        raise StemfillError(f"{root}: chunks of format {fmt}, made before the model heard the other instruments "
                            f"(format {CONTEXT_FORMAT}); convert the songs again with `stemfill convert`")
    songs = [s for s in m["songs"] if in_split(s, split) and (roots is None or root_name(s) in roots)
             and not (exclude is not None and in_split(s, exclude))]
    rolls, idx, offs, ctx, var = [], [], [], [], []
    for i, s in enumerate(songs):
        if not s.get("n_chunks"):
            continue
        shards = [s["shard"]] + ([s["variant_shard"]] if variants and s.get("variant_shard") else [])
        for shard in shards:
            r, o, c, v = load_shard(Path(root) / shard, with_context=True, with_variant=True)
            if c is None:
                c = np.zeros((len(r), len(CONTEXT_PLANES)) + r.shape[2:], dtype=bool)
            rolls.append(r)
            offs.append(o)
            ctx.append(c)
            var.append(v)
            idx.append(np.full(len(r), i))
    if not rolls:
        where = f" in folders {', '.join(roots)}" if roots is not None else ""
        raise StemfillError(f"{root}: split {split!r}{where} has no chunks")
    context = np.concatenate(ctx)
    variant = np.concatenate(var)
    ch = Chunks(np.concatenate(rolls), np.concatenate(idx), np.concatenate(offs), songs, m.get("config", {}),
                context if context.any() else None, variant if variant.any() else None)
    if require:
        ch = ch.subset(ch.present[:, [STEMS.index(s) for s in require]].all(axis=1))
    return ch
