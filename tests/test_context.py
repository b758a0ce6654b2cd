"""The other tracks' context: encoded from a song, stored in chunks, read by a model that hears it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from stemfill.cli import app
from stemfill.datasets.chunks import load_chunks
from stemfill.datasets.convert import convert
from stemfill.errors import StemfillError
from stemfill.pianoroll.diffusion import DiffusionConfig, SamplingConfig
from stemfill.pianoroll.fill import fill_chunks, fill_song
from stemfill.pianoroll.grid import CONTEXT_LOW, CONTEXT_PLANES, N_PITCHES
from stemfill.song.midi import write_midi
from stemfill.pianoroll.model import build_model, save_pretrained
from stemfill.pianoroll.roll import encode_context
from stemfill.song.song import Note, Track
from stemfill.pianoroll.train import TrainConfig, start_from, training_batch
from stemfill.pianoroll.unet import UNetConfig
from symbolic_toy import toy_rolls, toy_song

TINY = dict(channels=(8, 16), down=((2, 2),), layers=(0, 1), norm_groups=4, time_dim=16, attention=False)


def _with_piano(song, pitches=(60, 64, 67), bars: int = 6):
    """The toy song plus a piano playing a chord on every beat."""
    q = song.resolution
    notes = [Note(b * 4 * q + k * q, q // 2, p, 70) for b in range(bars) for k in range(4) for p in pitches]
    song.tracks.append(Track(name="Piano", program=0, notes=notes))
    return song


def test_encode_context_holds_only_the_other_tracks():
    song = _with_piano(toy_song(bars=6, stems=("drums", "guitar", "bass")))
    ctx = encode_context(song)
    assert ctx.shape == (len(CONTEXT_PLANES), N_PITCHES, ctx.shape[-1])
    rows = set(np.flatnonzero(ctx[0].any(1)))
    assert rows == {60 - CONTEXT_LOW, 64 - CONTEXT_LOW, 67 - CONTEXT_LOW}  # the piano's, not the guitar's or bass's
    steps_per_quarter = 12
    onsets = np.flatnonzero(ctx[1].any(0))
    assert list(onsets[:4]) == [0, 12, 24, 36] and len(onsets) == 6 * 4
    assert ctx[0, 60 - CONTEXT_LOW, :steps_per_quarter // 2].all() and not ctx[0, 60 - CONTEXT_LOW, 6:12].any()
    assert not encode_context(toy_song(bars=2)).any()  # drums and guitar only: no context


def test_high_and_low_context_notes_fold_by_octaves():
    song = toy_song(bars=1)
    song.tracks.append(Track(name="Flute", program=73, notes=[Note(0, 480, 96, 80), Note(480, 480, 24, 80)]))
    ctx = encode_context(song)
    assert set(np.flatnonzero(ctx[1].any(1))) == {(96 - CONTEXT_LOW) % 12 + N_PITCHES - 12, 0}


def test_convert_stores_the_context_and_old_folders_are_refused(tmp_path):
    src = tmp_path / "songs"
    src.mkdir()
    write_midi(_with_piano(toy_song(bars=8, stems=("drums", "guitar", "bass")), bars=8), src / "a.mid")
    out = tmp_path / "chunks"
    convert([src], out, jobs=1, progress=False)
    ch = load_chunks(out, None)
    assert ch.context is not None and ch.context.shape == (len(ch), len(CONTEXT_PLANES)) + ch.rolls.shape[2:]
    assert ch.context[:, 1].any(axis=(1, 2)).all()  # the piano plays in every chunk
    m = json.loads((out / "manifest.json").read_text())
    m["config"]["format"] = 1
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(StemfillError, match="convert the songs again"):
        load_chunks(out, None)


def _tiny(context_planes: int, seed: int = 0):
    """An untrained tiny model whose output depends on its input (conv_out is not left at zero)."""
    torch.manual_seed(seed)
    m = build_model(UNetConfig(**TINY, prior_logit=-1.0, context_planes=context_planes),
                    DiffusionConfig(density=(0.1, 0.1, 0.1)), sampling=SamplingConfig(sample_steps=2))
    torch.nn.init.normal_(m.net.conv_out.weight, std=0.5)
    return m


def test_a_model_started_from_a_deaf_one_fills_exactly_as_it_did(tmp_path):
    """New context inputs start at zero: at step 0 the context changes nothing; after training it can."""
    old = save_pretrained(_tiny(0), tmp_path / "old")
    new = start_from(str(old), len(CONTEXT_PLANES))
    assert new.context_planes == len(CONTEXT_PLANES)
    rolls = toy_rolls(4, seed=3)
    known = np.ones((4, 3), dtype=bool)
    known[:, 1] = False
    other = np.random.default_rng(0).random((4, len(CONTEXT_PLANES), N_PITCHES, rolls.shape[-1])) < 0.1
    from stemfill.pianoroll.model import load_model

    a = fill_chunks(load_model(old), rolls, known, seed=5)
    b = fill_chunks(new, rolls, known, seed=5, other=other)
    assert (a == b).all()
    with torch.no_grad():
        new.net.conv_in.weight[:, -len(CONTEXT_PLANES):] = 1.0
    c = fill_chunks(new, rolls, known, seed=5, other=other)
    assert (c != a).any() and (c[:, [0, 2]] == rolls[:, [0, 2]]).all()  # known stems still exact


def test_training_batch_shifts_the_context_with_bass_and_guitar():
    rolls = toy_rolls(8, seed=1)
    other = np.zeros((8, len(CONTEXT_PLANES), N_PITCHES, rolls.shape[-1]), dtype=bool)
    other[:, :, 20, ::12] = True
    cfg = TrainConfig(augment=5, key_prior=False)
    x0, known, o = training_batch(rolls, cfg, np.random.default_rng(0), other=other)
    for i in range(8):
        shift = int(np.flatnonzero(o[i, 1].any(1).numpy())[0]) - 20
        g = rolls[i, 2].any(1)
        if g.any() and 12 <= np.flatnonzero(g)[0] + shift and np.flatnonzero(g)[-1] + shift < N_PITCHES:
            assert np.array_equal(np.flatnonzero(x0[i, 2].numpy().any(1)), np.flatnonzero(g) + shift)


def test_fill_song_hears_the_other_tracks(tmp_path):
    """A model with context inputs gets the song's piano; without them the same model fills otherwise."""
    model = _tiny(len(CONTEXT_PLANES), seed=1)
    with torch.no_grad():
        model.net.conv_in.weight[:, -len(CONTEXT_PLANES):] = 2.0
    song = toy_song(bars=8, stems=("drums", "guitar"))
    with_piano = _with_piano(toy_song(bars=8, stems=("drums", "guitar")), bars=8)
    a = fill_song(song, ["bass"], model, seed=0).roll
    b = fill_song(with_piano, ["bass"], model, seed=0).roll
    assert (a[1] != b[1]).any() and (a[[0, 2]] == b[[0, 2]]).all()


