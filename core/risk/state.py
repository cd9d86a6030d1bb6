"""The persisted equity peak and daily-loss baseline (table `risk_state`, migration 6) and the
per-code rejection counters (table `risk_rejections`).

Why persisted: a restart must not re-arm a limit wrongly. After a restart within the same UTC
day the daily baseline is the stored one (not the restart-time equity), and the peak is never
lowered by a restart (`advance` only raises it). A restart on a later UTC day starts a new
daily baseline at the first equity seen that day.

The UTC day starts at 00:00:00.000 UTC (`utc_day_start`); the baseline of a day is the first
equity observed at or after its start (the equity at the UTC day start, as close as the caller's
updates allow). The day never moves backwards: an update stamped before the stored day keeps
the stored baseline.

`RiskStore` writes single statements on the caller's sqlite3 connection: inside the caller's
open transaction (e.g. the executor's candle transaction) they commit with it; outside one
each statement commits on its own (autocommit).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sqlite3
from dataclasses import dataclass

from core.storage.db import open_sync

#: one UTC day, ms
DAY_MS = 86_400_000


def utc_day_start(ts_ms: int) -> int:
    """00:00 UTC of the day holding `ts_ms`, ms UTC."""
    return ts_ms - ts_ms % DAY_MS


@dataclass(frozen=True, slots=True)
class RiskState:
    """The account-level risk state.

    Attributes:
        peak_equity: highest equity seen, USDT (the `limits.max_drawdown` reference).
        peak_ms: when it was seen, ms UTC.
        day_start_ms: 00:00 UTC of the baseline's day, ms UTC.
        day_start_equity: first equity seen that day, USDT (the `limits.daily_loss_limit` reference).
        tripped: a limit is breached now (as of the last equity update).
        trip_code: "max_drawdown" | "daily_loss" of the latest trip (kept after it ends), or None.
        trip_reason: the sentence of the latest trip, or None.
        trip_ms: when the latest trip started, ms UTC, or None.
    """

    peak_equity: float
    peak_ms: int
    day_start_ms: int
    day_start_equity: float
    tripped: bool = False
    trip_code: str | None = None
    trip_reason: str | None = None
    trip_ms: int | None = None


def advance(state: RiskState | None, equity: float, ts_ms: int) -> RiskState:
    """The state after an equity update: the peak raised (never lowered), the daily baseline
    moved to `equity` when `ts_ms` is in a later UTC day than the stored one. The trip fields
    are left as they are (the manager sets them).

    Args:
        state: the state so far, None for the very first update.
        equity: USDT, finite.
        ts_ms: time of the equity, ms UTC.

    Raises:
        ValueError: equity not finite.
    """
    if not math.isfinite(equity):
        raise ValueError(f"equity must be a finite USDT amount, got {equity!r}")
    day = utc_day_start(ts_ms)
    if state is None:
        return RiskState(equity, ts_ms, day, equity)
    new = state
    if equity > new.peak_equity:
        new = dataclasses.replace(new, peak_equity=equity, peak_ms=ts_ms)
    if day > new.day_start_ms:
        new = dataclasses.replace(new, day_start_ms=day, day_start_equity=equity)
    return new


class RiskStore:
    """The risk tables of one database, on a caller-owned sqlite3 connection (migrations applied).

    Args:
        conn: e.g. `core.executor.state_store.StateStore.conn`, or `RiskStore.open(path)`.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @classmethod
    def open(cls, db_path: str | os.PathLike[str]) -> "RiskStore":
        """A store on a new connection to `db_path` (created and migrated when needed).

        Raises:
            RadarError: a migration failed.
        """
        return cls(open_sync(db_path))

    def close(self) -> None:
        """Close the connection (only for a store made by `open`)."""
        self.conn.close()

    def load(self) -> RiskState | None:
        """The stored state, None before the first equity update."""
        row = self.conn.execute(
            "SELECT peak_equity, peak_ms, day_start_ms, day_start_equity, tripped, trip_code, trip_reason, "
            "trip_ms FROM risk_state WHERE id = 1").fetchone()
        if row is None:
            return None
        return RiskState(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], row[7])

    def save(self, state: RiskState, updated_ms: int) -> None:
        """Store `state` (one statement). `updated_ms`: ms UTC of the write."""
        self.conn.execute(
            "INSERT OR REPLACE INTO risk_state (id, peak_equity, peak_ms, day_start_ms, day_start_equity, "
            "tripped, trip_code, trip_reason, trip_ms, updated_ms) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (state.peak_equity, state.peak_ms, state.day_start_ms, state.day_start_equity, int(state.tripped),
             state.trip_code, state.trip_reason, state.trip_ms, updated_ms))

    def add_rejection(self, code: str, symbol: str, reason: str, ts_ms: int) -> None:
        """Count one rejection of `code` (one statement); keeps the latest symbol and reason."""
        self.conn.execute(
            "INSERT INTO risk_rejections (code, count, first_ms, last_ms, last_symbol, last_reason) "
            "VALUES (?, 1, ?, ?, ?, ?) ON CONFLICT (code) DO UPDATE SET count = count + 1, "
            "last_ms = excluded.last_ms, last_symbol = excluded.last_symbol, last_reason = excluded.last_reason",
            (code, ts_ms, ts_ms, symbol, reason))

    def rejection_counts(self) -> dict[str, int]:
        """code -> number of rejections stored."""
        return {code: n for code, n in self.conn.execute("SELECT code, count FROM risk_rejections")}
