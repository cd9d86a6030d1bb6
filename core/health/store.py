"""Heartbeat and latest-health rows in SQLite (synchronous; shared by the engine's writer and `radar health`).

Tables (migration 4): `heartbeat` (one row, id = 1: the engine writing to this
database) and `health` (the latest status per subsystem, replaced as a whole
with every beat). All times are int ms UTC. Functions raise `sqlite3.Error` on
a database failure (a write is rolled back).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from core.health.status import HealthStatus, SubsystemHealth

#: A heartbeat older than this many beat intervals means the engine is gone.
STALE_FACTOR = 3


@dataclass(frozen=True)
class Heartbeat:
    """The engine's latest beat.

    Attributes:
        ts_ms: when it was written (ms UTC).
        pid, host: the engine process and its hostname.
        mode: how the engine runs, e.g. "ui" or "headless".
        started_ms: when the engine started (ms UTC).
        interval_ms: beat period (ms).
        stopped_ms: when the engine stopped cleanly (ms UTC), None while it runs.
        statuses: {subsystem: "ok"|"degraded"|"down"} at the beat.
    """

    ts_ms: int
    pid: int
    host: str
    mode: str
    started_ms: int
    interval_ms: int
    stopped_ms: int | None = None
    statuses: Mapping[str, str] = field(default_factory=dict)

    @property
    def stale_after_ms(self) -> int:
        """Age (ms) after which the beat means no engine: `STALE_FACTOR` x interval."""
        return STALE_FACTOR * self.interval_ms

    def age_ms(self, now_ms: int) -> int:
        """How old the beat is at `now_ms` (ms, >= 0)."""
        return max(0, now_ms - self.ts_ms)

    def is_fresh(self, now_ms: int) -> bool:
        """True when the engine has not stopped and the beat is younger than `stale_after_ms`."""
        return self.stopped_ms is None and self.age_ms(now_ms) < self.stale_after_ms

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (times ms UTC)."""
        return {"ts_ms": self.ts_ms, "pid": self.pid, "host": self.host, "mode": self.mode,
                "started_ms": self.started_ms, "interval_ms": self.interval_ms,
                "stopped_ms": self.stopped_ms, "statuses": dict(self.statuses)}


def write_beat(conn: sqlite3.Connection, beat: Heartbeat, health: Iterable[SubsystemHealth]) -> None:
    """Write the heartbeat row and replace every `health` row with `health` (own transaction)."""
    rows = [(h.subsystem, h.status.value, h.reason, h.since_ms, h.checked_ms, h.metrics_json()) for h in health]
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT INTO heartbeat (id, ts_ms, pid, host, mode, started_ms, interval_ms, stopped_ms, statuses)"
            " VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET ts_ms = excluded.ts_ms,"
            " pid = excluded.pid, host = excluded.host, mode = excluded.mode, started_ms = excluded.started_ms,"
            " interval_ms = excluded.interval_ms, stopped_ms = excluded.stopped_ms, statuses = excluded.statuses",
            (beat.ts_ms, beat.pid, beat.host, beat.mode, beat.started_ms, beat.interval_ms, beat.stopped_ms,
             json.dumps(dict(beat.statuses), sort_keys=True)))
        conn.execute("DELETE FROM health")
        conn.executemany("INSERT INTO health (subsystem, status, reason, since_ms, checked_ms, metrics)"
                         " VALUES (?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def mark_stopped(conn: sqlite3.Connection, pid: int, stopped_ms: int) -> bool:
    """Record a clean stop of engine `pid` (only if the heartbeat row is still that engine's).

    Returns:
        True when the row was updated.
    """
    cur = conn.execute("UPDATE heartbeat SET stopped_ms = ?, ts_ms = ? WHERE id = 1 AND pid = ?",
                       (stopped_ms, stopped_ms, pid))
    return cur.rowcount > 0


def _missing_table(exc: sqlite3.Error) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc)


def read_heartbeat(conn: sqlite3.Connection) -> Heartbeat | None:
    """The heartbeat row, or None when there is none (also on a database without the table)."""
    try:
        row = conn.execute("SELECT ts_ms, pid, host, mode, started_ms, interval_ms, stopped_ms, statuses"
                           " FROM heartbeat WHERE id = 1").fetchone()
    except sqlite3.Error as exc:
        if _missing_table(exc):
            return None
        raise
    if row is None:
        return None
    try:
        statuses = json.loads(row[7])
    except ValueError:
        statuses = {}
    return Heartbeat(int(row[0]), int(row[1]), row[2], row[3], int(row[4]), int(row[5]),
                     None if row[6] is None else int(row[6]), statuses if isinstance(statuses, dict) else {})


def read_health(conn: sqlite3.Connection) -> list[SubsystemHealth]:
    """The stored latest health per subsystem, worst first, then by name ([] without the table)."""
    try:
        rows = conn.execute("SELECT subsystem, status, reason, since_ms, checked_ms, metrics FROM health").fetchall()
    except sqlite3.Error as exc:
        if _missing_table(exc):
            return []
        raise
    out = []
    for sub, status, reason, since, checked, metrics in rows:
        try:
            m = json.loads(metrics)
        except ValueError:
            m = {}
        out.append(SubsystemHealth(sub, HealthStatus(status), reason, int(since), int(checked),
                                   m if isinstance(m, dict) else {}))
    return sorted(out, key=lambda h: (-h.status.rank, h.subsystem))
