"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.shared_data import shared_candles_dir


@pytest.fixture
def shared_candles() -> Path:
    """The real candles folder `../shared/data/candles` (skips or fails when missing)."""
    return shared_candles_dir()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh database path in the test's temporary folder."""
    return tmp_path / "radar.db"
