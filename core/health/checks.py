"""Standard checks for exchange calls (executor, gateway), job workers and Telegram.

Each factory returns a plain callable `() -> Check` for `Watchdog.register`;
they only read counters, so they are cheap and never block the loop. The
subsystems they watch are reached through small protocols (attribute names
only), so this module imports neither the executor, the job manager nor the
Telegram bot. Other standard checks live in their own modules:
`core.health.feeds` (feed per symbol), `core.health.loop_lag` (event-loop lag)
and `core.health.db_probe` (database).
"""

from __future__ import annotations

from typing import Callable, Protocol

from core.health.status import Check, format_seconds
from core.model.clock import Clock, system_clock

#: A health check as the watchdog takes it (plain callables here; coroutines are accepted too).
CheckFn = Callable[[], Check]


# --------------------------------------------------------------------------- exchange calls

class ExchangeCallStats(Protocol):
    """What `exchange_check` reads; `core.health.breaker.BreakerStats` has it.

    Attributes:
        state: "closed", "open" or "half_open".
        consecutive_failures: transport failures in a row.
        failure_threshold: failures in a row that open the circuit.
        last_success_ms: latest call the exchange answered (ms UTC) or None.
        last_error: text of the latest transport failure, or None.
        retry_at_ms: when an open circuit allows a probe (ms UTC) or None.
    """

    state: str
    consecutive_failures: int
    failure_threshold: int
    last_success_ms: int | None
    last_error: str | None
    retry_at_ms: int | None


def exchange_check(stats: Callable[[], ExchangeCallStats], *, degraded_streak: int = 1,
                   max_silence_s: float | None = None, clock: Clock = system_clock) -> CheckFn:
    """A check of calls to an exchange (the gateway, the executor) from their breaker's stats.

    * down: the circuit is open, or half-open (cool-down over; down until a probe call is answered).
    * degraded: `degraded_streak` or more transport failures in a row while closed; or, with
      `max_silence_s`, no call answered for that many seconds (an idle executor should leave it None).
    * ok otherwise.

    Args:
        stats: e.g. `breaker.stats` of a `CircuitBreaker`.
        degraded_streak: failures in a row that make it degraded (>= 1).
        max_silence_s: seconds without an answered call before degraded (None: not checked).
        clock: int ms UTC, the same clock as the breaker's.

    Raises:
        ValueError: degraded_streak < 1 or max_silence_s <= 0.
    """
    if degraded_streak < 1:
        raise ValueError(f"degraded_streak must be >= 1, got {degraded_streak}")
    if max_silence_s is not None and not max_silence_s > 0:
        raise ValueError(f"max_silence_s must be > 0 seconds, got {max_silence_s}")

    def check() -> Check:
        s = stats()
        now = clock()
        state = str(getattr(s.state, "value", s.state))
        idle_s = None if s.last_success_ms is None else max(0.0, (now - s.last_success_ms) / 1000)
        metrics = {"state": state, "consecutive_failures": s.consecutive_failures,
                   "last_success_ms": s.last_success_ms, "idle_s": idle_s}
        last = f": {s.last_error}" if s.last_error else ""
        if state == "open":
            wait = "" if s.retry_at_ms is None else \
                f"; probe in {format_seconds(max(0.0, (s.retry_at_ms - now) / 1000))}"
            return Check.down(f"circuit open after {s.consecutive_failures} failures{wait}{last}", **metrics)
        if state == "half_open":
            return Check.down(f"circuit half-open, waiting for a probe call to be answered{last}", **metrics)
        if s.consecutive_failures >= degraded_streak:
            return Check.degraded(f"{s.consecutive_failures} failures in a row (circuit opens at "
                                  f"{s.failure_threshold}){last}", **metrics)
        if max_silence_s is not None and (idle_s is None or idle_s >= max_silence_s):
            what = "no call answered yet" if idle_s is None else f"no call answered for {format_seconds(idle_s)}"
            return Check.degraded(f"{what} (expected within {format_seconds(max_silence_s)})", **metrics)
        return Check.ok(**metrics)

    return check


# --------------------------------------------------------------------------- job workers

class JobWorkerStats(Protocol):
    """What `jobs_check` reads (a job manager's snapshot).

    Attributes:
        workers: worker threads configured.
        alive: worker threads alive now.
        queued: jobs waiting to start.
        max_queued: most jobs the queue holds.
        running: jobs running now.
    """

    workers: int
    alive: int
    queued: int
    max_queued: int
    running: int


