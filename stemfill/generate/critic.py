"""A realism critic for the drum decoder: a logistic regression on 4-bar features (``evaluation.realism.
segment_features``) that tells the pattern decoder's drums from real drummers' parts, trained on the TRAIN
split only (``bench/train_critic.py``). The decoder draws a few phrases by fit, then plays the one the critic
finds most like a real part (``PatternConfig.w_critic``). The held-out realism test of ``stemfill eval
--realism`` is never used to train or tune it (it uses the same kind of features, so its scores measure the
critic's aim, too: docs/generation.md reports the boosting classifier and the tell-tales beside it).

A critic is one ``.npz`` file, ``drum-critic.npz`` in the folder of the model whose decoder it learned (a model
without one decodes without a critic): ``meta`` (JSON: format, stem, features, training data), ``mean`` and
``scale`` (the features' standardization), ``coef`` and ``intercept`` (positive: the decoder's, not a real part).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stemfill.errors import StemfillError

FORMAT = "stemfill-critic/1"


@dataclass
class Critic:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    meta: dict = field(default_factory=dict)

    def logit_fake(self, features: np.ndarray) -> np.ndarray:
        """(n,) log-odds that each row of ``features`` (n, D) is the decoder's, not a real part."""
        z = (np.asarray(features, np.float64) - self.mean) / self.scale
        return z @ self.coef + self.intercept

    def save(self, path: str | os.PathLike) -> Path:
        from stemfill.files import atomic_write_bytes

        buf = io.BytesIO()
        np.savez_compressed(buf, meta=np.array(json.dumps(self.meta)), mean=self.mean, scale=self.scale,
                            coef=self.coef, intercept=np.array(self.intercept))
        atomic_write_bytes(Path(path), buf.getvalue())
        return Path(path)


def load_critic(path: str | os.PathLike, stem: str | None = None) -> Critic:
    """Read a critic (of ``stem``, where given); one line naming the path where it is not one, is another stem's,
    or was made for other features."""
    from stemfill.evaluation.realism import feature_names

    p = Path(path)
    try:
        z = np.load(p, allow_pickle=False)
        meta = json.loads(str(z["meta"]))
        c = Critic(z["mean"], z["scale"], z["coef"], float(z["intercept"]), meta)
    except (OSError, ValueError, KeyError) as e:
        raise StemfillError(f"{p}: not a stemfill critic ({e.__class__.__name__})") from None
    if meta.get("format") != FORMAT:
        raise StemfillError(f"{p}: not a stemfill critic (format {meta.get('format')!r})")
    if stem is not None and meta.get("stem") != stem:
        raise StemfillError(f"{p}: a critic of the {meta.get('stem')}, not of the {stem}")
    if meta.get("features") != feature_names(meta.get("stem", "")) or len(c.coef) != len(meta["features"]):
        raise StemfillError(f"{p}: the critic was trained on other features than this version computes")
    return c


def critic_path(folder: str | os.PathLike, stem: str) -> Path:
    """Where a model folder keeps its ``stem`` critic (``drum-critic.npz`` for the drums)."""
    return Path(folder) / f"{'drum' if stem == 'drums' else stem}-critic.npz"


def model_folder(model) -> Path | None:
    """The folder a model was loaded from (``load_model``, ``load_onnx_model``), None for one built in code."""
    f = getattr(model, "folder", None)
    return Path(f) if f is not None else None


def get_critic(folder: str | os.PathLike | None, stem: str) -> Critic | None:
    """The ``stem`` critic in the model folder ``folder`` (None where there is no folder or no critic), read once."""
    from stemfill.files import read_once

    if folder is None or not (p := critic_path(folder, stem)).exists():
        return None
    return read_once(p, load_critic, stem)


def train_critic(real: np.ndarray, fake: np.ndarray, meta: dict, C: float = 0.3) -> Critic:
    """A critic from features of real parts and of the decoder's parts (each (n, D)): standardized, logistic."""
    from sklearn.linear_model import LogisticRegression

    X = np.concatenate([real, fake]).astype(np.float64)
    y = np.r_[np.zeros(len(real)), np.ones(len(fake))]
    mean, scale = X.mean(0), X.std(0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    clf = LogisticRegression(max_iter=3000, C=C).fit((X - mean) / scale, y)
    meta = dict(meta, format=FORMAT, train_accuracy=float(clf.score((X - mean) / scale, y)))
    return Critic(mean, scale, clf.coef_[0].astype(np.float64), float(clf.intercept_[0]), meta)
