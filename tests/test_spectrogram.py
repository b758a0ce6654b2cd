"""Riffusion spectrogram codec: shapes, orientation, round trip, loading and segmenting."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from stemfill.audio import spectrogram as sp
from stemfill.errors import AudioError

SR = sp.SAMPLE_RATE


def tone(freq: float, seconds: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_shape_constants():
    assert (sp.HOP_LENGTH, sp.WIN_LENGTH, sp.N_FFT) == (441, 4410, 17640)
    assert sp.SEGMENT_SAMPLES == 225_351
    assert sp.n_columns(225_351) == 512  # 5,110 ms
    assert sp.n_columns(225_792) == 513  # 5,120 ms is one column too many
    assert abs(sp.SEGMENT_SECONDS - 5.11) < 1e-9
    rng = np.random.default_rng(0)
    img = sp.audio_to_image(0.1 * rng.standard_normal(sp.SEGMENT_SAMPLES).astype(np.float32))
    assert img.shape == (512, 512) and img.dtype == np.uint8


def test_orientation_low_bottom_loud_dark():
    low = sp.audio_to_image(tone(110.0, 0.5))
    high = sp.audio_to_image(tone(6000.0, 0.5))
    low_row = int(np.argmin(low.mean(axis=1)))
    high_row = int(np.argmin(high.mean(axis=1)))
    assert low_row > 480, low_row  # low frequencies at the bottom
    assert high_row < low_row - 200, (high_row, low_row)
    assert low.min() == 0  # the loudest bin is black
    assert np.median(low) > 200  # silence is (near) white
    assert (sp.audio_to_image(np.zeros(SR, np.float32)) == 255).all()  # silent input: all white, no NaN


def test_image_curve_inverts_up_to_quantisation():
    mel = sp.audio_to_mel(tone(440.0, 0.5) + tone(1500.0, 0.5, 0.1))
    back = sp.image_to_mel(sp.mel_to_image(mel), max_value=float(mel.max()))
    x, y = np.power(mel / mel.max(), 0.25), np.power(back / mel.max(), 0.25)
    assert np.abs(x - y).max() <= 0.5 / 255 + 1e-6
    # colour input (a VAE's RGB output) reads the same as grey
    img = sp.mel_to_image(mel)
    assert np.allclose(sp.image_to_mel(np.repeat(img[..., None], 3, axis=-1)), sp.image_to_mel(img))
    assert np.allclose(sp.image_to_mel(sp.to_pil(img)), sp.image_to_mel(img))


# Measured with 32 Griffin-Lim iterations, seed 0, on a full 5.11 s segment: sines 0.090,
# chirp 0.073 (librosa), 0.093 / 0.092 (torch); on the 1.5 s signals here 0.089 / 0.077;
# 30 NNLS refinement steps change it by < 0.006; white noise, the worst case, gives 0.34. The residual is Griffin-Lim's phase
# inconsistency; the mel inversion reproduces the mel image to ~1.5%. 0.2 leaves
# room for BLAS / FFT differences and fails on any real break (a flipped image, a wrong
# hop or scale gives > 0.5).
SC_THRESHOLD = 0.2


@pytest.mark.parametrize("kind, device", [("sines", None), ("chirp", "cpu")])  # librosa / torch Griffin-Lim
def test_round_trip_spectral_convergence(kind, device):
    n = int(1.5 * SR)
    t = np.arange(n) / SR
    if kind == "sines":
        y = sum(tone(f, 1.5, a) for f, a in [(220, 0.3), (660, 0.2), (1200, 0.1), (3000, 0.05)])
    else:
        y = (0.3 * scipy.signal.chirp(t, 100, t[-1], 4000, method="logarithmic")).astype(np.float32)
    img = sp.audio_to_image(y)
    out = sp.image_to_audio(img, device=device)
    assert out.dtype == np.float32 and abs(len(out) - len(y)) < sp.HOP_LENGTH
    assert abs(np.abs(out).max() - sp.OUTPUT_PEAK) < 1e-5
    sc = sp.spectral_convergence(y, out)
    assert sc < SC_THRESHOLD, f"spectral convergence {sc:.3f}"


def test_load_audio_resamples_and_mixes(tmp_path):
    y = tone(440.0, 1.2)
    stereo = np.stack([y[::2], 0.5 * y[::2]], axis=1)  # 22,050 Hz stereo
    f = tmp_path / "st.wav"
    sf.write(f, stereo, 22_050)
    out, sr, ch = sp.load_audio(f)
    assert (sr, ch) == (22_050, 2) and out.dtype == np.float32
    assert abs(len(out) - 2 * len(stereo)) <= 2


@pytest.mark.parametrize(
    "case, message",
    [("missing", "no such file"), ("corrupt", "cannot read as audio"), ("zeros", "silent"), ("quiet", "silent"), ("short", "too short")],
)
def test_load_audio_errors(tmp_path, case, message):
    f = tmp_path / f"{case}.wav"
    if case == "corrupt":
        f.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    elif case == "zeros":
        sf.write(f, np.zeros(SR * 2, np.float32), SR)
    elif case == "quiet":
        sf.write(f, tone(440, 2.0, amp=1e-5), SR)
    elif case == "short":
        sf.write(f, tone(440, 0.5), SR)
    with pytest.raises(AudioError) as e:
        sp.load_audio(f)
    assert message in str(e.value) and str(f) in str(e.value) and "\n" not in str(e.value)


def test_segments_pad_and_overlap():
    one = list(sp.segments(tone(440, 1.0)))  # a 1 s clip: one zero-padded window
    assert len(one) == 1 and one[0][1].shape == (sp.SEGMENT_SAMPLES,) and one[0][1][SR:].max() == 0
    n = 12 * SR  # 12 s: windows at 0, 5.11, 10.22 (1.78 s left, padded)
    assert sp.segment_starts(n) == [0, sp.SEGMENT_SAMPLES, 2 * sp.SEGMENT_SAMPLES]
    n = 2 * sp.SEGMENT_SAMPLES + SR // 2  # a remainder under 1 s is dropped
    assert sp.segment_starts(n) == [0, sp.SEGMENT_SAMPLES]
    half = sp.segment_starts(3 * sp.SEGMENT_SAMPLES, overlap=0.5)
    assert half[1] == round(sp.SEGMENT_SAMPLES / 2) and half[-1] + sp.SEGMENT_SAMPLES >= 3 * sp.SEGMENT_SAMPLES
    gen = sp.segments(np.zeros(10 * sp.SEGMENT_SAMPLES, np.float32))
    assert not isinstance(gen, list)  # lazy
    with pytest.raises(AudioError):
        sp.segment_starts(100, overlap=1.0)
