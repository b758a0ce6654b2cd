"""Fretting: tunings chosen for a part's range, playable strings and frets, and the GP5 writer using them."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from stemfill.song.fretting import (
    BASS_TUNINGS,
    GUITAR_TUNINGS,
    MAX_SPAN,
    choose_tuning,
    fret_notes,
    tuning_name,
)
from stemfill.song.guitarpro import read_guitarpro, write_guitarpro
from stemfill.pianoroll.roll import new_track
from stemfill.song.song import Note, Song, Track

Q = 960
STD = GUITAR_TUNINGS[0][1]
BASS4 = BASS_TUNINGS[0][1]


def line(pitches, step=Q // 2, length=None) -> list[Note]:
    return [Note(k * step, length or step, p) for k, p in enumerate(pitches)]


def chord(pitches, start=0, length=Q) -> list[Note]:
    return [Note(start, length, p) for p in pitches]


def check_playable(notes: list[Note], tuning) -> None:
    """Each note on a string that gives its pitch, frets 0..24, one note per string at a time, shapes in reach."""
    held: dict[int, int] = {}
    by_start: dict[int, list[Note]] = {}
    for n in sorted(notes, key=lambda n: (n.start, n.pitch)):
        assert 1 <= n.string <= len(tuning) and 0 <= n.fret <= 24 and tuning[n.string - 1] + n.fret == n.pitch
        assert held.get(n.string, 0) <= n.start, f"string {n.string} reused while sounding at {n.start}"
        held[n.string] = n.end
        by_start.setdefault(n.start, []).append(n)
    for group in by_start.values():
        stopped = [n.fret for n in group if n.fret > 0]
        assert not stopped or max(stopped) - min(stopped) <= MAX_SPAN


def stopped_span(notes: list[Note]) -> int:
    stopped = [n.fret for n in notes if n.fret > 0]
    return max(stopped) - min(stopped) if stopped else 0


# --- tunings --------------------------------------------------------------------------------------

@pytest.mark.parametrize("low, high, name", [
    (28, 55, "4-string E A D G"), (26, 50, "4-string drop D"), (23, 60, "5-string B E A D G"),
    (21, 45, "5-string drop A"), (28, 70, "6-string B E A D G C"), (24, 71, "6-string B E A D G C"),
])
def test_bass_tuning_follows_the_range(low, high, name):
    assert tuning_name(choose_tuning([low, (low + high) // 2, high], "bass")) == name


@pytest.mark.parametrize("low, high, name", [
    (40, 84, "standard E A D G B E"), (38, 70, "drop D"), (36, 83, "drop C"), (35, 60, "7-string B"),
    (33, 60, "7-string drop A"),
])
def test_guitar_tuning_follows_the_range(low, high, name):
    assert tuning_name(choose_tuning([low, high], "guitar")) == name


def test_other_parts_get_strings_that_hold_their_range():
    piano = choose_tuning([21, 60, 108], "other")
    assert len(piano) == 7 and min(piano) == 21 and max(piano) + 24 >= 108
    assert choose_tuning([50, 70], "other") == STD  # a part that fits a guitar is tabbed as one
    assert choose_tuning([10, 40], "bass") in [t for _, t in BASS_TUNINGS]  # out of reach: the most notes fit
    assert choose_tuning([], "bass") == BASS4


# --- fingerings -----------------------------------------------------------------------------------

def test_open_chords_take_their_open_shapes():
    e_major = fret_notes(chord([40, 47, 52, 56, 59, 64]), STD).notes
    assert [(n.string, n.fret) for n in e_major] == [(6, 0), (5, 2), (4, 2), (3, 1), (2, 0), (1, 0)]
    c_major = fret_notes(chord([48, 52, 55, 60, 64]), STD).notes
    assert [(n.string, n.fret) for n in c_major] == [(5, 3), (4, 2), (3, 0), (2, 1), (1, 0)]


def test_a_barre_chord_is_one_shape():
    f_major = fret_notes(chord([41, 48, 53, 57, 60, 65]), STD)
    assert not f_major.dropped and [n.fret for n in f_major.notes] == [1, 3, 3, 2, 1, 1]


def test_a_scale_stays_in_one_position():
    c_major = [48, 50, 52, 53, 55, 57, 59, 60, 62, 64, 65, 67, 65, 64, 62, 60, 59, 57, 55, 53, 52, 50, 48]
    notes = fret_notes(line(c_major), STD).notes
    check_playable(notes, STD)
    assert stopped_span(notes) <= MAX_SPAN and len({n.string for n in notes}) >= 4


def test_bass_low_notes_on_low_strings_and_a_line_in_one_position():
    walk = [28, 32, 35, 36, 33, 37, 40, 38, 26 + 12, 31, 35, 38]
    notes = fret_notes(line(walk), BASS4).notes
    check_playable(notes, BASS4)
    assert notes[0].string == 4 and notes[0].fret == 0  # low E: the open E string
    assert stopped_span(notes) <= MAX_SPAN


def test_a_high_bass_line_moves_little_and_uses_the_neck():
    """The writer before fretting.py put a high bass on the top two strings, frets 0-19, jumping 12 frets."""
    rng = random.Random(3)
    pitches, p = [], 50
    for _ in range(400):
        p = min(max(p + rng.choice([-5, -3, -2, 2, 3, 5, 7, -7]), 40), 64)
        pitches.append(p)
    notes = fret_notes(line(pitches, Q // 2), BASS4).notes
    check_playable(notes, BASS4)
    lows = [n.fret for n in notes if n.fret > 0]
    shifts = [abs(a - b) for a, b in itertools.pairwise(lows)]
    in_hand = sum(1 for a, b in itertools.pairwise(notes) if a.fret == 0 or b.fret == 0 or abs(a.fret - b.fret) <= 3)
    assert in_hand / (len(notes) - 1) > 0.9 and sum(shifts) / len(shifts) < 2.5
    assert all(sum(n.string == s for n in notes) > 0.03 * len(notes) for s in (1, 2, 3, 4))  # all four strings


def test_held_notes_keep_their_strings():
    held = Note(0, 4 * Q, 45)  # a low A held under a melody
    melody = [Note(k * Q // 2, Q // 2, p) for k, p in enumerate([52, 57, 55, 57, 59, 60, 59, 57])]
    fretted = fret_notes([held] + melody, STD)
    check_playable(fretted.notes, STD)
    assert len(fretted.notes) == 9 and not fretted.dropped


def test_an_unplayable_cluster_drops_an_inner_note():
    out = fret_notes(chord([53, 55, 56]), STD)  # F, G, G#: no three strings hold them within 4 frets
    assert [n.pitch for n in out.dropped] == [55]
    assert [n.pitch for n in out.notes] == [53, 56]
    check_playable(out.notes, STD)


def test_more_notes_than_strings_drop_the_fewest_and_keep_bass_and_top():
    out = fret_notes(chord([40, 44, 47, 52, 56, 59, 64, 68]), STD)
    assert len(out.dropped) == 2 and min(n.pitch for n in out.notes) == 40 and max(n.pitch for n in out.notes) == 68
    assert all(n.pitch % 12 in {n.pitch % 12 for n in out.notes} for n in out.dropped)  # doublings go first
    check_playable(out.notes, STD)


def test_octave_moves_and_merged_repeats():
    out = fret_notes([Note(0, Q, 30), Note(Q, Q, 100), Note(2 * Q, Q, 60), Note(2 * Q, Q // 2, 60)], STD)
    assert [(a.pitch, p) for a, p in out.moved] == [(30, 42), (100, 88)]
    assert out.merged == 1 and [n.pitch for n in out.notes] == [42, 88, 60] and out.notes[2].duration == Q
    with pytest.raises(ValueError):
        fret_notes([Note(0, Q, 40)], ())


def test_random_parts_are_always_playable():
    rng = random.Random(0)
    for tuning in (STD, BASS4, BASS_TUNINGS[2][1], GUITAR_TUNINGS[3][1]):
        notes = []
        for k in range(150):
            t = k * 240 * rng.choice([1, 1, 2])
            notes += [Note(t, rng.choice([80, 240, 960]), rng.randint(20, 100)) for _ in range(rng.choice([1, 1, 2, 3, 7]))]
        out = fret_notes(notes, tuning)
        for n in out.notes:
            assert tuning[n.string - 1] + n.fret == n.pitch and 0 <= n.fret <= 24
        by_start: dict[int, list[Note]] = {}
        for n in out.notes:
            by_start.setdefault(n.start, []).append(n)
        for group in by_start.values():
            assert len({n.string for n in group}) == len(group) and stopped_span(group) <= MAX_SPAN
        assert len(out.notes) + len(out.dropped) + out.merged == len(notes)


# --- in the GP5 writer ----------------------------------------------------------------------------

def spans(track: Track) -> list[tuple[int, int, int]]:
    return [(n.start, n.duration, n.pitch) for n in track.notes]


def test_added_parts_get_a_tuning_for_their_range(tmp_path: Path):
    bass = new_track("bass", line([23, 28, 30, 35, 40, 23], Q))  # down to B0: a 5-string
    guitar = new_track("guitar", line([36, 43, 48, 52, 55, 60], Q))  # down to C2: drop C
    said = write_guitarpro(Song(tracks=[bass, guitar]), tmp_path / "t.gp5")
    back = read_guitarpro(tmp_path / "t.gp5")
    assert back.tracks[0].tuning == BASS_TUNINGS[2][1] and back.tracks[1].tuning == GUITAR_TUNINGS[2][1]
    assert spans(back.tracks[0]) == spans(bass) and spans(back.tracks[1]) == spans(guitar)
    assert "Bass (stemfill): tuned 5-string B E A D G" in said and "Guitar (stemfill): tuned drop C" in said
    for t in back.tracks:
        check_playable(t.notes, t.tuning)


def test_midi_tracks_are_fretted_and_tab_tracks_keep_strings_and_capo(tmp_path: Path):
    capo = [Note(0, Q, STD[1] + 2 + 3, string=2, fret=3), Note(Q, Q, STD[5] + 2 + 0, string=6, fret=0)]
    midi = Track("Bass", program=33, notes=line([28, 31, 33, 35], Q))  # no tuning: a MIDI track
    write_guitarpro(Song(tracks=[Track("Guitar", program=27, notes=capo, tuning=STD), midi]), tmp_path / "c.gp5")
    back = read_guitarpro(tmp_path / "c.gp5")
    assert [(n.string, n.fret, n.pitch) for n in back.tracks[0].notes] == [(2, 3, 64), (6, 0, 42)]
    assert back.tracks[1].tuning == BASS4 and spans(back.tracks[1]) == spans(midi)
    check_playable(back.tracks[1].notes, BASS4)


def test_a_note_whose_string_is_taken_goes_to_the_second_voice(tmp_path: Path):
    """Two voices of a tab on one string at once (read from a two-voice tab) stay whole."""
    notes = [Note(0, 2 * Q, 45, string=5, fret=0), Note(Q, Q, 45, string=5, fret=0)]
    write_guitarpro(Song(tracks=[Track("Guitar", program=27, notes=notes, tuning=STD)]), tmp_path / "v.gp5")
    import guitarpro as gp

    tab = gp.parse(str(tmp_path / "v.gp5"))
    assert any(b.notes for b in tab.tracks[0].measures[0].voices[1].beats)
    assert spans(read_guitarpro(tmp_path / "v.gp5").tracks[0]) == [(0, 2 * Q, 45), (Q, Q, 45)]


def test_a_part_no_hand_plays_only_needs_a_string_per_note(tmp_path: Path):
    """A piano written as tab (stem other): wide chords stay whole on a tuning spread over its range."""
    piano = Track("Piano", program=0, notes=chord([36, 43, 52, 60, 67, 76, 84]) + chord([30, 96], start=Q))
    said = write_guitarpro(Song(tracks=[piano]), tmp_path / "p.gp5")
    back = read_guitarpro(tmp_path / "p.gp5").tracks[0]
    assert spans(back) == spans(piano) and len(back.tuning) == 7 and not [s for s in said if "dropped" in s]
    out = fret_notes(chord([60, 61, 62, 63]), STD, hand=False)
    assert not out.dropped and [n.pitch for n in out.notes] == [60, 61, 62, 63]


def test_write_song_reports_what_the_tab_changed(tmp_path: Path):
    from stemfill.song.io import write_song

    lines: list[str] = []
    song = Song(tracks=[new_track("guitar", chord([53, 55, 56]) + [Note(Q, 7, 60)])])
    write_song(song, tmp_path / "r.gp5", report=lines)
    assert lines == ["Guitar (stemfill): tuned standard E A D G B E",
                     "Guitar (stemfill): 1 note dropped from chords no hand can hold",
                     "Guitar (stemfill): times moved to the nearest note value in 1 beat (see docs/guitarpro.md)"]
