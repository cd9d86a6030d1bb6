"""7 Risk screen: opened with the `7` key in an 80x24 console, it reads the book's risk through
the port (`LocalPort.risk()` -> `RiskView`) and shows VaR/CVaR, the worst case per runner and
in total, and the four scenarios, every column inside 80 columns."""

from __future__ import annotations

import numpy as np
from textual.widgets import DataTable, Static

from core.config import load_config
from core.paths import DEFAULT_CONFIG_DIR
from core.risk.book import Book, RestingLevel, RunnerBook
from core.risk.report import risk_report
from tests.support.shared_data import shared_candles_dir
from tests.tui.test_tui_shell import FakeAPI, make_app, settle, wait_for
from tui.screens.risk import RiskScreen

PARAMS = {"ma_period": 7, "num_levels": 3, "envelope_start": 0.05, "envelope_step": 0.03, "sl_percent": 0.20}


def _report() -> dict:
    book = Book((RunnerBook("envelope_dca", "BTC/USDT", "1h", "grid", "long", PARAMS, 98.0, 10_000.0, 10.0, 100.0,
                            80.0, 1, 3, 1000.0,
                            (RestingLevel(1, 95.0, 1000.0 / 95.0), RestingLevel(2, 92.0, 1000 / 92.0)),
                            0.0002, 0.0006),
                 RunnerBook("envelope_dca", "SOL/USDT:USDT", "1h", "grid", "long", PARAMS, 150.0, 10_000.0, 0.0, None,
                            None, 0, 3, 3000.0, (RestingLevel(0, 140.0, 3000.0 / 140.0),), 0.0002, 0.0006)),
                "engine", 1_700_000_000_000)
    rng = np.random.default_rng(5)
    ts = [i * 86_400_000 for i in range(60)]
    series = {r.label: (ts, list(10_000.0 * np.cumprod(1 + rng.normal(0, 0.02, 60)))) for r in book.runners}
    return risk_report(book, series, load_config(DEFAULT_CONFIG_DIR), data_dir=shared_candles_dir())


class RiskAPI(FakeAPI):
    def __init__(self, report: dict) -> None:
        super().__init__()
        self.report = report
        self.calls = 0

    async def risk(self) -> dict:
        self.calls += 1
        return self.report


def _fits(table: DataTable) -> bool:
    room = table.scrollable_content_region.width
    return sum(col.get_render_width(table) for col in table.columns.values()) <= room


async def test_risk_screen_opens_with_7_and_fits_80x24() -> None:
    api = RiskAPI(_report())
    app = make_app(api)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("7")
        await wait_for(lambda: isinstance(app.screen, RiskScreen) and app.screen.view is not None, 30)
        await settle(pilot, 5)
        screen = app.screen
        text = str(screen.query_one("#risk-summary", Static).render())
        assert "95% VaR hist" in text and "99% VaR hist" in text and "worst case" in text
        assert all(len(line) <= 78 for line in text.splitlines())
        worst = screen.query_one("#risk-worst", DataTable)
        assert worst.row_count == 3                                   # two runners + total
        total = api.report["worst_case"]["total"]
        assert str(worst.get_cell("~total", "loss")) == f"{total:,.0f}"
        scen = screen.query_one("#risk-scenarios", DataTable)
        assert scen.row_count == 4
        assert str(scen.get_cell("covid_crash_2020", "detail")).startswith("BTC")
        assert "*" in str(scen.get_cell("covid_crash_2020", "detail"))  # SOL through the BTC proxy
        assert _fits(worst) and _fits(scen)
        assert screen.region.height == 24 and screen.region.width == 80
        await pilot.press("ctrl+r")
        await wait_for(lambda: api.calls >= 2, 10)


async def test_risk_screen_says_when_the_engine_cannot_answer() -> None:
    app = make_app(FakeAPI())                                         # no risk() at all
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("7")
        await wait_for(lambda: isinstance(app.screen, RiskScreen) and not app.screen._loading
                       and app.screen._fetched_at is not None, 10)
        await settle(pilot)
        assert "does not answer the risk query" in str(app.screen.query_one("#risk-summary", Static).render())
