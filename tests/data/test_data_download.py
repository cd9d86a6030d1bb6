"""`radar data download`: the real ccxt bitget async client against the local stub (tests/support/bitget_stub.py).

Nothing here reaches the internet: every REST group of the client is pointed at
the stub on 127.0.0.1. Retries use a tiny base delay and the client a tiny
rate limit so the suite stays fast; assertions are on stored data and on the
requests the stub saw, never on timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sqlite3
from pathlib import Path
from typing import Any, AsyncIterator

import ccxt.async_support as ccxt
import numpy as np
import pytest
from aiohttp import web

from core.cli.data_download import exchange_settings, make_exchange, run_downloads
from core.cli.main import main
from core.data.download import RetryPolicy, download_candles, fmt_utc, override_api_urls
from core.data.funding_download import download_funding
from core.errors import DataError, RadarError, UsageError
from core.storage.candle_store import last_candle_ts, load_candles, load_funding_rates
from core.storage.db import open_sync
from tests.support.bitget_stub import (
    CANDLES_PATH, FUNDING_PATH, HISTORY_CANDLES_PATH, BitgetStub, hang, rate_limited, unavailable,
)

H = 3_600_000
BTC = "BTC/USDT:USDT"
SINCE = 1_704_067_200_000  # 2024-01-01 00:00 UTC: old enough for ccxt to use the history endpoint
FAST = RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.01)


def new_exchange(base_url: str) -> Any:
    """The real ccxt bitget client, swap markets only, pointed at the stub (300 ms request timeout)."""
    ex = ccxt.bitget({"enableRateLimit": True, "rateLimit": 2, "timeout": 300,
                      "options": {"fetchMarkets": {"types": ["swap"]}, "defaultType": "swap", "uta": False}})
    override_api_urls(ex, base_url)
    ex.timeout_on_exit = 0  # ccxt otherwise sleeps 250 ms in close()
    return ex


@contextlib.asynccontextmanager
async def fresh_exchange(base_url: str) -> AsyncIterator[Any]:
    """`new_exchange`, closed on exit (a second client, as a resumed run would make)."""
    ex = new_exchange(base_url)
    try:
        yield ex
    finally:
        await ex.close()


@pytest.fixture
async def stub() -> AsyncIterator[BitgetStub]:
    async with BitgetStub() as s:
        yield s


@pytest.fixture
async def exchange(stub: BitgetStub) -> AsyncIterator[Any]:
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


def stored(conn: sqlite3.Connection, symbol: str = BTC) -> np.ndarray:
    """The stored 1h futures series as (n, 6) rows."""
    c = load_candles(conn, symbol, "futures", "1h")
    return np.column_stack([c.ts.astype(np.float64), c.open, c.high, c.low, c.close, c.volume])


def expected(stub: BitgetStub, start: int, end: int, symbol: str = "BTCUSDT") -> np.ndarray:
    return np.array(stub.expected_candles(symbol, H, start, end), dtype=np.float64).reshape(-1, 6)


async def fetch_1500(stub: BitgetStub, ex: Any, conn: sqlite3.Connection, retry: RetryPolicy = FAST) -> Any:
    return await download_candles(ex, conn, BTC, "1h", SINCE, SINCE + 1500 * H, retry=retry,
                                  now_ms=lambda: stub.now_ms)


# --------------------------------------------------------------------------- (a) clean download

async def test_clean_download_stores_the_generated_series_across_pages(stub, exchange, conn) -> None:
    result = await fetch_1500(stub, exchange, conn)

    want = expected(stub, SINCE, SINCE + 1500 * H)
    assert len(want) == 1500
    np.testing.assert_array_equal(stored(conn), want)
    assert (result.rows, result.first_ms, result.last_ms) == (1500, SINCE, SINCE + 1499 * H)
    calls = stub.calls_to(HISTORY_CANDLES_PATH)
    assert len(calls) == result.pages >= 8
    assert all(int(q["limit"]) == 200 and q["granularity"] == "1H" for q in calls)
    assert int(calls[0]["startTime"]) == SINCE - H  # one candle of overlap before the first wanted one

    again = await fetch_1500(stub, exchange, conn)  # resumable: nothing left to fetch
    assert (again.rows, again.pages) == (0, 0)
    assert len(stub.calls_to(HISTORY_CANDLES_PATH)) == len(calls)


# --------------------------------------------------------------------------- (b) retries

async def test_rate_limit_and_timeout_are_retried_and_the_download_completes(stub, exchange, conn) -> None:
    limited = stub.add_fault(HISTORY_CANDLES_PATH, respond=rate_limited(), skip=1)
    slow = stub.add_fault(HISTORY_CANDLES_PATH, respond=hang(5.0), skip=4)  # past the client's 300 ms timeout

    result = await fetch_1500(stub, exchange, conn)

    np.testing.assert_array_equal(stored(conn), expected(stub, SINCE, SINCE + 1500 * H))
    assert (limited.hits, slow.hits) == (1, 1)
    calls = stub.calls_to(HISTORY_CANDLES_PATH)
    assert len(calls) == result.pages + 2
    assert calls[1]["startTime"] == calls[2]["startTime"]  # the refused page was asked again
    assert calls[4]["startTime"] == calls[5]["startTime"]


async def test_persistent_failure_gives_up_after_the_bounded_attempts(stub, exchange, conn) -> None:
    stub.add_fault(HISTORY_CANDLES_PATH, respond=unavailable(), skip=3, times=None)

    with pytest.raises(RadarError, match=r"gave up after 3 attempt\(s\): ExchangeNotAvailable") as err:
        await fetch_1500(stub, exchange, conn)

    assert "BTC/USDT:USDT 1h page from" in str(err.value)
    assert len(stub.calls_to(HISTORY_CANDLES_PATH)) == 3 + 3
    got = stored(conn)  # the three good pages, no gap
    np.testing.assert_array_equal(got, expected(stub, SINCE, int(got[-1, 0]) + H))


async def test_other_exchange_errors_fail_at_once_with_the_exchange_message(stub, exchange, conn) -> None:
    from tests.support.bitget_stub import error
    stub.add_fault(HISTORY_CANDLES_PATH, respond=error("40808", "Parameter verification exception"), skip=1)

    with pytest.raises(RadarError, match=r"page from .*: InvalidOrder: bitget .*40808") as err:
        await fetch_1500(stub, exchange, conn)

    assert "gave up" not in str(err.value)
    assert len(stub.calls_to(HISTORY_CANDLES_PATH)) == 2


# --------------------------------------------------------------------------- (c) interrupted, then resumed

async def test_download_failing_part_way_resumes_without_gap_or_duplicate(stub, exchange, conn) -> None:
    stub.add_fault(HISTORY_CANDLES_PATH, respond=unavailable(), skip=3, times=None)
    with pytest.raises(RadarError):
        await fetch_1500(stub, exchange, conn)
    last = last_candle_ts(conn, BTC, "futures", "1h")
    assert last is not None and SINCE < last < SINCE + 1499 * H
    before = len(stub.calls_to(HISTORY_CANDLES_PATH))

    stub.clear_faults()
    async with fresh_exchange(stub.base_url) as ex:
        resumed = await fetch_1500(stub, ex, conn)

    assert int(stub.calls_to(HISTORY_CANDLES_PATH)[before]["startTime"]) == last  # starts after the stored part
    assert resumed.first_ms == last + H
    got = stored(conn)
    np.testing.assert_array_equal(got, expected(stub, SINCE, SINCE + 1500 * H))
    assert len(np.unique(got[:, 0])) == 1500 and np.all(np.diff(got[:, 0]) == H)


async def test_cancelled_download_closes_the_exchange_and_resumes(stub, conn, capsys) -> None:
    arrived = asyncio.Event()
    stub.add_fault(HISTORY_CANDLES_PATH, respond=hang(5.0, arrived), skip=2)
    ex = new_exchange(stub.base_url)
    ex.timeout = 10_000  # the hanging request is cut by the cancellation, not by a timeout
    task = asyncio.create_task(run_downloads(ex, conn, [BTC], "1h", SINCE, SINCE + 1500 * H, retry=FAST, quiet=True))
    await asyncio.wait_for(arrived.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert ex.session is None and ex.closed_by_user  # closed although cancelled
    got = stored(conn)
    assert len(got) == 2 * 200  # the two pages stored before the cancelled request
    stub.clear_faults()
    async with fresh_exchange(stub.base_url) as again:
        await fetch_1500(stub, again, conn)
    np.testing.assert_array_equal(stored(conn), expected(stub, SINCE, SINCE + 1500 * H))


# --------------------------------------------------------------------------- (d) forming candle

async def test_the_forming_candle_is_served_but_not_stored(stub, exchange, conn) -> None:
    forming = stub.now_ms // H * H
    served: list[int] = []
    stub.add_fault(CANDLES_PATH, times=None, transform=lambda data: served.extend(int(r[0]) for r in data) or data)

    result = await download_candles(exchange, conn, BTC, "1h", forming - 30 * H, retry=FAST,
                                    now_ms=lambda: stub.now_ms)

    assert forming in served  # recent endpoint: the stub answered with the still-forming candle
    np.testing.assert_array_equal(stored(conn), expected(stub, forming - 30 * H, forming))
    assert (result.rows, result.last_ms, result.end_ms) == (30, forming - H, forming)
    again = await download_candles(exchange, conn, BTC, "1h", None, retry=FAST, now_ms=lambda: stub.now_ms)
    assert (again.rows, again.pages) == (0, 0)


# --------------------------------------------------------------------------- (e) malformed page

def _swap_high_low(rows: list) -> list:
    rows[5][2], rows[5][3] = rows[5][3], rows[5][2]
    return rows


def _off_grid(rows: list) -> list:
    rows[5][0] = str(int(rows[5][0]) + 1)
    return rows


def _zero_price(rows: list) -> list:
    rows[5][4] = "0"
    return rows


def _duplicate(rows: list) -> list:
    rows[6] = list(rows[5])
    return rows


def _not_a_number(rows: list) -> list:
    rows[5][1] = "abc"
    return rows


@pytest.mark.parametrize("corrupt, kind", [
    (_swap_high_low, "high < low"),
    (_off_grid, "off-grid timestamp"),
    (_zero_price, "non-positive price"),
    (_duplicate, "duplicate timestamp"),
    (_not_a_number, "NaN/null/inf value"),
])
async def test_a_malformed_page_is_refused_and_nothing_of_it_is_stored(stub, exchange, conn, corrupt, kind) -> None:
    stub.add_fault(HISTORY_CANDLES_PATH, transform=corrupt, skip=2)

    with pytest.raises(DataError) as err:
        await fetch_1500(stub, exchange, conn)

    page_since = int(stub.calls_to(HISTORY_CANDLES_PATH)[2]["startTime"])
    msg = str(err.value)
    assert f"bitget BTC/USDT:USDT 1h page from {fmt_utc(page_since)}: refused, 1 bad row: 1 {kind}" in msg
    assert "nothing of this page was stored" in msg
    np.testing.assert_array_equal(stored(conn), expected(stub, SINCE, page_since + H))  # up to the page, no further


async def test_a_page_that_is_not_json_is_refused_not_skipped(stub, exchange, conn) -> None:
    async def html(stub: BitgetStub, request: Any) -> Any:
        return web.Response(status=200, text="<html>maintenance</html>", content_type="text/html")

    stub.add_fault(HISTORY_CANDLES_PATH, respond=html, skip=1)
    with pytest.raises(DataError, match="BTC/USDT:USDT 1h page from .*(not JSON|could not parse)"):
        await fetch_1500(stub, exchange, conn)
    np.testing.assert_array_equal(stored(conn), expected(stub, SINCE, SINCE + 200 * H))


# --------------------------------------------------------------------------- (f) funding rates

async def test_funding_history_is_paged_back_and_stored_then_resumed(stub, exchange, conn) -> None:
    interval = stub.funding_interval_ms
    stub.funding_start_ms = (stub.now_ms // interval - 250) * interval  # 251 rates: 3 pages of 100

    first = await download_funding(exchange, conn, BTC, 0, retry=FAST, now_ms=lambda: stub.now_ms)

    want = stub.expected_funding("BTCUSDT", 0, stub.now_ms + 1)
    ts, rate = load_funding_rates(conn, BTC)
    assert list(zip(ts.tolist(), rate.tolist())) == want and len(want) == 251
    assert (first.rows, first.pages, first.first_ms, first.last_ms) == (251, 3, want[0][0], want[-1][0])
    assert [(q["pageSize"], q["pageNo"]) for q in stub.calls_to(FUNDING_PATH)] == [("100", "1"), ("100", "2"),
                                                                                  ("100", "3")]

    stub.now_ms += 2 * interval  # two rates are published; resume fetches one page only
    again = await download_funding(exchange, conn, BTC, 0, retry=FAST, now_ms=lambda: stub.now_ms)
    ts, rate = load_funding_rates(conn, BTC)
    assert list(zip(ts.tolist(), rate.tolist())) == stub.expected_funding("BTCUSDT", 0, stub.now_ms + 1)
    assert (again.rows, again.pages) == (2, 1)


async def test_funding_since_and_until_bound_the_stored_rates(stub, exchange, conn) -> None:
    interval = stub.funding_interval_ms
    stub.funding_start_ms = (stub.now_ms // interval - 250) * interval
    since, until = stub.funding_start_ms + 30 * interval, stub.funding_start_ms + 200 * interval

    await download_funding(exchange, conn, BTC, since, until, retry=FAST, now_ms=lambda: stub.now_ms)

    ts, _ = load_funding_rates(conn, BTC)
    assert ts.tolist() == [t for t, _ in stub.expected_funding("BTCUSDT", since, until)]


async def test_a_malformed_funding_page_is_refused_and_nothing_is_stored(stub, exchange, conn) -> None:
    interval = stub.funding_interval_ms
    stub.funding_start_ms = (stub.now_ms // interval - 250) * interval

    def corrupt(data: list) -> list:
        data[7]["fundingRate"] = "abc"
        return data

    stub.add_fault(FUNDING_PATH, transform=corrupt, skip=1)
    with pytest.raises(DataError, match=r"bitget BTC/USDT:USDT funding page 2: refused, 1 bad row: "
                                        r"1 NaN/null/inf value .*nothing of this page was stored"):
        await download_funding(exchange, conn, BTC, 0, retry=FAST, now_ms=lambda: stub.now_ms)
    assert load_funding_rates(conn, BTC)[0].size == 0


class _TimePagedExchange:
    """A minimal ccxt-like exchange whose funding history honours `since` (paged by time, like most)."""

    id = "timepaged"
    has = {"fetchFundingRateHistory": True}

    def __init__(self, times: list[int]) -> None:
        self.times = times
        self.requests: list[int] = []

    async def load_markets(self) -> dict:
        return {BTC: {"symbol": BTC, "contract": True}}

    async def fetch_funding_rate_history(self, symbol: str, since: int, limit: int, params: dict) -> list:
        self.requests.append(since)
        return [{"symbol": symbol, "timestamp": t, "fundingRate": t % 7 * 1e-5}
                for t in self.times if t >= since][:limit]


async def test_funding_paged_by_time_is_stored_and_resumed(conn) -> None:
    times = [1_700_000_000_000 + i * 8 * H + (i % 3) for i in range(230)]  # a few ms off the grid, as reported
    ex = _TimePagedExchange(times[:150])
    r = await download_funding(ex, conn, BTC, times[0], retry=FAST, now_ms=lambda: times[-1] + H)
    assert (r.rows, ex.requests[:2]) == (150, [times[0], times[99] + 1])

    ex.times = times
    r = await download_funding(ex, conn, BTC, None, retry=FAST, now_ms=lambda: times[-1] + H)
    assert r.rows == 80 and ex.requests[-2] == times[149] + 1
    ts, rate = load_funding_rates(conn, BTC)
    assert ts.tolist() == times and rate.tolist() == [t % 7 * 1e-5 for t in times]


# --------------------------------------------------------------------------- argument checks

async def test_unknown_symbol_and_missing_start_are_usage_errors(stub, exchange, conn) -> None:
    with pytest.raises(UsageError, match="bitget has no market 'DOGE/USDT:USDT'"):
        await download_candles(exchange, conn, "DOGE/USDT:USDT", "1h", SINCE, retry=FAST)
    with pytest.raises(UsageError, match="nothing stored yet; give a start date"):
        await download_candles(exchange, conn, BTC, "1h", None, retry=FAST)


# --------------------------------------------------------------------------- the command

def test_exchange_is_built_from_exchanges_yaml_without_going_below_ccxt_rate_limit(tmp_path: Path) -> None:
    (tmp_path / "exchanges.yaml").write_text(
        "exchanges:\n  main:\n    id: bitget\n    market_type: swap\n    sandbox: true\n    uta: false\n"
        "    rate_limit_ms: 10\n    client_order_prefix: t1\n"
        "    timeouts: {request_ms: 1234, order_ack_ms: 500}\n")
    settings = exchange_settings(tmp_path, "bitget")
    ex = make_exchange("bitget", settings, [BTC], "http://127.0.0.1:1")
    assert (ex.timeout, ex.rateLimit, ex.enableRateLimit) == (1234, 50, True)  # ccxt's 50 ms, not 10
    assert ex.options["fetchMarkets"] == {"types": ["swap"]} and ex.options["uta"] is False
    assert set(ex.urls["api"].values()) == {"http://127.0.0.1:1"}
    assert not ex.options.get("sandboxMode") and not ex.apiKey  # public data: no demo mode, no keys
    assert exchange_settings(tmp_path, "binance") is None
    assert exchange_settings(tmp_path / "missing", "bitget") is None



def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_command_downloads_candles_and_funding_per_symbol(tmp_path: Path) -> None:
    until = SINCE + 100 * H  # the stub's clock stops just after, so few funding pages exist
    stub = BitgetStub(now_ms=until + 30 * 60_000, funding_start_ms=SINCE - 5 * 8 * H)
    db = tmp_path / "radar.db"
    with stub.serve_in_thread() as url:
        argv = ["--db", str(db), "--config-dir", str(tmp_path), "data", "download", "--exchange", "bitget",
                "--symbols", "BTC/USDT:USDT,DOGE/USDT:USDT,ETH/USDT:USDT", "--timeframe", "1h",
                "--since", "2024-01-01", "--until", "2024-01-05T04:00", "--funding", "--retry-delay", "0",
                "--api-url", url]
        code, out, err = _run(argv)

    assert code == 2 and "radar: error: bitget has no market 'DOGE/USDT:USDT'" in err
    lines = out.splitlines()
    assert "BTC/USDT:USDT futures 1h: 100 candles stored, 2024-01-01 00:00 UTC .. 2024-01-05 03:00 UTC (1 page)" \
        in lines
    assert "ETH/USDT:USDT funding: 13 rates stored, 2024-01-01 00:00 UTC .. 2024-01-05 00:00 UTC (1 page)" in lines
    assert lines[-1] == "4 downloaded, 1 failed"
    c = open_sync(db)
    try:
        for sym, sid in ((BTC, "BTCUSDT"), ("ETH/USDT:USDT", "ETHUSDT")):
            np.testing.assert_array_equal(stored(c, sym), expected(stub, SINCE, until, sid))
            ts, rate = load_funding_rates(c, sym)
            assert list(zip(ts.tolist(), rate.tolist())) == stub.expected_funding(sid, SINCE, until)
    finally:
        c.close()


@pytest.mark.parametrize("extra, message", [
    (["--since", "yesterday"], "--since: expected a date like 2024-01-01"),
    (["--since", "2024-02-01", "--until", "2024-01-01"], "--until (2024-01-01) must be after --since"),
    (["--timeframe", "1x"], "--timeframe: unknown timeframe '1x'"),
    (["--exchange", "nosuchexchange"], "--exchange: ccxt has no exchange 'nosuchexchange'"),
])
def test_command_refuses_bad_arguments(tmp_path: Path, extra: list[str], message: str) -> None:
    argv = ["--db", str(tmp_path / "radar.db"), "--config-dir", str(tmp_path), "data", "download",
            "--symbols", BTC, "--timeframe", "1h", "--api-url", "http://127.0.0.1:9", *extra]
    code, out, err = _run(argv)
    assert code == 2 and message in err
