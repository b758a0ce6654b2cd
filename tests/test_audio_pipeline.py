"""The audio model end to end on tiny offline components: train 2 steps, save, load, insert a stem; metrics."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from stemfill.audio import metrics as M
from stemfill.audio.pipeline import LATENT_CHANNELS, load_pipeline
from tiny_pipeline import save_tiny_pipeline, tiny_unet
from stemfill.cli import app

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine, OpenMP's spinning threads made tiny convolutions 20x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _song(seconds: float, sr: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    y = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t)) + 0.02 * rng.standard_normal(len(t))
    return np.stack([y * (1 - 0.3 * c) for c in range(channels)], axis=1) if channels > 1 else y


@pytest.fixture(scope="module")
def triplets(tmp_path_factory):
    """Three tiny triplets (one 5.11 s window, each of three stems removed in turn), through triplets.py."""
    from stemfill.audio.spectrogram import SAMPLE_RATE
    from stemfill.audio.triplets import SongStems, build_triplets

    d = tmp_path_factory.mktemp("triplets")
    t = np.arange(int(5.2 * SAMPLE_RATE)) / SAMPLE_RATE
    rng = np.random.default_rng(0)
    stems = {
        "drums": (0.2 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 2 * t) > 0.9)).astype(np.float32),
        "bass": (0.3 * np.sin(2 * np.pi * 55 * t)).astype(np.float32),
        "guitar": (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32),
    }
    song = SongStems(key="test:song", stems=stems, genre="rock", qpm=120.0)
    man = build_triplets([("test:song", lambda: song)], d, progress=False)
    assert man["count"] == 3
    return d


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    """A tiny plain-Riffusion-shaped pipeline folder (4-channel UNet), the start of a fine-tune."""
    return save_tiny_pipeline(tmp_path_factory.mktemp("base") / "riffusion-tiny", method="sdedit")


@pytest.fixture(scope="module")
def trained(triplets, base_model, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "run"
    r = runner.invoke(app, ["audio-train", "--data", str(triplets), "-o", str(run), "--model", str(base_model),
                            "--steps", "2", "--batch", "1", "--seed", "1"])
    assert r.exit_code == 0, r.output
    return run


def test_widen_conv_in_copies_bias_and_zero_inits_new_weights():
    from stemfill.audio.train import widen_conv_in

    unet = tiny_unet(0, LATENT_CHANNELS)
    w, b = unet.conv_in.weight.detach().clone(), unet.conv_in.bias.detach().clone()
    widen_conv_in(unet)
    assert unet.conv_in.in_channels == 8 and unet.config.in_channels == 8
    assert np.array_equal(unet.conv_in.weight[:, :4].detach().numpy(), w.numpy())
    assert not unet.conv_in.weight[:, 4:].detach().any()
    assert np.array_equal(unet.conv_in.bias.detach().numpy(), b.numpy())


def test_train_save_load_and_insert_a_stem(trained, tmp_path):
    import json

    assert json.loads((trained / "model_index.json").read_text())["_class_name"] == "StableDiffusionInstructPix2PixPipeline"
    pipe = load_pipeline(str(trained), "subtractive")
    assert pipe.unet.config.in_channels == 8
    sr = 22_050
    song = tmp_path / "song.wav"
    sf.write(song, _song(6.0, sr, channels=2), sr, subtype="PCM_16")  # 6 s: two windows
    out = tmp_path / "out" / "with-drums.wav"
    r = runner.invoke(app, ["audio", str(song), "--prompt", "add reggae drums", "-o", str(out), "--model", str(trained),
                            "--steps", "2", "--griffin-lim-iters", "2", "--plot-dir", str(tmp_path / "plots")])
    assert r.exit_code == 0, r.output
    assert "2 windows" in r.output
    y_in, _ = sf.read(song)
    y, out_sr = sf.read(out)
    info = sf.info(str(out))
    assert out_sr == sr and y.shape == y_in.shape and info.subtype == "PCM_16"
    assert np.sqrt(np.mean(y ** 2)) == pytest.approx(np.sqrt(np.mean(y_in ** 2)), rel=0.05)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir())[:2] == ["window_0000_in.png", "window_0000_out.png"]
    assert [p.name for p in out.parent.iterdir()] == ["with-drums.wav"]  # no temporary left behind


class _KnownEdit:
    """A stand-in pipeline whose edit is known: whatever window it is given, it returns the spectrogram image
    of a 1,000 Hz tone (and records the images it was given)."""

    device = "cpu"

    def __init__(self):
        from stemfill.audio.spectrogram import SEGMENT_SAMPLES, SAMPLE_RATE, audio_to_image, to_pil

        t = np.arange(SEGMENT_SAMPLES) / SAMPLE_RATE
        self.tone = to_pil(audio_to_image((0.3 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)))
        self.given = []

    def __call__(self, *, prompt, image, image_guidance_scale, **_):
        from types import SimpleNamespace

        assert prompt == "add drums" and image_guidance_scale == 1.5
        self.given.append(np.asarray(image.convert("L")))
        return SimpleNamespace(images=[self.tone])


def _peak_hz(y: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / sr)[np.argmax(spec)])


def test_the_models_edit_reaches_the_audio(tmp_path):
    """The subtractive route writes what the model returned: a model that turns every window into a 1 kHz
    tone turns a 220 Hz song into a 1 kHz one."""
    from stemfill.audio.infer import InsertConfig, insert_stem

    sr = 22_050
    song, out = tmp_path / "song.wav", tmp_path / "out.wav"
    y_in = _song(6.0, sr)
    sf.write(song, y_in, sr)
    pipe = _KnownEdit()
    insert_stem(song, out, InsertConfig(prompt="add drums", steps=1, griffin_lim_iters=4), pipe=pipe, progress=False)
    y, out_sr = sf.read(out)
    assert out_sr == sr and len(y) == len(y_in)
    assert len(pipe.given) == 2 and (pipe.given[0] != np.asarray(pipe.tone.convert("L"))).any()
    assert abs(_peak_hz(y_in, sr) - 220) < 5
    assert abs(_peak_hz(y, sr) - 1000) < 15, _peak_hz(y, sr)  # the model's tone, not the song's


def test_sdedit_baseline_on_a_mono_clip(base_model, tmp_path):
    song, out = tmp_path / "clip.wav", tmp_path / "clip-out.flac"
    sf.write(song, _song(2.0, 44_100), 44_100)
    r = runner.invoke(app, ["audio", str(song), "-p", "add drums", "-o", str(out), "--model", str(base_model),
                            "--method", "sdedit", "--strength", "0.5", "--steps", "2", "--griffin-lim-iters", "2"])
    assert r.exit_code == 0, r.output
    y, sr = sf.read(out, always_2d=True)
    assert sr == 44_100 and y.shape == (88_200, 1)
    r = runner.invoke(app, ["audio", str(song), "-p", "add drums", "-o", str(out), "--model", str(base_model)])
    assert r.exit_code == 1 and "use --method sdedit" in r.output


def test_resume_continues_exactly(triplets, base_model, trained, tmp_path):
    """2 steps straight == 1 step, then --resume to 2: same UNet weights."""
    import torch
    from safetensors.torch import load_file

    run = tmp_path / "run"
    args = ["audio-train", "--data", str(triplets), "-o", str(run), "--model", str(base_model), "--batch", "1", "--seed", "1"]
    assert runner.invoke(app, args + ["--steps", "1"]).exit_code == 0
    r = runner.invoke(app, args + ["--steps", "1"])
    assert r.exit_code == 1 and "--resume" in r.output
    r = runner.invoke(app, args + ["--steps", "2", "--resume"])
    assert r.exit_code == 0, r.output
    assert torch.load(run / "training_state.pt", weights_only=False)["step"] == 2
    a = load_file(next((trained / "unet").glob("*.safetensors")))
    b = load_file(next((run / "unet").glob("*.safetensors")))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_missing_model_is_one_line_error(tmp_path):
    song = tmp_path / "song.wav"
    sf.write(song, _song(2.0, 44_100), 44_100)
    r = runner.invoke(app, ["audio", str(song), "--prompt", "add drums", "-o", str(tmp_path / "o.wav"),
                            "--model", "nobody/no-such-riffusion"])
    assert r.exit_code == 1
    assert "nobody/no-such-riffusion" in r.output and r.output.strip().count("\n") == 0
    r = runner.invoke(app, ["audio", str(song), "--prompt", "add drums", "-o", str(tmp_path / "o.wav"),
                            "--model", str(tmp_path / "missing-folder")])
    assert r.exit_code == 1 and "missing-folder" in r.output


@pytest.mark.parametrize("case", ["silent", "corrupt", "over-input"])
def test_bad_input_is_one_line_error(tmp_path, case):
    song = tmp_path / "song.wav"
    if case == "silent":
        sf.write(song, np.zeros(44_100 * 2), 44_100)
    elif case == "corrupt":
        song.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    else:
        sf.write(song, _song(2.0, 44_100), 44_100)
    out = song if case == "over-input" else tmp_path / "o.wav"
    r = runner.invoke(app, ["audio", str(song), "--prompt", "add drums", "-o", str(out), "--model", str(tmp_path)])
    assert r.exit_code == 1
    assert r.output.startswith("error:") and r.output.strip().count("\n") == 0
    assert {"silent": "silent", "corrupt": "cannot read", "over-input": "is the input file"}[case] in r.output
    assert not (tmp_path / "o.wav").exists()


def test_crossfade_windows_cover_the_song():
    from stemfill.audio.infer import _Crossfader, window_starts
    from stemfill.audio.spectrogram import SEGMENT_SAMPLES

    o = 1000
    starts = window_starts(2 * SEGMENT_SAMPLES, o)
    assert len(starts) == 3 and starts[1] == SEGMENT_SAMPLES - o
    f = _Crossfader(o)
    total = sum(len(f.push(np.ones(SEGMENT_SAMPLES, np.float32))) for _ in starts) + len(f.flush())
    assert total == SEGMENT_SAMPLES + (len(starts) - 1) * (SEGMENT_SAMPLES - o)


# --- metrics ----------------------------------------------------------------------------------


def test_metric_identities():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 4))
    assert M.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert M.frechet_distance(x, x + 1.0) == pytest.approx(4.0, abs=1e-6)  # a mean shift of 1 in 4 dims
    p = M._softmax(rng.standard_normal((20, 7)))
    assert M.kl_divergence(p, p) == pytest.approx(0.0, abs=1e-4)
    assert M.kl_divergence(p, p[::-1]) > 0.01
    assert M.inception_score(np.full((30, 5), 0.2))[0] == pytest.approx(1.0)
    assert M.inception_score(np.eye(5)[np.arange(50) % 5])[0] == pytest.approx(5.0)  # confident, balanced


def test_audio_eval_cli_on_mel_extractor(tmp_path):
    real, gen = tmp_path / "real", tmp_path / "gen"
    real.mkdir()
    gen.mkdir()
    for i in range(10):
        sf.write(real / f"clip{i}.wav", _song(1.0, 16_000, seed=i), 16_000)
        sf.write(gen / f"clip{i}.wav", _song(1.0, 16_000, seed=i), 16_000)
    other = tmp_path / "other"  # the same names, other sound: white noise
    other.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        sf.write(other / f"clip{i}.wav", 0.1 * rng.standard_normal(16_000), 16_000)
    rep = M.evaluate(real, gen, M.MelStatsExtractor())
    assert rep["FD"] == pytest.approx(0.0, abs=1e-6) and rep["KLD"] == pytest.approx(0.0, abs=1e-4)
    assert rep["n_pairs"] == 10 and "IS" in rep and "FAD" not in rep
    far = M.evaluate(real, other, M.MelStatsExtractor())
    assert far["n_pairs"] == 10 and far["FD"] > 1.0 and far["KLD"] > 0.01  # other sound: far apart
    r = runner.invoke(app, ["audio-eval", "--real", str(real), "--generated", str(gen), "--extractor", "mel"])
    assert r.exit_code == 0 and "KLD" in r.output
    r2 = runner.invoke(app, ["audio-eval", "--real", str(real), "--generated", str(other), "--extractor", "mel"])
    assert r2.exit_code == 0 and r2.output != r.output, r2.output
    r = runner.invoke(app, ["audio-eval", "--real", str(real), "--generated", str(gen), "--extractor", "nonsense"])
    assert r.exit_code == 1 and "nonsense" in r.output
