"""Downloading funding-rate history (ccxt `fetch_funding_rate_history`) into the store.

`download_funding(exchange, conn, symbol, since_ms, ...)` resumes after the
newest stored rate of the symbol (`candle_store.last_funding_ts`) and stores
only validated pages, each in its own transaction. Two ways of paging, chosen
by how the exchange's ccxt method behaves:

* by time (most exchanges): ask `since=cursor`, store the page, move the cursor
  past its last rate, stop at an empty page;
* by page number, newest first (`PAGE_NUMBER_PAGING`, e.g. bitget, whose
  endpoint ignores `since`): walk pages 1, 2, ... until one reaches back to the
  start, then store the pages oldest first, so an interruption still leaves a
  gap-free prefix for the next run to resume from.

Rates are fractions per funding interval (0.0001 = 0.01 %); times ms UTC as the
exchange reports them (they may sit a few ms off the hour).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from core.data.download import (
    ProgressFn,
    RetryPolicy,
    check_empty_response,
    ensure_market,
    fmt_utc,
    store_page,
    wall_clock_ms,
    with_retry,
)
from core.data.validation import BadRowsError, validate_funding_rows
from core.errors import DataError, UsageError
from core.storage.candle_store import last_funding_ts, upsert_funding_rates

#: exchange id -> (ccxt param naming the 1-based page, rates per page), for exchanges paged by number.
PAGE_NUMBER_PAGING: dict[str, tuple[str, int]] = {"bitget": ("pageNo", 100)}

#: Rates per request for exchanges paged by time.
DEFAULT_PAGE_SIZE = 100


@dataclass(frozen=True)
class FundingDownload:
    """What one `download_funding` run did (times ms UTC).

    Attributes:
        symbol: ccxt unified symbol.
        start_ms: first time wanted (just after the last stored rate, or `since`).
        end_ms: times < end_ms were wanted (`until`, or now + 1 ms).
        first_ms, last_ms: first/last time stored by this run (None: nothing new).
        rows: rates stored by this run.
        pages: requests that returned a page (retries not counted).
    """

    symbol: str
    start_ms: int
    end_ms: int
    first_ms: int | None
    last_ms: int | None
    rows: int
    pages: int


def offers_funding(exchange: Any) -> bool:
    """Whether ccxt offers funding-rate history for `exchange`."""
    return bool(exchange.has.get("fetchFundingRateHistory"))


async def download_funding(
    exchange: Any,
    conn: sqlite3.Connection,
    symbol: str,
    since_ms: int | None,
    until_ms: int | None = None,
    *,
    retry: RetryPolicy = RetryPolicy(),
    now_ms: Callable[[], int] = wall_clock_ms,
    progress: ProgressFn | None = None,
) -> FundingDownload:
    """Download the funding-rate history of the contract `symbol` into the store, resuming.

    Args:
        exchange: a ccxt async exchange (not closed here).
        conn: autocommit connection from `core.storage.db.open_sync`, no transaction open.
        symbol: ccxt unified contract symbol, e.g. "BTC/USDT:USDT".
        since_ms: first time wanted when nothing is stored; ignored once rates are stored.
        until_ms: times >= until_ms are not stored (None: up to now).
        retry: retry policy of each request.
        now_ms: clock (ms UTC), read once.
        progress: `progress(done_ms, total_ms)` of the time range after each page.

    Raises:
        UsageError: no funding history in ccxt for this exchange, a spot symbol,
            an unknown symbol, or nothing stored and no `since_ms`.
        DataError: a malformed page (message names the symbol and the page);
            nothing of that page is stored (paged by number: nothing of the run).
        RadarError: the exchange kept failing or refused a request; the database refused a write.
    """
    if not offers_funding(exchange):
        raise UsageError(f"{exchange.id} does not offer funding-rate history (fetchFundingRateHistory) through ccxt")
    market = await ensure_market(exchange, symbol, retry)
    if not market.get("contract"):
        raise UsageError(f"{symbol} on {exchange.id} is not a contract: it has no funding rates")
    last = last_funding_ts(conn, symbol)
    if last is not None:
        start = last + 1
    elif since_ms is not None:
        start = int(since_ms)
    else:
        raise UsageError(f"{symbol} funding: nothing stored yet; give a start date (--since)")
    end = now_ms() + 1 if until_ms is None else min(int(until_ms), now_ms() + 1)
    if start >= end:
        return FundingDownload(symbol, start, end, None, None, 0, 0)
    fetch = _Fetcher(exchange, symbol, retry)
    if exchange.id in PAGE_NUMBER_PAGING:
        pages, stored = await _by_page_number(fetch, conn, start, end, progress)
    else:
        pages, stored = await _by_time(fetch, conn, start, end, progress)
    first = stored[0][0] if stored else None
    last_new = stored[-1][-1] if stored else None
    rows = sum(len(ts) for ts in stored)
    return FundingDownload(symbol, start, end, None if first is None else int(first),
                           None if last_new is None else int(last_new), rows, pages)


class _Fetcher:
    """One validated funding page: (ts int64, rate float64), sorted by time."""

    def __init__(self, exchange: Any, symbol: str, retry: RetryPolicy) -> None:
        self.exchange, self.symbol, self.retry = exchange, symbol, retry

    async def __call__(self, what: str, since: int | None, limit: int, params: dict) -> tuple[np.ndarray, np.ndarray]:
        ex = self.exchange
        raw = await with_retry(
            lambda: ex.fetch_funding_rate_history(self.symbol, since=since, limit=limit, params=params),
            what, self.retry)
        if not isinstance(raw, list) or any(not isinstance(r, dict) for r in raw):
            raise DataError(f"{what}: refused, expected a list of funding-rate entries; nothing of it was stored")
        if not raw:
            check_empty_response(ex, what)
        rows = np.zeros((len(raw), 6), dtype=np.float64)
        for i, r in enumerate(raw):
            rows[i, 0] = _number(r.get("timestamp"))
            rows[i, 1] = _number(r.get("fundingRate"))
        if len(rows):
            try:
                validate_funding_rows(what, rows)
            except BadRowsError as exc:
                raise DataError(f"{exc}; nothing of this page was stored") from exc
        return rows[:, 0].astype(np.int64), np.ascontiguousarray(rows[:, 1])


def _number(value: Any) -> float:
    """A float of a ccxt value; nan for None, bools and non-numbers (refused by validation)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return float("nan")
    return float(value)


