"""The paper's audio metrics: FD, FAD, KLD and IS, as audioldm_eval defines them.

- FD: Fréchet distance between Gaussians fitted to embeddings of the real and generated sets
  (PANNs Cnn14's 2048-d embedding in the paper).
- FAD: the same on VGGish's 128-d embeddings.
- KLD: for each generated clip paired (by file name) with its real clip, KL(real || generated) over
  the classifier's label distribution (softmax over PANNs' 527 logits), summed over classes; the mean
  over pairs is reported (audioldm_eval's "KL softmax", which the paper's "per pair, averaged" matches).
- IS: exp(E_x KL(p(y|x) || p(y))) over the generated set's label distributions, in 10 splits, mean.

Feature extractors plug in through ``FeatureExtractor`` (``embed`` and, for classifiers, ``probs``).
Real ones (PANNs via ``panns_inference``, VGGish via ``torchvggish``) need their package and weights
on disk; ``MelStatsExtractor`` needs nothing and serves tests and smoke runs (its numbers are not
comparable to the paper's).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from stemfill.errors import AudioError

KL_EPS = 1e-6  # audioldm_eval's guard inside the log
IS_SPLITS = 10
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")


@runtime_checkable
class FeatureExtractor(Protocol):
    name: str
    sample_rate: int

    def embed(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) embeddings of mono float waveforms at ``sample_rate``."""

    def probs(self, waveforms: Sequence[np.ndarray]) -> np.ndarray | None:
        """(N, C) label distributions (rows sum to 1), or None for an embedding-only model."""


# --- the metrics -----------------------------------------------------------------------------


def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2) of two (N, D) feature sets."""
    import scipy.linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise AudioError(f"frechet_distance: feature sets of shapes {a.shape} and {b.shape} do not match")
    if len(a) < 2 or len(b) < 2:
        raise AudioError("frechet_distance: needs at least 2 clips on each side")
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():  # nearly singular product
        off = np.eye(len(s1)) * eps
        covmean = scipy.linalg.sqrtm((s1 + off) @ (s2 + off))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean), 0.0))


def kl_divergence(p_real: np.ndarray, p_gen: np.ndarray) -> float:
    """Mean over pairs of KL(p_real_i || p_gen_i) = sum_c p log(p / (q + eps)); rows are paired."""
    p, q = np.asarray(p_real, np.float64), np.asarray(p_gen, np.float64)
    if p.shape != q.shape or p.ndim != 2:
        raise AudioError(f"kl_divergence: label distributions of shapes {p.shape} and {q.shape} do not pair up")
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q + KL_EPS)), 0.0)
    return float(terms.sum(axis=1).mean())


def inception_score(probs: np.ndarray, splits: int = IS_SPLITS) -> tuple[float, float]:
    """(mean, std) over `splits` consecutive chunks of exp(mean_x KL(p(y|x) || mean p(y)))."""
    p = np.asarray(probs, np.float64)
    n = len(p)
    if n < splits:
        raise AudioError(f"inception_score: {n} clips cannot be cut into {splits} splits")
    scores = []
    for i in range(splits):
        chunk = p[i * n // splits:(i + 1) * n // splits]
        marginal = chunk.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(chunk > 0, chunk * (np.log(chunk) - np.log(marginal)), 0.0).sum(axis=1)
        scores.append(float(np.exp(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))


# --- extractors ------------------------------------------------------------------------------


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=1, keepdims=True)


class MelStatsExtractor:
    """A fixed, download-free extractor: log-mel band means/stds as embedding, softmax of band means as "labels".

    For tests and smoke runs only: deterministic and cheap, not a trained classifier.
    """

    name = "mel"
    sample_rate = 16_000

    def __init__(self, n_mels: int = 32):
        self.n_mels = n_mels

    def _logmel(self, w: np.ndarray) -> np.ndarray:
        import librosa

        m = librosa.feature.melspectrogram(y=np.asarray(w, np.float32), sr=self.sample_rate, n_fft=1024, hop_length=512,
                                           n_mels=self.n_mels)
        return np.log(m + 1e-6)

    def embed(self, waveforms):
        feats = [self._logmel(w) for w in waveforms]
        return np.stack([np.concatenate([f.mean(1), f.std(1)]) for f in feats])

    def probs(self, waveforms):
        return _softmax(np.stack([self._logmel(w).mean(1) for w in waveforms]))


class PannsExtractor:
    """PANNs Cnn14 (panns_inference): 2048-d embedding; label distribution = softmax of its 527 logits."""

    name = "panns"
    sample_rate = 32_000

    def __init__(self, checkpoint: str | os.PathLike | None = None, device: str | None = None):
        try:
            from panns_inference import AudioTagging
        except ImportError as e:
            raise AudioError("the PANNs extractor needs the panns_inference package (pip install panns-inference)") from e
        ckpt = Path(checkpoint) if checkpoint else Path.home() / "panns_data" / "Cnn14_mAP=0.431.pth"
        if not ckpt.is_file():
            raise AudioError(f"PANNs checkpoint {ckpt}: no such file (download Cnn14_mAP=0.431.pth and pass its path)")
        import torch

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.model = AudioTagging(checkpoint_path=str(ckpt), device=device)
        except Exception as e:
            raise AudioError(f"PANNs checkpoint {ckpt}: cannot load: {' '.join(str(e).split())[:200]}") from e
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _run(self, waveforms):
        key = id(waveforms)
        if key not in self._cache:
            clip, emb = [], []
            for w in waveforms:  # one at a time: clips may differ in length
                c, e = self.model.inference(np.asarray(w, np.float32)[None, :])
                clip.append(c[0])
                emb.append(e[0])
            self._cache = {key: (np.stack(clip), np.stack(emb))}
        return self._cache[key]

    def embed(self, waveforms):
        return self._run(waveforms)[1]

    def probs(self, waveforms):
        clip = np.clip(self._run(waveforms)[0].astype(np.float64), 1e-7, 1 - 1e-7)
        return _softmax(np.log(clip / (1 - clip)))  # Cnn14 outputs sigmoids; audioldm_eval softmaxes the logits


class VggishExtractor:
    """VGGish (torchvggish): 128-d embedding, averaged over the clip's 0.96 s frames. Embedding only."""

    name = "vggish"
    sample_rate = 16_000

    def __init__(self, device: str | None = None):
        try:
            import torchvggish
        except ImportError as e:
            raise AudioError("the VGGish extractor needs the torchvggish package (pip install torchvggish)") from e
        try:
            self.model = torchvggish.vggish()
            self.model.eval()
        except Exception as e:
            raise AudioError(f"VGGish weights: cannot load (they come from torch hub's cache when offline): "
                             f"{' '.join(str(e).split())[:200]}") from e
        self._input = torchvggish.vggish_input

    def embed(self, waveforms):
        import torch

        out = []
        with torch.no_grad():
            for w in waveforms:
                ex = self._input.waveform_to_examples(np.asarray(w, np.float64), self.sample_rate)
                out.append(np.asarray(self.model(ex).detach().cpu().numpy(), np.float64).reshape(-1, 128).mean(0))
        return np.stack(out)

    def probs(self, waveforms):
        return None


