"""Drum pattern libraries: whole bars of real drumming, on the roll's grid, by meter.

A library is one ``.npz`` file::

    meta      JSON: format, steps_per_beat, kit classes, sources (folder, licence, songs, bars)
    bits      bool (N, N_DRUM_CLASSES, MAX_BAR) the bar's hits (steps past its length are empty)
    length    (N,) steps in the bar (48 for 4/4 at 12 steps a beat, 36 for 3/4 and 6/8 ...)
    meter     (N,) "4/4", "3/4", "6/8" ...
    count     (N,) how often the pattern was played (after de-duplication)
    fill      (N,) bool: the bar is a fill (toms, or a snare run in its second half)
    phrases   (M, PHRASE_BARS) patterns of PHRASE_BARS consecutive bars as a drummer played them (one meter)
    phrase_crash  (M, PHRASE_BARS) bool: which of those bars opened with a crash
    phrase_count  (M,) how often the phrase was played

``build_library`` reads song files (MIDI, Guitar Pro), takes each drum track's bars in the song's own
meter, moves hits to the grid (plain rounding for written parts; for played ones, such as the Groove MIDI
Dataset, the 16th or the 8th-triplet grid, whichever fits the file better), strips the crash on a bar's
first step (the planner puts crashes back where they belong) and counts distinct bars. ``load_library``
refuses files of another format or grid and empty libraries, in one line naming the path.
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from stemfill.errors import StemfillError
from stemfill.generate.plan import meter_steps
from stemfill.generate.plan import song_bars as plan_bars
from stemfill.pianoroll.grid import STEPS_PER_BEAT
from stemfill.pianoroll.roll import DRUM_CLASS_OF_KEY, DRUM_KIT, N_DRUM_CLASSES

FORMAT = "stemfill-drum-patterns/1"
PHRASE_BARS = 4  # bars in a library phrase (as generate.plan.PHRASE_BARS)
MAX_BAR = 8 * STEPS_PER_BEAT  # longest bar kept: 8 quarter notes (8/4, 15/8 ...)
CLASS = {name: i for i, (name, _, _) in enumerate(DRUM_KIT)}
CRASH = CLASS["crash"]
TOMS = [CLASS["low tom"], CLASS["mid tom"], CLASS["high tom"]]
SNARE = CLASS["snare"]

# The Roland TD-11 keys of the Groove MIDI Dataset that General MIDI reads as something else (gmd/README.md)
TD11_KEYS = {22: 42, 26: 46, 58: 43, 55: 49, 52: 49}
GMD_NAME = re.compile(r"^D\d+S\d+_\d+__\d+_.*_(beat|fill)_\d+-\d+\.mid$", re.IGNORECASE)


@dataclass
class PatternLibrary:
    """Bars of drumming (``bits``) with their meter, length, count and fill flag; ``path`` where it was read."""

    bits: np.ndarray
    length: np.ndarray
    meter: np.ndarray
    count: np.ndarray
    fill: np.ndarray
    phrases: np.ndarray = field(default_factory=lambda: np.zeros((0, PHRASE_BARS), np.int64))
    phrase_crash: np.ndarray = field(default_factory=lambda: np.zeros((0, PHRASE_BARS), bool))
    phrase_count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    meta: dict = field(default_factory=dict)
    path: Path | None = None
    _flat: dict = field(default_factory=dict, repr=False, compare=False)  # (meter, length) -> rows, matrix

    def of_meter(self, meter: str, length: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices, float32 (n, N_DRUM_CLASSES * length) hits) of every bar of one meter and length; made once
        per library and meter, as every song decoded with it scores its bars against the same matrix."""
        key = (meter, int(length))
        if key not in self._flat:
            idx = np.flatnonzero((self.meter == meter) & (self.length == length))
            self._flat[key] = (idx, self.bits[idx][:, :, :length].reshape(len(idx), -1).astype(np.float32))
        return self._flat[key]

    def __len__(self) -> int:
        return len(self.bits)

    def meters(self) -> list[str]:
        return sorted(set(self.meter.tolist()))

    def select(self, meter: str, length: int, fills: bool) -> np.ndarray:
        """Indices of the patterns of one meter and bar length, fills or grooves."""
        return np.flatnonzero((self.meter == meter) & (self.length == length) & (self.fill == fills))

    def save(self, path: str | os.PathLike) -> Path:
        from stemfill.files import atomic_write_bytes

        p = Path(path)
        buf = io.BytesIO()
        np.savez_compressed(buf, meta=np.array(json.dumps(self.meta)), bits=np.packbits(self.bits, axis=-1),
                            length=self.length.astype(np.int16), meter=self.meter.astype("U8"),
                            count=self.count.astype(np.int32), fill=self.fill.astype(bool),
                            phrases=self.phrases.astype(np.int32), phrase_crash=self.phrase_crash.astype(bool),
                            phrase_count=self.phrase_count.astype(np.int32))
        atomic_write_bytes(p, buf.getvalue())
        return p


