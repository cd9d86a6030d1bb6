"""Candle and funding-rate persistence (synchronous; use from the CLI or a worker thread).

Series are keyed by (symbol, market, timeframe). Writes are idempotent upserts:
storing the same candles twice changes nothing. Callers own the transaction
(`BEGIN` ... `COMMIT`) when several writes must land together.
`write_candles`/`write_funding_rates` also report how many rows were new,
updated or unchanged (what `radar data import` prints).
"""

from __future__ import annotations

import itertools
import sqlite3
from dataclasses import dataclass

import numpy as np

from core.errors import DataError
from core.model.candles import Candles


@dataclass(frozen=True)
class SeriesInfo:
    """Summary of one stored candle series (timestamps ms UTC)."""

    symbol: str
    market: str
    timeframe: str
    first_ts: int | None
    last_ts: int | None
    rows: int


def series_id(conn: sqlite3.Connection, symbol: str, market: str, timeframe: str, create: bool = True) -> int | None:
    """Id of the series, created when missing and `create` is true (else None)."""
    row = conn.execute(
        "SELECT id FROM candle_series WHERE symbol=? AND market=? AND timeframe=?", (symbol, market, timeframe)
    ).fetchone()
    if row:
        return int(row[0])
    if not create:
        return None
    cur = conn.execute(
        "INSERT INTO candle_series (symbol, market, timeframe) VALUES (?, ?, ?)", (symbol, market, timeframe)
    )
    return int(cur.lastrowid)


_UPSERT_CANDLES = (
    "INSERT INTO candles (series_id, ts, open, high, low, close, volume) VALUES (?,?,?,?,?,?,?) "
    "ON CONFLICT(series_id, ts) DO UPDATE SET open=excluded.open, high=excluded.high, "
    "low=excluded.low, close=excluded.close, volume=excluded.volume "
    "WHERE open<>excluded.open OR high<>excluded.high OR low<>excluded.low "
    "OR close<>excluded.close OR volume<>excluded.volume"
)
_UPSERT_FUNDING = (
    "INSERT INTO funding_rates (symbol, ts, rate) VALUES (?,?,?) "
    "ON CONFLICT(symbol, ts) DO UPDATE SET rate=excluded.rate WHERE rate<>excluded.rate"
)


@dataclass(frozen=True)
class WriteCounts:
    """What one upsert did: of `given` rows, `new` were inserted, `updated` overwrote
    different stored values and `unchanged` matched what was stored (given = new + updated + unchanged)."""

    given: int
    new: int
    updated: int
    unchanged: int


def upsert_candles(conn: sqlite3.Connection, candles: Candles) -> int:
    """Store `candles` (insert or overwrite by open time); returns the number of rows given.

    Does not open a transaction: wrap in `BEGIN`/`COMMIT` for atomicity.
    """
    return write_candles(conn, candles).given


def write_candles(conn: sqlite3.Connection, candles: Candles) -> WriteCounts:
    """Store `candles` like `upsert_candles` and count new, updated and unchanged rows.

    Rows whose stored values are identical are not rewritten. `candles.ts`
    must be unique (validated input). Does not open a transaction.
    """
    n = len(candles)
    sid = series_id(conn, candles.symbol, candles.market, candles.timeframe)
    if n == 0:
        return WriteCounts(0, 0, 0, 0)
    lo, hi = int(candles.ts.min()), int(candles.ts.max())
    count_sql = "SELECT COUNT(*) FROM candles WHERE series_id=? AND ts BETWEEN ? AND ?"
    before = conn.execute(count_sql, (sid, lo, hi)).fetchone()[0]
    changes = conn.total_changes
    conn.executemany(_UPSERT_CANDLES, zip(
        itertools.repeat(sid, n), candles.ts.tolist(), candles.open.tolist(), candles.high.tolist(),
        candles.low.tolist(), candles.close.tolist(), candles.volume.tolist(),
    ))
    changed = conn.total_changes - changes
    new = conn.execute(count_sql, (sid, lo, hi)).fetchone()[0] - before
    return WriteCounts(n, new, changed - new, n - changed)


def load_timestamps(conn: sqlite3.Connection, symbol: str, market: str, timeframe: str) -> np.ndarray:
    """int64 open times (ms UTC, sorted) of a stored series; empty when the series is unknown."""
    sid = series_id(conn, symbol, market, timeframe, create=False)
    if sid is None:
        return np.empty(0, dtype=np.int64)
    rows = conn.execute("SELECT ts FROM candles WHERE series_id=? ORDER BY ts", (sid,)).fetchall()
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


