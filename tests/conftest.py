"""Shared test fixtures, and the one rule for what a missing resource does.

Small real files live in tests/data/real (with their sources and licences). The larger shared data
folder sits beside the project root (../shared/data): present on the team's machines and in CI,
absent on a fresh clone. FluidSynth and a General MIDI soundfont (the audio tests' renderer) are
installed by scripts/setup.sh where it runs as root.

The rule (``need``): a test whose resource is missing skips with the reason, except under CI or
STEMFILL_REQUIRE_SHARED=1 (``.ci/run`` sets both), where the missing resource is a failure. There, any
skip at all (a ``pytest.skip`` or ``skipif`` elsewhere) also fails the run at the end
(``pytest_sessionfinish``): CI installs everything, so a skip there hides a test that did not run.
A hard dependency missing is never a skip: its import fails the test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
REAL_DATA = ROOT / "tests" / "data" / "real"
REQUIRE_SHARED = os.environ.get("STEMFILL_REQUIRE_SHARED", "") not in ("", "0")
IN_CI = os.environ.get("CI", "") not in ("", "0", "false")
STRICT = REQUIRE_SHARED or IN_CI  # every resource must be there: missing ones fail, and no test may skip


def need(available: bool, reason: str) -> None:
    """Go on where ``available``; else skip with ``reason``, or fail under CI / STEMFILL_REQUIRE_SHARED."""
    if available:
        return
    if STRICT:
        which = "STEMFILL_REQUIRE_SHARED" if REQUIRE_SHARED else "CI"
        pytest.fail(f"{which} is set: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    need(SHARED_DATA.is_dir(), f"needs the shared data folder {SHARED_DATA} (not beside a fresh clone)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_data() -> Path:
    return REAL_DATA


@pytest.fixture(scope="session")
def sf2() -> Path:
    """The General MIDI soundfont, where FluidSynth and a soundfont are installed (``need``'s rule)."""
    from stemfill.audio.render import check_renderer
    from stemfill.errors import AudioError

    try:
        return check_renderer()
    except AudioError as e:
        need(False, f"needs FluidSynth and a GM soundfont (scripts/setup.sh installs them as root): {e}")


def pytest_sessionfinish(session, exitstatus):
    """Under CI / STEMFILL_REQUIRE_SHARED, a run with any skipped test fails (exit status 1)."""
    if not STRICT:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and session.exitstatus == 0:
        session.exitstatus = 1
        session.config._stemfill_skipped = len(skipped)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    n = getattr(config, "_stemfill_skipped", 0)
    if n:
        terminalreporter.write_line(f"FAILED: {n} test(s) skipped under CI / STEMFILL_REQUIRE_SHARED, where "
                                    "nothing may skip (see the skip reasons above)", red=True)
