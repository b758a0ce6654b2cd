"""Fill missing stems: chunk batches (``fill_chunks``) and whole songs (``fill_song``).

Whole songs are cut into windows of ``WINDOW`` steps filled in two batched passes::

    pass 1:  [====W====]          [====W====]          [====W====] ...   (independent, one batch)
    pass 2:        [ o |  new  | o ]    [ o |  new  | o ]              (one batch)

Pass 1 fills windows spaced ``WINDOW + gap`` apart; pass 2 fills each gap with a window
that overlaps ``OVERLAP`` already-written steps on *both* sides, given to the model as
known cells (the known mask is a full (channel, pitch, time) plane). Every window of
a pass is independent, so a pass is one batched sampling loop: a 3-minute song costs
two loops of ~15 windows each instead of ~45 sequential windows. The shipped model was trained
with spans removed as well as whole stems (``train --span-prob``), the mask these windows have; with
the model's ``partial_mass`` on, the sampler also gives such a window's missing cells the P mass of a
wholly missing stem (``BinaryDiffusion.partial_mass``; bench/seams.py).
The song is padded at the end with known silence, so a song shorter than a window works.

``candidates=K`` (default: ``model.sampling.candidates``) samples every window K times
and keeps, per window, one candidate. ``select="mbr"`` (default) keeps the minimum-Bayes-risk
choice: the candidate whose generated cells agree best (mean F1) with the other K - 1, i.e.
the fill closest to what the model usually plays there, which is what the agreement metrics
reward. ``select="score"`` keeps the best self-consistency score instead (the model's
likelihood proxy, ``BinaryDiffusion.score``; costs extra forward passes).

``chain_pitched`` (a ``model.sampling`` setting; the shipped model has it on): where a window misses both
bass and guitar, the bass of the joint fill is kept and the guitar is filled again given it. With
only drums known, a one-step fill draws the two parts independently, and they rarely share a key.
That second pass samples with ``model.sampling.chain_guidance`` (the shipped 2.0: classifier-free
guidance on the context, so the guitar follows the new bass more closely; docs/model-card.md says
how it was chosen) unless the caller passes ``guidance``, which then holds for both passes.

The model is a torch ``BinaryDiffusion`` or an ``fast.OnnxModel`` (the network on onnxruntime, the sampler in
numpy; ``fast.load_fill_model`` picks one): the windows, passes and song side here are the same for both, and
torch is imported only where a torch model runs.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from stemfill.errors import StemfillError
from stemfill.generate.controls import StemControls, control_planes, drum_targets
from stemfill.generate.decoder import DrumDecoder, decode_roll_drums, drum_decoder_for
from stemfill.generate.plan import grid_bars, song_bars
from stemfill.generate.units import BAR as UNIT_BAR
from stemfill.pianoroll.fast import engine_name
from stemfill.pianoroll.key import check_key_request, chosen_key, fit_key, key_is_free, other_tracks_key
from stemfill.song.bars import bar_span
from stemfill.pianoroll.grid import CHANNEL, WINDOW
from stemfill.pianoroll.roll import decode_stem, encode, encode_context, n_steps, new_track, ticks_to_step
from stemfill.song.song import STEMS, Song, Track
from stemfill.song.stems import classify_song

if TYPE_CHECKING:  # torch is imported where the torch engine runs (fast.py has the other one)
    import torch

OVERLAP = 48  # known steps on each side of a pass-2 window
BATCH = 32  # windows per forward pass


def _on_onnx(model) -> bool:
    return engine_name(model) == "onnx"


def _inference(fn):
    """Run ``fn(model, ...)`` under ``torch.inference_mode`` where the model is a torch one."""

    @functools.wraps(fn)
    def run(model, *args, **kwargs):
        if _on_onnx(model):
            return fn(model, *args, **kwargs)
        import torch

        model.eval()
        with torch.inference_mode():
            return fn(model, *args, **kwargs)

    return run


def _generator(model, seed: int):
    """The sampler's random source: numpy's for the onnxruntime engine, a CPU torch.Generator for torch."""
    if _on_onnx(model):
        return np.random.default_rng(int(seed))
    import torch

    return torch.Generator().manual_seed(int(seed))


def _known_full(known: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    k = np.asarray(known, dtype=bool)
    if k.ndim == 2:
        k = k[:, :, None, None]
    elif k.ndim == 3:
        k = k[:, :, None, :]
    return np.broadcast_to(k, shape)


def consensus(x: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
    """Minimum-Bayes-risk score of K candidates per window: x, free (N, K, D) bool -> (N, K), each
    candidate's mean F1 of its generated cells against the other K - 1 candidates' (higher = closer to
    what the model usually plays here). With K = 2 the two scores tie and the first is kept: MBR needs
    K >= 3."""
    import torch

    g = (x & free).float()
    inter = g @ g.transpose(1, 2)  # (N, K, K) shared cells
    size = g.sum(-1)
    f1 = 2 * inter / (size[:, :, None] + size[:, None, :]).clamp_min(1.0)
    both_empty = (size[:, :, None] == 0) & (size[:, None, :] == 0)
    f1 = torch.where(both_empty, torch.ones_like(f1), f1)
    k = x.shape[1]
    return (f1.sum(-1) - f1.diagonal(dim1=1, dim2=2)) / max(1, k - 1)


def _sample_windows(model, ctx: np.ndarray, known: np.ndarray, steps, generator, guidance, candidates: int,
                    batch: int, select: str = "mbr", other: np.ndarray | None = None,
                    controls: np.ndarray | None = None, probs: list | None = None,
                    advance: Callable[[int], None] | None = None, seed: int = 0,
                    unit_bars: np.ndarray | None = None) -> np.ndarray:
    """Fill a stack of windows (N, 3, P, L). With the model's ``chain_pitched`` on, windows missing both bass
    and guitar get the bass first (from the joint fill) and then a guitar filled given it: in one step
    the two parts are drawn independently and need not share a key. Where the model's ``units`` are on, the new
    bass's and guitar's bars are chosen among real players' (``generate.units``), the bass's before the guitar
    hears it; ``unit_bars`` (N, L // 48) says which 48-step bars of each window are bars of the song (default:
    all), ``seed`` seeds the choice. Where its ``articulation`` is on, their notes are last held as one
    articulation a window (``generate.articulation``): only lengths change, after both parts are chosen."""
    b, g = CHANNEL["bass"], CHANNEL["guitar"]
    units = unit_decoders(model, [c for c in (b, g) if not known[:, c].all()])
    got_p: list | None = probs if probs is not None or not units else []
    out = _sample_batched(model, ctx, known, steps, generator, guidance, candidates, batch, select, other, controls,
                          got_p, advance)
    both = ~known[:, b].all(axis=(1, 2)) & ~known[:, g].all(axis=(1, 2))
    chained = both if model.sampling.chain_pitched else np.zeros(len(out), dtype=bool)
    if units:
        p = np.concatenate(got_p)
        for c, u in units.items():
            now = ~chained if c == g else np.ones(len(out), dtype=bool)  # a chained guitar is played again below
            _decode_units(u, c, out, known, p[:, c], other, unit_bars, seed, now)
    if not chained.any():
        return _articulate_all(model, out, known)
    k2 = known[chained].copy()
    k2[:, b] = True  # the bass just written is now context
    c2 = np.where(k2, out[chained], False)
    g2 = model.sampling.chain_guidance if guidance is None else guidance
    got: list | None = [] if got_p is not None else None
    out[chained] = _sample_batched(model, c2, k2, steps, generator, g2, candidates, batch, select,
                                   None if other is None else other[chained],
                                   None if controls is None else controls[chained], probs=got, advance=advance)
    if got:  # the guitar's P is the chained pass's, which played it
        p_all = np.concatenate(got_p)
        p_all[np.flatnonzero(chained), g] = np.concatenate(got)[:, g]
        got_p[:] = [p_all]
        if g in units:
            _decode_units(units[g], g, out, known, p_all[:, g], other, unit_bars, seed, chained)
    return _articulate_all(model, out, known)


@dataclass
class Units:
    """One stem's unit decoder of a model (``generate.units``): its library, critic and settings."""

    library: "UnitLibrary"
    critic: object | None
    config: "UnitConfig"


