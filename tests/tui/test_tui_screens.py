"""Scanner, Positions and Alerts screens driven by keyboard: the Positions screen matches
api.snapshot() after a replay to a fixed candle; ack/snooze reach the database; the cursor
stays on its row across refreshes; filter and sort; snapshots at 80x24 and 160x48."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from core.engine.api import EngineAPI
from tests.tui.test_tui_shell import FakeAPI, make_app, replay_engine_at_open_cycle, settle, wait_for
from tui.formats import fmt_qty
from tui.screens.alerts import AlertDetailScreen, SnoozePicker
from tui.screens.base import current_row_key
from tui.screens.positions import PositionDetailScreen


def _cells(screen, key: str) -> dict[str, str]:
    table = screen.table
    row = table.get_row(key)
    return {c: (v.plain if hasattr(v, "plain") else str(v)) for (c, _), v in zip(screen.COLUMNS, row)}


# ------------------------------------------------------------------------------ scanner
async def test_scanner_rows_filter_sort_and_cursor_kept() -> None:
    api = FakeAPI()
    app = make_app(api)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        scr = app.screen
        assert type(scr).__name__ == "ScannerScreen"
        assert scr.table.row_count == 3
        btc = _cells(scr, "BTC/USDT|envelope_dca")
        assert btc["state"] == "long 2/3" and btc["last"] == "100.00"
        assert btc["sma"].startswith("−") and btc["signal"] == "in cycle"
        # cursor on ETH; prices move; refresh keeps the cursor on ETH
        await pilot.press("down")
        assert current_row_key(scr.table) == "ETH/USDT|envelope_dca"
        api.price = 110.0
        app.refresh_now()
        await settle(pilot)
        assert current_row_key(scr.table) == "ETH/USDT|envelope_dca"
        assert _cells(scr, "BTC/USDT|envelope_dca")["chg"].startswith("↑ +10.00")
        # sort by the next column (Symbol): cursor follows its row
        await pilot.press("o")
        await settle(pilot)
        assert [r.value for r in scr.table.rows][0] in {"BTC/USDT|envelope_dca", "DOGE/USDT|envelope_dca"}
        assert current_row_key(scr.table) == "ETH/USDT|envelope_dca"
        await pilot.press("O")
        await settle(pilot)
        assert current_row_key(scr.table) == "ETH/USDT|envelope_dca"
        # filter
        await pilot.press("slash", *"doge", "enter")
        await settle(pilot)
        assert scr.table.row_count == 1
        await pilot.press("slash", "escape")
        await settle(pilot)
        assert scr.table.row_count == 3


async def test_scanner_update_is_in_place() -> None:
    """Rows are updated by key: the same row objects stay, only changed cells are written."""
    api = FakeAPI()
    app = make_app(api)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        scr = app.screen
        table = scr.table
        calls = {"add": 0, "clear": 0, "update": 0}
        orig_add, orig_clear, orig_upd = table.add_row, table.clear, table.update_cell
        table.add_row = lambda *a, **k: (calls.__setitem__("add", calls["add"] + 1), orig_add(*a, **k))[1]
        table.clear = lambda *a, **k: (calls.__setitem__("clear", calls["clear"] + 1), orig_clear(*a, **k))[1]
        table.update_cell = lambda *a, **k: (calls.__setitem__("update", calls["update"] + 1),
                                             orig_upd(*a, **k))[1]
        app.refresh_now()
        assert calls == {"add": 0, "clear": 0, "update": 0}      # nothing changed, nothing written
        api.price = 101.0
        app.refresh_now()
        assert calls["add"] == 0 and calls["clear"] == 0 and calls["update"] > 0


# ------------------------------------------------------------------------------ positions (fake)
async def test_positions_detail_and_totals_by_keyboard() -> None:
    api = FakeAPI()
    app = make_app(api)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        scr = app.screen
        assert scr.table.row_count == 1
        row = _cells(scr, "BTC/USDT|envelope_dca")
        assert row["upnl"] == "+2.50" and row["levels"] == "2/3" and row["side"] == "▲ long"
        assert row["upct"] == f"+{2.5 / (0.5 * 95) * 100:.2f}%"
        assert row["dstop"] == "−20.00%" and row["dtp"] == "+1.00%"
        assert "1 open" in str(scr.query_one("#totals").render())
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, PositionDetailScreen)
        assert app.screen.grid.levels_filled == 2
        await pilot.press("escape")
        await settle(pilot)
        assert type(app.screen).__name__ == "PositionsScreen"


# ------------------------------------------------------------------------------ positions (real engine)
async def test_positions_match_snapshot_after_replay_to_fixed_candle(tmp_path: Path) -> None:
    eng, stop_ts, cycle = replay_engine_at_open_cycle(tmp_path)
    api = EngineAPI(eng)
    await eng.start()
    run = asyncio.get_running_loop().create_task(eng.run())
    try:
        await wait_for(lambda: eng.runners and eng.runners[0].cursor == stop_ts)
        snap = api.snapshot()
        entry = snap["symbols"]["BTC/USDT"][0]
        pos = entry["position"]
        assert pos["qty"] > 0                                      # the cycle of the backtest is open
        app = make_app(api)
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            await pilot.press("3")
            await settle(pilot, 5)
            scr = app.screen
            row = _cells(scr, "BTC/USDT|envelope_dca")
            assert row["avg"] == f"{pos['avg_entry']:,.2f}"
            assert row["upnl"].replace("−", "-").replace("+", "") == f"{pos['unrealized']:,.2f}".lstrip("+")
            assert row["levels"].startswith(f"{pos['levels_filled']}/")
            assert row["qty"] == fmt_qty(pos["qty"])
            assert row["mark"] == f"{entry['last_price']:,.2f}"
            assert pos["avg_entry"] == pytest.approx(cycle.avg_entry) if cycle.levels_filled == pos["levels_filled"] \
                else True
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, PositionDetailScreen)
            await pilot.press("escape")
            await pilot.press("1")
            await settle(pilot)
            assert "BTC/USDT|envelope_dca" in {r.value for r in app.screen.table.rows}
    finally:
        await eng.stop()
        await asyncio.gather(run, return_exceptions=True)


# ------------------------------------------------------------------------------ alerts
async def _alerts(tmp_path: Path):
    from core.alerts import AlertEngine

    eng = await AlertEngine.open(tmp_path / "alerts.db")
    await eng.raise_alert("feed.stale:BTC", "critical", "feed", "BTC/USDT feed stale", "no candle for 5m")
    await eng.raise_alert("risk:dd", "warning", "risk", "drawdown 8%")
    await eng.raise_alert("info:x", "info", "engine", "engine restarted")
    return eng


def _db_state(path: Path, alert_id: int) -> tuple[str, object]:
    with sqlite3.connect(path) as c:
        cols = [r[1] for r in c.execute("PRAGMA table_info(alerts)")]
        row = c.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
    d = dict(zip(cols, row))
    return d["state"], d.get("snoozed_until_ms")


async def test_alerts_ack_snooze_reach_the_database(tmp_path: Path) -> None:
    alerts = await _alerts(tmp_path)
    try:
        app = make_app(FakeAPI(), alerts=alerts)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("4")
            await settle(pilot)
            scr = app.screen
            assert scr.table.row_count == 3
            first = current_row_key(scr.table)
            crit = alerts.get(int(first))
            assert crit.severity.value == "critical"             # display order: most severe first
            assert _cells(scr, first)["sev"] == "CRIT ‼"
            await pilot.press("a")
            await settle(pilot, 5)
            assert _db_state(tmp_path / "alerts.db", crit.id)[0] == "acknowledged"
            assert alerts.get(crit.id).changed_by == "console:test"
            assert current_row_key(scr.table) == first              # cursor stays on its row
            await pilot.press("down")
            second = current_row_key(scr.table)
            await pilot.press("s")
            await settle(pilot)
            assert isinstance(app.screen, SnoozePicker)
            await pilot.press("down", "enter")                    # 1h
            await settle(pilot, 5)
            state, until = _db_state(tmp_path / "alerts.db", int(second))
            assert state == "snoozed" and until is not None
            assert current_row_key(scr.table) == second
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, AlertDetailScreen)
            await pilot.press("escape")
            await settle(pilot)
            await pilot.press("t")                                # state filter: active only
            await settle(pilot)
            assert scr.table.row_count == 1
            await pilot.press("v", "v", "v", "v", "v")            # severity: back to all after a cycle
            await pilot.press("t", "t", "t", "t")                 # back to every open alert
            await settle(pilot)
            assert scr.table.row_count == 3
    finally:
        await alerts.close()


async def test_readonly_disables_ack(tmp_path: Path) -> None:
    alerts = await _alerts(tmp_path)
    try:
        app = make_app(FakeAPI(), alerts=alerts, readonly=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("4")
            await settle(pilot)
            first = int(current_row_key(app.screen.table))
            await pilot.press("a", "s")
            await settle(pilot, 5)
            assert not isinstance(app.screen, SnoozePicker)
            assert _db_state(tmp_path / "alerts.db", first)[0] == "active"
            await pilot.press("enter")                            # read-only still shows the detail
            await settle(pilot)
            assert isinstance(app.screen, AlertDetailScreen)
    finally:
        await alerts.close()


# ------------------------------------------------------------------------------ snapshots
pytest.importorskip("pytest_textual_snapshot")


def _frozen_app(screen_key: str):
    from core.api.local_port import LocalPort
    from tui.app import RadarApp

    now = [1000.0]
    api = FakeAPI()
    app = RadarApp(LocalPort(api), host_name="trade-01", actor="console:test", clock=lambda: now[0])
    app.session.first["BTC/USDT"] = 95.0

    async def run_before(pilot):
        await pilot.pause()
        if screen_key != "1":
            await pilot.press(screen_key)
        await pilot.pause()
        app.refresh_now()
        await pilot.pause()

    return app, run_before


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
@pytest.mark.parametrize("screen_key", ["1", "3", "4"])
def test_snapshots(snap_compare, size, screen_key) -> None:
    app, run_before = _frozen_app(screen_key)
    assert snap_compare(app, terminal_size=size, run_before=run_before)
