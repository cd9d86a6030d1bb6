"""Locating the real market data in `../shared/data/candles/` for tests.

Tests that need it call `shared_candles_dir()` (or use the `shared_candles`
fixture): when the folder is missing the test is skipped with the reason, unless
`RADAR_REQUIRE_SHARED_DATA=1` (as `.ci/run` sets), in which case it fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_CANDLES = Path(os.environ.get("RADAR_SHARED_CANDLES", PROJECT_ROOT.parent / "shared" / "data" / "candles"))


def shared_candles_dir() -> Path:
    """The shared candles folder, or skip/fail the calling test when it is missing."""
    if SHARED_CANDLES.is_dir() and any(SHARED_CANDLES.iterdir()):
        return SHARED_CANDLES
    reason = f"shared market data not found at {SHARED_CANDLES} (expected ../shared beside the checkout)"
    if os.environ.get("RADAR_REQUIRE_SHARED_DATA") == "1":
        pytest.fail(reason + " and RADAR_REQUIRE_SHARED_DATA=1")
    pytest.skip(reason)


def shared_file(relative: str) -> Path:
    """One file under the shared candles folder, e.g. `binance-spot/BTC_USDT-1h.json.gz`."""
    path = shared_candles_dir() / relative
    if not path.is_file():
        reason = f"shared data file missing: {path}"
        if os.environ.get("RADAR_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path
