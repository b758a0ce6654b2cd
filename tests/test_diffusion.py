"""The symbolic model: UNet + binary diffusion, training loop, save/load. Tiny configs, CPU, seeded."""

from __future__ import annotations

import copy
import json
from dataclasses import fields

import numpy as np
import pytest
import torch
from symbolic_toy import make_chunk_folder, toy_rolls

from stemfill.errors import ModelError, StemfillError
from stemfill.pianoroll.diffusion import (SAMPLING_KEYS, BinaryDiffusion, DiffusionConfig, SamplingConfig, decode_line,
                                          diatonic_rows, pitched_context, pitched_open, span_mask, subtractive_mask)
from stemfill.pianoroll.fill import fill_chunks
from stemfill.pianoroll.model import build_model, load_model, save_pretrained, split_sampling
from stemfill.pianoroll.train import PRESETS, TrainConfig, shift_rows, train, training_batch
from stemfill.pianoroll.unet import UNet, UNetConfig, one_thread_per_op

TINY = UNetConfig(**PRESETS["tiny"])


def tiny_model(objective: str = "bernoulli", seed: int = 0) -> BinaryDiffusion:
    torch.manual_seed(seed)
    return build_model(TINY, DiffusionConfig(objective=objective, density=(0.01, 0.02, 0.05)),
                       sampling=SamplingConfig(sample_steps=4))


def test_unet_shapes_and_default_size():
    x = torch.zeros(2, 9, 48, 192)
    assert UNet(TINY)(x, torch.rand(2)).shape == (2, 3, 48, 192)
    n = UNet(UNetConfig()).n_params()
    assert 0.5e6 < n < 3e6, n
    with pytest.raises(ValueError, match="multiple"):
        UNet(UNetConfig())(torch.zeros(1, 9, 48, 100), torch.rand(1))


def test_unet_infer_rounds_the_same_on_any_number_of_threads():
    """CPU inference runs chunks of windows, each on one thread: the logits do not depend on torch's thread count
    or on the weights' memory layout, and are forward()'s up to float rounding."""
    torch.manual_seed(0)
    net = UNet(TINY).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    x, t = torch.rand(7, 9, 48, 192).round(), torch.rand(7)  # 7 windows: chunks of 4 and 3
    threads = torch.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            outs.append(net.infer(x, t))
            assert torch.get_num_threads() == n
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(outs[0], o) for o in outs[1:])
    assert outs[0].is_contiguous() and not outs[0].requires_grad
    assert torch.equal(copy.deepcopy(net).to(memory_format=torch.channels_last).infer(x, t), outs[0])
    with one_thread_per_op():
        assert torch.get_num_threads() == 1
        assert torch.equal(net.infer(x, t), outs[0])
    assert torch.get_num_threads() == threads
    with torch.no_grad():
        torch.testing.assert_close(net(x, t), outs[0], rtol=1e-4, atol=1e-4)


