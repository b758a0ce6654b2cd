"""Where a new part rests: bars of a song where the other parts play and a player would not (intros, breaks).

The network hears the song and tells which notes fit a bar, but it does not tell a bar the player sits out:
its expected drum hits are as high in the bars real drummers rest as in those they play, and the new bass
and guitar sound in nearly every bar (docs/generation.md). The song's other parts do tell: players rest
where few instruments play, sparsely, near the song's start, and where the part they follow rests too (the
drums follow the bass, the bass and guitar the drums: ``LEAD``). A logistic regression on those per-bar
features (``bar_features``), trained on the real parts of the TRAIN split (``bench/train_rests.py``), gives
each bar the chance that the player rests there; bars above ``threshold`` (chosen on the valid split so that
the new part rests about as often as real ones) rest, and so do the bars before the other parts first play.
For the drums the phrase plan (``plan.make_plan``) rests them and puts a crash on the downbeat where the
drums come in after a rest of two bars or more, as often as drummers do (``crash_entry``); the bass and
guitar are cleared there after sampling (``fill.fill_roll``).

A rest model is one JSON file per stem, ``drum-rests.json``, ``bass-rests.json``, ``guitar-rests.json`` in the
folder of the model (a model without one rests nowhere): format, stem, feature names, the features'
standardization, coefficients, intercept, threshold, crash_entry and the training data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stemfill.errors import StemfillError

FORMAT = "stemfill-rests/1"
FEATURES = ("onsets", "voices", "onsets_near", "voices_near", "onsets_phrase", "voices_phrase", "first_4",
            "first_8", "last_4", "lead_onsets", "lead_silent", "log_onsets")
LEAD = {"drums": "bass", "bass": "drums", "guitar": "drums"}  # the part whose rests a stem's rests follow
STEM_FILE = {"drums": "drum-rests.json", "bass": "bass-rests.json", "guitar": "guitar-rests.json"}


def stem_parts(stem: str, roll: np.ndarray, other: np.ndarray | None) -> list[np.ndarray]:
    """What ``bar_features`` reads for a new ``stem``: its lead part first (``LEAD``), then the third stem and the
    other tracks' sounding plane; ``roll`` the song's drums, bass and guitar ((3, P, T), or a list of three
    (P, T)), known or as filled."""
    from stemfill.pianoroll.grid import CHANNEL

    lead = CHANNEL[LEAD[stem]]
    third = next(c for c in range(3) if c not in (CHANNEL[stem], lead))
    return [roll[lead], roll[third]] + ([np.asarray(other[0]) > 0] if other is not None else [])
NEAR = 2  # bars either side for the *_near features
PHRASE = 4  # bars of a phrase, from the song's first bar


def _onsets(x: np.ndarray) -> np.ndarray:
    """(P, T) bool -> (T,) note starts a step (a cell turning on)."""
    prev = np.zeros_like(x)
    prev[:, 1:] = x[:, :-1]
    return (x & ~prev).sum(0)


def bar_features(parts: list[np.ndarray], bars: list) -> tuple[np.ndarray, np.ndarray]:
    """(n_bars, len(FEATURES)) features of each bar (``plan.Bar``) from the song's parts besides the new one
    (``stem_parts``: the lead part first, each (P, T) bool), and (n_bars,) bool
    where any of them plays. Counts are per 4/4 bar (a bar of another length is scaled), and relative to the
    song's median over the bars that play, so that songs of any density and instrumentation compare."""
    n = len(bars)
    V = len(parts)
    dens = np.zeros((V, n))
    sounding = np.zeros((V, n))
    for v, x in enumerate(parts):
        x = np.asarray(x, dtype=bool)
        on, snd = _onsets(x), x.any(0)
        for k, b in enumerate(bars):
            a, e = b.start, min(b.start + b.length, x.shape[-1])
            if e > a:
                dens[v, k] = on[a:e].sum() * 48.0 / b.length
                sounding[v, k] = snd[a:e].mean()
    total = dens.sum(0)
    voices = (sounding > 0).sum(0).astype(float)
    plays = (total > 0) | (voices > 0)
    med = max(float(np.median(total[plays])), 1.0) if plays.any() else 1.0
    most = max(float(voices[plays].max()), 1.0) if plays.any() else 1.0
    f_on, f_v = total / med, voices / most
    idx = np.arange(n)
    first = int(np.flatnonzero(plays)[0]) if plays.any() else 0

    def near(x: np.ndarray) -> np.ndarray:
        c = np.concatenate([[0.0], np.cumsum(x)])
        lo, hi = np.maximum(idx - NEAR, 0), np.minimum(idx + NEAR + 1, n)
        return (c[hi] - c[lo]) / (hi - lo)

    phrase = idx // PHRASE
    ph_on = np.array([f_on[phrase == p].mean() for p in phrase]) if n else f_on
    ph_v = np.array([f_v[phrase == p].mean() for p in phrase]) if n else f_v
    lead = dens[0] if V else np.zeros(n)
    lead_med = max(float(np.median(lead[lead > 0])), 1.0) if (lead > 0).any() else 1.0
    pos = idx - first
    F = np.stack([f_on, f_v, near(f_on), near(f_v), ph_on, ph_v, pos < 4, pos < 8, n - 1 - idx < 4,
                  np.minimum(lead / lead_med, 3.0), lead == 0, np.log1p(total)], axis=1).astype(np.float64)
    return F, plays


