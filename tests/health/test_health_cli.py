"""Heartbeat written by an engine's watchdog, read by `radar health [--json]` in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import health_cmd
from core.cli.main import main
from core.health import store
from core.health.heartbeat import HeartbeatWriter
from core.health.status import Check, HealthStatus
from core.health.watchdog import Watchdog
from core.model.clock import ManualClock
from core.storage.db import open_sync

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
INTERVAL_S = 5.0


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """One manual clock for the engine side and for `radar health`."""
    c = ManualClock(T0)
    monkeypatch.setattr(health_cmd, "system_clock", c)
    return c


async def _engine_beat(db: Path, clock: ManualClock, checks: dict[str, Check]) -> HeartbeatWriter:
    """A watchdog round over `checks` and one heartbeat (the writer's task is stopped, row left running)."""
    wd = Watchdog(clock=clock)
    for name, result in checks.items():
        wd.register(name, lambda r=result: r)
    await wd.run_once()
    hb = HeartbeatWriter(db, wd.snapshot, mode="headless", interval_s=INTERVAL_S, clock=clock)
    await hb.start()
    await hb.stop(mark_stopped=False)
    return hb


def _health(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> tuple[int, str]:
    code = main(["--db", str(db), "health", *args])
    return code, capsys.readouterr().out


async def test_json_shows_the_statuses_a_watchdog_wrote(db_path: Path, clock: ManualClock,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    hb = await _engine_beat(db_path, clock, {
        "feed:BTC/USDT:USDT": Check.degraded("no message for 42s (stale after 30s)", age_s=42.0),
        "database": Check.ok(latency_s=0.003),
        "gateway": Check.down("circuit open after 5 failures: RequestTimeout"),
    })
    clock.advance(2_000)
    code, out = _health(capsys, db_path, "--json")
    data = json.loads(out)
    assert code == 1  # the gateway is down
    assert data["engine_running"] is True and data["overall"] == "down"
    assert data["heartbeat"]["pid"] == os.getpid() and data["heartbeat"]["mode"] == "headless"
    assert data["heartbeat"]["ts_ms"] == T0 and data["heartbeat"]["interval_ms"] == 5_000
    assert data["heartbeat"]["statuses"] == {"database": "ok", "feed:BTC/USDT:USDT": "degraded", "gateway": "down"}
    subs = {s["subsystem"]: s for s in data["subsystems"]}
    assert [s["subsystem"] for s in data["subsystems"]] == ["gateway", "feed:BTC/USDT:USDT", "database"]
    assert subs["feed:BTC/USDT:USDT"] == {
        "subsystem": "feed:BTC/USDT:USDT", "status": "degraded", "reason": "no message for 42s (stale after 30s)",
        "since_ms": T0, "checked_ms": T0, "metrics": {"age_s": 42.0}}
    assert subs["database"]["metrics"] == {"latency_s": 0.003}
    await hb.close()


async def test_exit_codes_follow_the_worst_status(db_path: Path, clock: ManualClock,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    hb = await _engine_beat(db_path, clock, {"database": Check.ok(), "loop": Check.ok()})
    code, out = _health(capsys, db_path, "--json")
    assert (code, json.loads(out)["overall"]) == (0, "ok")
    await hb.close()
    hb = await _engine_beat(db_path, clock, {"database": Check.ok(), "loop": Check.degraded("lag 0.2s")})
    assert _health(capsys, db_path)[0] == 0
    assert _health(capsys, db_path, "--strict")[0] == 1
    await hb.close()


async def test_table_output(db_path: Path, clock: ManualClock, capsys: pytest.CaptureFixture[str]) -> None:
    hb = await _engine_beat(db_path, clock, {"executor": Check.down("circuit open after 5 failures"),
                                             "telegram": Check.ok()})
    clock.advance(4_000)
    code, out = _health(capsys, db_path)
    assert code == 1
    assert f"engine running: pid {os.getpid()}" in out and "mode headless" in out and "overall down" in out
    for text in ("subsystem", "status", "reason", "since", "executor", "circuit open after 5 failures",
                 "telegram", "2026-01-01 00:00:00 (4.0s ago)"):
        assert text in out
    await hb.close()


async def test_stale_heartbeat_means_no_engine(db_path: Path, clock: ManualClock,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    hb = await _engine_beat(db_path, clock, {"database": Check.ok()})
    clock.advance(3 * 5_000 - 1)
    assert _health(capsys, db_path)[0] == 0
    clock.advance(1)
    code, out = _health(capsys, db_path, "--json")
    data = json.loads(out)
    assert code == 1
    assert data["engine_running"] is False and data["overall"] == "no_engine"
    assert data["message"].startswith("no engine running: last heartbeat 2026-01-01 00:00:00 UTC, 15s ago")
    assert [s["subsystem"] for s in data["subsystems"]] == ["database"]  # last known
    code, out = _health(capsys, db_path)
    assert code == 1 and "no engine running" in out and "Last known health (stale)" in out
    await hb.close()


async def test_missing_heartbeat_or_database_means_no_engine(tmp_path: Path, db_path: Path, clock: ManualClock,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere" / "radar.db"
    code, out = _health(capsys, missing)
    assert code == 1 and "no engine running: database" in out and "does not exist" in out
    assert not missing.exists()
    open_sync(db_path).close()
    code, out = _health(capsys, db_path, "--json")
    data = json.loads(out)
    assert code == 1 and data["engine_running"] is False and data["heartbeat"] is None
    assert data["message"] == f"no engine running: no heartbeat in {db_path}"


async def test_clean_stop_and_dead_process_mean_no_engine(db_path: Path, clock: ManualClock,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    hb = await _engine_beat(db_path, clock, {"database": Check.ok()})
    clock.advance(1_000)
    await hb.close()  # marks the row stopped
    code, out = _health(capsys, db_path)
    assert code == 1 and "stopped at 2026-01-01 00:00:01 UTC" in out

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    wd = Watchdog(clock=clock)
    hb = HeartbeatWriter(db_path, wd.snapshot, mode="ui", interval_s=INTERVAL_S, clock=clock,
                         pid=int(dead.stdout))
    await hb.beat()
    code, out = _health(capsys, db_path)
    assert code == 1 and "is gone" in out
    await hb.close()


async def test_each_beat_replaces_the_health_rows(db_path: Path, clock: ManualClock) -> None:
    wd = Watchdog(clock=clock)
    wd.register("a", lambda: Check.ok())
    wd.register("b", lambda: Check.degraded("meh"))
    await wd.run_once()
    hb = HeartbeatWriter(db_path, wd.snapshot, mode="headless", interval_s=INTERVAL_S, clock=clock)
    assert await hb.beat()
    wd.unregister("a")
    clock.advance(5_000)
    assert await hb.beat()
    conn = open_sync(db_path)
    try:
        beat = store.read_heartbeat(conn)
        rows = store.read_health(conn)
    finally:
        conn.close()
    await hb.close()
    assert beat is not None and beat.ts_ms == T0 + 5_000 and beat.started_ms == T0
    assert [(h.subsystem, h.status) for h in rows] == [("b", HealthStatus.DEGRADED)]
    assert hb.beats == 2 and hb.check().status is HealthStatus.OK


async def test_a_failing_heartbeat_write_is_counted_not_raised(tmp_path: Path, clock: ManualClock) -> None:
    hb = HeartbeatWriter(tmp_path, dict, mode="headless", clock=clock)  # a folder: cannot be opened
    assert await hb.beat() is False
    assert hb.errors == 1 and hb.check().status is HealthStatus.DEGRADED
    await hb.close()


def test_bad_usage_exits_2(db_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--db", str(db_path), "health", "--bogus"])
    assert exc.value.code == 2
