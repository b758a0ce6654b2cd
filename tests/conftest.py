"""Shared test fixtures.

Small real files live in tests/data/real (with their sources and licences). The larger shared data
folder sits beside the project root (../shared/data): present on the team's machines and in CI,
absent on a fresh clone. Tests that need it skip there, with the reason in the summary; under
STEMFILL_REQUIRE_SHARED=1 (set by .ci/run) its absence is a failure instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
REAL_DATA = ROOT / "tests" / "data" / "real"
REQUIRE_SHARED = os.environ.get("STEMFILL_REQUIRE_SHARED", "") not in ("", "0")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        reason = f"needs the shared data folder {SHARED_DATA} (not beside a fresh clone)"
        if REQUIRE_SHARED:
            pytest.fail(f"STEMFILL_REQUIRE_SHARED is set: {reason}", pytrace=False)
        pytest.skip(reason)
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_data() -> Path:
    return REAL_DATA
