"""The torch-free fill path (pianoroll/fast.py, export.py): the numpy sampler against torch's given the same
logits and noise, ONNX export parity (a tiny model and the shipped one), and the engine choice end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from symbolic_toy import toy_song
from torch import nn
from typer.testing import CliRunner

import stemfill
from stemfill.cli import app
from stemfill.errors import StemfillError
from stemfill.pianoroll import fast
from stemfill.pianoroll.config import DiffusionConfig, SamplingConfig
from stemfill.pianoroll import diffusion
from stemfill.pianoroll.diffusion import BinaryDiffusion, decode_line, diatonic_rows, gumbel
from stemfill.pianoroll.fill import fill_roll, fill_song
from stemfill.pianoroll.model import build_model, load_model, save_pretrained
from stemfill.pianoroll.train import PRESETS
from stemfill.pianoroll.unet import UNetConfig
from stemfill.song.io import read_song, write_song

import onnxruntime as ort  # a hard dependency (the default engine): missing, this module fails, never skips

DEFAULT = Path(stemfill.__file__).parent / "models" / "default"
B, C, P, L = 4, 3, 48, 48
N_PLANES = 11  # 9 + 2 context planes


def _fake_weights(seed: int = 0):
    """Logits = W + sum_j A[j] * plane_j + (t > 0.5) / 4: dyadic numbers, so that both engines compute them (and
    their guided mixes) exactly and equal logits stay equal."""
    rng = np.random.default_rng(seed)
    W = (np.round(rng.normal(size=(C, P, L)) * 16) / 16 - 1.5).astype(np.float32)
    A = (np.round(rng.normal(size=(N_PLANES, C)) * 4) / 8).astype(np.float32)
    return W, A


def _np_logits(W, A):
    def logits(planes: np.ndarray, t: np.ndarray) -> np.ndarray:
        out = np.broadcast_to(W, (len(planes),) + W.shape).copy()
        for j in range(planes.shape[1]):
            out += A[j][None, :, None, None] * planes[:, j:j + 1]
        return out + ((t > 0.5) / 4).astype(np.float32)[:, None, None, None]
    return logits


class FakeNet(nn.Module):
    """Torch's side of ``_np_logits`` (torch leaves out absent trailing planes: they count as zero)."""

    def __init__(self, W, A):
        super().__init__()
        self.config = UNetConfig(context_planes=2)
        self.W, self.A = torch.from_numpy(W), torch.from_numpy(A)

    def forward(self, planes, t):
        out = self.W.expand(len(planes), *self.W.shape).clone()
        for j in range(planes.shape[1]):
            out += self.A[j][None, :, None, None] * planes[:, j:j + 1]
        return out + ((t > 0.5) / 4).float()[:, None, None, None]

    infer = forward


def _inputs(seed: int = 1):
    rng = np.random.default_rng(seed)
    ctx = rng.random((B, C, P, L)) < 0.05
    known = np.ones((B, C, P, L), dtype=bool)
    known[0, 1:] = False  # bass and guitar both missing (pitched_open)
    known[1, 1] = False  # the bass alone
    known[2, 1, :, 12:36] = False  # the bass over a span (partial_mass)
    known[3, 2, :, :30] = False  # the guitar over a span
    other = (rng.random((B, 2, P, L)) < 0.05).astype(np.float32)
    return ctx, known, other


