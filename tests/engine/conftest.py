"""Fixtures of the live-engine tests: the first 600 real BTC 1h candles relabelled as the
perpetual, and a Bitget stand-in (tests/support/bitget_private_stub.py) on 127.0.0.1 whose mark
starts at the first candle's open. A test module may define its own `candles` / `stub`."""

from __future__ import annotations

import pytest

from tests.support.bitget_private_stub import BitgetPrivateStub
from tests.support.live_harness import futures_candles
from tests.support.shared_data import shared_file

BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"


@pytest.fixture(scope="module")
def candles():
    return futures_candles(shared_file(BTC_1H), 600)


@pytest.fixture
async def stub(candles):
    async with BitgetPrivateStub(mark=float(candles.open[0])) as s:
        yield s
