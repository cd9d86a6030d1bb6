"""The live funding-rate series of `funding` and `grid_funding`: the perpetual's settled funding
rates, refreshed after candle closes while the engine runs.

A live or paper engine loads the rates stored in its database once at start (`radar data
download --funding`); without a refresh they end there, and the strategies' staleness rule
(`core.strategies.funding.MAX_RATE_AGE_MS`, 16 h) closes their gate 16 h later.
`FundingRecorder.on_candle_closed` asks ccxt's `fetch_funding_rate_history(symbol, since=last
known time + 1, limit=PAGE)` (the settled rates with their funding times, the series the
backtests read; bitget's endpoint ignores `since` and answers its newest page, ccxt filters it),
appends the rates newer than the last known one (strictly increasing funding times) to its
series and stores them in the `funding_rates` table, as `radar data download --funding` does.

The runners read the recorder itself: it is a live series (`live_series()` gives the two lists
it appends to, shared), accepted by `core.indicators.signal_streams.funding_lookup` and
`GridFunding.bind_market` in place of a static `(ts, rate)` pair; the lookups are the same code,
so a series that does not grow gives exactly the values of the static pair.

Polls: after a candle of the symbol closes (the engine's candle hook, `core.engine.assembly.
_attach_recorder`, for the single-position runner, which reads the rate at the next candle; the
`GridRunner` awaits it itself before quoting the next candle, whose gate reads the rates settled
by this close), only once the next rate can be due (the candle boundary is at least
`MIN_INTERVAL_MS` = 1 h, the shortest funding interval, after the last known funding time), one
at a time (concurrent reports of one candle poll once). Replays get no recorder (their rates are
the file's).

Fail closed: an exchange error (after retries) or a malformed answer (not a list of entries, a
bad time or rate, times not increasing) appends nothing and is logged at ERROR; the last rate
then ages, and the strategies' staleness rule stops new entries 16 h after it. A newest page
that may not reach back to the last known rate (a full page, bitget) is used for the signal but
no longer stored in this run (logged): the stored series stays a gap-free prefix that `radar
data download --funding` resumes from.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any, Callable

import numpy as np

from core.data.download import RetryPolicy, store_page, with_retry
from core.data.timeframes import timeframe_ms
from core.data.validation import BadRowsError, validate_funding_rows
from core.errors import DataError
from core.storage.candle_store import upsert_funding_rates

log = logging.getLogger(__name__)

#: the shortest funding interval (ms): no new rate can be due sooner after the last one
MIN_INTERVAL_MS = 3_600_000
#: rates asked per poll (bitget's largest page)
PAGE = 100
#: exchanges whose endpoint ignores `since` and answers its newest page (as funding_download's paging)
NEWEST_PAGE = frozenset({"bitget"})
#: while the refresh keeps failing, the ERROR is repeated every this many failed polls in a row
#: (the first always; once an hour on 5m candles), not at every candle
REPEAT_ERROR_EVERY = 12


class FundingRecorder:
    """The live funding-rate series of one perpetual (module docstring).

    Args:
        exchange: a ccxt async exchange offering `fetch_funding_rate_history` (not closed here).
        symbol: ccxt unified contract symbol, e.g. "BTC/USDT:USDT".
        timeframe: the candles' timeframe, e.g. "1h" (gives the candle boundary).
        conn: autocommit connection to store rates in, or a function opening it at the first store
            (the engine's database is not touched before the engine starts); None: memory only.
        initial: (ts int64 ms UTC, rate float64 fraction per interval) already stored, oldest
            first, or None.
        retry: retry policy of each poll.

    Attributes:
        ts, rate: the series (lists, appended to in place; `live_series()`).
        failures: polls that appended nothing because of an error or a malformed answer.

    Raises:
        DataError: unknown timeframe, or `initial` not strictly increasing / of unequal lengths.
    """

    def __init__(self, exchange: Any, symbol: str, timeframe: str,
                 conn: sqlite3.Connection | Callable[[], sqlite3.Connection] | None = None,
                 initial: tuple[np.ndarray, np.ndarray] | None = None,
                 retry: RetryPolicy = RetryPolicy()) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.tf_ms = timeframe_ms(timeframe)
        self.conn = conn
        self.retry = retry
        self.ts: list[int] = [] if initial is None else [int(x) for x in initial[0]]
        self.rate: list[float] = [] if initial is None else [float(x) for x in initial[1]]
        if len(self.ts) != len(self.rate) or any(b <= a for a, b in zip(self.ts, self.ts[1:])):
            raise DataError(f"{symbol} funding series: times must be strictly increasing, one rate each")
        self.failures = 0
        self.failing = 0                  # failed polls in a row (the log repeats every REPEAT_ERROR_EVERY)
        self.storing = True
        self._polling = False
        self._polled = -1           # the last candle boundary polled (each boundary is polled once)

    def live_series(self) -> tuple[list[int], list[float]]:
        """The (funding times int ms UTC, rates) lists this recorder appends to (shared, not copies)."""
        return self.ts, self.rate

    async def on_candle_closed(self, ts_open: int) -> list[tuple[int, float]] | None:
        """Poll after the candle that opened at `ts_open` (ms UTC) closed; returns the (time, rate)
        rows appended (possibly []), or None when not polled (no rate due yet, that candle
        already polled or a poll under way) or the poll failed (logged at ERROR, nothing
        appended: fail closed).

        Raises:
            RadarError: the database refused to store the new rates (they are in the series).
        """
        boundary = int(ts_open) + self.tf_ms
        if (self._polling or boundary <= self._polled
                or (self.ts and boundary < self.ts[-1] + MIN_INTERVAL_MS)):
            return None
        self._polling = True
        self._polled = boundary
        try:
            return await self._poll()
        finally:
            self._polling = False

    async def _poll(self) -> list[tuple[int, float]] | None:
        ex = self.exchange
        last = self.ts[-1] if self.ts else None
        since = None if last is None else last + 1
        what = f"{ex.id} {self.symbol} funding rates after {last}"
        try:
            raw = await with_retry(lambda: ex.fetch_funding_rate_history(self.symbol, since=since, limit=PAGE),
                                   what, self.retry)
            ts, rate = parse_rates(what, raw)
        except Exception as exc:          # any failure (ccxt, a malformed answer, a bug): nothing new, fail closed
            self.failures += 1
            self.failing += 1
            if self.failing % REPEAT_ERROR_EVERY == 1 or REPEAT_ERROR_EVERY == 1:   # the 1st, then every Nth in a row
                log.error("%s: no refresh of the funding rates (%s; %d failed poll(s) in a row): funding / "
                          "grid_funding take no new entry once the last rate is over 16 h old", self.symbol, exc,
                          self.failing)
            return None
        if self.failing:
            log.warning("%s: the funding-rate refresh works again after %d failed poll(s)", self.symbol, self.failing)
            self.failing = 0
        keep = ts > last if last is not None else np.ones(len(ts), dtype=bool)
        new_ts, new_rate = ts[keep], rate[keep]
        if ex.id in NEWEST_PAGE and last is not None and len(ts) >= PAGE and self.storing:
            self.storing = False          # the page may not reach back to `last`: rates may be missing between
            log.warning("%s: the newest page may not reach back to the last stored rate; the new rates are used "
                        "but no longer stored in this run (radar data download --funding fills the store)", what)
        out = list(zip(new_ts.tolist(), new_rate.tolist()))
        for t, r in out:
            self.ts.append(int(t))
            self.rate.append(float(r))
        if out and self.storing and self.conn is not None:
            if not isinstance(self.conn, sqlite3.Connection):
                self.conn = self.conn()
            conn = self.conn
            store_page(conn, what, lambda: upsert_funding_rates(conn, self.symbol, new_ts, new_rate))
        return out


def parse_rates(what: str, raw: Any) -> tuple[np.ndarray, np.ndarray]:
    """(ts int64 ms UTC, rate float64) of a ccxt funding-rate-history answer (a list of dicts with
    `timestamp` and `fundingRate`), sorted by time as given.

    Raises:
        DataError: not a list of dicts, a missing / non-numeric time or rate, or times not
            strictly increasing (`core.data.validation.validate_funding_rows`); `what` names the request.
    """
    if not isinstance(raw, list) or any(not isinstance(r, dict) for r in raw):
        raise DataError(f"{what}: expected a list of funding-rate entries, got {type(raw).__name__}")
    rows = np.zeros((len(raw), 6), dtype=np.float64)
    for i, r in enumerate(raw):
        rows[i, 0] = _number(r.get("timestamp"))
        rows[i, 1] = _number(r.get("fundingRate"))
    if len(rows):
        try:
            validate_funding_rows(what, rows)
        except BadRowsError as exc:
            raise DataError(str(exc)) from exc
    return rows[:, 0].astype(np.int64), np.ascontiguousarray(rows[:, 1])


def _number(value: Any) -> float:
    """A float of a ccxt value; nan for None, bools and non-numbers (refused by validation)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return float("nan")
    return float(value)
