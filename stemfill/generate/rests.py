"""Where the drums rest: bars of a song where the other parts play and a drummer would not (intros, breaks).

The network hears the song and tells which hits fit a bar, but it does not tell a bar the drummer sits out:
its expected hits are as high in the bars real drummers rest as in those they play (docs/generation.md).
The song's other parts do tell: drummers rest where few instruments play, sparsely, near the song's start,
and where the bass rests too. A logistic regression on those per-bar features (``bar_features``), trained on
the real drum parts of the TRAIN split (``bench/train_rests.py``), gives each bar the chance that a drummer
rests there; the phrase plan (``plan.make_plan``) rests the bars above ``threshold`` (chosen on the valid
split so that the filled drums rest about as often as real ones) and the bars before the other parts first
play, and puts a crash on the downbeat where the drums come in after a rest of two bars or more, as often as
drummers do (``crash_entry``).

A rest model is one JSON file, ``drum-rests.json`` in the folder of the model (a model without one rests
nowhere): format, feature names, the features' standardization, coefficients, intercept, threshold,
crash_entry and the training data.
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
            "first_8", "last_4", "bass_onsets", "bass_silent", "log_onsets")
NEAR = 2  # bars either side for the *_near features
PHRASE = 4  # bars of a phrase, from the song's first bar


def _onsets(x: np.ndarray) -> np.ndarray:
    """(P, T) bool -> (T,) note starts a step (a cell turning on)."""
    prev = np.zeros_like(x)
    prev[:, 1:] = x[:, :-1]
    return (x & ~prev).sum(0)


def bar_features(parts: list[np.ndarray], bars: list) -> tuple[np.ndarray, np.ndarray]:
    """(n_bars, len(FEATURES)) features of each bar (``plan.Bar``) from the song's parts besides the drums
    (``parts[0]`` the bass, then the guitar and the other tracks' sounding plane, each (P, T) bool), and (n_bars,) bool
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
    bass = dens[0] if V else np.zeros(n)
    bass_med = max(float(np.median(bass[bass > 0])), 1.0) if (bass > 0).any() else 1.0
    pos = idx - first
    F = np.stack([f_on, f_v, near(f_on), near(f_v), ph_on, ph_v, pos < 4, pos < 8, n - 1 - idx < 4,
                  np.minimum(bass / bass_med, 3.0), bass == 0, np.log1p(total)], axis=1).astype(np.float64)
    return F, plays


@dataclass
class RestModel:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float = 0.5  # rest a bar whose chance of a rest is above this
    crash_entry: float = 0.0  # chance of a crash where the drums come in after 2+ bars of rest
    meta: dict = field(default_factory=dict)

    def chance(self, features: np.ndarray) -> np.ndarray:
        """(n,) the chance that a drummer rests in each bar of ``features`` (n, len(FEATURES))."""
        z = (np.asarray(features, np.float64) - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-(z @ self.coef + self.intercept)))

    def rests(self, parts: list[np.ndarray], bars: list) -> np.ndarray:
        """(n_bars,) bool: the bars where the drums rest: where the song plays and the model says a drummer
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

        d = {"format": FORMAT, "features": list(FEATURES), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
             "coef": self.coef.tolist(), "intercept": self.intercept, "threshold": self.threshold,
             "crash_entry": self.crash_entry, "meta": self.meta}
        atomic_write_bytes(Path(path), (json.dumps(d, indent=1) + "\n").encode())
        return Path(path)


def train_rests(X: np.ndarray, y: np.ndarray, meta: dict, C: float = 1.0) -> RestModel:
    """A rest model from bar features (n, len(FEATURES)) and whether the real drums rest there (n,)."""
    from sklearn.linear_model import LogisticRegression

    X = np.asarray(X, np.float64)
    mean, scale = X.mean(0), X.std(0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    clf = LogisticRegression(max_iter=3000, C=C).fit((X - mean) / scale, np.asarray(y, bool))
    return RestModel(mean, scale, clf.coef_[0].astype(np.float64), float(clf.intercept_[0]), meta=dict(meta))


def load_rests(path: str | os.PathLike) -> RestModel:
    """Read a rest model; one line naming the path where it is not one or was made for other features."""
    p = Path(path)
    try:
        d = json.loads(p.read_text())
        m = RestModel(np.asarray(d["mean"], np.float64), np.asarray(d["scale"], np.float64),
                      np.asarray(d["coef"], np.float64), float(d["intercept"]), float(d["threshold"]),
                      float(d.get("crash_entry", 0.0)), d.get("meta", {}))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise StemfillError(f"{p}: not a stemfill rest model ({e.__class__.__name__})") from None
    if d.get("format") != FORMAT:
        raise StemfillError(f"{p}: not a stemfill rest model (format {d.get('format')!r})")
    if d.get("features") != list(FEATURES) or len(m.coef) != len(FEATURES):
        raise StemfillError(f"{p}: the rest model was trained on other features than this version computes")
    return m


def rests_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / "drum-rests.json"


_CACHE: dict = {}


def get_rests(folder: str | os.PathLike | None) -> RestModel | None:
    """The rest model in the model folder ``folder`` (None where there is no folder or none there), read once."""
    if folder is None:
        return None
    p = rests_path(folder)
    if not p.exists():
        return None
    key = (str(p.resolve()), p.stat().st_mtime_ns)
    if key not in _CACHE:
        _CACHE[key] = load_rests(p)
    return _CACHE[key]
