"""HeartbeatWriter: the engine writes a heartbeat and its latest health to SQLite every few seconds.

So `radar health`, in another process, can tell whether an engine runs on a
database and how its subsystems are. Every `interval_s` the writer takes the
statuses from its `snapshot` callable (normally `Watchdog.snapshot`) and, in
a dedicated worker thread on its own connection (the loop never waits on
SQLite), writes the `heartbeat` row (ts, pid, host, mode, statuses JSON) and
replaces the `health` rows in one transaction (`core.health.store`). A reader
treats a beat older than `STALE_FACTOR` x the interval as "no engine running";
`stop()` marks the row stopped so readers know at once.

A failed write is logged (once per failure streak), counted and retried at the
next beat; `check()` reports it as a health `Check` if you want it watched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from core.health import store
from core.health.status import Check, SubsystemHealth
from core.model.clock import Clock, system_clock
from core.storage.db import open_sync

log = logging.getLogger(__name__)

#: What the writer reads each beat: {subsystem: SubsystemHealth} or an iterable of them.
Snapshot = Callable[[], "Mapping[str, SubsystemHealth] | Iterable[SubsystemHealth]"]


def _records(snap: "Mapping[str, SubsystemHealth] | Iterable[SubsystemHealth]") -> list[SubsystemHealth]:
    return list(snap.values()) if isinstance(snap, Mapping) else list(snap)


class HeartbeatWriter:
    """Writes the heartbeat and the latest health every `interval_s` (module docstring).

    Args:
        db_path: the Radar database.
        snapshot: returns the current health (e.g. `watchdog.snapshot`); must be cheap.
        mode: how the engine runs, shown by `radar health`, e.g. "ui" or "headless".
        interval_s: seconds between beats (> 0; default 5).
        clock: int ms UTC (must be wall-clock time for other processes to judge freshness).
        pid, host: recorded identity (default: this process and hostname).

    Raises:
        ValueError: interval_s <= 0 or an empty mode.
    """

    def __init__(self, db_path: str | os.PathLike[str], snapshot: Snapshot, *, mode: str,
                 interval_s: float = 5.0, clock: Clock = system_clock, pid: int | None = None,
                 host: str | None = None, spawn: Callable[[str, Callable[[], Any]], asyncio.Task] | None = None) -> None:
        if not interval_s > 0:
            raise ValueError(f"heartbeat interval_s must be > 0 seconds, got {interval_s!r}")
        if not isinstance(mode, str) or not mode.strip():
            raise ValueError(f"heartbeat mode must be a non-empty string, got {mode!r}")
        self.db_path = Path(db_path)
        self.mode = mode
        self.interval_s = float(interval_s)
        self.pid = os.getpid() if pid is None else int(pid)
        self.host = socket.gethostname() if host is None else host
        self._snapshot = snapshot
        self._clock = clock
        self.spawn = spawn          # (name, factory) -> Task: the engine's supervisor (restarts a failed loop)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="radar-heartbeat")
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._started_ms: int | None = None
        self._failing = False
        #: Beats written / failed since creation; time (ms UTC) of the last written beat.
        self.beats = 0
        self.errors = 0
        self.last_beat_ms: int | None = None
        self.last_error: str | None = None

    # ------------------------------------------------------------------- worker thread

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_sync(self.db_path)
        return self._conn

    def _write(self, beat: store.Heartbeat, records: list[SubsystemHealth]) -> None:
        try:
            store.write_beat(self._connect(), beat, records)
        except Exception:
            self._drop_conn()
            raise

    def _drop_conn(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    async def _db(self, fn: Callable[..., object], *args: object) -> object:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ------------------------------------------------------------------- beats

    async def beat(self) -> bool:
        """Write one beat now; True when written (a failure is logged and counted, never raised)."""
        now = self._clock()
        if self._started_ms is None:
            self._started_ms = now
        records = _records(self._snapshot())
        beat = store.Heartbeat(ts_ms=now, pid=self.pid, host=self.host, mode=self.mode,
                               started_ms=self._started_ms, interval_ms=int(self.interval_s * 1000),
                               statuses={h.subsystem: h.status.value for h in records})
        try:
            await self._db(self._write, beat, records)
        except Exception as exc:
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            if not self._failing:
                log.error("writing the heartbeat to %s failed (retrying every %.1fs): %s",
                          self.db_path, self.interval_s, self.last_error)
            self._failing = True
            return False
        if self._failing:
            log.warning("writing the heartbeat to %s works again", self.db_path)
        self._failing = False
        self.beats += 1
        self.last_beat_ms = now
        return True

    async def start(self) -> None:
        """Write the first beat (warning if another live engine beats on this database) and start the task.

        Idempotent. Does not raise for a failed write (retried every interval).
        """
        if self._task is not None and not self._task.done():
            return
        try:
            other = await self._db(lambda: store.read_heartbeat(self._connect()))
        except Exception:
            other = None
        now = self._clock()
        if isinstance(other, store.Heartbeat) and other.is_fresh(now) \
                and (other.pid, other.host) != (self.pid, self.host):
            log.warning("another engine (pid %s on %s, mode %s) wrote a heartbeat to %s %.1fs ago; "
                        "`radar health` will show whichever beats last", other.pid, other.host, other.mode,
                        self.db_path, other.age_ms(now) / 1000)
        self._started_ms = now
        await self.beat()
        if self.spawn is not None:
            self._task = self.spawn("heartbeat", self._run)
        else:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="heartbeat")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.beat()

    async def stop(self, mark_stopped: bool = True) -> None:
        """Stop beating; with `mark_stopped`, record the clean stop so readers see "stopped" at once.

        Idempotent; never raises for a database failure (logged).
        """
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if mark_stopped and self.beats:
            try:
                await self._db(lambda: store.mark_stopped(self._connect(), self.pid, self._clock()))
            except Exception as exc:
                log.error("marking the heartbeat in %s stopped failed: %s", self.db_path, exc)

    async def close(self) -> None:
        """`stop()` (marking the stop) and release the connection and the worker thread."""
        await self.stop()
        with contextlib.suppress(Exception):
            await self._db(self._drop_conn)
        self._executor.shutdown(wait=True)

    # ------------------------------------------------------------------- as a health check

    def check(self) -> Check:
        """Degraded while writing the heartbeat fails (else ok); register it as "heartbeat" if wanted."""
        if self._failing:
            return Check.degraded(f"writing the heartbeat fails ({self.errors} failures): {self.last_error}",
                                  errors=self.errors)
        return Check.ok(beats=self.beats, last_beat_ms=self.last_beat_ms)
