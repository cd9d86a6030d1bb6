"""Health: watchdog transitions through a real AlertEngine, the standard checks, the loop-lag sampler."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.alerts.engine import AlertEngine
from core.alerts.model import AlertState, Severity
from core.data.feed import ClosedCandle, FeedReconnect, FeedStale
from core.health.checks import TelegramCheck, jobs_check
from core.health.db_probe import DatabaseProbe
from core.health.feeds import FeedHealth
from core.health.loop_lag import LoopLagSampler
from core.health.status import Check, HealthStatus, SubsystemHealth, format_seconds
from core.health.watchdog import Watchdog, alert_key
from core.model.clock import ManualClock
from core.storage.db import open_sync

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
FEED = "feed:BTC/USDT:USDT"


class Switch:
    """A check whose result the test sets."""

    def __init__(self, result: Check | None = None) -> None:
        self.result = result or Check.ok()
        self.calls = 0

    def __call__(self) -> Check:
        self.calls += 1
        return self.result


class FakeSeconds:
    """A seconds clock the test moves."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def alerts(db_path: Path, clock: ManualClock):
    eng = await AlertEngine.open(db_path, clock=clock)
    try:
        yield eng
    finally:
        await eng.close()


# --------------------------------------------------------------------------- watchdog + alerts

async def test_transitions_raise_escalate_and_resolve_alerts(alerts: AlertEngine, clock: ManualClock) -> None:
    wd = Watchdog(alerts=alerts, clock=clock)
    feed = Switch()
    wd.register(FEED, feed)
    key = alert_key(FEED)
    assert key == "health:feed:BTC/USDT:USDT"

    assert [h.status for h in await wd.run_once()] == [HealthStatus.OK]
    assert alerts.list() == []

    clock.advance(5_000)
    feed.result = Check.degraded("no message for 42s (stale after 30s)", age_s=42.0)
    await wd.run_once()
    [a] = alerts.list()
    assert (a.key, a.severity, a.source, a.state) == (key, Severity.WARNING, "health", AlertState.ACTIVE)
    assert a.title == f"{FEED} degraded: no message for 42s (stale after 30s)"
    assert '"age_s": 42.0' in a.detail

    clock.advance(5_000)
    await wd.run_once()  # still degraded: no new firing
    assert alerts.list()[0].count == 1

    clock.advance(5_000)
    feed.result = Check.down("no message for 5m")
    await wd.run_once()
    [a] = alerts.list()
    assert (a.severity, a.count, a.title) == (Severity.ERROR, 2, f"{FEED} down: no message for 5m")

    clock.advance(5_000)
    feed.result = Check.ok()
    await wd.run_once()
    assert alerts.list() == []
    [r] = alerts.list(state="resolved")
    assert (r.key, r.changed_by, r.changed_ms) == (key, "health-watchdog", clock())


async def test_since_is_kept_while_the_status_holds(clock: ManualClock) -> None:
    wd = Watchdog(clock=clock)
    sw = Switch(Check.degraded("slow"))
    wd.register("database", sw)
    await wd.run_once()
    clock.advance(7_000)
    sw.result = Check.degraded("slower")
    assert await wd.run_once() == []
    h = wd.get("database")
    assert h is not None
    assert (h.status, h.reason, h.since_ms, h.checked_ms) == (HealthStatus.DEGRADED, "slower", T0, T0 + 7_000)
    clock.advance(1_000)
    sw.result = Check.ok()
    [changed] = await wd.run_once()
    assert (changed.since_ms, changed.checked_ms) == (T0 + 8_000, T0 + 8_000)
    assert wd.overall() is HealthStatus.OK


async def test_down_severity_is_per_subsystem(alerts: AlertEngine, clock: ManualClock) -> None:
    wd = Watchdog(alerts=alerts, clock=clock)
    wd.register("executor", Switch(Check.down("circuit open after 5 failures")))
    wd.register("jobs", Switch(Check.down("no job worker alive (0 of 1)")))
    wd.register("telegram", Switch(Check.down("outbox not running")), down_severity="critical",
                degraded_severity="info")
    await wd.run_once()
    by_key = {a.key: a.severity for a in alerts.list()}
    assert by_key == {"health:executor": Severity.CRITICAL, "health:jobs": Severity.ERROR,
                      "health:telegram": Severity.CRITICAL}
    assert wd.overall() is HealthStatus.DOWN


