"""Takes for the bass and guitar: decode a few versions of each window from the network's last P and keep the
one a player would more likely have played.

The sampler decodes the last step's P once, with no noise: the likeliest line (``decode_line``) or cells
(``decode_count``). Here ``draws - 1`` more takes of the same window are decoded from the same P with Gumbel
noise at ``temperature`` (only the stem's own channel changes), and each take is scored

    fit - w_critic x the critic's log-odds that it is the decoder's

where fit is the take's log-likelihood under P over the stem's open cells, in nats, less the plain take's, and the
critic (``critic.py``, trained on the train split against the plain decoder) reads the take's 4-bar features with
the rest of the window. The window keeps its best take; the plain one scores 0 - w_critic x its own log-odds.
It costs no network pass: only decoding (``bench/fill.py`` has the time).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from stemfill.generate.critic import Critic
from stemfill.pianoroll.grid import STEPS_PER_BEAT
from stemfill.song.song import STEMS


@dataclass
class TakeConfig:
    draws: int = 8  # takes per window and stem, the plain one included (1: the plain decode only)
    temperature: float = 0.5  # Gumbel temperature of the other takes
    w_critic: float = 4.0  # nats of fit one unit of the critic's log-odds is worth

    def __post_init__(self):
        if int(self.draws) < 1:
            raise ValueError(f"TakeConfig: draws must be >= 1, got {self.draws}")
        if self.temperature < 0 or self.w_critic < 0:
            raise ValueError("TakeConfig: temperature and w_critic must be >= 0")


def log_likelihood(x: np.ndarray, p: np.ndarray, free: np.ndarray) -> np.ndarray:
    """(B,) sum over the ``free`` cells of log P(x) under independent cells ``p``; x, p, free (B, P, L)."""
    q = np.clip(p.astype(np.float64), 1e-6, 1 - 1e-6)
    ll = np.where(x, np.log(q), np.log1p(-q))
    return (ll * free).reshape(len(x), -1).sum(1)


def choose_takes(x: np.ndarray, p: np.ndarray, held: np.ndarray | None, known: np.ndarray, ctx: np.ndarray,
                 other: np.ndarray | None, sampling, critics: dict[int, Critic], cfg: TakeConfig,
                 rng: np.random.Generator, channels: np.ndarray | None = None) -> np.ndarray:
    """``x`` (B, 3, P, L) bool, as the sampler decoded it from ``p`` (and ``held``, ``known``, ``ctx``, as
    ``fast.decode_last`` reads them), with the channels that have a critic in ``critics`` ({channel: critic})
    re-chosen per window among ``cfg.draws`` takes. ``other``: the windows' context planes (B, 2, P, L) or None;
    ``channels``: (B, 3) bool, which channels may be re-chosen per window (default: all with open cells).
    Known cells never change."""
    from stemfill.evaluation.realism import segment_features
    from stemfill.pianoroll.fast import decode_last, gumbel

    x = np.asarray(x, dtype=bool).copy()
    if cfg.draws <= 1 or not critics:
        return x
    free = ~np.asarray(known, dtype=bool)
    for c, critic in sorted(critics.items()):
        rows = free[:, c].reshape(len(x), -1).any(1)
        if channels is not None:
            rows &= channels[:, c]
        idx = np.flatnonzero(rows)
        if len(idx) == 0:
            continue
        temp = [0.0] * len(STEMS)
        temp[c] = float(cfg.temperature)
        sc = replace(sampling, temperature=tuple(temp))
        pk, kk, ck = p[idx], known[idx], ctx[idx]
        hk = held[idx] if held is not None else None
        ok = other[idx] if other is not None else None
        takes = [x[idx, c]]
        for _ in range(cfg.draws - 1):
            noise = gumbel(pk.shape, rng).astype(np.float32)
            takes.append(decode_last(sc, pk, kk, ck, noise, hk)[:, c] > 0)
        fit = np.stack([log_likelihood(t, pk[:, c], free[idx, c]) for t in takes], 1)  # (n, draws)
        fake = np.empty_like(fit)
        trial = x[idx].copy()
        for k, t in enumerate(takes):
            trial[:, c] = np.where(kk[:, c], x[idx, c], t)
            fake[:, k] = critic.logit_fake(segment_features(trial, c, STEPS_PER_BEAT, ok))
        score = (fit - fit[:, :1]) - cfg.w_critic * fake
        best = np.argmax(score, axis=1)
        chosen = np.stack(takes, 1)[np.arange(len(idx)), best]
        x[idx, c] = np.where(kk[:, c], x[idx, c], chosen)
    return x


def take_chooser(model):
    """The take choice for ``model``: a function (x, p, held, known, ctx, other, channels, rng) -> x, or None where
    the model's folder has no bass or guitar critic (``critic.get_critic``) or ``model.takes`` (a ``TakeConfig``,
    default ``TakeConfig()``) asks for one draw."""
    from stemfill.generate.critic import get_critic, model_folder
    from stemfill.pianoroll.grid import CHANNEL

    cfg = getattr(model, "takes", None) or TakeConfig()
    if cfg.draws <= 1 or getattr(model.sampling, "decode", "count") != "count":
        return None
    folder = model_folder(model)
    critics = {CHANNEL[s]: k for s in ("bass", "guitar") if (k := get_critic(folder, s)) is not None}
    if not critics:
        return None

    def choose(x, p, held, known, ctx, other, channels, rng):
        return choose_takes(x, p, held, known, ctx, other, model.sampling, critics, cfg, rng, channels)

    return choose
