"""`stemfill studio`'s server (stemfill/studio/server.py) through Starlette's test client: open, generate, takes,
downloads, and the refusals (malformed, oversized and mistyped uploads, path traversal, a burst of parallel
generate requests); and the command itself (help, a bad song, a real start and Ctrl-C)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
from starlette.testclient import TestClient  # noqa: E402

from stemfill.song.io import read_song  # noqa: E402
from stemfill.studio.server import Studio, create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RIFF = ROOT / "examples" / "riff.mid"


def notes_of(song):
    return {(n.start, n.duration, n.pitch) for t in song.tracks for n in t.notes}


@pytest.fixture
def studio(tmp_path):
    return Studio(tmp_path / "work", score_limit=64 * 1024, audio_limit=64 * 1024)


@pytest.fixture
def client(studio):
    with TestClient(create_app(studio)) as c:
        yield c


def open_riff(client) -> dict:
    r = client.post("/api/songs?name=riff.mid", content=RIFF.read_bytes())
    assert r.status_code == 200, r.text
    return r.json()


def test_open_shows_tracks_bars_sections_and_notes(client):
    info = open_riff(client)
    assert info["name"] == "riff.mid" and info["n_bars"] == 16 and info["meter"] == "4/4"
    assert [(t["name"], t["stem"]) for t in info["tracks"]] == [("Rhythm Guitar", "guitar"), ("Drums", "drums")]
    song = read_song(RIFF)
    assert sum(len(t["notes"]) for t in info["tracks"]) == sum(len(t.notes) for t in song.tracks)
    assert len(info["bars"]) == 16 and info["bars"][0] == 0 and abs(info["bars"][1] - 60 / 128 * 4) < 1e-3
    assert all(0 < k < 16 for k in info["sections"])
    assert client.get(f"/api/songs/{info['id']}").json()["takes"] == []
    assert client.get("/api/state").json()["songs"] == [{"id": info["id"], "name": "riff.mid"}]


def test_generate_take_then_download_the_score(client, tmp_path):
    sid = open_riff(client)["id"]
    r = client.post(f"/api/songs/{sid}/takes", json={"stems": ["bass"], "seed": 1, "bars": "5-12"})
    assert r.status_code == 200, r.text
    take = r.json()
    assert take["id"] == 1 and take["added"][0]["stem"] == "bass" and take["added"][0]["count"] > 0
    new = [t for t in take["tracks"] if t["new"]]
    assert len(new) == 1 and len(new[0]["notes"]) == take["added"][0]["count"]
    bars = client.get(f"/api/songs/{sid}").json()["bars"]
    assert all(bars[4] - 1e-3 <= n[0] < bars[12] for n in new[0]["notes"])  # inside bars 5-12
    assert [t["id"] for t in client.get(f"/api/songs/{sid}/takes").json()["takes"]] == [1]

    r = client.get(f"/api/songs/{sid}/takes/1/download.mid")
    assert r.status_code == 200 and 'filename="riff-take1-bass.mid"' in r.headers["content-disposition"]
    (tmp_path / "t.mid").write_bytes(r.content)
    got = read_song(tmp_path / "t.mid")
    assert notes_of(read_song(RIFF)) <= notes_of(got)  # every original note is in the take
    assert len(notes_of(got)) > len(notes_of(read_song(RIFF)))

    r = client.get(f"/api/songs/{sid}/takes/1/download.gp5")
    assert r.status_code == 200
    (tmp_path / "t.gp5").write_bytes(r.content)
    assert any("Bass" in t.name for t in read_song(tmp_path / "t.gp5").tracks)


def test_take_audio_is_the_take_as_stemfill_render_plays_it(client, tmp_path):
    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth not installed: apt-get install --no-install-recommends fluidsynth timgm6mb-soundfont "
                    "(scripts/setup.sh does it as root)")
    import soundfile as sf

    sid = open_riff(client)["id"]
    assert client.post(f"/api/songs/{sid}/takes", json={"stems": ["bass"], "seed": 1, "bars": "5-12"}).status_code == 200
    (tmp_path / "t.mid").write_bytes(client.get(f"/api/songs/{sid}/takes/1/download.mid").content)
    got = read_song(tmp_path / "t.mid")
    for part in ("all", "new", "rest"):
        r = client.get(f"/api/songs/{sid}/takes/1/download.wav?part={part}&inline=1")
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav", r.text
        (tmp_path / f"{part}.wav").write_bytes(r.content)
        assert sf.info(str(tmp_path / f"{part}.wav")).duration > 25
    r = client.get(f"/api/songs/{sid}/takes/original/download.wav")
    assert r.status_code == 200
    # the page's take (the song's cached render plus the new part's) sounds as `stemfill render` renders the take
    import numpy as np

    import stemfill

    stemfill.render(got, tmp_path / "cli.wav")
    a, _ = sf.read(str(tmp_path / "all.wav"), dtype="float32")
    b, _ = sf.read(str(tmp_path / "cli.wav"), dtype="float32")
    assert a.shape == b.shape  # the same to within -40 dB (FluidSynth renders the parts on other channels)
    assert np.sqrt(((a - b) ** 2).mean()) < 0.01 * np.sqrt((b ** 2).mean()) and np.abs(a - b).max() < 0.05
    new_, _ = sf.read(str(tmp_path / "new.wav"), dtype="float32")
    rest, _ = sf.read(str(tmp_path / "rest.wav"), dtype="float32")
    assert np.abs(new_ + rest - a).max() < 2e-4  # solo + muted = the whole, scaled alike


def test_takes_undo_and_bounded_store(tmp_path):
    studio = Studio(tmp_path / "w", takes_kept=3)
    with TestClient(create_app(studio)) as c:
        sid = open_riff(c)["id"]
        for seed in range(5):
            assert c.post(f"/api/songs/{sid}/takes", json={"stems": "bass", "seed": seed}).status_code == 200
        assert [t["id"] for t in c.get(f"/api/songs/{sid}/takes").json()["takes"]] == [3, 4, 5]
        r = c.get(f"/api/songs/{sid}/takes/1")
        assert r.status_code == 404 and "keeps the last 3" in r.json()["error"]
        c.get(f"/api/songs/{sid}/takes/3/download.mid")
        r = c.delete(f"/api/songs/{sid}/takes/5")  # undo
        assert r.status_code == 200 and [t["id"] for t in r.json()["takes"]] == [3, 4]
        r = c.delete(f"/api/songs/{sid}/takes/3")
        assert [t["id"] for t in r.json()["takes"]] == [4]
        # the files of dropped takes go with them: the upload and what take 4 wrote remain
        assert len(list(studio.workdir.iterdir())) == 1
        assert c.post(f"/api/songs/{sid}/takes", json={"stems": ["bass"]}).json()["id"] == 6


def test_bad_options_get_the_cli_message(client):
    sid = open_riff(client)["id"]
    for body, words in [({"stems": ["bass"], "density": "loud"}, "--density 'loud'"),
                        ({"stems": ["piano"]}, "unknown stem 'piano'"),
                        ({"stems": ["drums"]}, "song already has a drums part"),
                        ({"stems": ["bass"], "bars": "40-41"}, "--bars 40-41: the song has 16 bars"),
                        ({"stems": []}, "nothing to add"),
                        ({"stems": ["bass"], "seed": "x"}, "seed: expected a whole number"),
                        ({"stems": ["bass"], "rests": "no"}, "rests: expected true or false")]:
        r = client.post(f"/api/songs/{sid}/takes", json=body)
        assert r.status_code == 400 and words in r.json()["error"], (body, r.text)
        assert "\n" not in r.json()["error"]
    r = client.post(f"/api/songs/{sid}/takes", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    assert client.get(f"/api/songs/{sid}/takes").json()["takes"] == []


def test_refusals_leave_the_server_answering(client, studio):
    # a malformed score: the CLI's one-line message, with the user's file name and no temp path
    r = client.post("/api/songs?name=broken.mid", content=b"MThd garbage" * 10)
    assert r.status_code == 400
    msg = r.json()["error"]
    assert msg.startswith("broken.mid: ") and str(studio.workdir) not in msg and "\n" not in msg
    r = client.post("/api/songs?name=broken.gp5", content=b"\x00" * 100)
    assert r.status_code == 400 and r.json()["error"].startswith("broken.gp5: ")
    # over the size limit (64 kB here; 20 MB by default): refused, nothing kept
    r = client.post("/api/songs?name=big.mid", content=b"x" * (65 * 1024))
    assert r.status_code == 413 and r.json()["error"].startswith("big.mid: the file is over the studio's 64 kB limit")
    # a file type the studio does not read, an empty file, a name that is a path
    assert client.post("/api/songs?name=notes.txt", content=b"hi").status_code == 415
    assert client.post("/api/songs?name=empty.mid", content=b"").status_code == 400
    r = client.post("/api/songs?name=../../../../tmp/evil.mid", content=RIFF.read_bytes())
    assert r.status_code == 200 and r.json()["name"] == "evil.mid"
    assert not Path("/tmp/evil.mid").exists()
    assert all(re.fullmatch(r"[0-9a-f]{16}\.mid", p.name) for p in studio.workdir.iterdir())  # generated names
    # path traversal in URLs: nothing outside the static folder and the stores is served
    for url in ["/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                "/static/..%2f..%2f..%2fetc%2fpasswd", "/api/songs/..%2f..%2fetc%2fpasswd",
                "/api/songs/x/takes/..%2f..%2fetc%2fpasswd/download.mid", "/static/../server.py"]:
        r = client.get(url)
        assert r.status_code in (400, 404) and "root:" not in r.text and "import" not in r.text, url
    assert client.get("/api/songs/nope/takes/1/download.mid").status_code == 404
    sid = client.get("/api/state").json()["songs"][0]["id"]
    assert client.get(f"/api/songs/{sid}/takes/1/download.exe").status_code == 404
    # still answering, and the page itself is served
    assert client.get("/api/state").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "stemfill studio" in page.text
    assert client.get("/static/vendor/alphatab/alphaTab.min.js").status_code == 200


def test_twenty_parallel_generate_requests_run_one_at_a_time(client, monkeypatch):
    from stemfill import api

    running, most = [0], [0]
    lock = threading.Lock()
    real_run = api.FillPlan.run

    def counted(self, song, **kw):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return real_run(self, song, **kw)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(api.FillPlan, "run", counted)
    sid = open_riff(client)["id"]
    answers = []

    def poll():
        while not done.is_set():
            answers.append(client.get("/api/state").status_code)
            time.sleep(0.05)

    done = threading.Event()
    poller = threading.Thread(target=poll)
    poller.start()
    try:
        with ThreadPoolExecutor(20) as pool:
            rs = list(pool.map(lambda s: client.post(f"/api/songs/{sid}/takes", json={"stems": ["bass"], "seed": s}),
                               range(20)))
    finally:
        done.set()
        poller.join()
    assert [r.status_code for r in rs] == [200] * 20
    ids = sorted(r.json()["id"] for r in rs)
    assert ids == list(range(1, 21))  # nothing lost
    assert [t["id"] for t in client.get(f"/api/songs/{sid}/takes").json()["takes"]] == list(range(1, 21))
    assert most[0] == 1  # the model ran one request at a time
    assert answers and set(answers) == {200}  # the server kept answering meanwhile
    # every take is the seed it was asked for: same seed, same notes as a take made alone
    by_seed = {r.json()["options"]["seed"]: r.json() for r in rs}
    again = client.post(f"/api/songs/{sid}/takes", json={"stems": ["bass"], "seed": 7}).json()
    assert again["tracks"][-1]["notes"] == by_seed[7]["tracks"][-1]["notes"]


def test_queue_limit_refuses_politely(tmp_path):
    studio = Studio(tmp_path / "w", queue_limit=0)
    with TestClient(create_app(studio)) as c:
        sid = open_riff(c)["id"]
        r = c.post(f"/api/songs/{sid}/takes", json={"stems": ["bass"]})
        assert r.status_code == 503 and "try again" in r.json()["error"]


# --- the command ------------------------------------------------------------------------------------------------


def run_cli(*args, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "stemfill.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=60, **kw)


def test_studio_help_explains_every_option():
    r = run_cli("studio", "--help")
    assert r.returncode == 0
    for opt in ("SONG", "--port", "--host", "--no-browser", "--model", "--soundfont"):
        assert opt in r.stdout


def test_studio_refuses_a_bad_song_before_starting(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"nope")
    r = run_cli("studio", str(bad), "--no-browser")
    assert r.returncode == 1 and r.stderr.strip().startswith(f"error: {bad}: ") and len(r.stderr.strip().splitlines()) == 1


def test_studio_warns_on_a_non_local_host():
    import socket

    s = socket.socket()
    s.bind(("0.0.0.0", 0))  # a busy port: the command warns, then cannot listen, and says so in one line
    s.listen()
    try:
        r = run_cli("studio", "--no-browser", "--host", "0.0.0.0", "--port", str(s.getsockname()[1]))
    finally:
        s.close()
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("warning: --host 0.0.0.0: anyone who can reach this port")
    assert lines[1].startswith("error: --host 0.0.0.0 --port") and "cannot listen" in lines[1]


def test_studio_serves_until_ctrl_c_and_removes_its_folder(tmp_path):
    import httpx

    env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-m", "stemfill.cli", "studio", str(RIFF), "--no-browser"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        line = p.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, line + p.stderr.read()
        state = httpx.get(m.group(0) + "api/state", timeout=10).json()
        assert state["first"] and state["songs"][0]["name"] == "riff.mid"
        assert len(list(tmp_path.glob("stemfill-studio-*"))) == 1
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err
    assert not list(tmp_path.glob("stemfill-studio-*"))


def test_close_waits_for_the_warm_render(tmp_path):
    """Ctrl-C right after a song opens: the background render it started is waited for, so nothing is still
    being written into the session's folder while the command removes it (a CI run once failed on that)."""
    from stemfill.studio.server import _remove_tree

    studio = Studio(tmp_path / "w", warm=True)
    copy = studio.new_path(".mid")
    shutil.copyfile(RIFF, copy)
    studio.add_song(copy, "riff.mid")
    assert studio.background
    studio.close()
    assert not any(t.is_alive() for t in studio.background)
    _remove_tree(studio.workdir)
    assert not studio.workdir.exists()


