"""8 Performance screen (issue 14): after a real replay, the console's equity and drawdown charts
hold exactly the book's curve (the one `radar report --html` draws, thinned as the query thins it),
the monthly table and cycle stats match the engine's figures, at 80x24; `s` swaps in the rolling
Sharpe; an engine without equity yet shows a clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.engine.api import EngineAPI
from core.performance.sources import from_db
from core.performance.summary import performance
from tests.engine.test_engine_replay import _engine, _slice
from tests.tui.test_tui_shell import FakeAPI, make_app, settle, wait_for
from tui.screens.performance import PerformanceScreen
from tui.widgets.equity_chart import SeriesChart


async def test_performance_screen_shows_the_book_curves(tmp_path: Path) -> None:
    db = tmp_path / "replay.db"
    eng = _engine(db, _slice(1500))
    await eng.run()
    want = performance(from_db(db), window_days=PerformanceScreen.WINDOW_DAYS,
                       max_points=PerformanceScreen.MAX_POINTS)
    assert len(want["curves"]["ts"]) <= PerformanceScreen.MAX_POINTS + 1

    app = make_app(EngineAPI(eng))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("8")
        await settle(pilot)
        scr = app.screen
        assert isinstance(scr, PerformanceScreen)
        await wait_for(lambda: scr.view is not None, 30)
        await settle(pilot)
        eq = scr.query_one("#perf-equity", SeriesChart).series
        dd = scr.query_one("#perf-drawdown", SeriesChart).series
        assert eq[0] == tuple(want["curves"]["ts"]) and eq[1] == tuple(want["curves"]["equity"])
        assert dd[0] == tuple(want["curves"]["ts"])
        assert dd[1] == pytest.approx([-100 * d for d in want["curves"]["drawdown"]], abs=1e-12)
        summary = str(scr.query_one("#perf-summary").render())
        assert f"{want['final_equity']:,.2f} USDT" in summary
        assert f"{want['max_drawdown'] * 100:.2f}%" in summary

        months = scr.query_one("#perf-monthly")
        assert months.row_count == len(want["monthly"])
        newest = want["monthly"][-1]
        row = [getattr(c, "plain", str(c)) for c in months.get_row(f"{newest['year']:04d}-{newest['month']:02d}")]
        assert row[1].replace("−", "-").replace("±", "+") == f"{newest['ret'] * 100:+,.2f}%"
        cycles = scr.query_one("#perf-cycles")
        (stats,) = want["cycles"]
        row = [getattr(c, "plain", str(c)) for c in cycles.get_row("BTC/USDT")]
        assert row[:2] == ["BTC/USDT", str(stats["n_cycles"])]
        # everything fits: both charts and both tables are on the 80x24 screen
        for wid in ("#perf-equity", "#perf-drawdown", "#perf-monthly", "#perf-cycles"):
            region = scr.query_one(wid).region
            assert region.height >= 3 and region.right <= 80 and region.bottom <= 24, (wid, region)
        assert "equity" in str(scr.query_one("#perf-equity", SeriesChart).render())

        await pilot.press("s")
        await settle(pilot)
        sh = scr.query_one("#perf-drawdown", SeriesChart).series
        assert sh[0] == tuple(want["rolling_sharpe"]["ts"])
        assert sh[1] == pytest.approx(want["rolling_sharpe"]["values"], abs=1e-12)


async def test_performance_screen_without_the_query_says_so() -> None:
    app = make_app(FakeAPI())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("8")
        scr = app.screen
        assert isinstance(scr, PerformanceScreen)
        await wait_for(lambda: scr._fetched_at is not None, 10)
        await settle(pilot)
        assert "performance" in str(scr.query_one("#perf-summary").render())
        assert scr.view is None
