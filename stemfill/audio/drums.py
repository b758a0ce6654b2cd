"""Drum hits of a recording, roughly: percussive onsets in three bands, as kick, snare and closed hi-hat.

No trained model: the spectrogram's percussive part (librosa's median-filter HPSS) is split into a low
band (kick), a middle band (snare) and a high band (hi-hat); each band's onset strength (spectral flux of
the log magnitude) is peak-picked with a threshold relative to the band's own strong peaks. A pitched
instrument's attacks also land in these bands, so on a mix without drums this finds spurious hits:
``drum_hits`` is a guess at where a drummer plays, for the model to lean on, not a transcription.
"""

from __future__ import annotations

import numpy as np

SR = 22_050
HOP = 256  # 11.6 ms frames
N_FFT = 2048
HPSS_KERNEL = 31  # librosa's default median-filter length, in frames and in bins
# (GM key, low Hz, high Hz)
BANDS = ((36, 30.0, 150.0), (38, 1_000.0, 5_000.0), (42, 7_000.0, 11_000.0))
THRESHOLD = 0.25  # a peak counts when its onset strength is at least this share of the band's 95th-percentile peak
MIN_GAP_S = 0.06  # one hit per band in this long


def drum_hits(y: np.ndarray, sample_rate: int, *, threshold: float = THRESHOLD) -> list[tuple[float, int]]:
    """``(seconds, GM drum key)`` of the hits heard in mono float audio ``y``, sorted by time."""
    import librosa

    x = np.asarray(y, np.float32)
    if sample_rate != SR:
        x = librosa.resample(x, orig_sr=sample_rate, target_sr=SR, res_type="soxr_hq")
    S = np.abs(librosa.stft(x, n_fft=N_FFT, hop_length=HOP))
    freqs = librosa.fft_frequencies(sr=SR, n_fft=N_FFT)
    hits: list[tuple[float, int]] = []
    wait = max(1, round(MIN_GAP_S * SR / HOP))
    for key, lo, hi in BANDS:
        rows = np.flatnonzero((freqs >= lo) & (freqs < hi))
        if not len(rows):
            continue
        # HPSS of the band and HPSS_KERNEL // 2 bins either side: inside the band the same as of the whole
        # spectrogram (the percussive median runs across that many bins), at a third of the cost
        a, b = max(0, rows[0] - HPSS_KERNEL // 2), min(len(freqs), rows[-1] + 1 + HPSS_KERNEL // 2)
        _, P = librosa.decompose.hpss(S[a:b], kernel_size=HPSS_KERNEL, margin=(1.0, 2.0))
        band = P[rows[0] - a:rows[-1] + 1 - a]
        logb = np.log1p(100.0 * band / max(float(band.max()), 1e-12))
        flux = np.maximum(0.0, np.diff(logb, axis=1)).mean(axis=0)
        flux = np.concatenate([[0.0], flux])
        peaks = librosa.util.peak_pick(flux, pre_max=3, post_max=3, pre_avg=10, post_avg=10, delta=0.0, wait=wait)
        if not len(peaks):
            continue
        strong = float(np.percentile(flux[peaks], 95))
        keep = peaks[flux[peaks] >= threshold * strong] if strong > 0 else peaks[:0]
        hits += [(float(t), key) for t in librosa.frames_to_time(keep, sr=SR, hop_length=HOP)]
    hits.sort()
    return hits
