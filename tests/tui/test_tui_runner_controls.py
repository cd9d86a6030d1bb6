"""The console's per-runner commands on a real engine: `P` pauses / resumes the selected runner and
`X` closes its position, through the engine port. In-process, the command goes through the API
server's audited path (source "console"); attached read-only, the ENGINE refuses it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core.api.audit import read_audit
from core.api.local_port import LocalPort
from tests.support.control_harness import IN_POSITION_AT, GatedRun, btc_candles, eventually
from tests.tui.test_tui_shell import settle
from tui.app import RadarApp
from tui.attach import AttachedRadarApp
from tui.remote import RemoteEngine
from tui.widgets.confirm import ConfirmScreen


def _said(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


def _port(run: GatedRun) -> LocalPort:
    server = run.services.api
    return LocalPort(server.api, commands=server.run_command)


async def test_p_pauses_and_resumes_the_selected_runner_audited(tmp_path: Path) -> None:
    db = tmp_path / "radar.db"
    async with GatedRun(db, btc_candles(), start=IN_POSITION_AT - 3) as run:
        app = RadarApp(_port(run), host_name="t", actor="console:test", freeze_gc=False)
        async with app.run_test(size=(120, 30), notifications=True) as pilot:
            await settle(pilot)
            await pilot.press("P")
            await settle(pilot)
            assert isinstance(app.screen, ConfirmScreen)
            assert "PAUSE BTC/USDT envelope_dca" in app.screen.message
            await pilot.press("y")
            await eventually(lambda: run.api.snapshot()["symbols"]["BTC/USDT"][0]["state"] == "paused", 10,
                             "the runner to be paused")
            await run.release(2)                                      # candles pass: no entry rests
            assert not [o for o in run.api.grid_state("BTC/USDT")["open_orders"] if o["purpose"] == "entry"]
            app.refresh_now()
            await settle(pilot)
            assert "paused" in str(app.screen.table.get_row("BTC/USDT|envelope_dca")[6])
            await pilot.press("P")
            await settle(pilot)
            assert "RESUME BTC/USDT envelope_dca" in app.screen.message
            await pilot.press("y")
            await eventually(lambda: run.api.snapshot()["symbols"]["BTC/USDT"][0]["state"] != "paused", 10,
                             "the runner to be resumed")
        with sqlite3.connect(db) as conn:
            rows = read_audit(conn, limit=10)
        got = [(r.command, r.source, r.outcome) for r in rows]
        assert ("pause", "console", "ok") in got and ("resume_runner", "console", "ok") in got, got


async def test_x_closes_the_position_and_a_readonly_attached_console_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "radar.db"
    async with GatedRun(db, btc_candles(), start=IN_POSITION_AT + 1) as run:
        assert run.api.positions(), "the engine should be in position at candle 37"
        remote = await RemoteEngine(run.socket, readonly=True).connect()
        app = AttachedRadarApp(remote, host_name="t", actor="console:test", freeze_gc=False)
        try:
            async with app.run_test(size=(120, 30), notifications=True) as pilot:
                await pilot.press("3")
                await eventually(lambda: app.screen.table.row_count == 1, 10, "the position row")
                await pilot.press("X")
                await settle(pilot)
                assert isinstance(app.screen, ConfirmScreen)
                assert "CLOSE THE LONG POSITION of BTC/USDT envelope_dca AT MARKET" in app.screen.message
                await pilot.press("y")
                await eventually(lambda: any("read-only" in m for m in _said(app)), 10, "the engine's refusal")
                assert run.api.positions(), "a read-only console closed the position"
        finally:
            await remote.close()
        app = RadarApp(_port(run), host_name="t", actor="console:test", freeze_gc=False)
        async with app.run_test(size=(120, 30), notifications=True) as pilot:
            await pilot.press("3")
            await settle(pilot)
            await pilot.press("X")
            await settle(pilot)
            await pilot.press("y")
            await eventually(lambda: not run.api.positions(), 10, "the position to be closed")
            await eventually(lambda: any("1 position(s) closed" in m for m in _said(app)), 5, "the toast")
        with sqlite3.connect(db) as conn:
            rows = read_audit(conn, limit=10)
        got = [(r.command, r.source, r.outcome) for r in rows]
        assert ("flatten", "console", "ok") in got and ("flatten", "console", "refused") in got, got
