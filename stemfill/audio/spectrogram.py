"""Audio <-> Riffusion spectrogram images.

Conventions follow Riffusion (riffusion-hobby's ``SpectrogramParams`` defaults), so that
images made here are what the Riffusion checkpoint was fine-tuned on:

- 44.1 kHz mono; STFT with a 100 ms Hann window (4,410 samples) zero-padded to a
  400 ms FFT (17,640), hop 10 ms (441), centred frames (reflect padding); power 1
  (magnitudes, not power).
- 512 mel bins from 0 to 10 kHz, HTK mel scale, no filter normalisation
  (torchaudio ``MelScale(norm=None, mel_scale="htk")``; librosa's ``filters.mel`` with
  ``htk=True, norm=None`` builds the same triangles on the same FFT grid).
- Image: magnitudes divided by their maximum, raised to the power 0.25, scaled to
  0..255 and inverted (loud = dark, silence = white), rows flipped so that low
  frequencies are at the bottom. Riffusion truncates to uint8; we round (at most one
  grey level apart).
- Back to audio: undo the image curve (times ``MAX_VALUE``; the absolute scale is lost
  in the image), invert the mel filterbank by least squares clipped at zero, then 32
  Griffin-Lim iterations; the result is peak-normalised to ``OUTPUT_PEAK``.

One model input is ``N_COLUMNS`` = 512 columns = 5.11 s = ``SEGMENT_SAMPLES`` samples.

Length policy: ``load_audio`` refuses clips shorter than ``MIN_SECONDS`` (1 s) with an
AudioError; ``segments`` zero-pads the last window of a song (so a 1-4 s clip gives one
padded 5.11 s window) and drops a trailing remainder shorter than 1 s when earlier
windows exist.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np

from stemfill.errors import AudioError

# --- shape-defining constants ---------------------------------------------------------
SAMPLE_RATE = 44_100
HOP_MS, WINDOW_MS, FFT_MS = 10, 100, 400


def _ms_to_samples(ms: int) -> int:
    n = ms * SAMPLE_RATE // 1000
    assert n * 1000 == ms * SAMPLE_RATE, f"{ms} ms is not a whole number of samples at {SAMPLE_RATE} Hz"
    return n


HOP_LENGTH = _ms_to_samples(HOP_MS)  # 441
WIN_LENGTH = _ms_to_samples(WINDOW_MS)  # 4,410
N_FFT = _ms_to_samples(FFT_MS)  # 17,640
N_MELS = 512
F_MIN, F_MAX = 0.0, 10_000.0
POWER_FOR_IMAGE = 0.25
MAX_VALUE = 30e6  # Riffusion's stand-in for the lost absolute scale ("in practice doesn't matter")
GRIFFIN_LIM_ITERS = 32
OUTPUT_PEAK = 0.9  # image_to_audio peak-normalises to this

N_COLUMNS = 512  # one model input, 512 x 512 pixels
SEGMENT_SAMPLES = (N_COLUMNS - 1) * HOP_LENGTH  # 225,351: centred frames give 1 + n // hop columns
SEGMENT_SECONDS = SEGMENT_SAMPLES / SAMPLE_RATE  # 5.11
assert 1 + SEGMENT_SAMPLES // HOP_LENGTH == N_COLUMNS
assert 1 + (SEGMENT_SAMPLES + HOP_LENGTH) // HOP_LENGTH == N_COLUMNS + 1  # 5.12 s would give 513

MIN_SECONDS = 1.0  # shorter clips are refused by load_audio
SILENCE_DBFS = -80.0  # a file whose peak is below this is "silent"


def n_columns(n_samples: int) -> int:
    """Number of spectrogram columns (frames) for a signal of ``n_samples`` (centred frames)."""
    return 1 + n_samples // HOP_LENGTH


@lru_cache(maxsize=1)
def mel_basis() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) float32 HTK mel filterbank without normalisation."""
    import librosa

    return librosa.filters.mel(
        sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=F_MIN, fmax=F_MAX, htk=True, norm=None, dtype=np.float32
    )


