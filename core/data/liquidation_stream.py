"""The live liquidation proxy of `liquidation`: bitget's open-interest snapshot, recorded at
every candle close.

Bitget offers no liquidation stream through ccxt.pro (`watchLiquidations` exists for binance,
bybit and lighter only) and no open-interest history (`fetchOpenInterestHistory` is False),
so the strategy's series is built while the engine runs: `OpenInterestRecorder` polls
`exchange.fetch_open_interest(symbol)` when a candle closes and stamps the sample with that
candle boundary, `ts_open + timeframe` (the next candle's open time: the sample belongs to
the candle that opens then, as docs/single_position.md's "latest sample with time <= the
candle's open" reads it). Each sample is stored in `open_interest` (so `radar optimize` and
backtests can use the recorded history later) and appended to the in-memory series whose
`value_at(ts)` the live runner's signal stream reads (`SingleStrategyRunner(...,
funding=recorder.value_at)`).

Fail closed: a poll that fails (after its retries) or returns a bad value records a GAP at
that boundary (`value_at` gives nan there until the next good sample), so no entry can be
signalled on a stale open interest; exits are unaffected. The failure is logged at ERROR.
The gap is not stored: a later backtest of the stored series reads the previous sample there.
"""

from __future__ import annotations

import bisect
import logging
import math
import sqlite3
from typing import Any, Callable

import numpy as np

from core.data.download import RetryPolicy, store_page, wall_clock_ms, with_retry
from core.data.open_interest_download import parse_sample
from core.data.timeframes import timeframe_ms
from core.errors import RadarError
from core.storage.open_interest_store import write_open_interest

log = logging.getLogger(__name__)


class OpenInterestRecorder:
    """Records one perpetual's open interest at every candle close (module docstring).

    Args:
        exchange: a ccxt async exchange offering `fetch_open_interest` (not closed here).
        symbol: ccxt unified contract symbol, e.g. "BTC/USDT:USDT".
        timeframe: the candles' timeframe, e.g. "5m" (gives the boundary stamp).
        conn: autocommit connection to store samples in, or a function opening it at the first
            store (the engine's database is not touched before the engine starts); None: memory only.
        initial: (ts int64 ms UTC, oi float64) already stored, oldest first (the history the
            strategy warms up on), or None.
        retry: retry policy of each poll.
        clock: wall clock, ms UTC. A candle whose boundary lies more than one timeframe in the
            past when it is reported (a catch-up burst after a reconnect or a restart) is not
            polled: the snapshot would be today's value stamped on an old boundary.

    Raises:
        DataError: unknown timeframe.
    """

    def __init__(self, exchange: Any, symbol: str, timeframe: str,
                 conn: sqlite3.Connection | Callable[[], sqlite3.Connection] | None = None,
                 initial: tuple[np.ndarray, np.ndarray] | None = None, retry: RetryPolicy = RetryPolicy(),
                 clock: Callable[[], int] = wall_clock_ms) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.tf_ms = timeframe_ms(timeframe)
        self.conn = conn
        self.retry = retry
        self.ts: list[int] = [] if initial is None else [int(x) for x in initial[0]]
        self.oi: list[float] = [] if initial is None else [float(x) for x in initial[1]]
        self.gaps = 0
        self.clock = clock
        self._polling = -1          # the boundary being polled (concurrent reports of one candle poll once)

    def value_at(self, ts: int) -> float:
        """The latest recorded open interest with sample time <= ts (ms UTC); nan when none,
        or when the latest is a gap (a failed poll)."""
        i = bisect.bisect_right(self.ts, ts) - 1
        return self.oi[i] if i >= 0 else math.nan

    def series(self) -> tuple[np.ndarray, np.ndarray]:
        """(ts int64 ms UTC, oi float64) recorded so far, gaps (nan) included, oldest first."""
        return np.asarray(self.ts, dtype=np.int64), np.asarray(self.oi, dtype=np.float64)

    async def on_candle_closed(self, ts_open: int) -> tuple[int, float] | None:
        """Poll the snapshot for the candle that opened at `ts_open` (ms UTC) and just closed;
        returns the recorded (stamp, oi), (stamp, nan) for a gap, or None when that boundary is
        already recorded or being polled (a repeated or older candle), or too old to poll."""
        stamp = int(ts_open) + self.tf_ms
        if (self.ts and stamp <= self.ts[-1]) or stamp <= self._polling:
            return None
        if self.clock() - stamp > self.tf_ms:
            log.info("%s %s: candle %d reported late: its open interest is not recorded", self.exchange.id,
                     self.symbol, ts_open)
            return None
        self._polling = stamp
        what = f"{self.exchange.id} {self.symbol} open-interest snapshot at {stamp}"
        try:
            raw = await with_retry(lambda: self.exchange.fetch_open_interest(self.symbol), what, self.retry)
            _, value = parse_sample(raw)
            if not (math.isfinite(value) and value > 0):
                raise RadarError(f"{what}: open interest {value!r} is not a number > 0")
        except Exception as exc:             # any failure (ccxt, a malformed answer, a bug): a gap, fail closed
            self.gaps += 1
            log.error("%s: no open interest for this candle (%s): liquidation takes no new entry until the next "
                      "good sample", what, exc)
            self._append(stamp, math.nan)
            return stamp, math.nan
        self._append(stamp, value)
        if self.conn is not None:
            if not isinstance(self.conn, sqlite3.Connection):
                self.conn = self.conn()
            conn = self.conn
            store_page(conn, what, lambda: write_open_interest(conn, self.symbol, np.array([stamp], dtype=np.int64),
                                                               np.array([value]), self.exchange.id))
        return stamp, value

    def _append(self, stamp: int, value: float) -> None:
        self.ts.append(stamp)
        self.oi.append(value)
