"""How a new part plays: per-bar attributes measured from rolls, and the control planes the model reads.

Attributes are computed from the data itself (no labels), per stem and per bar of ``BAR`` steps:

* ``density``     note starts in the bar (drums: hits over all kit classes),
* ``syncopation`` share of those starts off the beat (not on a quarter-note step),
* ``register``    bass and guitar: mean pitch row of the starts (semitones above the stem's row 0),
* ``polyphony``   guitar: starts per distinct start step (1 = single notes, 3+ = chords),
* ``toms``        drums: share of hits on the toms,
* ``fill``        drums: 1 where the bar ends in a fill (toms or a run of snare/tom hits in its last beat),
* ``groove``      per stem: how often each step of the bar (and, for drums, each kit class at it) starts a
                  note, over the bars of the window that play; tiled over the window.

The model reads each as two planes per stem: the value and a "given" flag (0: auto, the model decides).
Values are mapped to [0, 1] by the training data's own distribution (``ControlConfig.quantiles``, saved
with the model), so "low"/"mid"/"high" are percentiles of real parts; the fill flag and the groove are
shares already. Training computes the real part's attributes and gives each one with a probability
(``given_prob``), so a model with controls still fills with none ("auto").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from stemfill.pianoroll.grid import BEATS_PER_BAR, STEPS_PER_BEAT
from stemfill.song.song import STEMS

if TYPE_CHECKING:  # torch is imported inside the functions that take tensors: filling with onnxruntime needs none
    import torch

BAR = BEATS_PER_BAR * STEPS_PER_BEAT  # steps of one 4/4 bar
SLOTS = ("density", "syncopation", "register", "polyphony", "groove")  # per stem, in plane order
ATTRIBUTES: dict[str, tuple[str | None, ...]] = {  # the attribute in each slot, per stem (None: unused)
    "drums": ("density", "syncopation", "toms", "fill", "groove"),
    "bass": ("density", "syncopation", "register", None, "groove"),
    "guitar": ("density", "syncopation", "register", "polyphony", "groove"),
}
PLANES_PER_STEM = 2 * len(SLOTS)  # a value plane and a given plane per slot
N_CONTROL_PLANES = PLANES_PER_STEM * len(STEMS)
SHARES = ("fill", "groove")  # values already in [0, 1] with a meaning of their own: not mapped by quantiles
TOM_ROWS = (7, 8, 9)  # roll.DRUM_KIT: low, mid, high tom
SNARE_ROWS = (1, 2, 3)  # snare, side stick, clap
CRASH_ROWS = (10, 13, 14)  # crash, china, splash
QUANTILE_POINTS = 21  # 0 %, 5 %, ..., 100 %
LEVELS = {"low": 0.15, "mid": 0.5, "high": 0.85}  # named levels as percentiles of real parts


@dataclass
class ControlConfig:
    """What the control planes mean: per "stem.attribute", the training data's quantiles of its raw values
    (``QUANTILE_POINTS`` of them), and the share of training samples given each control."""
    quantiles: dict[str, list[float]] = field(default_factory=dict)
    given_prob: float = 0.5  # training: each attribute of a target stem is given with this probability
    groove_prob: float = 0.25  # ... and its groove with this one

    def to_unit(self, stem: str, attr: str, raw):
        """Raw attribute values -> [0, 1]: their percentile among real parts (shares pass through)."""
        if attr in SHARES:
            return raw
        q = self.quantiles.get(f"{stem}.{attr}")
        if not q:
            raise ValueError(f"no quantiles for {stem}.{attr} in this model's control config")
        if type(raw).__module__.startswith("torch"):  # a tensor (torch is imported only where one is used)
            import torch

            return torch.from_numpy(_percentile(raw.detach().cpu().numpy(), q).astype(np.float32)).to(raw.device)
        return _percentile(np.asarray(raw, dtype=float), q)

    def from_unit(self, stem: str, attr: str, unit: float) -> float:
        """A percentile -> the raw value (e.g. notes a bar) real parts have there."""
        if attr in SHARES:
            return float(unit)
        q = self.quantiles[f"{stem}.{attr}"]
        return float(np.interp(unit, np.linspace(0.0, 1.0, len(q)), q))


def _percentile(v: np.ndarray, q) -> np.ndarray:
    """Mid-rank percentile of raw values among quantiles ``q``: a value tied with several quantiles (e.g. the
    many bars with no toms) takes the middle of their range, linear between quantiles."""
    q = np.asarray(q, dtype=float)
    grid = np.linspace(0.0, 1.0, len(q))
    eps = 1e-6 * np.arange(len(q))
    return 0.5 * (np.interp(v, q + eps, grid) + np.interp(v, q - eps[::-1], grid))


def onsets(roll: torch.Tensor) -> torch.Tensor:
    """(B, 3, P, L) bool roll -> its note starts: drums are onset rolls already; bass and guitar start where
    a cell turns on (the codec's one-step gap separates repeated notes)."""
    import torch
    import torch.nn.functional as F

    x = roll.bool()
    prev = F.pad(x[:, 1:], (1, 0))[..., :-1]
    return torch.cat([x[:, :1], x[:, 1:] & ~prev], dim=1)


def bar_attributes(roll: torch.Tensor) -> tuple[dict[tuple[str, str], torch.Tensor], torch.Tensor]:
    """Raw per-bar attributes of a roll batch (B, 3, P, L), L a multiple of ``BAR``.

    Returns ({(stem, attr): (B, n_bars) float}, plays (B, 3, n_bars) bool: the stem starts a note in that
    bar). Attributes other than density are 0 in bars where the stem plays nothing."""
    import torch

    on = onsets(roll).float()
    B, C, P, L = on.shape
    nb = L // BAR
    bars = on[..., :nb * BAR].reshape(B, C, P, nb, BAR)
    count = bars.sum((2, 4))  # (B, C, nb)
    plays = count > 0
    safe = count.clamp_min(1.0)
    offbeat = (torch.arange(BAR, device=on.device) % STEPS_PER_BEAT != 0).float()
    sync = (bars.sum(2) * offbeat).sum(-1) / safe
    rows = torch.arange(P, device=on.device, dtype=torch.float32)
    register = (bars.sum(4) * rows[:, None]).sum(2) / safe
    start_steps = (bars.sum(2) > 0).float().sum(-1).clamp_min(1.0)
    poly = count / start_steps
    d = bars[:, 0]  # (B, P, nb, BAR) drums
    toms = d[:, list(TOM_ROWS)].sum((1, 3)) / safe[:, 0]
    last = d[..., BAR - STEPS_PER_BEAT:]
    last2 = d[..., BAR - 2 * STEPS_PER_BEAT:]
    fill = ((last2[:, list(TOM_ROWS)].sum((1, 3)) >= 2)
            | (last[:, list(SNARE_ROWS + TOM_ROWS)].sum((1, 3)) >= 3)).float()
    out: dict[tuple[str, str], torch.Tensor] = {}
    for c, stem in enumerate(STEMS):
        out[(stem, "density")] = count[:, c]
        out[(stem, "syncopation")] = sync[:, c]
    for stem in ("bass", "guitar"):
        out[(stem, "register")] = register[:, STEMS.index(stem)]
    out[("guitar", "polyphony")] = poly[:, STEMS.index("guitar")]
    out[("drums", "toms")] = toms
    out[("drums", "fill")] = fill
    return out, plays


def groove(roll: torch.Tensor) -> torch.Tensor:
    """(B, 3, P, L) -> (B, 3, P, BAR): per stem, the share of its playing bars that start a note at each
    step of the bar; drums per kit class (row), bass and guitar over all pitches (the same in every row)."""
    on = onsets(roll).float()
    B, C, P, L = on.shape
    nb = L // BAR
    bars = on[..., :nb * BAR].reshape(B, C, P, nb, BAR)
    n_play = (bars.sum((2, 4)) > 0).float().sum(-1).clamp_min(1.0)  # (B, C)
    g = bars.sum(3) / n_play[:, :, None, None]  # (B, C, P, BAR)
    pitched = (bars[:, 1:].sum(2) > 0).float().sum(2) / n_play[:, 1:, None]  # (B, 2, BAR) any pitch
    g = g.clone()
    g[:, 1:] = pitched[:, :, None, :].expand(-1, -1, P, -1)
    return g


def slot_index(stem: str, slot: str) -> int:
    """Index of ``stem``'s value plane for ``slot`` (its given plane is the next one)."""
    return STEMS.index(stem) * PLANES_PER_STEM + 2 * SLOTS.index(slot)


def training_planes(x0: torch.Tensor, target: torch.Tensor, cfg: ControlConfig,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """The control planes of a training batch: (B, N_CONTROL_PLANES, P, L) float.

    x0 (B, 3, P, L) the real chunk; target (B, 3) bool: the stems the model fills. Each attribute of a
    target stem is given (its real per-bar value, mapped by ``cfg``) with probability ``cfg.given_prob``,
    its groove with ``cfg.groove_prob``; everything else is 0 (auto)."""
    import torch

    B, C, P, L = x0.shape
    raw, plays = bar_attributes(x0)
    grooves = groove(x0)
    planes = torch.zeros(B, N_CONTROL_PLANES, P, L, device=x0.device)
    draw = torch.rand(B, C, len(SLOTS), generator=generator).to(x0.device)
    for c, stem in enumerate(STEMS):
        for k, slot in enumerate(SLOTS):
            attr = ATTRIBUTES[stem][k]
            if attr is None:
                continue
            prob = cfg.groove_prob if slot == "groove" else cfg.given_prob
            give = target[:, c] & (draw[:, c, k] < prob)  # (B,)
            i = slot_index(stem, slot)
            if slot == "groove":
                give = give & plays[:, c].any(-1)
                reps = L // BAR + 1
                planes[:, i] = grooves[:, c].repeat(1, 1, reps)[..., :L]
            else:
                v = cfg.to_unit(stem, attr, raw[(stem, attr)])  # (B, nb)
                if slot != "density":  # undefined where the stem plays nothing: not given there
                    v = torch.where(plays[:, c], v, torch.zeros_like(v))
                per_bar = give[:, None] & (plays[:, c] | (slot == "density"))
                planes[:, i] = _bars_to_steps(v, L)[:, None, :].expand(-1, P, -1)
                planes[:, i + 1] = _bars_to_steps(per_bar.float(), L)[:, None, :].expand(-1, P, -1)
                planes[:, i] *= planes[:, i + 1]
                continue
            planes[:, i] *= give[:, None, None]
            planes[:, i + 1] = give[:, None, None].float().expand(-1, P, L)
    return planes


def _bars_to_steps(v: torch.Tensor, L: int) -> torch.Tensor:
    """(B, n_bars) -> (B, L): each bar's value on its steps (steps past the last whole bar take the last)."""
    import torch

    steps = v.repeat_interleave(BAR, dim=-1)
    if steps.shape[-1] < L:
        steps = torch.cat([steps, steps[..., -1:].expand(-1, L - steps.shape[-1])], -1)
    return steps[..., :L]


def fit_quantiles(rolls: np.ndarray, max_chunks: int = 4000, seed: int = 0) -> dict[str, list[float]]:
    """Quantiles of every non-share attribute over the bars where its stem plays, from chunks (N, 3, P, L)."""
    import torch

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(rolls), min(max_chunks, len(rolls)), replace=False)
    vals: dict[tuple[str, str], list[np.ndarray]] = {}
    for i in range(0, len(pick), 256):
        raw, plays = bar_attributes(torch.from_numpy(rolls[np.sort(pick[i:i + 256])]))
        for (stem, attr), v in raw.items():
            if attr in SHARES:
                continue
            vals.setdefault((stem, attr), []).append(v[plays[:, STEMS.index(stem)]].numpy())
    grid = np.linspace(0.0, 1.0, QUANTILE_POINTS)
    out = {}
    for (stem, attr), parts in vals.items():
        v = np.concatenate(parts) if parts else np.zeros(1)
        q = np.quantile(v if len(v) else np.zeros(1), grid)
        out[f"{stem}.{attr}"] = [round(float(x), 4) for x in q]
    return out


# --- asking for a part: what the CLI and the evaluation pass to the fill --------------------------------

FILL_PATTERNS = {"none": 0, "phrase": 4, "often": 2}  # --fills: a fill ends every N-th bar (0: never)
CONTROL_NAMES = {  # CLI control -> the attribute it sets, per stem where it applies
    "density": {"drums": "density", "bass": "density", "guitar": "density"},
    "complexity": {"drums": "syncopation", "bass": "syncopation", "guitar": "syncopation"},
    "register": {"bass": "register", "guitar": "register"},
    "polyphony": {"guitar": "polyphony"},
    "toms": {"drums": "toms"},
}


@dataclass
class StemControls:
    """How one added stem should play. ``values``: attribute -> percentile in [0, 1] of real parts;
    ``fill_every``: a fill ends every N-th bar, 0 never, None auto; ``fill_bars``: the song bars (0-based)
    that end in a fill, the others left to the model; ``fill_sections``: fills before the song's section
    changes (``fill.fill_song`` turns it into ``fill_bars``, ``sections.fill_bars``); ``groove``: (P, BAR)
    onset shares per step of the bar (``groove``), None auto."""
    values: dict[str, float] = field(default_factory=dict)
    fill_every: int | None = None
    groove: np.ndarray | None = None
    fill_bars: tuple[int, ...] | None = None
    fill_sections: bool = False

    def empty(self) -> bool:
        return (not self.values and self.fill_every is None and self.groove is None and self.fill_bars is None
                and not self.fill_sections)


def control_planes(requests: dict[str, StemControls], T: int, P: int, start: int = 0) -> np.ndarray:
    """(N_CONTROL_PLANES, P, T) float32 planes for a roll of T steps whose step 0 is song step ``start``.
    Bars are ``BAR`` steps counted from the song's step 0 (as training counted them from a chunk's)."""
    out = np.zeros((N_CONTROL_PLANES, P, T), dtype=np.float32)
    steps = np.arange(start, start + T)
    bar = steps // BAR
    pos = steps % BAR
    for stem, req in requests.items():
        for attr, unit in req.values.items():
            slot = SLOTS[ATTRIBUTES[stem].index(attr)]
            i = slot_index(stem, slot)
            out[i] = float(unit)
            out[i + 1] = 1.0
        if req.fill_every is not None:
            i = slot_index(stem, "polyphony")  # drums' fourth slot is the fill flag
            out[i] = ((bar + 1) % req.fill_every == 0).astype(np.float32)[None] if req.fill_every else 0.0
            out[i + 1] = 1.0
        elif req.fill_bars is not None:  # a fill in those bars; the others are the model's (not given)
            i = slot_index(stem, "polyphony")
            out[i] = out[i + 1] = np.isin(bar, np.asarray(req.fill_bars, dtype=int)).astype(np.float32)[None]
        if req.groove is not None:
            i = slot_index(stem, "groove")
            out[i] = req.groove[:, pos]
            out[i + 1] = 1.0
    return out


def reference_controls(roll: np.ndarray, stem: str, cfg: ControlConfig) -> StemControls:
    """Style by example: the attributes (median over the bars it plays) and groove of ``stem`` in a
    reference roll (3, P, T). Empty controls where the reference's stem plays nothing."""
    import torch

    c = STEMS.index(stem)
    T = roll.shape[-1] // BAR * BAR
    if T == 0:
        return StemControls()
    x = torch.from_numpy(np.ascontiguousarray(roll[None, ..., :T]))
    raw, plays = bar_attributes(x)
    on = plays[0, c].numpy()
    if not on.any():
        return StemControls()
    values = {}
    for attr in ATTRIBUTES[stem]:
        if attr in (None, "groove", "fill"):
            continue
        v = float(np.median(raw[(stem, attr)][0].numpy()[on]))
        values[attr] = float(cfg.to_unit(stem, attr, v))
    fill = float(raw[(stem, "fill")][0].numpy()[on].mean()) if stem == "drums" else None
    fill_every = None
    if fill is not None:  # the reference's fill rate as the nearest pattern
        fill_every = 0 if fill < 1 / 6 else (4 if fill < 3 / 8 else 2)
    return StemControls(values, fill_every, groove(x)[0, c].numpy())


def groove_distance(a: np.ndarray, b: np.ndarray) -> float:
    """L1 distance between two grooves (P, BAR) normalised to sum 1 (0: the same rhythm; 2: disjoint)."""
    sa, sb = a.sum(), b.sum()
    if sa == 0 or sb == 0:
        return 2.0 if sa != sb else 0.0
    return float(np.abs(a / sa - b / sb).sum())


@dataclass
class ControlRequest:
    """What the user asked, checked but not yet mapped to a model: per CLI control, stem -> level or number
    ("low", "mid", "high" or a float in the control's own unit); ``fills``: "none", "phrase", "often" or
    "sections"; ``like``: a reference file (and ``like_bars`` in it) to take the style from."""
    levels: dict[str, dict[str, str | float]] = field(default_factory=dict)
    fills: str | None = None
    like: str | None = None
    like_bars: str | None = None

    def empty(self) -> bool:
        return not self.levels and self.fills is None and self.like is None


UNITS = {"density": "notes a bar", "complexity": "share of note starts off the beat (0-1)",
         "register": "a MIDI note number (the part's mean pitch)", "polyphony": "notes per chord (1 = single notes)",
         "toms": "share of drum hits on the toms (0-1)"}


def parse_controls(add: list[str], options: dict[str, list[str]], fills: str | None = None,
                   like: str | None = None, like_bars: str | None = None) -> ControlRequest:
    """Check the control options of the stems being added; StemfillError with one line where one is wrong.

    ``options``: CLI control name -> its values, each "LEVEL" (every added stem it applies to) or
    "STEM=LEVEL[,STEM=LEVEL]"; LEVEL is low, mid, high, auto or a number in the control's unit (``UNITS``)."""
    from stemfill.errors import StemfillError

    req = ControlRequest(like=like, like_bars=like_bars)
    for name, values in options.items():
        applies = CONTROL_NAMES[name]
        for value in values or []:
            for part in str(value).split(","):
                part = part.strip()
                stem, _, level = part.rpartition("=")
                stem = stem.strip()
                if stem:
                    if stem not in STEMS:
                        raise StemfillError(f"--{name} {part!r}: unknown stem {stem!r}; choose from {', '.join(STEMS)}")
                    if stem not in add:
                        raise StemfillError(f"--{name} {part!r}: {stem} is not being added (--add {stem})")
                    if stem not in applies:
                        raise StemfillError(f"--{name} applies to {' and '.join(applies)}, not {stem}")
                    targets = [stem]
                else:
                    targets = [s for s in add if s in applies]
                    if not targets:
                        raise StemfillError(f"--{name} applies to {' and '.join(applies)}, and none is being added")
                level = level.strip().lower()
                if level == "auto":
                    for s in targets:
                        req.levels.get(name, {}).pop(s, None)
                    continue
                if level not in LEVELS:
                    try:
                        level = float(level)
                    except ValueError:
                        raise StemfillError(f"--{name} {part!r}: use low, mid, high, auto or a number "
                                            f"({UNITS[name]})") from None
                    if not np.isfinite(level) or level < 0:
                        raise StemfillError(f"--{name} {part!r}: a number must be finite and >= 0 ({UNITS[name]})")
                for s in targets:
                    req.levels.setdefault(name, {})[s] = level
    if fills is not None:
        if fills not in FILL_PATTERNS and fills not in ("sections", "auto"):
            raise StemfillError(f"--fills {fills!r}: use none, phrase, often, sections or auto")
        if "drums" not in add:
            raise StemfillError("--fills applies to drums, which is not being added (--add drums)")
        req.fills = None if fills == "auto" else fills
    return req


def resolve_controls(req: ControlRequest, add: list[str], cfg: ControlConfig,
                     reference: np.ndarray | None = None, reference_name: str = "the reference") -> dict[str, StemControls]:
    """The planes' values for a checked request: levels become percentiles, numbers are placed among the
    training data's parts; ``reference`` (3, P, T), the --like file's roll, gives every attribute and the
    groove of each added stem first, and the explicit controls override it."""
    from stemfill.errors import StemfillError
    from stemfill.pianoroll.grid import LOW_NOTE

    out: dict[str, StemControls] = {}
    if reference is not None:
        for s in add:
            ref = reference_controls(reference, s, cfg)
            if ref.empty():
                raise StemfillError(f"{reference_name}: has no {s} part to take the style from")
            out[s] = ref
    for name, per_stem in req.levels.items():
        for s, level in per_stem.items():
            attr = CONTROL_NAMES[name][s]
            if isinstance(level, str):
                unit = LEVELS[level]
            else:
                raw = level - LOW_NOTE[s] if name == "register" else level
                unit = float(cfg.to_unit(s, attr, float(raw)))
            out.setdefault(s, StemControls()).values[attr] = unit
    if req.fills == "sections":
        out.setdefault("drums", StemControls()).fill_sections = True
        out["drums"].fill_every = None  # over a --like file's fill rate
    elif req.fills is not None:
        out.setdefault("drums", StemControls()).fill_every = FILL_PATTERNS[req.fills]
    return out


def read_reference(path, bars: str | None = None) -> np.ndarray:
    """The --like file as a roll (3, P, T): its drums, bass and guitar, cut to ``bars`` ('A-B') if given."""
    from stemfill.pianoroll.roll import encode, n_steps, ticks_to_step
    from stemfill.song.bars import bar_span
    from stemfill.song.io import read_song

    song = read_song(path)
    roll = encode(song, length=max(n_steps(song), 1))
    if bars:
        a, b = (int(x) for x in ticks_to_step(np.array(bar_span(song, bars)), song.resolution))
        a -= a % BAR  # whole bars of the grid the attributes are counted on
        roll = roll[..., a:max(b, a + BAR)]
    return roll


@dataclass
class DrumTargets:
    """What a drum request asks of each bar of a song, for the pattern decoder (``drums.decode_drums``):
    ``density`` (notes a bar), ``syncopation`` and ``toms`` (shares) are NaN where not asked; ``fill`` is 1
    (must end in a fill), 0 (must not) or -1 (the plan's choice); ``groove`` (P, T) the requested onset shares
    per step (the ``--like``/``--style`` groove, laid on the song's steps as the model reads it) or None."""
    density: np.ndarray
    syncopation: np.ndarray
    toms: np.ndarray
    fill: np.ndarray
    groove: np.ndarray | None = None

    def any(self) -> bool:
        return bool(self.groove is not None or (self.fill >= 0).any()
                    or any(np.isfinite(v).any() for v in (self.density, self.syncopation, self.toms)))


def drum_targets(planes: np.ndarray, cfg: ControlConfig, bars: list) -> DrumTargets | None:
    """The drums' requested per-bar attributes read back from control planes (N_CONTROL_PLANES, P, T) for
    ``bars`` (``plan.Bar``: start, length), in raw units (``cfg``'s quantiles); None where nothing is asked."""
    planes = np.asarray(planes)
    T = planes.shape[-1]
    n = len(bars)
    out = {a: np.full(n, np.nan) for a in ("density", "syncopation", "toms")}
    fill = np.full(n, -1, dtype=np.int8)
    for k, b in enumerate(bars):
        a, e = b.start, min(b.start + b.length, T)
        if e <= a:
            continue
        for attr, slot in (("density", "density"), ("syncopation", "syncopation"), ("toms", "register"),
                           ("fill", "polyphony")):
            i = slot_index("drums", slot)
            given = planes[i + 1, 0, a:e]
            if given.mean() <= 0.5:
                continue
            unit = float(planes[i, 0, a:e][given > 0].mean())
            if attr == "fill":
                fill[k] = int(unit > 0.5)
            else:
                out[attr][k] = cfg.from_unit("drums", attr, unit) if f"drums.{attr}" in cfg.quantiles else np.nan
    i = slot_index("drums", "groove")
    groove_planes = planes[i] if planes[i + 1, 0].mean() > 0.5 else None
    t = DrumTargets(out["density"], out["syncopation"], out["toms"], fill, groove_planes)
    return t if t.any() else None
