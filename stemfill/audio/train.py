"""Subtractive Training: fine-tune Riffusion into an InstructPix2Pix stem inserter.

The procedure of the paper (after diffusers' ``train_instruct_pix2pix.py``):

- the UNet's first convolution is widened from 4 to 8 input channels; the new weights (for the
  stem-removed latent) start at zero and the bias is copied, so step 0 predicts exactly what
  Riffusion predicts (``widen_conv_in``);
- VAE and text encoder are frozen; only the UNet trains;
- target: the full mix; conditions: the stem-removed mix (its VAE latent mode, unscaled, concatenated
  to the noisy latent, as the pipeline does at inference) and the instruction (CLIP embedding);
- conditioning dropout 0.05: 5% of examples lose the text, 5% the image, 5% both (the InstructPix2Pix
  scheme behind classifier-free guidance on both conditions);
- AdamW (0.9, 0.999, weight decay 0.02), lr 1e-4, cosine decay after 500 warm-up steps, batch 4;
- no horizontal flip (it would reverse time), no other augmentation;
- fp16 mixed precision on a GPU, Accelerate for several GPUs (``accelerate launch -m stemfill.cli audio-train ...``).

The run folder is itself a diffusers pipeline folder (``model_index.json``, vae/, text_encoder/,
tokenizer/, scheduler/, unet/), loadable by ``stemfill audio --model RUN`` at any checkpoint; beside it
``training_state.pt`` holds the config, step, optimizer and lr-schedule state for ``--resume``.
Randomness (data order, noise, timesteps, dropout) is a function of (seed, step), so a resumed run
continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from stemfill.audio.pipeline import LATENT_CHANNELS, PIX2PIX_IN_CHANNELS, SDEDIT_MODEL
from stemfill.files import one_line
from stemfill.errors import AudioError

STATE_FILE = "training_state.pt"


@dataclass
class TrainConfig:
    model: str = SDEDIT_MODEL  # start: plain Riffusion (4-channel UNet) or an earlier pix2pix folder (8)
    steps: int = 300_000
    batch: int = 4
    lr: float = 1e-4
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    weight_decay: float = 0.02
    adam_epsilon: float = 1e-8
    warmup: int = 500
    lr_schedule: str = "cosine"
    conditioning_dropout: float = 0.05
    max_grad_norm: float = 1.0
    grad_accum: int = 1
    seed: int = 0
    checkpoint_every: int = 1000
    mixed_precision: str = "auto"  # "auto": fp16 on CUDA, none on CPU; or "no" / "fp16" / "bf16"
    gradient_checkpointing: bool = False
    workers: int = 0

    def __post_init__(self):
        for name in ("steps", "batch", "grad_accum", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise AudioError(f"training config: {name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.conditioning_dropout < 1.0 / 3:
            raise AudioError(f"training config: conditioning_dropout must be in [0, 1/3), got {self.conditioning_dropout}")
        if self.mixed_precision not in ("auto", "no", "fp16", "bf16"):
            raise AudioError(f"training config: mixed_precision {self.mixed_precision!r}: expected auto, no, fp16 or bf16")


# --- the model pieces ------------------------------------------------------------------------


def widen_conv_in(unet, in_channels: int = PIX2PIX_IN_CHANNELS):
    """Give `unet` a first convolution with `in_channels` inputs: old weights kept, new ones zero, bias copied."""
    import torch

    old = unet.conv_in
    if old.in_channels == in_channels:
        return unet
    if old.in_channels > in_channels:
        raise AudioError(f"UNet already takes {old.in_channels} input channels (> {in_channels})")
    new = torch.nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                          bias=old.bias is not None).to(old.weight.device, old.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight
        if old.bias is not None:
            new.bias.copy_(old.bias)  # diffusers#4960: a fresh bias would shift every activation at step 0
    unet.conv_in = new
    unet.register_to_config(in_channels=in_channels)
    return unet


def load_components(model: str) -> dict:
    """vae, text_encoder, tokenizer, unet and a DDPM noise scheduler from a pipeline folder or hub id."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    path = Path(model)
    if path.exists() and not (path / "model_index.json").is_file():
        raise AudioError(f"model {model}: not a diffusers pipeline folder (no model_index.json)")
    parts = {}
    try:
        for name, cls in (("unet", UNet2DConditionModel), ("vae", AutoencoderKL), ("text_encoder", CLIPTextModel),
                          ("tokenizer", CLIPTokenizer), ("scheduler", DDPMScheduler)):
            parts[name] = cls.from_pretrained(model, subfolder=name)
    except Exception as e:
        raise AudioError(f"cannot load model {model} ({name}): {one_line(e)}") from e
    return parts


