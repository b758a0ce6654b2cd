"""stemfill convert: discovery, de-duplication, skip reasons, split by song, resume, shards, CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mido
import numpy as np
import pytest

from conftest import need
from stemfill.datasets import convert as C
from stemfill.datasets.chunks import SPLITS, load_chunks, load_shard
from stemfill.errors import StemfillError
from stemfill.pianoroll import grid as G
from stemfill.pianoroll import roll as R

STEMS_ALL = ("drums", "bass", "guitar")


def make_midi(path: Path, stems=STEMS_ALL, bars: int = 8, seed: int = 0, qpm: float = 120.0, tpq: int = 480) -> Path:
    """A small type-1 General MIDI file: drums (channel 10), bass (program 33), guitar (program 29)."""
    rng = np.random.default_rng(seed)
    mf = mido.MidiFile(type=1, ticks_per_beat=tpq)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(qpm), time=0),
                           mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0)])
    mf.tracks.append(meta)
    spec = {"drums": (9, 0, "Drums"), "bass": (1, 33, "Bass"), "guitar": (2, 29, "Guitar")}
    for stem in stems:
        ch, prog, name = spec[stem]
        events = []  # (tick, order, message)
        for beat in range(bars * 4):
            t = beat * tpq
            if stem == "drums":
                pitches = [36 if beat % 2 == 0 else 38, 42]
                dur = tpq // 4
            elif stem == "bass":
                pitches, dur = [int(rng.integers(33, 52))], tpq - tpq // 8
            else:
                root = int(rng.integers(48, 60))
                pitches, dur = [root, root + 7], tpq // 2
            for p in pitches:
                events.append((t, 1, mido.Message("note_on", channel=ch, note=p, velocity=90)))
                events.append((t + dur, 0, mido.Message("note_off", channel=ch, note=p, velocity=0)))
        events.sort(key=lambda e: (e[0], e[1]))
        tr = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
        if stem != "drums":
            tr.append(mido.Message("program_change", channel=ch, program=prog, time=0))
        now = 0
        for t, _, msg in events:
            tr.append(msg.copy(time=t - now))
            now = t
        mf.tracks.append(tr)
    path.parent.mkdir(parents=True, exist_ok=True)
    mf.save(path)
    return path



@pytest.fixture
def songs(tmp_path) -> Path:
    """in/: 6 good songs (one in a sub-folder, one bass-only), a duplicate, a broken file, a text file."""
    d = tmp_path / "in"
    for i in range(5):
        make_midi(d / f"song{i}.mid", seed=i, bars=8 + i)
    make_midi(d / "sub" / "deep.midi", seed=9, bars=4)
    make_midi(d / "bassonly.mid", stems=("bass",), seed=7)
    make_midi(d / "drums_bass.mid", stems=("drums", "bass"), seed=8)
    shutil.copy(d / "song1.mid", d / "sub" / "copy of song1.mid")
    (d / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\xff\xff\x90<")
    (d / "notes.txt").write_text("not a song")
    return d


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_helpers_split_offsets_chunks():
    h = "ab" * 32
    assert C.split_of(h) == C.split_of(h) and C.split_of(h) in SPLITS
    shares = [C.split_of(f"{i:064x}") for i in range(2000)]
    assert 0.75 < shares.count("train") / 2000 < 0.85 and shares.count("valid") > 100 and shares.count("test") > 100
    assert [C.split_of(f"{i:064x}", seed=1) for i in range(50)] != shares[:50]
    assert C.chunk_offsets(0, 192, 96).tolist() == []
    assert C.chunk_offsets(100, 192, 96).tolist() == [0]
    assert C.chunk_offsets(384, 192, 96).tolist() == [0, 96, 192]
    assert C.chunk_offsets(400, 192, 96).tolist() == [0, 96, 192, 288]  # the tail is covered, zero padded
    roll = np.zeros((3, R.N_PITCHES, 400), dtype=bool)
    roll[0, 0, :] = True
    roll[1, 5, :150] = True
    chunks, offs = C.cut_chunks(roll, 192, 96, min_stems=2)
    assert chunks.shape == (2, 3, R.N_PITCHES, 192) and offs.tolist() == [0, 96]
    assert len(C.cut_chunks(roll, 192, 96, min_stems=1)[0]) == 4


def test_convert_manifest_split_dedupe_skips(songs, tmp_path):
    out = tmp_path / "out"
    rep = C.convert([songs], out, jobs=1)
    m = _manifest(out)
    cfg = m["config"]
    assert (cfg["steps_per_beat"], cfg["n_pitches"], cfg["chunk_len"], cfg["hop"]) == (12, 48, 192, 96)
    assert (cfg["bass_low"], cfg["guitar_low"]) == (G.BASS_LOW, G.GUITAR_LOW)

    paths = sorted(s["path"] for s in m["songs"])
    assert paths == ["drums_bass.mid", "song0.mid", "song1.mid", "song2.mid", "song3.mid", "song4.mid", "sub/deep.midi"]
    skipped = {s["path"]: s["reason"] for s in m["skipped"]}
    assert set(skipped) == {"bassonly.mid", "broken.mid", "sub/copy of song1.mid"}
    assert skipped["sub/copy of song1.mid"] == "duplicate of song1.mid"
    assert "chunk" in skipped["bassonly.mid"]
    assert "\n" not in skipped["broken.mid"] and skipped["broken.mid"]
    assert rep.converted == 7 and rep.done == 0 and len(rep.skipped) == 3 and rep.n_files == 10

    for s in m["songs"]:
        assert set(s) >= {"id", "path", "hash", "split", "stems", "tempo", "bars", "n_steps", "n_chunks", "shard"}
        assert s["split"] == C.split_of(s["hash"]) and s["id"] == s["hash"][:16]
        assert s["tempo"] == pytest.approx(120.0)
        assert (out / s["shard"]).exists()
        rolls, offs = load_shard(out / s["shard"])
        assert rolls.shape == (s["n_chunks"], 3, R.N_PITCHES, 192) and len(offs) == s["n_chunks"]
        assert (rolls.any(axis=(2, 3)).sum(axis=1) >= 2).all()
    by = {s["path"]: s for s in m["songs"]}
    assert by["song0.mid"]["stems"] == list(STEMS_ALL) and by["drums_bass.mid"]["stems"] == ["drums", "bass"]
    assert by["song0.mid"]["bars"] == 8 and by["song0.mid"]["n_chunks"] == 3  # 8 bars: chunks at 0, 2, 4 bars
    # nothing but the manifest and the shards; no temp files
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "shards"]
    assert all(p.suffix == ".npz" and not p.name.startswith(".") for p in (out / "shards").iterdir())

    # load_chunks: every split together adds up; each song's chunks sit in one split only
    total = 0
    seen: dict[str, str] = {}
    for split in SPLITS:
        try:
            ch = load_chunks(out, split)
        except StemfillError:
            continue
        assert ch.rolls.shape[1:] == (3, R.N_PITCHES, 192) and ch.rolls.dtype == bool
        total += len(ch)
        for s in ch.songs:
            assert seen.setdefault(s["hash"], split) == split
    assert total == sum(s["n_chunks"] for s in m["songs"]) == rep.n_chunks
    everything = load_chunks(out, None, require=STEMS_ALL)
    assert len(everything) == sum(s["chunk_stems"]["guitar"] for s in m["songs"])


def test_second_run_does_no_work_and_split_is_stable(songs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    C.convert([songs], out, jobs=1)
    before = _manifest(out)
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()}

    def boom(*a, **k):
        raise AssertionError("read a file that was already done")

    real = C._convert_file  # broken files are retried (a newer reader may read them); nothing else is read
    monkeypatch.setattr(C, "_convert_file", lambda path, *a: boom() if path.name != "broken.mid" else real(path, *a))
    lines: list[str] = []
    rep = C.convert([songs], out, jobs=1, log=lines.append)
    assert rep.converted == 0 and rep.done == 8  # 7 songs + the bass-only one remembered as filtered
    assert "8 already done" in lines
    assert {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()} == mtimes
    after = _manifest(out)
    assert [(s["hash"], s["split"]) for s in after["songs"]] == [(s["hash"], s["split"]) for s in before["songs"]]

    # a song moved to another folder keeps its split and its shard
    monkeypatch.undo()
    moved = tmp_path / "moved"
    shutil.copytree(songs, moved)
    C.convert([moved], tmp_path / "out2", jobs=1)
    splits2 = {s["hash"]: s["split"] for s in _manifest(tmp_path / "out2")["songs"]}
    assert splits2 == {s["hash"]: s["split"] for s in before["songs"]}

    # another config converts again
    rep = C.convert([songs], out, jobs=1, chunk_len=96, hop=48)
    assert rep.converted == 7 and rep.done == 0
    assert _manifest(out)["config"]["chunk_len"] == 96


def test_require_all_and_crash_isolation(songs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real = C._convert_file

    def flaky(path, *a):
        if path.name == "song2.mid":
            raise ZeroDivisionError("simulated crash")
        return real(path, *a)

    monkeypatch.setattr(C, "_convert_file", flaky)
    rep = C.convert([songs], out, jobs=1, require_all=True)
    m = _manifest(out)
    skipped = {s["path"]: s["reason"] for s in m["skipped"]}
    assert skipped["song2.mid"] == "ZeroDivisionError: simulated crash"
    assert "all three stems required" in skipped["drums_bass.mid"] and "guitar" in skipped["drums_bass.mid"]
    assert all(s["stems"] == list(STEMS_ALL) for s in m["songs"]) and rep.converted == 5
    assert m["config"]["require_all"] is True and m["config"]["min_stems"] == 3


def test_parallel_matches_serial(songs, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    C.convert([songs], a, jobs=1)
    C.convert([songs], b, jobs=2)
    ma, mb = _manifest(a), _manifest(b)
    assert ma["songs"] == mb["songs"] and ma["skipped"] == mb["skipped"]
    for s in ma["songs"]:
        ra, _ = load_shard(a / s["shard"])
        rb, _ = load_shard(b / s["shard"])
        assert np.array_equal(ra, rb)


def test_refuses_output_equal_to_input(songs, tmp_path):
    with pytest.raises(StemfillError, match="input"):
        C.convert([songs], songs, jobs=1)
    with pytest.raises(StemfillError, match="folder"):
        C.convert([songs], songs / "song0.mid", jobs=1)
    with pytest.raises(StemfillError, match="no such"):
        C.convert([tmp_path / "missing"], tmp_path / "out", jobs=1)


def test_cli_convert_shared_midi(shared_data, tmp_path):
    from typer.testing import CliRunner

    from stemfill.cli import app

    out = tmp_path / "midi-chunks"
    runner = CliRunner()
    res = runner.invoke(app, ["convert", str(shared_data / "midi"), "-o", str(out), "--jobs", "2"])
    assert res.exit_code == 0, res.output
    m = _manifest(out)
    n_files = len(list((shared_data / "midi").rglob("*.mid")))
    assert len(m["songs"]) + len(m["skipped"]) == n_files
    assert len(m["songs"]) >= n_files - 4
    assert all(s["path"].startswith("broken/") for s in m["skipped"] if s["kind"] == "error")
    assert any(s["path"].startswith("broken/") for s in m["skipped"])
    for s in m["skipped"]:
        assert f"skipping {s['path']}: " in res.output
    res = runner.invoke(app, ["convert", str(shared_data / "midi"), "-o", str(out)])
    n_done = len(m["songs"]) + sum(s["kind"] == "filtered" for s in m["skipped"])
    assert res.exit_code == 0 and f"{n_done} already done" in res.output
    assert "0 converted" in res.output
    res = runner.invoke(app, ["convert", str(shared_data / "midi" / "Funkytown.mid"), "-o",
                              str(shared_data / "midi" / "Funkytown.mid")])
    assert res.exit_code == 1 and res.output.startswith("error:")


def test_interrupted_run_keeps_finished_songs(songs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real = C._convert_file
    calls = []

    def interrupt_fourth(path, *a):
        calls.append(path.name)
        if len(calls) == 4:  # after bassonly (filtered), broken (error), drums_bass (song)
            raise KeyboardInterrupt
        return real(path, *a)

    monkeypatch.setattr(C, "_convert_file", interrupt_fourth)
    with pytest.raises(KeyboardInterrupt):
        C.convert([songs], out, jobs=1)
    m = _manifest(out)  # written on the way out, complete JSON, with the songs finished so far
    assert len(m["songs"]) + sum(s["kind"] == "filtered" for s in m["skipped"]) == 2
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]
    monkeypatch.undo()
    rep = C.convert([songs], out, jobs=1)
    assert rep.done == 2 and rep.converted + rep.done == 8


def test_worker_death_skips_only_that_file(songs, tmp_path, monkeypatch):
    import os

    real = C._convert_file

    def die_on_song3(path, *a):  # forked workers inherit the patch
        if path.name == "song3.mid":
            os._exit(3)
        return real(path, *a)

    monkeypatch.setattr(C, "_convert_file", die_on_song3)
    rep = C.convert([songs], tmp_path / "out", jobs=2)
    reasons = dict(rep.skipped)
    assert "worker process died" in reasons["song3.mid"]
    assert rep.converted == 6 and "song4.mid" not in reasons


def test_leak_check_moves_a_held_out_copy_of_a_training_song(tmp_path):
    """Two files with different bytes but the same notes (here: another tempo) must not sit in train
    and test: the held-out copy joins its twin's split; unrelated held-out songs stay put."""
    src = tmp_path / "songs"

    def split_of_file(p: Path) -> str:
        return C.split_of(C.file_hash(p))

    seed = next(s for s in range(200) if split_of_file(make_midi(tmp_path / "probe.mid", seed=s)) == "train")
    make_midi(src / "original.mid", seed=seed)
    twin = None
    for qpm in range(100, 400):
        p = make_midi(tmp_path / "probe.mid", seed=seed, qpm=float(qpm))
        if split_of_file(p) == "test":
            twin = src / "copy.mid"
            shutil.copy(p, twin)
            break
    assert twin is not None
    other = next(s for s in range(1000, 1400) if split_of_file(make_midi(tmp_path / "probe.mid", seed=s)) == "test")
    make_midi(src / "other.mid", seed=other)
    (tmp_path / "probe.mid").unlink()

    lines: list[str] = []
    out = tmp_path / "chunks"
    rep = C.convert([src], out, jobs=1, log=lines.append)
    songs = {s["path"]: s for s in _manifest(out)["songs"]}
    assert songs["copy.mid"]["split"] == "train"
    assert songs["copy.mid"]["leak"]["from"] == "test" and songs["copy.mid"]["leak"]["twin"] == "original.mid"
    assert songs["copy.mid"]["leak"]["shared_bars"] == 1.0
    assert songs["other.mid"]["split"] == "test" and "leak" not in songs["other.mid"]
    assert any(line.startswith("copy.mid:") and "moved test -> train" in line for line in lines)
    assert rep.split_songs["test"] == 1 and rep.split_songs["train"] == 2
    test = load_chunks(out, "test")
    assert {test.songs[i]["path"] for i in test.song_index} == {"other.mid"}
    # a second (resumed) run reaches the same split
    C.convert([src], out, jobs=1)
    assert {s["path"]: s["split"] for s in _manifest(out)["songs"]} == {p: s["split"] for p, s in songs.items()}
    # a manifest written before the leak check existed (no "leak_check" mark, copy still in test) is checked again
    m = _manifest(out)
    del m["leak_check"]
    for e in m["songs"]:
        e.pop("leak", None)
        e["split"] = C.split_of(e["hash"])
    (out / "manifest.json").write_text(json.dumps(m))
    lines.clear()
    C.convert([src], out, jobs=1, log=lines.append)
    assert {s["path"]: s["split"] for s in _manifest(out)["songs"]} == {p: s["split"] for p, s in songs.items()}
    assert any("moved test -> train" in line for line in lines)