def load_library(path: str | os.PathLike) -> PatternLibrary:
    """Read a library; StemfillError (one line, naming ``path``) for a missing, foreign, other-grid or empty one."""
    p = Path(path)
    if not p.exists():
        raise StemfillError(f"{p}: no such pattern library")
    try:
        with np.load(p, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            bits = np.unpackbits(z["bits"], axis=-1, count=MAX_BAR).astype(bool)
            lib = PatternLibrary(bits, z["length"].astype(np.int64), z["meter"].astype(str), z["count"].astype(np.int64),
                                 z["fill"].astype(bool), z["phrases"].astype(np.int64), z["phrase_crash"].astype(bool),
                                 z["phrase_count"].astype(np.int64), meta, p)
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        raise StemfillError(f"{p}: not a stemfill drum pattern library (it cannot be read as one)") from None
    if meta.get("format") != FORMAT:
        raise StemfillError(f"{p}: not a stemfill drum pattern library (format {meta.get('format')!r}, "
                            f"expected {FORMAT!r})")
    if int(meta.get("steps_per_beat", -1)) != STEPS_PER_BEAT or int(meta.get("classes", -1)) != N_DRUM_CLASSES:
        raise StemfillError(f"{p}: built for another grid ({meta.get('steps_per_beat')} steps a beat, "
                            f"{meta.get('classes')} drum classes; this version uses {STEPS_PER_BEAT} and "
                            f"{N_DRUM_CLASSES}): build it again with `stemfill library build`")
    if len(lib) == 0 or not (~lib.fill).any():
        raise StemfillError(f"{p}: the library holds no drum grooves")
    return lib


_DEFAULT: dict[str, PatternLibrary] = {}


def default_library_path() -> Path:
    from stemfill.pianoroll.model import default_model_path

    return Path(default_model_path()) / "drum-patterns.npz"


def get_library(path: str | os.PathLike | None = None) -> PatternLibrary:
    """The library at ``path`` (default: the shipped one), read once per process."""
    p = str(Path(path) if path is not None else default_library_path())
    if p not in _DEFAULT:
        _DEFAULT[p] = load_library(p)
    return _DEFAULT[p]


# --- building ----------------------------------------------------------------------------------------------

def _grid_steps(pos: np.ndarray) -> np.ndarray:
    """Hit positions (float steps at STEPS_PER_BEAT) -> integer steps. Written parts (nearly all hits on the
    grid already) round; played ones snap to 16ths or 8th triplets, whichever is closer on the whole."""
    on_grid = np.abs(pos - np.rint(pos)) < 0.2
    if len(pos) == 0 or on_grid.mean() > 0.9:
        return np.rint(pos).astype(np.int64)
    best = None
    for g in (STEPS_PER_BEAT // 4, STEPS_PER_BEAT // 3):  # 16ths, 8th triplets
        q = np.rint(pos / g) * g
        err = np.abs(pos - q).mean()
        if best is None or err < best[0]:
            best = (err, q)
    return best[1].astype(np.int64)


def is_fill(bar: np.ndarray, length: int) -> bool:
    """A bar (classes, steps) is a fill: two or more tom hits, or four or more snare hits in its second half
    that are not the groove's backbeat (more than the first half holds)."""
    toms = int(bar[TOMS, :length].sum())
    half = length // 2
    s1, s2 = int(bar[SNARE, :half].sum()), int(bar[SNARE, half:length].sum())
    return toms >= 2 or (s2 >= 4 and s2 > s1 + 1)


def song_bars(song, min_velocity: int = 0, kit: str = "auto", name: str = "") -> list[tuple[str, np.ndarray, int]]:
    """(meter, bar (N_DRUM_CLASSES, MAX_BAR), bar number) for every whole bar of the song's drum tracks with a hit."""
    from stemfill.song.stems import classify_song

    groups = classify_song(song)
    notes = [n for i in groups["drums"] for n in song.tracks[i].notes if n.velocity >= min_velocity]
    if not notes:
        return []
    td11 = kit == "td11" or (kit == "auto" and bool(GMD_NAME.match(name)))
    keys = np.array([TD11_KEYS.get(n.pitch, n.pitch) if td11 else n.pitch for n in notes])
    cls = DRUM_CLASS_OF_KEY[np.clip(keys, 0, 127)]
    pos = _grid_steps(np.array([n.start for n in notes], dtype=np.float64) * STEPS_PER_BEAT / song.resolution)
    bars = plan_bars(song, int(pos.max()) + 1)
    which = np.searchsorted(np.array([b.start for b in bars]), pos, side="right") - 1
    out = []
    for k in np.unique(which):
        if k < 0:
            continue  # hits before the first bar line
        bar = bars[k]
        if bar.length != meter_steps(bar.meter) or bar.length > MAX_BAR:
            continue  # a bar cut short by a meter change: not a whole bar of its meter
        sel = (which == k) & (pos - bar.start < bar.length)  # a hit past the song's last bar line: dropped
        hits = np.zeros((N_DRUM_CLASSES, MAX_BAR), dtype=bool)
        hits[cls[sel], pos[sel] - bar.start] = True
        out.append((bar.meter, hits, int(k)))
    return out


def build_library(files: Iterable[tuple[Path, str]], min_velocity: int = 0, min_count: int = 1,
                  log: Callable[[str], None] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> PatternLibrary:
    """A library of the drum bars of ``files`` ((path, source label) pairs). Unreadable files are skipped and
    reported through ``log``; patterns played fewer than ``min_count`` times are left out."""
    from stemfill.song.io import read_song

    files = list(files)
    table: dict[tuple[str, bytes], list] = {}
    phrase_table: dict[tuple, list] = {}
    sources: dict[str, dict] = {}
    for k, (path, label) in enumerate(files):
        try:
            song = read_song(path)
        except Exception as e:  # noqa: BLE001 - a batch job skips a bad file and says so
            if log:
                from stemfill.files import one_line

                log(f"skipped {path}: {one_line(e)}")
            continue
        bars = song_bars(song, min_velocity, name=Path(path).name)
        src = sources.setdefault(label, {"source": label, "songs": 0, "bars": 0})
        src["songs"] += 1 if bars else 0
        src["bars"] += len(bars)
        played = {}  # bar number -> (pattern key, crash on its downbeat, meter)
        for meter, bar, number in bars:
            length = meter_steps(meter)
            crash_first = bool(bar[CRASH, 0])
            groove = bar.copy()
            groove[CRASH, 0] = False
            if not groove.any():
                continue
            fill = is_fill(groove, length)
            key = (meter, np.packbits(groove).tobytes() + bytes([fill]))
            entry = table.setdefault(key, [meter, length, groove, 0, fill, crash_first])
            entry[3] += 1
            played[number] = (key, crash_first, meter)
        for first in sorted(played):  # every run of PHRASE_BARS played bars of one meter, from every bar
            run = [played.get(first + k) for k in range(PHRASE_BARS)]
            if any(r is None for r in run) or len({r[2] for r in run}) > 1:
                continue
            pk = tuple(r[0] for r in run) + tuple(r[1] for r in run)
            phrase_table.setdefault(pk, [0])[0] += 1
        if progress:
            progress(k + 1, len(files))
    keys = [k for k, e in table.items() if e[3] >= min_count or e[4]]
    keys.sort(key=lambda k: (-table[k][3], table[k][0]))
    rows = [table[k] for k in keys]
    index = {k: i for i, k in enumerate(keys)}
    n = len(rows)
    ph = [(pk, c[0]) for pk, c in phrase_table.items() if all(k in index for k in pk[:PHRASE_BARS])]
    phrases = np.array([[index[k] for k in pk[:PHRASE_BARS]] for pk, _ in ph], dtype=np.int64).reshape(-1, PHRASE_BARS)
    phrase_crash = np.array([list(pk[PHRASE_BARS:]) for pk, _ in ph], dtype=bool).reshape(-1, PHRASE_BARS)
    phrase_count = np.array([c for _, c in ph], dtype=np.int64)
    bits = np.zeros((n, N_DRUM_CLASSES, MAX_BAR), dtype=bool)
    for i, e in enumerate(rows):
        bits[i] = e[2]
    meta = {"format": FORMAT, "steps_per_beat": STEPS_PER_BEAT, "classes": N_DRUM_CLASSES,
            "kit": [name for name, _, _ in DRUM_KIT], "min_velocity": min_velocity, "min_count": min_count,
            "sources": list(sources.values())}
    return PatternLibrary(bits, np.array([e[1] for e in rows], dtype=np.int64), np.array([e[0] for e in rows], dtype="U8"),
                          np.array([e[3] for e in rows], dtype=np.int64), np.array([e[4] for e in rows], dtype=bool),
                          phrases, phrase_crash, phrase_count, meta)


def library_inputs(inputs: Iterable[str | os.PathLike], train_of: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """(song file, source label) pairs under ``inputs`` (files or folders). ``train_of``: a chunk folder whose
    manifest's train split limits the files (a library chosen by held-out scores must not hold those songs)."""
    from stemfill.song.io import SONG_EXTS

    allowed = None
    if train_of is not None:
        mf = Path(train_of) / "manifest.json"
        if not mf.exists():
            raise StemfillError(f"{train_of}: no manifest.json (a chunk folder from `stemfill convert`)")
        m = json.loads(mf.read_text())
        allowed = {(Path(s["root"]) / s["path"]).resolve() for s in m["songs"] if s.get("split") == "train"}
        held = {(Path(s["root"]) / s["path"]).resolve() for s in m["songs"] if s.get("split") != "train"}
    out = []
    for inp in inputs:
        p = Path(inp)
        if not p.exists():
            raise StemfillError(f"{p}: no such file or folder")
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.suffix.lower() in SONG_EXTS)
        for f in files:
            if allowed is not None and f.resolve() in held:
                continue  # a valid or test song: never in a library
            if allowed is not None and f.resolve() not in allowed and not _outside(f, m):
                continue
            out.append((f, p.name if p.is_dir() else p.parent.name))
    return out


def _outside(f: Path, manifest: dict) -> bool:
    """True where ``f`` lies under none of the manifest's roots (a folder the chunks never saw, e.g. gmd/)."""
    roots = {Path(s["root"]).resolve() for s in manifest["songs"]}
    fr = f.resolve()
    return not any(r == fr or r in fr.parents for r in roots)
