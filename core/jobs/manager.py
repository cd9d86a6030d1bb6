"""JobManager: a bounded FIFO of research jobs run in worker processes, progress pushed to the event loop.

* Queue: `submit` appends a job (row `queued` in `optimization_jobs`) to a FIFO of at most
  `max_queued` waiting jobs; a full queue refuses with `JobQueueFull`.
* Workers: `workers` dispatcher threads (default 1) take jobs in order. A job whose runner
  is given as "module:function" (the default kinds) runs in its own worker PROCESS
  (multiprocessing "spawn", niced by `nice`, stdout/stderr to /dev/null so it never writes
  over the console): the Python parts of the walk-forward (search, aggregation, stats) do
  not compete with the event loop for the GIL, and the job's memory is freed when it ends.
  A runner given as a callable (tests, closures) runs in the dispatcher thread itself
  (`mode="thread"` forces that for every kind; `mode="process"` refuses callables that
  cannot be imported by name).
* Progress: the runner calls `ctx.progress(fraction, phase, window, n_windows, detail)`;
  the context makes a `JobEvent` (percent clamped so it never decreases, ETA from the
  elapsed time); in a process it travels back through a multiprocessing queue to the
  dispatcher thread, which stores percent and phase in the row and hands the event to the
  loop with `loop.call_soon_threadsafe`; subscribers are called on the loop, in event order.
  A job that finishes ends with a `done` event at 100 %.
* Cancel: a queued job is cancelled at once; a running job gets its stop flag set (a
  multiprocessing Event shared with its process) and its runner stops at its next check
  (`ctx.stop_requested()` / `ctx.check_cancelled()`: the walk-forward checks between
  windows) by raising `JobCancelled` → state `cancelled`. A worker process that dies
  without reporting (killed, crashed) makes its job `failed`.
* Results: the runner writes them itself (the optimize job: `core.optimize.results_store`
  through its own connection; WAL lets it write next to the console); the final state,
  result summary and error are written to the job row by the manager.
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
import multiprocessing
import os
import queue
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping

from core.errors import RadarError, UsageError
from core.jobs import store
from core.jobs.model import (
    CANCELLED,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    TERMINAL,
    JobCancelled,
    JobEvent,
    JobQueueFull,
    JobRecord,
)
from core.storage.db import open_sync

log = logging.getLogger(__name__)

#: A job runner: (params, ctx) -> a JSON-able result stored in the job row.
Runner = Callable[[dict, "JobContext"], Any]

#: Job kinds known by default: kind -> "module:function" (imported when first run).
DEFAULT_RUNNERS: dict[str, str] = {"optimize": "core.jobs.optimize_job:run_optimize_job",
                                   "campaign": "core.jobs.campaign_job:run_campaign_job"}


class JobContext:
    """What a runner gets in its worker thread: its id, params, the database path, progress and stop.

    Attributes:
        job_id, kind, params: the job.
        db_path: the manager's SQLite database (open your own connection in the thread).
    """

    def __init__(self, manager: "JobManager | None", job_id: int, kind: str, params: dict, *,
                 db_path: Path | None = None, stop: Any = None,
                 sink: Callable[[JobEvent], None] | None = None) -> None:
        self._manager = manager
        self.job_id = job_id
        self.kind = kind
        self.params = params
        self.db_path = Path(db_path) if db_path is not None else manager.db_path
        self._stop = stop if stop is not None else threading.Event()     # threading or multiprocessing Event
        self._sink = sink if sink is not None else manager._on_progress
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
        self._sink(JobEvent(self.job_id, self.kind, RUNNING, pct, phase, int(window), int(n_windows), eta,
                            detail, None, store.now_ms()))


def _resolve(runner: Runner | str) -> Runner:
    if callable(runner):
        return runner
    module, _, attr = runner.partition(":")
    return getattr(importlib.import_module(module), attr)


def _runner_name(runner: Runner | str) -> str | None:
    """"module:function" of a runner a spawned process can import, else None."""
    if isinstance(runner, str):
        return runner
    module, name = getattr(runner, "__module__", None), getattr(runner, "__qualname__", "")
    if not module or module == "__main__" or not name or "<" in name or "." in name:
        return None
    return f"{module}:{name}"


def _error_text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, RadarError) else f"{type(exc).__name__}: {exc}"


def _child_main(runner: str, job_id: int, kind: str, params: dict, db_path: str, stop: Any, out: Any,
                nice: int) -> None:
    """Entry point of a job's worker process (spawn): run the runner, report through `out`.

    Messages: ("progress", JobEvent) ..., then exactly one ("end", state, percent, error, result, trace).
    """
    import signal

    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's to handle (it cancels)
        if nice:
            os.nice(nice)
        devnull = os.open(os.devnull, os.O_WRONLY)     # never write over the console's terminal
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:
        pass
    ctx = JobContext(None, job_id, kind, params, db_path=Path(db_path), stop=stop,
                     sink=lambda ev: out.put(("progress", ev)))
    error = result = trace = None
    try:
        result = _resolve(runner)(params, ctx)
        state = DONE
    except JobCancelled:
        state = CANCELLED
    except BaseException as exc:                       # reported to the parent, which logs it
        state = FAILED
        error = _error_text(exc)
        trace = None if isinstance(exc, RadarError) else traceback.format_exc()
    try:
        out.put(("end", state, ctx.percent, error, result, trace))
    except Exception as exc:                           # e.g. a result that cannot be pickled
        out.put(("end", FAILED, ctx.percent, f"{type(exc).__name__}: {exc}", None, traceback.format_exc()))
    out.close()
    out.join_thread()



_tracker_lock = threading.Lock()


def ensure_resource_tracker() -> None:
    """Start multiprocessing's resource tracker with the process's real stderr.

    The tracker (needed by the Event/Queue a job process shares) passes `sys.stderr.fileno()`
    to its own process when it first starts. While the console runs, Textual replaces
    `sys.stderr` with a capture object whose descriptor is not a real one, and the start
    fails with "bad value(s) in fds_to_keep". Starting it here, with `sys.__stderr__`
    swapped in for the call, makes the first job from the console work; once running,
    the call is a cheap no-op.
    """
    from multiprocessing import resource_tracker

    with _tracker_lock:
        saved = sys.stderr
        try:
            if sys.__stderr__ is not None:
                sys.stderr = sys.__stderr__
            resource_tracker.ensure_running()
        finally:
            sys.stderr = saved

class JobManager:
    """Bounded FIFO of jobs, worker processes, progress events on the event loop (module docstring).

    Args:
        db_path: the SQLite database holding `optimization_jobs` (migrated on start).
        runners: kind -> runner (a callable or "module:function"); default `DEFAULT_RUNNERS`.
        max_queued: most jobs waiting to start (>= 1; default 8).
        workers: jobs running at once (>= 1; default 1).
        mode: "auto" (default: "module:function" runners in a process, callables in the
            dispatcher thread), "process" (every runner in a process; a callable must be an
            importable module-level function) or "thread" (every runner in-process).
        nice: niceness added to a worker process (default 5: the console and the engine
            keep the CPU when they need it).

    Raises:
        UsageError: max_queued or workers < 1, an unknown mode, or (mode "process") a runner
            that a worker process cannot import.
    """

    def __init__(self, db_path: str | Path, *, runners: Mapping[str, Runner | str] | None = None,
                 max_queued: int = 8, workers: int = 1, mode: str = "auto", nice: int = 5) -> None:
        if max_queued < 1 or workers < 1:
            raise UsageError(f"JobManager: max_queued and workers must be >= 1, got {max_queued} and {workers}")
        if mode not in ("auto", "process", "thread"):
            raise UsageError(f"JobManager: mode must be auto, process or thread, got {mode!r}")
        self.mode = mode
        self.nice = int(nice)
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
        self._procs: dict[int, multiprocessing.process.BaseProcess] = {}
        self._mp = multiprocessing.get_context("spawn")
        self._max_queued = max_queued
        self._spawn_names: dict[str, str | None] = {}
        for kind, r in self._runners.items():
            name = None if mode == "thread" else (r if isinstance(r, str) else
                                                   (_runner_name(r) if mode == "process" else None))
            if mode == "process" and name is None:
                raise UsageError(f"JobManager: runner of {kind!r} cannot run in a process (not importable by name)")
            self._spawn_names[kind] = name

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
        if self._spawn_names and any(self._spawn_names.values()):
            ensure_resource_tracker()
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

    def stats(self) -> dict[str, int]:
        """For the health check: workers (configured), alive (dispatcher threads alive), queued
        (jobs waiting), max_queued, running (jobs running), processes (worker processes alive)."""
        return {"workers": self._n_workers, "alive": sum(t.is_alive() for t in self._threads),
                "queued": self._queue.qsize(), "max_queued": self._max_queued, "running": len(self._running),
                "processes": sum(1 for p in list(self._procs.values()) if p.is_alive())}

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
                spawn = self._spawn_names.get(rec.kind)
                if spawn is not None:
                    ensure_resource_tracker()
                ctx = JobContext(self, job_id, rec.kind, rec.params,
                                 stop=self._mp.Event() if spawn is not None else None)
                self._running[job_id] = ctx
            self._emit(JobEvent(job_id, rec.kind, RUNNING, 0.0, "starting", ts_ms=store.now_ms()))
            if spawn is not None:
                self._run_process(ctx, spawn)
            else:
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
            error = _error_text(exc)
            log.error("job %s (%s) failed: %s", ctx.job_id, ctx.kind, error,
                      exc_info=not isinstance(exc, RadarError))
        self._finish(ctx, state, error, result)

    def _run_process(self, ctx: JobContext, runner: str) -> None:
        """Run the job in a spawned process; relay its progress; record how it ended."""
        out = self._mp.Queue()
        proc = self._mp.Process(target=_child_main, name=f"radar-job-{ctx.job_id}", daemon=True,
                                args=(runner, ctx.job_id, ctx.kind, ctx.params, str(ctx.db_path), ctx._stop, out,
                                      self.nice))
        end = None
        try:
            proc.start()
            self._procs[ctx.job_id] = proc
            dead_since = None
            while end is None:
                try:
                    msg = out.get(timeout=0.25)
                except queue.Empty:
                    if proc.is_alive():
                        continue
                    # dead: give the queue's pipe a moment to deliver what was flushed before the exit
                    dead_since = dead_since or time.monotonic()
                    if time.monotonic() - dead_since > 2.0:
                        break
                    continue
                if msg[0] == "progress":
                    ev = msg[1]
                    ctx._percent = max(ctx._percent, ev.percent)
                    self._on_progress(ev)
                elif msg[0] == "end":
                    end = msg
        except Exception as exc:                  # could not start the process, or a broken pipe
            log.exception("job %s (%s): worker process failed", ctx.job_id, ctx.kind)
            end = ("end", FAILED, ctx.percent, f"worker process: {type(exc).__name__}: {exc}", None, None)
        finally:
            if proc.pid is not None:
                proc.join(timeout=10.0)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
            self._procs.pop(ctx.job_id, None)
            out.close()
        if end is None:
            end = ("end", FAILED, ctx.percent, f"worker process exited with code {proc.exitcode}", None, None)
        _, state, pct, error, result, trace = end
        ctx._percent = max(ctx._percent, float(pct or 0.0))
        if state == FAILED:
            log.error("job %s (%s) failed: %s%s", ctx.job_id, ctx.kind, error, f"\n{trace}" if trace else "")
        self._finish(ctx, state, error, result)

    def _finish(self, ctx: JobContext, state: str, error: str | None, result: Any) -> None:
        pct = 100.0 if state == DONE else ctx.percent
        with self._state_lock:
            with self._db_lock:
                store.set_state(self._conn, ctx.job_id, state, error=error, progress=pct, phase=state, result=result)
            self._running.pop(ctx.job_id, None)
        self._emit(JobEvent(ctx.job_id, ctx.kind, state, pct, state, eta_s=0.0 if state == DONE else None,
                            error=error, ts_ms=store.now_ms()))