def test_bar_keys_skip_bars_with_one_stem():
    rolls = np.zeros((1, 3, R.N_PITCHES, 96), dtype=bool)
    rolls[0, 0, 0, 0] = True  # bar 1: drums only
    rolls[0, 0, 0, 48] = rolls[0, 1, 5, 50] = True  # bar 2: drums + bass
    keys = C.bar_keys(rolls, 48)
    assert len(keys) == 1


# --- output folder checked up front; kill -9: workers end, the run resumes -----------------------


def _unwritable_folder(tmp_path: Path) -> Path | None:
    """A folder in which no file can be created (a read-only one; /sys for root), or None."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    for folder in (ro, Path("/sys")):
        try:
            fd, probe = tempfile.mkstemp(dir=folder)
        except OSError:
            return folder
        os.close(fd)
        os.unlink(probe)
    return None


def test_output_folder_is_checked_before_any_work(songs, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from stemfill.cli import app
    from stemfill.errors import WriteError

    def boom(*a, **k):
        raise AssertionError("looked at the inputs before checking -o")

    monkeypatch.setattr(C, "discover", boom)
    (tmp_path / "afile").write_text("not a folder")
    under_a_file = tmp_path / "afile" / "sub"
    with pytest.raises(WriteError) as exc:
        C.convert([songs], under_a_file, jobs=1)
    msg = str(exc.value)
    assert msg.startswith(f"{under_a_file}: ") and "is a file" in msg and "\n" not in msg

    res = CliRunner().invoke(app, ["convert", str(songs), "-o", str(under_a_file)])
    assert res.exit_code == 1 and res.output.startswith(f"error: {under_a_file}: ")
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output

    folder = _unwritable_folder(tmp_path)
    need(folder is not None, "no unwritable folder here (neither a read-only folder nor /sys refuses files)")
    for out in (folder / "chunks", folder):
        with pytest.raises(WriteError) as exc:
            C.convert([songs], out, jobs=1)
        assert str(exc.value).startswith(f"{out}: ") and "\n" not in str(exc.value)


SLOW_CONVERT = """
import multiprocessing, sys, time
multiprocessing.set_start_method("fork", force=True)  # the workers inherit the slow-down below
from stemfill.datasets import convert as C
real = C._convert_file
def slow(path, *a):
    time.sleep(float(sys.argv[3]))
    return real(path, *a)
