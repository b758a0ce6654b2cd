"""Control steering: nudge the model's last prediction until the part it decodes to meets the requested
per-bar attributes (density, syncopation, register, toms, fills).

A model with controls reads the requested attributes as input planes (``controls.py``), but a short
fine-tune learns to follow some of them only weakly. Steering closes the gap at sampling time, the way
classifier guidance does with a classifier, except that the "classifier" here is the attribute itself,
measured softly on P(note):

* soft note starts: drums, P itself (drum rolls hold onsets); bass and guitar, the rise of P from the
  step before, ``max(0, P[t] - P[t-1])`` per row (a sustained note starts once), times the line
  decoder's start multiplier on channels decoded as a line (``decode_line`` plays that many starts);
* density = soft starts in the bar; syncopation = their share off the beat; register = their mean row;
  toms = the share of drum starts on the tom rows; fill = snare and tom starts in the bar's last beat
  (and toms in its last two), against the thresholds ``controls.bar_attributes`` uses.

Each requested stem and bar gets a few logit offsets, one per requested attribute: a bias over the
whole bar (density); over its off-beat steps (syncopation; bass and guitar: over the first 16th of each
beat, the other way, so that held notes keep sounding across the off-beat steps); a tilt across pitch
rows (register); a bias on the tom rows (toms); on the snare and tom rows of the last beat and the
toms of the beat before (fills); and on the crash rows of the next downbeat (a requested fill leads into
a crash). They are fitted (Adam, ``ITERS`` steps) so the soft attributes meet
the targets, then fitted once more aiming past the targets by what the decoded notes missed them by,
and added to the logits of the unknown cells times ``SamplingConfig.control_steer`` (0: off, 1: the
fitted offsets). A density request keeps the model's bar-to-bar contour (``with_contour``); a steered
stem whose density is not requested keeps the density the model expects. The model still decides
*which* notes: an offset moves every cell of its group by the same amount in logit space, so cells the
model finds likely move the most in P and unlikely ones barely at all.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from stemfill.generate.controls import (ATTRIBUTES, BAR, CRASH_ROWS, SLOTS, SNARE_ROWS, TOM_ROWS, ControlConfig,
                                        bar_attributes, slot_index)
from stemfill.pianoroll.grid import STEPS_PER_BEAT
from stemfill.song.song import STEMS

STEERED = ("density", "syncopation", "register", "toms", "fill", "crash")  # attributes steering acts on
ITERS = 100  # Adam steps fitting the offsets
LR = 0.3
MAX_OFFSET = 8.0  # logit offsets are clamped to +-this
FILL_ON = 3.5  # soft snare/tom starts in the last beat that make a fill (bar_attributes: >= 3 hard starts)
FILL_OFF = 1.0  # ... and at most this many where a bar must not end in a fill
CRASH_ON = 1.0  # soft crash starts on the downbeat after a requested fill (the fill leads into a crash)
CRASH_STEPS = 2  # the downbeat's first steps that count (phrase.CRASH_TOLERANCE is 1 either side)
MAX_MISS = {"syncopation": 0.25, "toms": 0.25, "register": 6.0}  # the most a second fit aims past its target
ROUNDS = 2  # fits: the second aims past the target by what the decoded notes of the first missed


def bar_targets(planes: torch.Tensor, cfg: ControlConfig, n_bars: int) -> dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]]:
    """The requested per-bar targets in control planes (B, N_CONTROL_PLANES, P, L), bars counted from step 0.

    Returns {(channel, attribute): (raw target (B, n_bars), given (B, n_bars) bool)}: raw values in the
    attribute's own unit (notes a bar, a share, rows above row 0; fill 0/1)."""
    B = planes.shape[0]
    L = n_bars * BAR
    out = {}
    for c, stem in enumerate(STEMS):
        for k, slot in enumerate(SLOTS):
            attr = ATTRIBUTES[stem][k]
            if attr not in STEERED:
                continue
            i = slot_index(stem, slot)
            value = planes[:, i, 0, :L].float().reshape(B, n_bars, BAR)
            given = planes[:, i + 1, 0, :L].float().reshape(B, n_bars, BAR)
            g = given.mean(-1) > 0.5
            if not bool(g.any()):
                continue
            unit = ((value * given).sum(-1) / given.sum(-1).clamp_min(1.0)).cpu().numpy()
            if attr == "fill":
                raw = (unit > 0.5).astype(np.float32)
            else:
                q = np.asarray(cfg.quantiles[f"{stem}.{attr}"], dtype=float)
                raw = np.interp(unit, np.linspace(0.0, 1.0, len(q)), q).astype(np.float32)
            out[(c, attr)] = (torch.from_numpy(raw).to(planes.device), g)
    if (0, "fill") in out:  # a crash on the downbeat after each requested fill in the window
        fill, g = out[(0, "fill")]
        after = F.pad((fill > 0.5) & g, (1, 0))[:, :-1]
        if bool(after.any()):
            out[(0, "crash")] = (after.float(), after)
    return out


