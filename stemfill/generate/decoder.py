"""The decoding stage that fill.py calls: which decoder a model's drums get, and running it on a whole roll."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from stemfill.generate.critic import Critic, get_critic, model_folder
from stemfill.generate.drums import PatternConfig, decode_drums
from stemfill.generate.library import PatternLibrary, get_library
from stemfill.generate.plan import Bar, PlanConfig, grid_bars, make_plan


@dataclass
class DrumDecoder:
    """Drums by whole bars from ``library`` (``drums.decode_drums``), planned by phrase (``plan.make_plan``)."""

    library: PatternLibrary
    patterns: PatternConfig = field(default_factory=PatternConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
    critic: Critic | None = None  # the realism critic of the phrase choice (critic.py; None: the draw alone)


def drum_decoder_for(model, library: str | os.PathLike | PatternLibrary | None = None,
                     decoder: str | None = None) -> DrumDecoder | None:
    """The model's drum decoder: None for cell decoding (``SamplingConfig.drum_decoder`` "cells", unless
    ``decoder`` says "patterns"); else one over ``library`` (a path or a library; default: the shipped one), with
    the drum critic of the model's folder where it has one."""
    which = decoder or getattr(model.sampling, "drum_decoder", "cells")
    if which == "cells":
        return None
    lib = library if isinstance(library, PatternLibrary) else get_library(library)
    return DrumDecoder(lib, critic=get_critic(model_folder(model), "drums"))


def decode_roll_drums(dec: DrumDecoder, drums: np.ndarray, p: np.ndarray, free: np.ndarray,
                      bars: list[Bar] | None = None, roll: np.ndarray | None = None, known: np.ndarray | None = None,
                      other: np.ndarray | None = None, seed: int = 0, forced_fills=None,
                      sections: bool = True, notes: list | None = None, parts: np.ndarray | None = None) -> np.ndarray:
    """The drum channel ``drums`` (P, T) with its open bars (``free`` (T,)) decoded by patterns from ``p``
    ((P, T) the network's P(hit)); bars the library cannot play keep their hits. ``bars``: the song's bars
    (default: 4/4 from step 0); ``roll``/``known``/``other``: what is known, for the section starts.
    ``notes``: a list that gets one line on what the decoder could not play by patterns. ``parts``: the bass and
    guitar as filled (2, P, T), for the critic (with ``other``); None: no critic."""
    C = dec.library.bits.shape[1]
    T = drums.shape[-1]
    bars = bars if bars is not None else grid_bars(T)
    rng = np.random.default_rng([int(seed), 7919])
    plan = make_plan(bars, roll, known, other, dec.plan, rng, forced_fills, sections=sections)
    hits, done = decode_drums(p[:C], free, plan, dec.library, dec.patterns, rng, dec.critic, parts, other)
    if notes is not None:
        missed = [b for b in bars if free[b.start:b.start + b.length].all() and not done[b.start:b.start + b.length].all()]
        if missed:
            meters = sorted({b.meter for b in missed})
            notes.append(f"drums: {len(missed)} of {len(bars)} bars are in a meter the pattern library has no "
                         f"phrases for ({', '.join(meters)}); there the model's own hits play")
    out = drums.copy()
    out[:C, done] = hits[:, done]
    out[C:, done] = False
    return out
