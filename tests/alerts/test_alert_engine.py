"""AlertEngine with a manual clock: dedup, notification rules, snooze, escalation, persistence, errors."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.alerts import store
from core.alerts.engine import AlertEngine
from core.alerts.model import AlertInputError, AlertState, Severity
from core.alerts.notify import Notification
from core.alerts.policy import AlertConfig, NotifyReason
from core.model.clock import ManualClock
from core.storage.db import open_sync

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
MIN = 60_000
CONFIG = AlertConfig(rate_limit_ms=5 * MIN, escalate_after_ms=10 * MIN)


class Recorder:
    """A sink keeping every notification."""

    def __init__(self) -> None:
        self.got: list[Notification] = []

    def __call__(self, n: Notification) -> None:
        self.got.append(n)

    def reasons(self) -> list[tuple[str, NotifyReason]]:
        return [(n.alert.key, n.reason) for n in self.got]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def engine(db_path: Path, clock: ManualClock) -> AsyncIterator[AlertEngine]:
    eng = await AlertEngine.open(db_path, config=CONFIG, clock=clock)
    yield eng
    await eng.close()


@pytest.fixture
def sink(engine: AlertEngine) -> Recorder:
    rec = Recorder()
    engine.sinks.add(rec)
    return rec


def stored(db_path: Path) -> list:
    """Every alert as committed in the database (read through a separate connection)."""
    conn = open_sync(db_path)
    try:
        return store.list_alerts(conn)
    finally:
        conn.close()


# --------------------------------------------------------------------------- dedup and rate limit

async def test_same_key_dedups_into_one_alert_with_counts(engine: AlertEngine, clock: ManualClock,
                                                          db_path: Path) -> None:
    a1 = await engine.raise_alert("feed.stale:BTC", "warning", "feed", "BTC feed stale", "no ticks for 30s")
    clock.advance(MIN)
    await engine.raise_alert("feed.stale:BTC", "warning", "feed", "BTC feed stale", "no ticks for 90s")
    clock.advance(MIN)
    a3 = await engine.raise_alert("feed.stale:BTC", Severity.ERROR, "feed", "BTC feed stale", "no ticks for 150s")
    other = await engine.raise_alert("feed.stale:ETH", "warning", "feed", "ETH feed stale")

    assert a3.id == a1.id != other.id
    assert (a3.count, a3.first_seen_ms, a3.last_seen_ms) == (3, T0, T0 + 2 * MIN)
    assert (a3.detail, a3.severity, a3.state) == ("no ticks for 150s", Severity.ERROR, AlertState.ACTIVE)
    assert [a.id for a in engine.list()] == [a1.id, other.id]  # error before warning
    assert stored(db_path) == engine.list()  # write-through: the database holds exactly the view


async def test_rate_limit_one_notification_per_key_per_interval(engine: AlertEngine, sink: Recorder,
                                                                clock: ManualClock) -> None:
    await engine.raise_alert("risk.reject", "warning", "risk", "order rejected")
    clock.advance(4 * MIN)
    await engine.raise_alert("risk.reject", "warning", "risk", "order rejected")
    await engine.raise_alert("other", "info", "jobs", "job done")  # another key is not limited
    assert sink.reasons() == [("risk.reject", NotifyReason.NEW), ("other", NotifyReason.NEW)]

    clock.advance(MIN)  # 5 min after the first notification
    a = await engine.raise_alert("risk.reject", "warning", "risk", "order rejected")
    assert sink.reasons()[-1] == ("risk.reject", NotifyReason.REPEAT)
    assert (a.count, a.notified_count) == (3, 2)


async def test_rate_limit_applies_to_a_flapping_key_across_alerts(engine: AlertEngine, sink: Recorder,
                                                                  clock: ManualClock) -> None:
    first = await engine.raise_alert("feed.reconnect", "warning", "feed", "reconnecting")
    await engine.resolve("feed.reconnect", "feed")
    clock.advance(MIN)
    second = await engine.raise_alert("feed.reconnect", "warning", "feed", "reconnecting")
    assert second.id != first.id and second.count == 1
    assert len(sink.got) == 1  # the re-opened alert is within the key's rate limit
    await engine.resolve("feed.reconnect", "feed")
    clock.advance(5 * MIN)
    third = await engine.raise_alert("feed.reconnect", "warning", "feed", "reconnecting")
    assert sink.got[-1].alert.id == third.id and sink.got[-1].reason is NotifyReason.NEW


# --------------------------------------------------------------------------- resolve

async def test_auto_resolve_and_firing_again_opens_a_new_alert(engine: AlertEngine, clock: ManualClock,
                                                               db_path: Path) -> None:
    a = await engine.raise_alert("health.disk", "error", "health", "disk 95% full")
    clock.advance(MIN)
    r = await engine.resolve("health.disk", "health-monitor")
    assert r is not None and r.id == a.id
    assert (r.state, r.changed_by, r.changed_ms) == (AlertState.RESOLVED, "health-monitor", T0 + MIN)
    assert engine.list() == [] and engine.list(state="resolved") == [r]
    assert await engine.resolve("health.disk", "health-monitor") is None  # nothing open: no-op
    assert await engine.resolve("never.raised", "health-monitor") is None

    clock.advance(MIN)
    b = await engine.raise_alert("health.disk", "error", "health", "disk 96% full")
    assert b.id != a.id and (b.count, b.first_seen_ms, b.state) == (1, T0 + 2 * MIN, AlertState.ACTIVE)
    assert {(x.id, x.state) for x in stored(db_path)} == {(a.id, AlertState.RESOLVED), (b.id, AlertState.ACTIVE)}


# --------------------------------------------------------------------------- snooze

async def test_snooze_mutes_then_expiry_reactivates_a_still_firing_alert(engine: AlertEngine, sink: Recorder,
                                                                         clock: ManualClock) -> None:
    a = await engine.raise_alert("dq.gap", "warning", "data", "gap in BTC 1h")
    res = await engine.snooze(a.id, "console", duration="30m")
    assert res.ok and res.alert is not None
    assert (res.alert.state, res.alert.snoozed_until_ms, res.alert.changed_by) == \
        (AlertState.SNOOZED, T0 + 30 * MIN, "console")
    assert engine.unacknowledged_count() == 0 and engine.list(state="snoozed") == [res.alert]

    clock.advance(10 * MIN)  # past the rate limit, but snoozed: counted, not notified
    fired = await engine.raise_alert("dq.gap", "warning", "data", "gap in BTC 1h")
    assert (fired.count, fired.state) == (2, AlertState.SNOOZED)
    clock.advance(19 * MIN)
    assert await engine.tick() == []
    assert len(sink.got) == 1

    clock.advance(MIN)  # the deadline
    sent = await engine.tick()
    assert [(n.alert.id, n.reason) for n in sent] == [(a.id, NotifyReason.SNOOZE_ENDED)]
    back = engine.get(a.id)
    assert back is not None and (back.state, back.snoozed_until_ms, back.changed_by, back.changed_ms) == \
        (AlertState.ACTIVE, None, "snooze-expiry", T0 + 30 * MIN)
    assert sink.got[-1].reason is NotifyReason.SNOOZE_ENDED and engine.unacknowledged_count() == 1
    assert await engine.tick() == []  # once


async def test_snoozed_alert_resolved_meanwhile_stays_resolved(engine: AlertEngine, sink: Recorder,
                                                               clock: ManualClock) -> None:
    a = await engine.raise_alert("recon.drift", "error", "reconcile", "position drift")
    assert (await engine.snooze(a.id, "tg", until_ms=T0 + 20 * MIN)).ok
    clock.advance(5 * MIN)
    await engine.resolve("recon.drift", "reconcile")
    clock.advance(30 * MIN)
    assert await engine.tick() == []
    final = engine.get(a.id)
    assert final is not None and (final.state, final.changed_by) == (AlertState.RESOLVED, "reconcile")
    assert len(sink.got) == 1


# --------------------------------------------------------------------------- escalation

async def test_unacknowledged_critical_is_re_notified_every_interval_until_ack(
        engine: AlertEngine, sink: Recorder, clock: ManualClock) -> None:
    a = await engine.raise_alert("kill_switch", "critical", "risk", "kill switch engaged")
    await engine.raise_alert("feed.lag", "error", "feed", "feed lag")  # not critical: never escalated
    clock.advance(9 * MIN)
    assert await engine.tick() == []
    clock.advance(MIN)
    assert [(n.alert.id, n.reason) for n in await engine.tick()] == [(a.id, NotifyReason.ESCALATION)]
    clock.advance(5 * MIN)
    assert await engine.tick() == []
    clock.advance(5 * MIN)
    assert [n.reason for n in await engine.tick()] == [NotifyReason.ESCALATION]

    assert (await engine.ack(a.id, "console")).ok
    clock.advance(60 * MIN)
    assert await engine.tick() == []
    assert [r for _, r in sink.reasons()] == [NotifyReason.NEW, NotifyReason.NEW,
                                               NotifyReason.ESCALATION, NotifyReason.ESCALATION]
    assert engine.get(a.id).notified_count == 3  # type: ignore[union-attr]


async def test_resolved_critical_is_not_escalated(engine: AlertEngine, clock: ManualClock) -> None:
    await engine.raise_alert("kill_switch", "critical", "risk", "kill switch engaged")
    await engine.resolve("kill_switch", "risk")
    clock.advance(30 * MIN)
    assert await engine.tick() == []


# --------------------------------------------------------------------------- persistence

async def test_restart_sees_same_alerts_states_counts_and_deadlines(db_path: Path, clock: ManualClock) -> None:
    eng = await AlertEngine.open(db_path, config=CONFIG, clock=clock)
    crit = await eng.raise_alert("kill_switch", "critical", "risk", "kill switch engaged")
    await eng.raise_alert("kill_switch", "critical", "risk", "kill switch engaged")
    snoozed = await eng.raise_alert("dq.gap", "warning", "data", "gap")
    acked = await eng.raise_alert("job.fail", "error", "jobs", "sweep failed")
    gone = await eng.raise_alert("feed.stale", "warning", "feed", "stale")
    assert (await eng.snooze(snoozed.id, "console", duration="1h")).ok
    assert (await eng.ack(acked.id, "console")).ok
    await eng.resolve("feed.stale", "feed")
    before = {s: eng.list(state=s) for s in AlertState}
    await eng.close()

    clock.advance(MIN)
    eng2 = await AlertEngine.open(db_path, config=CONFIG, clock=clock)
    try:
        rec = Recorder()
        eng2.sinks.add(rec)
        assert {s: eng2.list(state=s) for s in AlertState} == before
        assert eng2.get(crit.id).count == 2  # type: ignore[union-attr]
        assert eng2.get(gone.id).state is AlertState.RESOLVED  # type: ignore[union-attr]

        await eng2.raise_alert("kill_switch", "critical", "risk", "kill switch engaged")
        assert rec.got == []  # the rate limit survived the restart
        clock.advance(9 * MIN)  # escalation clock kept: 10 min after the first firing
        assert [(n.alert.id, n.reason) for n in await eng2.tick()] == [(crit.id, NotifyReason.ESCALATION)]
        clock.advance(50 * MIN)  # snooze deadline kept: 1 h after it was set
        assert (snoozed.id, NotifyReason.SNOOZE_ENDED) in [(n.alert.id, n.reason) for n in await eng2.tick()]
    finally:
        await eng2.close()


# --------------------------------------------------------------------------- operator command errors

async def test_ack_and_snooze_of_unknown_or_resolved_ids_return_clear_errors(
        engine: AlertEngine, clock: ManualClock) -> None:
    a = await engine.raise_alert("feed.stale", "warning", "feed", "BTC feed stale")
    await engine.resolve("feed.stale", "feed")

    res = await engine.ack(999, "console")
    assert (res.ok, res.error, res.message) == (False, "unknown_id", "cannot acknowledge: no alert with id 999")
    res = await engine.snooze(999, "tg", duration="30m")
    assert (res.ok, res.error, res.message) == (False, "unknown_id", "cannot snooze: no alert with id 999")

    res = await engine.ack(a.id, "console")
    assert (res.ok, res.error) == (False, "resolved")
    assert res.message.startswith(f"cannot acknowledge alert {a.id} (BTC feed stale): it was resolved by feed at ")
    res = await engine.snooze(str(a.id), "tg", duration="2h")
    assert (res.ok, res.error) == (False, "resolved") and "resolved by feed" in res.message

    res = await engine.ack("abc", "tg")  # forwarded user input
    assert (res.ok, res.error) == (False, "invalid") and "positive whole number, got 'abc'" in res.message
    res = await engine.snooze(a.id, "tg", duration="5x")
    assert (res.ok, res.error) == (False, "invalid") and "e.g. 30m, 2h, 1d" in res.message
    res = await engine.snooze(a.id, "tg")
    assert (res.ok, res.error) == (False, "invalid") and "exactly one of" in res.message

    b = await engine.raise_alert("other", "warning", "feed", "x")
    res = await engine.snooze(b.id, "tg", until_ms=T0 - 1)
    assert (res.ok, res.error) == (False, "invalid") and "deadline must be after now" in res.message
    assert engine.get(b.id).state is AlertState.ACTIVE  # type: ignore[union-attr]


async def test_ack_twice_is_ok_and_keeps_the_first_acknowledgement(engine: AlertEngine,
                                                                   clock: ManualClock) -> None:
    a = await engine.raise_alert("k", "error", "jobs", "job failed")
    first = await engine.ack(a.id, "console")
    clock.advance(MIN)
    again = await engine.ack(a.id, "tg")
    assert first.ok and again.ok and "already acknowledged by console" in again.message
    assert again.alert == first.alert and again.alert.changed_ms == T0  # type: ignore[union-attr]


async def test_commands_return_a_storage_error_instead_of_raising(engine: AlertEngine, db_path: Path) -> None:
    a = await engine.raise_alert("k", "error", "jobs", "job failed")
    conn = sqlite3.connect(db_path)
    conn.execute("DROP TABLE alerts")  # the database breaks under the engine
    conn.commit()
    conn.close()
    res = await engine.ack(a.id, "console")
    assert (res.ok, res.error) == (False, "storage") and f"cannot acknowledge alert {a.id}" in res.message
    res = await engine.snooze(a.id, "console", duration="1h")
    assert (res.ok, res.error) == (False, "storage")


async def test_commands_on_a_closed_engine_return_an_error(db_path: Path, clock: ManualClock) -> None:
    eng = await AlertEngine.open(db_path, config=CONFIG, clock=clock)
    a = await eng.raise_alert("k", "error", "jobs", "job failed")
    await eng.close()
    res = await eng.ack(a.id, "console")
    assert (res.ok, res.error, res.message) == (False, "storage", f"cannot acknowledge alert {a.id}: "
                                                                  "the alert engine is closed")


# --------------------------------------------------------------------------- sinks and input

async def test_a_raising_sink_does_not_break_raise_alert(engine: AlertEngine, db_path: Path) -> None:
    def broken(n: Notification) -> None:
        raise RuntimeError("telegram down")

    async def broken_async(n: Notification) -> None:
        raise RuntimeError("toast failed")

    good = Recorder()
    engine.sinks.add(broken)
    engine.sinks.add(broken_async)
    engine.sinks.add(good)
    a = await engine.raise_alert("kill_switch", "critical", "risk", "kill switch engaged")
    b = await engine.raise_alert("other", "warning", "feed", "stale")
    await engine.sinks.drain()
    assert [n.alert.id for n in good.got] == [a.id, b.id]
    assert engine.sink_failures == 4
    assert [x.id for x in stored(db_path)] == [a.id, b.id]


async def test_bad_raise_alert_arguments_name_the_problem(engine: AlertEngine, db_path: Path) -> None:
    with pytest.raises(AlertInputError, match="invalid severity 'fatal': expected one of info, warning, error, "
                                              "critical"):
        await engine.raise_alert("k", "fatal", "risk", "t")
    with pytest.raises(AlertInputError, match="alert key must be a non-empty string"):
        await engine.raise_alert("", "info", "risk", "t")
    with pytest.raises(AlertInputError, match="alert title must be a non-empty string"):
        await engine.raise_alert("k", "info", "risk", "  ")
    assert stored(db_path) == []


async def test_redact_keeps_secrets_out_of_the_database_and_sinks(db_path: Path, clock: ManualClock) -> None:
    secret = "sk-live-123456"
    eng = await AlertEngine.open(db_path, config=CONFIG, clock=clock,
                                 redact=lambda s: s.replace(secret, "***"))
    try:
        rec = Recorder()
        eng.sinks.add(rec)
        await eng.raise_alert("auth", "error", "exchange", f"auth failed for {secret}", f"key={secret} refused")
        raw = db_path.read_bytes() + (db_path.parent / (db_path.name + "-wal")).read_bytes()
        assert secret.encode() not in raw
        assert rec.got[0].alert.detail == "key=*** refused"
    finally:
        await eng.close()


async def test_long_detail_is_cut(engine: AlertEngine) -> None:
    a = await engine.raise_alert("k", "info", "jobs", "t", "x" * 10_000)
    assert len(a.detail) == CONFIG.max_detail_chars and a.detail.endswith("…")


# --------------------------------------------------------------------------- external changes (same process)

async def test_poll_changes_follows_a_change_made_through_another_connection(
        engine: AlertEngine, sink: Recorder, clock: ManualClock, db_path: Path) -> None:
    changes = []
    engine.listeners.add(changes.append)
    a = await engine.raise_alert("kill_switch", "critical", "risk", "kill switch engaged")
    assert await engine.poll_changes() == []  # own writes are not reported again
    conn = open_sync(db_path)
    try:
        assert store.acknowledge(conn, a.id, "cli", clock()).ok
    finally:
        conn.close()
    changed = await engine.poll_changes()
    assert [(x.id, x.state, x.changed_by) for x in changed] == [(a.id, AlertState.ACKNOWLEDGED, "cli")]
    assert changes[-1] == changed[0] and engine.unacknowledged_count() == 0
    clock.advance(30 * MIN)
    assert await engine.tick() == []  # acknowledged elsewhere: no escalation
    assert len(sink.got) == 1


async def test_engine_write_does_not_overwrite_an_external_ack(engine: AlertEngine, sink: Recorder,
                                                               clock: ManualClock, db_path: Path) -> None:
    a = await engine.raise_alert("k", "error", "jobs", "job failed")
    conn = open_sync(db_path)
    try:
        assert store.acknowledge(conn, a.id, "cli", clock()).ok
    finally:
        conn.close()
    clock.advance(10 * MIN)  # the engine has not polled yet: its view still says active
    fired = await engine.raise_alert("k", "error", "jobs", "job failed again")
    assert (fired.state, fired.changed_by, fired.count) == (AlertState.ACKNOWLEDGED, "cli", 2)
    assert len(sink.got) == 1  # acknowledged: not re-notified


async def test_snooze_end_does_not_reactivate_an_alert_acknowledged_elsewhere(
        engine: AlertEngine, sink: Recorder, clock: ManualClock, db_path: Path) -> None:
    a = await engine.raise_alert("k", "critical", "jobs", "job failed")
    assert (await engine.snooze(a.id, "console", duration="30m")).ok
    conn = open_sync(db_path)
    try:
        assert store.acknowledge(conn, a.id, "cli", clock()).ok
    finally:
        conn.close()
    clock.advance(31 * MIN)  # the view (not yet polled) still says snoozed and due
    assert await engine.tick() == []
    assert engine.get(a.id).state is AlertState.ACKNOWLEDGED  # type: ignore[union-attr]
    assert len(sink.got) == 1


async def test_notification_line_names_severity_reason_count_and_id(engine: AlertEngine, sink: Recorder,
                                                                    clock: ManualClock) -> None:
    a = await engine.raise_alert("kill_switch", "critical", "risk", "kill switch engaged", "daily loss 5.2%")
    await engine.raise_alert("kill_switch", "critical", "risk", "kill switch engaged", "daily loss 5.4%")
    clock.advance(10 * MIN)
    await engine.tick()
    assert [n.line() for n in sink.got] == [
        f"[CRITICAL] kill switch engaged #{a.id}: daily loss 5.2%",
        f"[CRITICAL] still unacknowledged: kill switch engaged (x2) #{a.id}: daily loss 5.4%",
    ]


async def test_background_loop_survives_database_failures(db_path: Path, clock: ManualClock) -> None:
    eng = await AlertEngine.open(db_path, config=AlertConfig(poll_interval_s=0.05), clock=clock)
    try:
        eng.start()
        conn = sqlite3.connect(db_path)
        conn.execute("DROP TABLE alert_rev")  # every poll now fails
        conn.commit()
        conn.close()
        async with asyncio.timeout(5):
            while eng.loop_errors < 3:  # failing repeatedly: the task keeps running
                await asyncio.sleep(0.05)
        res = await eng.ack(1, "console")
        assert (res.ok, res.error) == (False, "unknown_id")
    finally:
        await eng.close()