SAMPLINGS = {
    "threshold": SamplingConfig(sample_steps=1, decode="threshold", threshold=0.3),
    "count": SamplingConfig(sample_steps=1, decode="count"),
    "count_min_note": SamplingConfig(sample_steps=1, decode="count", min_note=(0, 2, 3)),
    "line": SamplingConfig(sample_steps=1, decode="count", min_note=(0, 2, 2), line=(False, True, False)),
    "line_scale_free": SamplingConfig(sample_steps=1, decode="count", min_note=(0, 2, 2), line=(False, True, True),
                                      line_scale=True, line_starts_free=1.75),
    "partial_mass": SamplingConfig(sample_steps=1, decode="count", line=(False, True, False), partial_mass=True),
    "guidance": SamplingConfig(sample_steps=1, decode="count", guidance=2.0, partial_mass=True),
    "guidance_mass": SamplingConfig(sample_steps=2, decode="count", guidance=2.0, partial_mass=True,
                                    guidance_mass=1.0, line=(False, True, False)),
    "shipped": SamplingConfig(**json.loads((DEFAULT / "config.json").read_text())["sampling"]),
    "temperature": SamplingConfig(sample_steps=2, decode="count", min_note=(0, 2, 2), line=(False, True, False),
                                  temperature=(1.0, 0.7, 0.5), partial_mass=True),
    "steps": SamplingConfig(sample_steps=3, decode="count", line=(False, True, False), partial_mass=True,
                            guidance=1.5),
    "line_repeat": SamplingConfig(sample_steps=1, decode="count", min_note=(0, 2, 2), line=(False, True, True),
                                  line_repeat=0.5, line_scale=True),
    "join": SamplingConfig(sample_steps=1, decode="count", min_note=(0, 2, 2), line=(False, True, False),
                           join=(0.0, 0.5, 0.6)),
}


@pytest.mark.parametrize("name", list(SAMPLINGS))
def test_numpy_sampler_makes_torchs_notes_given_the_same_logits_and_noise(name, monkeypatch):
    sc = SAMPLINGS[name]
    W, A = _fake_weights()
    dc = DiffusionConfig(density=(0.05, 0.04, 0.06))
    ctx, known, other = _inputs()
    seed = 7

    draws = np.random.default_rng(seed)

    def bernoulli(p, generator=None):  # torch's noise from the numpy sampler's stream
        return torch.from_numpy((draws.random(tuple(p.shape), dtype=np.float32) < p.numpy()).astype(np.float32))

    monkeypatch.setattr(torch, "bernoulli", bernoulli)
    monkeypatch.setattr(diffusion, "gumbel", lambda shape, g: torch.from_numpy(fast.gumbel(tuple(shape), draws)))
    tm = BinaryDiffusion(FakeNet(W, A), dc, sc)
    want = tm.sample(torch.from_numpy(ctx), torch.from_numpy(known), other=torch.from_numpy(other)).numpy()
    nm = fast.OnnxModel(dc, sc, 2, 0, None, _np_logits(W, A))
    got = nm.sample(ctx, known, rng=np.random.default_rng(seed), other=other)
    assert got.dtype == bool and np.array_equal(got[known], ctx[known])  # known cells bit-exact
    assert (got & ~known).any()  # it plays something
    assert np.array_equal(got, want), f"{(got != want).sum()} cells differ"


def test_join_gaps_closes_a_held_notes_dip_and_keeps_a_reattack():
    """Row 0: one held note whose P dips for two steps, where the count decoder left a hole: joined. Row 1: two
    notes of one pitch with P near 0 between them (a re-attack): kept apart. Row 2: a hole over a known cell:
    never written. Row 3: a gap longer than ``max_gap``: kept."""
    L = 24
    p = np.zeros((4, L), np.float32)
    x = np.zeros((4, L), bool)
    p[0, 2:20] = 0.8
    p[0, 9:11] = 0.6  # a dip: 0.6 >= 0.6 x 0.8
    x[0, 2:9] = x[0, 11:20] = True
    p[1, 2:20] = 0.8
    p[1, 10] = 0.05  # the break of a re-attack
    x[1, 2:10] = x[1, 11:20] = True
    p[2] = p[0]
    x[2] = x[0]
    p[3, 2:20] = 0.8
    x[3, 2:8] = x[3, 11:20] = True  # three steps apart
    free = np.ones((4, L), bool)
    free[2, 9] = False
    got = fast.join_gaps(x, p, free, 0.6, 2) > 0
    assert got[0, 2:20].all() and got[0].sum() == 18
    assert np.array_equal(got[1], x[1]) and np.array_equal(got[2], x[2]) and np.array_equal(got[3], x[3])
    assert (fast.join_gaps(x, p, free, 0.0, 2) > 0)[1, 2:20].all()  # alpha 0: any short hole, re-attacks too
    assert np.array_equal(fast.join_gaps(x, p, free, 0.8, 2) > 0, x)  # the dip is too deep at 0.8