def test_sampling_gives_the_same_notes_on_any_number_of_threads():
    """The network's chunks and every other op of sampling: the same cells whatever torch's thread count."""
    model = tiny_model()
    model.sampling.decode, model.sampling.line = "count", (False, True, False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    rolls, known = toy_rolls(5, seed=8), np.array([[True, False, True]] * 5)
    threads = torch.get_num_threads()
    try:
        outs = []
        for n in (1, 3):
            torch.set_num_threads(n)
            outs.append(fill_chunks(model, rolls, known, steps=2, seed=4, guidance=1.5))
            assert torch.get_num_threads() == n
    finally:
        torch.set_num_threads(threads)
    assert (outs[0] == outs[1]).all() and outs[0][:, 1].any()


def test_subtractive_mask_removes_only_present_stems():
    x0 = torch.from_numpy(toy_rolls(64, seed=3))
    known = subtractive_mask(x0, 2, torch.Generator().manual_seed(0))
    present = x0.flatten(2).any(-1)
    assert not (~known & ~present).any()  # an empty stem is never a target
    removed = (~known).sum(1)
    assert ((removed >= 1) & (removed <= 2)).all()
    assert (known & present).any(1)[present.sum(1) >= 2].all()  # some context always stays


def test_shift_rows_moves_bass_and_guitar_only():
    x = toy_rolls(8, seed=1)
    shifts = np.array([3, -2, 0, 5, -5, 1, 0, 2])
    y = shift_rows(x, shifts)
    assert (y[:, 0] == x[:, 0]).all()  # drums never shift
    for i, k in enumerate(shifts):
        if k >= 0:
            assert (y[i, 1:, k:] == x[i, 1:, :x.shape[2] - k]).all() and not y[i, 1:, :k].any()
        else:
            assert (y[i, 1:, :k] == x[i, 1:, -k:]).all() and not y[i, 1:, k:].any()


def test_span_mask_removes_a_span_of_the_removed_stems_only():
    x0 = torch.from_numpy(toy_rolls(200, seed=4))
    g = torch.Generator().manual_seed(0)
    whole = subtractive_mask(x0, 2, g)
    known = span_mask(whole, 192, 0.5, g)
    assert known.shape == (200, 3, 192)
    assert known[whole].all()  # known stems stay known at every step
    partial = (known.any(-1) & ~known.all(-1))  # (B, C): removed over part of the window only
    share = partial.any(1).float().mean().item()
    assert 0.3 < share < 0.6, share
    for i, c in zip(*torch.nonzero(partial, as_tuple=True)):
        k = known[i, c]
        gap = torch.nonzero(~k).flatten()
        assert (~k[gap.min():gap.max() + 1]).all()  # one span, known before and after it
        assert gap.min() % 12 == 0 and (gap.max() + 1) % 12 == 0  # on beats
        assert torch.equal(known[i, :, gap.min()], whole[i])  # every removed stem shares the span
    assert span_mask(whole, 192, 0.0, g).equal(whole[:, :, None].expand(-1, -1, 192))


def test_key_prior_shifts_only_samples_with_pitched_context():
    rolls = toy_rolls(64, seed=5)
    cfg = TrainConfig(augment=5, key_prior=True)
    x0, known = training_batch(rolls, cfg, np.random.default_rng(0))
    shifted = (x0.numpy() != rolls).any((1, 2, 3))
    ctx = pitched_context(torch.from_numpy(rolls), known).numpy()
    assert not shifted[~ctx].any()  # only drums known: the song's own key
    assert shifted[ctx].mean() > 0.5  # the others shift as before (0 of -5..5 keeps some in place)
    assert (x0.numpy()[:, 0] == rolls[:, 0]).all()
    # without key_prior the batch is the earlier releases' batch: shifts, then the mask's seed
    rng = np.random.default_rng(1)
    x1, k1 = training_batch(rolls, TrainConfig(augment=5), rng)
    rng2 = np.random.default_rng(1)
    x2 = torch.from_numpy(shift_rows(rolls, rng2.integers(-5, 6, size=len(rolls))))
    k2 = subtractive_mask(x2, 2, torch.Generator().manual_seed(int(rng2.integers(2**62))))
    assert torch.equal(x1, x2) and torch.equal(k1, k2)


@pytest.mark.parametrize("objective", ["bernoulli", "atassi"])
def test_loss_finite_and_decreases(objective):
    model = tiny_model(objective)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    x0 = torch.from_numpy(toy_rolls(16, seed=0))
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    losses = []
    for _ in range(25):
        loss = model(x0, subtractive_mask(x0, 2, g))
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


@pytest.mark.parametrize("objective", ["bernoulli", "atassi"])
def test_known_cells_bit_exact(objective):
    model = tiny_model(objective)
    rolls = toy_rolls(3, seed=2)
    known = np.array([[True, False, True], [False, True, True], [False, False, True]])
    out = fill_chunks(model, rolls, known, steps=3, seed=1)
    assert out.dtype == bool and out.shape == rolls.shape
    k = np.broadcast_to(known[:, :, None, None], rolls.shape)
    assert (out[k] == rolls[k]).all()
    # per-step masks too
    kt = np.zeros((3, 3, 192), dtype=bool)
    kt[:, :, :50] = True
    out = fill_chunks(model, rolls, kt, steps=2, seed=1)
    assert (out[..., :50] == rolls[..., :50]).all()


def test_sampling_is_seeded():
    model = tiny_model()
    rolls = toy_rolls(2, seed=2)
    known = np.array([[True, False, True]] * 2)
    a = fill_chunks(model, rolls, known, steps=3, seed=7)
    b = fill_chunks(model, rolls, known, steps=3, seed=7)
    assert (a == b).all()
    with torch.no_grad():  # logits that depend on the input, so that guidance can move them
        torch.nn.init.normal_(model.net.conv_out.weight, std=0.5, generator=torch.Generator().manual_seed(0))
    a = fill_chunks(model, rolls, known, steps=3, seed=7)
    g = fill_chunks(model, rolls, known, steps=3, seed=7, guidance=3.0)
    c = fill_chunks(model, rolls, known, steps=3, seed=7, guidance=3.0, candidates=3)
    assert (g != a).any()  # guidance changes the fill
    assert (c == fill_chunks(model, rolls, known, steps=3, seed=7, guidance=3.0, candidates=3)).all()  # seeded
    for x in (a, g, c):
        assert (x[:, known[0]] == rolls[:, known[0]]).all()  # the known stems exact


def test_save_pretrained_round_trip(tmp_path):
    model = tiny_model()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    d = save_pretrained(model, tmp_path / "m")
    assert {p.name for p in d.iterdir()} == {"model.safetensors", "config.json"}
    rolls, known = toy_rolls(2, seed=4), np.array([[True, False, True]] * 2)
    want = fill_chunks(model, rolls, known, steps=3, seed=3)
    for path in (d, d / "model.safetensors"):
        got = fill_chunks(load_model(path), rolls, known, steps=3, seed=3)
        assert (got == want).all()


def old_layout(cfg: dict) -> dict:
    """A model config in the layout without a "sampling" section: its keys inside "diffusion"."""
    old = {k: v for k, v in cfg.items() if k != "sampling"}
    old["diffusion"] = {**cfg["diffusion"], **cfg["sampling"]}
    return old


def test_sampling_settings_are_saved_apart_and_the_older_layout_loads(tmp_path):
    """config.json has "diffusion" (the trained process) and "sampling"; a config.json or a checkpoint's
    "config" with the sampling keys inside "diffusion" loads to the same configs and fills the same."""
    assert not SAMPLING_KEYS & {f.name for f in fields(DiffusionConfig)}
    model = tiny_model()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.sampling = SamplingConfig(sample_steps=2, decode="count", line=(False, True, False), min_note=(0, 2, 2),
                                    line_starts_free=1.75, chain_pitched=True, chain_guidance=2.0)
    d = save_pretrained(model, tmp_path / "new", extra={"trained_steps": 5})
    cfg = json.loads((d / "config.json").read_text())
    assert set(cfg["sampling"]) == SAMPLING_KEYS and not SAMPLING_KEYS & set(cfg["diffusion"])
    old = old_layout(cfg)
    assert "sampling" not in old and split_sampling(old) == cfg
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(old))
    (folder / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes())
    ck = tmp_path / "ckpt.pt"
    torch.save({"config": old, "ema": model.state_dict(), "step": 5}, ck)
    rolls, known = toy_rolls(3, seed=2), np.array([[True, False, False]] * 3)
    want = fill_chunks(model, rolls, known, seed=1)
    for path in (d, folder, ck):
        m = load_model(path)
        assert m.config == model.config and m.sampling == model.sampling, path
        assert (fill_chunks(m, rolls, known, seed=1) == want).all(), path
    resaved = json.loads((save_pretrained(load_model(folder), tmp_path / "again") / "config.json").read_text())
    assert resaved == {k: v for k, v in cfg.items() if k != "trained_steps"}  # written in the current layout
    # where both have a key, the "sampling" section's value holds
    assert split_sampling({**old, "sampling": {"sample_steps": 3}})["sampling"]["sample_steps"] == 3