def unit_decoders(model, channels=None) -> dict[int, Units]:
    """The model's unit decoders by channel (of ``channels``, default all): those its ``sampling.units`` turns on
    and its folder has a library for (``<stem>-patterns.npz``; a critic ``<stem>-critic.npz`` where there is
    one)."""
    from dataclasses import replace

    from stemfill.generate.critic import get_critic, model_folder
    from stemfill.generate.units import DEFAULTS, get_library

    on = tuple(getattr(model.sampling, "units", ()))
    folder = model_folder(model)
    out: dict[int, Units] = {}
    for stem, cfg in DEFAULTS.items():
        c = CHANNEL[stem]
        if (channels is not None and c not in channels) or c >= len(on) or not on[c] \
                or (lib := get_library(folder, stem)) is None:
            continue
        try:
            cfg = replace(cfg, **dict(getattr(model.sampling, "unit_config", {}).get(stem, {})))
        except TypeError as e:
            raise StemfillError(f"{folder}: config.json's sampling.unit_config[{stem!r}]: {e}") from None
        out[c] = Units(lib, get_critic(folder, stem), cfg)
    return out


def _decode_units(units: Units, c: int, out: np.ndarray, known: np.ndarray, p: np.ndarray,
                  other: np.ndarray | None, unit_bars: np.ndarray | None, seed: int, which: np.ndarray) -> None:
    """Channel ``c`` of the windows ``which`` of ``out`` (N, 3, P, L; in place) played by
    ``generate.units.decode_units`` in the 48-step bars that are wholly unknown (and bars of the song,
    ``unit_bars``)."""
    from stemfill.generate.units import BAR, decode_units

    N, _, P, L = out.shape
    nb = L // BAR
    taken = known[:, c, :, :nb * BAR].any(axis=1).reshape(N, nb, BAR).any(axis=-1)  # a bar with a known step
    for i in np.flatnonzero(which):
        open_ = ~taken[i] if unit_bars is None else ~taken[i] & unit_bars[i]
        if open_.any():
            rng = np.random.default_rng([int(seed), int(i), c, 104729])
            out[i, c] = decode_units(units.library, units.critic, units.config, out[i], c, p[i], open_, rng,
                                     None if other is None else other[i])