def make_extractor(spec: str) -> FeatureExtractor:
    """'panns' (default checkpoint), 'vggish', 'mel' (test-only), or a path to a PANNs Cnn14 checkpoint."""
    if spec == "panns":
        return PannsExtractor()
    if spec == "vggish":
        return VggishExtractor()
    if spec == "mel":
        return MelStatsExtractor()
    if Path(spec).exists():
        return PannsExtractor(spec)
    raise AudioError(f"extractor {spec!r}: expected panns, vggish, mel or a PANNs checkpoint file")


# --- folders ---------------------------------------------------------------------------------


def list_audio(folder: str | os.PathLike) -> list[Path]:
    d = Path(folder)
    if not d.is_dir():
        raise AudioError(f"{d}: not a folder")
    files = sorted(p for p in d.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    if not files:
        raise AudioError(f"{d}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    return files


def read_mono(path: Path, sr: int) -> np.ndarray:
    import librosa
    import soundfile as sf

    try:
        y, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"{path}: cannot read as audio: {' '.join(str(e).split())[:200]}") from e
    if len(y) == 0:
        raise AudioError(f"{path}: no audio samples (empty file)")
    y = y.mean(axis=1)
    return librosa.resample(y, orig_sr=file_sr, target_sr=sr) if file_sr != sr else y


def evaluate(real_dir: str | os.PathLike, generated_dir: str | os.PathLike, extractor: FeatureExtractor,
             splits: int = IS_SPLITS) -> dict:
    """The metrics `extractor` supports, on two folders; KLD pairs files by their path inside each folder.

    With an embedding extractor: FD (or FAD when it is VGGish). With a classifier: also KLD and IS
    (IS only when there are at least `splits` generated clips). Keys present = metrics computed.
    """
    real_files, gen_files = list_audio(real_dir), list_audio(generated_dir)
    real = [read_mono(p, extractor.sample_rate) for p in real_files]
    gen = [read_mono(p, extractor.sample_rate) for p in gen_files]
    out: dict = {"extractor": extractor.name, "n_real": len(real), "n_generated": len(gen)}
    key = "FAD" if extractor.name == "vggish" else "FD"
    out[key] = frechet_distance(extractor.embed(real), extractor.embed(gen))
    p_real, p_gen = extractor.probs(real), extractor.probs(gen)
    if p_real is not None and p_gen is not None:
        rel_real = {p.relative_to(real_dir).as_posix(): i for i, p in enumerate(real_files)}
        pairs = [(rel_real[p.relative_to(generated_dir).as_posix()], j) for j, p in enumerate(gen_files)
                 if p.relative_to(generated_dir).as_posix() in rel_real]
        if pairs:
            out["KLD"] = kl_divergence(p_real[[i for i, _ in pairs]], p_gen[[j for _, j in pairs]])
            out["n_pairs"] = len(pairs)
        if len(gen) >= splits:
            out["IS"], out["IS_std"] = inception_score(p_gen, splits)
    return out
