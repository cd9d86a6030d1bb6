"""Database health: a write+read probe timed in a worker thread, plus the file size and free disk space.

Each check writes a fresh token to the one-row `health_probe` table in a
`BEGIN IMMEDIATE` transaction, reads it back and times both (so a write lock
held by another process, a slow disk or a full disk all show). The probe runs
in a dedicated worker thread on its own connection: the event loop never
waits on SQLite. Verdict:

* down: the probe failed (error, token mismatch) or took >= `down_after_s`
  (the check returns then and the probe finishes in the background; no new
  probe starts until it has);
* degraded: the probe took >= `degraded_after_s`, the database (with its WAL)
  is >= `max_size_bytes`, or the disk has < `min_free_bytes` free;
* ok otherwise. Metrics: latency_s, size_bytes, free_bytes.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import sqlite3
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from core.health.status import Check, format_seconds
from core.model.clock import Clock, system_clock
from core.storage.db import open_sync


@dataclass(frozen=True)
class ProbeResult:
    """One probe: latency seconds, database + WAL size bytes, free disk bytes."""

    latency_s: float
    size_bytes: int
    free_bytes: int


def _mib(n: int) -> str:
    return f"{n / 1_048_576:.1f} MiB"


class DatabaseProbe:
    """An async health check of the SQLite database (register the instance; `await close()` at shutdown).

    Args:
        db_path: the Radar database.
        degraded_after_s: probe latency (seconds) that makes it degraded (> 0; default 0.5).
        down_after_s: probe latency (seconds) that makes it down (>= degraded_after_s; default 5).
        max_size_bytes: database + WAL size that makes it degraded (None: not checked).
        min_free_bytes: free disk space below which it is degraded (default 200 MiB; None: not checked).
        clock: int ms UTC (the token written and the in-flight age).
        timer: seconds, monotonic, used in the worker thread to time the probe.

    Raises:
        ValueError: bad thresholds.
    """

    def __init__(self, db_path: str | os.PathLike[str], *, degraded_after_s: float = 0.5,
                 down_after_s: float = 5.0, max_size_bytes: int | None = None,
                 min_free_bytes: int | None = 200 * 1_048_576, clock: Clock = system_clock,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        if not 0 < degraded_after_s <= down_after_s:
            raise ValueError(f"need 0 < degraded_after_s <= down_after_s, got {degraded_after_s} "
                             f"and {down_after_s}")
        self.db_path = Path(db_path)
        self.degraded_after_s = float(degraded_after_s)
        self.down_after_s = float(down_after_s)
        self.max_size_bytes = max_size_bytes
        self.min_free_bytes = min_free_bytes
        self._clock = clock
        self._timer = timer
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="radar-health-db")
        self._conn: sqlite3.Connection | None = None
        self._tokens = itertools.count(1)
        self._inflight: Future[ProbeResult] | None = None
        self._inflight_ms = 0
        self._closed = False

    # ------------------------------------------------------------------- worker thread

    def _probe(self, token: int) -> ProbeResult:
        """Write `token`, read it back, measure (worker thread). Raises sqlite3.Error / OSError / RuntimeError."""
        t0 = self._timer()
        try:
            if self._conn is None:
                self._conn = open_sync(self.db_path)
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("INSERT INTO health_probe (id, ts_ms, token) VALUES (1, ?, ?) ON CONFLICT (id) "
                             "DO UPDATE SET ts_ms = excluded.ts_ms, token = excluded.token",
                             (self._clock(), token))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            row = conn.execute("SELECT token FROM health_probe WHERE id = 1").fetchone()
        except Exception:
            self._drop_conn()
            raise
        latency = self._timer() - t0
        if row is None or row[0] != token:
            raise RuntimeError(f"read back {None if row is None else row[0]!r}, wrote {token}")
        size = sum(p.stat().st_size for p in (self.db_path, Path(f"{self.db_path}-wal")) if p.exists())
        free = shutil.disk_usage(self.db_path.parent).free
        return ProbeResult(latency, size, free)

    def _drop_conn(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None

    # ------------------------------------------------------------------- the check

    async def __call__(self) -> Check:
        """Run one probe (off the loop) and return the verdict (see the module docstring); never raises."""
        if self._closed:
            return Check.down("database probe is closed")
        now = self._clock()
        if self._inflight is not None and not self._inflight.done():
            age = max(0.0, (now - self._inflight_ms) / 1000)
            return Check.down(f"previous database probe still running after {format_seconds(age)}", latency_s=age)
        self._inflight = self._executor.submit(self._probe, next(self._tokens))
        self._inflight_ms = now
        probe = asyncio.wrap_future(self._inflight)
        probe.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved even after a timeout
        try:
            res = await asyncio.wait_for(asyncio.shield(probe), self.down_after_s)
        except (asyncio.TimeoutError, TimeoutError):
            return Check.down(f"write+read probe took longer than {format_seconds(self.down_after_s)}",
                              latency_s=self.down_after_s)
        except Exception as exc:
            return Check.down(f"write+read probe failed: {type(exc).__name__}: {exc}")
        metrics = {"latency_s": round(res.latency_s, 6), "size_bytes": res.size_bytes, "free_bytes": res.free_bytes}
        if res.latency_s >= self.down_after_s:
            return Check.down(f"write+read probe took {format_seconds(res.latency_s)}", **metrics)
        problems = []
        if res.latency_s >= self.degraded_after_s:
            problems.append(f"slow write+read probe: {format_seconds(res.latency_s)} "
                            f"(degraded from {format_seconds(self.degraded_after_s)})")
        if self.max_size_bytes is not None and res.size_bytes >= self.max_size_bytes:
            problems.append(f"database is {_mib(res.size_bytes)} (limit {_mib(self.max_size_bytes)})")
        if self.min_free_bytes is not None and res.free_bytes < self.min_free_bytes:
            problems.append(f"only {_mib(res.free_bytes)} free on disk (want {_mib(self.min_free_bytes)})")
        if problems:
            return Check.degraded("; ".join(problems), **metrics)
        return Check.ok(**metrics)

    async def close(self) -> None:
        """Wait for a probe in flight, close the connection and the worker thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._drop_conn)
        self._executor.shutdown(wait=True)
