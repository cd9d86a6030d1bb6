"""Jobs screen (n -> form -> submit a real small WFO job, progress, c -> confirm -> cancelled;
a finished job's results with the heatmap) and Health screen (statuses from a Watchdog)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.app import App
from textual.widgets import DataTable, Input

from core.api.local_port import LocalPort
from core.backtest.loading import load_from_file
from core.engine.api import EngineAPI
from core.health import Check, Watchdog
from core.jobs import CANCELLED, DONE, RUNNING, JobManager
from tests.support.shared_data import shared_file
from tui.screens.health import HealthScreen
from tui.screens.jobs import JobsScreen, ResultsScreen, progress_bar
from tui.widgets.heatmap import heatmap_matrix, render_heatmap
from tui.widgets.job_form import ConfirmModal, JobForm

BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"


class Host(App):
    """Pushes one screen; `jobs`: the port's job manager (the results view reads through the port)."""

    def __init__(self, screen, jobs=None) -> None:
        super().__init__()
        self._screen = screen
        self.api = LocalPort(EngineAPI(None, jobs=jobs), jobs=jobs)

    def on_mount(self) -> None:
        self.push_screen(self._screen)


def _form_defaults(days: int) -> dict:
    path = shared_file(BTC_1H)
    c = load_from_file(path)
    import datetime as dt
    d0 = dt.datetime.fromtimestamp(int(c.ts[0]) / 1000, dt.timezone.utc) + dt.timedelta(days=30)
    d1 = d0 + dt.timedelta(days=days)
    return {"strategy": "envelope_dca", "symbols": "BTC/USDT", "file": str(path), "start": f"{d0:%Y-%m-%d}",
            "end": f"{d1:%Y-%m-%d}", "is_days": "20", "oos_days": "5", "step_days": "5", "max_points": "40"}


def _cell(screen: JobsScreen, job_id: int, col: str) -> str:
    return str(screen.query_one(DataTable).get_cell(str(job_id), col))


async def _wait(pilot, cond, timeout: float = 120.0) -> None:
    t = asyncio.get_running_loop().time()
    while not cond():
        assert asyncio.get_running_loop().time() - t < timeout, "timed out"
        await pilot.pause(0.05)


async def test_jobs_screen_new_job_progress_and_cancel(tmp_path: Path) -> None:
    mgr = JobManager(tmp_path / "jobs.db")
    await mgr.start()
    try:
        screen = JobsScreen(mgr, form_defaults=_form_defaults(400))
        async with Host(screen, jobs=mgr).run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            await pilot.press("n")
            await pilot.pause()
            assert isinstance(pilot.app.screen, JobForm)
            await pilot.press("ctrl+s")
            await _wait(pilot, lambda: screen.jobs and any(j.get("state") == RUNNING for j in screen.jobs.values()))
            job_id = next(iter(screen.jobs))
            await _wait(pilot, lambda: "/" in _cell(screen, job_id, "window"))   # window i/n shown
            assert "%" in _cell(screen, job_id, "progress") and _cell(screen, job_id, "state") == "RUNNING"
            await pilot.press("c")
            await pilot.pause()
            assert isinstance(pilot.app.screen, ConfirmModal) and f"job {job_id}" in pilot.app.screen.question
            await pilot.press("y")
            rec = await asyncio.wait_for(mgr.wait(job_id), 120)
            assert rec.state == CANCELLED
            await _wait(pilot, lambda: _cell(screen, job_id, "state") == "CANCELLED")
    finally:
        await mgr.close()


