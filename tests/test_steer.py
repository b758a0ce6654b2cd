"""Control steering (steer.py): the decoded part meets the requested per-bar attributes; known cells stay."""

from __future__ import annotations

import numpy as np
import torch

from stemfill.generate.controls import (BAR, N_CONTROL_PLANES, ControlConfig, StemControls, bar_attributes,
                                        control_planes, fit_quantiles)
from stemfill.generate.steer import CRASH_ON, FILL_OFF, FILL_ON, soft_starts, steer
from stemfill.pianoroll.diffusion import DiffusionConfig, SamplingConfig, full_mask
from stemfill.pianoroll.fill import fill_chunks
from stemfill.pianoroll.grid import N_PITCHES
from stemfill.pianoroll.model import build_model
from stemfill.pianoroll.unet import UNetConfig
from symbolic_toy import toy_rolls

L = 4 * BAR
CFG = ControlConfig(quantiles={**fit_quantiles(toy_rolls(40, seed=1)),  # spread levels, as real parts have
                                "drums.density": list(np.linspace(2.0, 30.0, 21)),
                                "drums.syncopation": list(np.linspace(0.0, 1.0, 21)),
                                "guitar.register": list(np.linspace(5.0, 40.0, 21))})


def _p(b: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.sigmoid(torch.randn(b, 3, N_PITCHES, L, generator=g) * 1.5 - 3.0)


def _planes(reqs: list[dict]) -> torch.Tensor:
    return torch.from_numpy(np.stack([control_planes(r, L, N_PITCHES) for r in reqs]))


def _setup(b: int = 4, missing: int = 0):
    rolls = torch.from_numpy(toy_rolls(b, seed=2))
    known = torch.ones(b, 3, dtype=torch.bool)
    known[:, missing] = False
    kn = full_mask(known, rolls.shape)
    return kn, rolls & kn


def test_density_meets_its_target_per_bar_and_known_cells_stay():
    p = _p()
    kn, ctx = _setup()
    reqs = [{"drums": StemControls({"density": u})} for u in (0.15, 0.5, 0.85, 0.85)]
    out = steer(p, kn, ctx, _planes(reqs), CFG)
    assert torch.equal(out[kn], p[kn])  # known cells untouched
    dens = soft_starts(out[:, 0], 0).reshape(4, N_PITCHES, 4, BAR).sum((1, 3))  # (B, bars)
    want = torch.tensor([CFG.from_unit("drums", "density", u) for u in (0.15, 0.5, 0.85, 0.85)])
    assert torch.allclose(dens.mean(1), want, rtol=0.1)
    assert dens[0].max() < dens[1].min() and dens[1].max() < dens[2].min()


def test_no_request_leaves_p_as_it_is():
    p = _p(2)
    kn, ctx = _setup(2)
    assert steer(p, kn, ctx, _planes([{}, {}]), CFG) is p
    assert steer(p, kn, ctx, _planes([{"drums": StemControls({"density": 0.9})}] * 2), CFG, strength=0.0) is p


def test_syncopation_register_and_fills_move_their_own_measure():
    p = _p(2, seed=1)
    kn, ctx = _setup(2)
    out = steer(p, kn, ctx, _planes([{"drums": StemControls({"syncopation": 0.1}, fill_every=2)},
                                     {"drums": StemControls({"syncopation": 0.9}, fill_every=0)}]), CFG)
    s = soft_starts(out[:, 0], 0).reshape(2, N_PITCHES, 4, BAR)
    offbeat = (torch.arange(BAR) % 12 != 0).float()
    sync = (s.sum(1) * offbeat).sum(-1) / s.sum((1, 3))
    assert (sync[0] < sync[1]).all()
    last = s[..., BAR - 12:][:, [1, 2, 3, 7, 8, 9]].sum((1, 3))  # snare and tom starts in each bar's last beat
    assert (last[0, [1, 3]] >= FILL_ON - 0.5).all() and (last[0, [0, 2]] <= FILL_OFF + 0.5).all()
    assert (last[1] <= FILL_OFF + 0.5).all()
    crash = s[:, [10, 13, 14], :, :2].sum((1, 3))  # crash, china, splash starts on each downbeat
    assert crash[0, 2] >= CRASH_ON - 0.3  # the fill of bar 1 leads into a crash (bar 3's: in the next window)
    # register on a pitched stem: the mean row of the soft starts follows the request, density stays
    kn, ctx = _setup(2, missing=2)
    out = steer(p, kn, ctx, _planes([{"guitar": StemControls({"register": 0.1})},
                                     {"guitar": StemControls({"register": 0.9})}]), CFG)
    s = soft_starts(out[:, 2], 2)
    rows = torch.arange(N_PITCHES, dtype=torch.float32)
    reg = (s.sum(-1) * rows).sum(-1) / s.sum((1, 2))
    assert reg[0] + 3 < reg[1]
    before = soft_starts(p[:, 2], 2).sum((1, 2))
    assert torch.allclose(s.sum((1, 2)), before, rtol=0.25)  # random P: the tilt costs some starts


def test_a_steered_model_plays_the_requested_density():
    torch.manual_seed(0)
    m = build_model(UNetConfig(channels=(8, 16), down=((2, 2),), layers=(0, 1), norm_groups=4, time_dim=16,
                               attention=False, prior_logit=-2.0, control_planes=N_CONTROL_PLANES),
                    DiffusionConfig(density=(0.1, 0.1, 0.1)), CFG,
                    sampling=SamplingConfig(sample_steps=1, decode="count", control_steer=1.0))
    torch.nn.init.normal_(m.net.conv_out.weight, std=0.5)  # an untrained net's P would be one value: no likeliest cells
    rolls = toy_rolls(6, seed=3)
    known = np.ones((6, 3), dtype=bool)
    known[:, 0] = False
    got = {}
    for u in (0.15, 0.85):
        q = np.stack([control_planes({"drums": StemControls({"density": u})}, rolls.shape[-1], N_PITCHES)] * 6)
        out = fill_chunks(m, rolls, known, seed=1, controls=q)
        assert (out[:, 1:] == rolls[:, 1:]).all()
        raw, _ = bar_attributes(torch.from_numpy(out))
        got[u] = raw[("drums", "density")].mean().item()
        want = CFG.from_unit("drums", "density", u)
        assert abs(got[u] - want) <= max(1.0, 0.15 * want), (u, got[u], want)
    m.sampling.control_steer = 0.0  # off: the untrained model ignores the request
    q = np.stack([control_planes({"drums": StemControls({"density": 0.85})}, rolls.shape[-1], N_PITCHES)] * 6)
    raw, _ = bar_attributes(torch.from_numpy(fill_chunks(m, rolls, known, seed=1, controls=q)))
    assert abs(raw[("drums", "density")].mean().item() - got[0.85]) > 1.0


def test_density_requests_keep_the_models_bar_to_bar_contour():
    from stemfill.generate.steer import with_contour

    own = torch.tensor([[10.0, 10.0, 10.0, 30.0], [0.0, 0.0, 0.0, 0.0], [4.0, 8.0, 4.0, 8.0]])
    target = torch.tensor([[15.0] * 4, [15.0] * 4, [6.0, 6.0, 20.0, 20.0]])
    given = torch.ones(3, 4, dtype=torch.bool)
    given[2, 0] = False
    out = with_contour(target, given, own)
    assert torch.allclose(out[0], torch.tensor([10.0, 10.0, 10.0, 30.0]) * 1.0)  # mean 15 already: as the model has it
    assert torch.equal(out[1], target[1])  # the model expects nothing there: the request stands
    assert out[2, 0] == 6.0 and out[2, 1] == 6.0  # a bar not given keeps its value; one alone in its group is met
    assert torch.allclose(out[2, 2:], torch.tensor([4.0, 8.0]) * (40.0 / 12.0))  # the pair keeps its 1:2 contour


def test_sections_put_fills_before_the_song_changes():
    from stemfill.generate.sections import fill_bars, section_starts

    T = 24 * BAR  # six 4-bar phrases: C major chords, then from bar 12 a busier part in F# (a new section)
    roll = np.zeros((3, N_PITCHES, T), dtype=bool)
    for t in range(0, T, 12):
        roll[0, 0, t] = True
        rows = (12, 16, 19) if t < 12 * BAR else (18, 22, 25)
        step = 12 if t < 12 * BAR else 6
        for u in range(t, min(T, t + 12), step):
            roll[2, list(rows), u:u + step - 1] = True
    known = np.ones((3, T), dtype=bool)
    known[0] = False
    assert section_starts(roll, known) == [12]
    assert fill_bars(roll, known) == [11]
    planes = control_planes({"drums": StemControls(fill_bars=(11,))}, T, N_PITCHES)
    i = 3 * 2  # drums' fill slot (the fourth) value plane; given only in bar 11
    assert planes[i, 0, 11 * BAR] == 1 and planes[i + 1, 0, 11 * BAR] == 1 and planes[i + 1, 0, 10 * BAR] == 0

    from stemfill.generate.controls import parse_controls, resolve_controls

    req = resolve_controls(parse_controls(["drums"], {}, fills="sections"), ["drums"], CFG)
    assert req["drums"].fill_sections and req["drums"].fill_every is None and not req["drums"].empty()