def test_load_model_errors(tmp_path):
    model = tiny_model()
    d = save_pretrained(model, tmp_path / "m")
    errors = []
    with pytest.raises(ModelError, match="no such") as e:
        load_model(tmp_path / "missing")
    errors.append((e.value, "missing"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((d / "config.json").read_text())
    (bad / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelError, match="corrupt") as e:
        load_model(bad)
    errors.append((e.value, "bad"))
    other = tmp_path / "other"
    other.mkdir()
    cfg = json.loads((d / "config.json").read_text())
    cfg["unet"]["channels"] = [16, 32]
    (other / "config.json").write_text(json.dumps(cfg))
    (other / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes())
    with pytest.raises(ModelError, match="do not fit") as e:
        load_model(other)
    errors.append((e.value, "other"))
    ck = tmp_path / "ckpt.pt"
    ck.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a readable checkpoint") as e:
        load_model(ck)
    errors.append((e.value, "ckpt.pt"))
    for err, name in errors:  # one line that names the user's path
        assert "\n" not in str(err) and name in str(err), str(err)


def _cfg(tmp_path, **kw) -> TrainConfig:
    data = make_chunk_folder(tmp_path / "chunks", n_train=24, n_valid=4)
    base = dict(data=str(data), out=str(tmp_path / "run"), size="tiny", steps=5, batch=4, warmup=2, val_every=2,
                ckpt_every=100, sample_every=0, log_every=1, lr=3e-3, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("masks", [{}, {"key_prior": True, "span_prob": 0.5}])
def test_train_resume_is_exact(tmp_path, masks):
    train(_cfg(tmp_path, out=str(tmp_path / "straight"), **masks), progress=False)
    cfg = _cfg(tmp_path, out=str(tmp_path / "resumed"), **masks)
    train(cfg, progress=False, until=3)
    ck = torch.load(tmp_path / "resumed" / "ckpt.pt", weights_only=False)
    assert ck["step"] == 3 and set(ck) >= {"config", "train", "model", "ema", "opt", "rng", "wall_time"}
    train(cfg, resume=True, progress=False)
    a = torch.load(tmp_path / "straight" / "ckpt.pt", weights_only=False)
    b = torch.load(tmp_path / "resumed" / "ckpt.pt", weights_only=False)
    assert a["step"] == b["step"] == 5
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
        assert torch.equal(a["ema"][k], b["ema"][k]), k
    # the run folder's model and the checkpoint load to the same EMA weights
    m1, m2 = load_model(tmp_path / "resumed" / "model"), load_model(tmp_path / "resumed" / "ckpt.pt")
    for (k, v), (_, w) in zip(m1.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(v, w), k
    log = [json.loads(x) for x in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert any("val_loss" in r for r in log)
    assert load_model(tmp_path / "resumed" / "model").config.window == 192


def test_train_resumes_a_checkpoint_of_the_older_config_layout(tmp_path):
    """A checkpoint whose "config" keeps the sampling keys inside "diffusion" (a run started before the
    "sampling" section) resumes, keeps its sampling settings, and from then on saves the current layout."""
    cfg = _cfg(tmp_path, out=str(tmp_path / "run"))
    train(cfg, progress=False, until=3)
    path = tmp_path / "run" / "ckpt.pt"
    ck = torch.load(path, weights_only=False)
    ck["config"]["sampling"].update(sample_steps=2, candidates=3)
    want = copy.deepcopy(ck["config"])
    ck["config"] = old_layout(ck["config"])
    torch.save(ck, path)
    train(cfg, resume=True, progress=False)
    ck = torch.load(path, weights_only=False)
    assert ck["step"] == 5 and ck["config"] == want
    assert load_model(tmp_path / "run" / "model").sampling == SamplingConfig(**want["sampling"])


def test_count_decoding_plays_the_expected_number_of_notes():
    p = torch.zeros(1, 3, 4, 5)
    p[0, 1] = 0.3  # 20 cells at 0.3: sum 6, none reaches 0.5
    p[0, 1, 2, :2] = 0.45  # the two likeliest cells of channel 1
    p[0, 2, 0, 0] = 0.9  # one confident note in channel 2
    known = torch.zeros(1, 3, 4, 5, dtype=torch.bool)
    known[0, 1, 3] = True  # a known row: never decoded, never counted
    x = BinaryDiffusion.decode(p, known)
    expect_1 = round(float((p[0, 1] * ~known[0, 1]).sum()))
    assert int(x[0, 1].sum()) >= expect_1 and not x[0, 1, 3].any()
    assert x[0, 1, 2, :2].all()  # the likeliest cells are among those kept
    assert int(x[0, 2].sum()) == 1 and x[0, 2, 0, 0]
    assert not x[0, 0].any()  # expected count 0 -> nothing


def test_temperature_draws_cells_in_proportion_to_p():
    from stemfill.pianoroll.diffusion import gumbel

    p = torch.zeros(1, 3, 2, 1)
    p[0, 0, 0] = 0.8  # a common drum (row 0) and a rare one: the count (1) goes to row 0 when nothing is drawn
    p[0, 0, 1] = 0.2
    known = torch.zeros_like(p, dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    draws = 4000
    rare = {}
    for t in (0.0, 0.5, 1.0):
        noise = gumbel((draws,) + p.shape[1:], g)
        x = BinaryDiffusion.decode(p.expand(draws, -1, -1, -1), known.expand(draws, -1, -1, -1), (), (t, 0.0, 0.0), noise)
        assert (x[:, 0].flatten(1).sum(1) == 1).all()  # the expected count is kept whatever is drawn
        rare[t] = float(x[:, 0, 1].mean())
    assert rare[0.0] == 0
    assert abs(rare[1.0] - 0.2) < 0.025  # in proportion to P
    assert abs(rare[0.5] - 0.04 / 0.68) < 0.015  # in proportion to P^2
    x = BinaryDiffusion.decode(p, known, (), (1.0, 0.0, 0.0), None)  # no noise: the likeliest, as temperature 0
    assert x[0, 0, 0].all() and not x[0, 0, 1].any()


def test_line_temperature_draws_the_pitch_not_the_rhythm():
    from stemfill.pianoroll.diffusion import decode_line, gumbel

    p = torch.zeros(1, 3, 48)
    p[0, 0, :] = 0.6  # the root, most of the mass
    p[0, 2, :] = 0.3  # a fifth
    p[0, :, ::12] += 0.5  # four note starts: rises at steps 0, 12, 24, 36
    p = p.clamp(max=1.0)
    kn = torch.zeros(1, 48, dtype=torch.bool)
    base = decode_line(p, kn, starts=1.0)
    g = torch.Generator().manual_seed(1)
    pitches = []
    for _ in range(200):
        x = decode_line(p, kn, starts=1.0, temperature=1.0, noise=gumbel(p.shape, g))
        assert ((x.sum(1) > 0) >= (base.sum(1) > 0)).all() and (x[0, :, ::12].sum(0) == 1).all()  # the same starts
        pitches += x[0].argmax(0)[::12].tolist()
    assert base[0].argmax(0)[::12].tolist() == [0, 0, 0, 0]
    share = pitches.count(2) / len(pitches)
    assert 0.2 < share < 0.45  # the fifth in about its share of the mass (1/3)


def test_consensus_picks_the_candidate_closest_to_the_others():
    from stemfill.pianoroll.fill import consensus

    a = torch.tensor([1, 1, 1, 0, 0, 0], dtype=torch.bool)
    b = torch.tensor([1, 1, 0, 0, 0, 0], dtype=torch.bool)  # close to a and c
    c = torch.tensor([1, 1, 0, 1, 0, 0], dtype=torch.bool)
    d = torch.tensor([0, 0, 0, 0, 1, 1], dtype=torch.bool)  # the outlier
    x = torch.stack([a, b, c, d])[None]
    s = consensus(x, torch.ones_like(x))
    assert s.shape == (1, 4)
    assert int(s.argmax()) in (0, 1, 2) and int(s.argmin()) == 3
    # known cells do not count: identical known cells make no candidate closer
    free = torch.ones_like(x)
    free[..., 4:] = False
    assert float(consensus(x, free)[0, 3]) == 0.0


def test_model_default_candidates_and_count_decode_keep_known_cells():
    model = tiny_model()
    model.sampling.decode, model.sampling.candidates = "count", 3
    rolls = toy_rolls(3, seed=5)
    known = np.array([[True, False, True], [True, False, False], [False, True, True]])
    out = fill_chunks(model, rolls, known, steps=1, seed=1)
    k = known[:, :, None, None].repeat(rolls.shape[2], 2).repeat(rolls.shape[3], 3)
    assert (out[k] == rolls[k]).all()
    assert (out == fill_chunks(model, rolls, known, steps=1, seed=1, candidates=3)).all()
    with pytest.raises(ValueError, match="decode"):
        SamplingConfig(decode="argmax")
    with pytest.raises(ValueError, match="candidates"):
        SamplingConfig(candidates=0)
    with pytest.raises(TypeError):  # sampling settings are not part of the trained process
        DiffusionConfig(decode="count")


def test_count_decoding_drops_notes_shorter_than_min_note():
    p = torch.zeros(1, 3, 2, 12)
    p[0, 1, 0, 0:4] = 0.9  # a 4-step note
    p[0, 1, 1, 6] = 0.9  # a 1-step blip
    p[0, 0, 0, 3] = 0.9  # a drum hit (1 step) in a channel without min_note
    known = torch.zeros_like(p, dtype=torch.bool)
    x = BinaryDiffusion.decode(p, known, min_note=(0, 2, 2))
    assert x[0, 1, 0, 0:4].all() and not x[0, 1, 1].any()
    assert x[0, 0, 0, 3] and int(x[0, 0].sum()) == 1
    y = BinaryDiffusion.decode(p, known)
    assert y[0, 1, 1, 6]  # without min_note the blip stays


def _line_notes(x: torch.Tensor) -> list[tuple[int, int, int]]:
    """(P, L) {0,1} -> [(start, length, row)] of its runs."""
    out = []
    for row in range(x.shape[0]):
        v = x[row].tolist() + [0]
        t = 0
        while t < len(v) - 1:
            if v[t]:
                e = t
                while v[e]:
                    e += 1
                out.append((t, e - t, row))
                t = e
            else:
                t += 1
    return sorted(out)


def test_line_decoding_keeps_a_start_whose_pitch_is_uncertain():
    """Bass as a line: a note surely starts at step 0 but its pitch is split over three rows (0.3 each,
    no cell reaches a confident note's 0.9); a confident note follows at step 8, then a rest."""
    p = torch.zeros(1, 6, 16)
    p[0, 0:3, 0:8] = 0.3
    p[0, 0, 0:8] = 0.35  # row 0 a little likelier
    p[0, 4, 8:12] = 0.9
    x = decode_line(p, torch.zeros(1, 16, dtype=torch.bool), starts=1.0, sounding=0.3)
    assert _line_notes(x[0]) == [(0, 8, 0), (8, 4, 4)]  # one note per start, the likeliest row, the rest kept
    assert int(x[0].sum(0).max()) == 1  # a line: one note at a time
    # a weaker start (rise 0.3) loses to the two strong ones when only two starts are expected
    p[0, 5, 13:16] = 0.3
    x = decode_line(p, torch.zeros(1, 16, dtype=torch.bool), starts=1.0, sounding=0.2)
    assert [n[0] for n in _line_notes(x[0])] == [0, 8]


def test_line_decoding_repeated_notes_and_known_steps():
    # two starts of the same pitch: the first note ends one step early (the roll codec's repeated-note rule)
    p = torch.zeros(1, 4, 12)
    p[0, 2, 0:12] = 0.9
    p[0, 2, 6] = 0.5  # a dip: the model expects a new attack here
    p[0, 2, 7:12] = 0.95
    x = decode_line(p, torch.zeros(1, 12, dtype=torch.bool), starts=2.0, sounding=0.3)
    assert _line_notes(x[0]) == [(0, 6, 2), (7, 5, 2)]
    # a context note that runs from the known steps into the unknown ones is not a new start
    q = torch.zeros(1, 4, 12)
    q[0, 1, 0:4] = 1.0  # known: a note from step 0
    q[0, 1, 4:8] = 0.8  # the model carries it on
    q[0, 3, 8:12] = 0.8  # then a new note
    known = torch.zeros(1, 12, dtype=torch.bool)
    known[0, :4] = True
    x = decode_line(q, known, starts=1.0, sounding=0.3)
    assert _line_notes(x[0]) == [(0, 8, 1), (8, 4, 3)]


def test_line_starts_per_window_and_where_the_guitar_is_filled_too():
    """decode_line takes one start multiplier per window; the model uses ``line_starts_free`` for the bass
    only in windows where the guitar has cells to fill too (drums alone to follow)."""
    p = torch.zeros(2, 4, 24)
    for t0, v in zip(range(0, 24, 6), (0.9, 0.7, 0.5, 0.35)):  # four clear starts, alternating rows
        p[:, (t0 // 6) % 2, t0:t0 + 5] = v
    none = torch.zeros(2, 24, dtype=torch.bool)
    x = decode_line(p, none, starts=torch.tensor([0.5, 1.0]), sounding=0.3)
    assert [[n[0] for n in sorted(_line_notes(x[i]))] for i in range(2)] == [[0], [0, 6]]  # round(0.5 x 2.45), round(1.0 x 2.45)

    model = tiny_model()
    model.sampling.line_starts, model.sampling.line_starts_free = 1.25, 1.75
    known = torch.tensor([[True, False, True],  # bass alone
                          [True, False, False],  # bass and guitar
                          [False, False, True]])  # drums and bass: the guitar is known
    full = known[:, :, None, None].expand(3, 3, 4, 8).clone()
    assert pitched_open(full, 1).tolist() == [False, True, False]
    assert model.line_starts(pitched_open(full, 1)).tolist() == [1.25, 1.75, 1.25]
    full[0, 2, :, 3] = False  # a --bars range regenerating the guitar too: some guitar cells open
    assert pitched_open(full, 1).tolist()[0]
    model.sampling.line_starts_free = None  # one multiplier everywhere
    assert model.line_starts(pitched_open(full, 1)).tolist() == [1.25, 1.25, 1.25]


def test_diatonic_rows_keep_a_line_in_the_scale_p_favours():
    """Only drums known: P is an average over keys. The line keeps to the 7-pitch-class scale with the most
    mass, so a note whose likeliest row is off that scale takes its best row in the scale instead."""
    P, L = 24, 12
    p = torch.zeros(1, P, L)
    for r in (0, 2, 4, 5, 7, 9, 11):  # C major mass
        p[0, r, 0:6] = 0.2
    p[0, 1, 6:12] = 0.5  # then C# is the likeliest single row ...
    p[0, 0, 6:12] = 0.4  # ... over C
    rows = diatonic_rows(p)
    assert rows[0, :12].tolist() == [bool(v) for v in (1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1)]
    assert (rows[0, 12:] == rows[0, :12]).all()  # every octave
    none = torch.zeros(1, L, dtype=torch.bool)
    assert _line_notes(decode_line(p, none, starts=1.0, sounding=0.3)[0])[-1][2] == 1  # C#, unrestricted
    assert _line_notes(decode_line(p, none, starts=1.0, sounding=0.3, rows=rows)[0])[-1][2] == 0  # C

    model = tiny_model()
    model.sampling.line_scale = True
    free = torch.tensor([True, False])
    lim = model.line_rows(p.expand(2, P, L), free)
    assert lim[0].tolist() == rows[0].tolist() and lim[1].all()  # a known guitar: no limit
    model.sampling.line_scale = False
    assert model.line_rows(p, free[:1]) is None


def test_partial_mass_gives_a_partly_known_channel_the_mass_of_a_wholly_missing_one():
    """Whole-song filling's second pass: the bass is known in the overlaps only. Its missing cells get the
    P mass the model expects when the whole bass is missing; windows with no such channel are untouched."""
    model = tiny_model()
    torch.manual_seed(1)
    with torch.no_grad():  # an untrained net's output layer starts at zero: make P depend on the input
        for w in model.net.parameters():
            w.normal_(0, 0.1)
    ctx = torch.rand(2, 3, 48, 192) < 0.05
    x = torch.bernoulli(model.r.expand(ctx.shape).clone())
    t = torch.ones(2)
    known = torch.ones_like(ctx)
    known[:, 1] = False
    known[0, 1, :, :48] = known[0, 1, :, 144:] = True  # window 0: bass written in both overlaps
    whole = known.clone()
    whole[0, 1] = False  # the same window with the whole bass missing, as in training
    with torch.no_grad():
        p = torch.sigmoid(model.model_logits(x, known, ctx & known, t))
        p_ref = torch.sigmoid(model.model_logits(x, whole, ctx & whole, t))
        out = model.partial_mass(p, x, known, ctx & known, t, 1.0)
    missing = ~known[0, 1]
    assert float(out[0, 1][missing].sum()) == pytest.approx(float(p_ref[0, 1][missing].sum()), rel=1e-4)
    assert float(p[0, 1][missing].sum()) != pytest.approx(float(p_ref[0, 1][missing].sum()), rel=1e-4)
    assert torch.equal(out[0, 1][~missing], p[0, 1][~missing])  # known cells: as they were
    assert torch.equal(out[1], p[1]) and torch.equal(out[0, [0, 2]], p[0, [0, 2]])  # nothing partly known
    model.sampling.partial_mass = True
    filled = model.sample(ctx & known, known, steps=1, seed=0)
    assert torch.equal(filled[known], (ctx & known)[known])


def test_guidance_mass_keeps_the_conditional_passs_note_count():
    """With ``guidance_mass`` m the guided last-step P on each channel's missing cells sums to m times the
    conditional pass's (known cells as they were), so count decoding plays as many notes as without guidance
    (m = 1), and the guided P still says where they go; 0 leaves the guided P as it is."""
    model = tiny_model()
    torch.manual_seed(2)
    with torch.no_grad():
        for w in model.net.parameters():
            w.normal_(0, 0.1)
    ctx = torch.rand(2, 3, 48, 192) < 0.05
    known = torch.ones_like(ctx)
    known[:, 2] = False  # the guitar missing
    x = torch.bernoulli(model.r.expand(ctx.shape).clone())
    t = torch.ones(2)
    with torch.no_grad():
        cond = torch.sigmoid(model.model_logits(x, known, ctx & known, t))
        guided = torch.sigmoid(model.guided_logits(x, known, ctx & known, t, 3.0))
        model.sampling.guidance_mass = 1.0
        p = model._last_p(x, known, ctx & known, t, 3.0)
        model.sampling.guidance_mass = 0.5
        half = model._last_p(x, known, ctx & known, t, 3.0)
        model.sampling.guidance_mass = 0.0
        off = model._last_p(x, known, ctx & known, t, 3.0)
    free = ~known
    for i in range(2):
        want = float(cond[i, 2][free[i, 2]].sum())
        assert float(p[i, 2][free[i, 2]].sum()) == pytest.approx(want, rel=1e-4)
        assert float(half[i, 2][free[i, 2]].sum()) == pytest.approx(want / 2, rel=1e-4)
    assert torch.equal(p[known], guided[known]) and torch.equal(off, guided)
    flat = lambda v: v[0, 2][free[0, 2]]  # noqa: E731
    top = torch.argsort(flat(guided), descending=True)[:20]
    assert torch.equal(torch.argsort(flat(p), descending=True)[:20], top)  # the same likeliest cells


def test_line_decoding_in_the_sampler_is_saved_and_keeps_known_cells(tmp_path):
    model = tiny_model()
    model.sampling.decode, model.sampling.line, model.sampling.min_note = "count", (False, True, False), (0, 2, 2)
    rolls = toy_rolls(4, seed=7)
    known = np.array([[True, False, True]] * 4)
    out = fill_chunks(model, rolls, known, steps=1, seed=3)
    assert (out[:, [0, 2]] == rolls[:, [0, 2]]).all()
    assert out[:, 1].sum(1).max() <= 1  # the bass is one line
    save_pretrained(model, tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.sampling.line == (False, True, False) and again.sampling.line_starts == model.sampling.line_starts
    assert (fill_chunks(again, rolls, known, steps=1, seed=3) == out).all()


def test_torchrun_two_processes_train_in_sync(tmp_path):
    """The DDP path, as documented (torchrun), with two CPU processes (gloo): it trains, checkpoints,
    and both processes end with the same weights although each drew its own batches."""
    import os
    import subprocess
    import sys

    data = make_chunk_folder(tmp_path / "chunks", n_train=24, n_valid=4)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def launch(run):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "stemfill.cli", "train", "--data", str(data), "-o", str(run), "--size", "tiny", "--steps", "4",
               "--batch", "4", "--warmup", "1", "--val-every", "2", "--ckpt-every", "2", "--sample-every", "0",
               "--log-every", "1", "--device", "cpu"]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)

    run = tmp_path / "run"
    r = launch(run)
    if r.returncode != 0 and "SIGABRT" in r.stderr:
        # Known flake, cause not found: under pytest on the 2-core CI machine a gloo worker sometimes aborted
        # (about 1 launch in 10-20). Not reproduced since: 0 aborts in 30 launches outside pytest and 25 under
        # pytest at load average 4-7 (2026-12-07). One fresh launch; any other failure fails. The abort's own
        # lines go to the run's warnings summary, so that the next one can be diagnosed.
        import warnings

        said = [line for line in r.stderr.splitlines() if any(w in line for w in (
            "terminate", "gloo", "what()", "Signal", "SIGABRT", "exitcode", "Error"))]
        warnings.warn("torchrun: a worker aborted (SIGABRT), launched again:\n" + "\n".join(said[-40:]))
        run = tmp_path / "run-again"
        r = launch(run)
    assert r.returncode == 0, r.stderr[:3000] + "\n...\n" + r.stderr[-1500:]  # the workers' own errors come first
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    sync = [e for e in log if "ddp_in_sync" in e]
    assert sync == [{"step": 4, "ddp_world_size": 2, "ddp_in_sync": True}]
    assert [e["step"] for e in log if "loss" in e] == [1, 2, 3, 4]
    assert torch.load(run / "ckpt.pt", weights_only=False)["step"] == 4
    load_model(run / "model")


def test_subtractive_mask_removes_all_three_only_where_other_tracks_are_heard():
    x0 = torch.zeros(64, 3, 8, 16, dtype=torch.bool)
    x0[:, :, 0, 0] = True  # every stem has notes
    heard = torch.arange(64) % 2 == 0
    all_gone = ~subtractive_mask(x0, 3, torch.Generator().manual_seed(0), allow_all=heard).any(1)
    assert all_gone[heard].any() and not all_gone[~heard].any()
    assert subtractive_mask(x0, 2, torch.Generator().manual_seed(0), allow_all=heard).any(1).all()
    assert subtractive_mask(x0, 3, torch.Generator().manual_seed(0)).any(1).all()  # none heard: one stays


def test_bf16_training_resumes_exactly_and_follows_fp32(tmp_path):
    """``precision="bf16"`` (with ``max_remove`` 3) trains, resumes bit for bit, and its losses stay near the fp32
    run's from the same seed (docs/training.md has the measurement on the real data)."""
    kw = dict(precision="bf16", max_remove=3)
    train(_cfg(tmp_path, out=str(tmp_path / "straight"), **kw), progress=False)
    cfg = _cfg(tmp_path, out=str(tmp_path / "resumed"), **kw)
    train(cfg, progress=False, until=3)
    train(cfg, resume=True, progress=False)
    a = torch.load(tmp_path / "straight" / "ckpt.pt", weights_only=False)
    b = torch.load(tmp_path / "resumed" / "ckpt.pt", weights_only=False)
    assert a["train"]["precision"] == "bf16" and a["config"]["diffusion"]["max_remove"] == 3
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    train(_cfg(tmp_path, out=str(tmp_path / "fp32"), max_remove=3), progress=False)

    def losses(run):
        rows = [json.loads(x) for x in (tmp_path / run / "log.jsonl").read_text().splitlines()]
        return np.array([r["loss"] for r in rows if "loss" in r])

    lb, lf = losses("straight"), losses("fp32")
    assert len(lb) == len(lf) == 5 and np.isfinite(lb).all()
    assert np.abs(lb - lf).max() < 0.05 * lf.max()
    with pytest.raises(StemfillError, match="precision 'fp16'"):
        train(_cfg(tmp_path, out=str(tmp_path / "bad"), precision="fp16"), progress=False)
