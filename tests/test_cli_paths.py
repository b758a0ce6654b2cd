"""Bad output paths fail early in one line that names the user's path; `--bars` means the same everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import stemfill.pianoroll.fill as fill_module
import stemfill.pianoroll.fast as fast_module
from stemfill.cli import app
from stemfill.errors import StemfillError
from stemfill.song.bars import BarRange, bar_span, parse_bars
from stemfill.song.io import read_song

ROOT = Path(__file__).resolve().parents[1]
RIFF = ROOT / "examples" / "riff.mid"  # 16 bars of 4/4: drums and guitar
runner = CliRunner()


@pytest.fixture
def no_model(monkeypatch):
    """Any model work fails the test: the path checks must come first."""
    def boom(*a, **k):
        raise AssertionError("model work started before the output path was checked")

    monkeypatch.setattr(fast_module, "load_fill_model", boom)
    monkeypatch.setattr(fill_module, "fill_song", boom)


def _one_line_error(r, path) -> str:
    assert r.exit_code == 1, r.output
    line = r.output.strip()
    assert "\n" not in line and line.startswith("error: ") and "Traceback" not in r.output, r.output
    assert str(path) in line, line
    return line


def _cases(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    folder = tmp_path / "folder"
    folder.mkdir()
    return {
        "under a file": (a_file / "out.mid", "a-file is a file, not a folder"),
        "deeper under a file": (a_file / "sub" / "out.mid", "a-file is a file, not a folder"),
        "unwritable place": (Path("/proc/stemfill-no-such/out.mid"), "cannot create files in /proc"),
        "wrong format": (tmp_path / "x.wav", "cannot write '.wav'"),
        "a folder": (folder, "is a folder; give a file name"),
    }


@pytest.mark.parametrize("case", ["under a file", "deeper under a file", "unwritable place", "wrong format",
                                  "a folder"])
def test_midi_bad_output_fails_before_the_model(tmp_path, no_model, case):
    out, why = _cases(tmp_path)[case]
    r = runner.invoke(app, ["midi", str(RIFF), "--add", "bass", "-o", str(out)])
    assert why in _one_line_error(r, out)


@pytest.mark.parametrize("case", ["under a file", "unwritable place", "a folder"])
def test_midi_bad_plot_path_fails_before_the_model(tmp_path, no_model, case):
    out, why = _cases(tmp_path)[case]
    out = out.with_suffix(".png") if case != "a folder" else out
    r = runner.invoke(app, ["midi", str(RIFF), "--add", "bass", "-o", str(tmp_path / "ok.mid"), "--plot", str(out)])
    assert why in _one_line_error(r, out)
    assert not (tmp_path / "ok.mid").exists()


@pytest.mark.parametrize("case", ["under a file", "unwritable place", "a folder"])
def test_plot_bad_output(tmp_path, case):
    out, why = _cases(tmp_path)[case]
    out = out.with_suffix(".png") if case != "a folder" else out
    r = runner.invoke(app, ["plot", str(RIFF), "-o", str(out)])
    assert why in _one_line_error(r, out)


def test_plot_refuses_a_non_png(tmp_path):
    r = runner.invoke(app, ["plot", str(RIFF), "-o", str(tmp_path / "roll.jpg")])
    assert "cannot write '.jpg'; use .png" in _one_line_error(r, tmp_path / "roll.jpg")


def test_convert_output_under_a_file(tmp_path):
    out, why = _cases(tmp_path)["deeper under a file"]
    r = runner.invoke(app, ["convert", str(RIFF), "-o", str(out.parent)])
    assert why in _one_line_error(r, out.parent)


def test_eval_bad_json_and_plot_paths(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    r = runner.invoke(app, ["eval", "--data", str(tmp_path), "--json", str(a_file / "r.json")])
    assert "a-file is a file, not a folder" in _one_line_error(r, a_file / "r.json")
    r = runner.invoke(app, ["eval", "--data", str(tmp_path), "--plot", str(a_file)])
    assert "is a file; the output must be a folder" in _one_line_error(r, a_file)


def test_write_error_names_the_output_not_a_temp_file(tmp_path, monkeypatch):
    """A failure at the write itself (after the checks) still names the user's path, not the hidden temp file."""
    from stemfill.files import atomic_path

    target = tmp_path / "out.mid"
    with pytest.raises(StemfillError) as e:
        with atomic_path(target) as tmp:
            raise PermissionError(13, "Permission denied", str(tmp))
    assert str(e.value).startswith(f"{target}: cannot write") and ".out." not in str(e.value)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- --bars


