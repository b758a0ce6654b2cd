"""Subtractive-training triplets: (full-mix image, stem-removed image, instruction) per 5.11 s segment.

On disk (one folder):

- ``shard-00000.npz``: ``full`` and ``removed`` uint8 (N, 512, 512) spectrogram images
  (spectrogram.py conventions, each image scaled to its own maximum as Riffusion does) and
  ``instruction`` (N,) unicode strings; compressed.
- ``shard-00000.jsonl``: N lines, row i describing triplet i: song, source, stem, start
  sample, seconds, instruction, action word, caption, full_max / removed_max (the mel
  magnitudes' maxima, to undo the per-image scaling).
- ``manifest.json``: format/version, spectrogram constants, the shards and their counts,
  songs done, songs skipped with a one-line reason, options used.

Each shard is written to a temp name and renamed, then the manifest (also atomic) adds it
and the songs it completes; a song's triplets never straddle two shards, so a rerun with
the same output folder skips the songs done and continues. ``load_triplets(folder)`` gives
random access: ``ds[i] -> Triplet(full, removed, instruction)``, ``ds.meta(i) -> dict``.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple

import numpy as np

from stemfill.audio import spectrogram as sp
from stemfill.errors import AudioError, StemfillError
from stemfill.files import atomic_path

FORMAT, VERSION = "stemfill-triplets", 1
SOURCES = ("stems", "musdb", "demucs", "synthetic")
AUDIO_EXTS = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")
MIX_NAMES = {"mixture", "mix", "full", "linear_mixture"}  # files in a stem folder that are not stems
STEM_MIN_DBFS = -50.0  # a stem quieter than this (RMS) in a segment is absent there
DEFAULT_TARGETS = {"synthetic": ("drums", "bass", "guitar"), "demucs": ("drums",)}  # others: every stem but "other"


@dataclass
class SongStems:
    """One song's stems as mono float32 at 44.1 kHz, all the same length; ``mix`` overrides their sum."""

    key: str
    stems: dict[str, np.ndarray]
    mix: np.ndarray | None = None
    genre: str | None = None
    qpm: float | None = None
    instruments: dict[str, list[str]] = field(default_factory=dict)
    title: str | None = None


Loader = Callable[[], SongStems]


class Triplet(NamedTuple):
    full: np.ndarray  # uint8 (512, 512)
    removed: np.ndarray  # uint8 (512, 512)
    instruction: str


# --- sources: each yields (key, loader); loading is lazy so resumed runs skip cheaply ----------
def _audio_files(d: Path) -> list[Path]:
    return sorted(f for f in d.iterdir() if f.is_file() and f.suffix.lower() in AUDIO_EXTS)