def _store(conn: sqlite3.Connection, symbol: str, what: str, ts: np.ndarray, rate: np.ndarray) -> None:
    store_page(conn, what, lambda: upsert_funding_rates(conn, symbol, ts, rate))


async def _by_time(fetch: _Fetcher, conn: sqlite3.Connection, start: int, end: int,
                   progress: ProgressFn | None) -> tuple[int, list[np.ndarray]]:
    """Forward paging by `since`; returns (pages fetched, stored ts arrays in order)."""
    cursor, pages, stored = start, 0, []
    while cursor < end:
        what = f"{fetch.exchange.id} {fetch.symbol} funding page from {fmt_utc(cursor)}"
        ts, rate = await fetch(what, cursor, DEFAULT_PAGE_SIZE, {})
        pages += 1
        keep = (ts >= cursor) & (ts < end)
        if not keep.any():
            break
        _store(conn, fetch.symbol, what, ts[keep], rate[keep])
        stored.append(ts[keep])
        cursor = int(ts[keep][-1]) + 1
        if progress is not None:
            progress(min(cursor, end) - start, end - start)
    return pages, stored


async def _by_page_number(fetch: _Fetcher, conn: sqlite3.Connection, start: int, end: int,
                          progress: ProgressFn | None) -> tuple[int, list[np.ndarray]]:
    """Newest-first paging by page number, stored oldest first; returns (pages fetched, stored ts arrays)."""
    param, size = PAGE_NUMBER_PAGING[fetch.exchange.id]
    collected: list[tuple[str, np.ndarray, np.ndarray]] = []
    page_no, prev_oldest = 1, None
    while True:
        what = f"{fetch.exchange.id} {fetch.symbol} funding page {page_no}"
        ts, rate = await fetch(what, None, size, {param: page_no})
        if not len(ts):
            break
        oldest = int(ts[0])
        if prev_oldest is not None and oldest >= prev_oldest:
            raise DataError(f"{what}: refused, page {page_no} (oldest {fmt_utc(oldest)}) does not reach back "
                            f"before page {page_no - 1} (oldest {fmt_utc(prev_oldest)}); nothing was stored")
        keep = (ts >= start) & (ts < end)
        if prev_oldest is not None:
            keep &= ts < prev_oldest  # a rate published mid-walk shifts the pages by one
        if keep.any():
            collected.append((f"{what} ({fmt_utc(int(ts[0]))} .. {fmt_utc(int(ts[-1]))})", ts[keep], rate[keep]))
        if progress is not None:
            progress(end - max(oldest, start), end - start)
        if oldest <= start or len(ts) < size:
            break
        prev_oldest, page_no = oldest, page_no + 1
    stored = []
    for what, ts, rate in reversed(collected):
        _store(conn, fetch.symbol, what, ts, rate)
        stored.append(ts)
    return page_no, stored
