"""`radar data download --open-interest`: bitget's snapshot through the real ccxt client
against the local stand-in server (tests/support/open_interest_stub.py, 127.0.0.1 only), and
the paged history of exchanges that offer it through a ccxt-like fake (bitget has none).
"""

from __future__ import annotations

import contextlib
import io
import sqlite3
from pathlib import Path
from typing import Any, AsyncIterator

import numpy as np
import pytest

from core.cli.main import main
from core.data.download import RetryPolicy
from core.data.open_interest_download import download_open_interest, open_interest_mode
from core.errors import DataError, UsageError
from core.storage.db import open_sync
from core.storage.open_interest_store import load_open_interest
from tests.data.test_data_download import new_exchange
from tests.support.open_interest_stub import OPEN_INTEREST_PATH, OpenInterestStub

H = 3_600_000
M5 = 300_000
BTC = "BTC/USDT:USDT"
FAST = RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.01)


@pytest.fixture
async def stub() -> AsyncIterator[OpenInterestStub]:
    async with OpenInterestStub() as s:
        yield s


@pytest.fixture
async def exchange(stub: OpenInterestStub) -> AsyncIterator[Any]:
    ex = new_exchange(stub.base_url)
    try:
        yield ex
    finally:
        await ex.close()


@pytest.fixture
def conn(db_path: Path) -> sqlite3.Connection:
    c = open_sync(db_path)
    yield c
    c.close()


async def test_bitget_offers_a_snapshot_only_and_each_run_stores_one_sample(stub, exchange, conn) -> None:
    assert open_interest_mode(exchange) == "snapshot"   # ccxt 4.5: fetchOpenInterestHistory is False for bitget
    t0 = stub.now_ms
    r = await download_open_interest(exchange, conn, BTC, "5m", None, retry=FAST, now_ms=lambda: stub.now_ms)
    assert (r.mode, r.rows, r.first_ms) == ("snapshot", 1, t0)
    again = await download_open_interest(exchange, conn, BTC, "5m", None, retry=FAST, now_ms=lambda: stub.now_ms)
    assert again.rows == 0                               # the same snapshot: nothing new
    stub.now_ms = t0 + M5
    later = await download_open_interest(exchange, conn, BTC, "5m", None, retry=FAST, now_ms=lambda: stub.now_ms)
    assert later.rows == 1
    ts, oi = load_open_interest(conn, BTC)
    assert ts.tolist() == [t0, t0 + M5]
    assert oi.tolist() == [float(stub.open_interest("BTCUSDT", t)) for t in (t0, t0 + M5)]
    q = stub.calls_to(OPEN_INTEREST_PATH)[-1]
    assert (q["symbol"], q["productType"]) == ("BTCUSDT", "USDT-FUTURES")


async def test_a_malformed_snapshot_is_refused_and_nothing_is_stored(stub, exchange, conn) -> None:
    def corrupt(data: dict) -> dict:
        data["openInterestList"][0]["size"] = "-5"
        return data

    stub.add_fault(OPEN_INTEREST_PATH, transform=corrupt)
    with pytest.raises(DataError, match=r"bitget BTC/USDT:USDT open-interest snapshot: row 0 .* not a number > 0"):
        await download_open_interest(exchange, conn, BTC, "5m", None, retry=FAST, now_ms=lambda: stub.now_ms)
    assert load_open_interest(conn, BTC)[0].size == 0


async def test_spot_symbols_have_no_open_interest(stub, conn) -> None:
    class Spotty:
        id = "spotty"
        has = {"fetchOpenInterest": True}

        async def load_markets(self) -> dict:
            return {"BTC/USDT": {"symbol": "BTC/USDT", "contract": False}}

    with pytest.raises(UsageError, match="not a contract"):
        await download_open_interest(Spotty(), conn, "BTC/USDT", "5m", 0, retry=FAST)


