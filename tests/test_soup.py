"""Averaging models' weights (stemfill average): the mean is exact, configs are kept, mismatches are refused."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from stemfill.cli import app
from stemfill.errors import ModelError
from stemfill.pianoroll.config import DiffusionConfig, SamplingConfig
from stemfill.pianoroll.model import build_model, load_model, save_pretrained
from stemfill.pianoroll.soup import average_models, parse_weights
from stemfill.pianoroll.train import PRESETS
from stemfill.pianoroll.unet import UNetConfig

TINY = UNetConfig(**PRESETS["tiny"])


def _saved(path, seed, unet=TINY, steps=4):
    torch.manual_seed(seed)
    m = build_model(unet, DiffusionConfig(density=(0.01, 0.02, 0.05)), sampling=SamplingConfig(sample_steps=steps))
    return save_pretrained(m, path, extra={"trained_steps": seed})


def test_average_is_the_weighted_mean_and_keeps_the_first_config(tmp_path):
    a, b = _saved(tmp_path / "a", 0, steps=4), _saved(tmp_path / "b", 1, steps=8)
    out = average_models([a, b], [0.25, 0.75], tmp_path / "ab", note="test")
    ma, mb, mo = (load_model(p).state_dict() for p in (a, b, out))
    for k, v in mo.items():
        if v.is_floating_point():
            torch.testing.assert_close(v, 0.25 * ma[k] + 0.75 * mb[k], rtol=1e-5, atol=1e-6)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["sampling"]["sample_steps"] == 4 and cfg["trained_steps"] == 0  # the first model's
    assert cfg["averaged"]["weights"] == [0.25, 0.75] and cfg["averaged"]["note"] == "test"
    # the end points are the models themselves
    same = average_models([a, b], [1.0, 0.0], tmp_path / "a1")
    for k, v in load_model(same).state_dict().items():
        assert torch.equal(v, ma[k])


def test_average_refuses_other_architectures_and_its_own_input(tmp_path):
    a = _saved(tmp_path / "a", 0)
    wide = _saved(tmp_path / "w", 1, unet=UNetConfig(**{**PRESETS["tiny"], "channels": (16, 16)}))
    with pytest.raises(ModelError, match="another network config"):
        average_models([a, wide], None, tmp_path / "out")
    b = _saved(tmp_path / "b", 1)
    with pytest.raises(ModelError, match="one of the inputs"):
        average_models([a, b], None, a)
    with pytest.raises(ModelError, match="at least two"):
        average_models([a], None, tmp_path / "out")


def test_parse_weights():
    assert parse_weights(None, 4) == [0.25] * 4
    assert parse_weights("0.3,0.7", 2) == [0.3, 0.7]
    for bad, msg in [("0.5", "1 numbers for 2"), ("a,b", "numbers separated"), ("0.8,0.8", "sum to 1"),
                     ("-0.5,1.5", "non-negative")]:
        with pytest.raises(ValueError, match=msg):
            parse_weights(bad, 2)


def test_cli_average(tmp_path):
    a, b = _saved(tmp_path / "a", 0), _saved(tmp_path / "b", 1)
    r = CliRunner().invoke(app, ["average", str(a), str(b), "--weights", "0.5,0.5", "-o", str(tmp_path / "ab")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "ab" / "model.safetensors").exists()
    r = CliRunner().invoke(app, ["average", str(a), str(b), "--weights", "0.9", "-o", str(tmp_path / "x")])
    assert r.exit_code == 1 and "error: --weights '0.9': 1 numbers for 2 models" in r.output
    assert not (tmp_path / "x").exists()
    r = CliRunner().invoke(app, ["average", str(a), str(tmp_path / "nope"), "-o", str(tmp_path / "y")])
    assert r.exit_code == 1 and "nope: no such model" in r.output
