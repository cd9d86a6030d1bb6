"""The console on a LIVE engine (LiveRunner on the Bitget stand-in): the header says LIVE, the
Grid screen shows the ledger's filled level, stop and take-profit, the Positions screen the
exchange-backed position."""

from __future__ import annotations

import pytest

from core.api.local_port import LocalPort
from core.engine.api import EngineAPI
from tests.support.bitget_private_stub import BitgetPrivateStub
from tests.support.live_harness import STUB_SYM, LiveHarness, futures_candles
from tests.support.shared_data import shared_file
from tests.tui.test_tui_grid import Host
from tests.tui.test_tui_shell import make_app, settle
from tui.screens.grid import GridScreen
from tui.widgets.ladder import Ladder, fmt_price


@pytest.fixture
async def live_engine(tmp_path):
    candles = futures_candles(shared_file("binance-spot/BTC_USDT-1h.json.gz"), 121)   # ends in a position
    async with BitgetPrivateStub(mark=float(candles.open[0])) as stub:
        h = LiveHarness(stub, tmp_path / "live.db", candles)
        eng = h.engine()
        await eng.run()
        assert stub.position(STUB_SYM).qty != 0
        yield eng, LocalPort(EngineAPI(eng))
        await h.close()


async def test_grid_screen_on_a_live_runner(live_engine) -> None:
    eng, api = live_engine
    r = eng.runners[0]
    pos = r.position()
    assert pos["qty"] > 0 and r.state == "ready"
    screen = GridScreen()
    app = Host(screen, api)
    async with app.run_test(size=(160, 48)) as pilot:
        screen.refresh_data(api)
        await pilot.pause()
        text = str(screen.query_one(Ladder).render())
        entry = [f for f in r.book.fills if f.kind == "entry"][-1]
        assert "L0 filled" in text and fmt_price(entry.price) in text
        assert fmt_price(pos["stop"]) in text and "SL" in text
        assert fmt_price(r.strategy.take_profit) in text and "TP" in text


async def test_header_says_live_and_positions_match(live_engine) -> None:
    eng, api = live_engine
    app = make_app(api)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        from tui.widgets.header import render_header

        state = app.screen.query_one("RadarHeader").state
        assert state.mode == "live"
        assert " LIVE " in render_header(state, 160).plain
        await pilot.press("3")
        await settle(pilot)
        scr = app.screen
        assert type(scr).__name__ == "PositionsScreen"
        assert scr.table.row_count == 1
        row = " ".join(str(c) for c in scr.table.get_row_at(0))
        assert f"{eng.runners[0].position()['qty']:.4g}"[:4] in row