def test_recording_refusals(client, studio):
    r = client.post("/api/audio?name=take.wav&prompt=", content=b"RIFF")
    assert r.status_code == 400 and "say what to add" in r.json()["error"]
    r = client.post("/api/audio?name=take.mp4&prompt=add%20drums", content=b"data")
    assert r.status_code == 415 and r.json()["error"].startswith("take.mp4: unsupported file type")
    r = client.post("/api/audio?name=long.wav&prompt=add%20drums", content=b"x" * (65 * 1024))
    assert r.status_code == 413 and "limit for recordings" in r.json()["error"]
    r = client.post("/api/audio?name=noise.wav&prompt=add%20drums", content=b"not audio at all" * 64)
    assert r.status_code == 400
    msg = r.json()["error"]
    assert msg.startswith("noise.wav: ") and str(studio.workdir) not in msg, msg
    assert not list(studio.workdir.iterdir())  # nothing left behind
    assert client.get("/api/state").status_code == 200


@pytest.mark.slow
def test_recording_runs_the_offline_route(tmp_path):
    """A WAV through the page's recording box: the offline audio route with a prompt (under a minute)."""
    import soundfile as sf

    clip = ROOT / "examples" / "riff-no-drums.wav"
    with TestClient(create_app(Studio(tmp_path / "w"))) as c:
        r = c.post("/api/audio?name=riff-no-drums.wav&prompt=add%20drums", content=clip.read_bytes())
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["stems"] == ["drums"] and got["notes_added"] > 0 and got["notes_heard"] > 0
        assert 100 < got["qpm"] < 160 and len(got["beats"]) > 10
        for which in ("before", "after"):
            w = c.get(f"/api/audio/{got['id']}/{which}.wav")
            assert w.status_code == 200
            (tmp_path / f"{which}.wav").write_bytes(w.content)
        assert sf.info(str(tmp_path / "after.wav")).frames == sf.info(str(clip)).frames


def test_only_local_host_names_are_answered(tmp_path):
    app = create_app(Studio(tmp_path / "w"), allowed_hosts=["127.0.0.1", "localhost"])
    with TestClient(app, base_url="http://127.0.0.1:9") as c:
        assert c.get("/api/state").status_code == 200
    with TestClient(app, base_url="http://evil.example:9") as c:  # a rebound DNS name
        assert c.get("/api/state").status_code == 400


def test_rests_can_be_switched_off_per_take(client, tmp_path):
    """The form's "rests" box: on (default) the new drums rest in the two bars before the song's bass and guitar
    come in; a take with it off plays there, and its label says so."""
    from stemfill.song.io import write_song
    from stemfill.song.song import Note, Song, TimeSignature, Track

    q, bar = 480, 1920
    bass = [Note(b * bar + k * q, q - 20, 40, 90) for b in range(2, 18) for k in range(4)]
    gtr = [Note(b * bar + k * 2 * q, 2 * q - 20, p, 80) for b in range(2, 18) for k in range(2) for p in (52, 56, 59)]
    path = tmp_path / "late.mid"
    write_song(Song([Track("Bass", program=33, notes=bass), Track("Guitar", program=29, notes=gtr)],
                    time_signatures=[TimeSignature(0, 4, 4)], resolution=q), path)
    r = client.post("/api/songs?name=late.mid", content=path.read_bytes())
    sid = r.json()["id"]
    first = {}
    for body in ({"stems": ["drums"]}, {"stems": ["drums"], "rests": False}):
        t = client.post(f"/api/songs/{sid}/takes", json=body)
        assert t.status_code == 200, t.text
        out = tmp_path / f"take{t.json()['id']}.mid"
        out.write_bytes(client.get(f"/api/songs/{sid}/takes/{t.json()['id']}/download.mid").content)
        song = read_song(out)
        first[body.get("rests", True)] = min(n.start for t_ in song.tracks if t_.is_drum for n in t_.notes) * q // song.resolution
        assert t.json()["options"]["rests"] is body.get("rests", True)
    assert first[True] >= 2 * bar > first[False], first