# --- data ------------------------------------------------------------------------------------


def _images_to_tensor(images) -> "torch.Tensor":
    """uint8 (B, H, W) or (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1], grey replicated to RGB."""
    import torch

    a = np.asarray(images)
    if a.ndim == 3:
        a = np.repeat(a[..., None], 3, axis=-1)
    t = torch.from_numpy(np.ascontiguousarray(a[..., :3])).permute(0, 3, 1, 2).float()
    return t / 127.5 - 1.0


class TripletSet:
    """Random access to (full-mix image, stem-removed image, instruction) triplets of a triplets.py folder."""

    def __init__(self, path: str | os.PathLike):
        from stemfill.audio.triplets import load_triplets

        self.source = load_triplets(path)
        self.shard_sizes = [int(s["count"]) for s in self.source.manifest["shards"]]

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int):
        return self.source[i]

    def epoch_order(self, seed: int, epoch: int) -> list[int]:
        """A shard-local shuffle (shards permuted, rows permuted within each), so reads stay within one
        decompressed shard at a time; a function of (seed, epoch) only."""
        rng = np.random.default_rng([seed, epoch])
        starts = np.cumsum([0] + self.shard_sizes)
        order: list[int] = []
        for k in rng.permutation(len(self.shard_sizes)):
            order += (starts[k] + rng.permutation(self.shard_sizes[k])).tolist()
        return order


def sample_indices(data: TripletSet, seed: int, start: int, count: int) -> list[int]:
    """Examples start..start+count-1 of the endless stream of epochs over `data`."""
    n, out, orders = len(data), [], {}
    for k in range(start, start + count):
        epoch = k // n
        if epoch not in orders:
            orders[epoch] = data.epoch_order(seed, epoch)
        out.append(orders[epoch][k % n])
    return out


# --- the process: one loss ---------------------------------------------------------------------


def pix2pix_loss(unet, vae, text_encoder, noise_scheduler, batch: dict, null_text, dropout: float, generator):
    """InstructPix2Pix denoising loss on one batch: {"full", "removed": (B,3,H,W) in [-1,1], "input_ids"}."""
    import torch
    import torch.nn.functional as F

    device, dtype = batch["full"].device, vae.dtype
    with torch.no_grad():
        latents = vae.encode(batch["full"].to(dtype)).latent_dist.sample(generator) * vae.config.scaling_factor
        removed = vae.encode(batch["removed"].to(dtype)).latent_dist.mode()
        text = text_encoder(batch["input_ids"], return_dict=False)[0]
    bsz = latents.shape[0]
    noise = torch.randn(latents.shape, generator=generator, device=device, dtype=latents.dtype)
    t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (bsz,), generator=generator, device=device).long()
    noisy = noise_scheduler.add_noise(latents, noise, t)
    if dropout > 0:  # p < d: text only dropped ... d <= p < 2d: both ... 2d <= p < 3d: image only
        p = torch.rand(bsz, generator=generator, device=device)
        drop_text = (p < 2 * dropout).view(bsz, 1, 1)
        text = torch.where(drop_text, null_text.to(text.dtype).expand_as(text), text)
        keep_image = 1.0 - ((p >= dropout) & (p < 3 * dropout)).to(removed.dtype)
        removed = removed * keep_image.view(bsz, 1, 1, 1)
    model_in = torch.cat([noisy, removed], dim=1)
    if noise_scheduler.config.prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, t)
    else:
        target = noise
    pred = unet(model_in, t, text, return_dict=False)[0]
    return F.mse_loss(pred.float(), target.float())