def articulation_models(model, channels=None) -> dict:
    """The model's articulation models by channel (of ``channels``, default all): those its
    ``sampling.articulation`` turns on and its folder holds (``generate.articulation``:
    ``<stem>-articulation.json``)."""
    from stemfill.generate.articulation import get_articulation
    from stemfill.generate.critic import model_folder

    on = tuple(getattr(model.sampling, "articulation", ()))
    folder = model_folder(model)
    out = {}
    for stem in ("bass", "guitar"):
        c = CHANNEL[stem]
        if (channels is None or c in channels) and c < len(on) and on[c] \
                and (m := get_articulation(folder, stem)) is not None:
            out[c] = m
    return out


def _articulate_all(model, out: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``out`` (N, 3, P, L; in place) with the new bass's and guitar's notes, in the steps where they are
    unknown, held as the model's articulation models say (``generate.articulation``)."""
    for c, m in articulation_models(model, [c for c in range(3) if not known[:, c].all()]).items():
        free = ~known[:, c].any(axis=1)  # (N, L)
        for i in np.flatnonzero(free.any(axis=1)):
            out[i, c] = m.apply(out[i, c], free[i])
    return out


def _n_chained(model, known: np.ndarray) -> int:
    """How many of these windows (N, 3, P, L) ``_sample_windows`` fills a second time (``chain_pitched``)."""
    if not model.sampling.chain_pitched:
        return 0
    return int((~known[:, CHANNEL["bass"]].all(axis=(1, 2)) & ~known[:, CHANNEL["guitar"]].all(axis=(1, 2))).sum())


def _sample_batched(model, ctx: np.ndarray, known: np.ndarray, steps, generator, guidance, candidates: int,
                    batch: int, select: str = "mbr", other: np.ndarray | None = None,
                    controls: np.ndarray | None = None, probs: list | None = None,
                    advance: Callable[[int], None] | None = None) -> np.ndarray:
    """Fill a stack of windows (N, 3, P, L) in batches; with candidates > 1 keep one of K per window (``select``).
    ``other``: the windows' context planes (N, context_planes, P, L), for a model that hears them;
    ``controls``: their control planes (N, control_planes, P, L), for a model that has controls; ``probs``: a list
    that gets the last-step P (N, 3, P, L) where a pattern decoder needs it."""
    if select not in ("mbr", "score"):
        raise StemfillError(f"select must be 'mbr' or 'score', got {select!r}")
    if _on_onnx(model):
        return _sample_onnx(model, ctx, known, steps, generator, guidance, candidates, batch, other, controls, probs,
                            advance)
    import torch

    dev = model.r.device
    out = np.empty_like(ctx)
    per = max(1, batch // max(1, candidates))
    for i in range(0, len(ctx), per):
        c = torch.from_numpy(np.ascontiguousarray(ctx[i:i + per]))
        k = torch.from_numpy(np.ascontiguousarray(known[i:i + per]))
        o = torch.from_numpy(np.ascontiguousarray(other[i:i + per])) if other is not None else None
        q = torch.from_numpy(np.ascontiguousarray(controls[i:i + per])) if controls is not None else None
        n = len(c)
        if candidates > 1:
            c, k = c.repeat_interleave(candidates, 0), k.repeat_interleave(candidates, 0)
            o = o.repeat_interleave(candidates, 0) if o is not None else None
            q = q.repeat_interleave(candidates, 0) if q is not None else None
        got: list = []
        x = model.sample(c.to(dev), k.to(dev), steps=steps, generator=generator, guidance=guidance, other=o,
                         controls=q, probs=got if probs is not None else None)
        if probs is not None:
            pk = got[0] if got else np.zeros(tuple(x.shape), np.float32)
            probs.append(pk.reshape(n, candidates, *pk.shape[1:])[:, 0] if candidates > 1 else pk)
        if candidates > 1:
            if select == "score":
                s = model.score(x, k.to(dev), seed=int(torch.randint(2**31, (1,), generator=generator)))
            else:
                s = consensus(x.view(n, candidates, -1), ~k.to(dev).view(n, candidates, -1))
            best = s.view(n, candidates).argmax(1).cpu()
            x = x.view(n, candidates, *x.shape[1:])[torch.arange(n), best]
        out[i:i + n] = x.cpu().numpy()
        if advance is not None:
            advance(n)
    return out


def _sample_onnx(model, ctx, known, steps, rng, guidance, candidates: int, batch: int, other, controls,
                 probs: list | None = None, advance: Callable[[int], None] | None = None) -> np.ndarray:
    """``_sample_batched`` on the onnxruntime engine (``fast.OnnxModel.sample``): one candidate, no controls."""
    if candidates != 1 or controls is not None:
        raise StemfillError("the onnxruntime engine fills one candidate without controls; use the torch engine")
    out = np.empty_like(ctx)
    for i in range(0, len(ctx), batch):
        o = other[i:i + batch] if other is not None else None
        out[i:i + batch] = model.sample(ctx[i:i + batch], known[i:i + batch], steps=steps, rng=rng,
                                        guidance=guidance, other=o, probs=probs)
        if advance is not None:
            advance(len(out[i:i + batch]))
    return out


@_inference
def fill_chunks(model, rolls: np.ndarray, known: np.ndarray, steps: int | None = None, seed: int = 0,
                guidance: float | None = None, candidates: int | None = None, batch: int = BATCH,
                select: str = "mbr", other: np.ndarray | None = None,
                controls: np.ndarray | None = None, drums: DrumDecoder | None | str = "model",
                probs: list | None = None) -> np.ndarray:
    """Fill the unknown cells of chunks. rolls: bool (N, 3, P, L); known: (N, 3), (N, 3, L) or (N, 3, P, L);
    ``other``: the chunks' context planes (N, context_planes, P, L) or None (the model hears none);
    ``controls``: control planes (N, control_planes, P, L) (``controls.control_planes``) or None (auto).

    ``drums``: the drum decoder (``generate.decoder``): "model" (default) what the model's sampling config
    says, None the cell decoder. Each chunk is 4/4 bars from its first step, one phrase. ``probs``: a list that
    gets the network's last-step P (N, 3, P, L) the decoders read (for the scripts that train critics on them).

    Returns a bool array like ``rolls`` whose known cells are the input's, bit for bit.
    """
    rolls = np.asarray(rolls, dtype=bool)
    kn = np.ascontiguousarray(_known_full(known, rolls.shape))
    g = _generator(model, seed)
    dec = drum_decoder_for(model) if drums == "model" else drums
    got: list | None = [] if dec is not None or probs is not None else None
    out = _sample_windows(model, rolls & kn, kn, steps, g, guidance, _candidates(model, candidates), batch, select,
                          other, controls if model.control_planes else None, got, seed=seed)
    if probs is not None:
        probs.append(np.concatenate(got))
    if dec is not None:
        p = np.concatenate(got)
        d = CHANNEL["drums"]
        chunk_bars = grid_bars(out.shape[-1])
        for i in range(len(out)):
            free = ~kn[i, d].all(axis=0)
            if free.any():
                tg = _drum_request(model, controls[i] if controls is not None else None, chunk_bars)
                out[i, d] = decode_roll_drums(dec, out[i, d], p[i, d], free, seed=seed * 1_000_003 + i, sections=False,
                                              other=other[i] if other is not None else None, parts=out[i, 1:],
                                              targets=tg)
    return np.where(kn, rolls, out)


def _drum_request(model, planes: np.ndarray | None, bars: list):
    """The drums' request in control planes (``controls.drum_targets``) for the pattern decoder, or None."""
    if planes is None or not model.control_planes or model.controls is None:
        return None
    return drum_targets(planes, model.controls, bars)


def _candidates(model, candidates: int | None) -> int:
    k = int(model.sampling.candidates if candidates is None else candidates)
    if k < 1:
        raise StemfillError(f"candidates must be >= 1, got {k}")
    return k


def window_plan(T: int, window: int = WINDOW, overlap: int = OVERLAP) -> tuple[int, list[int], list[int]]:
    """(padded length, pass-1 window starts, pass-2 window starts) covering T steps."""
    gap = window - 2 * overlap
    if gap <= 0:
        raise ValueError(f"overlap {overlap} must be less than half the window {window}")
    period = window + gap
    n = max(0, math.ceil((T - window) / period))
    return n * period + window, [k * period for k in range(n + 1)], [k * period + window - overlap for k in range(n)]


def gap_steps(T: int, window: int = WINDOW, overlap: int = OVERLAP) -> np.ndarray:
    """(T,) bool: the steps a second-pass window fills (between first-pass windows, outside the overlaps)."""
    T_pad, _, pass2 = window_plan(T, window, overlap)
    gap = np.zeros(T_pad, dtype=bool)
    for s in pass2:
        gap[s + overlap:s + window - overlap] = True
    return gap[:T]


@_inference
def fill_roll(model, roll: np.ndarray, known: np.ndarray, steps: int | None = None, seed: int = 0,
              guidance: float | None = None, candidates: int | None = None, window: int = WINDOW,
              overlap: int = OVERLAP, batch: int = BATCH, other: np.ndarray | None = None,
              controls: np.ndarray | None = None, drums: DrumDecoder | None | str = "model",
              bars: list | None = None, fill_bars: list[int] | None = None,
              progress: Callable[[int, int], None] | None = None, notes: list | None = None,
              rests: bool = True) -> np.ndarray:
    """Fill the unknown cells of a whole-song roll (3, P, T); known: (3, T) or (3, P, T) bool;
    ``other``: the song's context planes (context_planes, P, T) (``roll.encode_context``) or None;
    ``controls``: the song's control planes (control_planes, P, T) (``controls.control_planes``) or None.
    ``drums``: the drum decoder, as ``fill_chunks``; ``bars``: the song's bars (``generate.plan.song_bars``;
    default 4/4 from step 0) and ``fill_bars`` the bars asked to end in a fill, for the pattern decoder.
    ``progress(done, total)``: called after each batch with the windows filled so far and in all
    (a window filled twice, bass then guitar, counts twice); None: silent. ``rests``: the new bass and guitar
    rest where the model's rest models (``generate.rests``) say a player would (the drums: their plan's).
    A new bass or guitar keeps its rhythm from bar to bar where the model's ``sampling.groove`` for it is > 0
    (``generate.groove``; before the rests)."""
    roll = np.asarray(roll, dtype=bool)
    C, P, T = roll.shape
    kn = np.broadcast_to(known[:, None, :] if known.ndim == 2 else known, roll.shape)
    T_pad, pass1, pass2 = window_plan(T, window, overlap)
    R = np.zeros((C, P, T_pad), dtype=bool)
    K = np.ones((C, P, T_pad), dtype=bool)  # the padding is known silence
    R[..., :T] = roll & kn
    K[..., :T] = kn
    O = None
    if other is not None and model.context_planes:
        O = np.zeros((other.shape[0], P, T_pad), dtype=bool)
        O[..., :T] = other[..., :T]
    Q = None
    if controls is not None and model.control_planes:
        Q = np.zeros((controls.shape[0], P, T_pad), dtype=np.float32)
        Q[..., :T] = controls[..., :T]
    g = _generator(model, seed)
    candidates = _candidates(model, candidates)
    d = CHANNEL["drums"]
    dec = drum_decoder_for(model) if drums == "model" else drums
    dec = dec if dec is not None and not kn[d].all() else None
    gv = tuple(getattr(model.sampling, "groove", ()))
    grooved = [c for c in (CHANNEL["bass"], CHANNEL["guitar"]) if c < len(gv) and gv[c] > 0 and not kn[c].all()]
    # the network's P where generated, of the channels a whole-song decoder reads: the drums' pattern decoder,
    # the groove of the bass and guitar
    kept = {c: np.zeros((P, T_pad), dtype=np.float32) for c in ([d] if dec is not None else []) + grooved}
    advance = None
    if progress is not None:  # the windows of both passes, counted before the first runs
        K1, total = K.copy(), 0
        for starts in (pass1, pass2):
            todo = [s for s in starts if not K1[..., s:s + window].all()]
            if todo:
                total += len(todo) + _n_chained(model, np.stack([K1[..., s:s + window] for s in todo]))
            for s in todo:
                K1[..., s:s + window] = True
        done = [0]

        def advance(n: int) -> None:
            done[0] += n
            progress(done[0], total)

        progress(0, total)
    bar_list = bars if bars is not None else grid_bars(T)
    whole_bars = {b.start for b in bar_list if b.length == UNIT_BAR}  # where the units may play a bar
    for starts in (pass1, pass2):
        todo = [s for s in starts if not K[..., s:s + window].all()]
        if not todo:
            continue
        ctx = np.stack([R[..., s:s + window] for s in todo])
        kw = np.stack([K[..., s:s + window] for s in todo])
        ow = np.stack([O[..., s:s + window] for s in todo]) if O is not None else None
        qw = np.stack([Q[..., s:s + window] for s in todo]) if Q is not None else None
        probs: list | None = [] if kept else None
        ub = np.array([[s + j * UNIT_BAR in whole_bars for j in range(window // UNIT_BAR)] for s in todo])
        out = _sample_windows(model, ctx, kw, steps, g, guidance, candidates, batch, other=ow, controls=qw,
                              probs=probs, advance=advance, seed=seed, unit_bars=ub)
        pw = np.concatenate(probs) if probs else None
        for j, (s, o) in enumerate(zip(todo, out)):
            for c, pc in kept.items():
                pc[:, s:s + window] = np.where(~kw[j, c], pw[j, c], pc[:, s:s + window])
            R[..., s:s + window] = o
            K[..., s:s + window] = True
    if grooved:
        _groove(model, R, {c: kept[c] for c in grooved}, roll & kn, kn, other, bar_list, T)
    if rests:
        _rest_pitched(model, R, kn, O, bar_list, T)
    elif dec is not None:
        dec = dc_replace(dec, rests=None)
    if dec is not None:
        free = ~kn[d].all(axis=0)
        tg = _drum_request(model, controls, bar_list)
        if tg is not None and fill_bars:  # the caller placed the fills on the song's own bars (none asked: kept)
            tg.fill[:] = -1
        R[d, :, :T] = decode_roll_drums(dec, R[d, :, :T], kept[d][:, :T], free, bars, roll & kn, kn, other,
                                        seed=seed, forced_fills=set(fill_bars or ()), notes=notes, parts=R[1:, :, :T],
                                        targets=tg)
    return np.where(kn, roll, R[..., :T])


def _groove(model, R: np.ndarray, Pg: dict, roll: np.ndarray, kn: np.ndarray, other: np.ndarray | None,
            bars: list, T: int) -> None:
    """The new bass and guitar (R (3, P, T_pad), in place) with their rhythms kept from bar to bar
    (``generate.groove``): a change of rhythm costs the model's ``sampling.groove`` for the channel, less at a
    phrase start and nothing where the known parts show a section start. ``Pg``: {channel: its P (P, T_pad)}."""
    from stemfill.generate.groove import groove_chords, groove_line
    from stemfill.generate.plan import section_mask

    sec = section_mask(bars, roll, kn, other)
    sc = model.sampling
    for c, p in Pg.items():
        open_ = ~kn[c].all(axis=0)
        min_note = sc.min_note[c] if c < len(sc.min_note) else 0
        if c < len(sc.line) and sc.line[c]:
            R[c, :, :T] = groove_line(R[c, :, :T], p[:, :T], open_, bars, sc.groove[c], sec, sc.line_sounding,
                                      min_note, sc.line_repeat, roll[c] & kn[c])
        else:
            R[c, :, :T] = groove_chords(R[c, :, :T], p[:, :T], open_, bars, sc.groove[c], sec, min_note)


def _rest_pitched(model, R: np.ndarray, kn: np.ndarray, other: np.ndarray | None, bars: list, T: int) -> None:
    """Clear the new bass and guitar (R (3, P, T_pad), in place) in the bars where their rest models
    (``generate.rests``, beside the model's weights) say a player would rest; known cells stay."""
    from stemfill.generate.critic import model_folder
    from stemfill.generate.rests import get_rests, stem_parts

    folder = model_folder(model)
    o = other[..., :T] if other is not None else None
    for stem in ("bass", "guitar"):
        c = CHANNEL[stem]
        open_ = ~kn[c]
        if not open_.any() or (rm := get_rests(folder, stem)) is None:
            continue
        for b in np.flatnonzero(rm.rests(stem_parts(stem, R[:, :, :T], o), bars)):
            a, e = bars[b].start, min(bars[b].start + bars[b].length, T)
            R[c, :, a:e] &= ~open_[:, a:e]


def _copy_song(song: Song, tracks) -> Song:
    """The song with other tracks; tempo map, meter (implicit or written) and title as they were."""
    return dc_replace(song, tracks=tracks, tempos=list(song.tempos), time_signatures=list(song.time_signatures),
                      warnings=[])


@dataclass
class FillResult:
    """What ``fill_song`` made: the song with its new tracks, and how."""
    song: Song  # the input's tracks (a replaced stem's left out), then one new track per added stem
    added: list[Track]  # the new tracks, in the order asked
    roll: np.ndarray  # the filled roll (3, P, T)
    generated: np.ndarray  # (3, T) bool: the steps each channel generated
    key: tuple[int, bool] | None = None  # (tonic pitch class, minor) of a new bass/guitar that no bass or
    key_source: str | None = None  # guitar of the song's set: "given" (key=), "other tracks", or "model"
    engine: str = "torch"  # what ran the network: "torch" or "onnx" (onnxruntime, ``fast.py``)
    removed: list[Track] = field(default_factory=list)  # the input's tracks ``replace`` left out
    notes: list[str] = field(default_factory=list)  # what the decoder could not do as asked, one line each


def _split_tracks(song: Song, groups: dict[str, list[int]], stems: list[str], span, replace: bool):
    """The tracks to keep (copies; inside ``span`` an existing stem's notes are cleared) and the song's
    tracks by stem, re-indexed to them. Refuses to add a stem the song has, unless ``replace`` or ``span``."""
    tracks = [dc_replace(t, notes=list(t.notes)) for t in song.tracks]
    drop: set[int] = set()
    for s in stems:
        existing = [i for i in groups[s] if song.tracks[i].notes]
        if not existing:
            continue
        if span is not None:  # regenerate inside the bars: clear them, keep the rest note for note
            a, b = span
            for i in groups[s]:
                kept = []
                for n in tracks[i].notes:
                    if a <= n.start < b:
                        continue
                    if n.start < a < n.end:
                        n = dc_replace(n, duration=a - n.start)
                    kept.append(n)
                tracks[i].notes = kept
        elif replace:
            drop.update(groups[s])
        else:
            names = ", ".join(repr(song.tracks[i].name) for i in existing)
            raise StemfillError(f"song already has a {s} part (tracks: {names}); use --replace to write a new one")
    new_index = {i: j for j, i in enumerate(i for i in range(len(tracks)) if i not in drop)}
    kept_groups = {g: [new_index[i] for i in idx if i in new_index] for g, idx in groups.items()}
    return [t for i, t in enumerate(tracks) if i not in drop], kept_groups, [song.tracks[i] for i in sorted(drop)]


def fill_song(song: Song, add: list[str], model, steps: int | None = None, seed: int = 0, bars: str | None = None,
              candidates: int | None = None, replace: bool = False, guidance: float | None = None,
              key: str | None = None, follow_other: bool = True, window: int | None = None,
              overlap: int | None = None, controls: dict[str, StemControls] | None = None,
              progress: Callable[[int, int], None] | None = None,
              drums: DrumDecoder | None | str = "model", rests: bool = True) -> FillResult:
    """Add the stems ``add`` to a copy of ``song``; original tracks are untouched (see module doc).

    ``bars`` ('A-B', 'A-', 'A'): generate only inside those bars; an existing stem keeps its notes
    outside them, its notes inside are removed and the new ones go to a new track (no ``replace`` needed).
    ``replace``: an existing stem's tracks are removed and one new track is written.
    ``key`` ('E minor', 'A', ...): where neither bass nor guitar is known, move the new bass and guitar
    together into that key (``key.fit_key``). Without ``key``, a model deaf to the song's other pitched
    tracks (keys, synths, vocals) has its new parts moved into their key, where the song has any
    (``follow_other``); a model that hears them (``context_planes``) is left to follow them itself.
    ``controls``: how each added stem should play (``controls.StemControls``, e.g. from ``parse_controls``);
    stems not in it, and attributes not set, are left to the model.
    ``model``: a torch ``BinaryDiffusion`` or an onnxruntime ``fast.OnnxModel`` (``fast.load_fill_model``
    picks one); the latter hands controls and candidates > 1 to the torch model of the same folder.
    The tracks are classified into stems once, here, and the key is decided once (``FillResult.key``).
    ``progress(done, total)``: windows filled so far and in all (``fill_roll``); None: silent.
    ``drums``: the drum decoder (``generate.decoder.drum_decoder_for``): "model" (default) what the model's
    sampling config says, None the cell decoder. The pattern decoder plays the song's own bars (its meter),
    plans its phrases and sections, and takes the drums' ``fill_every`` / ``fill_bars`` as bars that must
    (or, with ``fill_every`` 0, must not) end in a fill.
    With no drums, bass or guitar to hear, a model that hears the other tracks writes from them alone.
    """
    stems = list(dict.fromkeys(add))
    if not stems:
        raise StemfillError("nothing to add: name at least one stem (--add drums/bass/guitar)")
    for s in stems:
        if s not in STEMS:
            raise StemfillError(f"unknown stem {s!r}; choose from {', '.join(STEMS)}")
    asked = {s: c for s, c in (controls or {}).items() if not c.empty()}
    if asked:
        if not model.control_planes:
            raise StemfillError("this model has no controls (density, complexity, register, fills, --like); "
                                "use a model trained with `stemfill train --controls`")
        if stray := sorted(set(asked) - set(stems)):
            raise StemfillError(f"controls given for {', '.join(stray)}, which is not being added")
    if _on_onnx(model) and (asked or _candidates(model, candidates) != 1):
        model = model.torch_model()  # steering controls and choosing among candidates run on torch
    span = bar_span(song, bars) if bars else None
    kept, groups, removed = _split_tracks(song, classify_song(song), stems, span, replace)
    work = _copy_song(song, kept)
    T = max(n_steps(song), 1)
    roll = encode(work, length=T, groups=groups)
    known = np.ones((len(STEMS), T), dtype=bool)
    if span is not None:
        a_step, b_step = (int(x) for x in ticks_to_step(np.array(span), song.resolution))
        b_step = min(max(b_step, a_step + 1), T)
    for s in stems:
        if span is None:
            known[CHANNEL[s]] = False
        else:
            known[CHANNEL[s], a_step:b_step] = False
    hears = model.context_planes > 0
    other = encode_context(work, length=T, groups=groups) if hears else None
    if not (roll & known[:, None, :]).any() and (other is None or not other.any()):
        raise StemfillError("nothing to condition on: the song has no drums, bass or guitar notes besides the "
                            f"stem(s) to add ({', '.join(stems)})"
                            + ("" if hears else ", and this model does not hear the other tracks"))
    given = check_key_request(roll, ~known, key) if key is not None else None  # fails before the model runs
    window = window or int(model.config.window)
    overlap = overlap or window // 4
    for s, c in list(asked.items()):
        if c.fill_sections:  # fills before the section changes the known parts show
            from stemfill.generate.sections import fill_bars

            asked[s] = dc_replace(c, fill_sections=False, fill_bars=tuple(fill_bars(roll, known, other)))
    planes = control_planes(asked, T, roll.shape[1]) if asked else None
    dec = drum_decoder_for(model) if drums == "model" else drums
    song_bar_list = song_bars(song, T)
    said: list[str] = []
    t_drums = model.sampling.temperature[CHANNEL["drums"]] if len(model.sampling.temperature) else 0.0
    if dec is not None and t_drums > 0:  # --temperature drums=T: how freely the pattern decoder draws its phrases
        dec = dc_replace(dec, patterns=dc_replace(dec.patterns, phrase_temperature=float(t_drums)))
    forced = None
    if dec is not None and "drums" in asked:
        c = asked["drums"]
        if c.fill_every == 0:
            dec = dc_replace(dec, plan=dc_replace(dec.plan, fill_section=0.0, fill_phrase=0.0, crash_after_fill=0.0))
        elif c.fill_every:
            forced = [b for b in range(len(song_bar_list)) if b % c.fill_every == c.fill_every - 1]
        if c.fill_bars:
            forced = sorted(set(forced or ()) | set(c.fill_bars))
    filled = fill_roll(model, roll, known, steps=steps, seed=seed, guidance=guidance, candidates=candidates,
                       window=window, overlap=overlap, other=other, controls=planes, progress=progress,
                       drums=dec, bars=song_bar_list, fill_bars=forced, notes=said, rests=rests)
    chosen, source = None, None
    if key_is_free(filled, ~known):  # new bass or guitar, and none of the song's own to follow
        if given is not None:
            chosen, source = given, "given"
        elif follow_other and not hears and (theirs := other_tracks_key(work, groups)) is not None:
            chosen, source = theirs, "other tracks"
        if chosen is not None:
            filled, _ = fit_key(filled, ~known, chosen)
        else:
            chosen, source = chosen_key(filled, ~known), "model"
    added = []
    for s in stems:
        c = CHANNEL[s]
        notes = decode_stem(filled[c] & ~known[c][None, :], s, resolution=song.resolution)
        added.append(new_track(s, notes))
    work.tracks.extend(added)
    return FillResult(work, added, filled, ~known, chosen, source if chosen is not None else None, engine_name(model),
                      removed, said)


def save_roll_pngs(panels, path: str | Path, max_width: float = 24.0) -> Path:
    """Plot [(title, roll (3, P, T), generated mask (3,)/(3, T)/(3, P, T) or None)] stacked, one PNG.
    Known notes are dark, generated notes red; channels drums/bass/guitar from bottom to top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    T = max(r.shape[-1] for _, r, _ in panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(min(max_width, 4 + T / 80), 2.6 * len(panels)), squeeze=False)
    for ax, (title, roll, new) in zip(axes[:, 0], panels):
        C, P, t = roll.shape
        img = np.ones((C * P, t, 3))
        nm = np.zeros_like(roll) if new is None else _known_full(np.asarray(new)[None], (1,) + roll.shape)[0]
        for c in range(C):
            rows = slice((C - 1 - c) * P, (C - c) * P)
            block = img[rows]
            on = roll[c][::-1]
            gen = on & nm[c][::-1]
            block[on & ~gen] = (0.15, 0.15, 0.2)
            block[gen] = (0.85, 0.1, 0.1)
        ax.imshow(img, aspect="auto", interpolation="nearest")
        for c in range(1, C):
            ax.axhline(c * P - 0.5, color="0.6", lw=0.5)
        ax.set_yticks([(C - 1 - c) * P + P / 2 for c in range(C)], STEMS[:C])
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
