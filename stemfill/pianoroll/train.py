"""Train the stem-filling model on a chunk folder (``stemfill convert`` output).

One loop, top to bottom: lr -> validate / pictures / checkpoint -> batch -> loss -> clip -> step -> EMA.
``RUN/ckpt.pt`` holds everything needed to continue exactly (``resume=True``); ``RUN/model/``
is the EMA model as ``model.safetensors`` + ``config.json`` (what ``stemfill midi --model`` loads).

Several GPUs: ``torchrun --nproc_per_node N -m stemfill.pianoroll.train --data CHUNKS -o RUN``
(DDP when WORLD_SIZE > 1; ``batch`` is per process; rank 0 validates and saves).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from copy import deepcopy
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from stemfill.errors import ModelError, StemfillError
from stemfill.pianoroll.diffusion import (DiffusionConfig, pitched_context, remove_only_channel, span_mask,
                                          subtractive_mask)
from stemfill.pianoroll.io import atomic_path
from stemfill.pianoroll.model import build_model, model_config, save_pretrained
from stemfill.pianoroll.roll import CHANNEL, STEPS_PER_BEAT
from stemfill.pianoroll.unet import UNetConfig

PRESETS = {  # UNet sizes; the shipped model is "large" (docs/model-card.md), the CLI's --size default "default"
    "tiny": dict(channels=(8, 16), down=((2, 2),), layers=(0, 1), norm_groups=4, time_dim=32, attention=False),
    "small": dict(channels=(16, 32, 64, 96)),
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
    max_remove: int = 2
    remove_only: str = ""  # "" = subtractive training over any 1-2 stems; a stem name = the paper's per-stem model
    device: str = "auto"
    max_chunks: int = 0  # use at most this many training chunks (0 = all); for smoke tests
    extra: dict = field(default_factory=dict)


# --- data ----------------------------------------------------------------------------

def estimate_density(rolls: np.ndarray) -> tuple[float, ...]:
    """Per-channel share of ones, over the chunks where that channel has notes (what a target looks like)."""
    out = []
    for c in range(rolls.shape[1]):
        ch = rolls[:, c]
        has = ch.any(axis=(1, 2))
        out.append(float(ch[has].mean()) if has.any() else 0.02)
    return tuple(round(min(max(d, 1e-3), 0.5), 5) for d in out)


def shift_rows(batch: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Shift the bass and guitar rows of sample i by shifts[i] semitones; drop what falls off."""
    out = batch.copy()
    for i, s in enumerate(shifts):
        if s == 0:
            continue
        for c in (CHANNEL["bass"], CHANNEL["guitar"]):
            row = np.zeros_like(out[i, c])
            if s > 0:
                row[s:] = batch[i, c, :-s]
            else:
                row[:s] = batch[i, c, -s:]
            out[i, c] = row
    return out


