"""Metrics on hand-made rolls with values worked out by hand (docs/evaluation.md has the definitions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stemfill.evaluation import metrics as M

P = 48
BAR = 48  # 4 beats x 12 steps


def bass_roll() -> np.ndarray:
    """3 bars. Bar 1: C (row 0) and E (row 16) steps 0-11, G (row 7) steps 12-13. Bar 2: E (row 4) 48-59. Bar 3 empty."""
    x = np.zeros((P, 3 * BAR), dtype=bool)
    x[0, 0:12] = x[16, 0:12] = True
    x[7, 12:14] = True
    x[4, 48:60] = True
    return x


def drum_roll() -> np.ndarray:
    """2 bars. Bar 1: kick 0, 24; snare 12, 36 and an off-grid snare at 1; closed hat every 8th. Bar 2 empty."""
    x = np.zeros((P, 2 * BAR), dtype=bool)
    x[0, [0, 24]] = True
    x[1, [1, 12, 36]] = True
    x[4, 0:48:6] = True
    return x


def test_pitched_statistics_by_hand():
    x = bass_roll()
    assert M.empty_bar_rate(x) == pytest.approx(1 / 3)
    assert M.used_pitch_classes(x, "bass") == pytest.approx((3 + 1 + 0) / 3)  # {C,E,G}, {E}, {}
    assert M.qualified_note_rate(x) == pytest.approx(3 / 4)  # durations 12, 12, 2, 12
    assert M.note_density(x, "bass") == pytest.approx(4 / 3)
    assert M.polyphony(x) == pytest.approx((2 * 12 + 2 + 12) / (12 + 2 + 12))
    assert M.pitch_range(x) == 16
    # onset patterns: bar 1 {0, 12}, bar 2 {0}, bar 3 {} -> one differing step per pair
    assert M.groove_consistency(x, "bass") == pytest.approx(1 - 1 / 48)


def test_drum_statistics_by_hand():
    x = drum_roll()
    assert M.empty_bar_rate(x) == pytest.approx(0.5)
    assert M.used_pitch_classes(x, "drums") == pytest.approx(1.5)  # 3 kit classes, then none
    assert M.drum_pattern_rate(x) == pytest.approx(12 / 13)  # the hit at step 1 is off the 16th grid
    assert M.note_density(x, "drums") == pytest.approx(13 / 2)
    assert M.polyphony(x) == pytest.approx(13 / 9)  # 13 hits on 9 distinct steps
    assert M.groove_consistency(x, "drums") == pytest.approx(1 - 9 / 48)


def test_empty_roll_gives_defined_values():
    x = np.zeros((P, 2 * BAR), dtype=bool)
    with np.errstate(all="raise"):
        assert M.empty_bar_rate(x) == 1.0
        assert M.used_pitch_classes(x, "guitar") == 0.0
        assert M.qualified_note_rate(x) == 0.0
        assert M.drum_pattern_rate(x) == 0.0
        assert M.note_density(x, "bass") == 0.0
        assert M.polyphony(x) == 0.0
        assert M.pitch_range(x) == 0.0
        assert M.groove_consistency(x, "bass") == 1.0  # two identical (silent) bars
        assert math.isnan(M.groove_consistency(np.zeros((P, BAR), bool), "bass"))  # needs two full bars
        assert math.isnan(M.tonal_distance(x, x))
        assert math.isnan(M.bass_root_agreement(x, x))
        assert M.onset_f1(x, "bass", x, "drums") == 1.0  # both empty agree
        assert M.frame_f1(x, bass_roll()[:, :96]) == 0.0
        assert M.pc_beat_f1(x, x) == 1.0
    stats = M.stem_stats(x[None], "bass")
    assert set(stats) == set(M.STATS["bass"])


def test_tonal_distance_by_hand():
    bass = np.zeros((P, 2 * BAR), dtype=bool)
    gtr = np.zeros_like(bass)
    bass[0, :] = True  # C in both bars
    gtr[12, :BAR] = True  # C an octave up in bar 1: same centroid
    gtr[6, BAR:] = True  # F# in bar 2: the opposite point of all three circles
    # phi(C) = (0, 1, 0, 1, 0, .5), phi(F#) = (0, -1, 0, -1, 0, .5): distance sqrt(8)
    assert M.tonal_distance(bass[:, :BAR], gtr[:, :BAR]) == pytest.approx(0.0, abs=1e-12)
    assert M.tonal_distance(bass[:, BAR:], gtr[:, BAR:]) == pytest.approx(math.sqrt(8))
    assert M.tonal_distance(bass, gtr) == pytest.approx(math.sqrt(8) / 2)
    gtr[:, BAR:] = False  # bar 2 no longer counts
    assert M.tonal_distance(bass, gtr) == pytest.approx(0.0, abs=1e-12)


def test_onset_f1_and_context():
    bass = np.zeros((P, BAR), dtype=bool)
    bass[0, 0:10] = True
    bass[0, 12:20] = True  # onsets at 0, 12 -> 16th cells 0, 4
    drums = np.zeros_like(bass)
    drums[0, [0, 6]] = True  # cells 0, 2
    assert M.onset_f1(bass, "bass", drums, "drums") == pytest.approx(0.5)
    gtr = np.zeros_like(bass)
    gtr[3, 13:20] = True  # onset at 13 -> cell 4 (same 16th as 12)
    assert M.context_onset_f1(bass, "bass", {"drums": drums, "guitar": gtr}) == pytest.approx(2 * 2 / (2 + 3))


def test_bass_root_agreement_and_agreement_f1():
    bass = np.zeros((P, BAR), dtype=bool)
    bass[0, 0:12] = True  # beat 1: C
    bass[7, 12:24] = True  # beat 2: G
    bass[2, 24:36] = True  # beat 3: D (no guitar)
    gtr = np.zeros_like(bass)
    gtr[[4, 7], 0:12] = True  # beat 1: lowest E
    gtr[[7, 11], 12:24] = True  # beat 2: lowest G
    assert M.bass_root_agreement(bass, gtr) == pytest.approx(0.5)
    real = np.zeros_like(bass)
    real[0, 0:12] = True
    real[14, 12:24] = True  # D an octave up
    real[2, 36:48] = True
    # (beat, pc): gen {(0,C),(1,G),(2,D)}, real {(0,C),(1,D),(3,D)} -> tp 1
    assert M.pc_beat_f1(bass, real) == pytest.approx(2 * 1 / 6)
    assert M.frame_f1(bass, real) == pytest.approx(2 * 12 / (36 + 36))
    assert M.onset_f1(bass, "bass", real, "bass") == pytest.approx(2 * 2 / 6)  # cells {0,4,8} vs {0,4,12}


def test_pc_f1_in_any_key():
    """The same riff a minor third up scores 0 pc F1 but 1 in any key; a part that plays every pitch
    class on every beat (hedging) scores the same in any key as in the real one."""
    real = np.zeros((P, BAR), dtype=bool)
    real[4, 0:12] = real[9, 12:24] = real[11, 24:36] = True  # E, A, B
    up = np.roll(real, 3, axis=0)  # G, C, D
    assert M.pc_beat_f1(up, real) == 0.0
    assert M.pc_beat_f1_any_key(up, real) == pytest.approx(1.0)
    half = up.copy()
    half[14, 24:36] = False  # drop the D: 2 of 3 beats
    assert M.pc_beat_f1_any_key(half, real) == pytest.approx(2 * 2 / 5)
    every = np.zeros_like(real)
    every[0:12, 0:48] = True
    assert M.pc_beat_f1_any_key(every, real) == pytest.approx(M.pc_beat_f1(every, real))
    assert M.pc_beat_f1_any_key(np.stack([up, real]), np.stack([real, real])).tolist() == [1.0, 1.0]


def test_batched_equals_single():
    x = np.stack([bass_roll(), np.zeros_like(bass_roll()), np.roll(bass_roll(), 5, axis=1)])
    for f in (M.empty_bar_rate, M.qualified_note_rate, M.polyphony, M.pitch_range):
        assert np.allclose(f(x), [f(r) for r in x])
    assert np.allclose(M.used_pitch_classes(x, "bass"), [M.used_pitch_classes(r, "bass") for r in x])


def test_note_values():
    v = M.note_values(bass_roll(), "bass")
    assert sorted(v["pitch"]) == [24, 28, 31, 40]
    assert sorted(v["duration"]) == [2, 12, 12, 12]
    assert list(v["ioi"]) == [12, 36]  # distinct onset times 0, 12, 48
    d = M.note_values(drum_roll(), "drums")
    assert "duration" not in d and sorted(set(d["pitch"])) == [0, 1, 4]
    assert list(d["ioi"]) == [1, 5, 6, 6, 6, 6, 6, 6]  # 0, 1, 6, 12, ..., 42


def test_overlap_area():
    g = M.OA_GRID["pitch"]
    a = np.array([40.0, 43, 45, 47, 50, 52])
    assert M.overlap_area(a, a, g) == pytest.approx(1.0, abs=1e-6)
    assert M.overlap_area(a, a + 60, g) == pytest.approx(0.0, abs=1e-3)
    assert 0.0 < M.overlap_area(a, a + 3, g) < 1.0
    assert M.overlap_area([], [], g) == 1.0
    assert M.overlap_area(a, [], g) == 0.0
    # degenerate samples (one value, all equal) do not raise
    assert M.overlap_area([40.0], [40.0, 40.0], g) == pytest.approx(1.0, abs=1e-6)


def test_frechet_distance():
    y = np.array([[0.0], [2.0]])  # mean 1, std 1 -> standardised (-1, 1), covariance 2
    x = np.array([[2.0], [4.0]])  # standardised (1, 3), covariance 2
    assert M.frechet_distance(x, y) == pytest.approx(4.0)  # means 2 vs 0: 2^2 + 2 + 2 - 2*sqrt(2*2)
    assert M.frechet_distance(y, y) == pytest.approx(0.0, abs=1e-9)
    z = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])  # constant features: singular covariance
    assert np.isfinite(M.frechet_distance(z, z)) and M.frechet_distance(z, z) == pytest.approx(0.0, abs=1e-6)
    assert np.isfinite(M.frechet_distance(np.array([[1.0, 2.0]]), np.array([[1.0, 2.0]])))  # one row each


def test_score_stem_keys():
    out = np.zeros((2, 3, P, 2 * BAR), dtype=bool)
    out[:, 0, 0, ::24] = True
    out[:, 1, 0, :10] = True
    out[:, 2, [4, 7], :10] = True
    res = M.score_stem(out, out, 1)
    for k in ("stat/EB/gen", "stat/EB/real", "stat/EB/absdiff", "fit/TD", "fit/root_agree",
              "fit/onset_F1_context", "fit/groove_mix", *M.AGREEMENT):
        assert res[k].shape == (2,)
    assert np.allclose([res[k] for k in M.AGREEMENT], 1.0)
    drums = M.score_stem(out, out, 0)
    assert "fit/TD" not in drums and "agree/pc_beat_F1" not in drums and "stat/DP/gen" in drums
