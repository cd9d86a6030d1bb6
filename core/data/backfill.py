"""REST back-fill of candles a live stream missed (after a reconnect or a gap).

`Backfiller.fill(exchange, symbol, timeframe, start_ts, end_ts)` returns the
closed candles with `start_ts <= ts < end_ts`, in order. `end_ts` is the open
time of a candle the stream has already seen (the forming one), so every
candle in the range is closed and REST values are final. Rows are fetched
with ccxt's `fetch_ohlcv(symbol, timeframe, since, limit)` page by page;
malformed rows are refused (logged, reported) and count as missing. Missing
candles are retried a few times (REST can lag the stream by a moment), then
taken from `fallback` rows (e.g. the websocket snapshot) when available, and
otherwise reported as `missing` - a hole the exchange cannot fill.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from core.data.feed import ClosedCandle, MessageRejected, Row, candle_from_row, check_row, iso_ms
from core.data.timeframes import timeframe_ms
from core.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class Fill:
    """Result of one back-fill.

    Attributes:
        candles: closed candles in open-time order; `source` "backfill" (REST) or
            "live" (taken from the fallback rows).
        missing: open times (ms UTC) in the range that neither REST nor the fallback had.
        rejected: malformed REST rows that were refused.
    """

    candles: list[ClosedCandle] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)
    rejected: list[MessageRejected] = field(default_factory=list)


class Backfiller:
    """Fetches closed candles by REST for a time range.

    Args:
        page_limit: candles asked per `fetch_ohlcv` call (Bitget's history endpoint serves <= 200).
        retries: extra attempts while candles are still missing.
        retry_delay_s: pause between those attempts, seconds.
        sleep: awaitable sleep (injectable for tests).
    """

    def __init__(
        self,
        page_limit: int = 200,
        retries: int = 2,
        retry_delay_s: float = 1.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if page_limit < 1:
            raise ValueError(f"page_limit must be >= 1, got {page_limit}")
        self.page_limit = page_limit
        self.retries = retries
        self.retry_delay_s = retry_delay_s
        self._sleep = sleep

    async def fill(
        self,
        exchange: Any,
        symbol: str,
        timeframe: str,
        start_ts: int,
        end_ts: int,
        fallback: Mapping[int, Row] | None = None,
    ) -> Fill:
        """Closed candles with `start_ts <= ts < end_ts` (ms UTC open times on the grid).

        Raises:
            ccxt errors (NetworkError, ExchangeError, ...) from `fetch_ohlcv`; the caller retries.
        """
        step = timeframe_ms(timeframe)
        wanted = list(range(start_ts, end_ts, step))
        got: dict[int, Row] = {}
        result = Fill()
        for attempt in range(self.retries + 1):
            missing = [ts for ts in wanted if ts not in got]
            if not missing:
                break
            if attempt:
                log.info("%s %s back-fill: %d candle(s) from %s not served yet, retrying",
                         symbol, timeframe, len(missing), iso_ms(missing[0]))
                await self._sleep(self.retry_delay_s)
            rows, rejected = await fetch_range(exchange, symbol, timeframe, missing[0], end_ts, self.page_limit)
            got.update(rows)
            result.rejected.extend(rejected)
        fallback = fallback or {}
        for ts in wanted:
            if ts in got:
                result.candles.append(candle_from_row(symbol, timeframe, got[ts], "backfill"))
            elif ts in fallback:
                result.candles.append(candle_from_row(symbol, timeframe, fallback[ts], "live"))
            else:
                result.missing.append(ts)
        if result.missing:
            log.warning("%s %s back-fill: exchange has no candle for %d open time(s) from %s to %s",
                        symbol, timeframe, len(result.missing), iso_ms(result.missing[0]), iso_ms(result.missing[-1]))
        return result


async def fetch_range(
    exchange: Any, symbol: str, timeframe: str, start_ts: int, end_ts: int, page_limit: int = 200,
) -> tuple[dict[int, Row], list[MessageRejected]]:
    """Checked REST candles `{ts: row}` with `start_ts <= ts < end_ts`, paging forward with
    `fetch_ohlcv(symbol, timeframe, since=cursor, limit=page_limit)`.

    An empty page inside the range (an exchange hole) skips one page ahead; the
    number of calls is bounded by the range length. Malformed rows are logged and
    returned as `MessageRejected`s.

    Raises:
        ccxt errors from `fetch_ohlcv`.
    """
    step = timeframe_ms(timeframe)
    rows: dict[int, Row] = {}
    rejected: list[MessageRejected] = []
    cursor = start_ts
    max_calls = (end_ts - start_ts) // (step * page_limit) + 2
    for _ in range(max_calls):
        if cursor >= end_ts:
            break
        page = await exchange.fetch_ohlcv(symbol, timeframe, since=cursor, limit=page_limit)
        newest = None
        for raw in page or []:
            try:
                row = check_row(symbol, timeframe, raw)
            except DataError as exc:
                log.warning("REST candle refused: %s", exc)
                ts = raw[0] if isinstance(raw, (list, tuple)) and raw and isinstance(raw[0], int) else None
                rejected.append(MessageRejected(symbol, timeframe, ts, f"REST: {exc}"))
                continue
            if cursor <= row[0] < end_ts:
                rows[row[0]] = row
                newest = row[0] if newest is None else max(newest, row[0])
        cursor = cursor + page_limit * step if newest is None else newest + step
    return rows, rejected