C._convert_file = slow
C.convert([sys.argv[1]], sys.argv[2], jobs=2)
"""


def _start_slow_convert(tmp_path: Path, src: Path, out: Path, seconds_per_song: float):
    script = tmp_path / "slow_convert.py"
    script.write_text(SLOW_CONVERT)
    return subprocess.Popen([sys.executable, str(script), str(src), str(out), str(seconds_per_song)])


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            found.add(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie is dead, only not yet reaped


def _wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)")
def test_kill_9_of_convert_ends_its_pool_workers(tmp_path):
    src = tmp_path / "in"
    for i in range(6):
        make_midi(src / f"s{i}.mid", seed=i, bars=4)
    proc = _start_slow_convert(tmp_path, src, tmp_path / "out", seconds_per_song=2.0)
    workers: set[int] = set()

    def pool_started() -> bool:
        workers.update(_children(proc.pid))
        return len(workers) >= 2

    try:
        assert _wait_for(pool_started, timeout=60), "the pool workers never started"
        proc.kill()
        proc.wait()
        assert _wait_for(lambda: not any(_running(w) for w in workers), timeout=5), "workers outlived kill -9"
    finally:
        proc.kill()
        proc.wait()
        for w in workers:  # leave nothing behind, also when the test fails
            if _running(w):
                os.kill(w, signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux")
def test_killed_run_resumes_from_the_songs_it_finished(tmp_path, monkeypatch):
    src = tmp_path / "in"
    for i in range(6):
        make_midi(src / f"s{i}.mid", seed=i, bars=4)
    out = tmp_path / "out"
    journal = out / C.JOURNAL

    def finished() -> set[str]:
        done = set()
        for line in (journal.read_text().splitlines() if journal.exists() else []):
            try:
                done.add(json.loads(line)["song"]["path"])
            except (ValueError, KeyError):
                continue  # the header, or a line cut short by the kill
        return done

    proc = _start_slow_convert(tmp_path, src, out, seconds_per_song=0.5)
    try:
        assert _wait_for(lambda: len(finished()) >= 2, timeout=60), "no song finished"
    finally:
        proc.kill()
        proc.wait()
    assert not (out / "manifest.json").exists()  # killed outright: only the journal knows what was done
    done = finished()
    assert 2 <= len(done) < 6

    calls: list[str] = []
    real = C._convert_file
    monkeypatch.setattr(C, "_convert_file", lambda path, *a: calls.append(path.name) or real(path, *a))
    rep = C.convert([src], out, jobs=1)
    assert not set(calls) & done and rep.done == len(done) and rep.converted == 6 - len(done)
    assert sorted(s["path"] for s in _manifest(out)["songs"]) == [f"s{i}.mid" for i in range(6)]
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "shards"]  # the journal is folded in
    assert not [p for p in (out / "shards").iterdir() if p.name.startswith(".")]  # no temp file of the kill
    assert C.convert([src], out, jobs=1).done == 6


def test_reader_warnings_reach_the_log_and_the_manifest(tmp_path):
    src = tmp_path / "in"
    p = make_midi(src / "clean.mid", seed=1)
    mf = mido.MidiFile(p)
    bass = next(t for t in mf.tracks if t.name == "Bass")
    bass.insert(len(bass) - 1, mido.Message("note_on", channel=1, note=40, velocity=90, time=0))  # never ended
    mf.save(src / "hanging.mid")
    lines: list[str] = []
    C.convert([src], tmp_path / "out", jobs=1, log=lines.append)
    assert "warning: hanging.mid: 1 note dropped: 1 note-on never ended" in lines
    assert not any(line.startswith("warning: clean.mid") for line in lines)
    by = {s["path"]: s for s in _manifest(tmp_path / "out")["songs"]}
    assert by["hanging.mid"]["warnings"] == ["1 note dropped: 1 note-on never ended"]
    assert "warnings" not in by["clean.mid"]


# --- guitar variants (convert --guitar-variants) ------------------------------------------

def band_song(seed: int, bars: int = 8, lead_from: int = 4, double: bool = False, one_guitar: bool = False,
              title: str = ""):
    """Drums, bass (a random line), a rhythm guitar (8th-note chords, every bar), a lead guitar (quarter notes
    from bar ``lead_from``, higher up), an organ; ``double``: a third guitar playing the rhythm guitar's notes."""
    from stemfill.song.song import Note, Song, Track

    q = 480
    rng = np.random.default_rng(seed)
    roots = rng.integers(0, 12, size=bars)
    drums = [Note(b * 4 * q + k * q, q // 4, 36 if k % 2 == 0 else 38, 100) for b in range(bars) for k in range(4)]
    bass = [Note(b * 4 * q + k * q, q - 40, 36 + int(rng.integers(0, 12)), 90) for b in range(bars) for k in range(4)]
    rhythm = [Note(b * 4 * q + k * q // 2, q // 2 - 40, 48 + int(roots[b]) + iv, 90)
              for b in range(bars) for k in range(8) for iv in (0, 7)]
    lead = [Note(b * 4 * q + k * q, q - 40, 67 + int(rng.integers(0, 10)), 90) for b in range(lead_from, bars)
            for k in range(4)]
    organ = [Note(b * 4 * q, 4 * q - 40, 72 + int(roots[b]), 70) for b in range(bars)]
    tracks = [Track(name="Drums", is_drum=True, notes=drums), Track(name="Bass", program=33, notes=bass),
              Track(name="Rhythm Guitar", program=29, notes=rhythm), Track(name="Organ", program=16, notes=organ)]
    if not one_guitar:
        tracks.append(Track(name="Lead Guitar", program=27, notes=lead))
    if double:
        tracks.append(Track(name="Guitar Double", program=30, notes=list(rhythm)))
    return Song(tracks=tracks, resolution=q, title=title or f"band {seed}")


def _split_of_song(song) -> str:
    from stemfill.song.midi import midi_bytes

    return C.split_of(hashlib.sha256(midi_bytes(song)).hexdigest())


@pytest.fixture
def bands(tmp_path) -> Path:
    """guitarpro/ (a band-split folder name): six two-guitar songs (three train, one test, two valid),
    one one-guitar song, one with a doubled guitar, and a re-titled copy of train song two0 that its hash
    puts in valid (the leak check moves it to train)."""
    from stemfill.song.midi import write_midi

    d = tmp_path / "guitarpro"
    d.mkdir()
    for i, seed in enumerate([0, 1, 2, 6, 16, 17]):
        write_midi(band_song(seed), d / f"two{i}.mid")
    write_midi(band_song(10, one_guitar=True), d / "one.mid")
    write_midi(band_song(11, double=True), d / "double.mid")
    write_midi(band_song(0, title="band 0 (copy 6)"), d / "copy.mid")
    return d


def _guitar(song, tracks, T):
    g = R.encode(song, length=T, groups={"drums": [], "bass": [], "guitar": tracks})[2]
    return C.cut_at(g[None], C.chunk_offsets(T, 192, 96), 192)[:, 0]


def test_guitar_variants_put_each_guitar_in_turn_as_the_stem(bands, tmp_path):
    from stemfill.song.io import read_song

    out, off = tmp_path / "mg", tmp_path / "off"
    rep = C.convert([bands], out, jobs=1, guitar_variants=3)
    C.convert([bands], off, jobs=1)
    m = _manifest(out)
    assert m["config"]["guitar_variants"] == 3
    by = {s["path"]: s for s in m["songs"]}
    for e in [by[f"two{i}.mid"] for i in range(6)] + [by["copy.mid"]]:
        # most notes first: the rhythm guitar (track 2), then the lead (track 4); each where the lead plays
        assert [(v["variant"], v["track"], v["name"], v["n_chunks"]) for v in e["variants"]] == \
            [(1, 2, "Rhythm Guitar", 2), (2, 4, "Lead Guitar", 2)]
        assert e["variant_shard"] == f"shards/{e['id']}.variants.npz" and e["n_chunks"] == 3
        song = read_song(bands / e["path"])
        T = e["n_steps"]
        rolls, offs, ctx, var = load_shard(out / e["variant_shard"], with_context=True, with_variant=True)
        r0, o0, c0 = load_shard(out / e["shard"], with_context=True)
        assert var.tolist() == [1, 1, 2, 2] and offs.tolist() == [96, 192] * 2
        for k, (t, other) in enumerate([(2, 4), (4, 2)]):
            at = var == k + 1
            assert np.array_equal(rolls[at][:, 2], _guitar(song, [t], T)[1:])  # one guitar is the stem,
            assert np.array_equal(rolls[at][:, :2], r0[1:, :2])  # drums and bass as in variant 0,
            # the other guitar sounds (same rows: CONTEXT_LOW == GUITAR_LOW) and starts in the context beside the organ
            assert np.array_equal(ctx[at][:, 0], c0[1:, 0] | _guitar(song, [other], T)[1:])
            starts = C.cut_at(R.encode_context(song, length=T, groups={"other": [other]}), offs[at], 192)[:, 1]
            assert np.array_equal(ctx[at][:, 1], c0[1:, 1] | starts) and starts.any()
        # variant 0 is what a convert without variants writes
        ro, oo, co = load_shard(off / e["shard"], with_context=True)
        assert np.array_equal(r0, ro) and np.array_equal(o0, oo) and np.array_equal(c0, co)
    assert "variants" not in by["one.mid"] and "variant_shard" not in by["one.mid"]
    # the doubled rhythm guitar's variants would have their answer in the context: only the lead's is written
    assert [(v["track"], v["n_chunks"]) for v in by["double.mid"]["variants"]] == [(4, 2)]
    n_var = sum(v["n_chunks"] for s in m["songs"] for v in s.get("variants", ()))
    assert rep.n_variant_chunks == n_var == 7 * 4 + 2 and sum(m["counts"]["variant_chunks"].values()) == n_var
    assert m["counts"]["chunks"] == _manifest(off)["counts"]["chunks"]
    assert "guitar variants:" in rep.summary()

    # every variant sits in its song's split: a split's chunks with variants are its songs' and no other's,
    # also where the leak check moved a song (the valid copy of a train song, with its variants)
    assert {s["split"] for s in m["songs"]} == set(SPLITS)
    assert by["copy.mid"]["split"] == "train" and by["copy.mid"]["leak"]["from"] == "valid"
    for split in SPLITS:
        songs = [s for s in m["songs"] if s["split"] == split]
        ch = load_chunks(out, split, variants=True)
        assert {ch.songs[i]["hash"] for i in np.unique(ch.song_index)} == {s["hash"] for s in songs}
        assert len(ch) == sum(s["n_chunks"] + C.n_variant_chunks(s) for s in songs)
        assert int((ch.variant > 0).sum()) == sum(C.n_variant_chunks(s) for s in songs)
        plain = load_chunks(out, split)
        assert plain.variant is None and np.array_equal(plain.rolls, load_chunks(off, split).rolls)

    # a second run does nothing; another --guitar-variants converts again; 0 removes the variant shards
    assert C.convert([bands], out, jobs=1, guitar_variants=3).done == 9
    rep = C.convert([bands], out, jobs=1, guitar_variants=1)
    assert rep.converted == 9 and all(len(s.get("variants", ())) <= 1 for s in _manifest(out)["songs"])
    rep = C.convert([bands], out, jobs=1, guitar_variants=0)
    assert rep.converted == 9 and rep.n_variant_chunks == 0
    assert not list((out / "shards").glob("*.variants.npz"))
    assert "guitar variants" not in rep.summary()


def test_guitar_variants_off_and_old_folders(bands, tmp_path):
    out = tmp_path / "off"
    rep = C.convert([bands], out, jobs=1)  # the default: no variants
    m = _manifest(out)
    assert m["config"]["guitar_variants"] == 0 and rep.n_variant_chunks == 0
    assert not any("variants" in s or "variant_shard" in s for s in m["songs"])
    assert not list((out / "shards").glob("*.variants.npz"))
    assert np.array_equal(load_chunks(out, None, variants=True).rolls, load_chunks(out, None).rolls)
    # a folder written before the option existed (no guitar_variants in its config) is reused as it is
    del m["config"]["guitar_variants"]
    (out / "manifest.json").write_text(json.dumps(m))
    assert C.convert([bands], out, jobs=1).done == 9
    assert load_chunks(out, None, variants=True).variant is None
    with pytest.raises(StemfillError, match="guitar_variants"):
        C.convert([bands], tmp_path / "bad", jobs=1, guitar_variants=-1)


def test_cli_convert_guitar_variants(bands, tmp_path):
    from typer.testing import CliRunner

    from stemfill.cli import app

    res = CliRunner().invoke(app, ["convert", str(bands), "-o", str(tmp_path / "c"), "--jobs", "1",
                                   "--guitar-variants", "2"])
    assert res.exit_code == 0, res.output
    assert "guitar variants:" in res.output and _manifest(tmp_path / "c")["config"]["guitar_variants"] == 2


def test_evaluation_reads_only_the_songs_as_they_are_and_training_reads_the_variants(bands, tmp_path, monkeypatch):
    from stemfill.datasets.chunks import BAND
    from stemfill.evaluation.harness import run
    from stemfill.pianoroll import train as T

    out, off = tmp_path / "mg", tmp_path / "off"
    C.convert([bands], out, jobs=1, guitar_variants=3)
    C.convert([bands], off, jobs=1)
    m = _manifest(out)
    for split in (BAND,) + SPLITS:
        report, _ = run(out, split, systems=("real",), kinds=("single",))
        report_off, _ = run(off, split, systems=("real",), kinds=("single",))
        assert report["config"]["n_chunks"] == report_off["config"]["n_chunks"] == \
            sum(s["n_chunks"] for s in load_chunks(out, split).songs)
        for res in (report, report_off):
            for case in res["results"]["real"].values():
                case.pop("fill_seconds", None)
        assert json.dumps(report["results"]) == json.dumps(report_off["results"])

    n_train = sum(s["n_chunks"] + C.n_variant_chunks(s) for s in m["songs"] if s["split"] == "train")
    assert any(C.n_variant_chunks(s) for s in m["songs"] if s["split"] == "train")
    rolls, other = T.load_split(str(out), "train", variants=True)
    assert len(rolls) == len(other) == n_train
    calls = []
    real = T.load_split

    def spy(data, split, *a, **k):
        calls.append((split, k.get("variants", False)))
        return real(data, split, *a, **k)

    monkeypatch.setattr(T, "load_split", spy)
    T.train(T.TrainConfig(data=str(out), out=str(tmp_path / "run"), size="tiny", steps=1, batch=2, device="cpu"),
            progress=False, until=0)
    assert calls == [("train", True), ("valid", False)]


def test_cli_convert_with_no_song_to_convert_fails_in_one_line(tmp_path):
    """An empty folder (nothing written), or a folder of broken files only: exit 1 with one error line."""
    from typer.testing import CliRunner

    from stemfill.cli import app

    runner = CliRunner()
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("no songs here")
    r = runner.invoke(app, ["convert", str(empty), "-o", str(tmp_path / "out")])
    assert r.exit_code == 1 and r.output.strip() == (
        f"error: {empty}: no song files there (looked for .gp3, .gp4, .gp5, .gpx, .gp, .mid, .midi, .kar)")
    assert not (tmp_path / "out").exists()
    with pytest.raises(StemfillError, match="no song files there"):
        C.convert([empty], tmp_path / "out", jobs=1)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\xff\xff\x90<")
    (broken / "b.gp5").write_bytes(b"\x18FICHIER GUITAR PRO v5.00" + b"\x00" * 10)
    r = runner.invoke(app, ["convert", str(broken), "-o", str(tmp_path / "out2"), "--jobs", "1"])
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert r.exit_code == 1 and errors == [
        f"error: {tmp_path / 'out2'}: no song converted: all 2 song files skipped (the reasons are above and in "
        "the manifest)"], r.output
    assert "skipping a.mid: " in r.output and "skipping b.gp5: " in r.output
