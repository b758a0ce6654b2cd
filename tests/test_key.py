"""--key: put a new bass and guitar in a named key when the song has neither (drums alone)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from symbolic_toy import toy_song

from stemfill.errors import StemfillError
from stemfill.pianoroll import key as K
from stemfill.pianoroll.diffusion import DiffusionConfig, SamplingConfig
from stemfill.pianoroll.fill import fill_song
from stemfill.pianoroll.model import build_model
from stemfill.pianoroll.grid import CHANNEL, GUITAR_LOW
from stemfill.pianoroll.train import PRESETS
from stemfill.pianoroll.unet import UNetConfig

C_MAJOR_SCALE = [0, 2, 4, 5, 7, 9, 11]


def test_parse_key_names():
    assert K.parse_key("E minor") == (4, True)
    assert K.parse_key("Em") == (4, True)
    assert K.parse_key("A") == (9, False)
    assert K.parse_key("Bb major") == (10, False)
    assert K.key_name(*K.parse_key("f# minor")) == "F# minor"
    with pytest.raises(StemfillError, match="'H moll': not a key"):
        K.parse_key("H moll")


def test_best_shift_moves_a_scale_to_the_named_key():
    hist = np.zeros(12)
    hist[C_MAJOR_SCALE] = 1.0
    hist[0] = hist[7] = 3.0  # tonic and dominant weigh most
    assert K.best_shift(hist, *K.parse_key("D")) == 2
    assert K.best_shift(hist, *K.parse_key("Bb")) == -2
    assert K.best_shift(hist, *K.parse_key("C")) == 0
    assert K.estimate_key(np.roll(hist, 5)) == (5, False)  # F major
    assert K.best_shift(np.zeros(12), 4, True) == 0  # nothing to move


def test_transpose_wraps_an_octave_at_the_edges():
    x = np.zeros((24, 4), dtype=bool)
    x[23, 0] = x[0, 1] = x[10, 2] = True
    y = K.transpose(x, 2)
    assert y[13, 0] and y[2, 1] and y[12, 2] and y.sum() == 3
    assert K.transpose(y, -2)[[11, 0, 10], [0, 1, 2]].all()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(UNetConfig(**PRESETS["tiny"], prior_logit=0.5), DiffusionConfig(density=(0.3, 0.3, 0.3)),
                       sampling=SamplingConfig(sample_steps=2))


def _hist(filled):
    return K.pitched_hist(filled)


def test_key_moves_the_new_parts_together(model):
    drums = toy_song(bars=4, stems=("drums",))
    a = fill_song(drums, ["bass", "guitar"], model, seed=3)
    b = fill_song(drums, ["bass", "guitar"], model, seed=3, key="Eb minor")
    free, gen, keyed, gen2 = a.roll, a.generated, b.roll, b.generated
    assert (gen == gen2).all()
    assert (a.key_source, b.key_source, b.key) == ("model", "given", K.parse_key("Eb minor"))
    assert (keyed[CHANNEL["drums"]] == free[CHANNEL["drums"]]).all()  # drums untouched
    shift = K.best_shift(_hist(free), *K.parse_key("Eb minor"))
    for c in (CHANNEL["bass"], CHANNEL["guitar"]):  # both parts moved by the same interval
        assert (keyed[c] == K.transpose(free[c], shift)).all()
    assert K.best_shift(_hist(keyed), *K.parse_key("Eb minor")) == 0  # no other shift fits the key better


def test_key_refusals(model):
    with pytest.raises(StemfillError, match="own bass or guitar notes already set its key"):
        fill_song(toy_song(bars=4, stems=("drums", "guitar")), ["bass"], model, key="E")
    with pytest.raises(StemfillError, match="add bass or guitar"):
        fill_song(toy_song(bars=4, stems=("guitar",)), ["drums"], model, key="E")
    with pytest.raises(StemfillError, match="not a key"):
        fill_song(toy_song(bars=4, stems=("drums",)), ["bass"], model, key="Q")


def test_cli_key(tmp_path, model):
    from typer.testing import CliRunner

    from stemfill.cli import app
    from stemfill.song.io import read_song, write_song
    from stemfill.pianoroll.model import save_pretrained
    from stemfill.pianoroll.roll import decode, encode

    saved = save_pretrained(model, tmp_path / "model")
    src = write_song(toy_song(bars=4, stems=("drums",)), tmp_path / "drums.mid")
    r = CliRunner().invoke(app, ["midi", str(src), "--add", "bass", "--add", "guitar", "--key", "Em",
                                 "--model", str(saved), "-o", str(tmp_path / "out.mid")])
    assert r.exit_code == 0, r.output
    assert r.output.strip().endswith("in E minor")
    roll = encode(read_song(tmp_path / "out.mid"))
    assert K.best_shift(_hist(roll), 4, True) == 0 and decode(roll)["bass"]
    r = CliRunner().invoke(app, ["midi", str(src), "--add", "bass", "--key", "H moll", "--model", str(saved)])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1 and "not a key" in r.output


def test_chosen_key_names_the_key_of_new_parts_only():
    roll = np.zeros((3, 48, 96), dtype=bool)
    g = CHANNEL["guitar"]
    for i, pc in enumerate([0, 4, 7, 0, 2, 5, 9, 7, 11, 0]):  # C major, C and G weigh most
        roll[g, 48 - GUITAR_LOW + pc, i * 8:(i + 1) * 8] = True  # guitar rows from MIDI 48 (C3)
    gen = np.zeros((3, 96), dtype=bool)
    gen[[CHANNEL["bass"], g]] = True
    assert K.chosen_key(roll, gen) == (0, False)
    assert K.key_name(*K.chosen_key(roll, gen)) == "C major"
    known_guitar = gen.copy()
    known_guitar[g] = False  # the guitar is the song's own: it sets the key, the model chose nothing
    assert K.chosen_key(roll, known_guitar) is None
    assert K.chosen_key(np.zeros_like(roll), gen) is None  # nothing written


def test_new_parts_follow_the_key_of_the_other_tracks(model):
    """Drums and a piano in D major, no bass or guitar: the new parts move into D major (the model cannot
    hear the piano: it is not in the roll)."""
    from stemfill.song.song import Note, Track

    song = toy_song(bars=4, stems=("drums",))
    scale = [62, 64, 66, 67, 69, 71, 73, 74]  # D major
    piano = [Note(k * 480, 470, scale[k % 8] + (0 if k % 3 else -12), 80) for k in range(32)]
    song.tracks.append(Track(name="Piano", program=0, notes=piano))
    assert K.other_tracks_key(song) in ((2, False), (11, True))  # D major (or its relative B minor)
    free = fill_song(song, ["bass", "guitar"], model, seed=3, follow_other=False).roll
    res = fill_song(song, ["bass", "guitar"], model, seed=3)
    followed = res.roll
    assert res.key_source == "other tracks" and res.key == K.other_tracks_key(song)
    shift = K.best_shift(_hist(free), *K.other_tracks_key(song))
    for c in (CHANNEL["bass"], CHANNEL["guitar"]):
        assert (followed[c] == K.transpose(free[c], shift)).all()
    # a song with its own guitar: the guitar sets the key, nothing moves
    with_guitar = toy_song(bars=4, stems=("drums", "guitar"))
    with_guitar.tracks.append(Track(name="Piano", program=0, notes=piano))
    a = fill_song(with_guitar, ["bass"], model, seed=3).roll
    b = fill_song(with_guitar, ["bass"], model, seed=3, follow_other=False).roll
    assert (a == b).all()
    assert K.other_tracks_key(toy_song(bars=2, stems=("drums", "guitar"))) is None  # no other tracks