@pytest.mark.parametrize("seed", range(3))
def test_decoders_match_torch(seed):
    rng = np.random.default_rng(seed)
    p = (rng.random((B, C, P, L)) ** 6).astype(np.float32)
    known = np.zeros((B, C, P, L), dtype=bool)
    known[:, 0] = True
    known[1, 1, :, :20] = True
    want = BinaryDiffusion.decode(torch.from_numpy(p), torch.from_numpy(known), (0, 2, 3)).numpy()
    assert np.array_equal(fast.decode_count(p, known, (0, 2, 3)), want)
    pc = p[:, 1]
    kn = known[:, 1].all(1)
    assert np.array_equal(fast.diatonic_rows(pc), diatonic_rows(torch.from_numpy(pc)).numpy())
    rows = fast.diatonic_rows(pc)
    starts = np.array([1.25, 1.75, 1.25, 1.0], dtype=np.float32)
    want = decode_line(torch.from_numpy(pc), torch.from_numpy(kn), torch.from_numpy(starts), 0.3, 2,
                       rows=torch.from_numpy(rows)).numpy()
    assert np.array_equal(fast.decode_line(pc, kn, starts, 0.3, 2, rows=rows), want)
    noise = fast.gumbel(p.shape, rng)  # drawn cells (temperature > 0) from the same noise
    temp = (1.0, 0.5, 0.0)
    want = BinaryDiffusion.decode(torch.from_numpy(p), torch.from_numpy(known), (0, 2, 3), temp,
                                  torch.from_numpy(noise)).numpy()
    assert np.array_equal(fast.decode_count(p, known, (0, 2, 3), temp, noise), want)
    want = decode_line(torch.from_numpy(pc), torch.from_numpy(kn), torch.from_numpy(starts), 0.3, 2,
                       rows=torch.from_numpy(rows), temperature=0.8, noise=torch.from_numpy(noise[:, 1])).numpy()
    assert np.array_equal(fast.decode_line(pc, kn, starts, 0.3, 2, rows=rows, temperature=0.8, noise=noise[:, 1]), want)
    want = decode_line(torch.from_numpy(pc), torch.from_numpy(kn), torch.from_numpy(starts), 0.3, 2,
                       rows=torch.from_numpy(rows), repeat=0.4).numpy()
    assert np.array_equal(fast.decode_line(pc, kn, starts, 0.3, 2, rows=rows, repeat=0.4), want)


def test_line_repeat_moves_off_a_hammered_root_only_where_p_allows():
    """Eight 8th notes; P holds the root (row 12) at 0.6 on every note and the fifth (row 19) at 0.4. The plain
    line plays the root eight times; with ``repeat`` 0.6 every other note moves to the fifth (0.4 >= 0.6 x 0.6);
    with 0.8 the fifth is too unlikely and the root stays."""
    L = 48
    p = np.zeros((1, P, L), np.float32)
    for k in range(8):
        s = 6 * k
        p[0, 12, s:s + 5] = 0.6
        p[0, 19, s:s + 5] = 0.4
    kn = np.zeros((1, L), bool)
    plain = fast.decode_line(p, kn, 1.0, 0.3, 2)
    moved = fast.decode_line(p, kn, 1.0, 0.3, 2, repeat=0.6)
    kept = fast.decode_line(p, kn, 1.0, 0.3, 2, repeat=0.8)

    def rows_at_starts(x):
        return [int(np.argmax(x[0, :, 6 * k])) for k in range(8)]

    assert rows_at_starts(plain) == [12] * 8
    assert rows_at_starts(moved) == [12, 19] * 4
    assert np.array_equal(kept, plain)
    t = decode_line(torch.from_numpy(p), torch.from_numpy(kn), 1.0, 0.3, 2, repeat=0.6).numpy()
    assert np.array_equal(t, moved)