class _HistoryExchange:
    """A minimal ccxt-like exchange offering fetchOpenInterestHistory, paged by `since`."""

    id = "histx"
    has = {"fetchOpenInterestHistory": True, "fetchOpenInterest": True}

    def __init__(self, times: list[int]) -> None:
        self.times = times
        self.requests: list[tuple[str, int, int]] = []
        self.corrupt_at: int | None = None

    async def load_markets(self) -> dict:
        return {s: {"symbol": s, "contract": True} for s in (BTC, "ETH/USDT:USDT")}

    async def fetch_open_interest_history(self, symbol: str, timeframe: str, since: int, limit: int,
                                          params: dict) -> list:
        self.requests.append((timeframe, since, limit))
        page = [{"symbol": symbol, "timestamp": t, "openInterestAmount": 1000.0 + t % 97, "baseVolume": None}
                for t in self.times if t >= since][:limit]
        if self.corrupt_at is not None and len(self.requests) == self.corrupt_at:
            page[3]["openInterestAmount"] = float("nan")
        return page


async def test_history_is_paged_by_time_stored_and_resumed(conn) -> None:
    times = [1_740_000_000_000 + i * M5 for i in range(450)]
    ex = _HistoryExchange(times[:300])
    r = await download_open_interest(ex, conn, BTC, "5m", times[0], retry=FAST, now_ms=lambda: times[-1] + H)
    assert (r.mode, r.rows, r.pages) == ("history", 300, 3)
    assert ex.requests[:2] == [("5m", times[0], 200), ("5m", times[199] + 1, 200)]
    ex.times = times                                     # later: the exchange has more
    r = await download_open_interest(ex, conn, BTC, "5m", None, retry=FAST, now_ms=lambda: times[-1] + H)
    assert r.rows == 150 and r.start_ms == times[299] + 1
    ts, oi = load_open_interest(conn, BTC)
    assert ts.tolist() == times and oi.tolist() == [1000.0 + t % 97 for t in times]


async def test_history_until_bounds_and_a_bad_page_is_not_stored(conn) -> None:
    times = [1_740_000_000_000 + i * M5 for i in range(450)]
    ex = _HistoryExchange(times)
    ex.corrupt_at = 2
    with pytest.raises(DataError, match=r"histx BTC/USDT:USDT open-interest page from .*: row 3 .* not a number > 0"):
        await download_open_interest(ex, conn, BTC, "5m", times[0], times[100] + 1 + 10 ** 9,
                                     retry=FAST, now_ms=lambda: times[-1] + H)
    assert load_open_interest(conn, BTC)[0].tolist() == times[:200]   # the first page only
    ex.corrupt_at = None
    await download_open_interest(ex, conn, BTC, "5m", None, times[260], retry=FAST, now_ms=lambda: times[-1] + H)
    assert load_open_interest(conn, BTC)[0].tolist() == times[:260]
    with pytest.raises(UsageError, match="give a start date"):
        await download_open_interest(ex, conn, "ETH/USDT:USDT", "5m", None, retry=FAST)


def test_command_downloads_the_snapshot_beside_candles(tmp_path: Path) -> None:
    since = 1_704_067_200_000
    stub = OpenInterestStub(now_ms=since + 10 * H + 30 * 60_000)
    db = tmp_path / "radar.db"
    out, err = io.StringIO(), io.StringIO()
    with stub.serve_in_thread() as url, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--db", str(db), "--config-dir", str(tmp_path), "data", "download", "--exchange", "bitget",
                     "--symbols", BTC, "--timeframe", "1h", "--since", "2024-01-01",
                     "--until", "2024-01-01T12:00", "--open-interest", "--retry-delay", "0", "--api-url", url])
    assert code == 0, err.getvalue()
    assert "offers no open-interest history through ccxt" in err.getvalue()
    lines = out.getvalue().splitlines()
    t = stub.now_ms
    assert any(ln.startswith("BTC/USDT:USDT open interest (snapshot): 1 sample stored") for ln in lines), lines
    assert lines[-1] == "2 downloaded, 0 failed"
    c = open_sync(db)
    try:
        ts, oi = load_open_interest(c, BTC)
        assert ts.tolist() == [t] and oi.tolist() == [float(stub.open_interest("BTCUSDT", t))]
        assert c.execute("SELECT source FROM open_interest").fetchone()[0] == "bitget"
    finally:
        c.close()
    assert np.isfinite(oi).all()
