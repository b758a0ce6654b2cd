"""Drums by whole units: the network's P(hit) per cell -> real drumming from a library, planned by phrase.

Every bar pattern of the library in a bar's meter gets a score against the network's P for that bar::

    score(bar, pattern) = w_fit * 2 sum(x P) / (hits(pattern) + sum P)       (expected Dice agreement; "ll":
                                                                        the Bernoulli log-likelihood)
                        - w_density * max(0, hits(pattern) - 2 sum P)^2 / (sum P + 1)   (no more hits
                                                                      than the network expects: sparse bars stay sparse)
                        + w_common * log(count(pattern))

``unit="phrase"`` (the default): each phrase slot (up to 4 bars from a phrase start) plays the first bars of
one real phrase of the library (``library.phrases``: 4 bars as a drummer played them, with their variations,
fills and crashes), the one with the best sum of its bars' scores after a Gumbel draw at
``phrase_temperature`` (another seed, another take), a bonus for repeating the phrase before (``repeat``),
and, in a whole song, the plan's fill or no fill at the slot's end as a constraint (``plan.py``), and a bonus (``vary``) for each bar of the
phrase that differs from the bars before it in the slot: the fit alone prefers a loop of the one bar that
fits best, where drummers vary a groove inside a phrase.

``unit="bar"``: one groove per bar by Viterbi (keeping the groove is free, changing it costs ``change``
inside a phrase, less at phrase and section starts), with real fills at the planned bars.

In both, a bar that must end in a fill takes a real fill whose first half matches the groove it leaves
(``_fill_for``), and a planned crash replaces the hi-hat or ride hit on the bar's downbeat. Bars in a meter
the library has no grooves for, and bars only partly open, keep the cell decoder's hits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stemfill.generate.library import CRASH, PHRASE_BARS, PatternLibrary
from stemfill.generate.plan import Plan
from stemfill.generate.controls import BAR, SNARE_ROWS, TOM_ROWS, DrumTargets
from stemfill.pianoroll.grid import STEPS_PER_BEAT
from stemfill.pianoroll.roll import DRUM_KIT

_CLASS = {name: i for i, (name, _, _) in enumerate(DRUM_KIT)}
DOWNBEAT_YIELDS = [_CLASS[c] for c in ("closed hi-hat", "pedal hi-hat", "open hi-hat", "ride")]
TIME_KEEPERS = [_CLASS[c] for c in ("closed hi-hat", "open hi-hat", "ride", "ride bell", "tambourine")]


def _merged(x: np.ndarray, length: int, groups: tuple[tuple[int, ...], ...] = (tuple(TIME_KEEPERS),)) -> np.ndarray:
    """(n, C * length) hits or P with the classes of each group folded into one row (P: the chance that any of
    them hits): (n, (C - sum(len(g) - 1)) * length)."""
    n = len(x)
    x = x.reshape(n, -1, length)
    folded = {c for g in groups for c in g}
    rest = [c for c in range(x.shape[1]) if c not in folded]
    rows = [x[:, rest]] + [1 - np.prod(1 - np.clip(x[:, list(g)], 0, 1), axis=1, keepdims=True) for g in groups]
    return np.concatenate(rows, axis=1).reshape(n, -1).astype(np.float32)


@dataclass
class PatternConfig:
    """The pattern decoder's weights (chosen on the valid split: docs/model-card.md)."""

    unit: str = "phrase"  # "phrase": real runs of PHRASE_BARS bars from the library; "bar": one bar at a time
    phrase_temperature: float = 0.5  # Gumbel scale of the draw among phrases (per phrase slot)
    repeat: float = 1.0  # phrases: bonus for playing the previous phrase again (not at a section start)
    fit: str = "dice"  # "dice": expected agreement 2 sum(x P) / (hits + sum P); "ll": Bernoulli log-likelihood
    w_fit: float = 10.0
    w_density: float = 1.0
    w_common: float = 0.0
    density_margin: float = 2.0  # the density cost counts only the hits past this x the network's expected count
    density_slack: float = float("inf")  # ... or past the expected count + this many hits a bar, if fewer
    change: float = 2.0  # cost of a new groove inside a phrase
    change_phrase: float = 0.5  # ... at a phrase start
    change_section: float = 0.1  # ... at a section start
    temperature: float = 0.3  # Gumbel scale of the per-pattern draw (0: the best-scoring sequence)
    bar_temperature: float = 0.0  # Gumbel scale of a draw per bar and pattern (bar-to-bar variation)
    rest_below: float = 0.0  # a bar where the network expects fewer hits than this (per 4/4 bar) rests
    fill_join: float = 2.0  # fills: weight of their first half's agreement with the groove they leave
    fill_top: int = 8  # fills: drawn among the best this many
    vary: float = 0.0  # phrases: bonus per bar that differs from the bars before it in the phrase slot
    merge_time: bool = False  # score the time-keeping classes (hi-hats, ride, bell, tambourine) as one (measured, off)
    merge_toms: bool = False  # score the three toms as one (the network spreads its P for a tom over them)
    w_critic: float = 1.0  # phrases of 4 bars of 4/4: among the critic_top drawn, play the one with the best draw
    critic_top: int = 32  # score - w_critic x the critic's log-odds that it is the decoder's (critic.py)
    # a drum request (--density, --complexity, --toms, --like, --style; controls.DrumTargets), per bar:
    w_target_density: float = 1.0  # - w (hits - asked)^2 / (asked + 1)
    w_target_share: float = 1.0  # - w ((share - asked) / share_unit)^2, syncopation and toms
    share_unit: float = 0.1
    w_groove: float = 5.0  # - w x the L1 distance of the bar's hits to the requested groove (both summing to 1)