def _same_length(stems: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    n = max(len(y) for y in stems.values())
    return {k: np.pad(y, (0, n - len(y))) if len(y) < n else y for k, y in stems.items()}


def stem_folder_songs(paths: Iterable[str | os.PathLike]) -> Iterator[tuple[str, Loader]]:
    """Pre-stemmed songs: a folder with one audio file per stem (drums.wav, bass.wav, ...), or a folder of such folders."""
    for p in map(Path, paths):
        if not p.exists():
            raise AudioError(f"{p}: no such folder")
        if not p.is_dir():
            raise AudioError(f"{p}: not a folder (--source stems takes song folders or a folder of them)")
        dirs = [p] if _audio_files(p) else sorted(d for d in p.iterdir() if d.is_dir() and _audio_files(d))
        if not dirs:
            raise AudioError(f"{p}: no audio files here or in its sub-folders")
        for d in dirs:
            yield f"stems:{d.resolve()}", (lambda d=d: _load_stem_folder(d))


def _load_stem_folder(d: Path) -> SongStems:
    files = [f for f in _audio_files(d) if f.stem.lower() not in MIX_NAMES]
    if len(files) < 2:
        raise AudioError(f"{d}: needs at least two stem files (found {len(files)})")
    stems = {f.stem.lower(): sp.load_audio(f, allow_silent=True)[0] for f in files}
    return SongStems(key=f"stems:{d.resolve()}", stems=_same_length(stems), title=d.name)


def musdb_songs(root: str | os.PathLike, subset: str = "train") -> Iterator[tuple[str, Loader]]:
    """MUSDB18 (or MUSDB18-HQ with wav stems) through the ``musdb`` package."""
    try:
        import musdb
    except ImportError as e:
        raise AudioError("--source musdb needs the musdb package: pip install 'stemfill[musdb]'") from e
    root = Path(root)
    if not root.is_dir():
        raise AudioError(f"{root}: no such MUSDB18 folder")
    is_wav = not any(root.rglob("*.stem.mp4"))
    db = musdb.DB(root=str(root), subsets=subset, is_wav=is_wav)
    if not len(db.tracks):
        raise AudioError(f"{root}: no MUSDB18 tracks in subset {subset!r}")
    for tr in db.tracks:
        def load(tr=tr) -> SongStems:
            stems = {}
            for name, src in tr.sources.items():
                y = np.asarray(src.audio, dtype=np.float32).mean(axis=1)
                if tr.rate != sp.SAMPLE_RATE:
                    import librosa

                    y = librosa.resample(y, orig_sr=tr.rate, target_sr=sp.SAMPLE_RATE)
                stems[name] = y
            return SongStems(key=f"musdb:{tr.subset}/{tr.name}", stems=_same_length(stems), title=tr.name)

        yield f"musdb:{subset}/{tr.name}", load


def demucs_songs(paths: Iterable[str | os.PathLike], repo: str | os.PathLike | None = None,
                 model_name: str = "htdemucs") -> Iterator[tuple[str, Loader]]:
    """Full mixes separated by Demucs: the full image is the original mix, the removed one mix minus the stem."""
    try:
        from demucs.apply import apply_model
        from demucs.pretrained import get_model
    except ImportError as e:
        raise AudioError("--source demucs needs the demucs package: pip install 'stemfill[demucs]'") from e
    import torch

    if repo is not None and not Path(repo).is_dir():
        raise AudioError(f"{repo}: no such Demucs weights folder (--demucs-repo)")
    try:
        model = get_model(model_name, repo=Path(repo) if repo else None)
    except Exception as e:  # demucs raises its own ModelLoadingError, or a network error
        raise AudioError(f"cannot load Demucs model {model_name!r}{f' from {repo}' if repo else ''}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    model.eval()
    for f in _expand_files(paths, AUDIO_EXTS):
        def load(f=f) -> SongStems:
            y, _, _ = sp.load_audio(f)
            x = torch.from_numpy(np.stack([y, y]))[None]  # demucs expects stereo
            if model.samplerate != sp.SAMPLE_RATE:
                raise AudioError(f"Demucs model runs at {model.samplerate} Hz; stemfill needs {sp.SAMPLE_RATE}")
            with torch.no_grad():
                out = apply_model(model, x, split=True, overlap=0.25, progress=False)[0]
            stems = {name: out[i].mean(0).numpy().astype(np.float32) for i, name in enumerate(model.sources)}
            return SongStems(key=f"demucs:{f.resolve()}", stems=stems, mix=y, title=f.stem)

        yield f"demucs:{f.resolve()}", load


def synthetic_songs(paths: Iterable[str | os.PathLike], soundfont: str | os.PathLike | None = None, *,
                    max_seconds: float | None = None, start_seconds: float = 0.0) -> Iterator[tuple[str, Loader]]:
    """Guitar Pro / MIDI songs rendered stem by stem with FluidSynth (no leakage between stems)."""
    from stemfill.audio import render
    from stemfill.song.io import SONG_EXTS, read_song

    render.fluidsynth_path()
    sf2 = render.find_soundfont(soundfont)
    for f in _expand_files(paths, SONG_EXTS):
        def load(f=f) -> SongStems:
            song = read_song(f)
            stems = render.render_stems(song, sf2, start_s=start_seconds, duration_s=max_seconds)
            if not stems:
                raise AudioError(f"{f}: no notes to render")
            return SongStems(
                key=f"synthetic:{f.resolve()}", stems=stems, qpm=song.qpm_at(0), title=song.title or f.stem,
                instruments={s: render.instrument_names(song, s) for s in stems},
            )

        yield f"synthetic:{f.resolve()}", load


def _expand_files(paths: Iterable[str | os.PathLike], exts) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in exts)
        elif p.exists():
            out.append(p)
        else:
            raise AudioError(f"{p}: no such file or folder")
    return out


# --- triplets from one song -----------------------------------------------------------
def _rms_dbfs(y: np.ndarray) -> float:
    r = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0
    return 20 * np.log10(r) if r > 0 else -np.inf


def _window(y: np.ndarray, s: int) -> np.ndarray:
    w = y[s : s + sp.SEGMENT_SAMPLES]
    return np.pad(w, (0, sp.SEGMENT_SAMPLES - len(w))) if len(w) < sp.SEGMENT_SAMPLES else w


def song_triplets(song: SongStems, targets: Iterable[str] | None, *, seed: int = 0, overlap: float = 0.0,
                  instruct: Callable[[str, np.random.Generator, SongStems], tuple[str, str, str]] | None = None,
                  ) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
    """Yield ``(full_img, removed_img, meta)`` for each segment and each target stem that plays in it.

    full = ``song.mix`` or the float64 sum of all stems; removed = full - stem (for summed
    stems: exactly the sum of the other stems). Segments where the stem is under
    STEM_MIN_DBFS, or where nothing else plays, are left out. The rng of each triplet is
    seeded by (seed, song key, start, stem), so reruns and resumed runs agree.
    """
    instruct = instruct or offline_instructor
    want = [s for s in (targets or [n for n in song.stems if n != "other"]) if s in song.stems]
    full = full_mix(song)
    starts = [s for s in sp.segment_starts(len(full), overlap) if _rms_dbfs(_window(full, s)) >= sp.SILENCE_DBFS]
    full_mels: dict[int, np.ndarray] = {}
    for stem in want:
        removed = removed_mix(song, stem)
        for start in starts:
            if _rms_dbfs(_window(song.stems[stem], start)) < STEM_MIN_DBFS:
                continue
            removed_w = _window(removed, start)
            if _rms_dbfs(removed_w) < STEM_MIN_DBFS:
                continue  # nothing to add the stem to
            if start not in full_mels:
                full_mels[start] = sp.audio_to_mel(_window(full, start).astype(np.float32))
            full_mel = full_mels[start]
            removed_mel = sp.audio_to_mel(removed_w.astype(np.float32))
            rng = np.random.default_rng([seed, zlib.crc32(song.key.encode()), start, zlib.crc32(stem.encode())])
            instruction, action, caption_text = instruct(stem, rng, song)
            meta = {
                "song": song.key, "title": song.title, "stem": stem, "start": int(start),
                "seconds": round(start / sp.SAMPLE_RATE, 3), "instruction": instruction, "action": action,
                "caption": caption_text, "full_max": float(full_mel.max()), "removed_max": float(removed_mel.max()),
            }
            yield sp.mel_to_image(full_mel), sp.mel_to_image(removed_mel), meta


def full_mix(song: SongStems) -> np.ndarray:
    """``song.mix`` if given, else the float64 sum of every stem."""
    if song.mix is not None:
        return np.asarray(song.mix, dtype=np.float64)
    return np.sum([y.astype(np.float64) for y in song.stems.values()], axis=0)


def removed_mix(song: SongStems, stem: str) -> np.ndarray:
    """The song without ``stem``: the float64 sum of the other stems (no trace of it), or mix - stem for a given mix."""
    if song.mix is not None:
        return np.asarray(song.mix, dtype=np.float64) - song.stems[stem].astype(np.float64)
    others = [y.astype(np.float64) for n, y in song.stems.items() if n != stem]
    return np.sum(others, axis=0) if others else np.zeros(len(song.stems[stem]))


def _caption_for(song: SongStems) -> str:
    from stemfill.audio.instructions import caption

    inst = [n for s in song.stems for n in song.instruments.get(s, [])[:1]]
    return caption(stems=list(song.stems), genre=song.genre, qpm=song.qpm, instruments=inst)


def offline_instructor(stem: str, rng: np.random.Generator, song: SongStems) -> tuple[str, str, str]:
    from stemfill.audio.instructions import offline_instruction

    inst = song.instruments.get(stem) or [None]
    text, action = offline_instruction(stem, rng, genre=song.genre, qpm=song.qpm, instrument=inst[0])
    return text, action, _caption_for(song)


def llm_instructor(llm) -> Callable[[str, np.random.Generator, SongStems], tuple[str, str, str]]:
    from stemfill.audio.instructions import action_word

    def f(stem: str, rng: np.random.Generator, song: SongStems) -> tuple[str, str, str]:
        action, cap = action_word(rng), _caption_for(song)
        return llm(stem, action, cap), action, cap

    return f


# --- writing shards -------------------------------------------------------------------
def spectrogram_params() -> dict:
    return {
        "sample_rate": sp.SAMPLE_RATE, "hop_length": sp.HOP_LENGTH, "win_length": sp.WIN_LENGTH, "n_fft": sp.N_FFT,
        "n_mels": sp.N_MELS, "f_min": sp.F_MIN, "f_max": sp.F_MAX, "mel_scale": "htk", "mel_norm": None,
        "power_for_image": sp.POWER_FOR_IMAGE, "columns": sp.N_COLUMNS, "segment_samples": sp.SEGMENT_SAMPLES,
    }


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def _read_manifest(out: Path) -> dict | None:
    m = out / "manifest.json"
    if not m.exists():
        return None
    try:
        man = json.loads(m.read_text())
    except ValueError as e:
        raise AudioError(f"{m}: damaged manifest ({e}); move the folder aside to start over") from e
    if man.get("format") != FORMAT:
        raise AudioError(f"{m}: not a stemfill triplet folder")
    if man.get("spectrogram") != spectrogram_params():
        raise AudioError(f"{m}: made with other spectrogram settings; use a new output folder")
    return man


def build_triplets(songs: Iterable[tuple[str, Loader]], out: str | os.PathLike, *, targets: Iterable[str] | None = None,
                   seed: int = 0, overlap: float = 0.0, instruct=None, shard_size: int = 128,
                   progress: bool = True, options: dict | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Write triplet shards for ``songs`` into ``out``; resumes a previous run there. Returns the manifest.

    A song that fails with a StemfillError is skipped (``skipping <song>: <reason>``) and
    recorded in the manifest; it is not retried on resume.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    man = _read_manifest(out) or {
        "format": FORMAT, "version": VERSION, "spectrogram": spectrogram_params(), "options": options or {},
        "count": 0, "shards": [], "songs_done": [], "skipped": [],
    }
    finished = set(man["songs_done"]) | {s["song"] for s in man["skipped"]}
    log = log or (lambda msg: None)
    targets = list(targets) if targets else None
    buf_full: list[np.ndarray] = []
    buf_removed: list[np.ndarray] = []
    buf_meta: list[dict] = []
    pending_done: list[str] = []
    pending_skip: list[dict] = []

    def flush() -> None:
        if buf_meta:
            name = f"shard-{len(man['shards']):05d}"
            _atomic_write(out / f"{name}.npz", lambda t: _savez(t, buf_full, buf_removed, buf_meta))
            _atomic_write(out / f"{name}.jsonl", lambda t: t.write_text("".join(json.dumps(m) + "\n" for m in buf_meta)))
            man["shards"].append({"name": name, "count": len(buf_meta)})
            man["count"] += len(buf_meta)
        man["songs_done"] += pending_done
        man["skipped"] += pending_skip
        _atomic_write(out / "manifest.json", lambda t: t.write_text(json.dumps(man, indent=1)))
        buf_full.clear(), buf_removed.clear(), buf_meta.clear(), pending_done.clear(), pending_skip.clear()

    todo = [(k, f) for k, f in songs if k not in finished]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  disable=not progress, transient=False) as bar:
        task = bar.add_task("triplets", total=len(todo))
        for key, load in todo:
            bar.update(task, description=f"{Path(key.split(':', 1)[-1]).name[:40]} ({man['count'] + len(buf_meta)} triplets)")
            n_before = len(buf_meta)
            try:
                song = load()
                for full_img, removed_img, meta in song_triplets(song, targets, seed=seed, overlap=overlap, instruct=instruct):
                    buf_full.append(full_img), buf_removed.append(removed_img), buf_meta.append(meta)
                if len(buf_meta) == n_before:
                    raise AudioError("no segment where a target stem plays over other stems")
                pending_done.append(key)
            except StemfillError as e:
                del buf_full[n_before:], buf_removed[n_before:], buf_meta[n_before:]
                reason, name = str(e).splitlines()[0], key.split(":", 1)[-1]
                if reason.startswith(name + ": "):
                    reason = reason[len(name) + 2 :]
                log(f"skipping {name}: {reason}")
                pending_skip.append({"song": key, "reason": reason})
            bar.advance(task)
            if len(buf_meta) >= shard_size:
                flush()
        flush()
    return man


def _savez(path: Path, full: list, removed: list, meta: list) -> None:
    with open(path, "wb") as fh:
        np.savez_compressed(fh, full=np.stack(full), removed=np.stack(removed),
                            instruction=np.array([m["instruction"] for m in meta], dtype=str))


# --- reading --------------------------------------------------------------------------
class TripletDataset:
    """Random access over a triplet folder: ``ds[i]`` is a Triplet(full, removed, instruction), uint8 (512, 512)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise AudioError(f"{self.root}: no such triplet folder")
        man = _read_manifest(self.root)
        if man is None:
            raise AudioError(f"{self.root}: no manifest.json (not a triplet folder, or nothing written yet)")
        self.manifest = man
        self.shards = [s["name"] for s in man["shards"]]
        self._metas: list[dict] = []
        self._where: list[tuple[int, int]] = []
        for k, s in enumerate(man["shards"]):
            lines = (self.root / f"{s['name']}.jsonl").read_text().splitlines()
            if len(lines) != s["count"]:
                raise AudioError(f"{self.root / s['name']}.jsonl: {len(lines)} lines, manifest says {s['count']}")
            self._metas += [json.loads(ln) for ln in lines]
            self._where += [(k, i) for i in range(len(lines))]
        self._load = lru_cache(maxsize=2)(self._load_shard)

    def _load_shard(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        with np.load(self.root / f"{self.shards[k]}.npz") as z:
            return z["full"], z["removed"]

    def __len__(self) -> int:
        return len(self._metas)

    def __getitem__(self, i: int) -> Triplet:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        k, r = self._where[i]
        full, removed = self._load(k)
        return Triplet(full[r], removed[r], self._metas[i]["instruction"])

    def meta(self, i: int) -> dict:
        return self._metas[i]

    def __iter__(self) -> Iterator[Triplet]:
        return self.iter()

    def iter(self, shuffle: bool = False, seed: int = 0) -> Iterator[Triplet]:
        """Shard by shard (one decompression per shard); ``shuffle`` permutes shards and rows within each."""
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self.shards)) if shuffle else range(len(self.shards))
        starts = np.cumsum([0] + [s["count"] for s in self.manifest["shards"]])
        for k in order:
            full, removed = self._load(int(k))
            rows = rng.permutation(len(full)) if shuffle else range(len(full))
            for r in rows:
                yield Triplet(full[r], removed[r], self._metas[starts[k] + r]["instruction"])


def load_triplets(root: str | os.PathLike) -> TripletDataset:
    return TripletDataset(root)