def test_gumbel_noise_is_standard_gumbel():
    a = gumbel((200_000,), torch.Generator().manual_seed(0)).numpy()
    b = fast.gumbel((200_000,), np.random.default_rng(0))
    for x in (a, b):  # mean = Euler's constant, variance = pi^2 / 6
        assert abs(x.mean() - 0.5772) < 0.01 and abs(x.var() - np.pi ** 2 / 6) < 0.03


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(UNetConfig(**PRESETS["tiny"], prior_logit=0.5, context_planes=2),
                        DiffusionConfig(density=(0.3, 0.3, 0.3)),
                        sampling=SamplingConfig(sample_steps=2, decode="count", line=(False, True, False),
                                                partial_mass=True, chain_pitched=True, chain_guidance=2.0))
    with torch.no_grad():  # an untrained net predicts the same everywhere: give it weights that react
        for prm in model.net.parameters():
            prm.add_(torch.randn_like(prm) * 0.1)
    folder = save_pretrained(model, tmp_path_factory.mktemp("tiny") / "model")
    path, diff = fast_export(folder)
    assert path == folder / "model.onnx" and diff < 1e-4
    return folder


def fast_export(folder):
    from stemfill.pianoroll.export import export_onnx

    return export_onnx(folder)


def test_exported_tiny_model_matches_torch_at_other_batches_and_lengths(tiny_folder):
    from stemfill.pianoroll.export import onnx_parity

    model = load_model(tiny_folder)
    for batch, length in ((1, 96), (5, 384)):
        assert onnx_parity(model, tiny_folder / "model.onnx", batch=batch, length=length) < 1e-4


def test_shipped_onnx_matches_the_shipped_weights():
    """stemfill/models/default/model.onnx is the shipped safetensors' network (regenerate it with
    `stemfill export-onnx` after changing the weights)."""
    import onnx

    from stemfill.pianoroll.export import onnx_parity

    graph = onnx.load(str(DEFAULT / "model.onnx"))
    assert [i.name for i in graph.graph.input] == ["planes", "t"]
    model = load_model(DEFAULT)
    n_weights = sum(int(np.prod(i.dims)) for i in graph.graph.initializer)
    controls_in = model.net.conv_in.weight[:, 11:].numel()  # the control planes' input weights, unused there
    assert n_weights >= model.net.n_params() - controls_in > 2_000_000  # the weights are in the file
    assert onnx_parity(model, DEFAULT / "model.onnx", batch=2) < 1e-3


def test_fill_song_on_onnx_end_to_end(tiny_folder):
    song = toy_song(bars=12, stems=("drums",))
    om = fast.load_fill_model(tiny_folder, "auto")
    assert fast.engine_name(om) == "onnx"
    res = fill_song(song, ["bass", "guitar"], om, seed=3)
    assert res.engine == "onnx" and all(t.notes for t in res.added)
    again = fill_song(song, ["bass", "guitar"], fast.load_fill_model(tiny_folder, "onnx"), seed=3)
    assert [t.notes for t in again.added] == [t.notes for t in res.added]  # a seed, the same fill
    tm = fast.load_fill_model(tiny_folder, "torch")
    assert fast.engine_name(tm) == "torch" and fill_song(song, ["bass"], tm).engine == "torch"
    # candidates > 1 on an onnx model: handed to the torch model of the same folder
    assert fill_song(song, ["bass"], om, candidates=2).engine == "torch"


def test_fill_roll_keeps_known_cells_on_onnx(tiny_folder):
    om = fast.load_onnx_model(tiny_folder)
    rng = np.random.default_rng(0)
    roll = rng.random((3, 48, 700)) < 0.04
    known = np.ones((3, 700), dtype=bool)
    known[1, 100:600] = False
    out = fill_roll(om, roll, known, seed=1)
    assert np.array_equal(out[known[:, None, :].repeat(48, 1)], roll[known[:, None, :].repeat(48, 1)])
    assert (out & ~known[:, None, :]).any()


