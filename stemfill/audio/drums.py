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


CHUNK_S, CHUNK_MARGIN_S = 60.0, 2.0  # long audio: the spectrogram and HPSS 60 s at a time, 2 s of context either side


def drum_hits(y: np.ndarray, sample_rate: int, *, threshold: float = THRESHOLD, chunk_s: float = CHUNK_S,
              progress=None) -> list[tuple[float, int]]:
    """``(seconds, GM drum key)`` of the hits heard in mono float audio ``y``, sorted by time.

    The spectrogram and its HPSS are made ``chunk_s`` at a time (with ``CHUNK_MARGIN_S`` of context either side,
    more than the median filters' reach), so memory does not grow with the whole song's spectrogram; only the
    percussive part of the three bands is kept for the whole song. ``progress(done, total)`` after each chunk."""
    import librosa

    x = np.asarray(y, np.float32)
    if sample_rate != SR:
        x = librosa.resample(x, orig_sr=sample_rate, target_sr=SR, res_type="soxr_hq")
    freqs = librosa.fft_frequencies(sr=SR, n_fft=N_FFT)
    bands = [(key, np.flatnonzero((freqs >= lo) & (freqs < hi))) for key, lo, hi in BANDS]
    bands = [(key, rows) for key, rows in bands if len(rows)]
    n_frames = 1 + len(x) // HOP  # librosa.stft's frame count (centred)
    chunk, margin = max(1, int(chunk_s * SR / HOP)), int(CHUNK_MARGIN_S * SR / HOP)
    starts = list(range(0, n_frames, chunk))
    perc = {key: [] for key, _ in bands}
    for k, a in enumerate(starts):
        b = min(a + chunk, n_frames)
        lo, hi = max(0, a - margin), min(n_frames, b + margin)
        # frame f of the centred STFT is centred on sample f * HOP: the chunk's audio, padded like librosa's centring
        seg = x[max(0, lo * HOP - N_FFT // 2):min(len(x), (hi - 1) * HOP + N_FFT // 2)]
        pad_l = N_FFT // 2 - min(N_FFT // 2, lo * HOP)
        pad_r = (hi - 1) * HOP + N_FFT // 2 - min(len(x), (hi - 1) * HOP + N_FFT // 2)
        seg = np.pad(seg, (pad_l, pad_r), mode="constant")
        S = np.abs(librosa.stft(seg, n_fft=N_FFT, hop_length=HOP, center=False))[:, :hi - lo]
        for key, rows in bands:
            # HPSS of the band and HPSS_KERNEL // 2 bins either side: inside the band the same as of the whole
            # spectrogram (the percussive median runs across that many bins), at a third of the cost
            r0, r1 = max(0, rows[0] - HPSS_KERNEL // 2), min(len(freqs), rows[-1] + 1 + HPSS_KERNEL // 2)
            _, P = librosa.decompose.hpss(S[r0:r1], kernel_size=HPSS_KERNEL, margin=(1.0, 2.0))
            perc[key].append(P[rows[0] - r0:rows[-1] + 1 - r0, a - lo:a - lo + (b - a)])
        del S
        if progress is not None:
            progress(k + 1, len(starts))
    hits: list[tuple[float, int]] = []
    wait = max(1, round(MIN_GAP_S * SR / HOP))
    for key, _ in bands:
        band = np.concatenate(perc.pop(key), axis=1)
        logb = np.log1p(100.0 * band / max(float(band.max()), 1e-12))
        del band
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
