"""`stemfill studio` end to end in a real headless browser: Debian's chromium driven by Playwright.

It starts the command, opens the page, loads examples/riff.mid through the file picker, adds a bass, waits for
the take, plays it, downloads the .mid and checks that every original note is in it.

Where /usr/bin/chromium (or Playwright) is missing the test skips and says why; under CI or
STEMFILL_REQUIRE_SHARED=1 (.ci/run installs chromium) a missing browser is a failure instead.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from stemfill.song.io import read_song

ROOT = Path(__file__).resolve().parents[1]
RIFF = ROOT / "examples" / "riff.mid"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
REQUIRED = bool(os.environ.get("CI")) or os.environ.get("STEMFILL_REQUIRE_SHARED", "") not in ("", "0")


def _missing(reason: str):
    if REQUIRED:
        pytest.fail(f"CI / STEMFILL_REQUIRE_SHARED is set: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        _missing(f"no browser at {CHROMIUM}: apt-get install --no-install-recommends chromium (as root; .ci/run does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def studio_url(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, "-m", "stemfill.cli", "studio", "--no-browser"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        line = p.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert m, line + p.stderr.read()
        yield m.group(0)
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


def notes_of(song):
    return {(n.start, n.duration, n.pitch) for t in song.tracks for n in t.notes}


def test_open_add_bass_play_download(browser, studio_url, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(studio_url)
    page.wait_for_selector("body[data-ready='1']")
    page.set_input_files("#file", str(RIFF))
    page.wait_for_function("document.querySelectorAll('#tracks li').length === 2")
    assert "riff.mid" in page.inner_text("#song-name")

    page.check("input[name=stem][value=bass]")
    page.click("#generate")
    page.wait_for_selector("#takes li[data-take='1']", timeout=120_000)
    assert page.is_hidden("#error")
    new = page.locator("#tracks li:has(.chip.new)")
    assert new.count() == 1 and "Bass" in new.inner_text()

    page.click("#play")
    page.wait_for_function("document.getElementById('player').currentTime > 0.3", timeout=30_000)
    assert page.evaluate("document.body.dataset.playing") == "1"
    page.click("#play")  # pause

    with page.expect_download() as dl:
        page.click("#dl-mid")
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    assert path.name == "riff-take1-bass.mid"
    got, original = read_song(path), read_song(RIFF)
    assert notes_of(original) <= notes_of(got)  # every original note is in the take
    assert any("Bass" in t.name and t.notes for t in got.tracks)
    assert not problems, problems


@pytest.mark.slow
def test_recording_box(browser, studio_url):
    """A WAV dropped on the page: the offline audio route with the prompt, what it heard, before and after."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(studio_url)
    page.wait_for_selector("body[data-ready='1']")
    page.set_input_files("#file", str(ROOT / "examples" / "riff-no-drums.wav"))
    page.fill("#prompt", "add reggae drums")
    page.click("#rec-go")
    page.wait_for_selector("#rec-result:not([hidden])", timeout=180_000)
    heard = page.inner_text("#rec-heard")
    assert re.search(r"Heard \d+ beats at about \d+(\.\d)? qpm", heard) and "added drums" in heard, heard
    assert page.is_hidden("#error")
    for which in ("before", "after"):
        assert page.evaluate(f"fetch(document.getElementById('rec-{which}').src).then(r => r.status)") == 200
    assert not problems, problems
