"""Keys that move between views: `g` on the Scanner opens the Grid on the selected row, `esc`
clears a kept filter before it goes back, `?` on a job's results shows the results' keys, and
`a` / `s` work in the alert detail view."""

from __future__ import annotations

from pathlib import Path

from core.jobs.model import JobRecord
from tests.tui.test_tui_screens import _alerts, _db_state
from tests.tui.test_tui_shell import FakeAPI, make_app, settle, wait_for
from tui.screens.alerts import AlertDetailScreen, SnoozePicker
from tui.screens.base import current_row_key
from tui.screens.jobs import ResultsScreen
from tui.widgets.help import HelpScreen


async def test_g_opens_the_grid_on_the_selected_row() -> None:
    app = make_app(FakeAPI())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        scanner = app.screen
        for presses, want in ((1, "ETH/USDT"), (2, "DOGE/USDT")):     # the grid's first symbol is BTC
            await pilot.press("1")
            await settle(pilot)
            scanner.table.move_cursor(row=0)
            await pilot.press(*["down"] * presses)
            assert current_row_key(scanner.table) == f"{want}|envelope_dca"
            await pilot.press("g")
            await settle(pilot, 5)
            grid = app.screen
            assert type(grid).__name__ == "GridScreen"
            assert grid.view is not None and grid.view.symbol == want
            assert str(grid.query_one("#grid-summary").render()).startswith(want)


async def test_esc_clears_a_kept_filter_then_goes_back() -> None:
    app = make_app(FakeAPI())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        await pilot.press("1")
        await settle(pilot)
        scanner = app.screen
        await pilot.press("slash", *"doge", "enter")           # enter keeps the filter, focus on the table
        await settle(pilot)
        assert scanner.table.row_count == 1 and scanner.filter_text == "doge"
        await pilot.press("escape")                             # first esc: the filter goes
        await settle(pilot)
        assert app.screen is scanner
        assert scanner.table.row_count == 3 and scanner.filter_text == ""
        assert not scanner.query_one("#filter").has_class("-shown")
        await pilot.press("escape")                             # second esc: back
        await settle(pilot)
        assert type(app.screen).__name__ == "PositionsScreen"


class OneDoneJob:
    """The JobManager surface the Jobs and results views use: one finished job, no stored results."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.record = JobRecord(id=1, kind="wfo", params={"strategy": "envelope_dca", "timeframe": "1h",
                                                          "series": [{"symbol": "BTC/USDT"}]},
                                state="done", error=None, progress=100.0, phase="done", result=None,
                                created_ms=0, started_ms=0, finished_ms=1)

    def subscribe(self, callback):
        return lambda: None

    def jobs(self, limit: int = 50):
        return [self.record]

    def get(self, job_id: int):
        return self.record if job_id == 1 else None


async def test_help_on_the_results_view_shows_its_own_keys(tmp_path: Path) -> None:
    app = make_app(FakeAPI(), jobs=OneDoneJob(tmp_path / "jobs.db"))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("5")
        jobs = app.screen
        await wait_for(lambda: bool(jobs.jobs), 30)
        await settle(pilot)
        await pilot.press("o")
        await settle(pilot)
        assert isinstance(app.screen, ResultsScreen)
        await pilot.press("question_mark")
        await settle(pilot)
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        assert help_screen.screen_title == "Job results"
        names = {a.name for a in help_screen.screen_actions}
        assert {"heatmap-x", "heatmap-y", "next-result"} <= names and "new-job" not in names
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, ResultsScreen)


async def test_ack_and_snooze_work_in_the_alert_detail(tmp_path: Path) -> None:
    alerts = await _alerts(tmp_path)
    try:
        app = make_app(FakeAPI(), alerts=alerts)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("4")
            await settle(pilot)
            table = app.screen.table
            first = int(current_row_key(table))
            await pilot.press("enter")
            await settle(pilot)
            detail = app.screen
            assert isinstance(detail, AlertDetailScreen) and detail.alert.id == first
            await pilot.press("a")
            await settle(pilot, 5)
            assert _db_state(tmp_path / "alerts.db", first)[0] == "acknowledged"
            assert app.screen is detail and "acknowledged" in str(detail.query_one("#alert-detail").render())
            await pilot.press("s")
            await settle(pilot)
            assert isinstance(app.screen, SnoozePicker)
            await pilot.press("2")                                   # 1h
            await settle(pilot, 5)
            state, until = _db_state(tmp_path / "alerts.db", first)
            assert state == "snoozed" and until is not None
            assert app.screen is detail and "snoozed" in str(detail.query_one("#alert-detail").render())
    finally:
        await alerts.close()


async def test_the_alert_detail_refuses_ack_in_read_only(tmp_path: Path) -> None:
    alerts = await _alerts(tmp_path)
    try:
        app = make_app(FakeAPI(), alerts=alerts, readonly=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("4")
            await settle(pilot)
            first = int(current_row_key(app.screen.table))
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, AlertDetailScreen)
            await pilot.press("a", "s")
            await settle(pilot, 5)
            assert isinstance(app.screen, AlertDetailScreen)
            assert _db_state(tmp_path / "alerts.db", first)[0] == "active"
            assert any("read-only" in str(n.message) for n in app._notifications)
    finally:
        await alerts.close()