def soft_starts(p: torch.Tensor, c: int) -> torch.Tensor:
    """(B, P, L) P(note) of channel c -> soft note starts per cell (drums: P; pitched: the rise of P)."""
    if c == 0:
        return p
    return (p - F.pad(p, (1, 0))[..., :-1]).clamp_min(0.0)


def steer(p: torch.Tensor, known: torch.Tensor, ctx: torch.Tensor, planes: torch.Tensor | None,
          cfg: ControlConfig | None, strength: float = 1.0, line_starts: dict[int, torch.Tensor] | None = None,
          decode: Callable[[torch.Tensor], torch.Tensor] | None = None, rounds: int = ROUNDS) -> torch.Tensor:
    """P(note) (B, C, P, L) with the unknown cells moved toward the requested attributes in ``planes``.

    known, ctx: (B, C, P, L) bool; the known cells count at their context value and never change.
    ``line_starts``: {channel: (B,) multiplier} for channels decoded as a line, which play ``multiplier x
    summed rise`` starts (``diffusion.decode_line``). ``decode``: P -> the notes it becomes (the
    whole roll, known cells included); with it, each of ``rounds`` - 1 more fits aims past the target by
    what the decoded notes missed it by, per window and stem (soft and decoded attributes differ: a
    decoder keeps the likeliest cells, not each with its P).

    A steered channel whose density is not requested gets the model's own expected starts (its soft
    starts before steering) as the density target, so its other offsets do not change how much it plays,
    and the decoder plays as many starts as the model expects. Returns a new tensor; ``p`` is untouched."""
    B, C, P, L = p.shape
    nb = L // BAR
    if nb == 0:
        return p
    targets = bar_targets(planes, cfg, nb) if planes is not None and cfg is not None and strength > 0 else {}
    if not targets:
        return p
    weight = {c: float(strength) for c, _ in targets}
    scale = line_starts or {}
    for c in weight:
        own = soft_starts(torch.where(known[:, c], ctx[:, c].float(), p[:, c].float()), c)
        own = own[..., :nb * BAR].reshape(B, P, nb, BAR).sum((1, 3))
        if c in scale:
            own = own * scale[c].to(own.device).float().view(B, 1)
        if (c, "density") in targets:
            targets[(c, "density")] = (with_contour(*targets[(c, "density")], own), targets[(c, "density")][1])
        else:
            targets[(c, "density")] = (own, torch.ones(B, nb, dtype=torch.bool, device=p.device))
    goal = dict(targets)
    for r in range(max(1, rounds)):
        out = _fit(p, known, ctx, goal, weight, scale)
        if decode is None or r == rounds - 1:
            break
        goal = _corrected(goal, targets, decode(out)[..., :nb * BAR])
    return out


