"""The allocation's tables (migration 12): its state (one JSON row), the weights of every
rebalance and every capital transfer. Writes join the caller's transaction (the caller opens
it with `StateStore.transaction()`); reads are plain queries.

Money USDT, times ms UTC, weights fractions of the account equity.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any


class AllocationStore:
    """Args: conn: the engine's SQLite connection (`StateStore.conn`, migrated)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def load(self) -> dict | None:
        """The saved allocator state (JSON dict), or None on a new database."""
        row = self.conn.execute("SELECT state FROM allocation_state WHERE id = 1").fetchone()
        return None if row is None else json.loads(row[0])

    def save(self, state: dict) -> None:
        """Replace the allocator state (in the caller's transaction)."""
        self.conn.execute("INSERT INTO allocation_state (id, state, updated_ms) VALUES (1, ?, ?) "
                          "ON CONFLICT(id) DO UPDATE SET state = excluded.state, updated_ms = excluded.updated_ms",
                          (json.dumps(state), int(time.time() * 1000)))

    def add_weights(self, ts_ms: int, policy: str, rows: list[tuple[str, float, float, float]],
                    detail: dict[str, Any]) -> None:
        """One rebalance: rows of (runner, weight, target USDT, capital USDT)."""
        d = json.dumps(detail)
        self.conn.executemany(
            "INSERT OR REPLACE INTO allocation_weights (ts_ms, runner, policy, weight, target, capital, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", [(int(ts_ms), r, policy, float(w), float(t), float(c), d)
                                             for r, w, t, c in rows])

    def add_transfer(self, ts_ms: int, runner: str, amount: float, cash_after: float, pool_after: float) -> None:
        """One capital transfer into (amount > 0) or out of a runner's cash."""
        self.conn.execute("INSERT INTO allocation_transfers (ts_ms, runner, amount, cash_after, pool_after) "
                          "VALUES (?, ?, ?, ?, ?)", (int(ts_ms), runner, float(amount), float(cash_after),
                                                     float(pool_after)))


def last_weights(conn: sqlite3.Connection) -> dict:
    """The last rebalance stored in a database: {"ts_ms", "policy", "weights": {runner: w},
    "targets": {runner: USDT}, "capital": {runner: USDT}, "detail": dict}; {} when none."""
    row = conn.execute("SELECT MAX(ts_ms) FROM allocation_weights").fetchone()
    if row is None or row[0] is None:
        return {}
    ts = int(row[0])
    rows = conn.execute("SELECT runner, policy, weight, target, capital, detail FROM allocation_weights "
                        "WHERE ts_ms = ? ORDER BY runner", (ts,)).fetchall()
    return {"ts_ms": ts, "policy": rows[0][1], "weights": {r[0]: r[2] for r in rows},
            "targets": {r[0]: r[3] for r in rows}, "capital": {r[0]: r[4] for r in rows},
            "detail": json.loads(rows[0][5])}


def transfers(conn: sqlite3.Connection) -> list[dict]:
    """Every stored transfer, oldest first: {ts_ms, runner, amount, cash_after, pool_after}."""
    return [{"ts_ms": r[0], "runner": r[1], "amount": r[2], "cash_after": r[3], "pool_after": r[4]}
            for r in conn.execute("SELECT ts_ms, runner, amount, cash_after, pool_after FROM allocation_transfers "
                                  "ORDER BY id")]
