"""Open-interest persistence (table `open_interest`, migration 11), as `candle_store` keeps
funding rates: synchronous, the caller owns the transaction.

A series is `(ts, oi)`: ts int64 ms UTC sorted, oi float64 open interest (contracts in
base units, > 0), one row per (symbol, ts); `source` is the exchange the sample came from.
"""

from __future__ import annotations

import itertools
import sqlite3

import numpy as np

from core.errors import DataError
from core.storage.candle_store import WriteCounts

_UPSERT = (
    "INSERT INTO open_interest (symbol, ts, oi, source) VALUES (?,?,?,?) "
    "ON CONFLICT(symbol, ts) DO UPDATE SET oi=excluded.oi, source=excluded.source "
    "WHERE oi<>excluded.oi OR source<>excluded.source"
)


def validate_open_interest(what: str, ts: np.ndarray, oi: np.ndarray) -> None:
    """Refuse a bad page / sample set: shapes differ, a time not an integer ms >= 0, times not
    strictly increasing, an open interest not a finite number > 0.

    Raises:
        DataError: naming `what`, the first bad row (index, time) and the reason.
    """
    ts = np.asarray(ts)
    oi = np.asarray(oi, dtype=np.float64)
    if ts.shape != oi.shape or ts.ndim != 1:
        raise DataError(f"{what}: {ts.shape} times but {oi.shape} open-interest values")
    tf = np.asarray(ts, dtype=np.float64)
    for i in range(ts.shape[0]):
        t = tf[i]
        if not np.isfinite(t) or t < 0 or t != np.floor(t):
            raise DataError(f"{what}: row {i}: time {ts[i]!r} is not a ms UTC integer")
        if i and t <= tf[i - 1]:
            raise DataError(f"{what}: row {i}: time {int(t)} not after the previous {int(tf[i - 1])}")
        if not (np.isfinite(oi[i]) and oi[i] > 0):
            raise DataError(f"{what}: row {i} (ts {int(t)}): open interest {oi[i]!r} is not a number > 0")


def write_open_interest(conn: sqlite3.Connection, symbol: str, ts: np.ndarray, oi: np.ndarray,
                        source: str) -> WriteCounts:
    """Upsert samples (`ts` int64 ms UTC unique, `oi` float64, shape (n,)); counts new, updated
    and unchanged rows. Does not open a transaction."""
    ts = np.asarray(ts, dtype=np.int64)
    n = int(ts.shape[0])
    if n == 0:
        return WriteCounts(0, 0, 0, 0)
    lo, hi = int(ts.min()), int(ts.max())
    count_sql = "SELECT COUNT(*) FROM open_interest WHERE symbol=? AND ts BETWEEN ? AND ?"
    before = conn.execute(count_sql, (symbol, lo, hi)).fetchone()[0]
    changes = conn.total_changes
    conn.executemany(_UPSERT, zip(itertools.repeat(symbol, n), ts.tolist(),
                                  np.asarray(oi, dtype=np.float64).tolist(), itertools.repeat(source, n)))
    changed = conn.total_changes - changes
    new = conn.execute(count_sql, (symbol, lo, hi)).fetchone()[0] - before
    return WriteCounts(n, new, changed - new, n - changed)


def load_open_interest(conn: sqlite3.Connection, symbol: str, start_ms: int | None = None,
                       end_ms: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ts int64 ms UTC, oi float64) stored for `symbol` with start_ms <= ts < end_ms, sorted."""
    lo = -(2**63) if start_ms is None else int(start_ms)
    hi = 2**63 - 1 if end_ms is None else int(end_ms)
    rows = conn.execute("SELECT ts, oi FROM open_interest WHERE symbol=? AND ts>=? AND ts<? ORDER BY ts",
                        (symbol, lo, hi)).fetchall()
    return (np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.float64))


def last_open_interest_ts(conn: sqlite3.Connection, symbol: str) -> int | None:
    """Time (ms UTC) of the newest stored sample of `symbol`, or None."""
    row = conn.execute("SELECT MAX(ts) FROM open_interest WHERE symbol=?", (symbol,)).fetchone()
    return None if row is None or row[0] is None else int(row[0])