def _attributes(lib: PatternLibrary, meter: str, length: int) -> dict[str, np.ndarray]:
    """Per pattern of ``meter`` and ``length`` (``lib.of_meter``'s order): hits, the share off the beat, the
    share on the toms (as ``controls.bar_attributes`` measures them), and the hits normalised to sum 1."""
    key = ("attributes", meter, int(length))
    if key not in lib._flat:
        _, x = lib.of_meter(meter, length)
        C = lib.bits.shape[1]
        xb = x.reshape(len(x), C, length)
        hits = xb.sum((1, 2))
        safe = np.maximum(hits, 1.0)
        off = (np.arange(length) % STEPS_PER_BEAT != 0)
        last = xb[:, :, length - STEPS_PER_BEAT:]  # the fill flag of controls.bar_attributes
        fill = ((xb[:, list(TOM_ROWS), length - 2 * STEPS_PER_BEAT:].sum((1, 2)) >= 2)
                | (last[:, list(SNARE_ROWS + TOM_ROWS)].sum((1, 2)) >= 3))
        lib._flat[key] = {"hits": hits, "syncopation": xb[:, :, off].sum((1, 2)) / safe,
                          "toms": xb[:, list(TOM_ROWS)].sum((1, 2)) / safe, "shape": x / safe[:, None],
                          "fill": fill}
    return lib._flat[key]


def _target_cost(lib: PatternLibrary, meter: str, length: int, targets: dict, cfg: PatternConfig) -> np.ndarray:
    """(n_bars, n) cost of every pattern against a drum request's per-bar ``targets`` ({"density",
    "syncopation", "toms": (n_bars,) NaN where not asked; "groove": (n_bars, classes * length) or None})."""
    a = _attributes(lib, meter, length)
    n_bars = len(targets["density"])
    cost = np.zeros((n_bars, len(a["hits"])))
    d = targets["density"] * length / BAR  # notes a 4/4 bar -> notes in this bar
    ok = np.isfinite(d)
    if ok.any():
        cost[ok] += cfg.w_target_density * (a["hits"][None, :] - d[ok, None]) ** 2 / (d[ok, None] + 1.0)
    for attr in ("syncopation", "toms"):
        t = targets[attr]
        ok = np.isfinite(t)
        if ok.any():
            cost[ok] += cfg.w_target_share * ((a[attr][None, :] - t[ok, None]) / cfg.share_unit) ** 2
    g = targets.get("groove")
    if g is not None:
        gs = g / np.maximum(g.sum(1, keepdims=True), 1e-6)
        # L1 between shapes that each sum to 1 is 2 - 2 sum(min(a, b)); once per distinct requested bar
        rows, inv = np.unique(gs, axis=0, return_inverse=True)
        for r, row in enumerate(rows):
            if row.sum() > 0:
                cost[inv.reshape(-1) == r] += cfg.w_groove * (2 - 2 * np.minimum(a["shape"], row[None, :]).sum(1))
    return cost