async def test_listeners_get_changes_only(clock: ManualClock) -> None:
    wd = Watchdog(clock=clock)
    seen: list[SubsystemHealth] = []
    wd.listeners.add(seen.append)
    sw = Switch()
    wd.register("loop", sw)
    await wd.run_once()
    await wd.run_once()
    sw.result = Check.degraded("lag")
    await wd.run_once()
    await wd.run_once()
    assert [(h.subsystem, h.status) for h in seen] == [("loop", HealthStatus.OK), ("loop", HealthStatus.DEGRADED)]


async def test_failing_checks_count_as_down(clock: ManualClock) -> None:
    wd = Watchdog(clock=clock, check_timeout_s=0.01)

    def broken() -> Check:
        raise RuntimeError("boom")

    async def hangs() -> Check:
        await asyncio.Event().wait()
        return Check.ok()

    async def async_ok() -> Check:
        return Check.ok(answer=42)

    wd.register("broken", broken)
    wd.register("hangs", hangs)
    wd.register("wrong", lambda: "fine")  # type: ignore[arg-type, return-value]
    wd.register("async", async_ok)
    await wd.run_once()
    snap = wd.snapshot()
    assert snap["broken"].status is HealthStatus.DOWN and "RuntimeError: boom" in snap["broken"].reason
    assert snap["hangs"].status is HealthStatus.DOWN and "did not finish within 0.01s" in snap["hangs"].reason
    assert snap["wrong"].status is HealthStatus.DOWN and "not a Check" in snap["wrong"].reason
    assert snap["async"].status is HealthStatus.OK and snap["async"].metrics == {"answer": 42}


async def test_register_validation(clock: ManualClock) -> None:
    wd = Watchdog(clock=clock)
    wd.register("gateway", Switch())
    with pytest.raises(ValueError, match="already registered"):
        wd.register("gateway", Switch())
    wd.register("gateway", Switch(), replace=True)
    with pytest.raises(ValueError, match="name"):
        wd.register(" x", Switch())
    with pytest.raises(ValueError, match="callable"):
        wd.register("y", 42)  # type: ignore[arg-type]
    assert wd.subsystems == ["gateway"]


async def test_orphaned_and_unregistered_alerts_are_resolved(alerts: AlertEngine, clock: ManualClock) -> None:
    await alerts.raise_alert("health:feed:OLD/USDT:USDT", "warning", "health", "left by an earlier run")
    await alerts.raise_alert("feed.stale:other", "warning", "feed", "not a health alert")
    wd = Watchdog(alerts=alerts, clock=clock)
    wd.register("telegram", Switch(Check.down("outbox not running")))
    await wd.run_once()
    assert sorted(a.key for a in alerts.list()) == ["feed.stale:other", "health:telegram"]
    wd.unregister("telegram")
    assert "telegram" not in wd.snapshot()
    await wd.run_once()
    assert [a.key for a in alerts.list()] == ["feed.stale:other"]


async def test_a_failed_alert_call_is_retried_next_round(clock: ManualClock) -> None:
    calls: list[tuple[str, str]] = []

    class FlakyAlerts:
        fail = True

        def list(self) -> list:
            return []

        async def raise_alert(self, key: str, severity: Severity, source: str, title: str, detail: str = ""):
            if self.fail:
                self.fail = False
                raise sqlite3.OperationalError("database is locked")
            calls.append((key, severity.value))

        async def resolve(self, key: str, actor: str) -> None:
            calls.append((key, "resolve"))

    wd = Watchdog(alerts=FlakyAlerts(), clock=clock)  # type: ignore[arg-type]
    wd.register("gateway", Switch(Check.degraded("2 failures in a row")))
    await wd.run_once()
    assert calls == [] and wd.alert_errors == 1
    await wd.run_once()
    assert calls == [("health:gateway", "warning")]
    await wd.run_once()
    assert calls == [("health:gateway", "warning")]


async def test_start_runs_rounds_in_the_background(clock: ManualClock) -> None:
    wd = Watchdog(clock=clock, interval_s=0.01)
    sw = Switch()
    wd.register("loop", sw)
    wd.start()
    try:
        for _ in range(500):
            if sw.calls >= 2:
                break
            await asyncio.sleep(0.01)
        assert sw.calls >= 2 and wd.running
    finally:
        await wd.stop()
    assert not wd.running


