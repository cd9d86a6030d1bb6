"""JobManager: a bounded FIFO of research jobs run in worker threads, progress pushed to the event loop.

* Queue: `submit` appends a job (row `queued` in `optimization_jobs`) to a FIFO of at most
  `max_queued` waiting jobs; a full queue refuses with `JobQueueFull`.
* Workers: `workers` threads (default 1) take jobs in order and call the job kind's
  runner `runner(params, ctx)`. The heavy work (numba kernels) releases the GIL, so the
  event loop stays responsive while a job runs.
* Progress: the runner calls `ctx.progress(fraction, phase, window, n_windows, detail)`;
  the manager makes a `JobEvent` (percent clamped so it never decreases, ETA from the
  elapsed time), stores percent and phase in the row, and hands the event to the loop
  with `loop.call_soon_threadsafe`; subscribers are called on the loop, in event order.
  A job that finishes ends with a `done` event at 100 %.
* Cancel: a queued job is cancelled at once; a running job gets its stop flag set and
  its runner stops at its next check (`ctx.stop_requested()` / `ctx.check_cancelled()`:
  the walk-forward checks between windows) by raising `JobCancelled` → state `cancelled`.
* Restart: `start()` marks jobs left `running` (or `queued`) by an earlier process as
  `failed` with error "interrupted" (`store.recover_interrupted`: each row records its
  owner host:pid, so the jobs of another live process on this host, e.g. the console while
  `radar optimize` starts, are left alone).

Use from the event loop: `await start()`, `submit`, `cancel`, `subscribe`, `await wait(id)`,
`await close()`.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from core.errors import RadarError, UsageError
from core.jobs import store
from core.jobs.model import (CANCELLED, DONE, FAILED, QUEUED, RUNNING, TERMINAL, JobCancelled, JobEvent,
                             JobQueueFull, JobRecord)
from core.storage.db import open_sync

log = logging.getLogger(__name__)

#: A job runner: (params, ctx) -> a JSON-able result stored in the job row.
Runner = Callable[[dict, "JobContext"], Any]

#: Job kinds known by default: kind -> "module:function" (imported when first run).
DEFAULT_RUNNERS: dict[str, str] = {"optimize": "core.jobs.optimize_job:run_optimize_job"}


class JobContext:
    """What a runner gets in its worker thread: its id, params, the database path, progress and stop.

    Attributes:
        job_id, kind, params: the job.
        db_path: the manager's SQLite database (open your own connection in the thread).
    """

    def __init__(self, manager: "JobManager", job_id: int, kind: str, params: dict) -> None:
        self._manager = manager
        self.job_id = job_id
        self.kind = kind
        self.params = params
        self.db_path = manager.db_path
        self._stop = threading.Event()
        self._percent = 0.0
        self._t0 = time.monotonic()

    @property
    def percent(self) -> float:
        """The last reported progress, percent 0–100."""
        return self._percent

    def stop_requested(self) -> bool:
        """True once `cancel` was called for this job."""
        return self._stop.is_set()

    def check_cancelled(self) -> None:
        """Raise `JobCancelled` when cancel was requested."""
        if self._stop.is_set():
            raise JobCancelled(f"job {self.job_id} cancelled")

    def progress(self, fraction: float, phase: str, window: int = 0, n_windows: int = 0, detail: str = "") -> None:
        """Report progress: `fraction` of the whole job done (0–1; clamped, never decreasing).

        phase: e.g. "loading", "window", "statistics"; window / n_windows: window i of n.
        """
        pct = min(100.0, max(self._percent, 100.0 * float(fraction)))
        self._percent = pct
        elapsed = time.monotonic() - self._t0
        eta = elapsed * (100.0 - pct) / pct if pct > 0.0 else None
        self._manager._on_progress(JobEvent(self.job_id, self.kind, RUNNING, pct, phase, int(window),
                                            int(n_windows), eta, detail, None, store.now_ms()))


def _resolve(runner: Runner | str) -> Runner:
    if callable(runner):
        return runner
    module, _, attr = runner.partition(":")
    return getattr(importlib.import_module(module), attr)


class JobManager:
    """Bounded FIFO of jobs, worker threads, progress events on the event loop (module docstring).

    Args:
        db_path: the SQLite database holding `optimization_jobs` (migrated on start).
        runners: kind -> runner (a callable or "module:function"); default `DEFAULT_RUNNERS`.
        max_queued: most jobs waiting to start (>= 1; default 8).
        workers: worker threads, i.e. jobs running at once (>= 1; default 1).

    Raises:
        UsageError: max_queued or workers < 1.
    """

    def __init__(self, db_path: str | Path, *, runners: Mapping[str, Runner | str] | None = None,
                 max_queued: int = 8, workers: int = 1) -> None:
        if max_queued < 1 or workers < 1:
            raise UsageError(f"JobManager: max_queued and workers must be >= 1, got {max_queued} and {workers}")
        self.db_path = Path(db_path)
        self._runners: dict[str, Runner | str] = dict(DEFAULT_RUNNERS if runners is None else runners)
        self._queue: queue.Queue[int | None] = queue.Queue(maxsize=max_queued)
        self._n_workers = workers
        self._threads: list[threading.Thread] = []
        self._db_lock = threading.Lock()        # the shared connection
        self._state_lock = threading.Lock()     # queued -> running / cancel of a queued job
        self._conn = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: list[Callable[[JobEvent], None]] = []
        self._running: dict[int, JobContext] = {}
        self._cancelled_queued: set[int] = set()
        self._waiters: dict[int, list[asyncio.Future]] = {}
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> list[int]:
        """Open the database, mark jobs left running/queued as failed "interrupted", start the workers.

        Must be awaited on the event loop the events are delivered to. Returns the ids of the
        interrupted jobs.

        Raises:
            RadarError: already started, or the database cannot be opened / migrated.
        """
        if self._loop is not None:
            raise RadarError("JobManager already started")
        self._loop = asyncio.get_running_loop()
        self._conn = await asyncio.to_thread(open_sync, self.db_path)
        with self._db_lock:
            recovered = store.recover_interrupted(self._conn)
        for i in range(self._n_workers):
            t = threading.Thread(target=self._worker, name=f"radar-job-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return recovered

    async def close(self, cancel_running: bool = True) -> None:
        """Stop: queued jobs become cancelled, running ones are asked to stop (when
        `cancel_running`) and awaited, the workers end, the database is closed."""
        if self._loop is None or self._closed:
            return
        self._closed = True
        with self._state_lock:
            if cancel_running:
                for ctx in self._running.values():
                    ctx._stop.set()
            for job in self._queued_ids():
                self._cancel_queued_locked(job)
        for _ in self._threads:
            await asyncio.to_thread(self._queue.put, None)
        for t in self._threads:
            await asyncio.to_thread(t.join)
        await asyncio.sleep(0)                   # let the last events reach the subscribers
        with self._db_lock:
            self._conn.close()
            self._conn = None

    # -- API ------------------------------------------------------------------------------
    def subscribe(self, callback: Callable[[JobEvent], None]) -> Callable[[], None]:
        """Call `callback(event)` on the event loop for every job event; returns an unsubscribe function."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def submit(self, kind: str, params: dict) -> int:
        """Queue a job; returns its id (row `queued`).

        Raises:
            UsageError: unknown kind, or the manager is not started / closed.
            JobQueueFull: `max_queued` jobs are already waiting.
            TypeError: params not JSON-serialisable.
        """
        if kind not in self._runners:
            raise UsageError(f"unknown job kind {kind!r}; known: {', '.join(sorted(self._runners))}")
        if self._loop is None or self._closed:
            raise UsageError("JobManager is not running: await start() first")
        with self._state_lock:
            if self._queue.full():
                raise JobQueueFull(f"job queue full ({self._queue.maxsize} waiting); retry when one has started")
            with self._db_lock:
                job_id = store.create_job(self._conn, kind, params)
            self._queue.put_nowait(job_id)
        self._emit(JobEvent(job_id, kind, QUEUED, 0.0, "queued", ts_ms=store.now_ms()))
        return job_id

    def cancel(self, job_id: int) -> bool:
        """Cancel a queued job now, or ask a running one to stop at its next check.

        Returns False when the job is unknown or already finished, or the manager is closed.
        """
        if self._conn is None or self._closed:
            return False
        with self._state_lock:
            ctx = self._running.get(job_id)
            if ctx is not None:
                ctx._stop.set()
                return True
            rec = self.get(job_id)
            if rec is None or rec.state != QUEUED:
                return False
            self._cancel_queued_locked(job_id)
            return True

    def get(self, job_id: int) -> JobRecord | None:
        """The job's row, or None.

        Raises:
            UsageError: the manager is not started or already closed.
        """
        with self._db_lock:
            return store.get_job(self._db(), job_id)

    def jobs(self, limit: int = 50) -> list[JobRecord]:
        """The newest jobs first (UsageError when not started or closed)."""
        with self._db_lock:
            return store.list_jobs(self._db(), limit)

    async def wait(self, job_id: int) -> JobRecord:
        """Wait until the job is done, failed or cancelled; returns its final row.

        Raises:
            UsageError: no such job.
        """
        rec = self.get(job_id)
        if rec is None:
            raise UsageError(f"no job with id {job_id}")
        if rec.state in TERMINAL:
            return rec
        fut = self._loop.create_future()
        self._waiters.setdefault(job_id, []).append(fut)
        await fut
        return self.get(job_id)

    # -- internals ------------------------------------------------------------------------
    def _db(self):
        if self._conn is None:
            raise UsageError("JobManager is not running: await start() first (or it was closed)")
        return self._conn

    def _queued_ids(self) -> list[int]:
        with self._db_lock:
            return [int(r[0]) for r in self._conn.execute(
                "SELECT id FROM optimization_jobs WHERE state = ?", (QUEUED,)).fetchall()]

    def _cancel_queued_locked(self, job_id: int) -> None:
        self._cancelled_queued.add(job_id)
        with self._db_lock:
            store.set_state(self._conn, job_id, CANCELLED, phase="cancelled")
            kind = store.get_job(self._conn, job_id).kind
        self._emit(JobEvent(job_id, kind, CANCELLED, 0.0, "cancelled", ts_ms=store.now_ms()))

    def _emit(self, event: JobEvent) -> None:
        try:
            self._loop.call_soon_threadsafe(self._dispatch, event)
        except RuntimeError:                      # the loop is closed: nobody is listening
            pass

    def _dispatch(self, event: JobEvent) -> None:
        for cb in list(self._subscribers):
            try:
                cb(event)
            except Exception:                     # a subscriber's bug must not stop the others
                log.exception("job event subscriber failed")
        if event.state in TERMINAL:
            for fut in self._waiters.pop(event.job_id, []):
                if not fut.done():
                    fut.set_result(event)

    def _on_progress(self, event: JobEvent) -> None:
        with self._db_lock:
            store.set_progress(self._conn, event.job_id, event.percent, event.phase)
        self._emit(event)

    def _worker(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._state_lock:
                if job_id in self._cancelled_queued:
                    self._cancelled_queued.discard(job_id)
                    continue
                with self._db_lock:
                    rec = store.get_job(self._conn, job_id)
                    store.set_state(self._conn, job_id, RUNNING, progress=0.0, phase="starting")
                ctx = JobContext(self, job_id, rec.kind, rec.params)
                self._running[job_id] = ctx
            self._emit(JobEvent(job_id, rec.kind, RUNNING, 0.0, "starting", ts_ms=store.now_ms()))
            self._run(ctx)

    def _run(self, ctx: JobContext) -> None:
        error, result = None, None
        try:
            result = _resolve(self._runners[ctx.kind])(ctx.params, ctx)
            state = DONE
        except JobCancelled:
            state = CANCELLED
        except Exception as exc:                  # the job failed; the worker lives on
            state = FAILED
            error = str(exc) if isinstance(exc, RadarError) else f"{type(exc).__name__}: {exc}"
            log.error("job %s (%s) failed: %s", ctx.job_id, ctx.kind, error,
                      exc_info=not isinstance(exc, RadarError))
        pct = 100.0 if state == DONE else ctx.percent
        with self._state_lock:
            with self._db_lock:
                store.set_state(self._conn, ctx.job_id, state, error=error, progress=pct, phase=state, result=result)
            self._running.pop(ctx.job_id, None)
        self._emit(JobEvent(ctx.job_id, ctx.kind, state, pct, state, eta_s=0.0 if state == DONE else None,
                            error=error, ts_ms=store.now_ms()))
