"""The attached console's alerts, health and jobs through the engine API, and its event decoding:
a real paper engine with the run services of `radar run` (API server on `<db>.sock`) in this
process, the console (`AttachedRadarApp`) on a `RemoteEngine` to it.

* an alert raised in the engine shows on the Alerts screen; `a` and `s` are forwarded (the
  engine records who did it: "console:<user>"); on a read-only connection the engine refuses;
* the Health screen lists the engine's subsystems; `n` (new job) is refused with a message;
* the websocket's messages come back as the bus event classes; K goes through the engine.
"""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from core.backtest.loading import load_from_file
from core.events.bus import CandleEvent, KillSwitchEvent
from tests.api.conftest import Run
from tests.support.shared_data import shared_file
from tests.tui.attach_support import BTC_1H, eventually
from core.api.protocol import CommandRefused
from tui.attach import AttachedRadarApp
from tui.remote import RemoteEngine, decode_event
from tui.screens.alerts import AlertsScreen, SnoozePicker
from tui.widgets.confirm import ConfirmScreen


@pytest.fixture
async def run(tmp_path: Path):
    full = load_from_file(shared_file(BTC_1H))
    async with Run(tmp_path / "radar.db", full.between(None, int(full.ts[300]))) as r:
        yield r


def said(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


def _user() -> str:
    return f"console:{getpass.getuser()}"


async def test_alerts_ack_and_snooze_are_forwarded(run: Run) -> None:
    alerts = run.services.alerts
    a1 = await alerts.raise_alert("test:one", "critical", "test", "first alert")
    a2 = await alerts.raise_alert("test:two", "warning", "test", "second alert")
    remote = await RemoteEngine(run.socket).connect()
    app = AttachedRadarApp(remote, host_name="ops", freeze_gc=False)
    try:
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await pilot.press("4")
            scr = await eventually(lambda: isinstance(app.screen, AlertsScreen) and app.screen.table.row_count == 2
                                   and app.screen, 10, "the two alerts", pilot)
            assert app.header_state().alerts == 2
            await pilot.press("a")                         # the first row: the critical one
            await eventually(lambda: alerts.get(a1.id).state.value == "acknowledged", 10, "the ack", pilot)
            assert alerts.get(a1.id).changed_by == _user()
            await pilot.press("down", "s")
            await eventually(lambda: isinstance(app.screen, SnoozePicker), 5, "the snooze picker", pilot)
            await pilot.press("enter")                      # 15m
            await eventually(lambda: alerts.get(a2.id).state.value == "snoozed", 10, "the snooze", pilot)
            await eventually(lambda: app.header_state().alerts == 0, 30, "the badge to follow", pilot)
            assert scr.table.row_count == 2
            a3 = await alerts.raise_alert("test:three", "error", "test", "third alert")
            await eventually(lambda: any("third alert" in m for m in said(app)), 10, "a toast for the new alert",
                             pilot)
            assert remote.alerts.get(a3.id) is not None
    finally:
        await remote.close()


async def test_readonly_connection_refuses_ack_and_kill(run: Run) -> None:
    a1 = await run.services.alerts.raise_alert("test:one", "critical", "test", "an alert")
    remote = await RemoteEngine(run.socket, readonly=True).connect()
    app = AttachedRadarApp(remote, host_name="ops", freeze_gc=False)    # the engine refuses, not the app
    try:
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await pilot.press("4")
            await eventually(lambda: isinstance(app.screen, AlertsScreen) and app.screen.table.row_count == 1, 10,
                             "the alert", pilot)
            await pilot.press("a")
            await eventually(lambda: any("ack: refused by the engine: read-only console" in m for m in said(app)),
                             10, "the refusal", pilot)
            assert run.services.alerts.get(a1.id).state.value == "active"
            await pilot.press("K")
            await eventually(lambda: isinstance(app.screen, ConfirmScreen), 5, "the confirmation", pilot)
            await pilot.press("y")
            await eventually(lambda: any("kill: refused by the engine: read-only console" in m for m in said(app)),
                             10, "the kill refusal", pilot)
    finally:
        await remote.close()
    assert not run.engine.kill_switch.active


async def test_kill_through_the_engine_health_and_jobs(run: Run) -> None:
    remote = await RemoteEngine(run.socket).connect()
    app = AttachedRadarApp(remote, host_name="ops", freeze_gc=False)
    try:
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await pilot.press("K")
            await eventually(lambda: isinstance(app.screen, ConfirmScreen), 5, "the confirmation", pilot)
            await pilot.press("y")
            await eventually(lambda: any("KILL SWITCH ON" in m for m in said(app)), 10, "the kill", pilot)
            assert run.engine.kill_switch.active and run.engine.kill_switch.as_dict()["actor"] == _user()
            await eventually(lambda: remote.snapshot().kill_switch.active, 5, "the snapshot to follow", pilot)
            await eventually(lambda: "KILL ON" in str(app.screen.query_one("RadarHeader").render()), 5,
                             "the header", pilot)
            await pilot.press("6")
            await eventually(lambda: type(app.screen).__name__ == "HealthScreen"
                             and app.screen.query_one("DataTable").row_count > 0, 10, "the health rows", pilot)
            assert "overall" in str(app.screen.query_one("#health-summary").render())
            await pilot.press("5")
            await eventually(lambda: type(app.screen).__name__ == "JobsScreen", 5, "the jobs screen", pilot)
            await pilot.press("n")                          # jobs are submitted through the engine now
            await eventually(lambda: type(app.screen).__name__ == "JobForm", 5, "the job form", pilot)
            await pilot.press("escape")
            with pytest.raises(CommandRefused, match="bad_job"):
                await remote.job_submit("console", "optimize", {"strategy": "no_such_strategy"})
            await pilot.press("q")
            await eventually(lambda: app.return_value is not None, 5, "the console to close", pilot)
        assert app.return_value == "close"
    finally:
        await remote.close()
    assert run.task is not None and not run.task.done()           # closing the console did not stop it


def test_decode_event_gives_the_bus_classes() -> None:
    from core.api.protocol import event_message

    ev = CandleEvent("BTC/USDT", "1h", 1, 1.0, 2.0, 0.5, 1.5)
    assert decode_event(event_message(ev, 1)) == ev
    k = KillSwitchEvent(True, False, "console:x", "test")
    assert decode_event(event_message(k, 2)) == k
    assert decode_event({"type": "NoSuchEvent", "seq": 3, "event": {}}) is None
    assert decode_event({"type": "CandleEvent", "seq": 4, "event": {"symbol": "X"}}) is None
