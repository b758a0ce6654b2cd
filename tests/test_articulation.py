"""One articulation per window for the new bass and guitar (stemfill/generate/articulation.py), on rolls built
here: note starts and pitches kept, lengths moved toward the target, known steps untouched, files refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stemfill.errors import StemfillError
from stemfill.evaluation.metrics import notes, onsets
from stemfill.generate.articulation import (ArticulationModel, free_notes, load_articulation, train_articulation,
                                            window_means)

P, L = 24, 192


def _roll(spec) -> np.ndarray:
    x = np.zeros((P, L), dtype=bool)
    for r, a, e in spec:
        x[r, a:e] = True
    return x


EIGHTHS = [(r, t, t + 3) for t, r in zip(range(0, L, 6), [5, 7, 9, 10] * 8)]  # clipped eighths, a line
HELD = [(r, t, t + 22) for t, r in zip(range(0, L, 24), [5, 7, 9, 10] * 2)]  # near-legato half notes


def _model(decoded, real, **kw) -> ArticulationModel:
    return ArticulationModel("bass", np.asarray(decoded, float), np.asarray(real, float), **kw)


def _mean_log_length(x: np.ndarray) -> float:
    return float(window_means(x[None], "bass")[0][0])


def test_a_window_moves_to_the_players_spread_keeping_every_start_and_pitch():
    """The quantile map spreads the decoder's window means onto the real ones: a short window gets shorter, a
    held one longer; starts and rows stay; nothing is held past the part's next start."""
    m = _model([1.0, 3.0, 5.0], [0.0, 3.0, 6.0], strength=1.0, short=1.0)
    free = np.ones(L, dtype=bool)
    for spec, longer in ((EIGHTHS, False), (HELD, True)):
        x = _roll(spec)
        y = m.apply(x, free)
        assert (onsets(y[None], "bass") == onsets(x[None], "bass")).all()
        before, after = _mean_log_length(x), _mean_log_length(y)
        assert (after > before + 0.1) if longer else (after < before - 0.1)
        _, _, t, d = notes(y[None], "bass")
        if longer:  # the target (36 steps) is past the room: every note is held up to the next start
            assert (d == 24).all()
        else:
            assert abs(after - m.target(before)) < 0.35  # lengths are whole steps
        order = np.argsort(t)
        assert ((t + d)[order][:-1] <= t[order][1:]).all()  # a line stays a line


def test_a_model_that_maps_the_mean_to_itself_leaves_the_part_alone():
    x = _roll(EIGHTHS)
    assert (_model([0.0, 8.0], [0.0, 8.0]).apply(x, np.ones(L, bool)) == x).all()
    assert (_model([0.0, 8.0], [8.0, 8.0], strength=0.0).apply(x, np.ones(L, bool)) == x).all()


def test_known_steps_are_never_touched_and_bound_the_notes_before_them():
    """Notes reaching into known steps keep their length; a free note is never held into a known step."""
    x = _roll(HELD)
    free = np.ones(L, dtype=bool)
    free[96:120] = False  # a known stretch in the middle of the third note
    m = _model([0.0, 8.0], [8.0, 8.0], strength=1.0)  # hold everything as long as it can
    y = m.apply(x, free)
    assert (y[:, ~free] == x[:, ~free]).all()
    r, t, d, room = free_notes(x, free, ring=False)
    assert 96 not in t and (t + room <= np.where(t < 96, 96, L)).all()
    assert y[10, 72:96].all() and y[10, 96:120].sum() == 0  # the note before it is held up to it, not into it


def test_ring_lets_a_chord_tone_sound_under_the_next_strum():
    x = _roll([(5, 0, 4), (9, 0, 4), (12, 12, 16), (5, 24, 28)])  # row 9 has nothing after it
    m = ArticulationModel("guitar", np.array([0.0, 8.0]), np.array([8.0, 8.0]), 1.0, 2.0, ring=True)
    y = m.apply(x, np.ones(L, bool))
    assert y[9, 4:L].all()  # rings to the window's end
    assert y[5, 0:23].all() and not y[5, 23] and y[5, 24]  # held up to its own row's next note, which keeps its start
    plain = ArticulationModel("guitar", np.array([0.0, 8.0]), np.array([8.0, 8.0]), 1.0, 2.0, ring=False)
    assert not plain.apply(x, np.ones(L, bool))[9, 12]  # without ring: stops at the next strum


def test_an_articulation_file_round_trips_and_bad_ones_are_refused_in_one_line(tmp_path):
    m = train_articulation("guitar", np.random.default_rng(0).normal(2.4, 0.7, 500),
                           np.random.default_rng(1).normal(2.4, 1.1, 500), 0.7, 2.0, True, {"split": "train"})
    p = m.save(tmp_path / "guitar-articulation.json")
    back = load_articulation(p, "guitar")
    assert back.ring and back.strength == 0.7 and np.allclose(back.real, m.real, atol=1e-5)
    assert back.target(2.4) == pytest.approx(m.target(2.4), abs=1e-4)
    with pytest.raises(StemfillError, match="not of the bass") as e:
        load_articulation(p, "bass")
    assert str(e.value).startswith(str(p)) and "\n" not in str(e.value)
    d = json.loads(p.read_text())
    for bad, words in (({**d, "format": "x"}, "format"), ({**d, "real": [1.0]}, "quantile tables"),
                       ({**d, "decoded": d["decoded"][::-1]}, "increasing")):
        p.write_text(json.dumps(bad))
        with pytest.raises(StemfillError, match=words):
            load_articulation(p)
    p.write_text("{")
    with pytest.raises(StemfillError, match="not a stemfill articulation model"):
        load_articulation(p)
    with pytest.raises(StemfillError, match="too few"):
        train_articulation("bass", np.zeros(1), np.zeros(5), 0.7, 2.0, False, {})


def test_the_shipped_model_holds_its_notes_as_one_articulation_a_window(tmp_path):
    """The shipped model's sampling turns the articulation on where its folder holds the files: the new parts
    keep the starts and pitches they have without it, known channels come back exactly, only lengths change;
    a folder without the files decodes as before."""
    import shutil

    from stemfill.pianoroll import fill as F
    from stemfill.pianoroll.model import default_model_path, load_model

    model = load_model(default_model_path(), device="cpu")
    cfg = json.loads((default_model_path() / "config.json").read_text())
    assert cfg["sampling"]["articulation"] == [False, True, True]
    assert sorted(F.articulation_models(model)) == [1, 2]
    rng = np.random.default_rng(5)
    rolls = np.zeros((3, 3, 48, L), dtype=bool)
    for t in range(0, L, 12):
        rolls[:, 0, 1 if t % 24 else 0, t] = True  # kick and snare on the beats
        rolls[:, 2, 20 + rng.integers(0, 5), t:t + 10] = True  # guitar quarter notes
    bare = tmp_path / "bare"
    shutil.copytree(default_model_path(), bare, ignore=shutil.ignore_patterns("*-articulation.json"))
    plain = load_model(bare, device="cpu")
    assert F.articulation_models(plain) == {}
    for known in ([True, False, True], [True, False, False]):
        k = np.array([known] * 3)
        out, ref = F.fill_chunks(model, rolls, k, seed=0), F.fill_chunks(plain, rolls, k, seed=0)
        for c in range(3):
            if known[c]:
                assert (out[:, c] == rolls[:, c]).all()
            else:  # only the lengths change, after both parts are chosen
                stem = ("drums", "bass", "guitar")[c]
                assert (onsets(out[:, c], stem) == onsets(ref[:, c], stem)).all()
        assert (out != ref).any()  # the lengths moved somewhere
