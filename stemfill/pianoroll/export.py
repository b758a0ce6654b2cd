"""Export a model's network to ONNX, for the torch-free fill path (``fast.py``): ``export_onnx(model_dir)``.

``model.onnx`` is written beside the weights (``model.safetensors``). It holds the network only, without
the noise process or the decoding (numpy does those in ``fast.py``)::

    planes (B, 9 + context_planes, P, L) float32, t (B,) float32  ->  logits (B, 3, P, L) float32

with the batch B and the length L dynamic (L a multiple of the UNet's ``time_multiple``). The control
planes are left out: the fill path with controls steers with torch autograd and runs the torch model. The
exported graph is ``UNet.forward`` (``UNet.infer`` splits the batch over threads, which tracing would
bake into the graph); the file is checked against it before it replaces an older one (``onnx_parity``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from stemfill.errors import ModelError
from stemfill.files import atomic_path
from stemfill.pianoroll.grid import N_PITCHES, WINDOW

ONNX = "model.onnx"
OPSET = 17
TOLERANCE = 1e-3  # largest |logit difference| onnxruntime may show against torch on random planes


def onnx_path(model_path: str | os.PathLike) -> Path:
    """Where a model's ONNX file lives: beside its weights (a model folder, or a file in it)."""
    p = Path(model_path)
    return (p if p.is_dir() else p.parent) / ONNX


def export_onnx(model_path: str | os.PathLike, out: str | os.PathLike | None = None) -> tuple[Path, float]:
    """Write the network of the model at ``model_path`` as ONNX (default: ``model.onnx`` beside its weights).
    Returns (path, max |logit difference| against torch on a random batch); ModelError where it exceeds
    ``TOLERANCE`` (the file is then not written)."""
    import torch

    from stemfill.pianoroll.model import load_model

    model = load_model(model_path)
    net = model.net.eval()
    out = Path(out) if out is not None else onnx_path(model_path)
    planes = torch.zeros(2, n_input_planes(model), net.config.n_pitches, WINDOW)
    t = torch.full((2,), 0.5)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on the shape checks in UNet.forward
        torch.onnx.export(net, (planes, t), str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=["planes", "t"], output_names=["logits"],
                          dynamic_axes={"planes": {0: "batch", 3: "length"}, "t": {0: "batch"},
                                        "logits": {0: "batch", 3: "length"}})
        diff = onnx_parity(model, tmp)
        if diff > TOLERANCE:
            raise ModelError(f"{out}: the ONNX network's logits differ from torch's by {diff:.2g} (> {TOLERANCE})")
    return out, diff


def n_input_planes(model) -> int:
    """Input planes of the exported network: x_t, known and context per stem, then the other tracks' planes."""
    from stemfill.pianoroll.unet import IN_PLANES

    return IN_PLANES + model.context_planes


def onnx_parity(model, onnx_file: str | os.PathLike, batch: int = 3, length: int = WINDOW, seed: int = 0) -> float:
    """Max |logit difference| between onnxruntime running ``onnx_file`` and ``model.net.forward`` (torch), on a
    random batch of sparse binary planes and random times."""
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(seed)
    planes = (rng.random((batch, n_input_planes(model), N_PITCHES, length)) < 0.1).astype(np.float32)
    t = rng.random(batch).astype(np.float32)
    with torch.no_grad():
        ref = model.net(torch.from_numpy(planes), torch.from_numpy(t)).numpy()
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    if names != ["planes", "t"]:
        raise ModelError(f"{onnx_file}: ONNX inputs are {names}, expected ['planes', 't']")
    got = session.run(None, {"planes": planes, "t": t})[0]
    if got.shape != ref.shape:
        raise ModelError(f"{onnx_file}: ONNX logits have shape {got.shape}, expected {ref.shape}")
    return float(np.abs(got - ref).max())
