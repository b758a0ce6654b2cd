"""Build, save and load a stem-filling model (``BinaryDiffusion`` around a ``UNet``).

A saved model is a diffusers-style folder::

    DIR/model.safetensors   the (EMA) weights of BinaryDiffusion
    DIR/config.json         {"unet": UNetConfig, "diffusion": DiffusionConfig, "sampling": SamplingConfig,
                             "controls": ControlConfig (models with control planes), ...}

``load_model`` takes that folder, a ``.safetensors`` file with ``config.json`` beside
it, or a training checkpoint ``ckpt.pt`` (its EMA weights). Anything wrong with the
file is a ``ModelError`` with a one-line reason. A config that keeps the sampling keys inside
"diffusion", with no "sampling" section (older model folders and checkpoints), loads the same
(``split_sampling``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from stemfill.errors import ModelError
from stemfill.generate.controls import ControlConfig
from stemfill.pianoroll.config import DiffusionConfig, SamplingConfig, split_sampling
from stemfill.files import atomic_path, atomic_write_bytes
from stemfill.pianoroll.grid import BASS_LOW, GUITAR_LOW, N_PITCHES

if TYPE_CHECKING:  # torch is imported where a model is built: the onnxruntime fill path reads configs only
    import torch

    from stemfill.pianoroll.diffusion import BinaryDiffusion
    from stemfill.pianoroll.unet import UNetConfig

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
GRID = {"n_pitches": N_PITCHES, "bass_low": BASS_LOW, "guitar_low": GUITAR_LOW}  # what the roll codec encodes
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "default"  # the model shipped in the package


def default_model_path() -> Path:
    """The embedded default model's folder; ModelError where the package was installed without it."""
    if not (DEFAULT_MODEL / WEIGHTS).exists():
        raise ModelError(f"no default model installed at {DEFAULT_MODEL}; train one with `stemfill train` "
                         "and pass --model RUN/model")
    return DEFAULT_MODEL


def build_model(unet: UNetConfig | dict | None = None, diffusion: DiffusionConfig | dict | None = None,
                controls: ControlConfig | dict | None = None,
                sampling: SamplingConfig | dict | None = None) -> BinaryDiffusion:
    """A model of these configs; ``controls`` says what its control planes mean (models that have them);
    ``sampling`` None: the default ``SamplingConfig``."""
    from stemfill.pianoroll.diffusion import BinaryDiffusion
    from stemfill.pianoroll.unet import UNet, UNetConfig

    ucfg = UNetConfig(**unet) if isinstance(unet, dict) else (unet or UNetConfig())
    dcfg = DiffusionConfig(**diffusion) if isinstance(diffusion, dict) else (diffusion or DiffusionConfig())
    scfg = SamplingConfig(**sampling) if isinstance(sampling, dict) else sampling
    model = BinaryDiffusion(UNet(ucfg), dcfg, scfg)
    ccfg = ControlConfig(**controls) if isinstance(controls, dict) else controls
    if ucfg.control_planes and ccfg is None:
        raise ValueError(f"a UNet with {ucfg.control_planes} control planes needs a control config")
    model.controls = ccfg if ucfg.control_planes else None
    return model


def model_config(model: BinaryDiffusion) -> dict:
    cfg = {"unet": asdict(model.net.config), "diffusion": asdict(model.config), "sampling": asdict(model.sampling)}
    if getattr(model, "controls", None) is not None:
        cfg["controls"] = asdict(model.controls)
    return cfg


def from_config(cfg: dict) -> BinaryDiffusion:
    """The model a saved config describes (either layout, ``split_sampling``), with fresh weights."""
    cfg = split_sampling(cfg)
    return build_model(cfg["unet"], cfg["diffusion"], cfg.get("controls"), cfg["sampling"])


def save_pretrained(model: BinaryDiffusion, directory: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write ``model.safetensors`` + ``config.json`` into ``directory`` (each file atomically)."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(d / WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    cfg = {**model_config(model), **(extra or {})}
    atomic_write_bytes(d / CONFIG, (json.dumps(cfg, indent=2) + "\n").encode())
    return d


def _build(cfg: dict, where: Path) -> BinaryDiffusion:
    try:
        model = from_config(cfg)
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{where}: bad model config ({type(e).__name__}: {e})") from e
    have = {"n_pitches": model.net.config.n_pitches, "bass_low": model.config.bass_low,
            "guitar_low": model.config.guitar_low}
    bad = [f"{k} {v} (model) vs {GRID[k]} (this stemfill)" for k, v in have.items() if v != GRID[k]]
    if bad:
        raise ModelError(f"{where}: a model of another pitch grid ({'; '.join(bad)})")
    return model


def _load_state(model: BinaryDiffusion, state: dict, where: Path) -> BinaryDiffusion:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        reason = " ".join(x.strip() for x in first[:3])[:300]
        raise ModelError(f"{where}: weights do not fit the model config ({reason})") from e
    return model.eval()


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> BinaryDiffusion:
    """Load a model folder, a ``.safetensors`` (with config.json beside it) or a ``ckpt.pt`` (EMA weights)."""
    import torch

    p = Path(path)
    if not p.exists():
        raise ModelError(f"{p}: no such model file or folder")
    if p.is_dir():
        if (p / WEIGHTS).exists():
            p = p / WEIGHTS
        elif (p / "ckpt.pt").exists():
            p = p / "ckpt.pt"
        else:
            raise ModelError(f"{p}: folder has neither {WEIGHTS} nor ckpt.pt")
    if p.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        cfg_path = p.parent / CONFIG
        if not cfg_path.exists():
            raise ModelError(f"{p}: no {CONFIG} beside the weights")
        try:
            cfg = json.loads(cfg_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ModelError(f"{cfg_path}: corrupt config ({e})") from e
        model = _build(cfg, cfg_path)
        try:
            state = load_file(str(p))
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise ModelError(f"{p}: corrupt weights file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from e
        model = _placed(_load_state(model, state, p), device)
        model.folder = p.parent  # where decoders find what belongs to these weights (generate/critic.py)
        return model
    try:
        ck = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises many kinds for a bad pickle/zip
        raise ModelError(f"{p}: not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
    if not isinstance(ck, dict) or "config" not in ck or ("ema" not in ck and "model" not in ck):
        raise ModelError(f"{p}: not a stemfill checkpoint (expected keys config, ema/model)")
    model = _build(ck["config"], p)
    model = _placed(_load_state(model, ck.get("ema") or ck["model"], p), device)
    model.folder = p.parent
    return model


def _placed(model: BinaryDiffusion, device: str | torch.device) -> BinaryDiffusion:
    """``model`` on ``device``. On the CPU the convolution weights take the channels-last layout, oneDNN's
    own, as the activations do in ``UNet.infer``: the same logits, without a copy of the weights into that
    layout at every layer."""
    import torch

    model = model.to(device)
    if model.r.device.type == "cpu":
        model.net.to(memory_format=torch.channels_last)
    return model
