"""Loading the Riffusion-based diffusion pipelines.

Two methods, as in the paper:

- ``subtractive``: the paper's InstructPix2Pix fine-tune of Riffusion (``StableDiffusionInstructPix2PixPipeline``):
  the UNet takes 8 input channels, the noisy latent and the latent of the stem-removed spectrogram.
- ``sdedit``: the baseline, plain Riffusion (``StableDiffusionImg2ImgPipeline``): the stem-removed spectrogram's
  latent is noised part-way (``strength``) and denoised under the instruction.

Tiny offline stand-ins for tests (every component in-process, no download) live in ``tests/tiny_pipeline.py``.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

from stemfill.errors import AudioError
from stemfill.files import one_line

SUBTRACTIVE_MODEL = "zachary-shah/riff-pix2pix-v1"  # the paper's fine-tune (Hugging Face hub id)
SDEDIT_MODEL = "riffusion/riffusion-model-v1"  # plain Riffusion, the SDEdit baseline and the fine-tune's start
METHODS = ("subtractive", "sdedit")
LATENT_CHANNELS = 4  # Stable Diffusion's VAE latent
PIX2PIX_IN_CHANNELS = 2 * LATENT_CHANNELS  # noisy latent + stem-removed latent
TEXT_MAX_LENGTH = 77  # CLIP's context


def default_model(method: str) -> str:
    check_method(method)
    return SUBTRACTIVE_MODEL if method == "subtractive" else SDEDIT_MODEL


def check_method(method: str) -> None:
    if method not in METHODS:
        raise AudioError(f"method {method!r}: expected one of {', '.join(METHODS)}")


@contextlib.contextmanager
def quiet_libraries():
    """Silence the warnings and log lines torch, transformers and diffusers print while importing and loading
    (missing torchvision, deprecated arguments, "Couldn't connect to the Hub"): a refusal stays one line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection (False when HF_HUB_OFFLINE is set)."""
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    try:
        from huggingface_hub import constants

        url = urlparse(constants.ENDPOINT)
    except Exception:
        url = urlparse("https://huggingface.co")
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def load_pipeline(model: str | None = None, method: str = "subtractive", device: str | None = None, dtype=None):
    """Load a diffusers pipeline folder or hub id for `method`; AudioError naming the model when that fails.

    A hub id is only read from the local Hugging Face cache when the machine is offline; a local
    folder must hold ``model_index.json`` (what ``save_pretrained`` writes).
    """
    check_method(method)
    model = model or default_model(method)
    path = Path(model)
    if path.exists() and not (path / "model_index.json").is_file():
        raise AudioError(f"model {model}: not a diffusers pipeline folder (no model_index.json)")
    looks_local = path.is_absolute() or str(model).startswith((".", "~")) or len(path.parts) != 2
    if not path.exists() and looks_local:  # a hub id is "owner/name"
        raise AudioError(f"model {model}: no such folder")
    if not path.exists():
        from stemfill.audio.symbolic import paper_model_cached

        if not paper_model_cached(model) and not hub_reachable():
            raise AudioError(f"model {model}: not in the local Hugging Face cache, and the hub cannot be reached to "
                             f"download it; fetch it once where there is internet (huggingface-cli download {model}) "
                             "or use --method symbolic (offline, CPU)")
    with quiet_libraries():
        import torch
        from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInstructPix2PixPipeline

    cls = StableDiffusionInstructPix2PixPipeline if method == "subtractive" else StableDiffusionImg2ImgPipeline
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype is None:
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
    try:
        with quiet_libraries():
            pipe = cls.from_pretrained(model, torch_dtype=dtype, safety_checker=None, requires_safety_checker=False)
    except Exception as e:  # diffusers raises OSError, ValueError, EnvironmentError, HTTP errors...
        raise AudioError(f"cannot load model {model} ({cls.__name__}): {one_line(e, 200)}") from None
    want = PIX2PIX_IN_CHANNELS if method == "subtractive" else LATENT_CHANNELS
    got = pipe.unet.config.in_channels
    if got != want:
        hint = "use --method sdedit" if got == LATENT_CHANNELS else "use --method subtractive"
        raise AudioError(f"model {model}: its UNet takes {got} input channels, {method} needs {want} ({hint})")
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


# --- tiny offline components ------------------------------------------------------------------


def build_pipeline(components: dict, method: str = "subtractive"):
    """A diffusers pipeline object around `components` (no safety checker, no feature extractor)."""
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInstructPix2PixPipeline

    check_method(method)
    cls = StableDiffusionInstructPix2PixPipeline if method == "subtractive" else StableDiffusionImg2ImgPipeline
    pipe = cls(**components, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe
