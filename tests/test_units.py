"""The bass's and guitar's unit decoder (stemfill/generate/units.py): its libraries, their refusals and its
choice, on rolls built here."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from stemfill.errors import StemfillError
from stemfill.generate.units import (BAR, FORMAT, UnitConfig, UnitLibrary, bar_candidates, build_library,
                                     decode_units, load_library, note_rise, unit_draws)
from stemfill.pianoroll.grid import STEPS_PER_BEAT

P = 48


def _bar(notes) -> np.ndarray:
    """A bar (P, 48) of (row, start, end) notes."""
    x = np.zeros((P, BAR), dtype=bool)
    for r, a, e in notes:
        x[r, a:e] = True
    return x


WALK = [(0, 0, 12), (2, 12, 24), (4, 24, 36), (5, 36, 48)]  # a walk up: root, 2, 3, 4 (rows from its root)
PEDAL = [(0, 0, 10), (0, 12, 22), (0, 24, 34), (0, 36, 46)]  # four quarters on the root (a gap between: a roll
# joins touching notes of one pitch)
OCTAVES = [(0, 0, 6), (12, 6, 12), (0, 12, 18), (12, 18, 24), (0, 24, 30), (12, 30, 36), (0, 36, 42), (12, 42, 48)]


def _shift(notes, r):
    return [(a + r, s, e) for a, s, e in notes]


def _library(*bars_, stem: str = "bass") -> UnitLibrary:
    """A library of these bars (lists of notes), each in a 4-bar window at a few transpositions."""
    rolls = []
    for notes in bars_:
        w = np.zeros((P, 4 * BAR), dtype=bool)
        for b, r in enumerate((10, 12, 15, 10)):
            w[:, b * BAR:(b + 1) * BAR] = _bar(_shift(notes, r))
        rolls.append(w)
    return build_library(np.stack(rolls), stem, {"steps_per_beat": STEPS_PER_BEAT})


def test_the_library_holds_each_bar_once_relative_to_its_first_note(tmp_path):
    lib = _library(WALK, PEDAL, WALK)
    assert len(lib) == 2  # the walk and the pedal, whatever their key
    walk = int(np.flatnonzero(lib.n == 4)[np.argmax(lib.count[lib.n == 4])])
    assert lib.count[walk] == 8  # 4 bars of each of 2 windows
    assert lib.rel[walk, :4].tolist() == [0, 2, 4, 5]
    assert lib.start[walk, :4].tolist() == [0, 12, 24, 36] and lib.end[walk, :4].tolist() == [12, 24, 36, 48]
    back = load_library(lib.save(tmp_path / "lib.npz"), "bass")
    assert len(back) == 2 and back.meta["format"] == FORMAT and back.meta["bars"] == 12
    assert (back.rel == lib.rel).all() and (back.count == lib.count).all()
    with pytest.raises(StemfillError, match="a unit library of the bass, not of the guitar"):
        load_library(tmp_path / "lib.npz", "guitar")


def test_the_bass_keeps_a_chords_lowest_note_the_guitar_all_of_it_and_notes_stop_at_the_bar_line():
    w = np.zeros((1, P, 4 * BAR), dtype=bool)
    w[0, 20, 0:60] = True  # held over the bar line
    w[0, 27, 0:12] = True  # a fifth above, struck with it
    lib = build_library(w, "bass")
    first = lib.n == 1
    assert first.sum() == 1 and lib.end[first, 0] == BAR and lib.rel[first, 0] == 0
    gtr = build_library(w, "guitar")
    chord = int(np.flatnonzero(gtr.n == 2)[0])
    assert gtr.rel[chord, :2].tolist() == [0, 7] and gtr.end[chord, :2].tolist() == [BAR, 12]
    assert gtr.meta["stem"] == "guitar" and gtr.start.shape[1] == 32


def test_a_bad_library_is_refused_in_one_line_naming_its_path(tmp_path):
    with pytest.raises(StemfillError, match="no such unit library"):
        load_library(tmp_path / "none.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(StemfillError, match=f"{junk}: not a stemfill unit library"):
        load_library(junk)
    lib = _library(WALK)
    other = tmp_path / "grid.npz"
    UnitLibrary(lib.start, lib.end, lib.rel, lib.n, lib.count, {"steps_per_beat": 4}).save(other)
    with pytest.raises(StemfillError, match="4 steps a beat"):
        load_library(other)
    empty = tmp_path / "empty.npz"
    z = np.zeros((0, 16), np.int64)
    UnitLibrary(z, z, z, np.zeros(0, np.int64), np.zeros(0, np.int64), {"steps_per_beat": STEPS_PER_BEAT}).save(empty)
    with pytest.raises(StemfillError, match="empty"):
        load_library(empty)
    with pytest.raises(StemfillError, match="no bass bars"):
        build_library(np.zeros((1, P, 4 * BAR), dtype=bool), "bass")


def test_the_best_candidate_is_the_unit_the_network_draws_at_its_pitch():
    lib = _library(WALK, PEDAL, OCTAVES)
    p = np.where(_bar(_shift(WALK, 21)), 0.8, 0.02).astype(np.float32)
    k, r, fit = bar_candidates(lib, p, note_rise(p), UnitConfig(top=5))
    assert lib.n[k[0]] == 4 and lib.rel[k[0], :4].tolist() == [0, 2, 4, 5] and r[0] == 21
    assert (np.diff(fit) <= 0).all()


def test_the_critic_chooses_among_draws_and_closed_bars_keep_the_line():
    """The network's P is unsure between the walk and the pedal in every bar; the line decoder played the pedal.
    A critic that dislikes repeated pitches makes the window play walks; without a critic the draw with the best
    fit wins; a bar that is not open keeps the line's notes."""
    lib = _library(WALK, PEDAL)
    walk, pedal = _bar(_shift(WALK, 20)), _bar(_shift(PEDAL, 20))
    p1 = np.where(pedal, 0.5, 0.02) + np.where(walk & ~pedal, 0.45, 0.0)
    p = np.tile(p1, (1, 4)).astype(np.float32)
    window = np.zeros((3, P, 4 * BAR), dtype=bool)
    window[1] = np.tile(pedal, (1, 4))
    cfg = UnitConfig(draws=64, temperature=0.2, w_critic=1.0)

    class Repeats:  # log-odds of "the decoder's" rising with the share of repeated pitches (realism feature)
        def logit_fake(self, features):
            from stemfill.evaluation.realism import feature_names
            return 20.0 * features[:, feature_names("bass").index("interval/0")]

    open_ = np.array([True, True, False, True])
    got = decode_units(lib, Repeats(), cfg, window, 1, p, open_, np.random.default_rng(0))
    assert (got[:, 2 * BAR:3 * BAR] == window[1, :, 2 * BAR:3 * BAR]).all()
    for b in (0, 1, 3):
        assert (got[:, b * BAR:(b + 1) * BAR] == walk).all(), b
    plain = decode_units(lib, None, cfg, window, 1, p, open_, np.random.default_rng(0))
    outs, fit = unit_draws(lib, cfg, window[1], p, open_, np.random.default_rng(0), cfg.draws)
    assert (plain == outs[np.argmax(fit)]).all()
    assert (outs[0] == window[1]).all()  # the first draw is the decoder's part itself