# --------------------------------------------------------------------------- loop lag

async def test_loop_lag_sampler_detects_a_blocking_call() -> None:
    sampler = LoopLagSampler(interval_s=0.01, window_s=60, degraded_s=0.1, down_s=2.0)
    sampler.start()
    try:
        while sampler.total_samples < 1:
            await asyncio.sleep(0.005)
        before = sampler.total_samples
        time.sleep(0.2)  # blocks the loop, deliberately
        while sampler.total_samples <= before:
            await asyncio.sleep(0.005)
        check = sampler.check()
    finally:
        await sampler.stop()
    assert check.status is HealthStatus.DEGRADED
    assert check.metrics["max_s"] >= 0.15
    assert "event loop lag up to" in check.reason


def test_loop_lag_statistics_and_window() -> None:
    now = FakeSeconds()
    s = LoopLagSampler(interval_s=0.25, window_s=10, degraded_s=0.1, down_s=1.0, clock=now)
    assert s.check().status is HealthStatus.DEGRADED  # not running, no samples
    for i in range(100):
        s.record(0.001 * (i + 1), at=now.now - 5 + i * 0.01)  # 1 ms .. 100 ms
    st = s.stats()
    assert (st.samples, st.p50_s, st.p99_s, st.max_s) == (100, pytest.approx(0.05), pytest.approx(0.099),
                                                          pytest.approx(0.1))
    assert s.check().status is HealthStatus.DEGRADED
    s.record(1.5)
    c = s.check()
    assert c.status is HealthStatus.DOWN and "stalled" in c.reason
    now.now += 10.01  # every sample leaves the window
    assert s.stats().samples == 0
    s.record(0.002)
    assert s.check().status is HealthStatus.OK


def test_loop_lag_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        LoopLagSampler(interval_s=0)
    with pytest.raises(ValueError):
        LoopLagSampler(degraded_s=1.0, down_s=0.5)


# --------------------------------------------------------------------------- feeds

def _candle(symbol: str) -> ClosedCandle:
    return ClosedCandle(symbol, "1m", 0, 1.0, 1.0, 1.0, 1.0, 1.0, "live")


def test_feed_health_ages_into_degraded_and_down() -> None:
    now = FakeSeconds()
    fh = FeedHealth(stale_after_s=30, down_after_s=300, clock=now)
    check = fh.check_fn("BTC/USDT:USDT")
    assert check().status is HealthStatus.OK
    now.now += 30
    c = check()
    assert c.status is HealthStatus.DEGRADED and c.reason == "no message yet after 30s (stale after 30s)"
    fh.on_event(_candle("BTC/USDT:USDT"))
    assert check().status is HealthStatus.OK
    now.now += 29.9
    assert check().status is HealthStatus.OK
    fh.on_event(FeedReconnect("BTC/USDT:USDT", "1m", 3, 7, 4.0, "NetworkError: connection closed"))
    now.now += 0.1
    c = check()
    assert c.status is HealthStatus.DEGRADED
    assert c.reason == ("no message for 30s; reconnecting (attempt 3): NetworkError: connection closed "
                        "(stale after 30s)")
    now.now += 270
    assert check().status is HealthStatus.DOWN
    fh.on_event(FeedStale("BTC/USDT:USDT", 300.0))  # ignored: the age already says it
    fh.on_event(_candle("BTC/USDT:USDT"))
    c = check()
    assert c.status is HealthStatus.OK and c.metrics["reconnect_attempt"] == 0


async def test_feed_health_registers_one_subsystem_per_symbol(clock: ManualClock) -> None:
    fh = FeedHealth(clock=FakeSeconds())
    fh.watch("ETH/USDT:USDT")
    fh.watch("BTC/USDT:USDT")
    wd = Watchdog(clock=clock)
    assert fh.register(wd) == ["feed:BTC/USDT:USDT", "feed:ETH/USDT:USDT"]
    await wd.run_once()
    assert all(h.status is HealthStatus.OK for h in wd.snapshot().values())
    assert fh.check("DOGE/USDT").status is HealthStatus.DOWN


# --------------------------------------------------------------------------- database probe

