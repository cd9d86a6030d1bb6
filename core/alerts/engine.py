"""AlertEngine: the single path for every alert in Radar (asyncio; persisted in SQLite).

Everything that can go wrong in the engine (fills, cycles, stop moves, risk
rejections, the kill switch, feed staleness and reconnects, data quality,
reconciliation, jobs, health) calls `raise_alert` with a dedup key, and
`resolve` when the condition clears. Operators `ack` and `snooze` alerts from
the console, Telegram or the CLI (`radar alerts ack|snooze`, another process).

Storage and the event loop: all database work runs in one dedicated worker
thread on the engine's own `open_sync` connection (SQLite's writes are small,
but a write can wait up to the 5 s busy timeout behind another process, and
the loop must never stall). Each public coroutine returns only after its
change is committed (write-through), and state changes are read-modify-write
transactions in `core.alerts.store`, the same code the CLI uses, so a stale
in-memory view never overwrites an operator's change.

In-memory view: every unresolved alert plus the most recently resolved ones
(`AlertConfig.keep_resolved`); `list`, `get` and `unacknowledged_count` read
it without touching the database. `start()` runs a background task that every
`poll_interval_s` reloads rows changed by other processes (one single-row read
when nothing changed) and calls `tick()` (snooze ends, escalations).

Notifications (see `core.alerts.policy` for the rules) go to the sinks in
`engine.sinks`; every change the view sees (own or external) goes to the
listeners in `engine.listeners`. Both are isolated: a hook that raises is
logged and counted, never breaks the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from core.alerts import store
from core.alerts.durations import parse_duration_ms
from core.alerts.model import (
    Alert,
    AlertError,
    AlertInputError,
    AlertState,
    AlertStoreError,
    CommandResult,
    Severity,
    display_order,
)
from core.alerts.notify import HookSet, Notification
from core.alerts.policy import AlertConfig, NotifyReason, escalation_due, firing_reason, snooze_ended
from core.errors import RadarError
from core.model.clock import Clock, system_clock
from core.storage.db import open_sync

log = logging.getLogger(__name__)

R = TypeVar("R")

#: Actor recorded when a snooze runs out.
SNOOZE_EXPIRY_ACTOR = "snooze-expiry"

MAX_KEY_CHARS = 200
MAX_SOURCE_CHARS = 64
MAX_TITLE_CHARS = 200


# --------------------------------------------------------------------------- worker-thread transactions

def _fire_txn(conn: sqlite3.Connection, key: str, severity: Severity, source: str, title: str, detail: str,
              now_ms: int, key_last_notified_ms: int | None,
              config: AlertConfig) -> tuple[Alert, NotifyReason | None]:
    """Record a firing and, when the policy says so, the notification, in one transaction."""
    with store.transaction(conn):
        alert, created = store.record_firing(conn, key, severity, source, title, detail, now_ms)
        reason = firing_reason(alert, created, key_last_notified_ms, now_ms, config)
        if reason is not None:
            alert = store.mark_notified(conn, alert.id, now_ms, escalation=False)
    return alert, reason


def _end_snooze_txn(conn: sqlite3.Connection, alert_id: int, now_ms: int) -> tuple[Alert | None, bool]:
    """Reactivate a snoozed alert whose deadline passed and record its notification.

    Returns:
        (the alert as stored afterwards (None: gone), True when it was reactivated);
        not reactivated when the stored row is no longer due (changed by another process).
    """
    with store.transaction(conn):
        alert = store.end_snooze(conn, alert_id, now_ms, SNOOZE_EXPIRY_ACTOR)
        if alert is None:
            return store.get(conn, alert_id), False
        return store.mark_notified(conn, alert.id, now_ms, escalation=False), True


def _escalate_txn(conn: sqlite3.Connection, alert_id: int, now_ms: int,
                  config: AlertConfig) -> tuple[Alert | None, bool]:
    """Record an escalation notification if the stored alert is still due for one.

    Returns:
        (the alert as stored afterwards (None: gone), True when escalated).
    """
    with store.transaction(conn):
        alert = store.get(conn, alert_id)
        if alert is None or not escalation_due(alert, now_ms, config):
            return alert, False
        return store.mark_notified(conn, alert.id, now_ms, escalation=True), True


def _text(name: str, value: object, max_chars: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AlertInputError(f"alert {name} must be a non-empty string, got {value!r}")
    if len(value) > max_chars:
        raise AlertInputError(f"alert {name} must be at most {max_chars} characters, got {len(value)}")
    return value


class AlertEngine:
    """Raises, deduplicates, notifies, escalates and persists alerts. Create with `await AlertEngine.open(...)`.

    Not thread-safe: use it from the event loop it was opened on.
    """

    def __init__(self, conn: sqlite3.Connection, executor: ThreadPoolExecutor, db_path: str,
                 config: AlertConfig, clock: Clock, redact: Callable[[str], str] | None) -> None:
        """Use `AlertEngine.open`; this only wires an already opened connection."""
        self._conn = conn
        self._executor = executor
        self._db_path = db_path
        self._config = config
        self._clock = clock
        self._redact = redact or (lambda s: s)
        self._lock = asyncio.Lock()
        self._alerts: dict[int, Alert] = {}
        self._open_by_key: dict[str, int] = {}
        self._key_notified: dict[str, int] = {}
        self._rev = 0
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._loop_failing = False
        #: Notification sinks: callables taking a `Notification` (may be `async def`).
        self.sinks: HookSet[Notification] = HookSet("alert sink")
        #: Change listeners: callables taking the changed `Alert` (own and external changes).
        self.listeners: HookSet[Alert] = HookSet("alert listener")
        #: How many background poll/tick rounds failed.
        self.loop_errors = 0

    # ------------------------------------------------------------------- lifecycle

    @classmethod
    async def open(cls, db_path: str | os.PathLike[str], *, config: AlertConfig | None = None,
                   clock: Clock = system_clock, redact: Callable[[str], str] | None = None) -> "AlertEngine":
        """Open the database (migrating it), load the alerts and return the engine (not yet polling).

        Args:
            db_path: the Radar SQLite database.
            config: engine settings (default `AlertConfig()`).
            clock: returns the current time as int ms UTC (tests pass a `ManualClock`).
            redact: applied to every title and detail before it is stored or
                notified, e.g. `SecretRedactor(secrets).redact`, so no secret reaches
                the database or a sink.

        Raises:
            AlertStoreError: the database cannot be opened or read.
            RadarError: a migration failed.
        """
        config = config or AlertConfig()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="radar-alerts-db")
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(executor, open_sync, db_path)
        except (OSError, sqlite3.Error) as exc:
            executor.shutdown(wait=False)
            raise AlertStoreError(f"cannot open alerts database {db_path}: {exc}") from exc
        except BaseException:
            executor.shutdown(wait=False)
            raise
        engine = cls(conn, executor, str(db_path), config, clock, redact)
        try:
            await engine._load()
        except BaseException:
            await engine.close()
            raise
        return engine

    async def _load(self) -> None:
        alerts, rev = await self._db(store.load_view, self._config.keep_resolved)
        since = self._clock() - self._config.rate_limit_ms
        self._key_notified = await self._db(store.key_last_notified, since)
        self._rev = rev
        for alert in alerts:
            self._apply(alert)

    def start(self) -> None:
        """Start the background task polling external changes and calling `tick()` (idempotent).

        Raises:
            AlertError: the engine is closed.
        """
        self._check_open()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="alert-engine-poll")

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_changes()
                await self.tick()
                if self._loop_failing:
                    log.warning("alert engine poll/tick works again")
                self._loop_failing = False
            except Exception:
                self.loop_errors += 1
                if not self._loop_failing:  # log a failure once, not every poll
                    log.exception("alert engine poll/tick failed; retrying every %.2fs",
                                  self._config.poll_interval_s)
                self._loop_failing = True
            await asyncio.sleep(self._config.poll_interval_s)

    async def close(self) -> None:
        """Stop polling, wait for running operations and async sinks, close the database (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        async with self._lock:  # let an operation in flight finish
            pass
        await self.sinks.drain()
        await self.listeners.drain()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(sqlite3.Error):
            await loop.run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> "AlertEngine":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise AlertError("the alert engine is closed")

    async def _db(self, fn: Callable[..., R], *args: Any) -> R:
        """Run `fn(conn, *args)` in the database thread.

        Raises:
            AlertStoreError: a database failure (the store rolled back).
        """
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(fn, self._conn, *args))
        except (sqlite3.Error, KeyError) as exc:
            raise AlertStoreError(f"alerts database {self._db_path}: {exc}") from exc

    # ------------------------------------------------------------------- in-memory view

    def _apply(self, alert: Alert) -> bool:
        """Put `alert` into the view; True when it differs from what the view held."""
        old = self._alerts.get(alert.id)
        if old == alert:
            return False
        self._alerts[alert.id] = alert
        if alert.is_open:
            self._open_by_key[alert.key] = alert.id
        elif self._open_by_key.get(alert.key) == alert.id:
            del self._open_by_key[alert.key]
        if alert.last_notified_ms is not None:
            self._key_notified[alert.key] = max(alert.last_notified_ms, self._key_notified.get(alert.key, 0))
        if not alert.is_open:
            self._trim_resolved()
        return True

    def _trim_resolved(self) -> None:
        resolved = [a for a in self._alerts.values() if not a.is_open]
        extra = len(resolved) - self._config.keep_resolved
        if extra > 0:
            resolved.sort(key=lambda a: (a.changed_ms, a.id))
            for a in resolved[:extra]:
                del self._alerts[a.id]

    def get(self, alert_id: int) -> Alert | None:
        """The alert with `alert_id` from the view (unresolved or recently resolved), or None."""
        return self._alerts.get(alert_id)

    def list(self, state: AlertState | str | None = None, severity: Severity | str | None = None) -> list[Alert]:
        """Alerts of the view in display order (unresolved first, most severe, most recent).

        Args:
            state: only this state; None: every unresolved alert (active,
                acknowledged, snoozed). `"resolved"` lists the recently resolved ones kept in the view.
            severity: only this severity; None: all.

        Raises:
            AlertInputError: an unknown state or severity.
        """
        st = AlertState.parse(state) if state is not None else None
        sev = Severity.parse(severity) if severity is not None else None
        found = [a for a in self._alerts.values()
                 if (a.is_open if st is None else a.state is st) and (sev is None or a.severity is sev)]
        return sorted(found, key=display_order)

    def unacknowledged_count(self) -> int:
        """How many alerts are active (neither acknowledged, snoozed nor resolved)."""
        return sum(1 for a in self._alerts.values() if a.state is AlertState.ACTIVE)

    # ------------------------------------------------------------------- raising and resolving

    async def raise_alert(self, key: str, severity: Severity | str, source: str, title: str,
                          detail: str = "") -> Alert:
        """Record that condition `key` fires; returns the alert after the committed write.

        With an unresolved alert for `key`: its count goes up, last seen becomes
        now and severity/source/title/detail take the new values; its state is
        kept (an acknowledged or snoozed alert stays so). Otherwise a new active
        alert opens (a resolved alert firing again gets a new id). Sinks are
        notified per `core.alerts.policy` (new / repeat, rate limited per key).

        Args:
            key: dedup key, e.g. "feed.stale:bitget:BTC/USDT:USDT" (1..200 chars).
            severity: info, warning, error or critical.
            source: what raises it, e.g. "feed", "risk", "reconcile" (1..64 chars).
            title: one line for the operator (1..200 chars after redaction).
            detail: more text; cut to `AlertConfig.max_detail_chars`.

        Raises:
            AlertInputError: a bad argument (names which).
            AlertStoreError: the database failed; nothing was recorded or notified.
            AlertError: the engine is closed.

        Cancelling the caller after the write was handed to the database thread
        does not undo it: it commits, the next poll brings it into the view, and
        no notification is sent for it.
        """
        sev = Severity.parse(severity)
        key = _text("key", key, MAX_KEY_CHARS)
        source = _text("source", source, MAX_SOURCE_CHARS)
        if not isinstance(title, str):
            raise AlertInputError(f"alert title must be a string, got {title!r}")
        title = _text("title", self._redact(title), MAX_TITLE_CHARS)
        if not isinstance(detail, str):
            raise AlertInputError(f"alert detail must be a string, got {type(detail).__name__}")
        detail = self._redact(detail)
        if len(detail) > self._config.max_detail_chars:
            detail = detail[: self._config.max_detail_chars - 1] + "…"
        self._check_open()
        async with self._lock:
            now = self._clock()
            alert, reason = await self._db(_fire_txn, key, sev, source, title, detail, now,
                                           self._key_notified.get(key), self._config)
            changed = self._apply(alert)
        if changed:
            self.listeners.deliver(alert)
        if reason is not None:
            self.sinks.deliver(Notification(alert, reason, now))
        return alert

    async def resolve(self, key: str, actor: str) -> Alert | None:
        """Resolve the unresolved alert for `key` (the condition cleared); cheap when there is none.

        Args:
            key: the dedup key given to `raise_alert`.
            actor: who or what resolved it, e.g. "feed-monitor" (recorded as changed_by).

        Returns:
            the resolved alert, or None when no alert for `key` was unresolved.

        Raises:
            AlertInputError: empty actor.
            AlertStoreError: the database failed; nothing changed.
            AlertError: the engine is closed.
        """
        actor = _text("actor", actor, store.MAX_ACTOR_CHARS)
        self._check_open()
        if key not in self._open_by_key:
            return None
        async with self._lock:
            alert = await self._db(store.resolve_key, key, actor, self._clock())
            changed = alert is not None and self._apply(alert)
        if changed:
            self.listeners.deliver(alert)
        return alert

    # ------------------------------------------------------------------- operator commands (never raise)

    async def ack(self, alert_id: int | str, actor: str) -> CommandResult:
        """Acknowledge alert `alert_id` (an int or a decimal string from user input).

        Never raises (except cancellation): an unknown or resolved id, a bad id
        or actor, a closed engine or a database failure give a failed
        `CommandResult` whose message says what was wrong.
        """
        return await self._command("acknowledge", alert_id, store.acknowledge, actor)

    async def snooze(self, alert_id: int | str, actor: str, *, until_ms: int | None = None,
                     duration: str | None = None) -> CommandResult:
        """Snooze alert `alert_id` until `until_ms` (ms UTC) or for `duration` ("30m", "2h", "1d").

        Give exactly one of `until_ms` and `duration`. Never raises (except
        cancellation): bad input, an unknown or resolved id, a closed engine or a
        database failure give a failed `CommandResult`.
        """
        if (until_ms is None) == (duration is None):
            return CommandResult.failure("invalid", f"cannot snooze alert {alert_id}: give exactly one of "
                                                    "until_ms or duration")
        if duration is not None:
            try:
                length = parse_duration_ms(duration)
            except RadarError as err:
                return CommandResult.failure("invalid", f"cannot snooze alert {alert_id}: {err}")

            def deadline(now: int) -> int:
                return now + length
        else:
            def deadline(now: int) -> int:
                return until_ms  # type: ignore[return-value]  # validated by store.snooze

        def do(conn: sqlite3.Connection, alert_id: int | str, actor: str, now: int) -> CommandResult:
            return store.snooze(conn, alert_id, deadline(now), actor, now)

        return await self._command("snooze", alert_id, do, actor)

    async def _command(self, verb: str, alert_id: int | str,
                       fn: Callable[[sqlite3.Connection, Any, str, int], CommandResult],
                       actor: str) -> CommandResult:
        try:
            self._check_open()
            async with self._lock:
                res = await self._db(fn, alert_id, actor, self._clock())
                changed = res.alert is not None and self._apply(res.alert)
        except Exception as exc:
            log.error("alert %s of %r by %r failed: %s", verb, alert_id, actor, exc)
            return CommandResult.failure("storage", f"cannot {verb} alert {alert_id}: {exc}")
        if changed:
            assert res.alert is not None
            self.listeners.deliver(res.alert)
        return res

    # ------------------------------------------------------------------- periodic work

    async def tick(self) -> list[Notification]:
        """End due snoozes (unresolved alerts become active and are notified) and escalate
        unacknowledged critical alerts; returns the notifications sent. Cheap when nothing is due.

        Raises:
            AlertStoreError: the database failed (the background task logs and retries).
        """
        self._check_open()
        now = self._clock()
        due = [a.id for a in self._alerts.values() if snooze_ended(a, now)]
        esc = [a.id for a in self._alerts.values() if escalation_due(a, now, self._config)]
        if not due and not esc:
            return []
        sent: list[Notification] = []
        changed: list[Alert] = []
        async with self._lock:
            now = self._clock()
            work = [(i, _end_snooze_txn, (), NotifyReason.SNOOZE_ENDED) for i in due]
            work += [(i, _escalate_txn, (self._config,), NotifyReason.ESCALATION) for i in esc]
            for alert_id, txn, extra, reason in work:
                alert, notify = await self._db(txn, alert_id, now, *extra)
                if alert is not None and self._apply(alert):  # also refreshes a stale view
                    changed.append(alert)
                if notify:
                    assert alert is not None
                    sent.append(Notification(alert, reason, now))
        for alert in changed:
            self.listeners.deliver(alert)
        for n in sent:
            self.sinks.deliver(n)
        return sent

    async def poll_changes(self) -> list[Alert]:
        """Reload alerts changed by other processes (e.g. `radar alerts ack`); returns those that differ
        from the view. One single-row read when nothing changed.

        Raises:
            AlertStoreError: the database failed.
        """
        self._check_open()
        async with self._lock:
            rows, rev = await self._db(store.changed_since, self._rev)
            changed = [a for a in rows if self._apply(a)]
            self._rev = rev
        for alert in changed:
            self.listeners.deliver(alert)
        return changed

    @property
    def sink_failures(self) -> int:
        """How many sink deliveries raised since the engine opened."""
        return self.sinks.failures