N_BINS_USED = int(F_MAX * N_FFT // SAMPLE_RATE) + 2  # FFT bins up to just past 10 kHz; the filters are 0 above


@lru_cache(maxsize=1)
def _mel_sparse():
    """The filterbank as a sparse matrix over the first N_BINS_USED bins (each bin is in at most two bands)."""
    import scipy.sparse

    B = mel_basis()
    assert not B[:, N_BINS_USED:].any()
    return scipy.sparse.csr_matrix(B[:, :N_BINS_USED])


@lru_cache(maxsize=1)
def _mel_pinv() -> np.ndarray:
    """Moore-Penrose inverse Bᵀ(BBᵀ)⁻¹ (B has full row rank: every band covers at least one FFT bin)."""
    B = mel_basis()[:, :N_BINS_USED].astype(np.float64)
    return np.linalg.solve(B @ B.T, B).T.astype(np.float32)


# --- audio <-> mel magnitudes ---------------------------------------------------------
def stft_magnitude(y: np.ndarray) -> np.ndarray:
    """Linear STFT magnitudes (N_FFT // 2 + 1, n_columns(len(y)))."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    return np.abs(
        librosa.stft(y, n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH, window="hann", center=True, pad_mode="reflect")
    )


def audio_to_mel(y: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Mel magnitude spectrogram (N_MELS, n_columns(len(y))), float32. ``y`` mono at 44.1 kHz."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise AudioError(f"audio_to_mel: expected mono audio (1-D), got shape {y.shape}")
    if sr != SAMPLE_RATE:
        import librosa

        y = librosa.resample(y, orig_sr=sr, target_sr=SAMPLE_RATE)
    if len(y) < 2:
        raise AudioError(f"audio_to_mel: {len(y)} samples is too short for a spectrogram")
    return np.asarray(_mel_sparse() @ stft_magnitude(y)[:N_BINS_USED], dtype=np.float32)


def mel_to_stft(mel: np.ndarray, *, refine_iters: int = 0) -> np.ndarray:
    """Linear magnitudes (N_FFT // 2 + 1, W) from mel magnitudes.

    Least squares (minimum norm) clipped at zero, as torchaudio's ``InverseMelScale`` does
    since 2.1 (it dropped the SGD solver Riffusion used, riffusion-hobby#166); then
    optionally ``refine_iters`` multiplicative non-negative least-squares updates.
    (librosa's ``mel_to_stft`` NNLS would need ~155 GiB for an 8,821-bin FFT.)
    Frequencies above F_MAX (10 kHz) come back as zero: the image holds nothing there.
    """
    mel = np.asarray(mel, dtype=np.float32)
    X = np.maximum(_mel_pinv() @ mel, 0.0)
    if refine_iters > 0:
        B = _mel_sparse()
        BtM = np.asarray(B.T @ mel)
        X = X + 1e-6 * float(X.max() or 1.0)
        for _ in range(refine_iters):
            X *= BtM / (np.asarray(B.T @ (B @ X)) + 1e-12)
    out = np.zeros((N_FFT // 2 + 1, mel.shape[1]), dtype=np.float32)
    out[:N_BINS_USED] = X
    return out


def mel_to_audio(mel: np.ndarray, *, n_iter: int = GRIFFIN_LIM_ITERS, refine_iters: int = 0, seed: int = 0,
                 length: int | None = None, device: str | None = None) -> np.ndarray:
    """Waveform (float32, 44.1 kHz) from mel magnitudes: mel inversion + Griffin-Lim (not normalised).

    ``device=None`` runs librosa's Griffin-Lim on the CPU; a torch device ("cpu", "cuda")
    runs ``griffin_lim_torch`` there (much faster on a GPU).
    """
    S = mel_to_stft(mel, refine_iters=refine_iters)
    if length is None:
        length = (S.shape[1] - 1) * HOP_LENGTH
    if device is not None:
        return griffin_lim_torch(S, n_iter=n_iter, seed=seed, length=length, device=device)
    import librosa

    y = librosa.griffinlim(
        S, n_iter=n_iter, hop_length=HOP_LENGTH, win_length=WIN_LENGTH, n_fft=N_FFT, window="hann", center=True,
        pad_mode="reflect", length=length, init="random", random_state=seed,
    )
    return y.astype(np.float32)


def griffin_lim_torch(S: np.ndarray, *, n_iter: int = GRIFFIN_LIM_ITERS, momentum: float = 0.99, seed: int = 0,
                      length: int | None = None, device: str = "cpu") -> np.ndarray:
    """Fast Griffin-Lim (Perraudin et al.) in torch, as torchaudio's GriffinLim does (momentum 0.99, random phase)."""
    import torch

    dev = torch.device(device)
    mag = torch.as_tensor(S, dtype=torch.float32, device=dev)
    win = torch.hann_window(WIN_LENGTH, device=dev)
    g = torch.Generator(device="cpu").manual_seed(seed)
    angles = torch.exp(2j * np.pi * torch.rand(mag.shape, generator=g)).to(dev)
    length = length if length is not None else (S.shape[1] - 1) * HOP_LENGTH
    kw = dict(n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH, window=win, center=True)
    prev = torch.zeros_like(angles)
    for _ in range(n_iter):
        y = torch.istft(mag * angles, length=length, **kw)
        rebuilt = torch.stft(y, pad_mode="reflect", return_complex=True, **kw)
        angles = rebuilt - (momentum / (1 + momentum)) * prev
        angles = angles / angles.abs().clamp_min(1e-16)
        prev = rebuilt
    y = torch.istft(mag * angles, length=length, **kw)
    return y.detach().cpu().numpy().astype(np.float32)


# --- mel magnitudes <-> image ---------------------------------------------------------
def mel_to_image(mel: np.ndarray, max_value: float | None = None) -> np.ndarray:
    """uint8 image (N_MELS, W): row 0 = highest band (top), loud = dark. ``max_value`` defaults to mel.max().

    A silent input (max 0) gives an all-white image.
    """
    mel = np.asarray(mel, dtype=np.float32)
    m = float(mel.max()) if max_value is None else float(max_value)
    data = np.clip(mel / m, 0.0, 1.0) if m > 0 else np.zeros_like(mel)
    data = np.power(data, POWER_FOR_IMAGE) * 255.0
    img = np.rint(255.0 - data).astype(np.uint8)
    return np.ascontiguousarray(img[::-1])


def image_to_mel(img, max_value: float = MAX_VALUE) -> np.ndarray:
    """Mel magnitudes (N_MELS, W) from an image (uint8 array (H, W) / (H, W, C), or a PIL image).

    Colour images are averaged over channels (Riffusion reads the red channel only; an
    average is kinder to a VAE's slightly different channels and equal for grey images).
    """
    a = _as_gray(img)
    if a.shape[0] != N_MELS:
        raise AudioError(f"spectrogram image has {a.shape[0]} rows; expected {N_MELS}")
    data = (255.0 - a[::-1]) / 255.0
    return (np.power(data, 1.0 / POWER_FOR_IMAGE) * max_value).astype(np.float32)


def _as_gray(img) -> np.ndarray:
    if hasattr(img, "mode") and hasattr(img, "convert"):  # PIL
        img = np.asarray(img.convert("RGB") if img.mode not in ("L", "RGB") else img)
    a = np.asarray(img)
    if a.ndim == 3:
        a = a[..., :3].astype(np.float32).mean(axis=-1)
    if a.ndim != 2:
        raise AudioError(f"spectrogram image must be 2-D (H, W) or (H, W, C); got shape {a.shape}")
    return a.astype(np.float32)


def audio_to_image(y: np.ndarray, sr: int = SAMPLE_RATE, max_value: float | None = None) -> np.ndarray:
    """uint8 spectrogram image (512, 1 + len(y) // 441) of mono audio; 512 x 512 for SEGMENT_SAMPLES."""
    return mel_to_image(audio_to_mel(y, sr), max_value)


def image_to_audio(img, *, n_iter: int = GRIFFIN_LIM_ITERS, refine_iters: int = 0, seed: int = 0, device: str | None = None) -> np.ndarray:
    """Mono float32 audio at 44.1 kHz from a spectrogram image, peak-normalised to OUTPUT_PEAK.

    A 512-column image gives SEGMENT_SAMPLES (5.11 s) of audio.
    """
    y = mel_to_audio(image_to_mel(img), n_iter=n_iter, refine_iters=refine_iters, seed=seed, device=device)
    peak = float(np.abs(y).max()) if y.size else 0.0
    return (y * (OUTPUT_PEAK / peak)).astype(np.float32) if peak > 0 else y


def to_pil(img: np.ndarray):
    """RGB PIL image (what Stable Diffusion / Riffusion expect) from a grey uint8 image."""
    from PIL import Image

    return Image.fromarray(np.asarray(img, dtype=np.uint8), mode="L").convert("RGB")


def save_image(img: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a spectrogram image as PNG, atomically."""
    from stemfill.files import atomic_path

    p = Path(path)
    with atomic_path(p) as tmp:
        to_pil(img).save(tmp, format="PNG")
    return p


def spectral_convergence(y_ref: np.ndarray, y_est: np.ndarray) -> float:
    """||S - Ŝ||_F / ||S||_F of linear STFT magnitudes below F_MAX, after least-squares gain matching.

    Gain matching makes the number independent of output normalisation; only bins up to
    10 kHz count because the mel image holds nothing above.
    """
    n = min(len(y_ref), len(y_est))
    S, E = stft_magnitude(y_ref[:n]), stft_magnitude(y_est[:n])
    k = int(np.floor(F_MAX * N_FFT / SAMPLE_RATE)) + 1
    S, E = S[:k], E[:k]
    g = float((S * E).sum() / max((E * E).sum(), 1e-20))
    return float(np.linalg.norm(S - g * E) / max(np.linalg.norm(S), 1e-20))


# --- files and segments ---------------------------------------------------------------
def load_audio(path: str | os.PathLike, *, min_seconds: float = MIN_SECONDS, allow_silent: bool = False) -> tuple[np.ndarray, int, int]:
    """Read an audio file as mono float32 at 44.1 kHz.

    Returns ``(y, original_sr, n_channels)``. Channels are averaged; other rates are
    resampled (soxr via librosa). Raises AudioError, one line naming the file, when the
    file is missing, unreadable (corrupt or unsupported), silent (peak below -80 dBFS)
    or shorter than ``min_seconds``. ``allow_silent`` accepts silence (a stem that never plays).
    """
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, not an audio file")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError by version
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AudioError(f"{p}: cannot read as audio (corrupt or unsupported format): {reason}") from e
    n_channels = int(data.shape[1])
    if data.shape[0] == 0:
        raise AudioError(f"{p}: no audio samples (empty file)")
    seconds = data.shape[0] / sr
    if seconds < min_seconds:
        raise AudioError(f"{p}: too short ({seconds:.2f} s); need at least {min_seconds:g} s")
    y = data.mean(axis=1)
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{p}: contains NaN or infinite samples")
    peak = float(np.abs(y).max())
    if peak <= 10 ** (SILENCE_DBFS / 20) and not allow_silent:
        level = "all zeros" if peak == 0 else f"peak {20 * np.log10(peak):.0f} dBFS"
        raise AudioError(f"{p}: silent ({level}, below {SILENCE_DBFS:g} dBFS)")
    if sr != SAMPLE_RATE:
        import librosa

        y = librosa.resample(y, orig_sr=sr, target_sr=SAMPLE_RATE, res_type="soxr_hq")
    return np.ascontiguousarray(y, dtype=np.float32), int(sr), n_channels


def segment_starts(n_samples: int, overlap: float = 0.0, *, min_tail: int = int(MIN_SECONDS * SAMPLE_RATE)) -> list[int]:
    """Start samples of the 5.11 s windows over a song of ``n_samples`` (see ``segments``)."""
    if not 0.0 <= overlap < 1.0:
        raise AudioError(f"overlap {overlap} must be in [0, 1)")
    step = max(1, int(round(SEGMENT_SAMPLES * (1.0 - overlap))))
    starts = [0]
    s = step
    while s < n_samples:
        if n_samples - s < min_tail and s + SEGMENT_SAMPLES > n_samples:
            break  # the remainder is under a second of new audio
        if starts[-1] + SEGMENT_SAMPLES >= n_samples:
            break  # the previous window already reaches the end
        starts.append(s)
        s += step
    return starts


def segments(y: np.ndarray, overlap: float = 0.0) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start_sample, window)`` of SEGMENT_SAMPLES each, lazily; the last window is zero-padded.

    ``overlap`` is the shared fraction of consecutive windows (0 = back to back). A
    trailing remainder shorter than MIN_SECONDS is dropped unless it is the whole song.
    """
    y = np.asarray(y, dtype=np.float32)
    for s in segment_starts(len(y), overlap):
        w = y[s : s + SEGMENT_SAMPLES]
        if len(w) < SEGMENT_SAMPLES:
            w = np.pad(w, (0, SEGMENT_SAMPLES - len(w)))
        yield s, w