def _run_targets(targets: DrumTargets | None, bars, run: list[int], C: int, L: int) -> dict | None:
    """The request's targets for the bars ``run`` (indices into ``bars``), as ``_target_cost`` reads them."""
    if targets is None:
        return None
    g = None
    if targets.groove is not None:
        T = targets.groove.shape[-1]
        g = np.zeros((len(run), C, L), dtype=np.float32)
        for k, i in enumerate(run):
            seg = targets.groove[:C, bars[i].start:min(bars[i].start + L, T)]
            g[k, :, :seg.shape[-1]] = seg
        g = g.reshape(len(run), -1)
    return {"density": targets.density[run], "syncopation": targets.syncopation[run], "toms": targets.toms[run],
            "groove": g}


def _bar_scores(lib: PatternLibrary, meter: str, length: int, p_bars: np.ndarray, cfg: PatternConfig,
                common: bool = True, targets: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(indices, (n_bars, n) scores) of every pattern of ``meter`` and ``length`` for bars of P ``p_bars``
    (n_bars, classes, length); ``common``: with the w_common term; ``targets``: a drum request's per-bar
    targets (``_target_cost``)."""
    idx, x = lib.of_meter(meter, length)
    p = np.clip(p_bars.reshape(len(p_bars), -1).astype(np.float32), 1e-4, 1 - 1e-4)
    hits = x.sum(1)
    expect = p_bars.reshape(len(p_bars), -1).sum(1, dtype=np.float64)
    groups = tuple(g for g, on in ((tuple(TIME_KEEPERS), cfg.merge_time), (tuple(TOM_ROWS), cfg.merge_toms)) if on)
    if groups:
        key = ("merged", groups, meter, int(length))
        if key not in lib._flat:
            lib._flat[key] = (idx, _merged(x, length, groups))
        x = lib._flat[key][1]
        p = np.clip(_merged(p, length, groups), 1e-4, 1 - 1e-4)
        hits, expect = x.sum(1), p.sum(1, dtype=np.float64)
    if cfg.fit == "dice":
        ll = 2 * (p @ x.T) / (hits[None, :] + expect[:, None] + 1e-6)
    else:
        ll = (np.log(p) - np.log1p(-p)) @ x.T  # (n_bars, n)
    allowed = np.minimum(cfg.density_margin * expect, expect + cfg.density_slack * length / 48)
    over = np.maximum(hits[None, :] - allowed[:, None], 0.0)  # hits past what the network expects
    dens = over ** 2 / (expect[:, None] + 1.0)
    s = cfg.w_fit * ll - cfg.w_density * dens
    if common and cfg.w_common:
        s = s + cfg.w_common * np.log(lib.count[idx].astype(np.float64))[None, :]
    if targets is not None:
        s = s - _target_cost(lib, meter, length, targets, cfg)
    return idx, s


def _viterbi(scores: np.ndarray, change_cost: np.ndarray) -> np.ndarray:
    """Best path through (n_bars, n) scores where staying is free and moving into bar b costs change_cost[b]."""
    n_bars, n = scores.shape
    delta = scores[0].copy()
    back_best = np.zeros(n_bars, dtype=np.int64)  # the best previous state, when a bar changed
    stay = np.zeros((n_bars, n), dtype=bool)
    for b in range(1, n_bars):
        j = int(np.argmax(delta))
        moved = delta[j] - change_cost[b]
        stay[b] = delta >= moved
        delta = np.where(stay[b], delta, moved) + scores[b]
        back_best[b] = j
    path = np.zeros(n_bars, dtype=np.int64)
    path[-1] = int(np.argmax(delta))
    for b in range(n_bars - 1, 0, -1):
        path[b - 1] = path[b] if stay[b, path[b]] else back_best[b]
    return path


def decode_drums(p: np.ndarray, free: np.ndarray, plan: Plan, lib: PatternLibrary, cfg: PatternConfig | None = None,
                 rng: np.random.Generator | None = None, critic=None, parts: np.ndarray | None = None,
                 other: np.ndarray | None = None, targets: DrumTargets | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Drum hits for the open bars. ``p`` (classes, T) the network's P(hit); ``free`` (T,) the steps to write;
    ``critic`` (``critic.Critic``) with ``parts`` ((2, P, T) the bass and guitar as filled) and ``other`` (the
    song's context planes (2, P, T) or None): the critic's choice among the best-drawn phrases; ``targets``: a
    drum request's per-bar density, syncopation, toms and groove, each a cost on the patterns that miss it.
    Returns (hits (classes, T) bool, done (T,) bool: the steps decoded here; the rest are left to the caller)."""
    cfg = cfg or PatternConfig()
    rng = rng or np.random.default_rng(0)
    C, T0 = p.shape
    bars = plan.bars
    T = max([T0] + [b.start + b.length for b in bars])  # a last bar may reach past the roll: pad, crop at the end
    if T > T0:
        p = np.pad(p, ((0, 0), (0, T - T0)))
        free = np.pad(free, (0, T - T0), constant_values=True)
    hits = np.zeros((C, T), dtype=bool)
    done = np.zeros(T, dtype=bool)
    ok = [i for i, b in enumerate(bars)
          if b.start + b.length <= T and free[b.start:b.start + b.length].all()
          and len(lib.select(b.meter, b.length, False))]
    if not ok:
        return hits[:, :T0], done[:T0]
    # runs of consecutive open bars of one meter and length: one Viterbi pass each
    runs, cur = [], [ok[0]]
    for i in ok[1:]:
        if i == cur[-1] + 1 and bars[i].meter == bars[cur[-1]].meter and bars[i].length == bars[cur[-1]].length:
            cur.append(i)
        else:
            runs.append(cur)
            cur = [i]
    runs.append(cur)
    noise_cache: dict[tuple[str, int], np.ndarray] = {}
    for run in runs:
        if cfg.unit == "phrase" and len(lib.phrases):
            judge = (critic, parts, other) if critic is not None and parts is not None and cfg.w_critic > 0 else None
            _phrase_run(run, bars, p, plan, lib, cfg, rng, hits, done, judge, targets)
            continue
        b0 = bars[run[0]]
        L, meter = b0.length, b0.meter
        pb = np.stack([p[:, bars[i].start:bars[i].start + L] for i in run])
        allidx, s_all = _bar_scores(lib, meter, L, pb, cfg, targets=_run_targets(targets, bars, run, C, L))
        groove = ~lib.fill[allidx]
        idx, s = allidx[groove], s_all[:, groove]
        if cfg.temperature > 0:
            key = (meter, L)
            if key not in noise_cache:  # one draw per pattern for the whole song: a take's grooves are consistent
                noise_cache[key] = -np.log(-np.log(rng.uniform(1e-12, 1.0, len(idx))))
            s = s + cfg.temperature * noise_cache[key][None, :]
        if cfg.bar_temperature > 0:
            s = s + cfg.bar_temperature * -np.log(-np.log(rng.uniform(1e-12, 1.0, s.shape)))
        cost = np.array([cfg.change_section if plan.section_start[i] else cfg.change_phrase if plan.phrase_start[i]
                         else cfg.change for i in run])
        path = idx[_viterbi(s, cost)]
        for k, i in enumerate(run):
            bar = bars[i]
            if plan.rest is not None and plan.rest[i]:
                done[bar.start:bar.start + L] = True
                continue
            pat = lib.bits[path[k], :C, :L].copy()
            if plan.fill[i]:
                f = _fill_for(lib, allidx, s_all[k], path[k], L, C, cfg, rng)
                if f is not None:
                    pat = lib.bits[f, :C, :L].copy()
            if plan.crash[i]:
                pat[DOWNBEAT_YIELDS, 0] = False
                pat[CRASH, 0] = True
            hits[:, bar.start:bar.start + L] = pat
            done[bar.start:bar.start + L] = True
    return hits[:, :T0], done[:T0]


def _phrase_run(run: list[int], bars, p: np.ndarray, plan: Plan, lib: PatternLibrary, cfg: PatternConfig,
                rng: np.random.Generator, hits: np.ndarray, done: np.ndarray, judge=None,
                targets: DrumTargets | None = None) -> None:
    """Decode one run of open bars of one meter by whole phrases: each slot (up to PHRASE_BARS bars, from a
    phrase start) plays the first bars of a real phrase, drawn by the sum of its bars' scores."""
    C = p.shape[0]
    b0 = bars[run[0]]
    L, meter = b0.length, b0.meter
    pb = np.stack([p[:, bars[i].start:bars[i].start + L] for i in run])
    allidx, S = _bar_scores(lib, meter, L, pb, cfg, common=False,  # a phrase's own count stands in for its bars'
                            targets=_run_targets(targets, bars, run, C, L))
    local = np.full(len(lib.bits), -1, dtype=np.int64)
    local[allidx] = np.arange(len(allidx))
    bound = plan.bound
    ctl_fill = _attributes(lib, meter, L)["fill"] if bound is not None else None
    ph_ok = (local[lib.phrases] >= 0).all(axis=1)
    phrases, pcrash = lib.phrases[ph_ok], lib.phrase_crash[ph_ok]
    if not len(phrases):
        return
    pc = np.log(lib.phrase_count[ph_ok].astype(np.float64))
    slots, cur = [], [0]
    for k in range(1, len(run)):
        if plan.phrase_start[run[k]] or len(cur) == len(phrases[0]):
            slots.append(cur)
            cur = []
        cur.append(k)
    slots.append(cur)
    prev = -1
    for slot in slots:
        n = len(slot)
        score = sum(S[slot[k], local[phrases[:, k]]] for k in range(n)) + cfg.w_common * pc
        if cfg.vary:
            new_bars = sum((phrases[:, k, None] != phrases[:, :k]).all(1) for k in range(1, n)) if n > 1 else 0
            score = score + cfg.vary * new_bars
        last = run[slot[-1]]
        if plan.constrain_fills and not (bound is not None and bound[last]):
            wants = bool(plan.fill[last])
            has = lib.fill[phrases[:, n - 1]]
            score = score + np.where(has == wants, 0.0, -1e3)
        if bound is not None:  # a request's fills or none, by its own measure, in every bar it fixes
            for k in range(n):
                if bound[run[slot[k]]]:
                    has = ctl_fill[local[phrases[:, k]]]
                    score = score + np.where(has == bool(plan.fill[run[slot[k]]]), 0.0, -1e3)
        if prev >= 0 and not plan.section_start[run[slot[0]]]:
            score[prev] += cfg.repeat
        if cfg.phrase_temperature > 0:
            score = score + cfg.phrase_temperature * -np.log(-np.log(rng.uniform(1e-12, 1.0, len(score))))
        j = int(np.argmax(score))
        if judge is not None and n == PHRASE_BARS and L == 4 * STEPS_PER_BEAT:
            j = _critics_choice(judge, score, phrases, pcrash, [bars[run[k]].start for k in slot], lib, cfg, C)
        prev = j
        for k, bk in enumerate(slot):
            i = run[bk]
            bar = bars[i]
            if plan.rest is not None and plan.rest[i]:  # the plan rests the drums here (rests.py)
                done[bar.start:bar.start + L] = True
                continue
            pat = lib.bits[phrases[j, k], :C, :L].copy()
            if cfg.rest_below > 0 and pb[bk].sum() < cfg.rest_below * L / 48:
                done[bar.start:bar.start + L] = True  # the network hears a bar with (almost) no drums: rest
                continue
            if bound is not None and bound[i]:
                if bool(ctl_fill[local[phrases[j, k]]]) != bool(plan.fill[i]):  # no phrase had it: the best bar that does
                    f = _fill_for(lib, allidx, S[bk], phrases[j, k], L, C, cfg, rng,
                                  ctl_fill if plan.fill[i] else ~ctl_fill)
                    if f is not None:
                        pat = lib.bits[f, :C, :L].copy()
            elif plan.constrain_fills and plan.fill[i] and not lib.fill[phrases[j, k]]:
                f = _fill_for(lib, allidx, S[bk], phrases[j, k], L, C, cfg, rng)
                if f is not None:
                    pat = lib.bits[f, :C, :L].copy()
            # a whole song's plan decides the crash on a phrase's downbeat; inside it, the phrase's own crashes
            own = pcrash[j, k] and not (plan.constrain_fills and k == 0)
            if own or (plan.constrain_fills and plan.crash[i]):
                pat[DOWNBEAT_YIELDS, 0] = False
                pat[CRASH, 0] = True
            hits[:, bar.start:bar.start + L] = pat
            done[bar.start:bar.start + L] = True


def _critics_choice(judge, score: np.ndarray, phrases: np.ndarray, pcrash: np.ndarray, starts: list[int],
                    lib: PatternLibrary, cfg: PatternConfig, C: int) -> int:
    """Among the ``critic_top`` best-drawn phrases for a slot of 4 bars of 4/4 at ``starts``, the one with the
    best score less ``w_critic`` x the critic's log-odds that the slot's drums are the decoder's (the
    critic reads the slot as a 4-bar chunk: the candidate drums, the bass and guitar, the other tracks)."""
    from stemfill.evaluation.realism import segment_features

    critic, parts, other = judge
    top = np.argsort(-score)[:max(1, int(cfg.critic_top))]
    t0, L = starts[0], len(starts) * 4 * STEPS_PER_BEAT
    P = parts.shape[1]
    trial = np.zeros((len(top), 3, P, L), dtype=bool)
    seg = parts[:, :, t0:t0 + L]
    trial[:, 1:, :, :seg.shape[-1]] = seg
    for n, j in enumerate(top):
        for k, b in enumerate(starts):
            pat = lib.bits[phrases[j, k], :C, :4 * STEPS_PER_BEAT].copy()
            if pcrash[j, k]:
                pat[DOWNBEAT_YIELDS, 0] = False
                pat[CRASH, 0] = True
            trial[n, 0, :C, b - t0:b - t0 + 4 * STEPS_PER_BEAT] = pat
    ctx = None
    if other is not None:
        ctx = np.zeros((len(top), other.shape[0], P, L), dtype=other.dtype)
        o = other[:, :, t0:t0 + L]
        ctx[..., :o.shape[-1]] = o[None]
    fake = critic.logit_fake(segment_features(trial, 0, STEPS_PER_BEAT, ctx))
    return int(top[np.argmax(score[top] - cfg.w_critic * fake)])


def _fill_for(lib: PatternLibrary, allidx: np.ndarray, scores: np.ndarray, groove: int, L: int, C: int,
              cfg: PatternConfig, rng: np.random.Generator, which: np.ndarray | None = None) -> int | None:
    """A fill bar for a bar that must end in one: drawn among the best ``fill_top`` fills of the meter by
    their score plus how well their first half matches the groove they leave. ``which``: (len(allidx),) bool,
    the bars to draw from instead of the library's fills (a request's own measure)."""
    is_f = lib.fill[allidx] if which is None else which
    if not is_f.any():
        return None
    fidx, fs = allidx[is_f], scores[is_f]
    half = L // 2
    g = lib.bits[groove, :C, :half].reshape(-1)
    f = lib.bits[fidx][:, :C, :half].reshape(len(fidx), -1)
    join = 2 * (f & g).sum(1) / np.maximum(f.sum(1) + g.sum(), 1)
    fs = fs + cfg.fill_join * join
    top = np.argsort(-fs)[:max(1, cfg.fill_top)]
    w = np.exp(fs[top] - fs[top].max())
    return int(fidx[rng.choice(top, p=w / w.sum())])
