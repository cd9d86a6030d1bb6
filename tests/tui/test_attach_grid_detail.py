"""An attached console's Grid shows what the in-process one shows: the open cycle's fill prices on
the ladder, the closed cycles and the chart, all read through the engine API (`grid?detail=1`),
the same typed views (`core.api.views`) on both paths."""

from __future__ import annotations

from pathlib import Path

from core.api.local_port import LocalPort
from core.api.views import GridStateView, SnapshotView
from tests.support.control_harness import REOPENED_AT, GatedRun, btc_candles, eventually
from tests.tui.test_tui_shell import settle
from tui.app import RadarApp
from tui.attach import AttachedRadarApp
from tui.formats import fmt_price
from tui.remote import RemoteEngine
from tui.widgets.cycles_table import CyclesTable
from tui.widgets.ladder import Ladder


def _grid_text(app) -> tuple[str, int, object]:
    scr = app.screen
    return str(scr.query_one(Ladder).render()), scr.query_one(CyclesTable).row_count, scr.view


async def test_attached_grid_has_the_fills_cycles_and_chart_of_the_in_process_one(tmp_path: Path) -> None:
    async with GatedRun(tmp_path / "radar.db", btc_candles(), start=REOPENED_AT + 1, config_dir=tmp_path) as run:
        r = run.runner
        assert r.cycles and r.position()["qty"] > 0, "candle 39: one closed cycle and a new one open"
        entry = [f for f in r.book.fills if f.kind == "entry"][-1]
        local = LocalPort(run.services.api.api)
        g_local = local.grid("BTC/USDT")
        assert isinstance(g_local, GridStateView) and g_local.has_detail
        assert g_local.fills and g_local.fills[-1].price == entry.price
        assert len(g_local.recent_cycles) == len(r.cycles) and g_local.chart is not None

        remote = await RemoteEngine(run.socket).connect()
        try:
            assert isinstance(remote.snapshot(), SnapshotView)
            app = AttachedRadarApp(remote, host_name="t", actor="console:test", freeze_gc=False)
            assert app.config_dir == tmp_path               # where the results view writes an applied result
            async with app.run_test(size=(160, 48)) as pilot:
                await pilot.press("2")
                await eventually(lambda: fmt_price(entry.price) in _grid_text(app)[0] and _grid_text(app)[1] >= 1,
                                 15, "the attached ladder's fill price and the closed cycle")
                view = _grid_text(app)[2]
                remote_grid = remote.grid("BTC/USDT")
                assert remote_grid == g_local                       # the same view over the socket
                assert view.levels[0].fill_price == entry.price
            app = RadarApp(local, host_name="t", actor="console:test", freeze_gc=False)
            async with app.run_test(size=(160, 48)) as pilot:
                await pilot.press("2")
                await settle(pilot, 5)
                text, cycles, local_view = _grid_text(app)
                assert fmt_price(entry.price) in text and cycles == len(r.cycles)
                assert local_view.levels == view.levels
        finally:
            await remote.close()
