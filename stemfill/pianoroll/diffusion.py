"""Binary (Bernoulli) diffusion over piano rolls, with masked ("subtractive") training.

``BinaryDiffusion(net, config, sampling)`` owns the noise process (``DiffusionConfig``, fixed by
training) and samples it as ``SamplingConfig`` says; ``net`` (``unet.UNet``) only maps
(planes, t) -> x0 logits. ``forward(x0, known) -> loss``; ``sample(context, known, ...) -> rolls``
re-imposes the known cells at every step and returns them bit-exact.

Objectives
----------
``"bernoulli"`` (default): a D3PM-style process on {0,1} with a per-channel prior
``r`` (the note density of that channel)::

    q(x_t | x0) = Bernoulli(x0 * abar(t) + r * (1 - abar(t))),  t in [0, 1], abar cosine

so x_1 is pure Bernoulli(r) noise. The net predicts x0 (BCE on logits, on the
unknown cells only); sampling walks ``steps`` evenly spaced times 1 -> 0 with the
exact posterior q(x_s | x_t, x0) averaged over the predicted x0 (step skipping is
exact for this process). The last prediction becomes notes by ``decode``: ``"threshold"``
keeps cells with P(note) >= ``threshold``; ``"count"`` keeps, per window and channel, the
round(sum of P) most likely cells, i.e. as many notes as the model expects. Where the
context says little (drums only) no single cell reaches 0.5 and thresholding plays almost
nothing; counting plays the expected number of notes on the likeliest cells.
Channels flagged in ``line`` (bass) are decoded as one melodic line instead (``decode_line``):
first *when* notes start (peaks of the summed rise of P, over all pitches), then each note's
pitch and length. A start whose pitch is uncertain still counts in full, where cell ranking
would split it over pitches and drop it. Where only drums are known, ``line_starts_free`` and
``line_scale`` (one diatonic scale, ``diatonic_rows``) adjust that line; ``partial_mass`` corrects the
expected number of notes where a channel is known over part of the window only. These settings
(``decode``, ``threshold``, ``line*``, ``partial_mass``) are ``SamplingConfig`` fields, saved with the model.

``"atassi"`` (the paper's reference, L. Atassi 2023): ``x_t ~ Bernoulli(x0 (1 -
beta_t) + r beta_t)``, ``beta_t = (t + 1) / T``, T = 100, L1 loss on the predicted
x0 probability; the sampler thresholds x0 at 0.5 and, where it disagrees with the
initial noise, keeps the noise with a probability that shrinks from 1 to 1/steps.

Subtractive training
--------------------
``subtractive_mask`` removes 1 or 2 of the stems that *have notes* in a chunk; the
others stay as clean context, including stems that are empty in the data (a valid
context: "this song has no guitar"). An empty stem is never a target, so the model
is never taught to answer "add bass" with silence. With probability ``cond_drop``
the context is dropped (known planes and context zeroed) for classifier-free
guidance; ``guidance`` > 1 at sampling mixes the two predictions in logit space.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# the configs live in a torch-free module (the onnxruntime fill path reads them); imported here under their old names
from stemfill.pianoroll.config import (DECODES, OBJECTIVES, SAMPLING_KEYS, DiffusionConfig,  # noqa: F401
                                       SamplingConfig)
from stemfill.pianoroll.unet import one_thread_per_op



def cosine_abar(t: torch.Tensor, s: float = 0.008) -> torch.Tensor:
    """Share of x0 kept at time t in [0, 1]: 1 at t=0, 0 at t=1."""
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
    return f.clamp(0.0, 1.0)


def full_mask(known: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Broadcast a known mask given per (B, C), (B, C, L) or (B, C, P, L) to a full (B, C, P, L) bool plane."""
    k = known.bool()
    if k.dim() == 2:
        k = k[:, :, None, None]
    elif k.dim() == 3:
        k = k[:, :, None, :]
    return k.expand(shape)