def with_contour(target: torch.Tensor, given: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """Per-bar density targets (B, nb) that keep the model's own bar-to-bar contour: the bars of a window
    asking for the same density get the model's expected starts ``own`` scaled to meet that request on
    average, so a busier part stays busier where the model plays more (a fill, a chorus) and sparser
    where it plays less. Where the model expects nothing in those bars, the request stands as it is."""
    out = target.clone()
    for b in range(target.shape[0]):
        for value in torch.unique(target[b][given[b]]):
            bars = given[b] & (target[b] == value)
            total = own[b][bars].sum()
            if float(total) > 1e-3:
                out[b][bars] = own[b][bars] * (value * bars.sum() / total)
    return out


def _corrected(goal: dict, targets: dict, notes: torch.Tensor) -> dict:
    """Goals moved by the decoded notes' miss, averaged over each window's given bars: density by ratio
    (notes a bar + 1), shares and register by difference; fills are left as they are."""
    raw, plays = bar_attributes(notes.bool())
    out = {}
    for (c, attr), (target, given) in targets.items():
        g_t, _ = goal[(c, attr)]
        if attr in ("fill", "crash"):
            out[(c, attr)] = (g_t, given)
            continue
        got = raw[(STEMS[c], attr)].to(target.device)
        w = given & (plays[:, c].to(given.device) | (attr == "density"))
        n = w.sum(-1).clamp_min(1)
        if attr == "density":
            ratio = ((target + 1) * w).sum(-1) / ((got + 1) * w).sum(-1).clamp_min(1e-3)
            new = g_t * ratio.clamp(0.25, 4.0)[:, None]
        else:
            miss = ((target - got) * w).sum(-1) / n
            new = g_t + miss.clamp(-MAX_MISS[attr], MAX_MISS[attr])[:, None]
            if attr in ("syncopation", "toms"):
                new = new.clamp(0.0, 1.0)
        out[(c, attr)] = (torch.where(w.any(-1, keepdim=True), new, g_t), given)
    return out


def _fit(p: torch.Tensor, known: torch.Tensor, ctx: torch.Tensor, targets: dict, weight: dict[int, float],
         line_starts: dict[int, torch.Tensor]) -> torch.Tensor:
    """One fit of the offsets to ``targets`` ({(channel, attribute): (raw (B, nb), given (B, nb))}), every
    steered channel with a density target; the fitted offsets enter times ``weight`` {channel: strength}."""
    B, C, P, L = p.shape
    nb = L // BAR
    channels = sorted({c for c, _ in targets})
    dev = p.device
    with torch.inference_mode(False), torch.enable_grad():
        logit = torch.logit(p.detach().clone().float(), eps=1e-6)
        free = ~known.detach().clone()
        ctxf = ctx.detach().clone().float()
        planes_ = {k: (v.detach().clone(), g.detach().clone()) for k, (v, g) in targets.items()}
        step = torch.arange(BAR, device=dev)
        offbeat = (step % STEPS_PER_BEAT != 0).float()
        last_beat = (step >= BAR - STEPS_PER_BEAT).float()
        last2 = (step >= BAR - 2 * STEPS_PER_BEAT).float()
        rows = torch.arange(P, device=dev, dtype=torch.float32)
        tilt = (rows - rows.mean()) / 12.0
        drum_rows = torch.zeros(P, device=dev)
        tom_rows = torch.zeros(P, device=dev)
        drum_rows[list(SNARE_ROWS + TOM_ROWS)] = 1.0
        tom_rows[list(TOM_ROWS)] = 1.0
        fill_cells = (drum_rows[:, None] * last_beat + tom_rows[:, None] * (last2 - last_beat))[None, :, None, :]
        crash_rows = torch.zeros(P, device=dev)
        crash_rows[[r for r in CRASH_ROWS if r < P]] = 1.0
        crash_cells = (crash_rows[:, None] * (step < CRASH_STEPS).float())[None, :, None, :]
        params = {c: torch.zeros(B, len(STEERED), nb, device=dev, requires_grad=True) for c in channels}
        active = {c: torch.zeros(1, len(STEERED), 1, device=dev) for c in channels}
        for c, attr in targets:  # only the offsets of the attributes with a target move
            active[c][0, STEERED.index(attr)] = 1.0
        opt = torch.optim.Adam(list(params.values()), lr=LR)
        # syncopation: drums move their off-beat hits; bass and guitar move the first 16th of each beat the
        # other way (a cut on every off-beat step would cut each held note into one-step blips, which
        # decoding drops)
        # (the line decoder starts notes at single steps, so there the beat's first step is enough)
        head = ((step % STEPS_PER_BEAT) < STEPS_PER_BEAT // 4).float()
        sync_cells = {c: offbeat if c == 0 else -(1.0 - offbeat) if c in line_starts else -head for c in channels}

        def offsets(c: int) -> torch.Tensor:  # (B, P, nb, BAR) logit offset of channel c
            a = params[c].clamp(-MAX_OFFSET, MAX_OFFSET) * active[c]
            o = (a[:, 0, None, :, None]
                 + a[:, 1, None, :, None] * sync_cells[c]
                 + a[:, 2, None, :, None] * tilt[None, :, None, None]
                 + a[:, 3, None, :, None] * tom_rows[None, :, None, None]
                 + a[:, 4, None, :, None] * fill_cells
                 + a[:, 5, None, :, None] * crash_cells)
            return o

        def channel_p(c: int) -> torch.Tensor:
            lg = logit[:, c, :, :nb * BAR].reshape(B, P, nb, BAR) + offsets(c)
            q = torch.sigmoid(lg).reshape(B, P, nb * BAR)
            if nb * BAR < L:
                q = torch.cat([q, torch.sigmoid(logit[:, c, :, nb * BAR:])], -1)
            return torch.where(free[:, c], q, ctxf[:, c])

        def scale_of(c: int) -> torch.Tensor:
            if c in line_starts:
                return line_starts[c].detach().clone().to(dev).float().view(B, 1)
            return torch.ones(B, 1, device=dev)

        for _ in range(ITERS):
            opt.zero_grad()
            loss = p.new_zeros((), dtype=torch.float32)
            for c in channels:
                s = soft_starts(channel_p(c), c)[..., :nb * BAR].reshape(B, P, nb, BAR) * scale_of(c)[:, None, :, None]
                count = s.sum((1, 3))  # (B, nb)
                safe = count.clamp_min(1e-3)
                for (tc, attr), (target, given) in planes_.items():
                    if tc != c:
                        continue
                    if attr == "density":
                        continue
                    elif attr == "syncopation":
                        err = (s.sum(1) * offbeat).sum(-1) / safe - target
                        w = 1.0 / 0.05 ** 2
                    elif attr == "register":
                        err = (s.sum(-1) * rows[None, :, None]).sum(1) / safe - target
                        w = 1.0 / 2.0 ** 2
                    elif attr == "toms":
                        err = s[:, list(TOM_ROWS)].sum((1, 3)) / safe - target
                        w = 1.0 / 0.05 ** 2
                    elif attr == "fill":
                        hits = (s[:, list(SNARE_ROWS + TOM_ROWS)] * last_beat).sum((1, 3))
                        toms2 = (s[:, list(TOM_ROWS)] * last2).sum((1, 3))
                        on = target > 0.5
                        err = torch.where(on, F.relu(FILL_ON - hits),
                                          F.relu(hits - FILL_OFF) + F.relu(toms2 - FILL_OFF))
                        w = 1.0
                    elif attr == "crash":
                        err = F.relu(CRASH_ON - s[:, list(CRASH_ROWS), :, :CRASH_STEPS].sum((1, 3)))
                        w = 1.0
                    else:
                        raise ValueError(f"steering has no measure for {attr!r}")
                    loss = loss + w * (err ** 2 * given).sum() / max(1, B)
                target, given = planes_[(c, "density")]
                loss = loss + 4.0 * ((torch.log1p(count) - torch.log1p(target)) ** 2 * given).sum() / max(1, B)
            loss.backward()
            opt.step()
        with torch.no_grad():
            out = p.detach().clone().float()
            for c in channels:
                lg = logit[:, c, :, :nb * BAR].reshape(B, P, nb, BAR) + weight[c] * offsets(c)
                q = torch.sigmoid(lg).reshape(B, P, nb * BAR)
                out[:, c, :, :nb * BAR] = torch.where(free[:, c, :, :nb * BAR], q, out[:, c, :, :nb * BAR])
    return out.to(p.dtype)
