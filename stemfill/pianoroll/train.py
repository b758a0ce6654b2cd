"""Train the stem-filling model on a chunk folder (``stemfill convert`` output).

One loop, top to bottom: lr -> validate / pictures / checkpoint -> batch -> loss -> clip -> step -> EMA.
``RUN/ckpt.pt`` holds everything needed to continue exactly (``resume=True``); ``RUN/model/``
is the EMA model as ``model.safetensors`` + ``config.json`` (what ``stemfill midi --model`` loads).

Several GPUs: ``torchrun --nproc_per_node N -m stemfill.cli train --data CHUNKS -o RUN``
(DDP when WORLD_SIZE > 1; ``batch`` is per process; rank 0 validates and saves).
"""

from __future__ import annotations

import json
import math
import os
import time
from copy import deepcopy
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from stemfill.errors import ModelError, StemfillError
from stemfill.generate.controls import N_CONTROL_PLANES, ControlConfig, fit_quantiles, training_planes
from stemfill.pianoroll.diffusion import (BinaryDiffusion, DiffusionConfig, SamplingConfig, pitched_context,
                                          remove_only_channel, span_mask, subtractive_mask)
from stemfill.files import atomic_path
from stemfill.pianoroll.model import build_model, from_config, model_config, save_pretrained
from stemfill.pianoroll.grid import CHANNEL, CONTEXT_PLANES
from stemfill.pianoroll.unet import UNetConfig

PRESETS = {  # UNet sizes; the shipped model is "large" (docs/model-card.md), the CLI's --size default "default"
    "tiny": dict(channels=(8, 16), down=((2, 2),), layers=(0, 1), norm_groups=4, time_dim=32, attention=False),
    "default": dict(channels=(16, 32, 64, 96)),
    "large": dict(channels=(24, 48, 96, 128), layers=(1, 1, 1, 1)),
}


@dataclass
class TrainConfig:
    data: str = ""
    out: str = "runs/stemfill"
    size: str = "default"  # UNet preset (PRESETS)
    objective: str = "bernoulli"
    steps: int = 20000
    batch: int = 32
    lr: float = 4e-4
    weight_decay: float = 0.02
    warmup: int = 500
    min_lr_ratio: float = 0.1  # cosine decays to lr * this
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    val_every: int = 500
    val_chunks: int = 256
    ckpt_every: int = 1000
    sample_every: int = 2000
    log_every: int = 50
    augment: int = 5  # pitch shift of bass+guitar by -k..k semitones (0 = off); drums never shift
    key_prior: bool = False  # shift only samples whose known cells hold bass or guitar notes (pitched_context):
    # where only drums are known the model then learns the corpus's keys, not a key-blind average
    span_prob: float = 0.0  # share of samples whose removed stems are known before/after a span (span_mask)
    cond_drop: float = 0.1
    context: bool = True  # hear the song's other tracks (keys, strings, vocals...): context planes as input
    context_drop: float = 0.3  # share of samples trained without them (tabs and songs that have none)
    controls: bool = False  # read control planes (generate/controls.py): the real part's attributes, each given sometimes
    control_given: float = 0.5  # share of target stems' attributes given in training (the rest: auto)
    groove_given: float = 0.25  # share given their groove
    control_scale: float = 10.0  # the control planes' input multiplier (UNetConfig.control_scale)
    init_from: str = ""  # start from this model's weights (new context/control inputs start at zero); "" = fresh
    max_remove: int = 2  # stems removed per sample: 1..max_remove (3: all three, the song's other tracks as context)
    precision: str = "fp32"  # "fp32", or "bf16": the forward pass under bf16 autocast (weights, optimizer and loss in fp32)
    remove_only: str = ""  # "" = subtractive training over any 1-2 stems; a stem name = the paper's per-stem model
    device: str = "auto"
    max_chunks: int = 0  # use at most this many training chunks (0 = all); for smoke tests


# --- data ----------------------------------------------------------------------------

def estimate_density(rolls: np.ndarray) -> tuple[float, ...]:
    """Per-channel share of ones, over the chunks where that channel has notes (what a target looks like)."""
    out = []
    for c in range(rolls.shape[1]):
        ch = rolls[:, c]
        has = ch.any(axis=(1, 2))
        out.append(float(ch[has].mean()) if has.any() else 0.02)
    return tuple(round(min(max(d, 1e-3), 0.5), 5) for d in out)


