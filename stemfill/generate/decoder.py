"""The decoding stage that fill.py calls: which decoder a model's drums get, and running it on a whole roll."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from stemfill.generate.controls import DrumTargets
from stemfill.generate.critic import Critic, get_critic, model_folder
from stemfill.generate.drums import PatternConfig, decode_drums
from stemfill.generate.library import PatternLibrary, get_library
from stemfill.generate.plan import Bar, PlanConfig, grid_bars, make_plan
from stemfill.generate.rests import RestModel, get_rests, stem_parts


@dataclass
class DrumDecoder:
    """Drums by whole bars from ``library`` (``drums.decode_drums``), planned by phrase (``plan.make_plan``)."""

    library: PatternLibrary
    patterns: PatternConfig = field(default_factory=PatternConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
    critic: Critic | None = None  # the realism critic of the phrase choice (critic.py; None: the draw alone)
    rests: RestModel | None = None  # where the drums rest in a whole song (rests.py; None: nowhere)


def drum_decoder_for(model, library: str | os.PathLike | PatternLibrary | None = None,
                     decoder: str | None = None) -> DrumDecoder | None:
    """The model's drum decoder: None for cell decoding (``SamplingConfig.drum_decoder`` "cells", unless
    ``decoder`` says "patterns"); else one over ``library`` (a path or a library; default: the shipped one), with
    the drum critic and the rest model of the model's folder where it has them."""
    which = decoder or getattr(model.sampling, "drum_decoder", "cells")
    if which == "cells":
        return None
    lib = library if isinstance(library, PatternLibrary) else get_library(library)
    return DrumDecoder(lib, critic=get_critic(model_folder(model), "drums"),
                       rests=get_rests(model_folder(model), "drums"))


def decode_roll_drums(dec: DrumDecoder, drums: np.ndarray, p: np.ndarray, free: np.ndarray,
                      bars: list[Bar] | None = None, roll: np.ndarray | None = None, known: np.ndarray | None = None,
                      other: np.ndarray | None = None, seed: int = 0, forced_fills=None,
                      sections: bool = True, notes: list | None = None, parts: np.ndarray | None = None,
                      targets: DrumTargets | None = None) -> np.ndarray:
    """The drum channel ``drums`` (P, T) with its open bars (``free`` (T,)) decoded by patterns from ``p``
    ((P, T) the network's P(hit)); bars the library cannot play keep their hits. ``bars``: the song's bars
    (default: 4/4 from step 0); ``roll``/``known``/``other``: what is known, for the section starts.
    ``notes``: a list that gets one line on what the decoder could not play by patterns. ``parts``: the bass and
    guitar as filled (2, P, T), for the critic (with ``other``); None: no critic. ``targets``: a drum request
    read from the control planes (``controls.drum_targets``, on ``bars``): its bars asked to end in a fill (or
    not) bind the plan, its density, syncopation, toms and groove steer the choice of phrases."""
    C = dec.library.bits.shape[1]
    T = drums.shape[-1]
    bars = bars if bars is not None else grid_bars(T)
    rng = np.random.default_rng([int(seed), 7919])
    if targets is not None and (targets.fill == 1).any():
        forced_fills = set(forced_fills or ()) | {int(b) for b in np.flatnonzero(targets.fill == 1)}
    song_parts = None
    if sections and dec.rests is not None and parts is not None:  # the bass and guitar as filled, the other tracks
        song_parts = stem_parts("drums", [drums, parts[0], parts[1]], other)
    plan = make_plan(bars, roll, known, other, dec.plan, rng, forced_fills, sections=sections, rest_model=dec.rests,
                     parts=song_parts)
    if targets is not None and (targets.fill >= 0).any():  # the request binds the plan: fills there, none here
        no = np.flatnonzero(targets.fill == 0)
        plan.fill[no] = False
        after = no[no + 1 < len(bars)] + 1  # no crash after a bar asked not to fill, but at a section start
        plan.crash[after] &= plan.section_start[after]
        plan.constrain_fills = True
        plan.bound = targets.fill >= 0
    hits, done = decode_drums(p[:C], free, plan, dec.library, dec.patterns, rng, dec.critic, parts, other, targets)
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
