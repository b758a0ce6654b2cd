"""Time one Subtractive-Training step and one inference window of the audio model; print a table.

    python bench/audio_step.py                      # tiny offline components (default)
    python bench/audio_step.py --model sd15         # Stable Diffusion 1.5 / Riffusion shapes, random weights
    python bench/audio_step.py --model PATH_OR_ID   # a real pipeline folder or hub id (4- or 8-channel UNet)

``sd15`` builds every component at Riffusion's real size (UNet 860M, VAE 84M, CLIP text 123M) with
random weights, so time and memory are those of the real model without downloading it. Training uses
the same loss, optimizer and mixed precision as ``stemfill audio-train``; inference is one 512x512
window through the InstructPix2Pix pipeline (3-way classifier-free guidance), with and without the
audio <-> spectrogram conversion (Griffin-Lim runs on the CPU).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tiny_pipeline: the tests' tiny components


def sd15_components(seed: int = 0) -> dict:
    """Riffusion (= SD 1.5) shaped components with random weights; tokenizer from the offline byte vocabulary."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from tiny_pipeline import tiny_tokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=768, attention_head_dim=8)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
                        layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512, scaling_factor=0.18215)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                                        num_hidden_layers=12, max_position_embeddings=77, hidden_act="quick_gelu",
                                        projection_dim=768, bos_token_id=512, eos_token_id=513, pad_token_id=513))
    sched = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    return dict(unet=unet, vae=vae, text_encoder=text, tokenizer=tiny_tokenizer(), scheduler=sched)


def get_components(model: str, seed: int) -> dict:
    from tiny_pipeline import tiny_components
    from stemfill.audio.train import load_components

    if model == "tiny":
        c = tiny_components(seed, "sdedit", scheduler="train")
        return c
    if model == "sd15":
        return sd15_components(seed)
    return load_components(model)


def n_params(m) -> str:
    n = sum(p.numel() for p in m.parameters())
    return f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n / 1e3:.0f}k"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny", help="tiny, sd15, or a pipeline folder / hub id")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--train-steps", type=int, default=5, help="timed steps (after one warm-up step)")
    ap.add_argument("--infer-steps", type=int, default=20, help="denoising steps per window")
    ap.add_argument("--windows", type=int, default=2, help="timed inference windows (after one warm-up)")
    ap.add_argument("--mixed-precision", default="auto", help="auto (fp16 on CUDA), no, fp16, bf16")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--griffin-lim-iters", type=int, default=32)
    args = ap.parse_args()

    import numpy as np
    import torch
    from accelerate import Accelerator
    from diffusers import EulerAncestralDiscreteScheduler

    from stemfill.audio.pipeline import build_pipeline
    from stemfill.audio.spectrogram import SEGMENT_SAMPLES, audio_to_image, image_to_audio
    from stemfill.audio.train import PIX2PIX_IN_CHANNELS, pix2pix_loss, widen_conv_in

    cuda = torch.cuda.is_available()
    mp = args.mixed_precision if args.mixed_precision != "auto" else ("fp16" if cuda else "no")
    rows: list[tuple[str, str]] = []
    dev_name = torch.cuda.get_device_name(0) if cuda else f"CPU ({torch.get_num_threads()} threads)"
    rows.append(("device", dev_name))

    c = get_components(args.model, 0)
    unet, vae, text_encoder, tok, sched = (c[k] for k in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"))
    if unet.config.in_channels != PIX2PIX_IN_CHANNELS:
        widen_conv_in(unet)
    rows.append(("model", f"{args.model} (UNet {n_params(unet)}, VAE {n_params(vae)}, text {n_params(text_encoder)})"))

    # --- training step ---
    acc = Accelerator(mixed_precision=mp)
    wdt = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mp, torch.float32)
    vae.requires_grad_(False)
    text_encoder.requires_grad_(False)
    vae.to(acc.device, wdt)
    text_encoder.to(acc.device, wdt)
    if args.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=0.02)
    unet, opt = acc.prepare(unet, opt)
    ids = tok(["add reggae drums"] * args.batch, max_length=tok.model_max_length, padding="max_length", truncation=True,
              return_tensors="pt").input_ids.to(acc.device)
    with torch.no_grad():
        null = text_encoder(tok([""], max_length=tok.model_max_length, padding="max_length",
                                return_tensors="pt").input_ids.to(acc.device), return_dict=False)[0]
    gen = torch.Generator(acc.device).manual_seed(0)
    batch = {"full": torch.rand(args.batch, 3, 512, 512, device=acc.device, generator=gen) * 2 - 1,
             "removed": torch.rand(args.batch, 3, 512, 512, device=acc.device, generator=gen) * 2 - 1, "input_ids": ids}
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(args.train_steps + 1):
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        with acc.autocast():
            loss = pix2pix_loss(unet, vae, text_encoder, sched, batch, null, 0.05, gen)
        acc.backward(loss)
        acc.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t)
    step_s = statistics.median(times)
    rows.append((f"train step (batch {args.batch}, {mp})", f"{step_s:.3f} s  ({args.batch / step_s:.1f} examples/s)"))
    rows.append(("  300k steps at that rate", f"{300_000 * step_s / 3600:.1f} h"))
    if cuda:
        rows.append(("  peak GPU memory (train)", f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"))

    # --- inference window ---
    unet = acc.unwrap_model(unet, keep_fp32_wrapper=False).eval()
    del opt
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    idt = torch.float16 if cuda else torch.float32
    pipe = build_pipeline(dict(unet=unet.to(idt), vae=vae.to(idt), text_encoder=text_encoder.to(idt), tokenizer=tok,
                               scheduler=EulerAncestralDiscreteScheduler.from_config(sched.config)), "subtractive")
    pipe.to(acc.device)
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(SEGMENT_SAMPLES)).astype(np.float32)
    from stemfill.audio.spectrogram import to_pil

    img = audio_to_image(audio)
    diff_t, conv_t = [], []
    for i in range(args.windows + 1):
        t0 = time.perf_counter()
        img = audio_to_image(audio)
        t1 = time.perf_counter()
        out = pipe("add reggae drums", image=to_pil(img), num_inference_steps=args.infer_steps, guidance_scale=7.5,
                   image_guidance_scale=1.5, generator=torch.Generator(acc.device).manual_seed(i)).images[0]
        if cuda:
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        image_to_audio(np.asarray(out.convert("L")), n_iter=args.griffin_lim_iters)
        t3 = time.perf_counter()
        if i:
            diff_t.append(t2 - t1)
            conv_t.append((t1 - t0) + (t3 - t2))
    d, cv = statistics.median(diff_t), statistics.median(conv_t)
    rows.append((f"inference window ({args.infer_steps} steps)", f"{d:.2f} s diffusion + {cv:.2f} s spectrogram/Griffin-Lim"))
    rows.append(("  a 3-minute song (~40 windows, 0.5 s overlap)", f"{40 * (d + cv) / 60:.1f} min"))
    if cuda:
        rows.append(("  peak GPU memory (inference)", f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"))

    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")


if __name__ == "__main__":
    main()