@pytest.mark.parametrize("text, first, last", [("5", 5, 5), ("5-8", 5, 8), ("5-", 5, None), (" 3-3 ", 3, 3)])
def test_parse_bars(text, first, last):
    r = parse_bars(text)
    assert (r.first, r.last) == (first, last)


@pytest.mark.parametrize("text", ["", "x", "0", "0-3", "5-4", "-3", "1-2-3"])
def test_parse_bars_refuses(text):
    with pytest.raises(StemfillError, match="--bars"):
        parse_bars(text)


def test_bar_range_against_the_song():
    song = read_song(RIFF)
    starts = song.bar_starts()
    assert bar_span(song, "5-") == (starts[4], song.end)
    assert bar_span(song, "5") == (starts[4], starts[5])
    assert bar_span(song, "16") == (starts[15], song.end)
    with pytest.raises(StemfillError, match="the song has 16 bars"):
        bar_span(song, "17-")
    with pytest.raises(StemfillError, match="use 15- for bar 15 to the end"):
        BarRange(15, 20, "15-20").resolve(16)


def test_bars_to_the_end_means_the_same_in_plot_and_midi(tmp_path):
    """`--bars 5-` is bar 5 to the end of the song in both commands."""
    r = runner.invoke(app, ["plot", str(RIFF), "-o", str(tmp_path / "p.png"), "--bars", "5-"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "m.mid"
    r = runner.invoke(app, ["midi", str(RIFF), "--add", "guitar", "--bars", "5-", "-o", str(out)])
    assert r.exit_code == 0, r.output
    song = read_song(RIFF)
    bar5 = song.bar_starts()[4]
    new = read_song(out)
    added = [t for t in new.tracks if t.name.endswith("(stemfill)")]
    assert added and all(n.start >= bar5 for t in added for n in t.notes)
    assert max(n.start for t in added for n in t.notes) >= song.bar_starts()[12]  # reaches the last bars, not bar 5 only
    old_guitar = [t for t in new.tracks if t.notes and not t.is_drum and not t.name.endswith("(stemfill)")]
    assert old_guitar and all(n.start < bar5 for t in old_guitar for n in t.notes)


def test_bars_errors_are_one_line_before_reading(tmp_path):
    r = runner.invoke(app, ["midi", str(tmp_path / "missing.mid"), "--add", "bass", "--bars", "x-"])
    assert re.search(r"--bars 'x-': expected", _one_line_error(r, "--bars"))


# --------------------------------------------------------------------------- what the input did not say


def test_midi_without_a_time_signature_keeps_none(tmp_path):
    """An input with no time-signature event gets none in the filled output (the model still counts 4/4)."""
    import mido

    src = tmp_path / "no-meter.mid"
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    for i in range(32):
        track.append(mido.Message("note_on", channel=9, note=36 if i % 2 == 0 else 38, velocity=100, time=0))
        track.append(mido.Message("note_off", channel=9, note=36 if i % 2 == 0 else 38, time=480))
    mid.save(src)
    out = tmp_path / "out.mid"
    r = runner.invoke(app, ["midi", str(src), "--add", "bass", "--key", "E minor", "-o", str(out)])
    assert r.exit_code == 0, r.output
    metas = [m.type for t in mido.MidiFile(out).tracks for m in t]
    assert "time_signature" not in metas and metas.count("note_on") > 32  # the 32 drum hits and a new bass


def test_notes_a_reader_drops_are_reported(tmp_path):
    """A note-on that never ends cannot be placed: the CLI says so on stderr, naming the file."""
    import mido

    src = tmp_path / "open-note.mid"
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.Message("note_on", channel=0, note=40, velocity=90, time=0))
    track.append(mido.Message("note_off", channel=0, note=40, time=480))
    track.append(mido.Message("note_on", channel=0, note=43, velocity=90, time=0))  # never ended
    mid.save(src)
    r = CliRunner().invoke(app, ["info", str(src)])
    assert r.exit_code == 0, r.output
    assert f"warning: {src}: 1 note dropped" in r.output


def test_midi_audio_with_a_missing_soundfont_fails_before_the_model(tmp_path, no_model):
    sf2 = tmp_path / "nope.sf2"
    r = runner.invoke(app, ["midi", str(RIFF), "--add", "bass", "-o", str(tmp_path / "o.mid"),
                            "--audio", str(tmp_path / "o.wav"), "--soundfont", str(sf2)])
    assert "soundfont not found" in _one_line_error(r, sf2)
    assert not (tmp_path / "o.mid").exists()


def test_version():
    import stemfill

    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output == f"stemfill {stemfill.__version__}\n"
    r = runner.invoke(app, [])
    assert "convert" in r.output and "--version" in r.output  # no arguments: the help, as before