@dataclass
class RestModel:
    stem: str
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float = 0.5  # rest a bar whose chance of a rest is above this
    crash_entry: float = 0.0  # chance of a crash where the drums come in after 2+ bars of rest
    meta: dict = field(default_factory=dict)

    def chance(self, features: np.ndarray) -> np.ndarray:
        """(n,) the chance that the player rests in each bar of ``features`` (n, len(FEATURES))."""
        z = (np.asarray(features, np.float64) - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-(z @ self.coef + self.intercept)))

    def rests(self, parts: list[np.ndarray], bars: list) -> np.ndarray:
        """(n_bars,) bool: the bars where the new part rests: where the song plays and the model says a player
        would rest, and the bars before the song's other parts first play (real drummers rest in 68 % of
        those on the train split, bench/trials/silent_bars.py; in silent bars later in a song they play in 92 %)."""
        if not bars or not parts:
            return np.zeros(len(bars), dtype=bool)
        F, plays = bar_features(parts, bars)
        out = plays & (self.chance(F) > self.threshold)
        if plays.any():
            out[:int(np.flatnonzero(plays)[0])] = True
        return out

    def save(self, path: str | os.PathLike) -> Path:
        from stemfill.files import atomic_write_bytes

        d = {"format": FORMAT, "stem": self.stem, "features": list(FEATURES), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
             "coef": self.coef.tolist(), "intercept": self.intercept, "threshold": self.threshold,
             "crash_entry": self.crash_entry, "meta": self.meta}
        atomic_write_bytes(Path(path), (json.dumps(d, indent=1) + "\n").encode())
        return Path(path)


def train_rests(stem: str, X: np.ndarray, y: np.ndarray, meta: dict, C: float = 1.0) -> RestModel:
    """A rest model of ``stem`` from bar features (n, len(FEATURES)) and whether the real part rests there (n,)."""
    from sklearn.linear_model import LogisticRegression

    X = np.asarray(X, np.float64)
    mean, scale = X.mean(0), X.std(0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    clf = LogisticRegression(max_iter=3000, C=C).fit((X - mean) / scale, np.asarray(y, bool))
    return RestModel(stem, mean, scale, clf.coef_[0].astype(np.float64), float(clf.intercept_[0]), meta=dict(meta))


def load_rests(path: str | os.PathLike, stem: str | None = None) -> RestModel:
    """Read a rest model (of ``stem``, where given); one line naming the path where it is not one, is another
    stem's, or was made for other features."""
    p = Path(path)
    try:
        d = json.loads(p.read_text())
        m = RestModel(str(d["stem"]), np.asarray(d["mean"], np.float64), np.asarray(d["scale"], np.float64),
                      np.asarray(d["coef"], np.float64), float(d["intercept"]), float(d["threshold"]),
                      float(d.get("crash_entry", 0.0)), d.get("meta", {}))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise StemfillError(f"{p}: not a stemfill rest model ({e.__class__.__name__})") from None
    if d.get("format") != FORMAT:
        raise StemfillError(f"{p}: not a stemfill rest model (format {d.get('format')!r})")
    if stem is not None and m.stem != stem:
        raise StemfillError(f"{p}: a rest model of the {m.stem}, not of the {stem}")
    if d.get("features") != list(FEATURES) or len(m.coef) != len(FEATURES):
        raise StemfillError(f"{p}: the rest model was trained on other features than this version computes")
    return m


def rests_path(folder: str | os.PathLike, stem: str = "drums") -> Path:
    return Path(folder) / STEM_FILE[stem]


def get_rests(folder: str | os.PathLike | None, stem: str = "drums") -> RestModel | None:
    """The ``stem`` rest model in the model folder ``folder`` (None where there is no folder or none), read once."""
    from stemfill.files import read_once

    if folder is None or not (p := rests_path(folder, stem)).exists():
        return None
    return read_once(p, load_rests, stem)