def test_cli_train_from_a_model_and_eval_with_and_without_context(tmp_path):
    src = tmp_path / "songs"
    src.mkdir()
    for i, pitches in enumerate(((60, 64, 67), (62, 65, 69), (57, 60, 64), (55, 59, 62))):
        write_midi(_with_piano(toy_song(bars=12, stems=("drums", "guitar", "bass")), pitches, bars=12),
                   src / f"s{i}.mid")
    data = tmp_path / "chunks"
    convert([src], data, jobs=1, progress=False, seed=0)
    old = save_pretrained(_tiny(0), tmp_path / "old")
    run = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "--data", str(data), "-o", str(run), "--init-from", str(old), "--steps", "2",
                                 "--batch", "4", "--warmup", "1", "--sample-every", "0", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((run / "model" / "config.json").read_text())
    assert cfg["unet"]["context_planes"] == len(CONTEXT_PLANES) and cfg["unet"]["channels"] == [8, 16]
    assert cfg["sampling"] == json.loads((old / "config.json").read_text())["sampling"]  # the old model's sampling
    split = next(s["split"] for s in json.loads((data / "manifest.json").read_text())["songs"])
    for flag in ("--context", "--no-context"):
        out = tmp_path / f"r{flag}.json"
        r = CliRunner().invoke(app, ["eval", "--data", str(data), "--split", split, "-s", "model", "--model",
                                     str(run / "model"), flag, "--no-pairs", "--json", str(out)])
        assert r.exit_code == 0, r.output
        rep = json.loads(out.read_text())
        assert rep["config"]["context"] is (flag == "--context")
        assert rep["results"]["model"]["bass"]["fidelity/known_exact"] == 1.0
    r = CliRunner().invoke(app, ["eval", "--data", str(data), "--split", split, "--chunks", "without-context"])
    assert r.exit_code == 1 and "has no chunks (without-context)" in r.output
