"""Insert a stem into a whole song with a spectrogram diffusion model, window by window.

The song is mixed to mono and resampled to 44.1 kHz, cut into 5.11 s windows (one 512 x 512
Riffusion image each) that overlap by ``overlap`` seconds, and each window goes
audio -> image -> pipeline -> image -> audio (Griffin-Lim). Consecutive windows are joined with an
equal-power crossfade over the overlap (Griffin-Lim phases of two windows are unrelated, so their
powers, not their amplitudes, add up).

Memory: one window's images at a time. The 44.1 kHz result is streamed to a temporary file as the
windows come; a second pass resamples it to the input's rate, matches loudness and writes the output.

Output policy:
- same length (in samples) and sample rate as the input;
- same channel count: the mono result is duplicated into every channel (the model is mono; no
  stereo image is invented);
- loudness: each window is scaled to the RMS of the input window it came from (so the song's
  dynamics survive Griffin-Lim's per-window normalisation), then the whole output to the input's RMS,
  then clipped to [-1, 1]; windows where the input is silent stay silent;
- written to a temporary file beside the output and renamed into place, never over the input.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stemfill.audio.pipeline import check_method, load_pipeline
from stemfill.audio.spectrogram import GRIFFIN_LIM_ITERS, SAMPLE_RATE, SEGMENT_SAMPLES, audio_to_image, image_to_audio
from stemfill.errors import AudioError
from stemfill.files import check_output_folder, check_output_path, default_file_mode

DEFAULT_OVERLAP = 0.5  # seconds shared by consecutive windows
AUDIO_OUT_EXTS = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")  # what _format_for can write (MP3: libsndfile >= 1.1)
SILENT_RMS = 1e-5  # an input window quieter than this stays silent in the output


@dataclass
class InsertConfig:
    prompt: str
    method: str = "subtractive"
    steps: int = 20
    guidance: float = 7.5
    image_guidance: float = 1.5  # subtractive only
    strength: float = 0.5  # sdedit only: how far the stem-removed latent is noised (0..1)
    seed: int = 0
    overlap: float = DEFAULT_OVERLAP
    griffin_lim_iters: int = GRIFFIN_LIM_ITERS

    def __post_init__(self):
        from stemfill.audio.prompt import check_prompt_action

        check_method(self.method)
        check_prompt_action(self.prompt)  # empty, or "remove drums": the model only inserts
        if self.steps < 1:
            raise AudioError(f"steps must be >= 1, got {self.steps}")
        if not 0.0 < self.strength <= 1.0:
            raise AudioError(f"strength must be in (0, 1], got {self.strength}")
        if not 0.0 <= self.overlap < SEGMENT_SAMPLES / SAMPLE_RATE / 2:
            raise AudioError(f"overlap {self.overlap} s must be in [0, {SEGMENT_SAMPLES / SAMPLE_RATE / 2:.2f}) s")


def window_starts(n_samples: int, overlap_samples: int) -> list[int]:
    """Starts of the windows covering n_samples: hop = window - overlap; the last one may run past the end."""
    hop = SEGMENT_SAMPLES - overlap_samples
    count = max(1, math.ceil((n_samples - overlap_samples) / hop))
    return [i * hop for i in range(count)]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _file_rms(path: Path) -> float:
    import soundfile as sf

    total, count = 0.0, 0
    for block in sf.blocks(str(path), blocksize=1 << 18, dtype="float64", always_2d=True):
        total += float(np.square(block).sum())
        count += block.size
    return math.sqrt(total / count) if count else 0.0


class _Crossfader:
    """Joins fixed-length windows overlapping by `overlap` samples; `push` returns the finished samples."""

    def __init__(self, overlap: int):
        self.overlap = overlap
        t = (np.arange(overlap) + 0.5) / max(overlap, 1)
        self.fade_in = np.sin(0.5 * np.pi * t).astype(np.float32)
        self.fade_out = np.cos(0.5 * np.pi * t).astype(np.float32)
        self.tail: np.ndarray | None = None

    def push(self, w: np.ndarray) -> np.ndarray:
        o = self.overlap
        if o == 0:
            return w
        head = w[:o] if self.tail is None else self.tail * self.fade_out + w[:o] * self.fade_in
        self.tail = w[len(w) - o:].copy()
        return np.concatenate([head, w[o:len(w) - o]])

    def flush(self) -> np.ndarray:
        return self.tail if self.tail is not None else np.zeros(0, np.float32)


def _edit_window(pipe, image: np.ndarray, cfg: InsertConfig, generator):
    """One spectrogram image through the pipeline; returns the edited grey uint8 image (same shape)."""
    from stemfill.audio.spectrogram import to_pil

    common = dict(prompt=cfg.prompt, image=to_pil(image), num_inference_steps=cfg.steps,
                  guidance_scale=cfg.guidance, generator=generator)
    if cfg.method == "subtractive":
        out = pipe(**common, image_guidance_scale=cfg.image_guidance).images[0]
    else:
        out = pipe(**common, strength=cfg.strength).images[0]
    a = np.asarray(out.convert("L"))
    if a.shape != image.shape:
        raise AudioError(f"the model returned a {a.shape} image for a {image.shape} one")
    return a


def insert_stem(in_path: str | os.PathLike, out_path: str | os.PathLike, cfg: InsertConfig, *, model: str | None = None,
                pipe=None, plot_dir: str | os.PathLike | None = None, progress: bool = True, on_start=None) -> dict:
    """Write `out_path`: the song at `in_path` with the stem the prompt asks for. Returns a summary dict.

    ``on_start``: called once every input, output and the model have been checked, before the windows run."""
    import soundfile as sf
    import torch

    from stemfill.audio.spectrogram import load_audio, save_image

    in_path, out_path = Path(in_path), Path(out_path)
    check_output_path(out_path, in_path, exts=AUDIO_OUT_EXTS)
    if plot_dir:
        check_output_folder(plot_dir, in_path)
    y, in_sr, n_channels = load_audio(in_path)  # mono 44.1 kHz; AudioError on corrupt / silent / short
    info = sf.info(str(in_path))
    n_in = int(info.frames)
    out_format, subtype = check_audio_output(out_path, in_sr, n_channels, info.subtype)
    in_rms = _file_rms(in_path)
    if pipe is None:
        pipe = load_pipeline(model, cfg.method)
    plot = Path(plot_dir) if plot_dir else None
    if plot:
        plot.mkdir(parents=True, exist_ok=True)
    if on_start is not None:
        on_start()

    overlap = int(round(cfg.overlap * SAMPLE_RATE))
    starts = window_starts(len(y), overlap)
    generator = torch.Generator(device=pipe.device).manual_seed(cfg.seed)
    fader = _Crossfader(overlap)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, mono_tmp = tempfile.mkstemp(prefix=f".{out_path.stem}.", suffix=".44k.wav", dir=out_path.parent)
    os.close(fd)
    final_tmp = None
    try:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn(f"{in_path.name}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                       disable=not progress, transient=True)
        with bar, sf.SoundFile(mono_tmp, "w", samplerate=SAMPLE_RATE, channels=1, subtype="FLOAT", format="WAV") as mono:
            task = bar.add_task("windows", total=len(starts))
            for i, s in enumerate(starts):
                seg = y[s:s + SEGMENT_SAMPLES]
                seg_rms = _rms(seg)
                seg = np.pad(seg, (0, SEGMENT_SAMPLES - len(seg)))
                if seg_rms < SILENT_RMS:
                    w = np.zeros(SEGMENT_SAMPLES, np.float32)
                else:
                    image = audio_to_image(seg)
                    edited = _edit_window(pipe, image, cfg, generator)
                    w = image_to_audio(edited, n_iter=cfg.griffin_lim_iters, seed=cfg.seed + i)
                    w = np.pad(w, (0, max(0, SEGMENT_SAMPLES - len(w))))[:SEGMENT_SAMPLES]
                    r = _rms(w)
                    w = (w * (seg_rms / r)).astype(np.float32) if r > 0 else w
                    if plot:
                        save_image(image, plot / f"window_{i:04d}_in.png")
                        save_image(edited, plot / f"window_{i:04d}_out.png")
                done = fader.push(w)
                mono.write(done)
                bar.update(task, advance=1)
            mono.write(fader.flush())

        # pass 2: back to the input's rate, length, loudness and channel count
        z, _ = sf.read(mono_tmp, dtype="float32")
        if in_sr != SAMPLE_RATE:
            import librosa

            z = librosa.resample(z, orig_sr=SAMPLE_RATE, target_sr=in_sr, res_type="soxr_hq")
        z = np.pad(z, (0, max(0, n_in - len(z))))[:n_in]
        out_rms = _rms(z)
        if out_rms > 0:
            z = z * (in_rms / out_rms)
        z = np.clip(z, -1.0, 1.0).astype(np.float32)
        fd, final_tmp = tempfile.mkstemp(prefix=f".{out_path.stem}.", suffix=out_path.suffix or ".wav", dir=out_path.parent)
        os.close(fd)
        with sf.SoundFile(final_tmp, "w", samplerate=in_sr, channels=n_channels, format=out_format, subtype=subtype) as f:
            block = 1 << 18
            for b in range(0, n_in, block):
                piece = z[b:b + block]
                f.write(np.repeat(piece[:, None], n_channels, axis=1) if n_channels > 1 else piece)
        os.chmod(final_tmp, default_file_mode())
        os.replace(final_tmp, out_path)
        final_tmp = None
    except sf.LibsndfileError as e:  # the message names the hidden temp file: only its reason is kept
        raise AudioError(f"{out_path}: cannot write audio: {(e.error_string or 'libsndfile error').strip()}") from None
    finally:
        for p in (mono_tmp, final_tmp):
            if p and os.path.exists(p):
                os.unlink(p)
    return {"input": str(in_path), "output": str(out_path), "windows": len(starts), "seconds": n_in / in_sr,
            "sample_rate": in_sr, "channels": n_channels, "method": cfg.method}


_FORMATS = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "aiff": "AIFF", "aif": "AIFF", "mp3": "MP3"}


def _format_for(path: Path) -> str:
    import soundfile as sf

    ext = path.suffix.lower().lstrip(".")
    fmt = _FORMATS.get(ext)
    if fmt is None or fmt not in sf.available_formats():
        raise AudioError(f"{path}: cannot write .{ext or '(no extension)'} audio; use {', '.join(AUDIO_OUT_EXTS)}")
    return fmt


def check_audio_output(path: Path, sample_rate: int, channels: int, subtype: str | None = None):
    """Before any work: ``(format, subtype)`` that libsndfile can write to ``path`` at this rate and channel count.

    ``subtype``: the input's (kept where the container takes it, else the container's default). The check opens
    an in-memory file with these settings, so a combination the library refuses (MP3 over 48 kHz or with more
    than 2 channels) is one line naming the path, not a failure after the work."""
    import io

    import soundfile as sf

    fmt = _format_for(path)
    if subtype is not None and not sf.check_format(fmt, subtype):
        subtype = None
    buf = io.BytesIO()
    buf.name = path.name
    try:
        with sf.SoundFile(buf, "w", samplerate=int(sample_rate), channels=int(channels), format=fmt, subtype=subtype):
            pass
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        why = getattr(e, "error_string", "") or "not supported"
        raise AudioError(f"{path}: cannot write {fmt} audio at {sample_rate} Hz with {channels} channel"
                         f"{'s' if channels != 1 else ''} ({why.strip().rstrip('.')}); use .wav or .flac") from None
    return fmt, subtype