# --- the loop ---------------------------------------------------------------------------------


def train(data: str | os.PathLike, run: str | os.PathLike, cfg: TrainConfig | None = None, *, resume: bool = False,
          progress: bool = True, log=print) -> Path:
    """Fine-tune into `run` (a pipeline folder, resumable); returns the folder. See the module docstring."""
    import torch
    try:
        from accelerate import Accelerator
    except ImportError as e:  # pragma: no cover - a dependency of the project
        raise AudioError("audio-train needs the accelerate package (pip install accelerate)") from e
    from diffusers.optimization import get_scheduler

    run = Path(run)
    state_path = run / STATE_FILE
    state = None
    if resume:
        if not state_path.is_file():
            raise AudioError(f"{run}: nothing to resume (no {STATE_FILE})")
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        saved = TrainConfig(**{f.name: state["config"][f.name] for f in fields(TrainConfig) if f.name in state["config"]})
        if cfg is not None:  # only the length of the run may change on resume
            saved.steps = cfg.steps
        cfg = saved
    else:
        cfg = cfg or TrainConfig()
        if state_path.exists():
            raise AudioError(f"{run}: already holds a training run; pass --resume or choose another folder")
    triplets = TripletSet(data)
    if len(triplets) == 0:
        raise AudioError(f"{data}: no triplets")

    mp = cfg.mixed_precision
    if mp == "auto":
        mp = "fp16" if torch.cuda.is_available() else "no"
    elif mp == "fp16" and not torch.cuda.is_available():
        raise AudioError("--mixed-precision fp16 needs a CUDA GPU; use no (or bf16) on a CPU")
    acc = Accelerator(mixed_precision=mp, gradient_accumulation_steps=cfg.grad_accum)
    parts = load_components(str(run) if resume else cfg.model)
    unet, vae, text_encoder, tokenizer, noise_scheduler = (parts[k] for k in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"))
    if unet.config.in_channels == LATENT_CHANNELS:
        widen_conv_in(unet)
    elif unet.config.in_channels != PIX2PIX_IN_CHANNELS:
        raise AudioError(f"model {cfg.model}: UNet takes {unet.config.in_channels} input channels; expected 4 or 8")
    vae.requires_grad_(False)
    text_encoder.requires_grad_(False)
    if not resume and acc.is_main_process:
        _save_pipeline(unet, vae, text_encoder, tokenizer, noise_scheduler, run)
    unet.train()
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mp, torch.float32)
    vae.to(acc.device, dtype=weight_dtype)
    text_encoder.to(acc.device, dtype=weight_dtype)

    optimizer = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                  weight_decay=cfg.weight_decay, eps=cfg.adam_epsilon)
    lr_scheduler = get_scheduler(cfg.lr_schedule, optimizer, num_warmup_steps=cfg.warmup * acc.num_processes,
                                 num_training_steps=cfg.steps * acc.num_processes)
    step = 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        lr_scheduler.load_state_dict(state["lr_scheduler"])
        step = int(state["step"])
    unet, optimizer, lr_scheduler = acc.prepare(unet, optimizer, lr_scheduler)

    def tokenize(texts):
        return tokenizer(list(texts), max_length=tokenizer.model_max_length, padding="max_length", truncation=True,
                         return_tensors="pt").input_ids.to(acc.device)

    with torch.no_grad():
        null_text = text_encoder(tokenize([""]), return_dict=False)[0]

    per_step = cfg.batch * cfg.grad_accum * acc.num_processes
    log(f"training {run}: {len(triplets)} triplets, steps {step}->{cfg.steps}, batch {cfg.batch} x {acc.num_processes} "
        f"process(es), mixed precision {mp}, device {acc.device}")

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                   TimeRemainingColumn(), disable=not (progress and acc.is_main_process), transient=True)
    t0, losses = time.time(), []
    with bar:
        task = bar.add_task("train", total=cfg.steps, completed=step, info="")
        while step < cfg.steps:
            for micro in range(cfg.grad_accum):
                first = (step * cfg.grad_accum + micro) * cfg.batch * acc.num_processes + acc.process_index * cfg.batch
                idx = sample_indices(triplets, cfg.seed, first, cfg.batch)
                items = [triplets[i] for i in idx]
                batch = {
                    "full": _images_to_tensor([it[0] for it in items]).to(acc.device),
                    "removed": _images_to_tensor([it[1] for it in items]).to(acc.device),
                    "input_ids": tokenize(it[2] for it in items),
                }
                g = torch.Generator(acc.device).manual_seed(cfg.seed * 1_000_003 + (step * cfg.grad_accum + micro) * 1009
                                                             + acc.process_index)
                with acc.accumulate(unet):
                    with acc.autocast():
                        loss = pix2pix_loss(unet, vae, text_encoder, noise_scheduler, batch, null_text,
                                            cfg.conditioning_dropout, g)
                    acc.backward(loss)
                    if acc.sync_gradients and cfg.max_grad_norm > 0:
                        acc.clip_grad_norm_(unet.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    lr_scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))
            step += 1
            bar.update(task, completed=step, info=f"loss {np.mean(losses[-50:]):.4f} lr {lr_scheduler.get_last_lr()[0]:.2e}")
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                acc.wait_for_everyone()
                if acc.is_main_process:
                    _checkpoint(acc.unwrap_model(unet), optimizer, lr_scheduler, cfg, step, run)
    dt = time.time() - t0
    log(f"done: step {step}, mean loss of the last {min(len(losses), 50)} {np.mean(losses[-50:]) if losses else float('nan'):.4f}, "
        f"{dt:.1f} s ({per_step} examples a step); model in {run}")
    return run


