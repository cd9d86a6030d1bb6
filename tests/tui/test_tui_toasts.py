"""Toast policy: INFO alerts go to the alert log, not to toasts; WARNING and above are toasts,
repeats of a title update a count, and no more than two toasts are on screen."""

from __future__ import annotations

from pathlib import Path

from textual.widgets._toast import Toast

from core.events.bus import AlertEvent
from tests.tui.test_tui_shell import FakeAPI, make_app, settle


def _toasts(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_info_alerts_go_to_the_log_warnings_are_coalesced_and_capped(tmp_path: Path) -> None:
    from core.alerts import AlertEngine

    alerts = await AlertEngine.open(tmp_path / "a.db")
    try:
        app = make_app(FakeAPI(), alerts=alerts)
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await settle(pilot)
            for i in range(6):                                   # fills, a stop moved, a cycle closed
                await alerts.raise_alert(f"trade:{i}", "info", "engine", f"BTC/USDT level {i} filled")
            await settle(pilot, 5)
            assert _toasts(app) == []
            await pilot.press("4")
            await settle(pilot)
            assert app.screen.table.row_count == 6                # in the alert log
            for i in range(3):                                   # the same title, three alerts
                await alerts.raise_alert(f"risk:dd:{i}", "warning", "risk", "drawdown 8%")
            await settle(pilot, 5)
            said = _toasts(app)
            assert len(said) == 1 and "drawdown 8%" in said[0] and "(×3)" in said[0], said
            for i in range(4):
                await alerts.raise_alert(f"order:{i}", "error", "executor", f"order {i} rejected")
            await settle(pilot, 5)
            assert len(_toasts(app)) == 2
            assert len(app.screen.query(Toast)) <= 2
            assert all("rejected" in m for m in _toasts(app))      # the least severe went first
    finally:
        await alerts.close()


async def test_engine_info_events_without_an_alert_engine_are_not_toasts() -> None:
    api = FakeAPI()
    app = make_app(api)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for i in range(20):                                      # a replay's fills
            api.bus.publish(AlertEvent("info", f"BTC/USDT L{i % 3} filled"))
        await settle(pilot, 5)
        assert _toasts(app) == []
        for _ in range(5):
            api.bus.publish(AlertEvent("warning", "feed stale"))
        await settle(pilot, 5)
        said = _toasts(app)
        assert len(said) == 1 and "(×5)" in said[0], said
