"""8 Performance: the book's equity and drawdown curves (or rolling Sharpe), monthly returns and
cycle statistics per asset: the same figures as `radar report --html`, from the engine's
`performance` query (`core.engine.api.EngineAPI.performance`, a `PerformanceView`).

The query reads the database (in a thread on the engine side, over the socket for an attached
console), so it is not made on every repaint: `refresh_data` asks for it when the screen is
shown and then every `REFRESH_S` seconds while it stays visible (`ctrl+r`: now); the last
answer stays on screen meanwhile. `s` swaps the drawdown chart for the rolling Sharpe.

Figures: returns and drawdowns in percent, money in USDT, times UTC; cycle durations in hours.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Static

from core.api.views import PerformanceView
from tui.actions import Action
from tui.screens.polled import PolledQueryScreen
from tui.screens.base import SortValue, fmt_signed, sync_table
from tui.widgets.equity_chart import SeriesChart


MONTH_COLUMNS = (("month", "month"), ("ret", "return %"))
CYCLE_COLUMNS = (("asset", "asset"), ("n", "cycles"), ("dur", "avg h"), ("week", "/week"), ("win", "win %"),
                 ("pnl", "P&L"))
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:+.2f}%"


def summary_text(v: PerformanceView) -> str:
    """The headline line(s) of a `PerformanceView`."""
    last_sharpe = f"{v.sharpe_values[-1]:.2f}" if v.sharpe_values else "—"
    final = "—" if v.final_equity is None else f"{v.final_equity:,.2f} USDT"
    return (f"{v.title}: equity {final}  return {_pct(v.total_return)}  max DD "
            f"{'—' if v.max_drawdown is None else f'{v.max_drawdown * 100:.2f}%'}  Sharpe "
            f"{'—' if v.sharpe is None else f'{v.sharpe:.2f}'} ({v.window_days}d now {last_sharpe})  "
            f"wins {v.n_win} losses {v.n_loss}")


class PerformanceScreen(PolledQueryScreen):
    """See the module docstring."""

    ACTIONS = (
        Action("perf-refresh", "ctrl+r", "Read the book's performance again now", "reload", readonly_ok=True),
        Action("perf-sharpe", "s", "Show the rolling Sharpe instead of the drawdown (and back)", "toggle_sharpe",
               readonly_ok=True),
    )
    SCREEN_NUMBER = 8
    SCREEN_TITLE = "Performance"
    #: seconds between two reads while the screen is visible; rolling Sharpe window; chart points
    REFRESH_S = 30.0
    QUERY = "performance"
    SUMMARY_ID = "perf-summary"
    WINDOW_DAYS = 30
    MAX_POINTS = 400

    DEFAULT_CSS = """
    PerformanceScreen #perf-summary { height: auto; padding: 0 1; border-bottom: solid $primary; }
    PerformanceScreen #perf-charts { height: 1fr; }
    PerformanceScreen #perf-tables { height: 8; }
    PerformanceScreen #perf-monthly { width: 24; }
    PerformanceScreen #perf-cycles { width: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.view: PerformanceView | None = None
        self.show_sharpe = False
        self._month_cache: dict[str, tuple[str, ...]] = {}
        self._cycle_cache: dict[str, tuple[str, ...]] = {}

    def compose(self) -> ComposeResult:
        yield Static("reading the book's performance…", id="perf-summary")
        with Horizontal(id="perf-charts"):
            yield SeriesChart("equity (USDT)", id="perf-equity")
            yield SeriesChart("drawdown (%)", id="perf-drawdown")
        with Horizontal(id="perf-tables"):
            months = DataTable(id="perf-monthly", cursor_type="row")
            for key, label in MONTH_COLUMNS:
                months.add_column(label, key=key)
            yield months
            cycles = DataTable(id="perf-cycles", cursor_type="row")
            for key, label in CYCLE_COLUMNS:
                cycles.add_column(label, key=key)
            yield cycles

    # ------------------------------------------------------------------ data
    async def fetch_view(self, api: Any) -> Any:
        return await api.performance(self.WINDOW_DAYS, self.MAX_POINTS)

    def show(self, v: PerformanceView) -> None:
        """Paint `v`: summary, charts, monthly and cycle tables (updated in place)."""
        self.view = v
        self.query_one("#perf-summary", Static).update(summary_text(v))
        self.query_one("#perf-equity", SeriesChart).set_series(v.ts, v.equity, "equity")
        self._second_chart()
        months = {f"{y:04d}-{m:02d}": (f"{MONTHS[m - 1]} {y}", fmt_signed(r * 100, 2, "%"))
                  for y, m, r in reversed(v.monthly)}
        sync_table(self.query_one("#perf-monthly", DataTable), months, [k for k, _ in MONTH_COLUMNS],
                   self._month_cache)
        rows = {}
        for c in v.cycles:
            rows[c.asset] = (c.asset, SortValue(str(c.n_cycles), c.n_cycles, justify="right"),
                             SortValue("—" if c.avg_duration_ms is None else f"{c.avg_duration_ms / 3.6e6:.1f}",
                                       c.avg_duration_ms, justify="right"),
                             SortValue("—" if c.cycles_per_week is None else f"{c.cycles_per_week:.2f}",
                                       c.cycles_per_week, justify="right"),
                             SortValue("—" if c.win_rate is None else f"{c.win_rate * 100:.0f}", c.win_rate,
                                       justify="right"),
                             fmt_signed(c.total_pnl))
        sync_table(self.query_one("#perf-cycles", DataTable), rows, [k for k, _ in CYCLE_COLUMNS], self._cycle_cache)

    def _second_chart(self) -> None:
        v = self.view
        chart = self.query_one("#perf-drawdown", SeriesChart)
        if v is None:
            return
        if self.show_sharpe:
            chart.title = f"rolling Sharpe {v.window_days}d"
            chart.set_series(v.sharpe_ts, v.sharpe_values, "Sharpe")
        else:
            chart.title = "drawdown (%)"
            chart.set_series(v.ts, [-100.0 * d for d in v.drawdown], "drawdown")

    # ------------------------------------------------------------------ actions
    def action_toggle_sharpe(self) -> None:
        self.show_sharpe = not self.show_sharpe
        self._second_chart()