def jobs_check(stats: Callable[[], JobWorkerStats]) -> CheckFn:
    """A check of the research-job workers.

    * down: no worker alive (of one or more configured).
    * degraded: fewer workers alive than configured, or the queue is full (submits are refused).
    * ok otherwise.
    """

    def check() -> Check:
        s = stats()
        metrics = {"workers": s.workers, "alive": s.alive, "queued": s.queued,
                   "max_queued": s.max_queued, "running": s.running}
        if s.workers > 0 and s.alive <= 0:
            return Check.down(f"no job worker alive (0 of {s.workers})", **metrics)
        if s.alive < s.workers:
            return Check.degraded(f"only {s.alive} of {s.workers} job workers alive", **metrics)
        if s.queued >= s.max_queued > 0:
            return Check.degraded(f"job queue full ({s.queued} of {s.max_queued}); new jobs are refused",
                                  **metrics)
        return Check.ok(**metrics)

    return check


# --------------------------------------------------------------------------- Telegram

class TelegramQueueStats(Protocol):
    """What `TelegramCheck` reads from an outbox's `stats()` (`core.telegram.outbox.OutboxStats` has it).

    Attributes:
        queued: messages waiting now.
        retrying: 1 while the current message waits for a retry after a failure.
        failed, dropped: messages given up / dropped for a full queue (totals).
        last_error: the latest send error (redacted), or None.
        last_error_ms: when it happened (ms UTC), or None.
    """

    queued: int
    retrying: int
    failed: int
    dropped: int
    last_error: str | None
    last_error_ms: int | None


class TelegramOutbox(Protocol):
    """The Telegram outgoing queue as the check sees it: `running` and `stats()`."""

    @property
    def running(self) -> bool:
        """True while the drain task runs."""
        ...

    def stats(self) -> TelegramQueueStats:
        """A snapshot of the counters."""
        ...


class TelegramCheck:
    """A check of Telegram delivery (call it; register the instance).

    * down: the outbox's drain task is not running.
    * degraded: a send is being retried; a send error, a given-up or a dropped message within
      the last `recent_s` seconds; or `queue_warn` or more messages waiting.
    * ok otherwise.

    Args:
        outbox: e.g. `core.telegram.outbox.Outbox`.
        queue_warn: waiting messages that make it degraded (>= 1).
        recent_s: how long (seconds) an error or a lost message keeps it degraded.
        clock: int ms UTC, the outbox's clock.

    Raises:
        ValueError: queue_warn < 1 or recent_s <= 0.
    """

    def __init__(self, outbox: TelegramOutbox, *, queue_warn: int = 50, recent_s: float = 300.0,
                 clock: Clock = system_clock) -> None:
        if queue_warn < 1:
            raise ValueError(f"queue_warn must be >= 1, got {queue_warn}")
        if not recent_s > 0:
            raise ValueError(f"recent_s must be > 0 seconds, got {recent_s}")
        self._outbox = outbox
        self._queue_warn = queue_warn
        self._recent_ms = int(recent_s * 1000)
        self._clock = clock
        self._lost: int | None = None  # failed + dropped at the previous check
        self._lost_ms: int | None = None  # when the count was last seen going up

    def __call__(self) -> Check:
        """The current verdict (see the class docstring)."""
        now = self._clock()
        s = self._outbox.stats()
        lost = s.failed + s.dropped
        if self._lost is not None and lost > self._lost:
            self._lost_ms = now
        self._lost = lost
        metrics = {"queued": s.queued, "failed": s.failed, "dropped": s.dropped, "retrying": s.retrying}
        if not self._outbox.running:
            return Check.down("Telegram outbox is not running; nothing is sent", **metrics)
        problems = []
        if s.retrying:
            problems.append("retrying a send")
        if s.last_error_ms is not None and now - s.last_error_ms < self._recent_ms:
            problems.append(f"send error {format_seconds((now - s.last_error_ms) / 1000)} ago: {s.last_error}")
        if self._lost_ms is not None and now - self._lost_ms < self._recent_ms:
            problems.append(f"messages lost recently ({s.failed} failed, {s.dropped} dropped in total)")
        if s.queued >= self._queue_warn:
            problems.append(f"{s.queued} messages waiting")
        if problems:
            return Check.degraded("; ".join(problems), **metrics)
        return Check.ok(**metrics)