def test_the_shipped_model_folder_decodes_bass_and_guitar_by_units(tmp_path):
    """The shipped model's sampling turns units on where its folder holds the libraries; known cells come back
    exactly; a folder without a stem's library decodes that stem without units; bad settings are refused."""
    from stemfill.pianoroll import fill as F
    from stemfill.pianoroll.model import default_model_path, load_model

    model = load_model(default_model_path(), device="cpu")
    cfg = json.loads((default_model_path() / "config.json").read_text())
    assert cfg["sampling"]["units"] == [False, True, True]
    assert sorted(F.unit_decoders(model)) == [1, 2]
    rng = np.random.default_rng(3)
    rolls = np.zeros((2, 3, P, 4 * BAR), dtype=bool)
    for t in range(0, 4 * BAR, 12):
        rolls[:, 0, 1, t] = True  # a snare on every beat
        rolls[:, 2, 20 + rng.integers(0, 5), t:t + 10] = True  # guitar quarter notes
    for known in ([True, False, True], [True, False, False]):
        out = F.fill_chunks(model, rolls, np.array([known] * 2), seed=0)
        assert (out[:, 0] == rolls[:, 0]).all() and out[:, 1].any()
        assert (out[:, 2] == rolls[:, 2]).all() if known[2] else out[:, 2].any()
    bare = tmp_path / "bare"
    shutil.copytree(default_model_path(), bare, ignore=shutil.ignore_patterns("guitar-patterns.npz"))
    assert sorted(F.unit_decoders(load_model(bare, device="cpu"))) == [1]  # no guitar library: cells
    cfg["sampling"]["unit_config"] = {"bass": {"keepp": 1}}
    (bare / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(StemfillError, match="unit_config"):
        F.unit_decoders(load_model(bare, device="cpu"))
