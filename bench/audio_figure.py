"""Draw an audio file before and after `stemfill audio`: waveform and log-frequency spectrogram of each.

    stemfill audio examples/riff-no-drums.wav -p "add reggae drums" -o out.wav
    python bench/audio_figure.py examples/riff-no-drums.wav out.wav -o docs/img/audio-add-drums.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=8.0, help="draw the first N seconds")
    a = ap.parse_args(argv)
    import librosa
    import librosa.display
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile as sf

    fig, axes = plt.subplots(2, 2, figsize=(12, 5.5), gridspec_kw={"height_ratios": [1, 2.2]}, sharex=True)
    for col, (path, title) in enumerate(((a.before, "before"), (a.after, "after"))):
        y, sr = sf.read(path, dtype="float32", always_2d=True)
        y = y.mean(axis=1)[: int(a.seconds * sr)]
        t = np.arange(len(y)) / sr
        axes[0, col].plot(t, y, lw=0.3, color="#333")
        axes[0, col].set_ylim(-1, 1)
        axes[0, col].set_title(f"{title}: {path.name}")
        S = librosa.amplitude_to_db(np.abs(librosa.stft(y, n_fft=2048, hop_length=512)), ref=np.max)
        librosa.display.specshow(S, sr=sr, hop_length=512, x_axis="time", y_axis="log", ax=axes[1, col],
                                 vmin=-80, vmax=0, cmap="magma")
        axes[1, col].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(a.out, dpi=80)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
