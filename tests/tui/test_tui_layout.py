"""The console at narrow terminals: the Alerts table shows the State column at 80 columns, the
Jobs table fits at 80 and 160 columns, the header keeps the kill switch and the alerts at 60
columns, and quantities never show in scientific notation."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable

from core.jobs.model import JobRecord
from tests.tui.test_tui_screens import _alerts
from tests.tui.test_tui_shell import FakeAPI, make_app, settle, wait_for
from tui.screens.base import current_row_key
from tui.widgets.header import HeaderState, render_header


def _fitting_columns(table: DataTable) -> list[str]:
    """The keys of the columns wholly inside the table's visible width."""
    room = table.scrollable_content_region.width
    out, x = [], 0
    for key, col in table.columns.items():
        x += col.get_render_width(table)
        if x <= room:
            out.append(key.value)
    return out


async def test_alerts_state_column_shows_at_80_columns(tmp_path: Path) -> None:
    alerts = await _alerts(tmp_path)
    try:
        await alerts.raise_alert("feed.stale:ETH", "error", "feed",
                                 "ETH/USDT feed stale: no candle for 5 minutes on the 1m stream")
        first = alerts.list()[0]
        await alerts.ack(first.id, "console:test")
        app = make_app(FakeAPI(), alerts=alerts)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("4")
            await settle(pilot, 5)
            table = app.screen.table
            shown = _fitting_columns(table)
            assert {"id", "sev", "title", "state"} <= set(shown), shown
            assert len(shown) == len(table.columns)                    # nothing cut off
            assert str(table.get_cell(str(first.id), "state")).startswith("acknowledged")
    finally:
        await alerts.close()


class LongJobs:
    """Job records whose detail is long (a failure's message)."""

    def __init__(self) -> None:
        def rec(i, state, progress, error=None):
            return JobRecord(id=i, kind="wfo", params={"strategy": "envelope_dca", "timeframe": "1h",
                                                       "series": [{"symbol": "BTC/USDT"}]},
                             state=state, error=error, progress=progress, phase="windows", result=None,
                             created_ms=0, started_ms=0, finished_ms=None)
        self.records = [rec(2, "running", 42.0),
                        rec(1, "failed", 17.0, "no candles for BTC/USDT 1h between 2021-01-01 and 2021-06-30 in "
                                           "the file binance-spot/BTC_USDT-1h.json.gz; pick another window or "
                                           "download the data first (radar data download)")]

    def subscribe(self, callback):
        return lambda: None

    def jobs(self, limit: int = 50):
        return self.records[:limit]


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_jobs_table_fits_the_terminal(size) -> None:
    app = make_app(FakeAPI(), jobs=LongJobs())
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("5")
        scr = app.screen
        await wait_for(lambda: len(scr.jobs) == 2, 30)
        await settle(pilot)
        table = scr.query_one(DataTable)
        shown = _fitting_columns(table)
        assert len(shown) == len(table.columns), shown
        assert {"id", "what", "state", "progress", "eta", "detail"} <= set(shown)
        assert str(table.get_cell("1", "detail")).startswith("no candles")
        assert "42%" in str(table.get_cell("2", "progress"))


async def test_header_keeps_kill_switch_and_alerts_at_60_columns(tmp_path: Path) -> None:
    s = HeaderState(host="trade-01.example.net", mode="paper", equity=1002.5, day_pnl=-3.25, kill_active=True,
                    feed_age_s=3, alerts=2)
    for width in (58, 40):
        plain = render_header(s, width).plain
        assert "KILL ON" in plain and "alerts 2!" in plain and len(plain) <= width, plain
    alerts = await _alerts(tmp_path)
    try:
        app = make_app(FakeAPI(), alerts=alerts)
        async with app.run_test(size=(60, 24)) as pilot:
            await settle(pilot)
            app.refresh_now()
            await settle(pilot)
            header = app.screen.query_one("RadarHeader")
            shown = header._last_plain
            assert "kill off" in shown and "alerts 3!" in shown, shown
            assert len(shown) <= header.content_size.width
    finally:
        await alerts.close()


def test_quantities_are_never_in_scientific_notation() -> None:
    from tui.formats import fmt_qty

    assert fmt_qty(1_011_770.4) == "1,011,770"
    assert fmt_qty(12_345.678) == "12,345.68"
    assert fmt_qty(12.345678) == "12.3457"
    assert fmt_qty(0.8168612) == "0.816861"
    assert fmt_qty(0.00012345) == "0.00012345"
    assert fmt_qty(0) == "0" and fmt_qty(None) == "—"


class DogeAPI(FakeAPI):
    """A DOGE position of about a million coins."""

    def __init__(self) -> None:
        super().__init__(with_position=False)
        self.doge = {"strategy": "envelope_dca", "symbol": "DOGE/USDT", "side": "long", "qty": 1_011_770.4,
                     "avg_entry": 0.0988, "stop": 0.08, "levels_filled": 1, "unrealized": 1_214.1}

    def _pos(self, symbol: str) -> dict:
        return dict(self.doge) if symbol == "DOGE/USDT" else super()._pos(symbol)

    def _grid(self, symbol: str) -> dict:
        g = super()._grid(symbol)
        if symbol == "DOGE/USDT":
            g.update(levels=[0.0988, 0.095, 0.092], levels_filled=1, take_profit=0.101, stop=0.08,
                     open_orders=[{"client_id": "rd-d-L1", "purpose": "entry", "level": 1, "price": 0.095}])
        return g

    def positions(self) -> list[dict]:
        return [self._pos("DOGE/USDT")]


async def test_doge_quantities_read_as_numbers_on_every_view() -> None:
    app = make_app(DogeAPI())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        assert str(app.screen.table.get_cell("DOGE/USDT|envelope_dca", "qty")) == "1,011,770"
        await pilot.press("enter")
        await settle(pilot)
        detail = " ".join(str(s.render()) for s in app.screen.query("Static"))
        assert "qty 1,011,770" in detail and "e+" not in detail and "e-0" not in detail
        await pilot.press("escape", "1")
        await settle(pilot)
        app.open_grid("DOGE/USDT")
        await settle(pilot, 5)
        summary = str(app.screen.query_one("#grid-summary").render())
        ladder = str(app.screen.query_one("#ladder").render())
        assert "position 1,011,770 @" in summary, summary
        assert "e+" not in summary + ladder and "e-0" not in summary + ladder
        await pilot.press("K")
        await settle(pilot)
        assert "DOGE/USDT long 1,011,770" in app.screen.message


async def test_a_resize_rebuilds_the_alert_columns_and_keeps_the_cursor(tmp_path: Path) -> None:
    alerts = await _alerts(tmp_path)
    try:
        app = make_app(FakeAPI(), alerts=alerts)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("4")
            await settle(pilot)
            scr = app.screen
            await pilot.press("down")
            key = current_row_key(scr.table)
            assert "source" not in [k.value for k in scr.table.columns]
            await pilot.resize_terminal(160, 48)
            await settle(pilot, 5)
            assert [k.value for k in scr.table.columns] == [k for k, _ in scr.COLUMNS]
            assert scr.table.row_count == 3 and current_row_key(scr.table) == key
            assert len(_fitting_columns(scr.table)) == len(scr.COLUMNS)
    finally:
        await alerts.close()
