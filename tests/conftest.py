"""Shared test fixtures. Real files live in ../shared/data beside the project root (in CI too)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    assert SHARED_DATA.is_dir(), f"expected the shared data folder at {SHARED_DATA}"
    return SHARED_DATA