def _shift_planes(batch: np.ndarray, shifts: np.ndarray, channels) -> np.ndarray:
    """Move the pitch rows of ``channels`` of sample i up by shifts[i] semitones; drop what falls off."""
    out = batch.copy()
    for i, s in enumerate(shifts):
        if s == 0:
            continue
        out[i, channels] = 0
        if s > 0:
            out[i, channels, s:] = batch[i, channels, :-s]
        else:
            out[i, channels, :s] = batch[i, channels, -s:]
    return out


def shift_rows(batch: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Shift the bass and guitar rows of sample i by shifts[i] semitones; drop what falls off."""
    return _shift_planes(batch, shifts, [CHANNEL["bass"], CHANNEL["guitar"]])


def shift_context(other: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Shift every context plane of sample i by shifts[i] semitones (as ``shift_rows`` the bass and guitar)."""
    return _shift_planes(other, shifts, list(range(other.shape[1])))


def training_batch(rolls: np.ndarray, cfg: TrainConfig, rng: np.random.Generator,
                   only: int | None = None, other: np.ndarray | None = None):
    """One subtractive-training batch on the CPU: (x0, known), known (B, C), or (B, C, L) with ``span_prob``;
    with ``other`` (the chunks' context planes) also the context, shifted with the bass and guitar.

    Removes 1..max_remove stems (subtractive_mask), with ``span_prob`` over a span only (span_mask), and
    pitch-shifts bass and guitar by up to ``augment`` semitones. With ``key_prior`` only the samples whose
    known cells hold bass or guitar notes shift: where only drums are known the key stays the song's own,
    and the model learns the corpus's keys instead of an average over all twelve.
    ``rng`` draws the shifts, then the mask's seed (the order of earlier releases)."""
    n = len(rolls)
    shifts = rng.integers(-cfg.augment, cfg.augment + 1, size=n) if cfg.augment > 0 else np.zeros(n, dtype=int)
    g = torch.Generator().manual_seed(int(rng.integers(2**62)))
    # with key_prior the mask comes first (whether a sample's key is given decides whether it shifts);
    # without it, the mask is drawn on the shifted batch, as earlier releases did
    base = rolls if cfg.key_prior else shift_rows(rolls, shifts)
    heard = torch.from_numpy(other.any(axis=(1, 2, 3))) if other is not None and cfg.max_remove >= 3 else None
    known = subtractive_mask(torch.from_numpy(base), cfg.max_remove, g, only, heard)
    if cfg.span_prob > 0:
        known = span_mask(known, rolls.shape[-1], cfg.span_prob, g)
    if cfg.key_prior:
        keyed = pitched_context(torch.from_numpy(rolls), known).numpy()
        if other is not None:  # the other tracks carry the key too
            keyed |= other.any(axis=(1, 2, 3))
        shifts = np.where(keyed, shifts, 0)
        base = shift_rows(rolls, shifts)
    if other is None:
        return torch.from_numpy(base), known
    return torch.from_numpy(base), known, torch.from_numpy(shift_context(other, shifts))


def load_split(data: str, split: str, max_chunks: int = 0, seed: int = 0, variants: bool = False):
    """(rolls, context planes) of a split's chunks that have notes; None for a missing valid split.
    ``variants``: with the songs' guitar variants (``stemfill convert --guitar-variants``), each one chunk more."""
    from stemfill.datasets.chunks import load_chunks

    try:
        ch = load_chunks(data, split, variants=variants)
    except StemfillError:
        if split == "train":
            raise
        return None
    keep = ch.rolls.any(axis=(2, 3)).any(axis=1)  # drop chunks with no notes at all
    rolls, other = ch.rolls[keep], ch.context_or_empty()[keep]
    if max_chunks and len(rolls) > max_chunks:
        pick = np.random.default_rng(seed).choice(len(rolls), max_chunks, replace=False)
        rolls, other = rolls[pick], other[pick]
    return rolls, other


def data_grid(data: str) -> dict:
    """The grid a chunk folder was written on (its manifest's config); ModelError where this code reads
    rolls on another grid (the roll codec's pitch rows would not mean the same notes)."""
    from stemfill.datasets.chunks import read_manifest
    from stemfill.pianoroll.grid import STEPS_PER_BEAT
    from stemfill.pianoroll.model import GRID

    conf = read_manifest(data).get("config", {})
    grid = {k: int(conf.get(k, v)) for k, v in GRID.items()}
    grid["steps_per_beat"] = int(conf.get("steps_per_beat", STEPS_PER_BEAT))
    bad = [f"{k} {grid[k]} (chunks) vs {v} (this stemfill)" for k, v in GRID.items() if grid[k] != v]
    if bad:
        raise ModelError(f"{data}: chunks of another pitch grid ({'; '.join(bad)}); convert the songs again")
    return grid


def start_from(path: str, context_planes: int, control_planes: int = 0, controls=None, control_scale: float = 1.0,
               **diffusion) -> BinaryDiffusion:
    """A model with ``path``'s weights and sampling settings (its ``SamplingConfig``), reading ``context_planes``
    context planes and ``control_planes`` control planes (meaning ``controls``, a ControlConfig). Input weights of
    planes the old model did not have start at zero, so at step 0 it fills exactly as the old model did;
    ``diffusion`` overrides DiffusionConfig fields (e.g. the dropout rates)."""
    from dataclasses import replace

    from stemfill.pianoroll.model import load_model

    old = load_model(path)
    if old.context_planes and old.context_planes != context_planes:
        raise ModelError(f"{path}: hears {old.context_planes} context planes; cannot start a model of {context_planes}")
    ucfg = replace(old.net.config, context_planes=context_planes, control_planes=control_planes,
                   control_scale=control_scale if control_planes else 1.0)
    model = build_model(ucfg, replace(old.config, **diffusion), controls if control_planes else None, old.sampling)
    state = old.state_dict()
    w_old, w_new = state["net.conv_in.weight"], model.state_dict()["net.conv_in.weight"]
    w = torch.zeros_like(w_new)
    w[:, :w_old.shape[1]] = w_old  # the new planes (context, then controls) come after the old ones
    state["net.conv_in.weight"] = w
    model.load_state_dict(state, strict=True)
    return model


# --- schedule, EMA, checkpoint -------------------------------------------------------

def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


PRECISIONS = ("fp32", "bf16")


def autocast(device: torch.device, precision: str):
    """The training forward pass's context: bf16 autocast (on the CPU where it has AVX512-BF16 or AMX, about 1.7x
    as fast for the UNet; docs/training.md), or nothing for fp32 (``train`` checks the name before it starts).
    Validation always runs in fp32."""
    import contextlib

    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    d = min(decay, (1 + step) / (10 + step))
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach(), 1 - d)


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise StemfillError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(name)