# --- saving -----------------------------------------------------------------------------------


def _save_pipeline(unet, vae, text_encoder, tokenizer, noise_scheduler, run: Path) -> None:
    """Write the whole pipeline folder (once, at the start), through a temporary folder."""
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline

    run.parent.mkdir(parents=True, exist_ok=True)
    tmp = run.with_name(run.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=EulerAncestralDiscreteScheduler.from_config(noise_scheduler.config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(tmp))
    if run.exists():
        for child in tmp.iterdir():  # an empty or foreign-but-stateless folder: fill it in place
            target = run / child.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(child, target)
        tmp.rmdir()
    else:
        os.replace(tmp, run)


def _checkpoint(unet, optimizer, lr_scheduler, cfg: TrainConfig, step: int, run: Path) -> None:
    """Replace run/unet and run/training_state.pt with the current ones (write beside, then rename)."""
    import torch

    tmp_unet, tmp_state = run / "unet.partial", run / (STATE_FILE + ".partial")
    shutil.rmtree(tmp_unet, ignore_errors=True)
    unet.save_pretrained(str(tmp_unet))
    torch.save({"config": asdict(cfg), "step": step, "optimizer": optimizer.state_dict(),
                "lr_scheduler": lr_scheduler.state_dict()}, tmp_state)
    old = run / "unet.old"
    shutil.rmtree(old, ignore_errors=True)
    if (run / "unet").exists():
        os.replace(run / "unet", old)
    os.replace(tmp_unet, run / "unet")
    os.replace(tmp_state, run / STATE_FILE)
    shutil.rmtree(old, ignore_errors=True)
    with (run / "train_log.jsonl").open("a") as f:
        f.write(json.dumps({"step": step, "lr": lr_scheduler.get_last_lr()[0], "time": round(time.time(), 1)}) + "\n")
