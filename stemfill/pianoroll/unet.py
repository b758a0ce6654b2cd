"""A small 2-D UNet over a (pitch, time) piano roll that predicts x0 logits.

The network knows nothing of noise schedules (``diffusion.py`` owns those). Input
planes, each (3, N_PITCHES, L), concatenated along channels:

* ``x_t``      the noisy roll, zero where the cell is known,
* ``known``    1 where a cell is given (a full (channel, pitch, time) plane, so a mask
               can be per channel *and* per step: whole-song filling marks the overlap
               with already-written windows as known),
* ``context``  the clean known cells (x0 * known),
* ``other``    (models with ``context_planes`` > 0) what the song's other pitched tracks play:
               ``roll.encode_context``'s planes, always known, all zero where a song has none,
* ``controls`` (models with ``control_planes`` > 0) how the filled stems should play
               (``generate/controls.py``): a value and a given flag per attribute, all zero for "auto".

Pooling is asymmetric: pitch 48 -> 24 -> 12, time L -> L/2 -> L/4 -> L/8 (``down``), so
the bottom sees 12 pitch rows x 24 steps (two bars at 12 steps/beat for L=192), where
one full self-attention layer mixes the whole window. A learned per-row embedding
tells the convolutions which pitch (or drum class) a row is.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stemfill.pianoroll.grid import N_PITCHES
from stemfill.song.song import STEMS

N_STEMS = len(STEMS)
IN_PLANES = 3 * N_STEMS  # x_t, known, context
CPU_CHUNK = 4  # windows per network call in CPU inference (UNet.infer)
_window_threads: int | None = None  # inside one_thread_per_op: the threads UNet.infer spreads windows over


@dataclass
class UNetConfig:
    channels: tuple[int, ...] = (16, 32, 64, 96)  # width per level
    down: tuple[tuple[int, int], ...] = ((2, 2), (2, 2), (1, 2))  # (pitch, time) pooling between levels
    layers: tuple[int, ...] = (0, 1, 1, 1)  # residual blocks per level and path (0: the level only passes a skip)
    attention: bool = True  # one self-attention layer at the bottom
    heads: int = 4
    norm_groups: int = 8
    time_dim: int = 128
    n_pitches: int = N_PITCHES
    prior_logit: float = -3.4  # output bias at init, logit of the note density
    context_planes: int = 0  # input planes of the other tracks' context (grid.CONTEXT_PLANES); 0: none
    control_planes: int = 0  # input planes of the controls (controls.N_CONTROL_PLANES); 0: none
    control_scale: float = 1.0  # the control planes enter multiplied by this: their zero-started input weights
    # then train this many times faster under Adam (whose steps do not grow with the gradient)

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        self.down = tuple(tuple(int(v) for v in d) for d in self.down)
        self.layers = tuple(int(n) for n in self.layers)
        if len(self.layers) != len(self.channels):
            raise ValueError(f"UNetConfig: layers {self.layers} needs one entry per level {self.channels}")
        if len(self.down) != len(self.channels) - 1:
            raise ValueError(f"UNetConfig: {len(self.channels)} levels need {len(self.channels) - 1} down factors, got {len(self.down)}")
        for c in self.channels:
            if c % self.norm_groups:
                raise ValueError(f"UNetConfig: channel width {c} is not a multiple of norm_groups={self.norm_groups}")

    @property
    def time_multiple(self) -> int:
        """Window lengths must be a multiple of this."""
        return math.prod(d[1] for d in self.down)


@contextmanager
def one_thread_per_op():
    """Inference: torch runs every op on one thread, and ``UNet.infer`` its chunks of windows on as many
    threads as torch had. On one thread an op rounds the same way on any machine and under any load (torch
    splits an op's work, and so its float rounding, by its number of threads), and never waits for a thread
    whose core another process holds, where torch's threads meet after every op; the network, nearly all of
    the work, still runs on every core."""
    global _window_threads
    if _window_threads is not None:  # already inside
        yield
        return
    _window_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(_window_threads)
        _window_threads = None


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1] (scaled by 1000)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    a = (t.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([a.sin(), a.cos()], dim=1)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, time_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        # in place where autograd allows: fewer activations to allocate (silu's backward needs its input)
        inplace = not torch.is_grad_enabled()
        h = self.conv1(F.silu(self.norm1(x), inplace=inplace))
        h += self.time(temb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h), inplace=inplace))
        return h.add_(self.skip(x))


class Attention(nn.Module):
    """Full self-attention over all (pitch, time) positions of the bottom level."""

    def __init__(self, c: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.out = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        o = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.out(o.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        self.config = cfg = config or UNetConfig()
        ch, g, td = cfg.channels, cfg.norm_groups, cfg.time_dim
        self.time_mlp = nn.Sequential(nn.Linear(td, td), nn.SiLU(), nn.Linear(td, td))
        self.conv_in = nn.Conv2d(IN_PLANES + cfg.context_planes + cfg.control_planes, ch[0], 3, padding=1)
        self.row_emb = nn.Parameter(torch.zeros(1, ch[0], cfg.n_pitches, 1))
        self.down_blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        for i, c in enumerate(ch):
            self.down_blocks.append(nn.ModuleList([ResBlock(c, c, td, g) for _ in range(cfg.layers[i])]))
            if i < len(ch) - 1:
                f = cfg.down[i]
                self.downs.append(nn.Conv2d(c, ch[i + 1], 3, stride=f, padding=1))
        self.mid = ResBlock(ch[-1], ch[-1], td, g)
        self.mid_attn = Attention(ch[-1], cfg.heads, g) if cfg.attention else nn.Identity()
        self.up_blocks = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i in reversed(range(len(ch))):
            c = ch[i]
            self.up_blocks.append(nn.ModuleList([ResBlock(2 * c, c, td, g) for _ in range(max(1, cfg.layers[i]))]))
            if i > 0:
                self.ups.append(nn.Conv2d(c, ch[i - 1], 3, padding=1))
        self.norm_out = nn.GroupNorm(g, ch[0])
        self.conv_out = nn.Conv2d(ch[0], N_STEMS, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.constant_(self.conv_out.bias, cfg.prior_logit)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x: (B, 9 + context_planes + control_planes, P, L) float planes, or fewer (trailing planes left out
        count as zero); t: (B,) in [0, 1]. Returns x0 logits (B, 3, P, L)."""
        cfg = self.config
        if x.shape[-1] % cfg.time_multiple:
            raise ValueError(f"window length {x.shape[-1]} is not a multiple of {cfg.time_multiple}")
        temb = self.time_mlp(timestep_embedding(t, cfg.time_dim))
        if x.shape[1] < self.conv_in.in_channels:  # trailing planes left out are zero (no controls given)
            h = F.conv2d(x, self.conv_in.weight[:, :x.shape[1]], self.conv_in.bias, padding=1) + self.row_emb
        else:
            h = self.conv_in(x) + self.row_emb
        skips = []
        for i, blocks in enumerate(self.down_blocks):
            for blk in blocks:
                h = blk(h, temb)
                skips.append(h)
            if not blocks:
                skips.append(h)
            if i < len(self.downs):
                h = self.downs[i](h)
        h = self.mid_attn(self.mid(h, temb))
        n = len(self.up_blocks)
        for j, blocks in enumerate(self.up_blocks):
            for blk in blocks:
                h = blk(torch.cat([h, skips.pop()], dim=1), temb)
            if j < n - 1:
                f = cfg.down[n - 2 - j]
                h = F.interpolate(self.ups[j](h), scale_factor=f, mode="nearest")
        # the logits in the default layout, whatever the activations' (channels-last in CPU inference: infer)
        return self.conv_out(F.silu(self.norm_out(h))).contiguous()

    def infer(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``forward`` without autograd. On the CPU the activations take the channels-last layout (oneDNN's
        own), and the batch runs in chunks of at most ``CPU_CHUNK`` windows, each on one thread (see
        ``one_thread_per_op``), as many chunks at once as torch has threads (had, inside ``one_thread_per_op``).
        The logits do not depend on that number."""
        if x.device.type != "cpu":
            with torch.no_grad():
                return self(x, t)
        x = x.contiguous(memory_format=torch.channels_last)
        n_chunks = max(1, math.ceil(len(x) / CPU_CHUNK))
        chunks = list(zip(x.tensor_split(n_chunks), t.tensor_split(n_chunks)))
        threads = torch.get_num_threads()
        workers = min(_window_threads or threads, len(chunks))

        def run(chunk: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            torch.set_num_threads(1)  # per thread (OpenMP), so also in the pool's
            with torch.no_grad():
                return self(*chunk)

        try:
            if workers > 1:
                with ThreadPoolExecutor(workers) as pool:
                    out = list(pool.map(run, chunks))
            else:
                out = [run(c) for c in chunks]
        finally:
            torch.set_num_threads(threads)
        return torch.cat(out)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