def subtractive_mask(x0: torch.Tensor, max_remove: int = 2, generator: torch.Generator | None = None,
                     only: int | None = None, allow_all: torch.Tensor | None = None) -> torch.Tensor:
    """(B, C) bool known mask: per sample remove 1..max_remove stems that have notes (at least one stays
    known where two or more have notes, unless ``allow_all`` (B,) bool says the sample has other tracks to
    hear: there all of them may go). A chunk with no notes at all keeps everything known (no loss).
    ``only``: always remove that channel alone, where it has notes (the paper's one-model-per-stem setting)."""
    b, c = x0.shape[:2]
    present = x0.bool().flatten(2).any(-1).cpu()
    known = torch.ones(b, c, dtype=torch.bool)
    if only is not None:
        known[:, only] = ~present[:, only]
        return known.to(x0.device)
    for i in range(b):
        idx = torch.nonzero(present[i]).flatten()
        n = len(idx)
        if n == 0:
            continue
        k_max = max(1, min(max_remove, n if allow_all is not None and bool(allow_all[i]) else n - 1))
        k = int(torch.randint(1, k_max + 1, (1,), generator=generator))
        drop = idx[torch.randperm(n, generator=generator)[:k]]
        known[i, drop] = False
    return known.to(x0.device)


def span_mask(known: torch.Tensor, length: int, prob: float, generator: torch.Generator | None = None,
              beat: int = 12, max_edge: int = 6) -> torch.Tensor:
    """(B, C) known mask -> (B, C, L): in a share ``prob`` of the samples, the removed stems are removed over a
    span of beats only and known before and after it (up to ``max_edge`` beats each side).

    Whole-song filling's second pass and ``--bars`` hand the model stems known over part of the window
    (fill.gap_steps); training on whole-stem masks alone never shows it that mask (bench/seams.py)."""
    k = known.bool().cpu()
    out = k[:, :, None].expand(*k.shape, length).clone()
    beats = length // beat
    for i in range(k.shape[0]):
        if float(torch.rand((), generator=generator)) >= prob or k[i].all():
            continue
        a, b = (int(v) for v in torch.randint(0, max_edge + 1, (2,), generator=generator))
        if a + b == 0 or a + b >= beats:
            continue
        edge = torch.zeros(length, dtype=torch.bool)
        edge[:a * beat] = True
        edge[length - b * beat:] = True  # b = 0: an empty slice
        out[i] |= edge
    return out.to(known.device)


