"""Downloading open interest of perpetuals (ccxt) into the store (`open_interest`, migration 11).

What ccxt offers decides how (checked per exchange, `exchange.has`):

* `fetchOpenInterestHistory` (binance, bybit, okx, gate, ...): the history, paged by time
  (`since=cursor`, period = the candle timeframe), each validated page stored in its own
  transaction; the next run resumes after the newest stored sample, as
  `core.data.funding_download` does for funding rates;
* only `fetchOpenInterest` (bitget in ccxt 4.5: no history endpoint): the current
  snapshot, one sample per run (stamped with the exchange's time). A history builds up only
  by recording it: `core.data.liquidation_stream.OpenInterestRecorder` polls it at every
  candle close while the engine runs;
* neither: a UsageError.

Samples are `(ts ms UTC, open interest in contracts / base units)`; ccxt's
`openInterestAmount` is used (its `baseVolume` when the amount is missing).
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
from core.errors import DataError, UsageError
from core.storage.open_interest_store import last_open_interest_ts, validate_open_interest, write_open_interest

#: Samples per history request.
PAGE_SIZE = 200

HISTORY = "history"
SNAPSHOT = "snapshot"


@dataclass(frozen=True)
class OpenInterestDownload:
    """What one `download_open_interest` run did (times ms UTC).

    Attributes:
        symbol: ccxt unified contract symbol.
        mode: "history" (paged history) or "snapshot" (the current value only).
        start_ms: first time wanted (just after the newest stored sample, or `since`).
        end_ms: times < end_ms were wanted.
        first_ms, last_ms: first/last time stored by this run (None: nothing new).
        rows: samples stored by this run. pages: requests that returned an answer.
    """

    symbol: str
    mode: str
    start_ms: int
    end_ms: int
    first_ms: int | None
    last_ms: int | None
    rows: int
    pages: int


def open_interest_mode(exchange: Any) -> str | None:
    """"history", "snapshot" or None: what ccxt offers for `exchange` (module docstring)."""
    if exchange.has.get("fetchOpenInterestHistory"):
        return HISTORY
    if exchange.has.get("fetchOpenInterest"):
        return SNAPSHOT
    return None


def parse_sample(entry: Any) -> tuple[float, float]:
    """(ts, oi) as floats of one ccxt open-interest structure (nan where missing or not a number)."""
    if not isinstance(entry, dict):
        return float("nan"), float("nan")
    amount = entry.get("openInterestAmount")
    if amount is None:
        amount = entry.get("baseVolume")
    return _number(entry.get("timestamp")), _number(amount)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return float("nan")
    return float(value)


async def download_open_interest(
    exchange: Any,
    conn: sqlite3.Connection,
    symbol: str,
    timeframe: str,
    since_ms: int | None,
    until_ms: int | None = None,
    *,
    retry: RetryPolicy = RetryPolicy(),
    now_ms: Callable[[], int] = wall_clock_ms,
    progress: ProgressFn | None = None,
) -> OpenInterestDownload:
    """Download the open interest of the contract `symbol` into the store, resuming.

    Args:
        exchange: a ccxt async exchange (not closed here).
        conn: autocommit connection (`core.storage.db.open_sync`), no transaction open.
        symbol: ccxt unified contract symbol, e.g. "BTC/USDT:USDT".
        timeframe: period of the history samples, e.g. "5m" (history mode only).
        since_ms: first time wanted when nothing is stored (history mode; ignored once samples
            are stored, and by the snapshot mode).
        until_ms: times >= until_ms are not stored (None: up to now).
        retry: retry policy of each request. now_ms: clock (ms UTC), read once.
        progress: `progress(done_ms, total_ms)` after each page.

    Raises:
        UsageError: the exchange offers no open interest through ccxt, a spot symbol, an
            unknown symbol, or (history) nothing stored and no `since_ms`.
        DataError: a malformed page or snapshot (nothing of it is stored; the message names
            the symbol, the page and the bad row).
        RadarError: the exchange kept failing or refused a request; the database refused a write.
    """
    mode = open_interest_mode(exchange)
    if mode is None:
        raise UsageError(f"{exchange.id} offers no open interest through ccxt "
                         "(neither fetchOpenInterestHistory nor fetchOpenInterest)")
    market = await ensure_market(exchange, symbol, retry)
    if not market.get("contract"):
        raise UsageError(f"{symbol} on {exchange.id} is not a contract: it has no open interest")
    last = last_open_interest_ts(conn, symbol)
    end = now_ms() + 1 if until_ms is None else min(int(until_ms), now_ms() + 1)
    if mode == SNAPSHOT:
        return await _snapshot(exchange, conn, symbol, last, end, retry)
    if last is not None:
        start = last + 1
    elif since_ms is not None:
        start = int(since_ms)
    else:
        raise UsageError(f"{symbol} open interest: nothing stored yet; give a start date (--since)")
    cursor, pages, stored = start, 0, []
    while cursor < end:
        what = f"{exchange.id} {symbol} open-interest page from {fmt_utc(cursor)}"
        raw = await with_retry(
            lambda: exchange.fetch_open_interest_history(symbol, timeframe, since=cursor, limit=PAGE_SIZE,
                                                         params={}),
            what, retry)
        pages += 1
        if not isinstance(raw, list):
            raise DataError(f"{what}: refused, expected a list of open-interest entries; nothing of it was stored")
        if not raw:
            check_empty_response(exchange, what)
        ts, oi = _page(what, raw)
        keep = (ts >= cursor) & (ts < end)
        if not keep.any():
            break
        store_page(conn, what, lambda: write_open_interest(conn, symbol, ts[keep], oi[keep], exchange.id))
        stored.append(ts[keep])
        cursor = int(ts[keep][-1]) + 1
        if progress is not None:
            progress(min(cursor, end) - start, end - start)
    rows = sum(len(t) for t in stored)
    return OpenInterestDownload(symbol, HISTORY, start, end, int(stored[0][0]) if stored else None,
                                int(stored[-1][-1]) if stored else None, rows, pages)


def _page(what: str, raw: list) -> tuple[np.ndarray, np.ndarray]:
    """A validated page as (ts int64, oi float64) sorted by time (duplicates refused)."""
    pairs = np.array([parse_sample(r) for r in raw], dtype=np.float64).reshape(-1, 2)
    order = np.argsort(pairs[:, 0], kind="stable")
    pairs = pairs[order]
    try:
        validate_open_interest(what, pairs[:, 0], pairs[:, 1])
    except DataError as exc:
        raise DataError(f"{exc}; refused, nothing of this page was stored") from None
    return pairs[:, 0].astype(np.int64), np.ascontiguousarray(pairs[:, 1])


async def _snapshot(exchange: Any, conn: sqlite3.Connection, symbol: str, last: int | None, end: int,
                    retry: RetryPolicy) -> OpenInterestDownload:
    what = f"{exchange.id} {symbol} open-interest snapshot"
    raw = await with_retry(lambda: exchange.fetch_open_interest(symbol), what, retry)
    ts, oi = _page(what, [raw])
    start = 0 if last is None else last + 1
    keep = (ts >= start) & (ts < end)
    if keep.any():
        store_page(conn, what, lambda: write_open_interest(conn, symbol, ts[keep], oi[keep], exchange.id))
        t = int(ts[0])
        return OpenInterestDownload(symbol, SNAPSHOT, start, end, t, t, 1, 1)
    return OpenInterestDownload(symbol, SNAPSHOT, start, end, None, None, 0, 1)
