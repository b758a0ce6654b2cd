"""Average the weights of models of one architecture (a "model soup"; WiSE-FT when one is the start).

Fine-tunes from one starting point sit in one basin of the loss, so a weighted mean of their weights
is itself a working model; between the starting weights and a fine-tune it keeps some of what the
fine-tune gained and some of what it lost (Wortsman et al., "Robust fine-tuning of zero-shot models",
CVPR 2022; "Model soups", ICML 2022). ``average_models`` writes such a mean as a model folder.

The first model's config.json is kept (sampling settings, control quantiles, and so on); the others
must have the same network config and the same weight names and shapes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from stemfill.errors import ModelError

__all__ = ["average_models", "parse_weights"]


def parse_weights(text: str | None, n: int) -> list[float]:
    """'0.5,0.5' -> [0.5, 0.5]; None -> equal weights. They must be n non-negative numbers summing to 1."""
    if text is None:
        return [1.0 / n] * n
    try:
        w = [float(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"--weights {text!r}: expected numbers separated by commas") from None
    if len(w) != n:
        raise ValueError(f"--weights {text!r}: {len(w)} numbers for {n} models")
    if any(x < 0 for x in w) or abs(sum(w) - 1.0) > 1e-6:
        raise ValueError(f"--weights {text!r}: need non-negative numbers that sum to 1")
    return w


def average_models(paths: Sequence[str | os.PathLike], weights: Sequence[float] | None,
                   out: str | os.PathLike, note: str | None = None) -> Path:
    """Write the weighted mean of the models at ``paths`` (model folders or their .safetensors) to ``out``.

    ``weights`` None: equal. ``note`` goes into the written config's ``"averaged"`` record with the
    sources and weights, so the folder says how it was made. ModelError names the first model that
    does not fit the others."""
    import torch

    from stemfill.pianoroll.model import CONFIG, load_model, model_config, save_pretrained

    if len(paths) < 2:
        raise ModelError("averaging needs at least two models")
    w = list(weights) if weights is not None else [1.0 / len(paths)] * len(paths)
    if len(w) != len(paths):
        raise ModelError(f"{len(w)} weights for {len(paths)} models")
    out = Path(out)
    srcs = [Path(p) for p in paths]
    if any(out.resolve() == (p if p.is_dir() else p.parent).resolve() for p in srcs):
        raise ModelError(f"{out}: the output folder is one of the inputs; write the average elsewhere")
    models = [load_model(p) for p in srcs]
    first = models[0]
    base_cfg = model_config(first)
    for p, m in zip(srcs[1:], models[1:]):
        if model_config(m)["unet"] != base_cfg["unet"]:
            raise ModelError(f"{p}: another network config than {srcs[0]}; only one architecture averages")
    states = [m.state_dict() for m in models]
    mean = {}
    for k, v in states[0].items():
        if v.is_floating_point():
            acc = torch.zeros_like(v, dtype=torch.float64)
            for wi, s in zip(w, states):
                acc += wi * s[k].double()
            mean[k] = acc.to(v.dtype)
        else:
            mean[k] = v
    first.load_state_dict(mean)
    src_dir = srcs[0] if srcs[0].is_dir() else srcs[0].parent
    extra = {}
    if (src_dir / CONFIG).exists():  # keep the first model's non-network keys (data, trained_steps, ...)
        extra = {k: v for k, v in json.loads((src_dir / CONFIG).read_text()).items() if k not in base_cfg}
    extra["averaged"] = {"models": [str(p) for p in srcs], "weights": w, **({"note": note} if note else {})}
    return save_pretrained(first, out, extra=extra)