def pitched_context(x0: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the sample's known cells include notes of a pitched stem (bass or guitar), so its key is
    given. known: any shape ``full_mask`` takes."""
    k = full_mask(known.to(x0.device), x0.shape)
    return (x0.bool() & k)[:, 1:].flatten(1).any(1)


def remove_only_channel(config: "DiffusionConfig") -> int | None:
    from stemfill.song.song import STEMS

    return STEMS.index(config.remove_only) if config.remove_only else None


class BinaryDiffusion(nn.Module):
    def __init__(self, net: nn.Module, config: DiffusionConfig | None = None, sampling: SamplingConfig | None = None):
        super().__init__()
        self.net = net
        self.config = config or DiffusionConfig()
        self.sampling = sampling or SamplingConfig()  # read at every sample() call: set it to sample differently
        self.controls = None  # controls.ControlConfig of a model with control planes (model.build_model sets it)
        self.register_buffer("r", torch.tensor(self.config.density, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    # --- network input ------------------------------------------------------
    @property
    def context_planes(self) -> int:
        """Planes of the other tracks' context the network reads (0: a model that does not hear them)."""
        return int(getattr(self.net.config, "context_planes", 0))

    @property
    def control_planes(self) -> int:
        """Control planes the network reads (``generate/controls.py``; 0: a model without controls)."""
        return int(getattr(self.net.config, "control_planes", 0))

    def model_logits(self, x_t: torch.Tensor, known: torch.Tensor, context: torch.Tensor, t: torch.Tensor,
                     other: torch.Tensor | None = None, controls: torch.Tensor | None = None) -> torch.Tensor:
        """``other``: (B, context_planes, P, L) the other tracks' context, or None (nothing there);
        ``controls``: (B, control_planes, P, L) the control planes, or None (all auto)."""
        k = known.float()
        planes = [x_t.float() * (1 - k), k, context.float() * k]
        if controls is not None:
            controls = controls.float() * float(getattr(self.net.config, "control_scale", 1.0))
        extras = [(self.context_planes, other), (self.control_planes, controls)]
        while extras and extras[-1][1] is None:  # absent trailing planes are zero: the network leaves them out
            extras.pop()
        for n, extra in extras:
            if n:
                planes.append(extra.float() if extra is not None else x_t.new_zeros(x_t.shape[0], n, *x_t.shape[2:]))
        planes = torch.cat(planes, dim=1)
        return self.net(planes, t) if torch.is_grad_enabled() else self.net.infer(planes, t)

    def guided_logits(self, x_t, known, context, t, guidance: float, other: torch.Tensor | None = None,
                      controls: torch.Tensor | None = None, cond_out: list | None = None) -> torch.Tensor:
        """Classifier-free guidance: the unconditional pass knows nothing (no stems, no other tracks, no
        controls). With controls given and ``sampling.control_guidance`` w != 1, one more pass without the
        controls (the song's context kept) moves the logits w times as far as the controls move them.
        ``cond_out``: a list that gets the conditional pass's logits where guidance != 1."""
        out = self._cfg_logits(x_t, known, context, t, guidance, other, controls, cond_out)
        w = float(self.sampling.control_guidance)
        if controls is not None and w != 1.0 and bool(controls.any()):
            with_c = out if guidance == 1.0 else self.model_logits(x_t, known, context, t, other, controls)
            without = self.model_logits(x_t, known, context, t, other, None)
            out = out + (w - 1.0) * (with_c - without)
        return out

    def _cfg_logits(self, x_t, known, context, t, guidance: float, other=None, controls=None,
                    cond_out: list | None = None) -> torch.Tensor:
        if guidance == 1.0:
            return self.model_logits(x_t, known, context, t, other, controls)
        z = torch.zeros_like(known)
        o = None if other is None else torch.cat([other, torch.zeros_like(other)])
        c = None if controls is None else torch.cat([controls, torch.zeros_like(controls)])
        both = self.model_logits(torch.cat([x_t, x_t]), torch.cat([known, z]), torch.cat([context, z]),
                                 torch.cat([t, t]), o, c)
        cond, uncond = both.chunk(2)
        if cond_out is not None:
            cond_out.append(cond)
        return uncond + guidance * (cond - uncond)

    def _last_p(self, x, known, ctx, t, guidance, other=None, controls=None) -> torch.Tensor:
        """The last step's P: guided, and with ``sampling.guidance_mass`` m > 0 (and guidance != 1) scaled on each
        channel's missing cells to m times the conditional pass's mass (``match_mass``)."""
        m = float(getattr(self.sampling, "guidance_mass", 0.0))
        cond: list | None = [] if m > 0 and guidance != 1.0 else None
        p = torch.sigmoid(self.guided_logits(x, known, ctx, t, guidance, other, controls, cond))
        return match_mass(p, m * torch.sigmoid(cond[0]), known) if cond else p

    # --- training -----------------------------------------------------------
    def forward(self, x0: torch.Tensor, known: torch.Tensor, other: torch.Tensor | None = None,
                controls: torch.Tensor | None = None) -> torch.Tensor:
        """Loss of predicting x0 on the unknown cells. x0: (B, 3, P, L) {0,1}; known: (B,3) / (B,3,L) / (B,3,P,L);
        ``other``: the other tracks' context (B, context_planes, P, L), dropped for ``context_drop`` of samples;
        ``controls``: the control planes (B, control_planes, P, L), dropped with the context for ``cond_drop``."""
        cfg = self.config
        x0 = x0.float()
        b = x0.shape[0]
        known = full_mask(known, x0.shape)
        target = ~known
        if cfg.objective == "bernoulli":
            t = torch.rand(b, device=x0.device)
            ab = cosine_abar(t).view(b, 1, 1, 1)
        else:
            ti = torch.randint(0, cfg.atassi_T, (b,), device=x0.device)
            ab = (1 - (ti.float() + 1) / cfg.atassi_T).view(b, 1, 1, 1)
            t = ti.float() / cfg.atassi_T
        x_t = torch.bernoulli(x0 * ab + self.r * (1 - ab))
        drop = (torch.rand(b, device=x0.device) < cfg.cond_drop).view(b, 1, 1, 1)
        known_in = known & ~drop
        if other is not None:  # the unconditional samples lose the other tracks too, and some more lose them alone
            drop_other = drop | (torch.rand(b, device=x0.device) < cfg.context_drop).view(b, 1, 1, 1)
            other = other.float() * ~drop_other
        if controls is not None:
            controls = controls.float() * ~drop
        logits = self.model_logits(x_t, known_in, x0, t, other, controls)
        w = target.float()
        if cfg.objective == "bernoulli":
            pw = torch.tensor(cfg.pos_weight, device=x0.device)
            per = F.binary_cross_entropy_with_logits(logits, x0, reduction="none", pos_weight=pw)
        else:
            per = (torch.sigmoid(logits) - x0).abs()
        return (per * w).sum() / w.sum().clamp_min(1.0)

    # --- sampling -----------------------------------------------------------
    @torch.no_grad()
    @one_thread_per_op()
    def sample(self, context: torch.Tensor, known: torch.Tensor, steps: int | None = None, seed: int | None = 0,
               guidance: float | None = None, generator: torch.Generator | None = None,
               other: torch.Tensor | None = None, controls: torch.Tensor | None = None,
               probs: list | None = None) -> torch.Tensor:
        """Fill the unknown cells of ``context`` (B, 3, P, L). Returns a bool tensor, known cells bit-exact.
        ``probs``: a list that gets the last step's P(note) (B, 3, P, L), as numpy, for a decoder that
        chooses whole patterns from it (``stemfill.generate``).
        ``other``: the other tracks' context (B, context_planes, P, L) where the model hears it;
        ``controls``: control planes (B, control_planes, P, L) where the model has controls.

        Randomness comes from a CPU generator (``generator``, else seeded with ``seed``) so a seed gives the
        same result on any device.
        """
        cfg, sc = self.config, self.sampling
        steps = int(steps or sc.sample_steps)
        guidance = sc.guidance if guidance is None else float(guidance)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        g = generator if generator is not None else torch.Generator().manual_seed(int(seed or 0))
        dev = self.r.device
        ctx = context.bool().to(dev)
        known = full_mask(known.to(dev), ctx.shape)
        ctx = ctx & known
        b = ctx.shape[0]
        other = other.to(dev).float() if other is not None and self.context_planes else None
        controls = controls.to(dev).float() if controls is not None and self.control_planes else None
        r = self.r.expand(ctx.shape)

        def bern(p: torch.Tensor) -> torch.Tensor:
            return torch.bernoulli(p.float().cpu(), generator=g).to(dev)

        x = bern(r)
        if cfg.objective == "atassi":
            steps = min(steps, cfg.atassi_T)
            x_init = x.clone()
            ts = torch.linspace(cfg.atassi_T - 1, 0, steps).round().long().tolist()
            for i, ti in enumerate(ts):
                t = torch.full((b,), ti / cfg.atassi_T, device=dev)
                p = torch.sigmoid(self.guided_logits(x, known, ctx, t, guidance, other, controls))
                x0 = (p >= 0.5).float()
                keep = (steps - i) / steps  # share of disagreeing noise kept: 1 .. 1/steps (as in the reference)
                m = bern((x0 != x_init).float() * keep)
                x = x0 * (1 - m) + x_init * m
            out = x.bool()
        else:
            for k in range(steps, 0, -1):
                t = torch.full((b,), k / steps, device=dev)
                if k == 1:
                    p = self._last_p(x, known, ctx, t, guidance, other, controls)
                else:
                    p = torch.sigmoid(self.guided_logits(x, known, ctx, t, guidance, other, controls))
                p_net = p  # the network's own P: where a note is held (join_gaps), before rescaling or steering
                if k == 1 and sc.partial_mass:
                    p = self.partial_mass(p, x, known, ctx, t, guidance, other, controls)
                if k == 1:
                    noise = self.decode_noise(p.shape, g)
                    if controls is not None and sc.control_steer > 0 and self.controls is not None:
                        p = self.steer(p, known, ctx, controls, noise)
                    if probs is not None:
                        probs.append(p.float().cpu().numpy())
                    x = self.decode_last(p, known, ctx, noise, held=p_net)
                    break
                ab_t = cosine_abar(t).view(b, 1, 1, 1)
                ab_s = cosine_abar(torch.full((b,), (k - 1) / steps, device=dev)).view(b, 1, 1, 1)
                x = bern(self.posterior(x, p, ab_t, ab_s, r))
            out = x.bool()
        return torch.where(known, ctx, out)

    def partial_mass(self, p, x, known, ctx, t, guidance, other=None, controls=None) -> torch.Tensor:
        """Rescale P where a channel is known over part of the window only (whole-song filling's second
        pass: the part already written in the overlaps is context), so its missing cells carry as much
        P as when the whole channel is missing.

        A model trained on whole-channel masks only (the earlier default) never saw such a mask and
        expected fewer notes there; one trained with ``span_prob`` fills them about as densely
        (docs/benchmarks.md, "Seams between windows", has the measurements).

        One more forward pass with such channels wholly missing gives the expected mass M_ref of the
        missing cells; P there is scaled by M_ref / M (capped at 1). Which cells are likeliest still
        comes from the pass that sees the overlap, so the new part continues the written one."""
        flat = known.flatten(2)
        part = flat.any(-1) & ~flat.all(-1)  # (B, C)
        rows = part.any(1).nonzero().flatten()
        if len(rows) == 0:
            return p
        kr = full_mask(flat[rows].all(-1), known[rows].shape)
        p_ref = self._last_p(x[rows], kr, ctx[rows] & kr, t[rows], guidance, None if other is None else other[rows],
                             None if controls is None else controls[rows])
        free = (~known[rows]).float()
        ratio = (p_ref * free).flatten(2).sum(-1) / (p[rows] * free).flatten(2).sum(-1).clamp_min(1e-6)
        ratio = torch.where(part[rows], ratio, torch.ones_like(ratio))
        p = p.clone()
        p[rows] = torch.where(known[rows], p[rows], (p[rows] * ratio[..., None, None]).clamp(max=1.0))
        return p

    def decode_noise(self, shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor | None:
        """Gumbel noise (``shape``, drawn on the CPU from ``g``) for the last step's decoding where a channel's
        ``temperature`` is above 0; None (nothing drawn, so the generator moves as before) where none is."""
        sc = self.sampling
        if sc.decode != "count" or not any(v > 0 for v in sc.temperature):
            return None
        return gumbel(shape, g).to(self.r.device)

    def decode_last(self, p: torch.Tensor, known: torch.Tensor, ctx: torch.Tensor,
                    noise: torch.Tensor | None = None, held: torch.Tensor | None = None) -> torch.Tensor:
        """The last step's P(note) -> notes (B, C, P, L) float {0, 1}, as ``SamplingConfig.decode`` says.
        ``noise``: Gumbel noise of P's shape (``decode_noise``) for channels decoded at a ``temperature``;
        ``held``: the P whose dips ``join`` reads (default ``p``; the sampler passes the network's P from
        before ``partial_mass`` rescales it, as capping the rescaled P at 1 flattens its dips)."""
        sc = self.sampling
        if sc.decode != "count":
            return (p >= sc.threshold).float()
        temp = sc.temperature if noise is not None else ()
        x = self.decode(p, known, sc.min_note, temp, noise)
        for c in (i for i, on in enumerate(sc.line) if on and i < x.shape[1]):
            pc = torch.where(known[:, c], ctx[:, c].float(), p[:, c])
            free = pitched_open(known, c)
            tc = temp[c] if c < len(temp) else 0.0
            x[:, c] = decode_line(pc, known[:, c].all(1), self.line_starts(free), sc.line_sounding,
                                  sc.min_note[c] if c < len(sc.min_note) else 0, rows=self.line_rows(pc, free),
                                  temperature=tc, noise=noise[:, c] if tc > 0 else None, repeat=sc.line_repeat)
        for c, a in enumerate(sc.join):
            if a > 0 and c < x.shape[1]:
                from stemfill.pianoroll.fast import join_gaps

                h = (p if held is None else held)[:, c].float().cpu().numpy()
                j = join_gaps(x[:, c].cpu().numpy() > 0, h, ~known[:, c].cpu().numpy(), a, sc.join_gap)
                x[:, c] = torch.from_numpy(j).to(x.device, x.dtype)
        return x

    def steer(self, p: torch.Tensor, known: torch.Tensor, ctx: torch.Tensor, controls: torch.Tensor,
              noise: torch.Tensor | None = None) -> torch.Tensor:
        """P moved toward the attributes requested in ``controls`` (``steer.steer``), by ``control_steer``.
        Channels decoded as a line count their soft starts as the line decoder will (``line_starts``); the
        targets are corrected once by what the decoder (``decode_last``) makes of the first fit."""
        from stemfill.generate.steer import steer

        sc = self.sampling
        scale = {c: self.line_starts(pitched_open(known, c)) for c, on in enumerate(sc.line)
                 if on and c < p.shape[1] and sc.decode == "count"}

        def notes(q: torch.Tensor) -> torch.Tensor:
            return torch.where(known, ctx.float(), self.decode_last(q, known, ctx, noise))

        return steer(p, known, ctx, controls, self.controls, float(sc.control_steer), scale, decode=notes)

    def line_starts(self, free: torch.Tensor) -> torch.Tensor:
        """(B,) start multiplier of a line channel: ``line_starts_free`` in ``free`` windows (``pitched_open``),
        ``line_starts`` elsewhere. With drums alone to follow, P is smeared over the bar and its summed rise
        undercounts starts more (docs/model-card.md has the valid-split measurements)."""
        sc = self.sampling
        f = sc.line_starts if sc.line_starts_free is None else sc.line_starts_free
        dev = free.device
        return torch.where(free, torch.tensor(float(f), device=dev), torch.tensor(float(sc.line_starts), device=dev))

    def line_rows(self, p: torch.Tensor, free: torch.Tensor) -> torch.Tensor | None:
        """(B, P) rows a line channel's notes may take: with ``line_scale`` on, in ``free`` windows the rows
        of the diatonic scale holding the most of P (``diatonic_rows``); every row elsewhere. None: no limit."""
        if not self.sampling.line_scale:
            return None
        return diatonic_rows(p) | ~free[:, None]

    @staticmethod
    def decode(p: torch.Tensor, known: torch.Tensor, min_note=(), temperature=(),
               noise: torch.Tensor | None = None) -> torch.Tensor:
        """Expected-count decoding: per (window, channel) keep the round(sum of P(note)) most likely unknown
        cells, so a fill plays as many notes as the model expects even where no single cell is > 0.5.

        ``temperature[c]`` > 0 (with ``noise``, Gumbel noise of P's shape): channel c's cells are drawn
        instead, that many without replacement, each with probability in proportion to P^(1/temperature)
        (``gumbel_rank``); the likeliest cells then no longer always win, so rarer notes (toms, a crash)
        sound about as often as the model expects them.

        ``min_note[c]`` > 1: drop channel c's generated runs shorter than that many steps (one-step
        blips of a scattered guess; the shipped model uses (0, 2, 2))."""
        b, c, P, L = p.shape
        q = torch.where(known, torch.zeros_like(p), p)
        r = q.flatten(2)
        n = r.sum(-1).round().long().clamp(0, P * L)  # (B, C) expected number of notes
        key = r
        if noise is not None and any(v > 0 for v in temperature):
            temp = torch.tensor([float(temperature[i]) if i < len(temperature) else 0.0 for i in range(c)],
                                device=p.device, dtype=p.dtype).view(1, c, 1)
            key = torch.where(temp > 0, gumbel_rank(r, noise.flatten(2), temp), r)
        kth = key.sort(-1, descending=True).values.gather(-1, (n - 1).clamp_min(0).unsqueeze(-1))
        x = ((key >= kth) & (n > 0).unsqueeze(-1) & (r > 0)).view_as(p)
        for ch, m in enumerate(min_note):  # drop runs shorter than m steps (a morphological opening in time)
            if ch < c and m > 1 and L >= m:
                v = x[:, ch].reshape(-1, 1, L).float()
                full = F.avg_pool1d(v, m, stride=1) > 1 - 1e-6  # windows of m steps fully on
                x[:, ch] = (F.max_pool1d(F.pad(full.float(), (m - 1, m - 1)), m, stride=1) > 0).view(b, P, L)
        return x.float()

    @staticmethod
    def posterior(x_t: torch.Tensor, p0: torch.Tensor, ab_t: torch.Tensor, ab_s: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """P(x_s = 1 | x_t, x0 ~ Bernoulli(p0)) for s < t, D3PM x0-parameterisation."""
        a = (ab_t / ab_s.clamp_min(1e-12)).clamp(0, 1)  # keep-probability from s to t
        p1 = p0 * ab_s + r * (1 - ab_s)  # q(x_s = 1 | x0), averaged over x0
        like1 = torch.where(x_t > 0, a + r * (1 - a), (1 - a) * (1 - r))  # q(x_t | x_s = 1)
        like0 = torch.where(x_t > 0, r * (1 - a), 1 - r * (1 - a))  # q(x_t | x_s = 0)
        num = like1 * p1
        return (num / (num + like0 * (1 - p1)).clamp_min(1e-12)).clamp(0, 1)

    @torch.no_grad()
    @one_thread_per_op()
    def score(self, rolls: torch.Tensor, known: torch.Tensor, seed: int = 0, times: tuple[float, ...] = (0.3, 0.6)) -> torch.Tensor:
        """Self-consistency of filled rolls (B,): minus the model's mean BCE at re-noised copies of the
        filled cells (a likelihood proxy; higher = the model finds the fill more plausible)."""
        g = torch.Generator().manual_seed(seed)
        dev = self.r.device
        x0 = rolls.float().to(dev)
        known = full_mask(known.to(dev), x0.shape)
        w = (~known).float()
        b = x0.shape[0]
        total = torch.zeros(b, device=dev)
        for tv in times:
            t = torch.full((b,), tv, device=dev)
            ab = cosine_abar(t).view(b, 1, 1, 1)
            x_t = torch.bernoulli((x0 * ab + self.r * (1 - ab)).cpu(), generator=g).to(dev)
            logits = self.model_logits(x_t, known, x0, t)
            bce = F.binary_cross_entropy_with_logits(logits, x0, reduction="none")
            total += (bce * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1.0)
        return -total / len(times)


def match_mass(p: torch.Tensor, p_ref: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """P (B, C, P, L) scaled on each (window, channel)'s missing cells to the summed P of ``p_ref`` there (capped
    at 1): classifier-free guidance sharpens where notes go, and this keeps it from changing how many."""
    free = (~known).float()
    ratio = (p_ref * free).flatten(2).sum(-1) / (p * free).flatten(2).sum(-1).clamp_min(1e-6)
    return torch.where(known, p, (p * ratio[..., None, None]).clamp(max=1.0))


def gumbel(shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    """Standard Gumbel noise -log(-log U), U uniform on (0, 1), drawn on the CPU from ``g``."""
    u = torch.rand(shape, generator=g).clamp(1e-10, 1 - 1e-7)
    return -torch.log(-torch.log(u))


def gumbel_rank(v: torch.Tensor, noise: torch.Tensor, temperature: float | torch.Tensor) -> torch.Tensor:
    """Keys to rank by: log v + temperature x Gumbel noise; v <= 0 gets -inf (never taken). The top k keys
    are k draws without replacement, each in proportion to v^(1/temperature) (the Gumbel top-k trick):
    temperature 1 draws in proportion to v, toward 0 it keeps the largest v."""
    return torch.where(v > 0, torch.log(v.clamp_min(1e-30)) + temperature * noise, torch.full_like(v, -math.inf))


def pitched_open(known: torch.Tensor, c: int) -> torch.Tensor:
    """(B,) windows where a pitched channel other than ``c`` (drums are channel 0) has cells to fill too, so
    no pitched part tells channel ``c`` its harmony or phrasing (only drums are known: the bass is being
    filled with the guitar, or a ``--bars`` range regenerates both). known: (B, C, P, L) bool."""
    others = [i for i in range(1, known.shape[1]) if i != c]
    if not others:
        return torch.zeros(known.shape[0], dtype=torch.bool, device=known.device)
    return (~known[:, others]).flatten(1).any(1)


_DIATONIC = torch.tensor([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], dtype=torch.bool)  # C major = A minor, ...


def diatonic_rows(p: torch.Tensor) -> torch.Tensor:
    """(B, P, L) P(note) -> (B, P) bool: the rows in the diatonic scale (7 pitch classes: a major key and its
    relative minor) that holds the most P mass, one scale per window. Pitch class = row % 12; any fixed
    offset of row 0 only renames the scale.

    Why: in one step with only drums known, P is the model's average over every key the song could be
    in, and note by note its likeliest pitch wanders chromatically. Keeping the notes in the one scale P
    favours most gives a line in a key."""
    B, P, _ = p.shape
    pc = torch.arange(P, device=p.device) % 12
    hist = torch.zeros(B, 12, device=p.device, dtype=p.dtype).index_add_(1, pc, p.sum(-1))
    sets = torch.stack([_DIATONIC.roll(k) for k in range(12)]).to(p.device)  # (12 scales, 12 pitch classes)
    best = (hist @ sets.to(p.dtype).T).argmax(1)  # (B,)
    return sets[best][:, pc]


def decode_line(p: torch.Tensor, known_steps: torch.Tensor, starts: float | torch.Tensor = 1.25, sounding: float = 0.3,
                min_note: int = 0, rows: torch.Tensor | None = None, temperature: float = 0.0,
                noise: torch.Tensor | None = None, repeat: float = 0.0) -> torch.Tensor:
    """Decode one mostly monophonic channel (bass: 97 % of its sounding steps hold one note) as a line.

    p: (B, P, L) P(note) with the known cells set to the context (0/1); known_steps: (B, L) steps
    whose every cell is known; ``starts``: one float, or one per window (B,). Returns (B, P, L) {0, 1};
    the caller re-imposes the known cells.

    1. Starts. rise[t] = sum over pitches of max(0, P[t] - P[t-1]) is the expected number of notes
       starting at t whatever their pitch. A start smeared over neighbouring steps is gathered on its
       peak (the rise summed over t-1..t+1). The round(starts x sum of rise) strongest peaks among
       the unknown steps start notes; so do the starts in the known steps. ``starts`` > 1 because a
       repeated note of the same pitch barely dips in P, so the summed rise undercounts starts (the
       shipped value was chosen on the valid split for a bass as dense as the real one: docs/model-card.md).
    2. Lengths. A note lasts until the next start, or stops earlier at the first step where
       P(any pitch sounding) = sum over pitches of P < ``sounding`` (a rest); it keeps at least
       ``min_note`` steps. A note running into a start of the same pitch ends one step early (the
       roll codec's rule for repeated notes).
    3. Pitch. Each note takes the row with the most P mass over its sounding steps (among ``rows``
       (B, P), where given). With ``temperature`` > 0 and ``noise`` (B, P, L) Gumbel noise, the row is
       drawn instead, in proportion to its mass^(1/temperature) (``gumbel_rank``; note k reads the noise
       at step k - 1), so a line need not always return to its likeliest pitch.
    4. Repeats (``repeat`` > 0, without temperature). A note whose row is the note before's takes the
       runner-up row instead where that row's mass is >= ``repeat`` x the best's: where P is split between
       the root and another chord tone, the line moves as a player's does instead of hammering the root.
    """
    B, P, L = p.shape
    dev = p.device
    kn = known_steps.bool()
    up = p - F.pad(p, (1, 0))[..., :-1]  # (B, P, L) change of P from the step before
    rise = up.clamp_min(0).sum(1)  # (B, L)
    padded = F.pad(rise, (1, 1)).unsqueeze(1)
    peak = (rise >= F.max_pool1d(padded, 3, stride=1).squeeze(1)) & (rise > 0)
    peak &= ~F.pad(peak, (1, 0))[..., :-1]  # a flat top counts once, at its first step
    mass = torch.where(peak & ~kn, F.avg_pool1d(padded, 3, stride=1).squeeze(1) * 3, torch.zeros_like(rise))
    starts = torch.as_tensor(starts, dtype=rise.dtype, device=dev)
    n = (torch.where(kn, torch.zeros_like(rise), rise).sum(-1) * starts).round().long().clamp(0, L)
    kth = mass.sort(-1, descending=True).values.gather(-1, (n - 1).clamp_min(0).unsqueeze(-1))
    known_start = kn & (up > 0.5).any(1)  # the context's own starts
    onset = ((mass >= kth) & (mass > 0) & (n > 0).unsqueeze(-1)) | known_start
    seg = onset.long().cumsum(-1)  # note index of every step; 0 before the first start
    t = torch.arange(L, device=dev).expand(B, L)
    big = torch.full_like(t, 1 << 40)

    def at_start(v: torch.Tensor) -> torch.Tensor:  # the value of v at the start of each step's note
        first = torch.zeros(B, L + 1, dtype=torch.long, device=dev)
        first.scatter_reduce_(1, seg, torch.where(onset, v, big), "amin", include_self=False)
        return first.gather(1, seg)

    stops = ((p.sum(1) < sounding) & ~onset).long().cumsum(-1)
    alive = (seg > 0) & ((t - at_start(t) < max(1, min_note)) | (stops == at_start(stops)))
    mass_p = torch.zeros(B, L + 1, P, device=dev)
    mass_p.scatter_add_(1, seg.unsqueeze(-1).expand(B, L, P), (p * alive.unsqueeze(1)).transpose(1, 2))
    if rows is not None:  # (B, P) the rows a note may take
        mass_p = torch.where(rows.bool()[:, None, :], mass_p, torch.full_like(mass_p, -1.0))
    if temperature > 0 and noise is not None:
        g = F.pad(noise.transpose(1, 2), (0, 0, 1, 0))  # (B, L + 1, P): note k's noise is step k - 1's
        floor = torch.where(mass_p < 0, torch.full_like(mass_p, -2e30), torch.full_like(mass_p, -1e30))
        mass_p = torch.where(mass_p > 0, torch.log(mass_p.clamp_min(1e-30)) + temperature * g, floor)
    best = mass_p.argmax(-1)  # (B, L + 1): each note's row
    if repeat > 0 and not (temperature > 0 and noise is not None):
        top = mass_p.max(-1).values
        for k in range(2, int(seg.max()) + 1 if seg.numel() else 0):
            again = best[:, k] == best[:, k - 1]
            if not bool(again.any()):
                continue
            m = mass_p[:, k].scatter(1, best[:, k - 1:k], float("-inf"))
            m2, second = m.max(-1)
            best[:, k] = torch.where(again & (top[:, k] > 0) & (m2 >= repeat * top[:, k]), second, best[:, k])
    pitch = best.gather(1, seg)  # (B, L)
    alive &= ~(F.pad(onset, (0, 1))[..., 1:] & (F.pad(pitch, (0, 1), value=-1)[..., 1:] == pitch))
    x = torch.zeros_like(p)
    x.scatter_(1, pitch.unsqueeze(1), alive.unsqueeze(1).to(p.dtype))
    return x