@torch.no_grad()
def validate(model, rolls: np.ndarray, device, batch: int, seed: int = 1234, other: np.ndarray | None = None) -> float:
    """Mean loss on a fixed set of validation chunks with fixed masks and noise (comparable across steps)."""
    was_training = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    total, n = 0.0, 0
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for i in range(0, len(rolls), batch):
            x0 = torch.from_numpy(rolls[i:i + batch]).to(device)
            o = torch.from_numpy(other[i:i + batch]).to(device) if other is not None and model.context_planes else None
            heard = o.flatten(1).any(1).cpu() if o is not None and model.config.max_remove >= 3 else None
            known = subtractive_mask(x0, model.config.max_remove, g, remove_only_channel(model.config), heard)
            total += float(model(x0, known, o)) * len(x0)
            n += len(x0)
    model.train(was_training)
    return total / max(n, 1)


def save_pictures(model, rolls: np.ndarray, path: Path, seed: int = 0, other: np.ndarray | None = None) -> None:
    """Remove one present stem from a few validation chunks, fill it, plot original vs filled."""
    from stemfill.pianoroll.fill import save_roll_pngs

    g = torch.Generator().manual_seed(seed)
    x0 = torch.from_numpy(rolls[:4])
    known = subtractive_mask(x0, 1, g)
    o = torch.from_numpy(other[:4]) if other is not None else None
    out = model.sample(x0, known, seed=seed, other=o).cpu().numpy()
    panels = []
    for i in range(len(x0)):
        panels.append((f"chunk {i}: original", rolls[i], None))
        panels.append((f"chunk {i}: filled", out[i], ~known[i].cpu().numpy()))
    save_roll_pngs(panels, path)