async def test_jobs_screen_finished_job_opens_results_and_heatmap(tmp_path: Path) -> None:
    mgr = JobManager(tmp_path / "jobs.db")
    await mgr.start()
    try:
        screen = JobsScreen(mgr, form_defaults=_form_defaults(45))
        async with Host(screen, jobs=mgr).run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            await pilot.press("n")
            await pilot.pause()
            form = pilot.app.screen
            form.query_one("#f-symbols", Input).value = "BTC/USDT, ETH/USDT"     # a file holds one symbol
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert "ERROR" in str(form.query_one("#form-error").render())
            form.query_one("#f-symbols", Input).value = "BTC/USDT"
            await pilot.press("ctrl+s")
            await _wait(pilot, lambda: screen.jobs and any(j.get("state") == DONE for j in screen.jobs.values()),
                        timeout=300)
            job_id = next(iter(screen.jobs))
            assert _cell(screen, job_id, "progress") == progress_bar(100)
            await pilot.press("o")
            await pilot.pause()
            res = pilot.app.screen
            assert isinstance(res, ResultsScreen)
            await _wait(pilot, lambda: bool(res.results))
            head = str(res.query_one("#res-head").render())
            for word in ("GRADE", "OOS Sharpe", "consistency", "OOS/IS", "DSR", "param stability"):
                assert word in head
            combos = res.results[0][1]
            assert res.query_one("#res-combos", DataTable).row_count == min(10, len(combos))
            assert len(res.params) >= 2
            x0 = res.query_one("#res-heat").axes
            await pilot.press("x")
            assert res.query_one("#res-heat").axes != x0
    finally:
        await mgr.close()


def test_heatmap_prints_values() -> None:
    combos = [{"params": {"a": a, "b": b, "c": c}, "oos_sharpe": a + b * 10 + c}
              for a in (1, 2) for b in (0.1, 0.2) for c in (0, 5)]
    xs, ys, m = heatmap_matrix(combos, "a", "b")
    assert xs == [1, 2] and ys == [0.1, 0.2] and m == [[7.0, 8.0], [8.0, 9.0]]
    from rich.console import Console
    con = Console(width=100, no_color=True, record=True)
    con.print(render_heatmap(combos, "a", "b"))
    out = con.export_text()
    assert "7.00" in out and "9.00*" in out


async def test_health_screen_shows_watchdog_statuses() -> None:
    wd = Watchdog(clock=lambda: 1_700_000_000_000)
    wd.register("feed:BTC/USDT", lambda: Check.ok(age_s=0.42, stale_after_s=30.0, reconnect_attempt=0))
    wd.register("loop", lambda: Check.degraded("event loop lag up to 0.2s", p50_s=0.001, p99_s=0.15, max_s=0.2,
                                               samples=100))
    wd.register("database", lambda: Check.ok(latency_s=0.002, size_bytes=5 * 1024 * 1024, free_bytes=10 ** 10))
    wd.register("telegram", lambda: Check.down("Telegram outbox is not running; nothing is sent",
                                               queued=3, failed=0, dropped=1, retrying=0))
    wd.register("gateway", lambda: Check.ok(state="closed", consecutive_failures=0, rate_limit_remaining=900,
                                            rate_limit=1200))
    await wd.run_once()
    screen = HealthScreen(wd.snapshot, clock=lambda: 1_700_000_060_000)
    async with Host(screen).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        t = screen.query_one(DataTable)
        assert str(t.get_cell("telegram", "status")) == "DOWN"
        assert str(t.get_cell("loop", "status")) == "DEGRADED"
        assert str(t.get_cell("database", "status")) == "OK"
        assert "not running" in str(t.get_cell("telegram", "reason"))
        summ = str(screen.query_one("#health-summary").render())
        for s in ("overall DOWN", "BTC/USDT 420 ms", "p99 150 ms", "5.0 MiB", "3 queued", "gateway 900"):
            assert s in summ, s
        # a change updates cells in place: the cursor stays on its row
        t.move_cursor(row=2)
        key = t.coordinate_to_cell_key(t.cursor_coordinate).row_key.value
        wd.register("telegram", lambda: Check.ok(queued=0, failed=0, dropped=1, retrying=0), replace=True)
        await wd.run_once()
        screen.refresh_data(None)
        await pilot.pause()
        assert str(t.get_cell("telegram", "status")) == "OK"
        assert t.coordinate_to_cell_key(t.cursor_coordinate).row_key.value == key