class StepTimer:
    """A monotonic timer advancing `step` seconds per reading."""

    def __init__(self, step: float) -> None:
        self.t = 0.0
        self.step = step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


async def test_database_probe_writes_reads_and_measures(db_path: Path, clock: ManualClock) -> None:
    probe = DatabaseProbe(db_path, clock=clock, min_free_bytes=None, timer=StepTimer(0.01))
    try:
        c1 = await probe()
        c2 = await probe()
    finally:
        await probe.close()
    assert c1.status is HealthStatus.OK and c2.status is HealthStatus.OK
    assert c1.metrics["latency_s"] == pytest.approx(0.01) and c1.metrics["size_bytes"] > 0
    conn = open_sync(db_path)
    try:
        assert conn.execute("SELECT ts_ms, token FROM health_probe").fetchall() == [(T0, 2)]
    finally:
        conn.close()


async def test_database_probe_degraded_when_slow_big_or_disk_full(db_path: Path, clock: ManualClock) -> None:
    probe = DatabaseProbe(db_path, clock=clock, timer=StepTimer(0.6), max_size_bytes=1,
                          min_free_bytes=2**62)
    try:
        c = await probe()
    finally:
        await probe.close()
    assert c.status is HealthStatus.DEGRADED
    assert "slow write+read probe: 0.6s" in c.reason
    assert "database is" in c.reason and "free on disk" in c.reason
    slow = DatabaseProbe(db_path, clock=clock, timer=StepTimer(6.0), min_free_bytes=None)
    try:
        assert (await slow()).status is HealthStatus.DOWN
    finally:
        await slow.close()


async def test_database_probe_down_when_unusable(tmp_path: Path, clock: ManualClock) -> None:
    probe = DatabaseProbe(tmp_path, clock=clock)  # a folder, not a database file
    try:
        c = await probe()
    finally:
        await probe.close()
    assert c.status is HealthStatus.DOWN and "write+read probe failed" in c.reason
    assert (await probe()).reason == "database probe is closed"


# --------------------------------------------------------------------------- jobs, Telegram

def test_jobs_check() -> None:
    stats = SimpleNamespace(workers=2, alive=2, queued=0, max_queued=8, running=1)
    check = jobs_check(lambda: stats)
    assert check().status is HealthStatus.OK
    stats.queued = 8
    assert check().status is HealthStatus.DEGRADED and "queue full" in check().reason
    stats.queued, stats.alive = 0, 1
    assert check().reason == "only 1 of 2 job workers alive"
    stats.alive = 0
    assert check().status is HealthStatus.DOWN


class FakeOutbox:
    def __init__(self) -> None:
        self.running = True
        self.s = SimpleNamespace(queued=0, retrying=0, failed=0, dropped=0, last_error=None, last_error_ms=None)

    def stats(self) -> SimpleNamespace:
        return self.s


def test_telegram_check(clock: ManualClock) -> None:
    ob = FakeOutbox()
    check = TelegramCheck(ob, queue_warn=10, recent_s=60, clock=clock)
    assert check().status is HealthStatus.OK
    ob.s.failed = 1
    clock.advance(1_000)
    c = check()
    assert c.status is HealthStatus.DEGRADED and "messages lost recently" in c.reason
    clock.advance(60_000)
    assert check().status is HealthStatus.OK
    ob.s.retrying, ob.s.last_error, ob.s.last_error_ms = 1, "TimedOut", clock() - 2_000
    c = check()
    assert c.status is HealthStatus.DEGRADED and "retrying a send; send error 2.0s ago: TimedOut" == c.reason
    ob.s.retrying, ob.s.last_error_ms, ob.s.queued = 0, clock() - 61_000, 10
    assert check().reason == "10 messages waiting"
    ob.running = False
    assert check().status is HealthStatus.DOWN


# --------------------------------------------------------------------------- status

def test_check_metrics_are_json_safe_and_seconds_format() -> None:
    c = Check.degraded("x", lag=float("nan"), state=HealthStatus.OK, n=3)
    assert c.metrics == {"lag": None, "state": "ok", "n": 3}
    assert [format_seconds(s) for s in (0.25, 4.24, 42, 60, 185, 7200, 7260, 90000)] == \
        ["0.25s", "4.2s", "42s", "1m", "3m 5s", "2h", "2h 1m", "1d 1h"]