def pitch_shift(batch: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Shift bass and guitar rows of each sample by the same random -k..k semitones (k = 0: off)."""
    return shift_rows(batch, rng.integers(-k, k + 1, size=len(batch))) if k > 0 else batch


def training_batch(rolls: np.ndarray, cfg: TrainConfig, rng: np.random.Generator,
                   only: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One subtractive-training batch on the CPU: (x0, known), known (B, C), or (B, C, L) with ``span_prob``.

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
    known = subtractive_mask(torch.from_numpy(base), cfg.max_remove, g, only)
    if cfg.span_prob > 0:
        known = span_mask(known, rolls.shape[-1], cfg.span_prob, g)
    if cfg.key_prior:
        shifts = np.where(pitched_context(torch.from_numpy(rolls), known).numpy(), shifts, 0)
        base = shift_rows(rolls, shifts)
    return torch.from_numpy(base), known


def load_split(data: str, split: str, max_chunks: int = 0, seed: int = 0) -> np.ndarray | None:
    from stemfill.datasets.chunks import load_chunks

    try:
        ch = load_chunks(data, split)
    except StemfillError:
        if split == "train":
            raise
        return None
    rolls = ch.rolls[ch.rolls.any(axis=(2, 3)).any(axis=1)]  # drop chunks with no notes at all
    if max_chunks and len(rolls) > max_chunks:
        rolls = rolls[np.random.default_rng(seed).choice(len(rolls), max_chunks, replace=False)]
    return rolls


# --- schedule, EMA, checkpoint -------------------------------------------------------

def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


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
def validate(model, rolls: np.ndarray, device, batch: int, seed: int = 1234) -> float:
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
            known = subtractive_mask(x0, model.config.max_remove, g, remove_only_channel(model.config))
            total += float(model(x0, known)) * len(x0)
            n += len(x0)
    model.train(was_training)
    return total / max(n, 1)


def save_pictures(model, rolls: np.ndarray, path: Path, seed: int = 0) -> None:
    """Remove one present stem from a few validation chunks, fill it, plot original vs filled."""
    from stemfill.pianoroll.fill import save_roll_pngs

    g = torch.Generator().manual_seed(seed)
    x0 = torch.from_numpy(rolls[:4])
    known = subtractive_mask(x0, 1, g)
    out = model.sample(x0, known, seed=seed).cpu().numpy()
    panels = []
    for i in range(len(x0)):
        panels.append((f"chunk {i}: original", rolls[i], None))
        panels.append((f"chunk {i}: filled", out[i], ~known[i].cpu().numpy()))
    save_roll_pngs(panels, path)


# --- the loop ------------------------------------------------------------------------

def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, until: int | None = None) -> Path:
    """Run (or continue, ``resume``) training; returns RUN/model. ``until``: stop early at that step
    (checkpoint written), as if interrupted; the schedule still follows ``cfg.steps``."""
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

    train_rolls = load_split(cfg.data, "train", cfg.max_chunks, cfg.seed)
    valid_rolls = load_split(cfg.data, "valid")
    if valid_rolls is not None:
        valid_rolls = valid_rolls[np.random.default_rng(0).permutation(len(valid_rolls))[:cfg.val_chunks]]

    torch.manual_seed(cfg.seed)  # the initial weights
    if ck is not None:
        model = build_model(ck["config"]["unet"], ck["config"]["diffusion"])
    else:
        dcfg = DiffusionConfig(objective=cfg.objective, density=estimate_density(train_rolls),
                               cond_drop=cfg.cond_drop, max_remove=cfg.max_remove, remove_only=cfg.remove_only,
                               window=int(train_rolls.shape[-1]),
                               steps_per_beat=STEPS_PER_BEAT)
        d = float(np.mean(dcfg.density))
        model = build_model(UNetConfig(**PRESETS[cfg.size], prior_logit=round(math.log(d / (1 - d)), 3)), dcfg)
    model.to(device)
    ema = deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.999))
    rng = np.random.default_rng(cfg.seed + rank)
    torch.manual_seed(cfg.seed + rank)
    step, wall0 = 0, 0.0
    if ck is not None:
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        step, wall0 = ck["step"], ck["wall_time"]
        rng.bit_generator.state = ck["rng"]["numpy"]
        torch.set_rng_state(ck["rng"]["torch"])
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
            "rng": {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state(),
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
                v = validate(ema, valid_rolls, device, cfg.batch)
                log.write(json.dumps({"step": step, "val_loss": v}) + "\n")
                log.flush()
                bar.update(task, info=f"val {v:.4f}")
            if main and step > 0 and valid_rolls is not None and cfg.sample_every and step % cfg.sample_every == 0:
                save_pictures(ema, valid_rolls, out / "samples" / f"step{step:07d}.png")
            if main and step > 0 and step % cfg.ckpt_every == 0:
                checkpoint()

            idx = rng.integers(0, len(train_rolls), size=cfg.batch)
            x0, known = training_batch(train_rolls[idx], cfg, rng, remove_only_channel(model.config))
            x0, known = x0.to(device, non_blocking=True), known.to(device)
            loss = net(x0, known)
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
            v = validate(ema, valid_rolls, device, cfg.batch)
            log.write(json.dumps({"step": step, "val_loss": v}) + "\n")
        checkpoint()
        log.close()
    if ddp:  # wait for rank 0's last validation and checkpoint, then tear down together (a rank that left
        dist.barrier()  # early sometimes died with SIGABRT in gloo while the other was still connected)
        dist.destroy_process_group()
    return out / "model"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stemfill.pianoroll.train", description=__doc__.splitlines()[0])
    for f in fields(TrainConfig):
        if f.name == "extra":
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.name == "out":
            ap.add_argument("-o", flag, default=f.default)
        elif isinstance(f.default, bool):
            ap.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            ap.add_argument(flag, type=type(f.default), default=f.default)
    ap.add_argument("--resume", action="store_true")
    a = vars(ap.parse_args(argv))
    resume = a.pop("resume")
    cfg = TrainConfig(**{k: v for k, v in a.items()})
    train(cfg, resume=resume)


if __name__ == "__main__":
    main()