def test_engine_choice(tiny_folder, tmp_path, monkeypatch):
    assert fast.onnx_unsupported(tiny_folder) is None
    assert "controls" in fast.onnx_unsupported(tiny_folder, controls=True)
    assert "candidates" in fast.onnx_unsupported(tiny_folder, candidates=3)
    torch.manual_seed(0)
    bare = save_pretrained(build_model(UNetConfig(**PRESETS["tiny"])), tmp_path / "bare")  # no model.onnx
    assert "model.onnx" in fast.onnx_unsupported(bare)
    assert fast.engine_name(fast.load_fill_model(bare)) == "torch"
    with pytest.raises(StemfillError, match="cannot fill with onnxruntime"):
        fast.load_fill_model(bare, "onnx")
    monkeypatch.setenv(fast.ENGINE_ENV, "torch")
    assert fast.engine_name(fast.load_fill_model(tiny_folder)) == "torch"
    monkeypatch.setenv(fast.ENGINE_ENV, "nope")
    with pytest.raises(StemfillError, match="unknown engine"):
        fast.load_fill_model(tiny_folder)


def test_cli_reports_the_engine(tiny_folder, tmp_path):
    src = write_song(toy_song(bars=4), tmp_path / "song.mid")
    for engine, word in (("auto", "with onnxruntime:"), ("torch", "with torch:"), ("onnx", "with onnxruntime:")):
        out = tmp_path / f"{engine}.mid"
        r = CliRunner().invoke(app, ["midi", str(src), "--add", "bass", "--model", str(tiny_folder), "-o", str(out),
                                     "--engine", engine])
        assert r.exit_code == 0, r.output
        assert word in r.output and len(read_song(out).tracks) == 3
    r = CliRunner().invoke(app, ["midi", str(src), "--add", "bass", "--model", str(tiny_folder), "--engine", "gpu"])
    assert r.exit_code == 1 and "unknown engine" in r.output


def test_numpy_sampler_refuses_other_objectives():
    nm = fast.OnnxModel(DiffusionConfig(objective="atassi"), SamplingConfig(), 0, 0, None, _np_logits(*_fake_weights()))
    with pytest.raises(StemfillError, match="bernoulli"):
        nm.sample(np.zeros((1, C, P, L), bool), np.ones((1, C, P, L), bool))


def test_onnx_logits_do_not_depend_on_the_thread_count(tiny_folder):
    x = (np.random.default_rng(0).random((11, 11, 48, 96)) < 0.1).astype(np.float32)
    t = np.linspace(0, 1, 11).astype(np.float32)
    one = fast.onnx_logits(tiny_folder / "model.onnx", 1)(x, t)
    for n in (2, 3):
        assert np.array_equal(fast.onnx_logits(tiny_folder / "model.onnx", n)(x, t), one)


def test_cli_temperature(tiny_folder, tmp_path):
    src = write_song(toy_song(bars=4), tmp_path / "song.mid")
    notes = {}
    for engine in ("onnx", "torch"):
        for t in ("0", "drums=1"):
            out = tmp_path / f"{engine}-{t}.mid"
            r = CliRunner().invoke(app, ["midi", str(src), "--add", "drums", "--replace", "--model", str(tiny_folder),
                                         "-o", str(out), "--engine", engine, "--temperature", t])
            assert r.exit_code == 0, r.output
            notes[engine, t] = [(n.start, n.pitch) for n in read_song(out).stem_tracks("drums")[0].notes]
        assert notes[engine, "0"] != notes[engine, "drums=1"]  # drawn hits differ from the likeliest ones
    for bad, words in (("3", "outside 0 to 2"), ("bass=1", "bass is not being added"), ("loud", "use a number"),
                       ("keys=1", "unknown stem")):
        out = tmp_path / "bad.mid"
        r = CliRunner().invoke(app, ["midi", str(src), "--add", "drums", "--replace", "--model", str(tiny_folder),
                                     "-o", str(out), "--temperature", bad])
        assert r.exit_code != 0 and words in r.output and not out.exists(), r.output
