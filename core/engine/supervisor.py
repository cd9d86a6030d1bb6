"""Supervisor: runs the engine's background tasks, restarts the ones that fail, says so.

    sup = Supervisor(engine.bus)
    sup.spawn("engine-live", engine._live_loop, subsystem="executor",
              max_restarts=5, on_give_up=lambda name, exc: engine.request_stop())
    sup.spawn("engine-status", engine._status_loop, subsystem="engine", critical=False)
    ...
    await sup.stop()                 # cancels every task and waits for them

`factory()` is called for every (re)start and must return a fresh coroutine (pass the
coroutine function itself, or a lambda building the call: `lambda: runner.loop(x)`).

What happens when a task's coroutine ends (times are seconds of the injected `clock`):

* it raises an `Exception`: the traceback is logged (`logging.exception`, naming the task);
  an `AlertEvent` is published (severity "critical", or "error" for `critical=False` tasks;
  title "task <name> failed: <ExceptionType>", so repeated identical failures share one alert
  dedup key in `core.engine.alerting`; detail the exception text and what happens next;
  source "supervisor") and a `HealthEvent(subsystem, "down", ...)`; then `on_failure(name, exc)`
  is called (sync or async; what it raises is logged, never propagated; an async hook is given
  `hook_timeout_s`). Then the task is restarted after the backoff delay
  (`Backoff.delay(streak)`: first_s, first_s*factor, ... capped at max_s; the streak goes back
  to 0 once a run lasted `healthy_after_s`).
* health of a restarted task: `HealthEvent(subsystem, "degraded", "task <name> restarting ...")`
  when the new run starts, and `HealthEvent(subsystem, "ok", "task <name> running again for
  <healthy_after_s> after restart N ...")` once that run has stayed up `healthy_after_s`
  (measured with the injected `sleep`). A task that never failed publishes no HealthEvent
  (the subsystem's own publishers own its "ok").
* `max_restarts` (None: unlimited) bounds the restarts IN A ROW (a run that stayed up
  `healthy_after_s` resets the streak, so a transient error once a day never exhausts it):
  the failure after `max_restarts` consecutive restarts - or any failure with
  `restart=False` - is final: state "failed-final", a second critical `AlertEvent`
  ("task <name> gave up ..."), `HealthEvent(subsystem, "down", "gave up ...")`, then
  `on_give_up(name, exc)` (same calling rules as `on_failure`; the engine stops or halts
  trading there - schedule the stop, e.g. `engine.request_stop()`: awaiting `sup.stop()` from
  inside the hook is allowed but leaves the calling task out of the cancellation).
* it returns: the task is "done" (logged at info), unless `restart="always"`: then it is
  restarted after the same backoff schedule (a task returning at once does not spin).
* it is cancelled (`sup.stop()`, or `task.cancel()` on the task `spawn` returned): state
  "cancelled", the `CancelledError` propagates, never restarted. A `CancelledError` raised
  from inside the coroutine while nobody cancelled the task (a stray one, e.g. from awaiting
  a future someone else cancelled) is a failure like any exception: a protection loop must
  not end silently.
* `KeyboardInterrupt` / `SystemExit` are not handled: state "failed-final", logged, re-raised.

Liveness (watchdog): a task calls `sup.beat()` (or `sup.beat(name)`) every loop iteration;
`sup.stale(name, max_age_s)` is True when it has not beaten within `max_age_s` seconds (before
its first beat: counted from `spawn`), whatever its state (a task waiting to restart or given
up does not beat, so it goes stale). The engine halts a runner whose protection loop is stale
for more than one re-check interval.

Inspection: `sup.tasks` ({name: TaskStatus}), `sup.status()` (JSON-able dicts),
`sup.failed(name)`, `sup.healthy(name)`, `sup.check(subsystem=None)` (a `core.health.status.Check`
to register with the Watchdog: `radar health` reads the watchdog's statuses through the
heartbeat, not the bus's HealthEvents). Unknown task names raise KeyError.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from core.events.bus import AlertEvent, EventBus, HealthEvent

log = logging.getLogger(__name__)

#: task states
RUNNING = "running"
RESTARTING = "restarting"
FAILED_FINAL = "failed-final"
DONE = "done"
CANCELLED = "cancelled"
STATES = (RUNNING, RESTARTING, FAILED_FINAL, DONE, CANCELLED)

#: `AlertEvent.source` of the supervisor's alerts
ALERT_SOURCE = "supervisor"

_MAX_TITLE = 200

Hook = Callable[[str, BaseException], "Any | Awaitable[Any]"]
Restart = bool | Literal["always"]


@dataclass(frozen=True)
class Backoff:
    """Delays between restarts, seconds: first_s, first_s*factor, first_s*factor**2, ... <= max_s.

    Raises:
        ValueError: first_s < 0, max_s < first_s, or factor < 1.
    """

    first_s: float = 1.0
    max_s: float = 60.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if not self.first_s >= 0 or not self.max_s >= self.first_s or not self.factor >= 1:
            raise ValueError(f"backoff needs 0 <= first_s <= max_s and factor >= 1, got first_s={self.first_s}, "
                             f"max_s={self.max_s}, factor={self.factor}")

    def delay(self, streak: int) -> float:
        """The delay (s) before the restart following `streak` (>= 0) restarts in a row.

        Raises:
            ValueError: streak < 0.
        """
        if streak < 0:
            raise ValueError(f"streak must be >= 0, got {streak}")
        d = self.first_s
        for _ in range(streak):
            d *= self.factor
            if d >= self.max_s:
                return self.max_s
        return min(d, self.max_s)


@dataclass(frozen=True)
class TaskStatus:
    """A snapshot of one supervised task (times are seconds of the supervisor's clock).

    Attributes:
        name, subsystem, critical: as given to `spawn`.
        state: running | restarting | failed-final | done | cancelled.
        restarts: runs started after the first. failures: failed runs in total.
        streak: restarts in a row without a healthy run (what `max_restarts` bounds).
        healthy: see `Supervisor.healthy`.
        last_error: "<ExceptionType>: <text>" of the latest failure, or None.
        last_failure_at: clock time of the latest failure, or None.
        last_failure_ms: wall-clock time of the latest failure, ms UTC, or None.
        started_at: clock time the current (or latest) run started.
        last_beat_at: clock time of the latest `beat`, or None.
        next_restart_in_s: while restarting, the delay being waited (s); else None.
    """

    name: str
    subsystem: str
    critical: bool
    state: str
    restarts: int
    failures: int
    streak: int
    healthy: bool
    last_error: str | None
    last_failure_at: float | None
    last_failure_ms: int | None
    started_at: float
    last_beat_at: float | None
    next_restart_in_s: float | None

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-able dict of the fields."""
        return asdict(self)


class _Entry:
    """The supervisor's record of one task (mutable; `TaskStatus` is its snapshot)."""

    __slots__ = ("backoff", "critical", "factory", "failures", "health", "healthy_after_s", "last_beat_at",
                 "last_error", "last_exc", "last_failure_at", "last_failure_ms", "max_restarts", "name",
                 "next_delay_s", "on_failure", "on_give_up", "restart", "restarts", "run", "spawned_at",
                 "started_at", "state", "streak", "subsystem", "task", "timer")

    def __init__(self, name: str, subsystem: str, factory: Callable[[], Awaitable[Any]], restart: Restart,
                 backoff: Backoff, on_failure: Hook | None, on_give_up: Hook | None, critical: bool,
                 max_restarts: int | None, healthy_after_s: float, now: float) -> None:
        self.name = name
        self.subsystem = subsystem
        self.factory = factory
        self.restart = restart
        self.backoff = backoff
        self.on_failure = on_failure
        self.on_give_up = on_give_up
        self.critical = critical
        self.max_restarts = max_restarts
        self.healthy_after_s = healthy_after_s
        self.state = RUNNING
        self.restarts = 0
        self.failures = 0
        self.streak = 0
        self.last_error: str | None = None
        self.last_exc: BaseException | None = None
        self.last_failure_at: float | None = None
        self.last_failure_ms: int | None = None
        self.started_at = now
        self.spawned_at = now
        self.last_beat_at: float | None = None
        self.next_delay_s: float | None = None
        self.task: asyncio.Task | None = None
        self.timer: asyncio.Task | None = None
        self.run = 0
        self.health: str | None = None      # the last HealthEvent state published for it


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _cancel_requested() -> bool:
    """True when someone asked to cancel the current task (Python >= 3.11 `Task.cancelling`)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Supervisor:
    """Runs and restarts the engine's background tasks (see the module docstring).

    Args:
        bus: where AlertEvents and HealthEvents go (None: nowhere, e.g. in tools).
        clock: seconds, monotonic (failure times, run durations, beats).
        sleep: `await sleep(seconds)` for backoff delays and the healthy confirmation; must
            agree with `clock` (the defaults do).
        healthy_after_s: seconds a run must last to count as healthy (resets the backoff and
            the restart streak, publishes "ok" after a restart); `spawn` can override it.
        hook_timeout_s: seconds an async `on_failure` / `on_give_up` may take (None: no limit);
            a hook that times out is logged as an error and abandoned.

    Raises:
        ValueError: healthy_after_s < 0 or hook_timeout_s <= 0.
    """

    def __init__(self, bus: EventBus | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep, healthy_after_s: float = 60.0,
                 hook_timeout_s: float | None = 30.0) -> None:
        if not healthy_after_s >= 0:
            raise ValueError(f"healthy_after_s must be >= 0 seconds, got {healthy_after_s}")
        if hook_timeout_s is not None and not hook_timeout_s > 0:
            raise ValueError(f"hook_timeout_s must be > 0 seconds or None, got {hook_timeout_s}")
        self.bus = bus
        self.healthy_after_s = float(healthy_after_s)
        self.hook_timeout_s = hook_timeout_s
        self._clock = clock
        self._sleep = sleep
        self._entries: dict[str, _Entry] = {}
        self._by_task: dict[asyncio.Task, _Entry] = {}
        self._stopping = False

    # ------------------------------------------------------------------ spawning

    def spawn(self, name: str, factory: Callable[[], Awaitable[Any]], *, subsystem: str, restart: Restart = True,
              backoff: Backoff = Backoff(first_s=1, max_s=60, factor=2), on_failure: Hook | None = None,
              critical: bool = True, max_restarts: int | None = None, on_give_up: Hook | None = None,
              healthy_after_s: float | None = None) -> asyncio.Task:
        """Start supervising `factory()` as task `name` (call on the running loop).

        Args:
            name: unique task name (also the asyncio task's name).
            factory: `() -> coroutine`, called for every (re)start. Calling it failing or
                returning a non-awaitable counts as a failure of the run.
            subsystem: the `HealthEvent.component` of this task's health (e.g. "executor").
            restart: True: restart after a failure; False: a failure is final; "always":
                also restart after a normal return.
            backoff: delays between restarts (s).
            on_failure: `(name, exc)`, called after each failure (sync or async).
            critical: alerts "critical" (else "error"); a given-up critical task makes
                `check()` down (a non-critical one degraded).
            max_restarts: restarts in a row without a healthy run before giving up (None: no limit).
            on_give_up: `(name, exc)`, called once when the task is given up.
            healthy_after_s: overrides the supervisor's `healthy_after_s` (s) for this task.

        Returns:
            The asyncio Task supervising it (ends when the task is done, given up or cancelled).

        Raises:
            ValueError: an empty name, a name in use by a task not finished, a bad `restart`,
                a negative max_restarts or healthy_after_s.
            TypeError: factory or a hook is not callable.
            RuntimeError: the supervisor was stopped, or no running event loop.
        """
        if self._stopping:
            raise RuntimeError(f"supervisor stopped: cannot spawn {name!r}")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"task name must be a non-empty string, got {name!r}")
        old = self._entries.get(name)
        if old is not None and old.state in (RUNNING, RESTARTING):
            raise ValueError(f"task {name!r} is already supervised ({old.state})")
        if not callable(factory):
            raise TypeError(f"task {name!r}: factory must be callable (returning a coroutine), got {factory!r}")
        for hook_name, hook in (("on_failure", on_failure), ("on_give_up", on_give_up)):
            if hook is not None and not callable(hook):
                raise TypeError(f"task {name!r}: {hook_name} must be callable, got {hook!r}")
        if restart not in (True, False, "always"):
            raise ValueError(f"task {name!r}: restart must be True, False or 'always', got {restart!r}")
        if max_restarts is not None and max_restarts < 0:
            raise ValueError(f"task {name!r}: max_restarts must be >= 0 or None, got {max_restarts}")
        h = self.healthy_after_s if healthy_after_s is None else float(healthy_after_s)
        if not h >= 0:
            raise ValueError(f"task {name!r}: healthy_after_s must be >= 0 seconds, got {healthy_after_s}")
        loop = asyncio.get_running_loop()
        e = _Entry(name, subsystem, factory, restart, backoff, on_failure, on_give_up, critical, max_restarts, h,
                   self._clock())
        if old is not None and old.task is not None:
            self._by_task.pop(old.task, None)
        self._entries[name] = e
        e.task = loop.create_task(self._supervise(e), name=name)
        self._by_task[e.task] = e
        log.debug("supervising task %s (subsystem %s)", name, subsystem)
        return e.task

    # ------------------------------------------------------------------ the loop of one task

    async def _supervise(self, e: _Entry) -> None:
        try:
            while True:
                e.state = RUNNING
                e.next_delay_s = None
                e.run += 1
                e.started_at = self._clock()
                if e.health not in (None, "ok"):
                    e.timer = asyncio.get_running_loop().create_task(self._confirm_healthy(e, e.run),
                                                                     name=f"{e.name}-healthy")
                exc: BaseException | None = None
                try:
                    coro = e.factory()
                    if not inspect.isawaitable(coro):
                        raise TypeError(f"the factory of task {e.name} returned {type(coro).__name__}, "
                                        "not a coroutine")
                    await coro
                except asyncio.CancelledError as ce:
                    if _cancel_requested():
                        raise
                    exc = ce
                    log.exception("task %s (%s) ended with a CancelledError nobody asked for: handled as a failure",
                                  e.name, e.subsystem)
                except Exception as ex:
                    exc = ex
                    log.exception("task %s (%s) failed", e.name, e.subsystem)
                finally:
                    self._cancel_timer(e)
                if _cancel_requested() or self._stopping:      # the coroutine swallowed a cancellation
                    raise asyncio.CancelledError()
                if self._clock() - e.started_at >= e.healthy_after_s:
                    e.streak = 0
                if exc is None:
                    if e.restart != "always":
                        e.state = DONE
                        log.info("task %s (%s) finished", e.name, e.subsystem)
                        if e.health not in (None, "ok"):
                            self._health(e, "ok", f"task {e.name} finished normally after {e.restarts} restart(s)")
                        return
                    log.info("task %s (%s) returned; restarting it (restart='always')", e.name, e.subsystem)
                else:
                    if not await self._failed(e, exc):
                        return
                delay = e.backoff.delay(e.streak)
                e.streak += 1
                e.state = RESTARTING
                e.next_delay_s = delay
                if exc is not None:
                    log.warning("task %s (%s): restart %d in %.3gs", e.name, e.subsystem, e.restarts + 1, delay)
                await self._sleep(delay)
                if self._stopping:
                    raise asyncio.CancelledError()
                e.restarts += 1
                if e.health not in (None, "ok"):
                    self._health(e, "degraded", f"task {e.name} restarting (restart {e.restarts}) after "
                                               f"{e.last_error}")
        except asyncio.CancelledError:
            e.state = CANCELLED
            e.next_delay_s = None
            self._cancel_timer(e)
            raise
        except BaseException as exc:            # KeyboardInterrupt, SystemExit: not ours to handle
            e.state = FAILED_FINAL
            self._cancel_timer(e)
            log.critical("task %s (%s) stopped by %s", e.name, e.subsystem, type(exc).__name__)
            raise

    async def _failed(self, e: _Entry, exc: BaseException) -> bool:
        """Record, announce and hook a failure of `e`; False when the task is given up."""
        e.failures += 1
        e.last_exc = exc
        e.last_error = _describe(exc)
        e.last_failure_at = self._clock()
        e.last_failure_ms = int(time.time() * 1000)
        give_up = e.restart is False or (e.max_restarts is not None and e.streak >= e.max_restarts)
        if give_up:
            nxt = ("not restarted (restart=False)" if e.restart is False
                   else f"giving up after {e.streak} restart(s) in a row (max_restarts={e.max_restarts})")
        else:
            nxt = f"restart {e.restarts + 1} in {e.backoff.delay(e.streak):.3g}s"
        self._alert(e, f"task {e.name} failed: {type(exc).__name__}", f"{e.last_error}\n{nxt}")
        self._health(e, "down", f"task {e.name} failed: {e.last_error}; {nxt}")
        if e.on_failure is not None:
            await self._call_hook("on_failure", e.on_failure, e, exc)
        if not give_up:
            return True
        e.state = FAILED_FINAL
        log.critical("task %s (%s) given up: %s (%d failure(s), %d restart(s))", e.name, e.subsystem, nxt,
                     e.failures, e.restarts)
        self._alert(e, f"task {e.name} gave up", f"{e.last_error}\n{nxt}; {e.failures} failure(s) in total")
        self._health(e, "down", f"task {e.name} gave up: {e.last_error}")
        if e.on_give_up is not None:
            await self._call_hook("on_give_up", e.on_give_up, e, exc)
        return False

    async def _confirm_healthy(self, e: _Entry, run: int) -> None:
        """After a restart: publish "ok" once run `run` of `e` has lasted `healthy_after_s`."""
        await self._sleep(e.healthy_after_s)
        if e.run == run and e.state == RUNNING:
            self._health(e, "ok", f"task {e.name} running again for {e.healthy_after_s:g}s after restart "
                                  f"{e.restarts} (last error: {e.last_error})")
            log.info("task %s (%s) healthy again after restart %d", e.name, e.subsystem, e.restarts)

    def _cancel_timer(self, e: _Entry) -> None:
        t, e.timer = e.timer, None
        if t is not None and not t.done() and t is not asyncio.current_task():
            t.cancel()

    async def _call_hook(self, what: str, hook: Hook, e: _Entry, exc: BaseException) -> None:
        """Call `hook(name, exc)`, awaiting its result if awaitable; its errors are logged, never raised
        (a cancellation of the supervising task does propagate)."""
        try:
            result = hook(e.name, exc)
            if inspect.isawaitable(result):
                async with asyncio.timeout(self.hook_timeout_s):    # in this task: the hook may call stop()
                    await result
        except TimeoutError:
            log.error("%s hook of task %s did not finish within %gs: abandoned", what, e.name, self.hook_timeout_s)
        except asyncio.CancelledError:
            if _cancel_requested():
                raise
            log.exception("%s hook of task %s raised CancelledError", what, e.name)
        except Exception:
            log.exception("%s hook of task %s raised", what, e.name)

    def _alert(self, e: _Entry, title: str, detail: str) -> None:
        if self.bus is not None:
            if len(title) > _MAX_TITLE:
                title = title[:_MAX_TITLE - 1] + "…"
            self.bus.publish(AlertEvent("critical" if e.critical else "error", title, detail, ALERT_SOURCE))

    def _health(self, e: _Entry, state: str, detail: str) -> None:
        e.health = state
        if self.bus is not None:
            self.bus.publish(HealthEvent(e.subsystem, state, detail))

    # ------------------------------------------------------------------ stopping

    async def stop(self, timeout_s: float | None = 10.0) -> list[str]:
        """Cancel every task and wait for them (idempotent; no `spawn` afterwards).

        Called from inside a supervised task (e.g. an `on_give_up` hook), that task is left
        out: it is neither cancelled nor awaited.

        Args:
            timeout_s: seconds to wait for the tasks to end (None: no limit).

        Returns:
            The names of the tasks still not finished after `timeout_s` (they swallow
            cancellation; logged as errors). Empty when every task ended.
        """
        self._stopping = True
        me = asyncio.current_task()
        waits: dict[asyncio.Task, str] = {}
        for e in self._entries.values():
            for t in (e.timer, e.task):
                if t is not None and t is not me and not t.done():
                    t.cancel()
                    waits[t] = e.name
        if not waits:
            return []
        done, pending = await asyncio.wait(waits, timeout=timeout_s)
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                log.error("task %s ended with %r while stopping", waits[t], t.exception())
        stuck = sorted({waits[t] for t in pending})
        if stuck:
            log.error("supervisor stop: task(s) %s did not end within %ss of being cancelled", ", ".join(stuck),
                      timeout_s)
        return stuck

    # ------------------------------------------------------------------ liveness

    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"no supervised task named {name!r} (tasks: {', '.join(self._entries) or 'none'})") \
                from None

    def beat(self, name: str | None = None) -> None:
        """Record that task `name` (None: the supervised task calling) is alive, now.

        Raises:
            KeyError: unknown name.
            RuntimeError: name None outside a supervised task.
        """
        if name is None:
            task = asyncio.current_task()
            e = self._by_task.get(task) if task is not None else None
            if e is None:
                raise RuntimeError("beat() without a name must be called from inside a supervised task")
        else:
            e = self._entry(name)
        e.last_beat_at = self._clock()

    def beat_age(self, name: str) -> float:
        """Seconds since task `name` last beat (since it was spawned when it never beat).

        Raises:
            KeyError: unknown name.
        """
        e = self._entry(name)
        return self._clock() - (e.last_beat_at if e.last_beat_at is not None else e.spawned_at)

    def stale(self, name: str, max_age_s: float) -> bool:
        """True when task `name` has not beaten within the last `max_age_s` seconds (before its
        first beat: since it was spawned), whatever its state.

        Raises:
            KeyError: unknown name. ValueError: max_age_s <= 0.
        """
        if not max_age_s > 0:
            raise ValueError(f"max_age_s must be > 0 seconds, got {max_age_s}")
        return self.beat_age(name) > max_age_s

    # ------------------------------------------------------------------ inspection

    def failed(self, name: str) -> bool:
        """True when task `name` was given up (state failed-final). Raises KeyError: unknown name."""
        return self._entry(name).state == FAILED_FINAL

    def healthy(self, name: str) -> bool:
        """True when task `name` is running and either never failed or its current run has lasted
        `healthy_after_s`. Done, cancelled, restarting and given-up tasks are not healthy.

        Raises:
            KeyError: unknown name.
        """
        return self._healthy(self._entry(name))

    def _healthy(self, e: _Entry) -> bool:
        if e.state != RUNNING:
            return False
        return e.failures == 0 or self._clock() - e.started_at >= e.healthy_after_s

    def _snapshot(self, e: _Entry) -> TaskStatus:
        return TaskStatus(e.name, e.subsystem, e.critical, e.state, e.restarts, e.failures, e.streak,
                          self._healthy(e), e.last_error, e.last_failure_at, e.last_failure_ms, e.started_at,
                          e.last_beat_at, e.next_delay_s if e.state == RESTARTING else None)

    @property
    def tasks(self) -> dict[str, TaskStatus]:
        """{name: TaskStatus} of every task spawned (in spawn order), a snapshot."""
        return {name: self._snapshot(e) for name, e in self._entries.items()}

    def status(self) -> list[dict[str, Any]]:
        """The `TaskStatus` of every task as JSON-able dicts, in spawn order."""
        return [self._snapshot(e).to_dict() for e in self._entries.values()]

    def check(self, subsystem: str | None = None):
        """The health of the tasks (of `subsystem`, or all) as a `core.health.status.Check`, for
        `watchdog.register("tasks", sup.check)`:

        * down: a critical task was given up;
        * degraded: a task is restarting, running again but not yet for `healthy_after_s`,
          or a non-critical task was given up;
        * ok otherwise (also with no task). Metrics: tasks, running, restarts, failures.
        """
        from core.health.status import Check

        entries = [e for e in self._entries.values() if subsystem is None or e.subsystem == subsystem]
        metrics = {"tasks": len(entries), "running": sum(e.state == RUNNING for e in entries),
                   "restarts": sum(e.restarts for e in entries), "failures": sum(e.failures for e in entries)}
        down = [e for e in entries if e.state == FAILED_FINAL and e.critical]
        if down:
            return Check.down("; ".join(f"task {e.name} gave up: {e.last_error}" for e in down), **metrics)
        bad = [e for e in entries if e.state == RESTARTING or (e.state == FAILED_FINAL and not e.critical)
               or (e.state == RUNNING and not self._healthy(e))]
        if bad:
            return Check.degraded("; ".join(f"task {e.name} {e.state}: {e.last_error}" for e in bad), **metrics)
        return Check.ok(**metrics)


def spawn_service(engine: Any, name: str, factory: Callable[[], Awaitable[Any]], *, subsystem: str,
                  critical: bool = False) -> asyncio.Task:
    """Start a run service's background task (an event-bus bridge) under the engine's supervisor
    when it has one that is running (a failure is logged, alerted, counted in health and the task
    restarted), else as a plain task whose death is logged at CRITICAL (never silent). The
    caller's `close()` drains what the task left once the engine stopped (the supervisor stops
    with the engine, before the services close)."""
    sup = getattr(engine, "supervisor", None)
    if sup is not None:
        try:
            return sup.spawn(name, factory, subsystem=subsystem, critical=critical)
        except RuntimeError:                         # the supervisor is stopping: a plain task
            pass
    task = asyncio.get_running_loop().create_task(factory(), name=name)

    def died(t: asyncio.Task) -> None:
        if not t.cancelled() and t.exception() is not None:
            log.critical("background task %s died: %s; its events are no longer handled", name,
                         _describe(t.exception()))

    task.add_done_callback(died)
    return task
