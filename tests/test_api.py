"""The public Python API (stemfill/api.py): the README's "From Python" example, run as written, and the
API's checks and results against what `stemfill midi` does."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import stemfill
from stemfill.errors import StemfillError

ROOT = Path(__file__).resolve().parents[1]
RIFF = ROOT / "examples" / "riff.mid"
RENDERER = "fluidsynth not installed: apt-get install --no-install-recommends fluidsynth timgm6mb-soundfont (scripts/setup.sh does it as root)"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## From Python", 1)[1]
    m = re.search(r"```python\n(.*?)```", section, re.S)
    assert m, "README's From Python section has no python block"
    return m.group(1)


def note_set(song):
    return {(n.start, n.duration, n.pitch) for t in song.tracks for n in t.notes}


def test_readme_example_runs_as_written(tmp_path, monkeypatch):
    from stemfill.audio.render import check_renderer

    try:
        check_renderer()
    except StemfillError:
        pytest.skip(RENDERER)
    (tmp_path / "examples").mkdir()
    shutil.copy(RIFF, tmp_path / "examples" / "riff.mid")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), scope)
    take, song = scope["take"], scope["song"]
    assert [t.stem for t in take.added] == ["bass"] and take.added[0].notes
    out = stemfill.read(tmp_path / "riff-bass.mid")
    assert note_set(song) <= note_set(out)  # every original note is in the written take
    bass = [t for t in out.tracks if t.name == take.added[0].name]
    assert len(bass) == 1 and len(bass[0].notes) == len(take.added[0].notes)
    # bars="5-12": the new notes lie in bars 5-12
    starts = song.bar_starts()
    assert all(starts[4] <= n.start < starts[12] for n in take.added[0].notes)
    wav = tmp_path / "riff-bass.wav"
    import soundfile as sf

    info = sf.info(str(wav))
    assert info.samplerate == 44100 and info.duration > 25


def test_import_stemfill_is_cheap():
    code = "import sys, stemfill; print(any(m in sys.modules for m in ('torch', 'numpy', 'stemfill.api')))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert r.stdout.strip() == "False"


def test_fill_matches_the_cli(tmp_path):
    from typer.testing import CliRunner

    from stemfill.cli import app

    song = stemfill.read(RIFF)
    take = stemfill.fill(song, add="bass", seed=3)
    out = tmp_path / "cli.mid"
    r = CliRunner().invoke(app, ["midi", str(RIFF), "--add", "bass", "--seed", "3", "-o", str(out)])
    assert r.exit_code == 0, r.output
    cli = stemfill.read(out)
    api = stemfill.read(take.write(tmp_path / "api.mid"))
    assert note_set(cli) == note_set(api)
    assert f"{take.added[0].name} ({len(take.added[0].notes)} notes)" in r.output
    assert note_set(song) <= note_set(take.song) and len(song.tracks) == 2  # the input is not changed


def test_song_write_and_gp5(tmp_path):
    song = stemfill.read(RIFF)
    take = stemfill.fill(song, add=["bass"])
    p = take.song.write(tmp_path / "t.gp5")
    back = stemfill.read(p)
    assert sorted(t.name for t in back.tracks) == sorted(t.name for t in take.song.tracks)


@pytest.mark.parametrize("kwargs, words", [
    (dict(add=["piano"]), "unknown stem 'piano'"),
    (dict(add=["bass"], bars="9-3"), "--bars '9-3'"),
    (dict(add=["bass"], density="loud"), "loud"),
    (dict(add=["drums"], style="polka"), "polka"),
    (dict(add=["bass"], temperature="hot"), "hot"),
    (dict(add=["bass"], like_bars="1-2"), "--like-bars needs --like FILE"),
    (dict(add=["drums"], engine="gpu"), "unknown engine 'gpu'"),
])
def test_fill_refuses_bad_options_in_one_line(kwargs, words):
    song = stemfill.read(RIFF)
    with pytest.raises(StemfillError) as e:
        stemfill.fill(song, **kwargs)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_fill_refuses_a_stem_the_song_has():
    with pytest.raises(StemfillError, match="already has a drums part"):
        stemfill.fill(stemfill.read(RIFF), add=["drums"])


def test_temperature_does_not_stick_to_a_cached_model():
    song = stemfill.read(RIFF)
    cache: dict = {}
    plain = stemfill.plan_fill(["bass"], seed=2)
    a = plain.run(song, cache=cache)
    stemfill.plan_fill(["bass"], seed=2, temperature=1.0).run(song, cache=cache)
    b = plain.run(song, cache=cache)
    assert note_set(a.song) == note_set(b.song)
    assert len(cache) == 1


def test_read_names_the_file():
    with pytest.raises(StemfillError, match="nope.mid: no such file"):
        stemfill.read("nope.mid")


def test_audio_add_is_the_offline_route_and_checks_first(tmp_path):
    with pytest.raises(StemfillError, match="missing.wav: no such file"):
        stemfill.audio.add(tmp_path / "missing.wav", tmp_path / "out.wav", "add drums")


def test_replace_says_what_it_removed_and_new_parts_end_with_the_song():
    song = stemfill.read(RIFF)
    take = stemfill.fill(song, add="drums", replace=True)
    assert [t.name for t in take.removed] == ["Drums"]
    assert [t.name for t in take.song.tracks].count("Drums") == 0
    from stemfill.song.bars import last_bar_end

    assert max(n.end for n in take.added[0].notes) <= last_bar_end(song)
