"""A model's configs that need no torch: the noise process it was trained with (``DiffusionConfig``) and how it
samples (``SamplingConfig``), as config.json stores them (``split_sampling``). ``diffusion.BinaryDiffusion`` and
the onnxruntime fill path (``fast.py``) both read them."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from stemfill.pianoroll.grid import BASS_LOW, GUITAR_LOW, STEPS_PER_BEAT, WINDOW

OBJECTIVES = ("bernoulli", "atassi")
DECODES = ("threshold", "count")
DRUM_DECODERS = ("cells", "patterns")


@dataclass
class DiffusionConfig:
    """The trained noise process and the data it was trained on; fixed once the model is trained."""

    objective: str = "bernoulli"
    density: tuple[float, ...] = (0.02, 0.03, 0.03)  # per-channel prior r; train.py estimates it from data
    atassi_T: int = 100
    cond_drop: float = 0.1  # context dropout in training (classifier-free guidance)
    context_drop: float = 0.3  # training: share of samples that lose the other tracks' context (tabs have none)
    pos_weight: float = 1.0  # BCE weight of positive cells (bernoulli)
    max_remove: int = 2  # stems removed per training sample: 1..max_remove
    remove_only: str = ""  # the paper's setting: always remove this one stem (one model per instrument)
    window: int = WINDOW  # chunk length it was trained on (steps); whole-song filling uses it
    steps_per_beat: int = STEPS_PER_BEAT  # the roll grid it was trained on ...
    bass_low: int = BASS_LOW  # ... and its pitch range: MIDI pitch of the bass's and the guitar's row 0
    guitar_low: int = GUITAR_LOW

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"DiffusionConfig: objective {self.objective!r} is not one of {OBJECTIVES}")
        self.density = tuple(float(d) for d in self.density)


@dataclass
class SamplingConfig:
    """How a trained model samples (``BinaryDiffusion.sample``) and how fill.py drives it. Saved beside the
    weights (config.json's ``"sampling"``); changing them needs no training. The shipped model's values were
    chosen on the valid split (docs/model-card.md)."""

    sample_steps: int = 8  # default sampling steps (bernoulli: any; atassi: <= atassi_T)
    guidance: float = 1.0  # default guidance scale at sampling (1 = off)
    threshold: float = 0.5  # the last step keeps a cell where the predicted P(note) >= threshold
    decode: str = "threshold"  # last step: "threshold" (P >= threshold) or "count" (the expected number of notes)
    candidates: int = 1  # default fills sampled per window by fill.py (the best by consensus is kept)
    min_note: tuple[int, ...] = (0, 0, 0)  # count decoding, per channel: drop generated notes shorter than this (steps)
    line: tuple[bool, ...] = (False, False, False)  # count decoding, per channel: decode as one line (decode_line)
    line_starts: float = 1.25  # line decoding plays this x the summed rise of P note starts (see decode_line)
    line_starts_free: float | None = None  # ... where another pitched channel is being filled too (None: line_starts)
    line_sounding: float = 0.3  # line decoding: a note stops where P(any pitch sounding) < this
    line_repeat: float = 0.0  # line decoding: a note repeating the note before takes the runner-up pitch where its P mass is >= this x the best's (0: off)
    line_scale: bool = False  # line decoding, where only drums are known: notes keep to one diatonic scale (diatonic_rows)
    partial_mass: bool = False  # channels known over part of the window: take the expected count from a whole-channel fill
    chain_pitched: bool = False  # fill.py: with bass and guitar both missing, fill the bass, then the guitar given it
    chain_guidance: float | None = None  # fill.py: guidance of that second (guitar given the new bass) pass; None: guidance
    guidance_mass: float = 0.0  # > 0, with guidance != 1: the last step's P on each channel's missing cells gets this x the conditional pass's mass (diffusion.match_mass; 0 off)
    control_guidance: float = 1.0  # models with controls: how far past the fill without them the controls push
    control_steer: float = 0.0  # models with controls: steer the prediction toward the requested attributes (generate/steer.py; 0 off)
    temperature: tuple[float, ...] = (0.0, 0.0, 0.0)  # count decoding, per channel: 0 keeps the likeliest cells; > 0 draws them (gumbel_rank)
    join: tuple[float, ...] = (0.0, 0.0, 0.0)  # count decoding, per channel: join a note's cells across a gap of <= join_gap steps where P in the gap stays >= this x P at its edges (0: off; join_gaps)
    join_gap: int = 2
    groove: tuple[float, ...] = (0.0, 0.0, 0.0)  # whole songs, per channel (bass, guitar): a bar takes a rhythm the part plays elsewhere in the song unless its fit costs more than this (nats) for a change of groove (generate/groove.py; 0 off; the drums have their pattern decoder)
    drum_decoder: str = "cells"  # "cells": the last step's decoding above; "patterns": whole bars from a library (stemfill.generate)
    units: tuple[bool, ...] = (False, False, False)  # per channel (bass, guitar): each 4/4 bar the decoder's or a real player's, chosen by fit and the model folder's critic (generate/units.py; needs the folder's <stem>-patterns.npz)
    unit_config: dict = field(default_factory=dict)  # per stem name, generate.units.UnitConfig fields other than its DEFAULTS
    articulation: tuple[bool, ...] = (False, False, False)  # per channel (bass, guitar): one articulation per window, its note lengths moved to the spread of players' (generate/articulation.py; needs the folder's <stem>-articulation.json)

    def __post_init__(self) -> None:
        if self.decode not in DECODES:
            raise ValueError(f"SamplingConfig: decode {self.decode!r} is not one of {DECODES}")
        if int(self.candidates) < 1:
            raise ValueError(f"SamplingConfig: candidates must be >= 1, got {self.candidates}")
        self.min_note = tuple(int(v) for v in self.min_note)
        self.line = tuple(bool(v) for v in self.line)
        self.temperature = tuple(float(v) for v in self.temperature)
        self.join = tuple(float(v) for v in self.join)
        self.groove = tuple(float(v) for v in self.groove)
        self.units = tuple(bool(v) for v in self.units)
        self.articulation = tuple(bool(v) for v in self.articulation)
        if self.drum_decoder not in DRUM_DECODERS:
            raise ValueError(f"SamplingConfig: drum_decoder {self.drum_decoder!r} is not one of {DRUM_DECODERS}")
        if any(v < 0 for v in self.temperature):
            raise ValueError(f"SamplingConfig: temperature must be >= 0, got {self.temperature}")


SAMPLING_KEYS = frozenset(f.name for f in fields(SamplingConfig))  # config.json's "sampling" keys


def split_sampling(cfg: dict) -> dict:
    """A saved model config (config.json, or a checkpoint's "config") with its sampling settings in the
    "sampling" section: sampling keys found inside "diffusion" (the older layout) move there. Where a key is
    in both, the "sampling" section's value holds."""
    diffusion = dict(cfg["diffusion"])
    moved = {k: diffusion.pop(k) for k in list(diffusion) if k in SAMPLING_KEYS}
    return {**cfg, "diffusion": diffusion, "sampling": {**moved, **(cfg.get("sampling") or {})}}


MAX_TEMPERATURE = 2.0


def parse_temperature(values: list[str], add: list[str]) -> dict[str, float]:
    """``stemfill midi --temperature`` values ("0.7", or per stem "drums=1", comma-separated or repeated) ->
    {stem: temperature}; a bare number applies to every stem being added. ValueError with one line where a
    value is wrong."""
    from stemfill.song.song import STEMS

    out: dict[str, float] = {}
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            stem, _, level = part.rpartition("=")
            stem = stem.strip()
            if stem and stem not in STEMS:
                raise ValueError(f"--temperature {part!r}: unknown stem {stem!r}; choose from {', '.join(STEMS)}")
            if stem and stem not in add:
                raise ValueError(f"--temperature {part!r}: {stem} is not being added (--add {stem})")
            try:
                t = float(level)
            except ValueError:
                raise ValueError(f"--temperature {part!r}: use a number from 0 to {MAX_TEMPERATURE:g}, "
                                 "or STEM=NUMBER") from None
            if not 0 <= t <= MAX_TEMPERATURE:
                raise ValueError(f"--temperature {part!r}: {t:g} is outside 0 to {MAX_TEMPERATURE:g}")
            out.update({s: t for s in ([stem] if stem else add)})
    return out


def with_temperature(sampling: SamplingConfig, temperatures: dict[str, float]) -> SamplingConfig:
    """``sampling`` with the per-stem ``temperatures`` ({stem: value}) over its own."""
    from dataclasses import replace

    from stemfill.song.song import STEMS

    t = list(sampling.temperature) + [0.0] * (len(STEMS) - len(sampling.temperature))
    for stem, value in temperatures.items():
        t[STEMS.index(stem)] = float(value)
    return replace(sampling, temperature=tuple(t))
