"""Song files -> chunk shards + manifest (``stemfill convert``).

One pass over a set of folders/files:

1. discover song files (recursively; Guitar Pro and MIDI extensions of ``io.SONG_EXTS``),
2. hash each file's bytes (sha256) and drop byte-identical duplicates,
3. per song (in worker processes): ``read_song`` -> ``roll.encode`` -> cut into chunks of
   ``chunk_len`` steps every ``hop`` steps -> keep chunks where at least ``min_stems`` stems
   have notes -> one shard per song (``chunks.save_shard``, atomic),
4. with ``guitar_variants`` N > 0, for a song with two or more guitar tracks: up to N more chunk
   sets (``guitar_variants``) in which one guitar track alone is the guitar stem and the song's
   other guitar tracks are context, in one more shard per song,
5. write ``OUT/manifest.json`` atomically at the end (also when interrupted). While running,
   each finished song is appended to ``OUT/manifest.journal`` (one JSON line, ~20 us), so a
   run killed outright (``kill -9``, the out-of-memory killer) resumes from every song it
   finished; the journal is folded into the manifest and removed at the end.

Pool workers end with the convert process, also when it is killed outright (Linux:
``PR_SET_PDEATHSIG``; everywhere: a thread that checks twice a second that the parent lives).

The split (train/valid/test) is a function of the content hash and the seed only, so a
song keeps its split across runs and folders, and never sits in two splits. Then
``leak_check`` moves a held-out song that is another copy of an earlier split's song (two
files, different bytes, the same notes: at least half of its bars appear note for note
there) into that split, so a test song never has its twin in train. A second run
with the same config reuses every shard whose manifest entry matches (hash and config) and
reads nothing but the files' bytes (for the hashes).

Guitar variants: a song's own chunks (variant 0) take every track ``classify_song`` calls a
guitar, together, as the guitar stem. A variant k >= 1 takes one of them (tracks with notes, most
notes first; at most ``guitar_variants``) and moves the rest into the context planes, as any other
pitched track. Only chunks where that guitar has notes, differs from variant 0's guitar and is not
doubled by the others are written; a variant with none is not written. Variants live in ``shards/<hash16>.variants.npz``
(``variant`` per chunk) and under the song's manifest entry (``variants``, ``variant_shard``),
so they share the song's split and move with it in ``leak_check``, which compares variant 0
only. ``load_chunks`` reads variant 0 unless asked for the variants (the trainer does), so
evaluation scores the same chunks with or without them.

A file that fails to read (any StemfillError) or crashes a worker (any other exception) is
recorded under ``skipped`` with a one-line reason; the batch goes on.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from stemfill.datasets.chunks import SPLITS, load_shard, save_shard
from stemfill.errors import ReadError, StemfillError, WriteError
from stemfill.files import atomic_write_bytes, check_output_folder, one_line
from stemfill.song.io import SONG_EXTS
from stemfill.pianoroll.grid import BASS_LOW, GUITAR_LOW, N_PITCHES, STEPS_PER_BEAT, WINDOW
from stemfill.song.song import STEMS

FORMAT = 2  # bump when the shard content for a given config changes (2: the other tracks' context)
CHUNK_LEN = WINDOW  # a chunk is one model window
HOP = CHUNK_LEN // 2
MIN_STEMS = 2
DOUBLED = 0.8  # a variant chunk whose guitar sounds mostly (this share of its cells) where the others do is left out
GUITAR_VARIANTS = 0  # off by default: the training data stays the recorded recipes' until a run shows they help
MAX_BARS = 2000  # longer "songs" are almost always broken tick values; skip them
SPLIT = (0.8, 0.1, 0.1)
MANIFEST = "manifest.json"
SHARDS = "shards"
JOURNAL = "manifest.journal"  # JSON lines: {"config": ...}, then {"song": entry} / {"skipped": entry}
_PARENT_CHECK_S = 0.5  # how often a pool worker checks that the convert process still lives

# config keys that change what a shard holds; a manifest entry is reused only if they match
SHARD_KEYS = ("format", "steps_per_beat", "n_pitches", "bass_low", "guitar_low", "stems",
              "chunk_len", "hop", "min_stems", "require_all", "max_bars", "guitar_variants")
OLD_DEFAULTS = {"guitar_variants": 0}  # what a manifest written before a key existed meant by its absence


def same_config(old: dict, new: dict) -> bool:
    """Whether shards written under config ``old`` hold what ``new`` would write."""
    return all(old.get(k, OLD_DEFAULTS.get(k)) == new[k] for k in SHARD_KEYS)


@dataclass(frozen=True)
class ConvertConfig:
    chunk_len: int = CHUNK_LEN
    hop: int = HOP
    min_stems: int = MIN_STEMS  # a chunk is kept if at least this many stems have notes
    require_all: bool = False  # keep only songs (and chunks) with all three stems
    seed: int = 0
    split: tuple[float, float, float] = SPLIT
    steps_per_beat: int = STEPS_PER_BEAT
    max_bars: int = MAX_BARS
    guitar_variants: int = GUITAR_VARIANTS  # at most this many extra chunk sets per song, one per guitar track

    def __post_init__(self) -> None:
        if self.chunk_len <= 0:
            raise StemfillError(f"chunk_len {self.chunk_len} must be > 0")
        if not 0 < self.hop:
            raise StemfillError(f"hop {self.hop} must be > 0")
        if not 0 <= self.min_stems <= len(STEMS):
            raise StemfillError(f"min_stems {self.min_stems} outside 0..{len(STEMS)}")
        if len(self.split) != 3 or min(self.split) < 0 or abs(sum(self.split) - 1) > 1e-6:
            raise StemfillError(f"split {self.split} must be three fractions (train, valid, test) summing to 1")
        if self.steps_per_beat <= 0:
            raise StemfillError(f"steps_per_beat {self.steps_per_beat} must be > 0")
        if self.guitar_variants < 0:
            raise StemfillError(f"guitar_variants {self.guitar_variants} must be >= 0 (0: none)")

    def as_manifest(self) -> dict:
        d = asdict(self)
        d["split"] = list(self.split)
        d["min_stems"] = len(STEMS) if self.require_all else self.min_stems
        d.update(format=FORMAT, n_pitches=N_PITCHES, bass_low=BASS_LOW, guitar_low=GUITAR_LOW,
                 stems=list(STEMS))
        return d


@dataclass
class Report:
    out: Path
    n_files: int = 0  # song files found
    converted: int = 0  # songs read and written this run
    done: int = 0  # songs already converted by an earlier run (no work)
    n_songs: int = 0  # songs in the manifest
    n_chunks: int = 0  # chunks over all songs in the manifest (variant 0)
    n_variant_chunks: int = 0  # guitar-variant chunks over all songs in the manifest
    split_songs: dict = field(default_factory=dict)
    split_chunks: dict = field(default_factory=dict)
    split_variant_chunks: dict = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0

    def summary(self) -> str:
        worked = self.n_files - self.done  # files read (or found duplicate/unreadable) this run
        rate = worked / self.seconds if self.seconds > 0 else 0.0
        parts = [f"{self.n_files} files: {self.converted} converted", f"{self.done} already done",
                 f"{len(self.skipped)} skipped"]
        splits = ", ".join(f"{s} {self.split_songs.get(s, 0)} songs/{self.split_chunks.get(s, 0)} chunks" for s in SPLITS)
        if self.n_variant_chunks:
            splits += "; guitar variants: " + ", ".join(f"{s} {self.split_variant_chunks.get(s, 0)} chunks"
                                                         for s in SPLITS)
        return (f"{'; '.join(parts)} in {self.seconds:.1f} s ({rate:.1f} files/s); "
                f"{self.n_songs} songs, {self.n_chunks} chunks ({splits}) -> {self.out / MANIFEST}")


# --- pure helpers ---------------------------------------------------------------------

def discover(inputs: Iterable[str | os.PathLike]) -> list[tuple[Path, Path]]:
    """(root, file) for every song file under the inputs, sorted, without repeats.

    A folder input is searched recursively (hidden files and folders are left out); a file
    input is taken as it is, whatever its extension (``read_song`` then names the problem),
    with its parent folder as root.
    """
    found: dict[Path, tuple[Path, Path]] = {}
    for i in inputs:
        p = Path(i)
        if not p.exists():
            raise StemfillError(f"{p}: no such file or folder")
        if p.is_file():
            found.setdefault(p.resolve(), (p.parent, p))
            continue
        for dirpath, dirnames, filenames in os.walk(p):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith(".") or Path(name).suffix.lower() not in SONG_EXTS:
                    continue
                f = Path(dirpath) / name
                found.setdefault(f.resolve(), (p, f))
    return sorted(found.values(), key=lambda rf: (str(rf[0]), str(rf[1])))


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def split_of(content_hash: str, seed: int = 0, fractions: tuple[float, float, float] = SPLIT) -> str:
    """train/valid/test from the content hash (and seed) alone: stable across runs and folders."""
    u = int(hashlib.sha256(f"{seed}:{content_hash}".encode()).hexdigest()[:15], 16) / 16**15
    acc = 0.0
    for name, f in zip(SPLITS, fractions):
        acc += f
        if u < acc:
            return name
    return SPLITS[-1]


def chunk_offsets(n_steps: int, chunk_len: int, hop: int) -> np.ndarray:
    """First step of every chunk: every ``hop`` steps, until a chunk reaches the song end.

    The last chunk may run past the end (zero padded), so no step of the song is lost.
    """
    if n_steps <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, max(n_steps - chunk_len, 0) + hop, hop, dtype=np.int64)


def cut_at(planes: np.ndarray, offsets: np.ndarray, chunk_len: int) -> np.ndarray:
    """(N, C, P, chunk_len): windows of ``planes`` (C, P, T) at ``offsets``, zero past the end."""
    C, P, T = planes.shape
    end = int(offsets[-1]) + chunk_len if len(offsets) else 0
    padded = np.zeros((C, P, max(end, T)), dtype=planes.dtype)
    padded[:, :, :T] = planes
    return np.stack([padded[:, :, o:o + chunk_len] for o in offsets]) if len(offsets) else \
        np.zeros((0, C, P, chunk_len), dtype=planes.dtype)


def cut_chunks(roll: np.ndarray, chunk_len: int, hop: int, min_stems: int) -> tuple[np.ndarray, np.ndarray]:
    """(chunks (N, C, P, chunk_len) bool, offsets (N,)): the chunks with >= ``min_stems`` stems sounding."""
    offs = chunk_offsets(roll.shape[-1], chunk_len, hop)
    chunks = cut_at(roll, offs, chunk_len)
    keep = chunks.any(axis=(2, 3)).sum(axis=1) >= min_stems
    return chunks[keep], offs[keep]


def variant_tracks(song, groups: dict[str, list[int]], n: int) -> list[int]:
    """The guitar tracks that lead a guitar variant: those with notes, most notes first (then in track
    order), at most ``n``; none where fewer than two guitar tracks have notes."""
    tracks = [i for i in groups["guitar"] if song.tracks[i].notes]
    if n <= 0 or len(tracks) < 2:
        return []
    return sorted(tracks, key=lambda i: (-len(song.tracks[i].notes), i))[:n]


def guitar_variants(song, groups: dict[str, list[int]], roll: np.ndarray, context: np.ndarray, cfg: dict):
    """(entries, (rolls, offsets, context, variant)) of the song's guitar variants (module doc), or ([], None).

    Variant k's chunks sit at the song's usual chunk offsets; one is kept where at least ``min_stems``
    stems sound, its guitar has notes, differs from variant 0's guitar there and is not doubled by the
    other guitars (less than ``DOUBLED`` of its sounding cells also sound in them: else the answer would
    sit in the context)."""
    from stemfill.pianoroll import roll as R

    tracks = variant_tracks(song, groups, cfg.get("guitar_variants", 0))
    if not tracks:
        return [], None
    spb, n_steps, length = cfg["steps_per_beat"], roll.shape[-1], cfg["chunk_len"]
    g = STEMS.index("guitar")
    offs = chunk_offsets(n_steps, length, cfg["hop"])
    full = cut_at(roll, offs, length)
    rest = np.delete(full, g, axis=1).any(axis=(2, 3)).sum(axis=1)  # drums and bass sounding, per chunk
    entries, parts = [], []

    def guitar(idx: list[int]) -> np.ndarray:  # (N, P, L): these tracks' guitar channel at the chunk offsets
        alone = R.encode(song, steps_per_beat=spb, length=n_steps, groups={"drums": [], "bass": [], "guitar": idx})
        return cut_at(alone[g:g + 1], offs, length)[:, 0]

    for t in tracks:
        moved = [i for i in groups["guitar"] if i != t]
        gtr = guitar([t])
        has = gtr.any(axis=(1, 2))
        doubled = (gtr & guitar(moved)).sum(axis=(1, 2)) >= DOUBLED * gtr.sum(axis=(1, 2))
        keep = has & (rest + has >= cfg["min_stems"]) & (gtr != full[:, g]).any(axis=(1, 2)) & ~doubled
        if not keep.any():
            continue
        chunks = full[keep].copy()
        chunks[:, g] = gtr[keep]
        ctx = context | R.encode_context(song, steps_per_beat=spb, length=n_steps, groups={"other": moved})
        k = len(entries) + 1
        entries.append({"variant": k, "track": t, "name": song.tracks[t].name, "n_chunks": int(keep.sum()),
                        "chunk_stems": {s: int(chunks[:, i].any(axis=(1, 2)).sum()) for i, s in enumerate(STEMS)}})
        parts.append((chunks, offs[keep], cut_at(ctx, offs[keep], length), np.full(int(keep.sum()), k)))
    if not parts:
        return [], None
    return entries, tuple(np.concatenate(a) for a in zip(*parts))


def variant_shard(shard: str | Path) -> str:
    """The guitar variants' shard beside a song's shard: ``shards/<hash16>.variants.npz``."""
    p = Path(shard)
    return p.with_name(p.stem + ".variants.npz").as_posix()


# --- the worker -------------------------------------------------------------------------

def convert_file(path: str, content_hash: str, shard: str, config: dict) -> dict:
    """Read, encode, chunk and save one song. Returns a small dict: the manifest entry, or
    ``{"skip": reason}``. Never raises (a crash becomes a skip reason)."""
    try:
        return _convert_file(Path(path), content_hash, Path(shard), config)
    except ReadError as e:
        return {"skip": one_line(e.problem)}  # the manifest names the file already
    except StemfillError as e:
        return {"skip": one_line(str(e))}
    except Exception as e:  # noqa: BLE001 - one bad file must not end the batch
        return {"skip": one_line(f"{type(e).__name__}: {e}")}


def _filtered(reason: str) -> dict:
    """A song that reads fine but yields nothing under this config (remembered across runs)."""
    return {"skip": reason, "kind": "filtered"}


def _convert_file(path: Path, content_hash: str, shard: Path, cfg: dict) -> dict:
    from stemfill.pianoroll import roll as R
    from stemfill.song.io import read_song
    from stemfill.song.stems import classify_song, stems_present

    song = read_song(path)
    present = stems_present(song)
    if len(present) < (len(STEMS) if cfg["require_all"] else 1):
        missing = [s for s in STEMS if s not in present]
        return _filtered(f"no notes in {', '.join(missing)} (all three stems required)"
                         if present else "no drums, bass or guitar notes")
    end = song.end  # O(notes): computed once here, not in each of n_bars / encode
    n_bars = len(song.bar_starts(end)) if end else 0
    if n_bars > cfg["max_bars"]:
        return _filtered(f"{n_bars} bars, more than max_bars={cfg['max_bars']} (broken timing?)")
    spb = cfg["steps_per_beat"]
    n_steps = int(R.ticks_to_step(end, song.resolution, spb)) + 1 if end else 0
    groups = classify_song(song)
    roll = R.encode(song, steps_per_beat=spb, length=n_steps, groups=groups)
    chunks, offsets = cut_chunks(roll, cfg["chunk_len"], cfg["hop"], cfg["min_stems"])
    if len(chunks) == 0:
        return _filtered(f"no {cfg['chunk_len']}-step chunk with at least {cfg['min_stems']} stems sounding "
                         f"(stems in song: {', '.join(present)})")
    context = R.encode_context(song, steps_per_beat=spb, length=n_steps, groups=groups)
    variants, vdata = guitar_variants(song, groups, roll, context, cfg)
    if vdata is not None:
        save_shard(Path(variant_shard(shard)), *vdata[:3], variant=vdata[3])
    else:
        Path(variant_shard(shard)).unlink(missing_ok=True)  # one an earlier config wrote
    save_shard(shard, chunks, offsets, cut_at(context, offsets, cfg["chunk_len"]))
    ts = song.time_signatures[0]
    return {
        "title": song.title,
        "stems": present,
        "tempo": round(song.tempos[0].qpm, 3),
        "time_signature": f"{ts.numerator}/{ts.denominator}",
        "bars": n_bars,
        "n_steps": int(roll.shape[-1]),
        "n_chunks": int(len(chunks)),
        "chunk_stems": {s: int(chunks[:, i].any(axis=(1, 2)).sum()) for i, s in enumerate(STEMS)},
        **({"variants": variants} if variants else {}),
        **({"warnings": list(song.warnings)} if song.warnings else {}),  # what the reader could not read as written
    }


# --- the driver -------------------------------------------------------------------------

def _load_previous(out: Path) -> dict:
    p = out / MANIFEST
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return {}  # a corrupt manifest: convert everything again


def n_variant_chunks(entry: dict) -> int:
    return sum(v["n_chunks"] for v in entry.get("variants", ()))


def _write_manifest(out: Path, config: dict, songs: list[dict], skipped: list[dict], checked: bool = False) -> None:
    songs = sorted(songs, key=lambda s: (s["root"], s["path"]))
    skipped = sorted(skipped, key=lambda s: (s["root"], s["path"]))
    counts = {s: sum(1 for e in songs if e["split"] == s) for s in SPLITS}
    chunks = {s: sum(e["n_chunks"] for e in songs if e["split"] == s) for s in SPLITS}
    variant_chunks = {s: sum(n_variant_chunks(e) for e in songs if e["split"] == s) for s in SPLITS}
    m = {"config": config, "counts": {"songs": counts, "chunks": chunks, "variant_chunks": variant_chunks},
         "songs": songs, "skipped": skipped,
         **({"leak_check": LEAK_RULE} if checked else {})}
    atomic_write_bytes(out / MANIFEST, (json.dumps(m, indent=1, ensure_ascii=False) + "\n").encode())


def _read_journal(out: Path, config: dict) -> tuple[list[dict], list[dict]] | None:
    """(songs, skipped) a run with this config recorded before it was killed; None if there is no
    such journal. A line cut short by the kill is left out."""
    try:
        lines = (out / JOURNAL).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    if not records or not isinstance(records[0], dict) or not isinstance(records[0].get("config"), dict):
        return None
    if not same_config(records[0]["config"], config):
        return None
    songs = [r["song"] for r in records[1:] if isinstance(r, dict) and isinstance(r.get("song"), dict)]
    skipped = [r["skipped"] for r in records[1:] if isinstance(r, dict) and isinstance(r.get("skipped"), dict)]
    return songs, skipped


def _open_journal(out: Path, config: dict, keep: bool):
    """The journal, opened for appending: the one of an earlier killed run with this config (``keep``), or new."""
    try:
        f = open(out / JOURNAL, "a" if keep else "w", encoding="utf-8")
        f.write("\n" if keep else json.dumps({"config": config}) + "\n")  # "\n": end a line cut short by a kill
        f.flush()
    except OSError as e:
        raise WriteError(f"{out / JOURNAL}: cannot write: {e.strerror or one_line(e)}") from None
    return f


def _check_out(out: Path, inputs: list[Path]) -> None:
    check_output_folder(out)  # a folder, or one that can be made (no file in the way), where files can be created
    for i in inputs:
        if i.exists() and out.exists() and os.path.samefile(out, i):
            raise WriteError(f"{out}: output folder is an input; choose another -o (inputs are never written to)")
        if out.resolve() == i.resolve():
            raise WriteError(f"{out}: output path is an input; choose another -o")


def convert(
    inputs: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    chunk_len: int = CHUNK_LEN,
    hop: int = HOP,
    jobs: int | None = None,
    require_all: bool = False,
    seed: int = 0,
    split: tuple[float, float, float] = SPLIT,
    min_stems: int = MIN_STEMS,
    steps_per_beat: int = STEPS_PER_BEAT,
    guitar_variants: int = GUITAR_VARIANTS,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> Report:
    """Convert song files/folders into chunk shards + ``OUT/manifest.json``; see the module doc.

    ``jobs``: worker processes (None: one per CPU; 1: in this process). ``guitar_variants``: at most this
    many guitar variants per song with two or more guitar tracks (0: none). ``log`` receives one
    line per skipped file (``skipping <file>: <reason>``) and the closing summary.
    """
    t0 = time.perf_counter()
    cfg = ConvertConfig(chunk_len=chunk_len, hop=hop, min_stems=min_stems, require_all=require_all, seed=seed,
                        split=tuple(split), steps_per_beat=steps_per_beat, guitar_variants=guitar_variants)
    config = cfg.as_manifest()
    out = Path(out)
    in_paths = [Path(i) for i in inputs]
    if not in_paths:
        raise StemfillError("no inputs given")
    _check_out(out, in_paths)
    files = discover(in_paths)
    if not files:  # before any output is made
        names = ", ".join(str(p) for p in in_paths[:3]) + (", ..." if len(in_paths) > 3 else "")
        raise StemfillError(f"{names}: no song files there (looked for {', '.join(SONG_EXTS)})")
    say = log or (lambda line: None)
    report = Report(out=out, n_files=len(files))

    prev = _load_previous(out)
    prev_cfg = prev.get("config", {})
    same_cfg = same_config(prev_cfg, config)
    prev_songs = {s["hash"]: s for s in prev.get("songs", [])} if same_cfg else {}
    prev_filtered = {s["hash"]: s for s in prev.get("skipped", []) if s.get("kind") == "filtered"} if same_cfg else {}
    journal = _read_journal(out, config)  # what a run killed before writing its manifest had finished
    journal_songs, journal_skipped = journal or ([], [])
    prev_songs.update((s["hash"], s) for s in journal_songs)
    prev_filtered.update((s["hash"], s) for s in journal_skipped if s.get("kind") == "filtered" and "hash" in s)

    songs: list[dict] = []
    skipped: list[dict] = []
    todo: list[tuple[Path, Path, str]] = []  # (root, file, hash)
    first_of: dict[str, str] = {}

    def rel(root: Path, f: Path) -> str:
        try:
            return f.relative_to(root).as_posix()
        except ValueError:
            return f.name

    def skip(root: Path, path: str, reason: str, kind: str, h: str | None = None) -> None:
        skipped.append({"path": path, "root": str(root), "reason": reason, "kind": kind, **({"hash": h} if h else {})})
        report.skipped.append((path, reason))
        say(f"skipping {path}: {reason}")

    for root, f in files:
        r = rel(root, f)
        try:
            h = file_hash(f)
        except OSError as e:
            skip(root, r, one_line(f"cannot read: {e.strerror or e}"), "error")
            continue
        if h in first_of:
            skip(root, r, f"duplicate of {first_of[h]}", "duplicate", h)
            continue
        first_of[h] = r
        base = {"id": h[:16], "path": r, "root": str(root), "hash": h, "split": split_of(h, seed, cfg.split),
                "shard": f"{SHARDS}/{h[:16]}.npz"}
        old = prev_songs.get(h)
        if old is not None and (out / old["shard"]).exists() and \
                ("variant_shard" not in old or (out / old["variant_shard"]).exists()):
            songs.append({**old, **base})
            report.done += 1
        elif h in prev_filtered:
            skip(root, r, prev_filtered[h]["reason"], "filtered", h)
            report.done += 1
        else:
            todo.append((root, f, h))

    def finish(root: Path, f: Path, h: str, result: dict) -> None:
        r = rel(root, f)
        if "skip" in result:
            skip(root, r, result["skip"], result.get("kind", "error"), h)
            record = {"skipped": skipped[-1]}
        else:
            report.converted += 1
            shard = f"{SHARDS}/{h[:16]}.npz"
            songs.append({"id": h[:16], "path": r, "root": str(root), "hash": h, "split": split_of(h, seed, cfg.split),
                          **result, "shard": shard, **({"variant_shard": variant_shard(shard)}
                                                       if result.get("variants") else {})})
            record = {"song": songs[-1]}
            for w in result.get("warnings", ()):
                say(f"warning: {r}: {w}")
        log_file.write(json.dumps(record, ensure_ascii=False) + "\n")
        log_file.flush()  # in the kernel's hands: survives kill -9 of this process

    if report.done:
        say(f"{report.done} already done")
    out.mkdir(parents=True, exist_ok=True)
    for stale in (out / SHARDS).glob(".*"):  # temp files of a shard write cut short by a kill
        stale.unlink(missing_ok=True)
    log_file = _open_journal(out, config, keep=journal is not None)
    checked = False
    try:
        bar = _progress(progress, len(todo))
        with bar:
            task = bar.add_task("converting", total=len(todo))
            for (root, f, h), result in _run(todo, out, config, jobs):
                finish(root, f, h, result)
                bar.advance(task)
        if (report.converted == 0 and not journal_songs and prev.get("leak_check") == LEAK_RULE
                and {e["hash"] for e in songs} == set(prev_songs)):
            for e in songs:  # the same songs as last time: the leak check's answer is in the manifest
                old = prev_songs[e["hash"]]
                e["split"] = old["split"]
                if "leak" in old:
                    e["leak"] = old["leak"]
        else:
            for line in leak_check(out, songs, steps_per_beat):
                say(line)
        checked = True
    finally:
        log_file.close()
        _write_manifest(out, config, songs, skipped, checked)
        (out / JOURNAL).unlink(missing_ok=True)  # all in the manifest now

    report.n_songs = len(songs)
    report.n_chunks = sum(s["n_chunks"] for s in songs)
    report.split_songs = {s: sum(1 for e in songs if e["split"] == s) for s in SPLITS}
    report.split_chunks = {s: sum(e["n_chunks"] for e in songs if e["split"] == s) for s in SPLITS}
    report.n_variant_chunks = sum(n_variant_chunks(e) for e in songs)
    report.split_variant_chunks = {s: sum(n_variant_chunks(e) for e in songs if e["split"] == s) for s in SPLITS}
    report.seconds = time.perf_counter() - t0
    say(report.summary())
    return report


LEAK_SHARE = 0.5  # a held-out song sharing at least this share of its bars with an earlier split moves there
LEAK_MIN_BARS = 4  # ... and at least this many bars
LEAK_RULE = [LEAK_SHARE, LEAK_MIN_BARS]  # in the manifest: a rerun with the same songs reuses its splits


def bar_keys(rolls: np.ndarray, bar: int) -> set[bytes]:
    """Content keys of the distinct ``bar``-step slices of chunks (N, C, P, L) in which at least two
    stems have notes (an empty or one-instrument bar says little about which song it is)."""
    keys: set[bytes] = set()
    for r in rolls:
        for a in range(0, r.shape[-1] - bar + 1, bar):
            seg = r[..., a:a + bar]
            if int(seg.any(axis=(1, 2)).sum()) >= 2:
                keys.add(hashlib.blake2b(np.packbits(seg).tobytes(), digest_size=16).digest())
    return keys


def leak_check(out: Path, songs: list[dict], steps_per_beat: int = STEPS_PER_BEAT, share: float = LEAK_SHARE,
               min_bars: int = LEAK_MIN_BARS) -> list[str]:
    """Move valid/test songs that duplicate an earlier split's song into that split (in place).

    Songs are compared by their bars (4/4 bars of ``steps_per_beat`` * 4 steps, all stems at once):
    a valid song with ``share`` of its bars in train joins train; a test song with ``share`` of its
    bars in train or valid joins that split. Returns one line per moved song."""
    order = {s: i for i, s in enumerate(SPLITS)}
    keys: dict[int, set[bytes]] = {}
    for i, e in enumerate(songs):
        e.pop("leak", None)
        if e.get("n_chunks"):
            rolls, _ = load_shard(out / e["shard"])
            keys[i] = bar_keys(rolls, 4 * steps_per_beat)
    lines = []
    for split in SPLITS[1:]:
        earlier: dict[bytes, int] = {}
        for i, e in enumerate(songs):
            if order[e["split"]] < order[split]:
                for k in keys.get(i, ()):
                    earlier.setdefault(k, i)
        for i, e in enumerate(songs):
            if e["split"] != split or len(keys.get(i, ())) < min_bars:
                continue
            hits = [earlier[k] for k in keys[i] if k in earlier]
            if len(hits) < max(min_bars, share * len(keys[i])):
                continue
            twin = max(set(hits), key=hits.count)
            to = songs[twin]["split"]
            e["leak"] = {"from": split, "twin": songs[twin]["path"], "shared_bars": round(len(hits) / len(keys[i]), 3)}
            e["split"] = to
            lines.append(f"{e['path']}: {len(hits)}/{len(keys[i])} bars also in {songs[twin]['path']} ({to}); "
                         f"moved {split} -> {to}")
    return lines


def _run(todo: list[tuple[Path, Path, str]], out: Path, config: dict, jobs: int | None):
    """Yield ((root, file, hash), result) as songs finish, in-process or in a process pool."""
    jobs = min(jobs or os.cpu_count() or 1, len(todo))
    args = [(str(f), h, str(out / SHARDS / f"{h[:16]}.npz"), config) for _, f, h in todo]
    if jobs <= 1:
        for item, a in zip(todo, args):
            yield item, convert_file(*a)
        return
    crashed: list[int] = []
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_die_with_parent, initargs=(os.getpid(),))
    try:
        futures = {pool.submit(convert_file, *a): k for k, a in enumerate(args)}
        for fut in as_completed(futures):
            k = futures[fut]
            try:
                result = fut.result()
            except BrokenProcessPool:
                crashed.append(k)
                continue
            yield todo[k], result
    finally:  # also on Ctrl-C or an error in the caller: drop the queued files, don't wait for them
        pool.shutdown(wait=True, cancel_futures=True)
    # A worker died (segfault, out of memory): the pool is gone. Retry each unfinished file
    # alone, so that only the file that kills its process is skipped.
    for k in sorted(crashed):
        try:
            with ProcessPoolExecutor(max_workers=1, initializer=_die_with_parent, initargs=(os.getpid(),)) as solo:
                result = solo.submit(convert_file, *args[k]).result()
        except BrokenProcessPool:
            result = {"skip": "worker process died while reading this file (crash or out of memory)"}
        yield todo[k], result


def _die_with_parent(parent: int) -> None:
    """Pool worker initializer: end this worker when the convert process ``parent`` ends, even by kill -9
    (a worker blocked on the task queue would otherwise live on: its siblings keep the queue open)."""
    ppid = os.getppid()  # ``parent`` itself, or a fork server under it
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: killed when ppid dies
        except (OSError, AttributeError):
            pass  # the watcher below still works

    def watch() -> None:
        while True:
            if os.getppid() != ppid or not _alive(parent):  # orphaned: adopted by init or a subreaper
                os._exit(1)
            time.sleep(_PARENT_CHECK_S)

    if os.getppid() != ppid or not _alive(parent):  # it died while this worker started
        os._exit(1)
    threading.Thread(target=watch, name="stemfill-parent-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would end the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it lives, under another user
        return True
    return True


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *a) -> None:
        return None

    def add_task(self, *a, **k) -> int:
        return 0

    def advance(self, *a, **k) -> None:
        return None


def _progress(show: bool, total: int):
    if not show or total == 0:
        return _NoProgress()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), transient=False)
