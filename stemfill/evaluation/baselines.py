"""The systems under evaluation: the ``System`` protocol, the baselines and the model adapter.

Every system fills the channels whose ``known`` flag is False and returns the known ones
untouched (the harness checks that bit for bit; it never repairs a system's output).

* ``real``      ceiling: hands back the true stem (the harness passes the truth in).
* ``random``    floor: each cell on with the training set's density for that stem and pitch row.
* ``rule``      hand-written: rock groove, root-note bass, triads on the roots (docs/evaluation.md).
* ``retrieval`` the training chunk whose known channels are nearest by cosine lends its stem.
* ``model``     the diffusion model, loaded by ``stemfill.pianoroll.model.load_model`` and filled by ``fill.fill_chunks``.
* ``paper``     the paper's setting: three per-instrument models (Atassi objective, each trained to
                fill its one stem given the other two), chained drums -> bass -> guitar.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from stemfill.datasets.chunks import Chunks
from stemfill.errors import ModelError, StemfillError
from stemfill.pianoroll.grid import BASS_LOW, CHANNEL, GUITAR_LOW, STEPS_PER_BEAT
from stemfill.pianoroll.roll import DRUM_KIT
from stemfill.song.song import STEMS

SYSTEMS = ("real", "random", "rule", "retrieval", "model", "model-cells", "paper")
DRUMS, BASS, GUITAR = CHANNEL["drums"], CHANNEL["bass"], CHANNEL["guitar"]
_KIT_ROW = {name: i for i, (name, _, _) in enumerate(DRUM_KIT)}


@runtime_checkable
class System(Protocol):
    name: str

    def fill(self, rolls: np.ndarray, known: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """rolls bool (B, 3, P, L) with unknown channels zeroed; known bool (B, 3).
        Returns bool (B, 3, P, L): unknown channels filled, known channels unchanged."""
        ...


# --------------------------------------------------------------------------- ceiling and floor


class RealSystem:
    """The ceiling: returns the true stems. ``needs_truth`` makes the harness pass them in."""

    name = "real"
    needs_truth = True

    def fill(self, rolls, known, rng, truth=None):
        if truth is None:
            raise StemfillError("system 'real' needs the true rolls (truth=...); only the harness can run it")
        return np.where(known[:, :, None, None], rolls, truth)


def _require_train(name: str, train: Chunks | None) -> Chunks:
    if train is None or len(train) == 0:
        raise StemfillError(f"system {name!r} needs training chunks (the train split of the same data folder)")
    return train


def _check_grid(name: str, train: Chunks, rolls: np.ndarray) -> None:
    if train.rolls.shape[2:] != rolls.shape[2:]:
        raise StemfillError(f"system {name!r}: training chunks are {train.rolls.shape[2:]} (pitches, steps) "
                            f"but the evaluated chunks are {rolls.shape[2:]}; convert both with the same settings")


class RandomSystem:
    """The floor: every cell of a missing channel is on with probability = the training set's
    share of on cells for that stem and pitch row (over chunks where the stem has notes)."""

    name = "random"

    def __init__(self, train: Chunks):
        train = _require_train(self.name, train)
        self.train = train
        pres = train.present
        P, L = train.rolls.shape[2:]
        self.density = np.zeros((len(STEMS), P), dtype=np.float64)
        for c in range(len(STEMS)):
            idx = np.flatnonzero(pres[:, c])
            on = np.zeros(P, dtype=np.int64)
            for i in range(0, len(idx), 512):  # small temporaries
                on += train.rolls[idx[i:i + 512], c].sum(axis=(0, 2), dtype=np.int64)
            self.density[c] = on / max(1, len(idx) * L)

    def fill(self, rolls, known, rng):
        _check_grid(self.name, self.train, rolls)
        out = rolls.copy()
        B, C, P, L = rolls.shape
        for c in range(C):
            miss = np.flatnonzero(~known[:, c])
            if len(miss):
                out[miss, c] = rng.random((len(miss), P, L), dtype=np.float32) < self.density[c][None, :, None]
        return out


# --------------------------------------------------------------------------- rule-based

PROGRESSION = (0, 7, 9, 5)  # I-V-vi-IV in C: roots C, G, A, F
PROGRESSION_MINOR = (False, False, True, False)
BASS_ROOT_LOW = 28  # E1: bass roots sit in E1..D#2, inside E1-E3
GUITAR_ROOT_LOW = 40  # E2: chord roots in E2..D#3


class RuleSystem:
    """Hand-written parts, 4/4 assumed (a bar = 4 beats), chords change every half bar.

    drums:  kick on beats 1 and 3, snare on 2 and 4, closed hi-hat on every 8th.
    bass:   the root of each half bar (lowest guitar pitch class sounding there) in E1..D#2,
            on 8ths if the context starts >= 6 notes per bar on the 16th grid, else quarters.
    guitar: a chord on each half bar's root (lowest bass pitch class): major or minor triad where
            the context's pitch classes tell the third, else a power chord; same rhythm as bass.
    With neither pitched stem known, both follow I-V-vi-IV in C, one chord a bar.
    """

    name = "rule"

    def __init__(self, steps_per_beat: int = STEPS_PER_BEAT, bass_low: int = BASS_LOW, guitar_low: int = GUITAR_LOW):
        self.spb, self.bass_low, self.guitar_low = steps_per_beat, bass_low, guitar_low

    def fill(self, rolls, known, rng):
        out = rolls.copy()
        for i in range(len(rolls)):
            self._fill_one(out[i], known[i])
        return out

    def _fill_one(self, roll: np.ndarray, known: np.ndarray) -> None:
        P, L = roll.shape[1:]
        beat, bar = self.spb, 4 * self.spb
        half = bar // 2
        step = self._rhythm(roll, known)
        if not known[DRUMS]:
            for t0 in range(0, L, bar):
                for off, row in ((0, "kick"), (2 * beat, "kick"), (beat, "snare"), (3 * beat, "snare")):
                    if t0 + off < L:
                        roll[DRUMS, _KIT_ROW[row], t0 + off] = True
                roll[DRUMS, _KIT_ROW["closed hi-hat"], t0:min(L, t0 + bar):beat // 2] = True
        n_seg = math.ceil(L / half)
        g_known = known[GUITAR] and roll[GUITAR].any()
        b_known = known[BASS] and roll[BASS].any()
        if g_known:
            roots, minor = _roots(roll[GUITAR], half, n_seg), None
        elif b_known:
            roots, minor = _roots(roll[BASS], half, n_seg), None
        else:  # both pitched stems missing (or silent): I-V-vi-IV, one chord a bar
            k = np.arange(n_seg) // 2 % len(PROGRESSION)
            roots, minor = np.array(PROGRESSION)[k], np.array(PROGRESSION_MINOR)[k]
        if not known[BASS]:
            for s, pc in enumerate(roots):
                row = BASS_ROOT_LOW + (pc - BASS_ROOT_LOW) % 12 - self.bass_low
                _strum(roll[BASS], [row], s * half, min(L, (s + 1) * half), step)
        if not known[GUITAR]:
            pitched = roll[BASS] if known[BASS] else np.zeros_like(roll[BASS])
            chroma = _chroma(pitched)
            for s, pc in enumerate(roots):
                seg = _chroma(pitched[:, s * half:(s + 1) * half])
                m = minor[s] if minor is not None else _third(pc, seg, chroma)
                root = GUITAR_ROOT_LOW + (pc - GUITAR_ROOT_LOW) % 12
                pitches = [root, root + 7, root + 12] if m is None else [root, root + (3 if m else 4), root + 7]
                rows = [p - self.guitar_low for p in pitches if 0 <= p - self.guitar_low < P]
                _strum(roll[GUITAR], rows, s * half, min(L, (s + 1) * half), step)

    def _rhythm(self, roll: np.ndarray, known: np.ndarray) -> int:
        """8ths (half a beat) if the known stems start >= 6 notes a bar on the 16th grid, else quarters."""
        cell = max(1, self.spb // 4)
        L = roll.shape[-1]
        on = np.zeros(L, dtype=bool)
        for c in np.flatnonzero(known):
            x = roll[c]
            on |= (x if c == DRUMS else x & ~np.pad(x, ((0, 0), (1, 0)))[:, :-1]).any(axis=0)
        cells = np.pad(on, (0, (-L) % cell)).reshape(-1, cell).any(axis=1).sum()
        bars = L / (4 * self.spb)
        return self.spb // 2 if not on.any() or cells / bars >= 6 else self.spb


def _roots(x: np.ndarray, half: int, n_seg: int) -> np.ndarray:
    """Lowest pitch class sounding in each half bar; silent half bars take the nearest earlier
    (else later) root."""
    roots = np.full(n_seg, -1)
    for s in range(n_seg):
        rows = np.flatnonzero(x[:, s * half:(s + 1) * half].any(axis=1))
        if len(rows):
            roots[s] = rows[0] % 12
    have = np.flatnonzero(roots >= 0)
    for s in np.flatnonzero(roots < 0):
        before = have[have < s]
        roots[s] = roots[before[-1]] if len(before) else roots[have[0]]
    return roots


def _chroma(x: np.ndarray) -> np.ndarray:
    c = np.zeros(12)
    np.add.at(c, np.arange(x.shape[0]) % 12, x.sum(axis=1))
    return c


def _third(pc: int, seg: np.ndarray, whole: np.ndarray):
    """True = minor, False = major, None = power chord, from the half bar's pitch classes, else the chunk's."""
    for c in (seg, whole):
        maj, mnr = c[(pc + 4) % 12], c[(pc + 3) % 12]
        if maj != mnr:
            return bool(mnr > maj)
    return None


def _strum(ch: np.ndarray, rows, t0: int, t1: int, step: int) -> None:
    """Notes on ``rows`` starting every ``step`` steps in [t0, t1), each step - 1 long (a one-step gap)."""
    for t in range(t0, t1, step):
        ch[rows, t:min(t1, t + max(1, step - 1))] = True


# --------------------------------------------------------------------------- retrieval


class RetrievalSystem:
    """Nearest neighbour: the training chunk whose known channels (time max-pooled to 16ths,
    flattened) have the highest cosine similarity lends the missing channels. Candidates are the
    training chunks where every missing stem has notes. Above ``max_bytes`` of features the
    candidates are subsampled (seeded). With no channel known, a candidate is drawn (``rng``)."""

    name = "retrieval"

    def __init__(self, train: Chunks, pool: int = STEPS_PER_BEAT // 4, batch: int = 256,
                 max_bytes: int = 1 << 30, seed: int = 0):
        self.train = _require_train(self.name, train)
        self.pool, self.batch, self.max_bytes, self.seed = pool, batch, max_bytes, seed
        self._index: dict[tuple[bool, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # features, counts, chunk ids

    def _features(self, rolls: np.ndarray, known: tuple[bool, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(binary features as float32 0/1, their counts of ones). Dot products of 0/1 vectors are exact
        integers in float32 (at most 2 x 48 x 64 ones), whatever order a BLAS sums them in, so the
        cosines, and the neighbour chosen among equals, are the same on every machine and batch size."""
        x = rolls[:, list(np.flatnonzero(known))]
        L = x.shape[-1]
        x = np.pad(x, [(0, 0)] * 3 + [(0, (-L) % self.pool)]).reshape(*x.shape[:3], -1, self.pool).any(-1)
        f = x.reshape(len(x), -1).astype(np.float32)
        return f, f.sum(axis=1, dtype=np.float64)

    def _lookup(self, known: tuple[bool, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if known not in self._index:
            miss = [c for c in range(len(STEMS)) if not known[c]]
            cand = np.flatnonzero(self.train.present[:, miss].all(axis=1))
            if len(cand) == 0:
                cand = np.arange(len(self.train))
            if not any(known):  # nothing to compare: every candidate is as near (``fill`` draws one)
                self._index[known] = (np.zeros((len(cand), 0), np.float32), np.zeros(len(cand)), cand)
                return self._index[known]
            per = self._features(self.train.rolls[:1], known)[0].nbytes
            cap = max(1, self.max_bytes // max(per, 1))
            if len(cand) > cap:
                cand = np.sort(np.random.default_rng(self.seed).choice(cand, cap, replace=False))
            parts = [self._features(self.train.rolls[cand[i:i + 1024]], known) for i in range(0, len(cand), 1024)]
            self._index[known] = (np.concatenate([f for f, _ in parts]), np.concatenate([n for _, n in parts]), cand)
        return self._index[known]

    def fill(self, rolls, known, rng):
        _check_grid(self.name, self.train, rolls)
        out = rolls.copy()
        for pattern in {tuple(bool(v) for v in k) for k in known}:
            rows = np.flatnonzero((known == np.array(pattern)).all(axis=1))
            miss = [c for c in range(len(STEMS)) if not pattern[c]]
            if not miss:
                continue
            feats, counts, cand = self._lookup(pattern)
            if not any(pattern):
                best = cand[rng.integers(len(cand), size=len(rows))]
                for c in miss:
                    out[rows, c] = self.train.rolls[best, c]
                continue
            for i in range(0, len(rows), self.batch):
                r = rows[i:i + self.batch]
                q, qn = self._features(rolls[r], pattern)
                cos = (q @ feats.T).astype(np.float64) / np.sqrt(np.maximum(qn[:, None] * counts[None, :], 1.0))
                best = cand[np.argmax(cos, axis=1)]  # the first of equals
                for c in miss:
                    out[r, c] = self.train.rolls[best, c]
        return out


# --------------------------------------------------------------------------- the model


def _model_dims(model) -> dict:
    """The shape numbers a model was trained on, to check against a chunk folder's."""
    return {"pitches": int(model.net.config.n_pitches), "length": int(model.config.window),
            "steps_per_beat": int(model.config.steps_per_beat)}


class ModelSystem:
    """The diffusion model (``path``; None: the embedded default), loaded by ``stemfill.pianoroll.model.load_model``;
    each batch is filled by ``fill_chunks(model, rolls, known, steps=..., seed=...)`` with a seed drawn from the rng."""

    name = "model"

    def __init__(self, path: str | Path | None, steps: int | None = None, drums="model"):
        import torch

        from stemfill.pianoroll.fill import fill_chunks
        from stemfill.pianoroll.model import default_model_path, load_model

        p = Path(path) if path is not None else default_model_path()
        self.model = load_model(p, device="cuda" if torch.cuda.is_available() else "cpu")
        self.path, self._fill, self.steps, self.drums = p, fill_chunks, steps, drums

    def check(self, chunks: Chunks) -> None:
        dims = _model_dims(self.model)
        have = {"pitches": chunks.rolls.shape[2], "length": chunks.rolls.shape[3],
                "steps_per_beat": int(chunks.config.get("steps_per_beat", STEPS_PER_BEAT))}
        bad = [f"{k} {dims[k]} (model) vs {have[k]} (chunks)" for k in dims if dims[k] != have[k]]
        multiple = self.model.net.config.time_multiple
        if have["length"] % multiple:
            bad.append(f"chunk length {have['length']} is not a multiple of the model's {multiple}")
        if bad:
            raise ModelError(f"{self.path}: model and chunks differ: {'; '.join(bad)}")

    @property
    def hears_context(self) -> bool:
        """The harness hands this system the chunks' context planes (the song's other tracks)."""
        return self.model.context_planes > 0

    def fill(self, rolls, known, rng, other=None):
        kw = {"seed": int(rng.integers(2**31 - 1)), "other": other, "drums": self.drums}
        if self.steps is not None:
            kw["steps"] = self.steps
        return np.asarray(self._fill(self.model, rolls, known, **kw), dtype=bool)


# --------------------------------------------------------------------------- the paper's per-stem models


def _remove_only(model) -> str:
    cfg = getattr(model, "config", None)
    v = cfg.get("remove_only") if isinstance(cfg, dict) else getattr(cfg, "remove_only", None)
    return v or ""


def paper_model_paths(path: str | Path) -> list[Path]:
    """The model folders of ``path``: a folder holding ``drums/``, ``bass/``, ``guitar/`` (those present),
    or a comma-separated list of model folders/files."""
    text = str(path)
    if "," in text:
        return [Path(x.strip()) for x in text.split(",") if x.strip()]
    p = Path(text)
    if not p.exists():
        raise ModelError(f"{p}: no such folder (expected one holding drums/, bass/ and guitar/ model folders)")
    found = [p / s for s in STEMS if (p / s).exists()]
    if not found:
        raise StemfillError(f"{p}: no drums/, bass/ or guitar/ model folder in it (or give a comma-separated list "
                            f"of three model folders)")
    return found


class PaperSystem:
    """The paper's setting: three separate diffusion models, one per instrument, each trained (Atassi
    objective, ``DiffusionConfig.remove_only``) to fill its one stem given the other two channels.
    Which stem a model fills is read from its config, not from its folder name.

    ``fill`` runs, for each unknown channel in the fixed order drums, bass, guitar, that stem's model
    through ``fill_chunks(model, rolls, known_now, seed=...)`` on the rows missing the stem, keeps only
    that stem's channel of the result and marks it known. ``known_now`` is the currently known
    channels: with two stems missing, the first model sees the second stem as unknown (still empty)
    and the second model sees the first one's output as known context. That chaining is how the
    per-instrument models fill more than one stem here (each model only ever learned to fill its own).
    Steps default to each model's own sampling config (``model.sampling.sample_steps``)."""

    name = "paper"

    def __init__(self, path: str | Path | None, steps: int | None = None):
        if path is None:
            raise StemfillError("system 'paper' needs --paper-models DIR (drums/, bass/, guitar/ model folders, "
                                "or three comma-separated model folders)")
        self.path = path
        self.models: dict[int, ModelSystem] = {}
        where: dict[str, Path] = {}
        for mp in paper_model_paths(path):
            m = ModelSystem(mp, steps=steps)
            stem = _remove_only(m.model)
            if not stem:
                raise StemfillError(f"{mp}: not a per-instrument model (its config's remove_only is empty)")
            if stem not in STEMS:
                raise StemfillError(f"{mp}: config's remove_only {stem!r} is not one of {', '.join(STEMS)}")
            if stem in where:
                raise StemfillError(f"system 'paper': two models fill {stem}: {where[stem]} and {mp}")
            where[stem] = mp
            self.models[STEMS.index(stem)] = m
        missing = [s for s in STEMS if s not in where]
        if missing:
            raise StemfillError(f"system 'paper': no model for {', '.join(missing)} in {path} "
                                f"(need one per stem, told apart by config remove_only)")

    def check(self, chunks: Chunks) -> None:
        for m in self.models.values():
            m.check(chunks)

    def fill(self, rolls, known, rng):
        out = np.array(rolls, dtype=bool, copy=True)
        kn = np.array(known, dtype=bool, copy=True)
        for c in range(len(STEMS)):  # drums, bass, guitar
            rows = np.flatnonzero(~kn[:, c])
            if len(rows) == 0:
                continue
            m = self.models[c]
            kw = {"seed": int(rng.integers(2**31 - 1))}
            if m.steps is not None:
                kw["steps"] = m.steps
            filled = np.asarray(m._fill(m.model, out[rows], kn[rows], **kw), dtype=bool)
            out[rows, c] = filled[:, c]
            kn[rows, c] = True
        return out


# --------------------------------------------------------------------------- registry


def get_system(name: str, model_path: str | Path | None = None, train_chunks: Chunks | None = None,
               steps: int | None = None, seed: int = 0) -> System:
    """A system by name (see ``SYSTEMS``). ``train_chunks`` feeds random and retrieval; ``model_path`` is
    the model for 'model' and, for 'paper', the folder of drums/bass/guitar models (or a comma list)."""
    if name == "real":
        return RealSystem()
    if name == "random":
        return RandomSystem(train_chunks)
    if name == "rule":
        return RuleSystem()
    if name == "retrieval":
        return RetrievalSystem(train_chunks, seed=seed)
    if name == "model":
        return ModelSystem(model_path, steps=steps)
    if name == "model-cells":  # the same model, its drums decoded cell by cell (no pattern decoder)
        m = ModelSystem(model_path, steps=steps, drums=None)
        m.name = "model-cells"
        return m
    if name == "paper":
        return PaperSystem(model_path, steps=steps)
    raise StemfillError(f"unknown system {name!r}; expected one of {', '.join(SYSTEMS)}")
