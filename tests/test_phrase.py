"""Phrase measures (crash on the phrase downbeat, fill rate, density contour), Note-F1 as USMA defines it,
and the band evaluation split, on hand-made rolls and a hand-made chunk folder."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from stemfill.datasets.chunks import BAND, in_split, load_chunks, save_shard
from stemfill.errors import StemfillError
from stemfill.evaluation import metrics as M
from stemfill.evaluation import phrase as PH

P = 48
BAR = 48
PHRASE = 4 * BAR
KICK, SNARE, HAT, LOW_TOM, MID_TOM, CRASH, CHINA = 0, 1, 4, 7, 8, 10, 13


def drums(T: int) -> np.ndarray:
    return np.zeros((P, T), dtype=bool)


# --------------------------------------------------------------------------- crash on the phrase downbeat


def test_phrase_downbeats_every_four_bars_from_the_start():
    assert PH.phrase_downbeats(0).tolist() == []
    assert PH.phrase_downbeats(1).tolist() == [0]
    assert PH.phrase_downbeats(2 * PHRASE).tolist() == [0, PHRASE]
    assert PH.phrase_downbeats(2 * PHRASE + 1).tolist() == [0, PHRASE, 2 * PHRASE]


def test_crash_on_downbeat_within_one_step():
    x = drums(3 * PHRASE)
    x[CRASH, 0] = True  # on the downbeat
    x[CHINA, PHRASE + 1] = True  # a china one step late counts
    x[CRASH, 2 * PHRASE + 2] = True  # two steps late does not
    x[CRASH, BAR] = True  # a crash on a bar that starts no phrase does not count for anything
    assert PH.crash_on_downbeat_rate(x) == pytest.approx(2 / 3)
    c = PH.phrase_counts(x)
    assert (c.downbeats, c.crash_downbeats) == (3, 2)
    early = drums(2 * PHRASE)
    early[CRASH, PHRASE - 1] = True  # one step early
    assert PH.crash_on_downbeat_rate(early) == pytest.approx(1 / 2)
    assert PH.crash_on_downbeat_rate(early, tolerance=0) == 0.0


def test_crash_rate_of_nothing_is_nan():
    assert math.isnan(PH.crash_on_downbeat_rate(drums(0)))
    assert PH.crash_on_downbeat_rate(drums(10)) == 0.0  # one downbeat, no crash


# --------------------------------------------------------------------------- fills


def two_phrases_with_snare_fills() -> np.ndarray:
    """2 phrases: a snare on every beat, except the last beat of each phrase: three snares (a fill)."""
    x = drums(2 * PHRASE)
    x[SNARE, ::12] = True
    for end in (PHRASE, 2 * PHRASE):
        x[SNARE, end - 12:end] = False
        x[SNARE, [end - 12, end - 8, end - 4]] = True
    return x


def test_fill_rate_and_phrase_end_fills_by_hand():
    x = two_phrases_with_snare_fills()
    c = PH.phrase_counts(x)
    assert (c.end_beats, c.end_hits, c.other_beats, c.other_hits) == (2, 6, 30, 30)
    assert c.end_hits_per_beat == pytest.approx(3.0)
    assert c.other_hits_per_beat == pytest.approx(1.0)
    assert PH.fill_rate(x) == pytest.approx(3.0)
    # bars 3 and 7 end in a fill (3 snare hits in the last beat); the other six end in one snare hit
    assert PH.bar_fills(x).tolist() == [False, False, False, True] * 2
    assert PH.phrase_end_fill_share(x) == 1.0
    assert c.other_fill_share == 0.0


def test_tom_fill_and_the_controls_definition():
    x = drums(PHRASE)
    x[LOW_TOM, PHRASE - 20] = x[MID_TOM, PHRASE - 4] = True  # toms twice in the last two beats: a fill
    assert PH.bar_fills(x).tolist() == [False, False, False, True]
    y = drums(PHRASE)
    y[LOW_TOM, PHRASE - 4] = True  # one tom: no fill
    y[KICK, PHRASE - 8:PHRASE] = True  # kicks are not snare or toms
    assert not PH.bar_fills(y).any()
    assert PH.phrase_counts(y).end_hits == 1


def test_partial_phrases_and_bars_are_left_out_of_fills():
    x = drums(PHRASE + 30)  # a whole phrase and 30 steps: two beats more and half of one
    c = PH.phrase_counts(x)
    assert (c.end_beats, c.other_beats) == (1, 17)
    assert (c.end_bars, c.other_bars) == (1, 3)
    assert c.downbeats == 2
    assert math.isnan(PH.fill_rate(x))  # no snare or tom elsewhere: undefined
    assert math.isnan(PH.phrase_end_fill_share(drums(3 * BAR)))  # no whole phrase


def test_counts_pool_over_songs():
    a = PH.phrase_counts(two_phrases_with_snare_fills())
    b = PH.phrase_counts(drums(PHRASE))
    both = a + b
    assert both.downbeats == 3 and both.end_beats == 3 and both.other_beats == 45
    assert both.fill_rate == pytest.approx((6 / 3) / (30 / 45))


# --------------------------------------------------------------------------- density contour


def test_density_contour_correlation():
    real = drums(4 * BAR)
    for bar, n in enumerate((1, 2, 3, 4)):
        real[HAT, bar * BAR:bar * BAR + 12 * n:12] = True
    louder = drums(4 * BAR)
    for bar, n in enumerate((2, 4, 6, 8)):
        louder[HAT, bar * BAR:bar * BAR + 6 * n:6] = True
    assert PH.bar_density(real, "drums").tolist() == [1, 2, 3, 4]
    assert PH.density_contour_corr(louder, real, "drums") == pytest.approx(1.0)
    assert PH.density_contour_corr(real[:, ::-1], real, "drums") < 0  # the contour reversed
    flat = drums(4 * BAR)
    flat[HAT, ::BAR] = True
    assert math.isnan(PH.density_contour_corr(flat, real, "drums"))  # constant: undefined
    assert math.isnan(PH.density_contour_corr(drums(BAR), drums(BAR), "drums"))  # one bar


def test_density_counts_note_starts_and_a_partial_last_bar():
    bass = np.zeros((P, BAR + 10), dtype=bool)
    bass[5, 0:60] = True  # one note held over the bar line starts once
    bass[7, BAR + 2:BAR + 4] = True
    assert PH.bar_density(bass, "bass").tolist() == [1, 1]


# --------------------------------------------------------------------------- Note-F1 (USMA)


def test_note_f1_usma_drums_by_hand():
    real, gen = drums(BAR), drums(BAR)
    real[KICK, 0] = real[SNARE, 12] = real[HAT, [0, 6]] = True
    gen[KICK, 2] = True  # step 2 is in the same 16th cell (steps 0-2) as the real kick: a match
    gen[SNARE, 15] = True  # cell 5, the real snare is in cell 4: no match
    gen[HAT, 6] = gen[SNARE, 6] = True  # the hat at 6 matches; a snare there has no partner (pitch counts)
    # 2 matches, 4 filled notes, 4 real notes: F1 = 2 * 2 / (4 + 4)
    assert M.note_f1_usma(gen, real, "drums") == pytest.approx(0.5)
    assert M.note_f1_usma(real, real, "drums") == 1.0


def test_note_f1_usma_matches_one_to_one():
    real, gen = drums(BAR), drums(BAR)
    real[HAT, [0, 1]] = True  # two real hats in one 16th cell
    gen[HAT, 2] = True  # one filled hat there: it matches one of them
    assert M.note_f1_usma(gen, real, "drums") == pytest.approx(2 * 1 / (1 + 2))


def test_note_f1_usma_pitched_counts_starts_and_exact_pitch():
    real = np.zeros((P, BAR), dtype=bool)
    gen = np.zeros((P, BAR), dtype=bool)
    real[4, 0:10] = True  # E, held: one note
    real[16, 12:14] = True  # E an octave up
    gen[4, 0:2] = True  # E, short: duration does not count, a match
    gen[16 + 12, 12:14] = True  # two octaves up: another pitch, no match
    assert M.note_f1_usma(gen, real, "bass") == pytest.approx(0.5)


def test_note_f1_usma_empty_sides_give_zero_as_smg_metrics_does():
    x = drums(BAR)
    x[KICK, 0] = True
    assert M.note_f1_usma(drums(BAR), x, "drums") == 0.0
    assert M.note_f1_usma(x, drums(BAR), "drums") == 0.0
    assert M.note_f1_usma(drums(BAR), drums(BAR), "drums") == 0.0
    batch = np.stack([x, drums(BAR)])
    assert M.note_f1_usma(batch, batch, "drums").tolist() == [1.0, 0.0]


def test_note_f1_usma_segments():
    T = 2 * PHRASE + BAR  # two whole 4-bar segments and one bar
    real = np.zeros((P, T), dtype=bool)
    gen = np.zeros((P, T), dtype=bool)
    real[4, 0:12] = gen[4, 0:12] = True  # segment 0: perfect
    real[4, PHRASE - 6:PHRASE + 6] = True  # a real note held across the boundary starts in segment 0 only
    gen[9, PHRASE + 24:PHRASE + 30] = True  # segment 1: nothing real starts there
    real[2, 2 * PHRASE:2 * PHRASE + 3] = True  # segment 2 (partial): a real note, nothing filled
    f = M.note_f1_usma_segments(gen, real, "bass")
    assert f.shape == (3,)
    assert f[0] == pytest.approx(2 * 1 / (1 + 2))
    assert math.isnan(f[1])  # undefined: no real note starts there
    assert f[2] == 0.0
    assert np.nanmean(f) == pytest.approx((2 / 3 + 0) / 2)


# --------------------------------------------------------------------------- the band split


def band_folder(tmp_path):
    """A chunk folder with one-chunk songs from several input folders and splits."""
    songs = []
    spec = [("../x/onyxite", "a.mid", "test", ["drums", "bass"]),
            ("../x/onyxite", "b.mid", "train", ["drums", "bass"]),
            ("../x/guitarpro", "c.gp5", "train", ["drums", "bass", "guitar"]),
            ("../x/guitarpro", "d.gp5", "valid", ["drums", "guitar"]),
            ("../x/guitarpro", "e.gp5", "test", ["guitar"]),  # one stem: not a band song
            ("../x/guitarpro-modern", "f.gp", "test", ["drums", "bass"]),  # never in the band split
            ("../x/corpus", "g.mid", "test", ["drums", "bass"]),
            ("../x/corpus", "h.mid", "train", ["drums", "bass"])]
    (tmp_path / "shards").mkdir()
    for i, (root, path, split, stems) in enumerate(spec):
        roll = np.zeros((1, 3, P, PHRASE), dtype=bool)
        roll[0, 0, 0, i] = roll[0, 1, 0, i] = True
        shard = f"shards/{i:016x}.npz"
        save_shard(tmp_path / shard, roll, np.zeros(1, dtype=np.int64))
        songs.append({"id": f"{i:016x}", "path": path, "root": root, "hash": f"{i:064x}", "split": split,
                      "stems": stems, "n_chunks": 1, "shard": shard})
    (tmp_path / "manifest.json").write_text(json.dumps({"config": {"format": 2}, "songs": songs, "skipped": []}))
    return tmp_path


def _names(ch) -> list[str]:
    return sorted(ch.songs[i]["path"] for i in set(ch.song_index.tolist()))


def test_band_split_selects_onyxite_test_and_multitrack_guitarpro(tmp_path):
    root = band_folder(tmp_path)
    assert _names(load_chunks(root, BAND)) == ["a.mid", "c.gp5", "d.gp5"]
    # the splits convert assigned are read as before
    assert _names(load_chunks(root, "test")) == ["a.mid", "e.gp5", "f.gp", "g.mid"]
    assert _names(load_chunks(root, "train")) == ["b.mid", "c.gp5", "h.mid"]
    # a baseline scored on the band split draws from train without the band's songs
    assert _names(load_chunks(root, "train", exclude=BAND)) == ["b.mid", "h.mid"]
    assert _names(load_chunks(root, "test", roots=("onyxite", "guitarpro"))) == ["a.mid", "e.gp5"]
    assert not in_split({"root": "../x/guitarpro-modern", "split": "test", "stems": ["drums", "bass"]}, BAND)
    with pytest.raises(StemfillError, match="unknown split"):
        load_chunks(root, "bands")
    with pytest.raises(StemfillError, match="in folders midi"):
        load_chunks(root, "test", roots=("midi",))