def load_candles(
    conn: sqlite3.Connection, symbol: str, market: str, timeframe: str,
    start_ms: int | None = None, end_ms: int | None = None,
) -> Candles:
    """The stored candles with `start_ms <= ts < end_ms`, sorted by open time.

    Raises:
        DataError: no such series is stored.
    """
    sid = series_id(conn, symbol, market, timeframe, create=False)
    if sid is None:
        raise DataError(f"no stored candles for {symbol} {market} {timeframe}: import or download them first")
    lo = -(2**63) if start_ms is None else int(start_ms)
    hi = 2**63 - 1 if end_ms is None else int(end_ms)
    rows = conn.execute(
        "SELECT ts, open, high, low, close, volume FROM candles WHERE series_id=? AND ts>=? AND ts<? ORDER BY ts",
        (sid, lo, hi),
    ).fetchall()
    arr = np.array(rows, dtype=np.float64).reshape(-1, 6)
    ts = np.array([r[0] for r in rows], dtype=np.int64)
    return Candles(symbol, market, timeframe, ts, *(np.ascontiguousarray(arr[:, i]) for i in range(1, 6)))


def last_candle_ts(conn: sqlite3.Connection, symbol: str, market: str, timeframe: str) -> int | None:
    """Open time (ms UTC) of the newest stored candle of the series, or None."""
    row = conn.execute(
        "SELECT MAX(c.ts) FROM candles c JOIN candle_series s ON s.id=c.series_id "
        "WHERE s.symbol=? AND s.market=? AND s.timeframe=?", (symbol, market, timeframe),
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def list_series(conn: sqlite3.Connection) -> list[SeriesInfo]:
    """Every stored series with its first/last open time and row count, sorted by symbol."""
    rows = conn.execute(
        "SELECT s.symbol, s.market, s.timeframe, MIN(c.ts), MAX(c.ts), COUNT(c.ts) "
        "FROM candle_series s LEFT JOIN candles c ON c.series_id=s.id "
        "GROUP BY s.id ORDER BY s.symbol, s.market, s.timeframe"
    ).fetchall()
    return [SeriesInfo(*r) for r in rows]


def upsert_funding_rates(conn: sqlite3.Connection, symbol: str, ts: np.ndarray, rate: np.ndarray) -> int:
    """Store funding rates (`ts` int64 ms UTC, `rate` fraction per interval); returns rows given."""
    return write_funding_rates(conn, symbol, ts, rate).given


def write_funding_rates(conn: sqlite3.Connection, symbol: str, ts: np.ndarray, rate: np.ndarray) -> WriteCounts:
    """Store funding rates like `upsert_funding_rates` and count new, updated and unchanged rows.

    `ts` (int64 ms UTC, unique) and `rate` have shape (n,). Does not open a transaction.
    """
    ts = np.asarray(ts, dtype=np.int64)
    n = int(ts.shape[0])
    if n == 0:
        return WriteCounts(0, 0, 0, 0)
    lo, hi = int(ts.min()), int(ts.max())
    count_sql = "SELECT COUNT(*) FROM funding_rates WHERE symbol=? AND ts BETWEEN ? AND ?"
    before = conn.execute(count_sql, (symbol, lo, hi)).fetchone()[0]
    changes = conn.total_changes
    conn.executemany(_UPSERT_FUNDING, zip(
        itertools.repeat(symbol, n), ts.tolist(), np.asarray(rate, dtype=np.float64).tolist()
    ))
    changed = conn.total_changes - changes
    new = conn.execute(count_sql, (symbol, lo, hi)).fetchone()[0] - before
    return WriteCounts(n, new, changed - new, n - changed)


def load_funding_rates(
    conn: sqlite3.Connection, symbol: str, start_ms: int | None = None, end_ms: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(ts int64 ms UTC, rate float64) of the stored funding rates of `symbol`, sorted by time."""
    lo = -(2**63) if start_ms is None else int(start_ms)
    hi = 2**63 - 1 if end_ms is None else int(end_ms)
    rows = conn.execute(
        "SELECT ts, rate FROM funding_rates WHERE symbol=? AND ts>=? AND ts<? ORDER BY ts", (symbol, lo, hi)
    ).fetchall()
    return (np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.float64))


def last_funding_ts(conn: sqlite3.Connection, symbol: str) -> int | None:
    """Time (ms UTC) of the newest stored funding rate of `symbol`, or None."""
    row = conn.execute("SELECT MAX(ts) FROM funding_rates WHERE symbol=?", (symbol,)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def list_funding(conn: sqlite3.Connection) -> list[tuple[str, int, int, int]]:
    """(symbol, first_ts, last_ts, rows) for every symbol with stored funding rates."""
    return [tuple(r) for r in conn.execute(
        "SELECT symbol, MIN(ts), MAX(ts), COUNT(*) FROM funding_rates GROUP BY symbol ORDER BY symbol"
    ).fetchall()]
