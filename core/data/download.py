"""Downloading closed candles from an exchange (ccxt async) into the candle store.

`download_candles(exchange, conn, symbol, timeframe, since_ms, ...)` pages
through `exchange.fetch_ohlcv` and stores each validated page in its own
transaction, so an interrupted download leaves a gap-free prefix and the next
run resumes after the newest stored candle (`candle_store.last_candle_ts`).

Paging: every request starts one candle before the next wanted open time (one
candle of overlap), so an exchange that aligns its window on the end time
cannot silently drop the first wanted candle; candles already stored, the
still-forming candle (open + timeframe > now) and candles at or after `until`
are dropped before storing. A page with nothing new moves the cursor one window
(`page size - 1` candles) on, which steps over periods without trading (before
a listing, maintenance) without looping forever.

The exchange object is injected (the caller builds it, e.g. pointed at a local
stub in tests) and is not closed here: the caller owns it. Requests go through
ccxt's own throttler (`enableRateLimit`); transient errors are retried with
exponential backoff (`RetryPolicy`, `with_retry`), which `core.data.funding_download`
shares. All times are int ms UTC.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, TypeVar

import ccxt.async_support as ccxt
import numpy as np

from core.data.timeframes import timeframe_ms
from core.data.validation import BadRowsError, validate_candle_rows
from core.errors import DataError, RadarError, UsageError
from core.model.candles import Candles
from core.storage.candle_store import last_candle_ts, upsert_candles

log = logging.getLogger(__name__)

T = TypeVar("T")

#: ccxt errors worth another attempt (all are ccxt.NetworkError subclasses; listed for the reader).
RETRYABLE = (ccxt.RequestTimeout, ccxt.RateLimitExceeded, ccxt.DDoSProtection,
             ccxt.ExchangeNotAvailable, ccxt.NetworkError)

#: `progress(done, total)`: called after each stored page; units are arbitrary but consistent per call site.
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff.

    Attributes:
        attempts: total tries of one request (>= 1).
        base_delay_s: wait after the first failure, seconds; doubles each time.
        max_delay_s: cap on one wait, seconds.
    """

    attempts: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise UsageError(f"retry attempts must be >= 1, got {self.attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise UsageError(f"retry delays must be >= 0, got {self.base_delay_s} and {self.max_delay_s}")

    def delay_s(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th consecutive failure (1-based)."""
        return min(self.max_delay_s, self.base_delay_s * 2 ** (failures - 1))


async def with_retry(call: Callable[[], Awaitable[T]], what: str, policy: RetryPolicy) -> T:
    """`await call()`, retrying `RETRYABLE` ccxt errors per `policy`.

    `what` names the request in messages, e.g. "bitget BTC/USDT:USDT 1h page from 2024-01-01 00:00 UTC".

    Raises:
        RadarError: still failing after `policy.attempts` tries, or any other
            ccxt error (message: `what`, the ccxt error class and its text).
        DataError: the exchange's response could not be decoded (ccxt.BadResponse,
            or ccxt's parser failed on it).
    """
    for attempt in range(1, policy.attempts + 1):
        try:
            return await call()
        except RETRYABLE as exc:
            if attempt == policy.attempts:
                raise RadarError(f"{what}: gave up after {attempt} attempt(s): {_describe(exc)}") from exc
            delay = policy.delay_s(attempt)
            log.warning("%s: %s; retry %d/%d in %.2fs", what, _describe(exc), attempt, policy.attempts - 1, delay)
            await asyncio.sleep(delay)
        except ccxt.BadResponse as exc:
            raise DataError(f"{what}: malformed exchange response: {_describe(exc)}") from exc
        except (TypeError, ValueError, KeyError, IndexError) as exc:  # ccxt choking on an odd response
            raise DataError(f"{what}: could not parse the exchange response: {_describe(exc)}") from exc
        except ccxt.BaseError as exc:
            raise RadarError(f"{what}: {_describe(exc)}") from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _describe(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip()
    if len(text) > limit:
        text = text[:limit] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def market_of(symbol: str) -> str:
    """Store market of a ccxt symbol: "futures" for a contract ("BTC/USDT:USDT"), else "spot"."""
    return "futures" if ":" in symbol else "spot"


def fmt_utc(ms: int) -> str:
    """`YYYY-MM-DD HH:MM UTC` of a ms timestamp (for messages)."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def wall_clock_ms() -> int:
    """Now, int ms UTC."""
    return int(time.time() * 1000)


def override_api_urls(exchange: Any, base_url: str) -> None:
    """Send every REST API group of `exchange` to `base_url` (e.g. "http://127.0.0.1:8080").

    For tests and private mirrors; ccxt appends its usual paths (e.g. "/api/v2/...").
    """
    api = exchange.urls.get("api")
    base = base_url.rstrip("/")
    if isinstance(api, dict):
        exchange.urls = {**exchange.urls, "api": {key: base for key in api}}
    else:
        exchange.urls = {**exchange.urls, "api": base}


async def ensure_market(exchange: Any, symbol: str, policy: RetryPolicy) -> dict:
    """Load `exchange`'s markets (with retries) and return the market of `symbol`.

    Raises:
        UsageError: the exchange has no such symbol.
        RadarError / DataError: as `with_retry`.
    """
    markets = await with_retry(lambda: exchange.load_markets(), f"{exchange.id} load markets", policy)
    if symbol not in markets:
        close = sorted(s for s in markets if s.split("/")[0] == symbol.split("/")[0])[:5]
        hint = f" (same base: {', '.join(close)})" if close else ""
        raise UsageError(f"{exchange.id} has no market {symbol!r}{hint}")
    return markets[symbol]


def page_limit(exchange: Any, market: dict, timeframe: str) -> int:
    """Candles per `fetch_ohlcv` request: the exchange's declared maximum for this market.

    Read from ccxt's `features` (e.g. bitget swap: 200, the history endpoint's
    cap), lowered by a per-timeframe cap where ccxt keeps one
    (`options['fetchOHLCV'][type]['maxLimitPerTimeframe']`, bitget); 100 when
    ccxt declares nothing. Always >= 2 (paging overlaps one candle).
    """
    kind = "spot" if market.get("spot") else market.get("type") or "swap"
    feats = (getattr(exchange, "features", None) or {}).get(kind) or {}
    if kind != "spot" and "fetchOHLCV" not in feats:
        feats = feats.get("linear" if market.get("linear", True) else "inverse") or {}
    limit = (feats.get("fetchOHLCV") or {}).get("limit") or 100
    opts = (exchange.options.get("fetchOHLCV") or {}) if isinstance(exchange.options, dict) else {}
    per_tf = ((opts.get("spot" if kind == "spot" else "swap") or {}).get("maxLimitPerTimeframe") or {})
    if timeframe in per_tf:
        limit = min(limit, int(per_tf[timeframe]))
    return max(2, int(limit))


@dataclass(frozen=True)
class CandleDownload:
    """What one `download_candles` run did (times ms UTC).

    Attributes:
        symbol, market, timeframe: the series.
        start_ms: first open time wanted (after the last stored candle, or `since`).
        end_ms: open times < end_ms were wanted (min of `until` and the forming candle).
        first_ms, last_ms: first/last open time stored by this run (None: nothing new).
        rows: candles stored by this run.
        pages: requests that returned a page (retries not counted).
    """

    symbol: str
    market: str
    timeframe: str
    start_ms: int
    end_ms: int
    first_ms: int | None
    last_ms: int | None
    rows: int
    pages: int


def store_page(conn: sqlite3.Connection, what: str, write: Callable[[], Any]) -> None:
    """Run `write()` in one `BEGIN IMMEDIATE ... COMMIT` transaction; rolled back on any error.

    Raises:
        RadarError: the database refused the write (`what` names the page).
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            write()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise RadarError(f"{what}: database error, page not stored: {exc}") from exc


def closed_end_ms(now_ms: int, tf_ms: int, until_ms: int | None) -> int:
    """Exclusive bound on open times to store: the forming candle's open time, or `until_ms` if earlier."""
    end = (now_ms // tf_ms) * tf_ms
    return end if until_ms is None else min(end, int(until_ms))


async def download_candles(
    exchange: Any,
    conn: sqlite3.Connection,
    symbol: str,
    timeframe: str,
    since_ms: int | None,
    until_ms: int | None = None,
    *,
    retry: RetryPolicy = RetryPolicy(),
    limit: int | None = None,
    now_ms: Callable[[], int] = wall_clock_ms,
    progress: ProgressFn | None = None,
) -> CandleDownload:
    """Download the closed candles of `symbol` `timeframe` into the store, resuming after the last stored one.

    Args:
        exchange: a ccxt async exchange (not closed here).
        conn: autocommit connection from `core.storage.db.open_sync`, no transaction open.
        symbol: ccxt unified symbol; stored under `market_of(symbol)`.
        timeframe: e.g. "1h" (must be one of `exchange.timeframes`).
        since_ms: first open time wanted when nothing is stored (rounded up to the
            timeframe grid); ignored once the series has candles.
        until_ms: open times >= until_ms are not fetched (None: up to the last closed candle).
        retry: retry policy of each request.
        limit: candles per request (default `page_limit`).
        now_ms: clock (ms UTC), read once; candles with open + timeframe > now are forming.
        progress: `progress(done_candles, total_candles)` after each stored page.

    Returns:
        A `CandleDownload` summary.

    Raises:
        UsageError: unknown symbol/timeframe, or nothing stored and no `since_ms`.
        DataError: a malformed page (message names the symbol and the page's
            time); nothing of that page is stored, earlier pages stay.
        RadarError: the exchange kept failing or refused a request; the database refused a write.
    """
    tf = timeframe_ms(timeframe)
    if not exchange.has.get("fetchOHLCV"):
        raise UsageError(f"{exchange.id} does not offer candles (fetchOHLCV) through ccxt")
    if exchange.timeframes and timeframe not in exchange.timeframes:
        raise UsageError(f"{exchange.id} has no {timeframe} candles; it offers {', '.join(exchange.timeframes)}")
    market_info = await ensure_market(exchange, symbol, retry)
    market = market_of(symbol)
    size = limit if limit is not None else page_limit(exchange, market_info, timeframe)
    if size < 2:
        raise UsageError(f"candles per request must be >= 2, got {size}")

    last = last_candle_ts(conn, symbol, market, timeframe)
    if last is not None:
        start = last + tf
    elif since_ms is not None:
        start = -(-int(since_ms) // tf) * tf
    else:
        raise UsageError(f"{symbol} {market} {timeframe}: nothing stored yet; give a start date (--since)")
    end = closed_end_ms(now_ms(), tf, until_ms)
    total = max(0, (end - start) // tf)

    cursor, stored, pages, first = start, 0, 0, None
    while cursor < end:
        req_since = cursor - tf
        what = f"{exchange.id} {symbol} {timeframe} page from {fmt_utc(req_since)}"
        rows = await _fetch_page(exchange, symbol, timeframe, req_since, size, what, retry)
        pages += 1
        if not len(rows):
            check_empty_response(exchange, what)
        elif rows[0, 0] >= end:
            break
        keep = rows[(rows[:, 0] >= cursor) & (rows[:, 0] < end)] if len(rows) else rows
        if not len(keep):
            cursor = req_since + size * tf  # nothing new in this window: step over it
            continue
        candles = Candles.from_rows(symbol, market, timeframe, keep)
        store_page(conn, what, lambda: upsert_candles(conn, candles))
        first = int(candles.ts[0]) if first is None else first
        stored += len(candles)
        cursor = int(candles.ts[-1]) + tf
        log.debug("%s: stored %d candles up to %s", what, len(candles), fmt_utc(int(candles.ts[-1])))
        if progress is not None:
            progress(min(total, (cursor - start) // tf), total)
    last_new = None if first is None else cursor - tf
    return CandleDownload(symbol, market, timeframe, start, end, first, last_new, stored, pages)


def check_empty_response(exchange: Any, what: str) -> None:
    """Refuse an empty page whose HTTP body was not JSON (ccxt turns such a body into "no rows").

    Uses `exchange.last_http_response` (ccxt keeps it by default); skipped when absent.

    Raises:
        DataError: the last response body is neither empty nor JSON.
    """
    body = getattr(exchange, "last_http_response", None)
    if not isinstance(body, str) or not body.strip():
        return
    try:
        json.loads(body)
    except ValueError:
        raise DataError(f"{what}: refused, the exchange answered with a body that is not JSON: "
                        f"{body.strip()[:120]!r}") from None


async def _fetch_page(exchange: Any, symbol: str, timeframe: str, since: int, size: int, what: str,
                      retry: RetryPolicy) -> np.ndarray:
    """One validated page as an (n, 6) float64 array `[ts, o, h, l, c, v]` (ccxt sorts it by time).

    Raises:
        DataError: the page is not a list of 6-value rows, or has a bad row
            (`core.data.validation` kinds: high < low, off-grid time, ...).
    """
    raw = await with_retry(lambda: exchange.fetch_ohlcv(symbol, timeframe, since=since, limit=size), what, retry)
    if not isinstance(raw, list) or any(not isinstance(r, (list, tuple)) or len(r) != 6 for r in raw):
        raise DataError(f"{what}: refused, expected a list of [ts, open, high, low, close, volume] rows; "
                        "nothing of this page was stored")
    try:
        rows = np.array([[np.nan if v is None else v for v in r] for r in raw], dtype=np.float64).reshape(-1, 6)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what}: refused, a value is not a number ({exc}); nothing of this page was stored") from exc
    if len(rows):
        try:
            validate_candle_rows(what, rows, timeframe_ms(timeframe))
        except BadRowsError as exc:
            raise DataError(f"{exc}; nothing of this page was stored") from exc
    return rows
