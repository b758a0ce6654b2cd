import pytest

from stemfill.song.song import Note, Song, SongError, TempoChange, TimeSignature, Track
from stemfill.song.stems import classify_track, stems_present


def test_validation_names_the_field():
    with pytest.raises(SongError, match="duration"):
        Track("Bass", 33, notes=[Note(0, 0, 40)])
    with pytest.raises(SongError, match="program"):
        Track("x", program=200)
    with pytest.raises(SongError, match="tempo"):
        Song([], tempos=[TempoChange(0, 0.0)])
    with pytest.raises(SongError, match="denominator"):
        Song([], time_signatures=[TimeSignature(0, 4, 3)])


def test_bars_and_seconds_follow_meter_and_tempo():
    t = Track("g", 29, notes=[Note(0, 960 * 12, 52)])
    s = Song([t], tempos=[TempoChange(0, 120.0), TempoChange(960 * 4, 60.0)],
             time_signatures=[TimeSignature(0, 4, 4), TimeSignature(960 * 8, 3, 4)])
    assert s.bar_starts() == [0, 3840, 7680, 7680 + 2880]
    assert s.n_bars == 4
    assert s.seconds(960 * 4) == pytest.approx(2.0)
    assert s.seconds(960 * 5) == pytest.approx(3.0)


def test_classification():
    assert classify_track(Track("Kit", is_drum=True)) == "drums"
    assert classify_track(Track("Fingered", program=33)) == "bass"
    assert classify_track(Track("Overdrive", program=29)) == "guitar"
    assert classify_track(Track("Piano", program=0)) == "other"
    assert classify_track(Track("Bass", program=25, tuning=(43, 38, 33, 28))) == "bass"
    assert classify_track(Track("Track 1", program=25, tuning=(43, 38, 33, 28))) == "bass"
    assert classify_track(Track("Track 2", program=25, tuning=(64, 59, 55, 50, 45, 40))) == "guitar"
    s = Song([Track("b", 33, notes=[Note(0, 10, 40)]), Track("p", 0, notes=[Note(0, 10, 60)]), Track("g", 27)])
    assert stems_present(s) == ["bass"]


def test_vocals_on_a_guitar_program_are_not_guitar():
    assert classify_track(Track("Bg Vocals", program=26)) == "other"
    assert classify_track(Track("Lead Guitar", program=29)) == "guitar"
    assert classify_track(Track("Melody", program=33)) == "other"
    assert classify_track(Track("Lead Vocals", program=29)) == "other"


def test_meter_change_at_the_end_opens_no_bar():
    s = Song([Track("g", 29, notes=[Note(0, 3840, 52)])], time_signatures=[TimeSignature(0, 4, 4), TimeSignature(3840, 3, 4)])
    assert s.bar_starts() == [0]


def test_atomic_outputs_get_ordinary_permissions(tmp_path):
    import os

    from stemfill.files import atomic_path, atomic_write_bytes

    atomic_write_bytes(tmp_path / "a.bin", b"x")
    with atomic_path(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"y")
    umask = os.umask(0)
    os.umask(umask)
    for name in ("a.bin", "b.bin"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.bin"]
