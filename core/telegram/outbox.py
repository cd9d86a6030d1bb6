"""The bounded outgoing-message queue, drained by one task with retry and exponential backoff.

Nothing that enqueues ever waits on Telegram: `Outbox.put` is synchronous and
O(queue size) at worst. One drain task sends the messages in order through the
`send` coroutine it was given:

* success: counted as sent;
* `RetryLater(after_s)` (Telegram 429 flood control): the same message is
  retried after exactly that long (the server's word wins over the backoff);
* `PermanentSendError` (chat not found, bot blocked, bad request, token
  rejected): given up at once, counted as failed and logged;
* any other exception, or no answer within `send_timeout_s`: retried after
  `retry_base_s * 2**(attempt-1)` capped at `retry_max_s`, until
  `max_attempts` (if set) or until the message is older than `expire_after_ms`
  (if set); then counted as failed and logged.

When the queue is full, the message dropped is the one with the lowest
severity, the oldest among equals; the newly offered message counts too, so a
message is never dropped in favour of a less severe one (a critical message is
only ever dropped for a newer critical one). Drops are counted and logged.

Failures never propagate to callers. Logs name the chat id, severity and error
kind, never the message text; error texts pass through `redact`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from core.alerts.model import Severity
from core.model.clock import Clock, system_clock

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """Raised by a send function: the server asked to wait `after_s` seconds (HTTP 429)."""

    def __init__(self, after_s: float) -> None:
        super().__init__(f"rate limited: retry after {after_s:g}s")
        self.after_s = float(after_s)


class PermanentSendError(Exception):
    """Raised by a send function: retrying this message cannot succeed (bad chat, blocked, bad request)."""


@dataclass
class OutgoingMessage:
    """One message waiting to be sent.

    Attributes:
        chat_id: Telegram chat id.
        text: plain text (at most 4096 characters; see `core.telegram.format.fit`).
        severity: priority when the queue overflows (not shown to the user).
        queued_ms: when it was queued, ms UTC.
        seq: queue order (increasing).
        attempts: send attempts so far.
    """

    chat_id: int
    text: str
    severity: Severity
    queued_ms: int
    seq: int
    attempts: int = 0


@dataclass(frozen=True)
class OutboxStats:
    """Counters of an outbox (totals since creation unless said otherwise).

    Attributes:
        queued: messages waiting now (gauge; excludes the one being sent).
        in_flight: 1 while a message is being sent or waits for its retry, else 0 (gauge).
        retrying: 1 while the current message waits for a retry after a failure, else 0 (gauge).
        sent: messages delivered.
        dropped: messages dropped because the queue was full.
        failed: messages given up (permanent error, attempts exhausted, expired, unsent at stop).
        retries: failed attempts that were retried.
        last_error: the latest send error (redacted), or None.
        last_error_ms: when it happened, ms UTC, or None.
    """

    queued: int
    in_flight: int
    retrying: int
    sent: int
    dropped: int
    failed: int
    retries: int
    last_error: str | None
    last_error_ms: int | None


SendFn = Callable[[OutgoingMessage], Awaitable[None]]
SleepFn = Callable[[float], Awaitable[None]]


@dataclass
class _Counters:
    sent: int = 0
    dropped: int = 0
    failed: int = 0
    retries: int = 0
    last_error: str | None = None
    last_error_ms: int | None = None
    failing_since_ms: int | None = field(default=None)


class Outbox:
    """A bounded queue of outgoing messages and the task that sends them.

    Args:
        send: coroutine sending one message; raises `RetryLater`, `PermanentSendError`
            or any other exception (transient).
        max_size: most messages waiting (>= 1).
        retry_base_s, retry_max_s: backoff after the first failure and its cap (seconds).
        max_attempts: attempts per message before giving up (None: unlimited).
        expire_after_ms: give up a message this old (ms; None: never).
        send_timeout_s: one attempt taking longer is abandoned and retried.
        clock: ms UTC time source.
        redact: applied to every error text before it is logged or kept.
        sleep: the backoff sleep (tests may record the delays).

    Raises:
        ValueError: max_size < 1.
    """

    def __init__(self, send: SendFn, *, max_size: int, retry_base_s: float = 1.0, retry_max_s: float = 60.0,
                 max_attempts: int | None = None, expire_after_ms: int | None = None,
                 send_timeout_s: float = 10.0, clock: Clock = system_clock,
                 redact: Callable[[str], str] = lambda s: s, sleep: SleepFn = asyncio.sleep) -> None:
        if max_size < 1:
            raise ValueError(f"Outbox max_size must be >= 1, got {max_size}")
        self._send = send
        self._max_size = max_size
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._max_attempts = max_attempts
        self._expire_after_ms = expire_after_ms
        self._send_timeout_s = send_timeout_s
        self._clock = clock
        self._redact = redact
        self._sleep = sleep
        self._queue: deque[OutgoingMessage] = deque()
        self._seq = itertools.count(1)
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        #: how `start()` runs the background task: `spawn(name, factory) -> Task` (the engine
        #: passes its supervisor's, which logs, alerts and restarts a task that dies); None: a
        #: plain task
        self.spawn: Callable[[str, Callable[[], Awaitable[None]]], asyncio.Task] | None = None
        self._current: OutgoingMessage | None = None
        self._retrying = False
        self._c = _Counters()

    # ------------------------------------------------------------------- enqueueing

    def put(self, chat_id: int, text: str, severity: Severity | str = Severity.INFO) -> bool:
        """Queue a message (never blocks, never raises for a full queue).

        Returns:
            True when queued; False when the queue was full and this message was the
            least severe (it is then the one dropped and counted).

        Raises:
            AlertInputError: an unknown severity (a programming error).
        """
        msg = OutgoingMessage(int(chat_id), text, Severity.parse(severity), self._clock(), next(self._seq))
        if len(self._queue) >= self._max_size:
            victim = min(self._queue, key=lambda m: (m.severity.rank, m.seq))
            if msg.severity.rank < victim.severity.rank:
                self._count_drop(msg)
                return False
            self._queue.remove(victim)
            self._count_drop(victim)
        self._queue.append(msg)
        self._idle.clear()
        self._wakeup.set()
        return True

    def _count_drop(self, msg: OutgoingMessage) -> None:
        self._c.dropped += 1
        log.warning("telegram outbox full (%d): dropped a message (%s) for chat %s queued at %d ms UTC "
                    "(%d dropped so far)", self._max_size, msg.severity.value, msg.chat_id, msg.queued_ms,
                    self._c.dropped)

    # ------------------------------------------------------------------- state

    def stats(self) -> OutboxStats:
        """A snapshot of the counters."""
        c = self._c
        return OutboxStats(queued=len(self._queue), in_flight=int(self._current is not None),
                           retrying=int(self._retrying), sent=c.sent, dropped=c.dropped, failed=c.failed,
                           retries=c.retries, last_error=c.last_error, last_error_ms=c.last_error_ms)

    def pending(self) -> list[OutgoingMessage]:
        """The messages waiting (oldest first), excluding the one being sent."""
        return list(self._queue)

    @property
    def running(self) -> bool:
        """True while the drain task runs."""
        return self._task is not None and not self._task.done()

    async def wait_idle(self) -> None:
        """Wait until nothing is queued or in flight (returns at once when idle)."""
        await self._idle.wait()

    # ------------------------------------------------------------------- drain task

    def start(self) -> None:
        """Start the drain task on the running loop (idempotent)."""
        if not self.running:
            self._task = (self.spawn("telegram-outbox", self._drain) if self.spawn is not None
                          else asyncio.get_running_loop().create_task(self._drain(), name="telegram-outbox"))

    async def stop(self, flush_timeout_s: float = 0.0) -> None:
        """Send what is queued for up to `flush_timeout_s` seconds, then stop the drain task.

        Messages still unsent are counted as failed and logged (a count, not their texts).
        Idempotent; never raises (except cancellation of the caller).
        """
        if self.running and flush_timeout_s > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), flush_timeout_s)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        unsent = len(self._queue) + (1 if self._current is not None else 0)
        if unsent:
            self._c.failed += unsent
            log.warning("telegram outbox stopped with %d message(s) unsent", unsent)
        self._queue.clear()
        self._current = None
        self._retrying = False
        self._idle.set()

    async def _drain(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self._current = self._queue.popleft()
            try:
                await self._deliver(self._current)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not kill the drain task
                self._c.failed += 1
                log.exception("telegram outbox: unexpected error delivering a message to chat %s",
                              self._current.chat_id)
            self._current = None

    async def _deliver(self, msg: OutgoingMessage) -> None:
        while True:
            now = self._clock()
            if self._expire_after_ms is not None and now - msg.queued_ms > self._expire_after_ms:
                self._give_up(msg, f"expired after {msg.attempts} attempt(s)")
                return
            msg.attempts += 1
            try:
                await asyncio.wait_for(self._send(msg), self._send_timeout_s)
            except asyncio.CancelledError:
                raise
            except RetryLater as exc:
                delay = max(0.0, exc.after_s)
                self._note_error(f"rate limited (429), retry after {exc.after_s:g}s")
            except PermanentSendError as exc:
                text = self._redact(str(exc))
                self._c.last_error, self._c.last_error_ms = text, self._clock()
                self._give_up(msg, f"permanent error: {text}")
                return
            except Exception as exc:  # transient: network, 5xx, timeout
                text = "timed out" if isinstance(exc, asyncio.TimeoutError) else (
                    f"{type(exc).__name__}: {self._redact(str(exc))}")
                self._note_error(text)
                if self._max_attempts is not None and msg.attempts >= self._max_attempts:
                    self._give_up(msg, f"{msg.attempts} attempt(s) failed, last: {text}")
                    return
                delay = min(self._retry_max_s, self._retry_base_s * 2 ** (msg.attempts - 1))
            else:
                self._c.sent += 1
                if self._c.failing_since_ms is not None:
                    log.info("telegram sends work again (failing since %d ms UTC)", self._c.failing_since_ms)
                    self._c.failing_since_ms = None
                return
            self._c.retries += 1
            self._retrying = True
            try:
                await self._sleep(delay)
            finally:
                self._retrying = False

    def _note_error(self, text: str) -> None:
        now = self._clock()
        self._c.last_error, self._c.last_error_ms = text, now
        if self._c.failing_since_ms is None:  # once per failure streak, not per attempt
            self._c.failing_since_ms = now
            log.warning("telegram send failed (%s); retrying with backoff", text)
        else:
            log.debug("telegram send failed again (%s)", text)

    def _give_up(self, msg: OutgoingMessage, why: str) -> None:
        self._c.failed += 1
        log.warning("telegram: gave up a message (%s) for chat %s: %s (%d failed so far)",
                    msg.severity.value, msg.chat_id, why, self._c.failed)
