"""Pitched notes of a recording with Spotify's basic-pitch model, run by onnxruntime (no TensorFlow).

basic-pitch (Apache-2.0) ships its ICASSP 2022 model as ``saved_models/icassp_2022/nmp.onnx`` (230 KB).
Its Linux requirements pull TensorFlow, which the ONNX model does not need, so the set-up installs
it with ``--no-deps`` beside onnxruntime (scripts/setup.sh). The audio is cut into basic-pitch's 2 s
windows (22,050 Hz, 30 frames of overlap) exactly as ``basic_pitch.inference.run_inference`` does, but
from an array rather than a file and several windows per ONNX call; the posteriorgrams are decoded
into notes by basic-pitch's own ``model_output_to_notes`` with its default thresholds.
It hears everything pitched as one list of notes, with no instruments: splitting is the caller's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stemfill.errors import AudioError

N_OVERLAP_FRAMES = 30  # basic-pitch's window overlap, in model frames
WINDOWS_PER_CALL = 8
ONSET_THRESHOLD = 0.5  # basic-pitch's defaults
FRAME_THRESHOLD = 0.3
MIN_NOTE_MS = 127.7


@dataclass(frozen=True)
class AudioNote:
    start: float  # seconds
    end: float
    pitch: int  # MIDI
    amplitude: float  # 0..1, the model's mean note posterior


def _import_basic_pitch():
    """basic_pitch's inference helpers, quietly: it logs a warning per missing backend (TF, TFLite, CoreML)."""
    logging.disable(logging.WARNING)
    try:
        import basic_pitch
        import basic_pitch.note_creation as note_creation
        from basic_pitch import constants
        from basic_pitch.inference import Model, unwrap_output, window_audio_file
    except ImportError as e:
        raise AudioError("transcription needs basic-pitch and onnxruntime (scripts/setup.sh installs them: "
                         f"pip install onnxruntime && pip install --no-deps basic-pitch==0.4.0): {e}") from e
    finally:
        logging.disable(logging.NOTSET)
    onnx = Path(basic_pitch.__file__).parent / "saved_models" / "icassp_2022" / "nmp.onnx"
    if not onnx.is_file():
        raise AudioError(f"{onnx}: basic-pitch's ONNX model is missing (reinstall basic-pitch 0.4)")
    return onnx, constants, note_creation, Model, unwrap_output, window_audio_file


_MODEL = None


CHUNK_S, CHUNK_MARGIN_S = 60.0, 5.0  # long audio: 60 s at a time, with 5 s either side for notes across the cut


def transcribe(y: np.ndarray, sample_rate: int, *, chunk_s: float = CHUNK_S, margin_s: float = CHUNK_MARGIN_S,
               progress=None) -> list[AudioNote]:
    """Notes of mono float audio ``y`` at ``sample_rate``, sorted by start.

    Long audio goes through in ``chunk_s`` pieces, each heard with ``margin_s`` on either side; a piece keeps the
    notes that start in it (a note longer than the margin is cut at it). The posteriorgrams of a whole song would
    take memory in proportion to its length. ``progress(done, total)`` is called after each piece."""
    import librosa

    C = _import_basic_pitch()[1]
    x = np.asarray(y, np.float32)
    if sample_rate != C.AUDIO_SAMPLE_RATE:
        x = librosa.resample(x, orig_sr=sample_rate, target_sr=C.AUDIO_SAMPLE_RATE, res_type="soxr_hq")
    sr = C.AUDIO_SAMPLE_RATE
    n, size, margin = len(x), int(chunk_s * sr), int(margin_s * sr)
    if n <= size + 2 * margin:
        notes = _transcribe(x)
        if progress is not None:
            progress(1, 1)
        return notes
    starts = list(range(0, n, size))
    notes = []
    for k, a in enumerate(starts):
        b = min(a + size, n)
        lo, hi = max(0, a - margin), min(n, b + margin)
        t0 = lo / sr
        notes += [AudioNote(m.start + t0, m.end + t0, m.pitch, m.amplitude) for m in _transcribe(x[lo:hi])
                  if a / sr <= m.start + t0 < b / sr]
        if progress is not None:
            progress(k + 1, len(starts))
    notes.sort(key=lambda m: (m.start, m.pitch))
    return notes


def _transcribe(x: np.ndarray) -> list[AudioNote]:
    """basic-pitch's notes of mono float32 audio at its own rate (22,050 Hz)."""
    global _MODEL

    onnx, C, note_creation, Model, unwrap_output, window_audio_file = _import_basic_pitch()
    if _MODEL is None:
        try:
            _MODEL = Model(onnx)
        except Exception as e:  # basic-pitch raises ValueError when no backend loads
            raise AudioError(f"{onnx}: cannot load with onnxruntime: {e}") from e
    overlap = N_OVERLAP_FRAMES * C.FFT_HOP
    hop = C.AUDIO_N_SAMPLES - overlap
    padded = np.concatenate([np.zeros(overlap // 2, np.float32), x])
    windows = np.stack([w for w, _ in window_audio_file(padded, hop)])  # (n, AUDIO_N_SAMPLES, 1)
    out: dict[str, list[np.ndarray]] = {"note": [], "onset": [], "contour": []}
    for i in range(0, len(windows), WINDOWS_PER_CALL):
        for k, v in _MODEL.predict(windows[i:i + WINDOWS_PER_CALL]).items():
            out[k].append(v)
    posteriors = {k: unwrap_output(np.concatenate(v), len(x), N_OVERLAP_FRAMES) for k, v in out.items()}
    min_len = int(np.round(MIN_NOTE_MS / 1000 * (C.AUDIO_SAMPLE_RATE / C.FFT_HOP)))
    _, events = note_creation.model_output_to_notes(
        posteriors, onset_thresh=ONSET_THRESHOLD, frame_thresh=FRAME_THRESHOLD, min_note_len=min_len,
        min_freq=None, max_freq=None, multiple_pitch_bends=False, melodia_trick=True, midi_tempo=120)
    notes = [AudioNote(float(s), float(e), int(p), float(a)) for s, e, p, a, _ in events if e > s]
    notes.sort(key=lambda n: (n.start, n.pitch))
    return notes
