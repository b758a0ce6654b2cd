"""Fill without torch: the network run by onnxruntime (``model.onnx``, ``export.py``), the sampler in numpy.

``load_fill_model(path, engine)`` is the door: it returns the model ``fill.fill_song`` runs, either an
``OnnxModel`` (this module) or the torch ``BinaryDiffusion`` (``model.load_model``). ``engine="auto"``
takes onnxruntime where it can do what was asked (``onnx_unsupported`` says why not):

* the model folder has ``model.onnx`` and onnxruntime imports,
* the objective is bernoulli (``OnnxModel.sample`` ports ``BinaryDiffusion.sample`` for it: any number of
  steps, threshold or count decoding with ``min_note``, line decoding with ``diatonic_rows``, ``partial_mass``
  and classifier-free guidance, so also the ``chain_pitched`` pass's ``chain_guidance``),
* no controls are asked for (steering them needs torch autograd) and one candidate per window.

Torch's start-up alone (~3 s) costs more than a 3-minute song's fill; onnxruntime starts in under a second.

Randomness: the numpy sampler draws its Bernoulli noise from ``np.random.default_rng(seed)``, torch's from a
``torch.Generator``, so a seed gives a different (equally likely) fill on each engine. Given the same noise and
the same network logits both samplers make the same notes (tests/test_fast.py).

Threads: each network call takes at most ``CHUNK`` windows on one onnxruntime thread, as many calls at once as
``threads()`` (OMP_NUM_THREADS where set, else the CPU count): on two cores that ran ~25 % faster than
onnxruntime's own intra-op threads over a whole batch, and the logits do not depend on the thread count.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from stemfill.errors import ModelError, StemfillError
from stemfill.generate.controls import ControlConfig
from stemfill.pianoroll.config import DiffusionConfig, SamplingConfig, split_sampling
from stemfill.pianoroll.export import onnx_path
from stemfill.pianoroll.grid import BASS_LOW, GUITAR_LOW, N_PITCHES

ENGINES = ("auto", "onnx", "torch")
ENGINE_ENV = "STEMFILL_ENGINE"  # the engine when none is passed (default auto)
CHUNK = 4  # windows per onnxruntime call
IN_PLANES = 9  # x_t, known and context, per stem (unet.IN_PLANES)

LogitsFn = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (planes (B, n, P, L), t (B,)) -> logits (B, 3, P, L)


def threads() -> int:
    """Network calls at once: OMP_NUM_THREADS where set, else the CPUs this process may run on."""
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", "0"))
    except ValueError:
        n = 0
    if n < 1:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, n)


@dataclass
class OnnxModel:
    """A model for ``fill.fill_song`` whose network onnxruntime runs: its configs (as ``BinaryDiffusion``'s) and
    ``logits`` (planes, t) -> x0 logits. ``path``: where it was loaded from (the torch model, if needed)."""

    config: DiffusionConfig
    sampling: SamplingConfig
    context_planes: int
    control_planes: int
    controls: ControlConfig | None
    logits: LogitsFn
    path: Path | None = None
    engine: str = "onnx"

    @property
    def folder(self) -> Path | None:
        """The model's folder (``load_model`` sets the same on a torch model), where its critic is."""
        return None if self.path is None else _weights_dir(Path(self.path))

    def torch_model(self):
        """The same model loaded in torch (for what this engine does not do: controls, candidates)."""
        from stemfill.pianoroll.model import load_model

        return load_model(self.path)

    def sample(self, context: np.ndarray, known: np.ndarray, steps: int | None = None,
               rng: np.random.Generator | None = None, guidance: float | None = None,
               other: np.ndarray | None = None, probs: list | None = None) -> np.ndarray:
        """``BinaryDiffusion.sample`` for the bernoulli objective, in numpy: fill the unknown cells of
        ``context`` (B, 3, P, L) bool, ``known`` (B, 3, P, L) bool; ``other`` (B, context_planes, P, L) or None.
        Returns bool (B, 3, P, L), the known cells bit-exact."""
        cfg, sc = self.config, self.sampling
        if cfg.objective != "bernoulli":
            raise StemfillError(f"the onnxruntime sampler does the bernoulli objective only, not {cfg.objective!r}")
        steps = int(steps or sc.sample_steps)
        guidance = sc.guidance if guidance is None else float(guidance)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        rng = rng if rng is not None else np.random.default_rng(0)
        known = np.broadcast_to(np.asarray(known, dtype=bool), context.shape)
        ctx = np.asarray(context, dtype=bool) & known
        b = ctx.shape[0]
        other = np.asarray(other, dtype=np.float32) if other is not None and self.context_planes else None
        r = np.broadcast_to(np.asarray(cfg.density, dtype=np.float32).reshape(1, -1, 1, 1), ctx.shape)

        def bern(p: np.ndarray) -> np.ndarray:
            return (rng.random(p.shape, dtype=np.float32) < p).astype(np.float32)

        x = bern(r)
        for k in range(steps, 0, -1):
            t = np.full(b, k / steps, dtype=np.float32)
            p = self._last_p(x, known, ctx, t, guidance, other) if k == 1 else \
                _sigmoid(self.guided_logits(x, known, ctx, t, guidance, other))
            p_net = p  # what join_gaps reads (BinaryDiffusion.decode_last)
            if k == 1 and sc.partial_mass:
                p = self.partial_mass(p, x, known, ctx, t, guidance, other)
            if k == 1:
                if probs is not None:  # P of every channel, for the pattern decoders (BinaryDiffusion.sample)
                    probs.append(np.asarray(p, dtype=np.float32))
                x = self.decode_last(p, known, ctx, self.decode_noise(p.shape, rng), held=p_net)
                break
            ab_t = cosine_abar(t).reshape(b, 1, 1, 1)
            ab_s = cosine_abar(np.full(b, (k - 1) / steps, dtype=np.float32)).reshape(b, 1, 1, 1)
            x = bern(posterior(x, p, ab_t, ab_s, r))
        return np.where(known, ctx, x > 0)

    # --- network input (BinaryDiffusion.model_logits, guided_logits) ---------
    def model_logits(self, x_t, known, context, t, other=None) -> np.ndarray:
        k = known.astype(np.float32)
        parts = [x_t.astype(np.float32) * (1 - k), k, context.astype(np.float32) * k]
        if self.context_planes:  # the exported network always reads them: absent means zero
            parts.append(other if other is not None else np.zeros((len(k), self.context_planes) + k.shape[2:], np.float32))
        return self.logits(np.concatenate(parts, axis=1), t)

    def guided_logits(self, x_t, known, context, t, guidance: float, other=None, cond_out: list | None = None) -> np.ndarray:
        """Classifier-free guidance: the unconditional pass knows nothing (no stems, no other tracks).
        ``cond_out``: a list that gets the conditional pass's logits where guidance != 1."""
        if guidance == 1.0:
            return self.model_logits(x_t, known, context, t, other)
        z = np.zeros_like(known)
        o = None if other is None else np.concatenate([other, np.zeros_like(other)])
        both = self.model_logits(np.concatenate([x_t, x_t]), np.concatenate([known, z]),
                                 np.concatenate([context, z]), np.concatenate([t, t]), o)
        cond, uncond = both[:len(x_t)], both[len(x_t):]
        if cond_out is not None:
            cond_out.append(cond)
        return uncond + np.float32(guidance) * (cond - uncond)

    def _last_p(self, x, known, ctx, t, guidance, other=None) -> np.ndarray:
        """``BinaryDiffusion._last_p``: the last step's P, with ``sampling.guidance_mass``."""
        m = float(getattr(self.sampling, "guidance_mass", 0.0))
        cond: list | None = [] if m > 0 and guidance != 1.0 else None
        p = _sigmoid(self.guided_logits(x, known, ctx, t, guidance, other, cond))
        return match_mass(p, np.float32(m) * _sigmoid(cond[0]), known) if cond else p

    def partial_mass(self, p, x, known, ctx, t, guidance, other=None) -> np.ndarray:
        """``BinaryDiffusion.partial_mass``: where a channel is known over part of the window only, its missing
        cells get the P mass of a pass with that channel wholly missing."""
        B, C = known.shape[:2]
        flat = known.reshape(B, C, -1)
        part = flat.any(-1) & ~flat.all(-1)
        rows = np.flatnonzero(part.any(1))
        if len(rows) == 0:
            return p
        kr = np.broadcast_to(flat[rows].all(-1)[:, :, None, None], known[rows].shape)
        p_ref = self._last_p(x[rows], kr, ctx[rows] & kr, t[rows], guidance, None if other is None else other[rows])
        free = (~known[rows]).astype(np.float32)
        n = len(rows)
        ratio = (p_ref * free).reshape(n, C, -1).sum(-1) / np.maximum((p[rows] * free).reshape(n, C, -1).sum(-1),
                                                                      np.float32(1e-6))
        ratio = np.where(part[rows], ratio, np.float32(1.0)).astype(np.float32)
        p = p.copy()
        p[rows] = np.where(known[rows], p[rows], np.minimum(p[rows] * ratio[..., None, None], np.float32(1.0)))
        return p

    # --- the last step -------------------------------------------------------
    def decode_noise(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray | None:
        """``BinaryDiffusion.decode_noise``: Gumbel noise for channels decoded at a ``temperature``, else None."""
        sc = self.sampling
        if sc.decode != "count" or not any(v > 0 for v in sc.temperature):
            return None
        return gumbel(shape, rng)

    def decode_last(self, p: np.ndarray, known: np.ndarray, ctx: np.ndarray, noise: np.ndarray | None = None,
                    held: np.ndarray | None = None) -> np.ndarray:
        """``BinaryDiffusion.decode_last``: P(note) -> notes (B, C, P, L) float32 {0, 1}."""
        sc = self.sampling
        if sc.decode != "count":
            return (p >= sc.threshold).astype(np.float32)
        temp = sc.temperature if noise is not None else ()
        x = decode_count(p, known, sc.min_note, temp, noise)
        for c in (i for i, on in enumerate(sc.line) if on and i < x.shape[1]):
            pc = np.where(known[:, c], ctx[:, c].astype(np.float32), p[:, c])
            free = pitched_open(known, c)
            f = sc.line_starts if sc.line_starts_free is None else sc.line_starts_free
            starts = np.where(free, np.float32(f), np.float32(sc.line_starts))
            rows = diatonic_rows(pc) | ~free[:, None] if sc.line_scale else None
            tc = temp[c] if c < len(temp) else 0.0
            x[:, c] = decode_line(pc, known[:, c].all(1), starts, sc.line_sounding,
                                  sc.min_note[c] if c < len(sc.min_note) else 0, rows=rows,
                                  temperature=tc, noise=noise[:, c] if tc > 0 else None,
                                  repeat=getattr(sc, "line_repeat", 0.0))
        for c, a in enumerate(getattr(sc, "join", ())):
            if a > 0 and c < x.shape[1]:
                x[:, c] = join_gaps(x[:, c] > 0, (p if held is None else held)[:, c], ~known[:, c], a, sc.join_gap)
        return x


def match_mass(p: np.ndarray, p_ref: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``diffusion.match_mass`` in numpy: P scaled on each (window, channel)'s missing cells to ``p_ref``'s sum there."""
    free = (~np.asarray(known, dtype=bool)).astype(np.float32)
    B, C = p.shape[:2]
    ratio = (p_ref * free).reshape(B, C, -1).sum(-1) / np.maximum((p * free).reshape(B, C, -1).sum(-1), np.float32(1e-6))
    return np.where(known, p, np.minimum(p * ratio[..., None, None].astype(np.float32), np.float32(1.0)))


def join_gaps(x: np.ndarray, p: np.ndarray, free: np.ndarray, alpha: float, max_gap: int = 2) -> np.ndarray:
    """Notes ``x`` (..., P, L) bool with short breaks closed: a gap of 1 .. ``max_gap`` open (``free``) steps
    between two of a row's notes is filled where P in the gap stays >= ``alpha`` x the smaller P at its two
    edges, so one held note whose P dips is not played as two (the count decoder keeps the likeliest cells and
    can leave such holes); a re-attack, where P falls in the gap, keeps its break. Returns float32 {0, 1}."""
    x = np.asarray(x, dtype=bool)
    out = x.copy()
    L = x.shape[-1]
    for g in range(1, int(max_gap) + 1):
        n = L - g - 1
        if n <= 0:
            break
        ok = x[..., :n] & x[..., g + 1:]
        low = p[..., 1:1 + n]
        for k in range(1, g + 1):
            ok &= ~x[..., k:k + n] & free[..., k:k + n]
            low = np.minimum(low, p[..., k:k + n])
        ok &= low >= alpha * np.minimum(p[..., :n], p[..., g + 1:])
        for k in range(1, g + 1):
            out[..., k:k + n] |= ok
    return out.astype(np.float32)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-z.astype(np.float32)))).astype(np.float32)


def cosine_abar(t: np.ndarray, s: float = 0.008) -> np.ndarray:
    """``diffusion.cosine_abar``: share of x0 kept at time t in [0, 1]."""
    t = np.asarray(t, dtype=np.float32)
    f = np.cos((t + np.float32(s)) / np.float32(1 + s) * np.float32(math.pi / 2)) ** 2
    return np.clip(f / np.float32(math.cos(s / (1 + s) * math.pi / 2) ** 2), 0.0, 1.0).astype(np.float32)


def posterior(x_t, p0, ab_t, ab_s, r) -> np.ndarray:
    """``BinaryDiffusion.posterior``: P(x_s = 1 | x_t, x0 ~ Bernoulli(p0)) for s < t."""
    a = np.clip(ab_t / np.maximum(ab_s, np.float32(1e-12)), 0, 1)
    p1 = p0 * ab_s + r * (1 - ab_s)
    like1 = np.where(x_t > 0, a + r * (1 - a), (1 - a) * (1 - r))
    like0 = np.where(x_t > 0, r * (1 - a), 1 - r * (1 - a))
    num = like1 * p1
    return np.clip(num / np.maximum(num + like0 * (1 - p1), np.float32(1e-12)), 0, 1).astype(np.float32)


def gumbel(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """``diffusion.gumbel``: standard Gumbel noise, float32."""
    u = np.clip(rng.random(shape, dtype=np.float32), np.float32(1e-10), np.float32(1 - 1e-7))
    return (-np.log(-np.log(u))).astype(np.float32)


def gumbel_rank(v: np.ndarray, noise: np.ndarray, temperature) -> np.ndarray:
    """``diffusion.gumbel_rank``: log v + temperature x noise; v <= 0 gets -inf."""
    with np.errstate(divide="ignore"):
        key = np.log(np.maximum(v, np.float32(1e-30))) + np.float32(temperature) * noise
    return np.where(v > 0, key, np.float32(-np.inf)).astype(np.float32)


def decode_count(p: np.ndarray, known: np.ndarray, min_note=(), temperature=(), noise: np.ndarray | None = None) -> np.ndarray:
    """``BinaryDiffusion.decode``: per (window, channel) the round(sum of P) likeliest unknown cells (drawn, for a
    channel with ``temperature`` > 0, by ``gumbel_rank`` on ``noise``); channel c's generated runs shorter than
    ``min_note[c]`` steps dropped. Returns float32 {0, 1}."""
    b, c, P, L = p.shape
    r = np.where(known, np.float32(0), p).reshape(b, c, P * L)
    n = np.clip(np.round(r.sum(-1)), 0, P * L).astype(np.int64)  # (B, C)
    key = r
    if noise is not None and any(v > 0 for v in temperature):
        temp = np.array([float(temperature[i]) if i < len(temperature) else 0.0 for i in range(c)],
                        dtype=np.float32).reshape(1, c, 1)
        key = np.where(temp > 0, gumbel_rank(r, noise.reshape(b, c, P * L), temp), r)
    kth = np.empty((b, c, 1), dtype=key.dtype)  # the n-th largest key per (window, channel)
    for i, j in np.ndindex(b, c):
        m = max(int(n[i, j]) - 1, 0)
        kth[i, j, 0] = np.partition(key[i, j], P * L - 1 - m)[P * L - 1 - m]
    x = ((key >= kth) & (n > 0)[..., None] & (r > 0)).reshape(b, c, P, L)
    for ch, m in enumerate(min_note):  # drop runs shorter than m steps (a morphological opening in time)
        if ch < c and m > 1 and L >= m:
            x[:, ch] = _opening(x[:, ch], m)
    return x.astype(np.float32)


def _opening(x: np.ndarray, m: int) -> np.ndarray:
    """(..., L) bool: the steps covered by a run of at least m steps that are all on."""
    L = x.shape[-1]
    cs = np.concatenate([np.zeros(x.shape[:-1] + (1,), np.int64), np.cumsum(x, -1)], -1)
    full = (cs[..., m:] - cs[..., :L - m + 1]) == m  # (..., L - m + 1): window starting there fully on
    cf = np.concatenate([np.zeros(x.shape[:-1] + (1,), np.int64), np.cumsum(full, -1)], -1)
    j = np.arange(L)
    hi = np.minimum(j, L - m) + 1  # windows starting at j - m + 1 .. j (within range) cover step j
    lo = np.maximum(j - m + 1, 0)
    return (cf[..., hi] - cf[..., lo]) > 0


def pitched_open(known: np.ndarray, c: int) -> np.ndarray:
    """``diffusion.pitched_open``: (B,) windows where a pitched channel other than ``c`` has cells to fill."""
    others = [i for i in range(1, known.shape[1]) if i != c]
    if not others:
        return np.zeros(known.shape[0], dtype=bool)
    return (~known[:, others]).reshape(known.shape[0], -1).any(1)


_DIATONIC = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], dtype=bool)


def diatonic_rows(p: np.ndarray) -> np.ndarray:
    """``diffusion.diatonic_rows``: (B, P, L) -> (B, P) bool, the rows of the diatonic scale holding most of P."""
    B, P, _ = p.shape
    pc = np.arange(P) % 12
    hist = np.zeros((B, 12), dtype=np.float32)
    rows = p.sum(-1)
    for i in range(P):  # in row order, as torch's index_add_
        hist[:, pc[i]] += rows[:, i]
    sets = np.stack([np.roll(_DIATONIC, k) for k in range(12)])  # (12 scales, 12 pitch classes)
    best = (hist @ sets.astype(np.float32).T).argmax(1)
    return sets[best][:, pc]


def decode_line(p: np.ndarray, known_steps: np.ndarray, starts, sounding: float = 0.3, min_note: int = 0,
                rows: np.ndarray | None = None, temperature: float = 0.0, noise: np.ndarray | None = None,
                repeat: float = 0.0, onsets: np.ndarray | None = None) -> np.ndarray:
    """``diffusion.decode_line`` in numpy (its docstring has the method): p (B, P, L) with the known cells set
    to the context; known_steps (B, L); ``starts`` a float or (B,). ``onsets`` (B, L) bool: the note starts
    to play, instead of the likeliest ``starts`` x the rise (the known notes' starts are added; ``starts`` is then
    unused). Returns (B, P, L) float32 {0, 1}."""
    B, P, L = p.shape
    kn = np.asarray(known_steps, dtype=bool)
    prev = np.concatenate([np.zeros((B, P, 1), np.float32), p[..., :-1]], -1)
    up = p - prev
    rise = np.maximum(up, 0).sum(1).astype(np.float32)  # (B, L)
    padded = np.pad(rise, ((0, 0), (1, 1)))
    left, mid, right = padded[:, :-2], padded[:, 1:-1], padded[:, 2:]
    peak = (rise >= np.maximum(np.maximum(left, mid), right)) & (rise > 0)
    peak &= ~np.concatenate([np.zeros((B, 1), bool), peak[:, :-1]], -1)  # a flat top counts once
    mass = np.where(peak & ~kn, (left + mid + right) / np.float32(3) * np.float32(3), np.float32(0))
    starts = np.asarray(starts, dtype=np.float32)
    n = np.clip(np.round(np.where(kn, np.float32(0), rise).sum(-1) * starts), 0, L).astype(np.int64)
    n = np.broadcast_to(n, (B,))
    desc = -np.sort(-mass, axis=-1)
    kth = np.take_along_axis(desc, np.maximum(n - 1, 0)[:, None], -1)
    known_start = kn & (up > 0.5).any(1)
    if onsets is not None:
        onset = (np.asarray(onsets, dtype=bool) & ~kn) | known_start
    else:
        onset = ((mass >= kth) & (mass > 0) & (n > 0)[:, None]) | known_start
    seg = np.cumsum(onset, -1)  # note index of every step; 0 before the first start
    t = np.broadcast_to(np.arange(L), (B, L))
    first = np.maximum.accumulate(np.where(onset, t, -1), axis=-1)  # each step's note's start step (-1: none)
    has = first >= 0
    firsts = np.maximum(first, 0)

    def at_start(v: np.ndarray) -> np.ndarray:  # the value of v at the start of each step's note (0: none)
        return np.where(has, np.take_along_axis(v, firsts, -1), 0)

    stops = np.cumsum((p.sum(1) < sounding) & ~onset, -1)
    alive = (seg > 0) & ((t - at_start(t) < max(1, min_note)) | (stops == at_start(stops)))
    mass_p = np.zeros((B, L + 1, P), dtype=np.float32)
    vals = (p * alive[:, None, :]).transpose(0, 2, 1)  # (B, L, P)
    np.add.at(mass_p.reshape(B * (L + 1), P), (seg + (L + 1) * np.arange(B)[:, None]).ravel(), vals.reshape(-1, P))
    if rows is not None:
        mass_p = np.where(np.asarray(rows, dtype=bool)[:, None, :], mass_p, np.float32(-1.0))
    if temperature > 0 and noise is not None:
        g = np.pad(noise.transpose(0, 2, 1), ((0, 0), (1, 0), (0, 0)))  # (B, L + 1, P): note k reads step k - 1
        floor = np.where(mass_p < 0, np.float32(-2e30), np.float32(-1e30))
        with np.errstate(divide="ignore"):
            mass_p = np.where(mass_p > 0, np.log(np.maximum(mass_p, np.float32(1e-30))) + np.float32(temperature) * g,
                              floor).astype(np.float32)
    best = mass_p.argmax(-1)  # (B, L + 1)
    if repeat > 0 and not (temperature > 0 and noise is not None):
        top = mass_p.max(-1)
        rows_b = np.arange(B)
        for k in range(2, int(seg.max()) + 1 if seg.size else 0):
            again = best[:, k] == best[:, k - 1]
            if not again.any():
                continue
            m = mass_p[:, k].copy()
            m[rows_b, best[:, k - 1]] = -np.inf
            second, m2 = m.argmax(-1), m.max(-1)
            best[:, k] = np.where(again & (top[:, k] > 0) & (m2 >= np.float32(repeat) * top[:, k]), second, best[:, k])
    pitch = np.take_along_axis(best, seg, -1)  # (B, L)
    next_onset = np.concatenate([onset[:, 1:], np.zeros((B, 1), bool)], -1)
    next_pitch = np.concatenate([pitch[:, 1:], np.full((B, 1), -1)], -1)
    alive &= ~(next_onset & (next_pitch == pitch))
    x = np.zeros((B, P, L), dtype=np.float32)
    bi, ti = np.nonzero(alive)
    x[bi, pitch[bi, ti], ti] = 1.0
    return x


# --- loading -----------------------------------------------------------------

def onnx_logits(onnx_file: str | os.PathLike, n_threads: int | None = None) -> LogitsFn:
    """(planes, t) -> logits by onnxruntime: ``CHUNK`` windows a call, each call on one thread, ``n_threads``
    (default ``threads()``) calls at once."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(onnx_file), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own kinds for a bad file
        raise ModelError(f"{onnx_file}: cannot load with onnxruntime ({type(e).__name__}: {str(e).splitlines()[0]})") from e
    workers = n_threads or threads()

    def run(chunk: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        return session.run(None, {"planes": chunk[0], "t": chunk[1]})[0]

    def logits(planes: np.ndarray, t: np.ndarray) -> np.ndarray:
        planes = np.ascontiguousarray(planes, dtype=np.float32)
        t = np.ascontiguousarray(t, dtype=np.float32)
        # at most CHUNK windows a call, and as many calls per thread (a pass of 18 windows on two threads:
        # six calls of 3, not four of 4 and one of 2 that a thread runs alone)
        n_chunks = workers * math.ceil(len(planes) / (workers * CHUNK))
        chunks = [c for c in zip(np.array_split(planes, n_chunks), np.array_split(t, n_chunks)) if len(c[0])]
        n = min(workers, len(chunks))
        if n > 1:
            with ThreadPoolExecutor(n) as pool:
                return np.concatenate(list(pool.map(run, chunks)))
        return np.concatenate([run(c) for c in chunks])

    return logits


def _weights_dir(path: Path) -> Path:
    return path if path.is_dir() else path.parent


def read_config(path: str | os.PathLike) -> dict:
    """The config.json of a model folder (or of the folder of a weights file), in the "sampling" layout."""
    p = Path(path)
    cfg_path = _weights_dir(p) / "config.json"
    if not p.exists():
        raise ModelError(f"{p}: no such model file or folder")
    if not cfg_path.exists():
        raise ModelError(f"{p}: no config.json beside the weights")
    try:
        return split_sampling(json.loads(cfg_path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise ModelError(f"{cfg_path}: corrupt config ({type(e).__name__}: {e})") from e


def load_onnx_model(path: str | os.PathLike, n_threads: int | None = None) -> OnnxModel:
    """The model at ``path`` (folder or weights file with config.json and model.onnx beside it) on onnxruntime."""
    p = Path(path)
    cfg = read_config(p)
    where = _weights_dir(p) / "config.json"
    try:
        unet = cfg["unet"]
        dcfg = DiffusionConfig(**cfg["diffusion"])
        scfg = SamplingConfig(**cfg["sampling"])
        ccfg = ControlConfig(**cfg["controls"]) if cfg.get("controls") else None
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{where}: bad model config ({type(e).__name__}: {e})") from e
    have = {"n_pitches": unet.get("n_pitches", N_PITCHES), "bass_low": dcfg.bass_low, "guitar_low": dcfg.guitar_low}
    grid = {"n_pitches": N_PITCHES, "bass_low": BASS_LOW, "guitar_low": GUITAR_LOW}
    bad = [f"{k} {v} (model) vs {grid[k]} (this stemfill)" for k, v in have.items() if v != grid[k]]
    if bad:
        raise ModelError(f"{where}: a model of another pitch grid ({'; '.join(bad)})")
    control_planes = int(unet.get("control_planes", 0))
    return OnnxModel(dcfg, scfg, int(unet.get("context_planes", 0)), control_planes,
                     ccfg if control_planes else None, onnx_logits(onnx_path(p), n_threads), p)


def onnx_unsupported(path: str | os.PathLike, controls: bool = False, candidates: int | None = None) -> str | None:
    """Why the model at ``path`` cannot fill on onnxruntime as asked (None: it can)."""
    p = Path(path)
    if p.suffix == ".pt" or (p.is_dir() and not (p / "model.safetensors").exists()):
        return "a training checkpoint (export its model folder with `stemfill export-onnx`)"
    if not onnx_path(p).exists():
        return f"no {onnx_path(p).name} beside the weights (write one with `stemfill export-onnx`)"
    if controls:
        return "controls are steered with torch"
    cfg = read_config(p)
    objective = cfg["diffusion"].get("objective", "bernoulli")
    if objective != "bernoulli":
        return f"the {objective} objective"
    k = int(candidates if candidates is not None else cfg["sampling"].get("candidates", 1))
    if k != 1:
        return f"{k} candidates per window"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "onnxruntime is not installed"
    return None


def check_engine(engine: str | None) -> str:
    """The engine asked for (None: ``STEMFILL_ENGINE``, else auto), lower-cased; StemfillError if unknown."""
    name = (engine or os.environ.get(ENGINE_ENV) or "auto").lower()
    if name not in ENGINES:
        raise StemfillError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")
    return name


def load_fill_model(path: str | os.PathLike, engine: str | None = None, controls: bool = False,
                    candidates: int | None = None):
    """The model ``fill.fill_song`` runs for this request: an ``OnnxModel`` or a torch ``BinaryDiffusion``
    (``engine``: auto, onnx or torch; None: ``STEMFILL_ENGINE``, else auto). ``engine="onnx"`` where it cannot
    fill as asked is a StemfillError with the reason."""
    engine = check_engine(engine)
    if engine != "torch":
        why = onnx_unsupported(path, controls, candidates)
        if why is None:
            return load_onnx_model(path)
        if engine == "onnx":
            raise StemfillError(f"{path}: cannot fill with onnxruntime: {why}")
    from stemfill.pianoroll.model import load_model

    return load_model(path)


def engine_name(model) -> str:
    """"onnx" or "torch": which engine a model from ``load_fill_model`` runs on."""
    return getattr(model, "engine", "torch")