# --- the loop ------------------------------------------------------------------------

def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, until: int | None = None) -> Path:
    """Run (or continue, ``resume``) training; returns RUN/model. ``until``: stop early at that step
    (checkpoint written), as if interrupted; the schedule still follows ``cfg.steps``."""
    if cfg.precision not in PRECISIONS:  # before any data or model is read
        raise StemfillError(f"precision {cfg.precision!r}: choose from {', '.join(PRECISIONS)}")
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = 0
    if ddp:
        import torch.distributed as dist

        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank = dist.get_rank()
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
            cfg.device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    out = Path(cfg.out)
    ckpt_path = out / "ckpt.pt"
    ck = None
    if resume:
        if not ckpt_path.exists():
            raise StemfillError(f"{ckpt_path}: nothing to resume (no checkpoint)")
        try:
            ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        except Exception as e:
            raise ModelError(f"{ckpt_path}: not a readable checkpoint ({type(e).__name__})") from e
        saved = TrainConfig(**{k: v for k, v in ck["train"].items() if k in {f.name for f in fields(TrainConfig)}})
        saved.steps, saved.device, saved.data = cfg.steps, cfg.device, cfg.data or saved.data  # may extend a run
        cfg = saved

    grid = data_grid(cfg.data)
    train_rolls, train_other = load_split(cfg.data, "train", cfg.max_chunks, cfg.seed, variants=True)
    valid = load_split(cfg.data, "valid")  # as evaluation reads it: no guitar variants
    valid_rolls = valid_other = None
    if valid is not None:
        pick = np.random.default_rng(0).permutation(len(valid[0]))[:cfg.val_chunks]
        valid_rolls, valid_other = valid[0][pick], valid[1][pick]

    torch.manual_seed(cfg.seed)  # the initial weights
    n_context = len(CONTEXT_PLANES) if cfg.context else 0
    n_control = N_CONTROL_PLANES if cfg.controls else 0
    ccfg = None
    if cfg.controls and ck is None:
        ccfg = ControlConfig(quantiles=fit_quantiles(train_rolls, seed=cfg.seed), given_prob=cfg.control_given,
                             groove_prob=cfg.groove_given)
    if ck is not None:
        model = from_config(ck["config"])  # a checkpoint of either config layout (model.split_sampling)
    elif cfg.init_from:
        model = start_from(cfg.init_from, n_context, n_control, ccfg, cfg.control_scale, cond_drop=cfg.cond_drop,
                           context_drop=cfg.context_drop, window=int(train_rolls.shape[-1]),
                           max_remove=cfg.max_remove)
    else:
        dcfg = DiffusionConfig(objective=cfg.objective, density=estimate_density(train_rolls),
                               cond_drop=cfg.cond_drop, context_drop=cfg.context_drop, max_remove=cfg.max_remove,
                               remove_only=cfg.remove_only, window=int(train_rolls.shape[-1]),
                               steps_per_beat=grid["steps_per_beat"], bass_low=grid["bass_low"],
                               guitar_low=grid["guitar_low"])
        d = float(np.mean(dcfg.density))
        model = build_model(UNetConfig(**PRESETS[cfg.size], prior_logit=round(math.log(d / (1 - d)), 3),
                                       context_planes=n_context, control_planes=n_control,
                                       control_scale=cfg.control_scale if n_control else 1.0), dcfg, ccfg,
                            SamplingConfig())
    if model.config.window != train_rolls.shape[-1] or model.config.steps_per_beat != grid["steps_per_beat"]:
        raise ModelError(f"{cfg.data}: chunks of {train_rolls.shape[-1]} steps at {grid['steps_per_beat']} a beat; "
                         f"the model's window is {model.config.window} at {model.config.steps_per_beat}")
    use_other = model.context_planes > 0
    model.to(device)
    ema = deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.999))
    rng = np.random.default_rng(cfg.seed + rank)
    torch.manual_seed(cfg.seed + rank)
    ctrl_gen = torch.Generator().manual_seed(cfg.seed + rank + 7919)  # which controls each sample is given
    step, wall0 = 0, 0.0
    if ck is not None:
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        step, wall0 = ck["step"], ck["wall_time"]
        rng.bit_generator.state = ck["rng"]["numpy"]
        torch.set_rng_state(ck["rng"]["torch"])
        if ck["rng"].get("controls") is not None:
            ctrl_gen.set_state(ck["rng"]["controls"])
        if device.type == "cuda" and ck["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ck["rng"]["cuda"], device)
    net = model
    if ddp:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    main = rank == 0
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    log = open(out / "log.jsonl", "a") if main else None

    def checkpoint() -> None:
        state = {
            "config": model_config(model), "train": asdict(cfg),
            "model": {k: v.cpu() for k, v in model.state_dict().items()},
            "ema": {k: v.cpu() for k, v in ema.state_dict().items()},
            "opt": opt.state_dict(), "step": step, "wall_time": wall0 + time.time() - t_start,
            "rng": {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state(), "controls": ctrl_gen.get_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
        }
        save_checkpoint(ckpt_path, state)
        save_pretrained(ema, out / "model", extra={"trained_steps": step, "data": str(cfg.data)})

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TextColumn("{task.fields[info]}"), TimeRemainingColumn(), disable=not (progress and main))
    t_start = time.time()
    model.train()
    with bar:
        task = bar.add_task("train", total=cfg.steps, completed=step, info="")
        stop = cfg.steps if until is None else min(until, cfg.steps)
        while step < stop:
            lr = lr_at(step, cfg)
            for group in opt.param_groups:
                group["lr"] = lr
            if main and step > 0 and valid_rolls is not None and step % cfg.val_every == 0:
                v = validate(ema, valid_rolls, device, cfg.batch, other=valid_other)
                log.write(json.dumps({"step": step, "val_loss": v}) + "\n")
                log.flush()
                bar.update(task, info=f"val {v:.4f}")
            if main and step > 0 and valid_rolls is not None and cfg.sample_every and step % cfg.sample_every == 0:
                save_pictures(ema, valid_rolls, out / "samples" / f"step{step:07d}.png", other=valid_other)
            if main and step > 0 and step % cfg.ckpt_every == 0:
                checkpoint()

            idx = rng.integers(0, len(train_rolls), size=cfg.batch)
            if use_other:
                x0, known, other = training_batch(train_rolls[idx], cfg, rng, remove_only_channel(model.config),
                                                  train_other[idx])
                other = other.to(device, non_blocking=True)
            else:
                x0, known = training_batch(train_rolls[idx], cfg, rng, remove_only_channel(model.config))
                other = None
            x0, known = x0.to(device, non_blocking=True), known.to(device)
            controls = None
            if model.control_planes:
                target = ~(known.all(-1) if known.dim() == 3 else known)
                controls = training_planes(x0, target, model.controls, ctrl_gen)
            with autocast(device, cfg.precision):
                loss = net(x0, known, other, controls)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            ema_update(ema, model, cfg.ema_decay, step)
            step += 1
            if main and (step % cfg.log_every == 0 or step == cfg.steps):
                log.write(json.dumps({"step": step, "loss": loss.item(), "grad_norm": float(gn), "lr": lr,
                                      "wall": round(wall0 + time.time() - t_start, 1)}) + "\n")
                log.flush()
                bar.update(task, info=f"loss {loss.item():.4f}")
            bar.update(task, completed=step)
    if ddp:  # every process must end with the same weights; record that in the log
        world = dist.get_world_size()
        flat = torch.cat([p.detach().double().flatten() for p in model.parameters()])
        sig = torch.stack([flat.sum(), (flat * flat).sum()])
        sigs = [torch.zeros_like(sig) for _ in range(world)]
        dist.all_gather(sigs, sig)
        if main:
            log.write(json.dumps({"step": step, "ddp_world_size": world,
                                  "ddp_in_sync": all(torch.equal(sigs[0], x) for x in sigs)}) + "\n")
    if main:
        if valid_rolls is not None:
            v = validate(ema, valid_rolls, device, cfg.batch, other=valid_other)
            log.write(json.dumps({"step": step, "val_loss": v}) + "\n")
        checkpoint()
        log.close()
    if ddp:  # wait for rank 0's last validation and checkpoint, then tear down together (a rank that left
        dist.barrier()  # early sometimes died with SIGABRT in gloo while the other was still connected)
        dist.destroy_process_group()
    return out / "model"
