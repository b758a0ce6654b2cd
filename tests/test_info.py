"""`stemfill info` and the song_info / song_summary functions behind it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from stemfill.cli import app
from stemfill.song.info import note_name, song_info, song_summary
from stemfill.song.song import Note, Song, TempoChange, TimeSignature, Track

DATA = Path(__file__).resolve().parent / "data"
runner = CliRunner()


def tiny_song() -> Song:
    return Song(
        tracks=[
            Track("Kit", is_drum=True, notes=[Note(0, 60, 36), Note(960, 60, 42)]),
            Track("Bass", program=33, notes=[Note(0, 960, 28), Note(960, 960, 40)]),
            Track("Pad", program=89, notes=[Note(0, 4800, 60)]),
            Track("Empty", program=25),
        ],
        tempos=[TempoChange(0, 120.0), TempoChange(3840, 60.0)],
        time_signatures=[TimeSignature(0, 4, 4), TimeSignature(3840, 3, 4)],
        title="tiny",
    )


def test_note_name():
    assert [note_name(p) for p in (60, 28, 61, 0, 127)] == ["C4", "E1", "C#4", "C-1", "G9"]


def test_song_info_rows():
    rows = song_info(tiny_song())
    assert [(r["index"], r["name"], r["stem"], r["program"], r["drum"], r["notes"]) for r in rows] == [
        (0, "Kit", "drums", 0, True, 2),
        (1, "Bass", "bass", 33, False, 2),
        (2, "Pad", "other", 89, False, 1),
        (3, "Empty", "guitar", 25, False, 0),
    ]
    assert [r["range"] for r in rows] == ["key 36-42", "E1-E2", "C4", ""]
    assert (rows[1]["low"], rows[1]["high"]) == (28, 40)


def test_song_summary():
    s = song_summary(tiny_song())
    assert s["tempos"] == [(0, 120.0), (3840, 60.0)]
    assert s["time_signatures"] == [(0, "4/4"), (3840, "3/4")]
    assert s["bars"] == 2 and s["seconds"] == 3.0  # a 4/4 bar at 120 qpm (2 s), then one beat of 3/4 at 60 (1 s)
    assert s["stems"] == ["drums", "bass"]
    assert (s["tracks"], s["notes"]) == (4, 5)


def test_cli_info_real_file(shared_data):
    res = runner.invoke(app, ["info", str(shared_data / "midi" / "All The Small Things.mid")], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    out = res.output
    for word in ("drums", "bass", "guitar", "By Stellar Ice", "tempo (qpm): 150", "time signature: 4/4", "bars: 102"):
        assert word in out


def test_cli_info_guitar_pro_or_midi_with_markup_in_names(tmp_path):
    from stemfill.song.midi import write_midi

    song = tiny_song()
    song.tracks[1].name = "Bass [bold]"
    write_midi(song, tmp_path / "t.mid")
    res = runner.invoke(app, ["info", str(tmp_path / "t.mid")], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    assert "Bass [bold]" in res.output


def test_cli_info_missing_file(tmp_path):
    res = runner.invoke(app, ["info", str(tmp_path / "nope.mid")])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "nope.mid" in lines[0] and "no such file" in lines[0]


def test_cli_info_broken_files(shared_data):
    # a data byte of 168: read with the byte clipped, and a warning naming the file
    path = shared_data / "midi" / "broken" / "ValueError_Control168.mid"
    res = runner.invoke(app, ["info", str(path)])
    assert res.exit_code == 0, res.output
    assert f"warning: {path}: corrupt data bytes clipped to 127 (control value 168 outside 0..127)" in res.output
    for path in (shared_data / "midi" / "broken" / "Issue104_Bizarre_Love_Triangle2.mid", DATA / "type2.mid",
                 DATA / "empty.mid"):
        res = runner.invoke(app, ["info", str(path)])
        assert res.exit_code == 1, path
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and path.name in lines[0]
