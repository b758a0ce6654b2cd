"""The README's screenshot of `stemfill studio`: a song with two takes of a new bass, bars chosen on the roll,
the new part's tab below.

    python bench/studio_screenshot.py examples/riff.mid -o docs/img/studio.png

Drives Debian's chromium (/usr/bin/chromium) with Playwright, against the real `stemfill studio` command.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]


def start_studio(song: Path | None, tmp: str) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, TMPDIR=tmp, PYTHONPATH=str(ROOT))
    args = [sys.executable, "-m", "stemfill.cli", "studio", "--no-browser"] + ([str(song)] if song else [])
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    line = p.stdout.readline()
    m = re.search(r"http://127\.0\.0\.1:\d+/", line)
    if not m:
        p.kill()
        raise SystemExit(f"stemfill studio did not start: {line}{p.stderr.read()}")
    return p, m.group(0)


def stop(p: subprocess.Popen) -> None:
    p.send_signal(signal.SIGINT)
    try:
        p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()


def drag_bars(page, first: int, last: int) -> None:
    """Select bars first..last (1-based) on the roll by dragging, as a user does."""
    box = page.locator("#overlay").bounding_box()
    xs = page.evaluate(f"""() => {{ const w = document.getElementById('overlay').getBoundingClientRect().width;
        const b = S.song.bars; return [xOf(b[{first - 1}], w) + 4, xOf(b[{last - 1}], w) + 4]; }}""")
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + xs[0], y)
    page.mouse.down()
    page.mouse.move(box["x"] + xs[1], y, steps=8)
    page.mouse.up()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("song", type=Path)
    ap.add_argument("-o", "--out", type=Path, default=ROOT / "docs" / "img" / "studio.png")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_studio(a.song, tmp)
        try:
            with sync_playwright() as pw:
                b = pw.chromium.launch(executable_path=a.chromium, args=CHROMIUM_ARGS)
                page = b.new_page(viewport={"width": 1400, "height": 900})
                page.goto(url)
                page.wait_for_selector("body[data-ready='1']")
                page.wait_for_selector("#tracks li")
                page.click("#generate")  # take 1: a bass through the whole song
                page.wait_for_selector("#takes li[data-take='1']", timeout=120_000)
                drag_bars(page, 5, 12)  # take 2: busier in bars 5-12
                page.select_option("select[name=density]", "high")
                page.fill("input[name=seed]", "1")
                page.click("#generate")
                page.wait_for_selector("#takes li[data-take='2']", timeout=120_000)
                page.click("#tracks li:has(.chip.new)")  # its tab
                page.wait_for_function("document.querySelectorAll('#tab svg').length > 0", timeout=30_000)
                page.wait_for_timeout(1000)  # the smooth scroll to the tab
                page.evaluate("""() => { const t = S.song.bars[6]; document.getElementById('player').currentTime = t;
                    drawOverlay(); document.getElementById('time').textContent = fmt(t);
                    window.scrollTo({top: 0, behavior: 'instant'}); }""")
                page.wait_for_timeout(300)
                a.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(a.out))
                b.close()
        finally:
            stop(proc)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
