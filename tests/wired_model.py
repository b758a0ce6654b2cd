"""A model wired by hand so that its drums read one control and nothing else: the CLI control tests use it to
check that a control given on the command line reaches the fill and moves the part the way it says.

The UNet's level-1 path and every residual branch are zeroed, so its drums logits are
``conv_out(silu(norm_out(conv_in(x) + row_emb)))`` with 1x1 taps. The activations are kept tiny (~1e-4), far
under GroupNorm's eps, so the norm is linear: ``(h - mean) / sqrt(eps)``. Each wiring uses one norm group (two
channels): a channel fed by a control plane and a channel fed by a per-row constant (``row_emb``).
Threshold decoding turns logits > 0 into notes, so the fill is a known function of the controls."""

from __future__ import annotations

import numpy as np
import torch

from stemfill.generate.controls import N_CONTROL_PLANES, ControlConfig, fit_quantiles, slot_index
from stemfill.pianoroll.diffusion import DiffusionConfig, SamplingConfig
from stemfill.pianoroll.model import build_model
from stemfill.pianoroll.roll import DRUM_KIT
from stemfill.pianoroll.unet import IN_PLANES, UNetConfig
from symbolic_toy import toy_rolls

S = 1e-4  # activation scale: far under GroupNorm's eps (1e-5 on the variance)
TOMS = [i for i, (name, _, _) in enumerate(DRUM_KIT) if name.endswith("tom")]


def wired_model(control: str):
    """control: "density" (drums play, at every step, the rows whose rank is under the requested density:
    none at auto or 0, one row at 0.15 (low), ten at 0.5, eighteen at 0.85 (high)), "fill" (toms in the bars whose fill flag is set) or "groove" (drums where the requested
    groove has an onset share of at least one half). With the control left to auto, no drums at all."""
    torch.manual_seed(0)
    cfg = ControlConfig(quantiles=fit_quantiles(toy_rolls(40, seed=1)))
    m = build_model(UNetConfig(channels=(8, 16), down=((2, 2),), layers=(0, 1), norm_groups=4, time_dim=16,
                               attention=False, control_planes=N_CONTROL_PLANES),
                    DiffusionConfig(density=(0.1, 0.1, 0.1)), cfg,
                    sampling=SamplingConfig(sample_steps=2, decode="threshold", threshold=0.5))
    net = m.net
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        up0 = net.up_blocks[-1][0]  # level 0's up block: cat([up path (0), skip = conv_in's output]) -> 8
        for o in range(8):
            up0.skip.weight[o, 8 + o] = 1.0
        net.norm_out.weight.fill_(1.0)
        n_rows = net.config.n_pitches
        plane = IN_PLANES + slot_index("drums", {"density": "density", "fill": "polyphony",
                                                 "groove": "groove"}[control])
        net.conv_in.weight[0, plane, 1, 1] = S  # channel 0: the control's value plane (group 0: channels 0, 1)
        if control == "density":
            # channel 1: row r's rank r / rows; drums play where the density exceeds it (and not at 0: auto)
            net.row_emb[0, 1, :, 0] = S * (torch.arange(n_rows) + 0.5) / n_rows
            # the group's mean is S * (density + 1/2) / 2: channel 1, normalised, is 8 (rank - that) + 7 (> -1.28,
            # where silu rises), and a row plays where silu of it is under 4.55: rank < (density + 1/2) / 2 - 0.3
            net.norm_out.weight[1] = 8.0 * (1e-5 ** 0.5) / S
            net.norm_out.bias[1] = 7.0
            net.conv_out.weight[0, 1, 1, 1] = -1.0
            net.conv_out.bias[0] = float(torch.nn.functional.silu(torch.tensor(4.6)))
        elif control == "fill":
            # channel 1: 1 on the tom rows. Both channels normalised are 8 (v - m) + 6 for their 0/1 value v, m
            # the group's mean over S (0.03 to 0.28 for fills in none to every 2nd bar); their silus sum to
            # over 23.5 where both are on, under 19.5 where one is: the toms play in the fill bars only
            net.row_emb[0, 1, TOMS, 0] = S
            net.norm_out.weight[:2] = 8.0 * (1e-5 ** 0.5) / S
            net.norm_out.bias[:2] = 6.0
            net.conv_out.weight[0, :2, 1, 1] = 1.0
            net.conv_out.bias[0] = -21.5
        else:  # groove: channel 0 alone, normalised 8 (v - m) + 2: over 4 (silu over 3.93) where v >= 1/2
            net.norm_out.weight[0] = 8.0 * (1e-5 ** 0.5) / S
            net.norm_out.bias[0] = 2.0
            net.conv_out.weight[0, 0, 1, 1] = 1.0
            net.conv_out.bias[0] = -float(torch.nn.functional.silu(torch.tensor(4.0)))
        net.conv_out.bias[1:] = -20.0  # bass and guitar: none
    return m
