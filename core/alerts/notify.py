"""Notifications and the isolated delivery to sinks (Telegram, console toast, log, tests).

A sink is any callable taking one argument. It may return None (done) or an
awaitable (an `async def` sink): the awaitable is run as its own task so a
slow sink never delays the caller. A sink that raises, synchronously or in its
task, is logged and counted (`HookSet.failures`), never propagated.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from core.alerts.model import Alert
from core.alerts.policy import NotifyReason

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Notification:
    """One notification: the alert as it was when notified, why, and when (ms UTC)."""

    alert: Alert
    reason: NotifyReason
    at_ms: int

    def line(self) -> str:
        """One line for a chat message or a toast, e.g. "[CRITICAL] kill switch engaged (x3) #12: detail"."""
        a = self.alert
        prefix = {NotifyReason.ESCALATION: "still unacknowledged: ",
                  NotifyReason.SNOOZE_ENDED: "snooze ended: "}.get(self.reason, "")
        count = f" (x{a.count})" if a.count > 1 else ""
        detail = f": {a.detail}" if a.detail else ""
        return f"[{a.severity.value.upper()}] {prefix}{a.title}{count} #{a.id}{detail}"


#: A notification sink.
Sink = Callable[[Notification], Any]


class HookSet(Generic[T]):
    """Callables that each receive every delivered item, isolated from each other and the caller.

    Args:
        what: a name for log messages, e.g. "alert sink".
    """

    def __init__(self, what: str) -> None:
        self._what = what
        self._hooks: list[Callable[[T], Any]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        #: How many deliveries raised (sync or async) since creation.
        self.failures = 0

    def add(self, hook: Callable[[T], Any]) -> None:
        """Deliver every later item to `hook` too."""
        self._hooks.append(hook)

    def remove(self, hook: Callable[[T], Any]) -> None:
        """Stop delivering to `hook` (no error if absent)."""
        if hook in self._hooks:
            self._hooks.remove(hook)

    def deliver(self, item: T) -> None:
        """Call every hook with `item`; never raises (except BaseException such as KeyboardInterrupt)."""
        for hook in list(self._hooks):
            try:
                result = hook(item)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._tasks.add(task)
                    task.add_done_callback(self._task_done)
            except Exception:
                self.failures += 1
                log.exception("%s %s failed", self._what, _name(hook))

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.failures += 1
            log.error("%s task failed", self._what, exc_info=exc)

    async def drain(self) -> None:
        """Wait for every async delivery still running (their failures are counted, not raised)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
            await asyncio.sleep(0)  # let done callbacks run


def _name(hook: Callable[..., Any]) -> str:
    return getattr(hook, "__qualname__", None) or type(hook).__name__
