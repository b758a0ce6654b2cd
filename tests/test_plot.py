"""plot_roll writes a PNG (single roll and real-vs-generated), atomically; the CLI `plot` command."""

from __future__ import annotations

import numpy as np
import pytest

from stemfill.pianoroll import roll as R
from stemfill.pianoroll.plot import plot_roll

PNG = b"\x89PNG\r\n\x1a\n"


def _roll(T: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = np.zeros((3, R.N_PITCHES, T), dtype=bool)
    r[0, 0, ::12] = r[0, 1, 6::24] = r[0, 4, ::3] = True
    for s in range(0, T, 6):
        r[1, rng.integers(10, 22), s:s + 5] = True
        r[2, rng.integers(20, 40), s:s + 4] = True
    return r


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_plot_writes_png(tmp_path):
    out = plot_roll(_roll(), tmp_path / "roll.png", R.STEPS_PER_BEAT, bar_starts_steps=[0, 48], title="t")
    w, h = _png_size(out.read_bytes())
    assert w > 400 and h > 300
    assert [p.name for p in tmp_path.iterdir()] == ["roll.png"]  # no temp file left behind


def test_plot_compare_is_wider(tmp_path):
    one = plot_roll(_roll(), tmp_path / "one.png")
    two = plot_roll(_roll(), tmp_path / "two.png", compare=_roll(seed=1), labels=("real", "generated"))
    assert _png_size(two.read_bytes())[0] > _png_size(one.read_bytes())[0]


def test_plot_empty_roll_and_bad_shape(tmp_path):
    from PIL import Image

    full = _roll(T=96)
    plot_roll(np.zeros_like(full), tmp_path / "empty.png")
    plot_roll(full, tmp_path / "full.png")
    empty_px = np.asarray(Image.open(tmp_path / "empty.png").convert("RGB")).astype(int)
    full_px = np.asarray(Image.open(tmp_path / "full.png").convert("RGB")).astype(int)
    assert min(empty_px.shape[:2]) > 100
    coloured = lambda px: int((px.max(-1) - px.min(-1) > 60).sum())  # noqa: E731 - not grey: notes, legend
    assert coloured(full_px) > 3 * coloured(empty_px), (coloured(full_px), coloured(empty_px))
    with pytest.raises(ValueError):
        plot_roll(np.zeros((2, R.N_PITCHES, 10), dtype=bool), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_cli_plot(tmp_path):
    from typer.testing import CliRunner

    from stemfill.cli import app

    mid = tmp_path / "song.mid"
    from test_convert import make_midi

    make_midi(mid, bars=6)
    res = CliRunner().invoke(app, ["plot", str(mid), "-o", str(tmp_path / "r.png"), "--bars", "2-3"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r.png").read_bytes()[:8] == PNG
    res = CliRunner().invoke(app, ["plot", str(mid), "-o", str(tmp_path / "r.png"), "--bars", "40-41"])
    assert res.exit_code == 1 and "has 6 bars" in res.output
    res = CliRunner().invoke(app, ["plot", str(mid), "-o", str(mid)])
    assert res.exit_code == 1 and "input" in res.output
