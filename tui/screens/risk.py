"""7 Risk: what the whole book risks — one-day VaR and CVaR at 95 % and 99 % (historical and
Monte Carlo), the worst case per runner and in total (every resting level filled, then the
stop), the stress scenarios replayed on today's book, the exposure per correlation group.

Read only through the port (`await port.risk()`: `LocalPort` in-process, `RemoteEngine`
attached; a `core.api.views.RiskView`). The engine computes it in a thread (equity points,
scenario candles), so the screen asks when shown and then every `REFRESH_S` seconds while
visible (`ctrl+r`: now); the last answer stays on screen meanwhile. Fits 80x24.

Money USDT, fractions shown in percent, times UTC.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from core.api.views import RiskView
from tui.actions import Action
from tui.screens.polled import PolledQueryScreen
from tui.screens.base import sync_table


WORST_COLUMNS = (("runner", "runner"), ("side", "side"), ("lv", "+lv"), ("stop", "stop"), ("loss", "loss"),
                 ("eq", "from eq"))
SCEN_COLUMNS = (("name", "scenario"), ("loss", "loss"), ("lossp", "%"), ("worst", "worst"), ("worstp", "%"),
                ("detail", "moves"))


def _usd(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f}%"


def summary_text(v: RiskView) -> str:
    """The headline lines of a `RiskView` (at most 5 lines of at most 78 characters)."""
    when = "—" if v.as_of_ms is None else \
        f"{dt.datetime.fromtimestamp(v.as_of_ms / 1000, dt.timezone.utc):%Y-%m-%d %H:%M}"
    lines = [f"book ({v.source}) equity {_usd(v.equity)} USDT, as of {when} UTC"]
    if v.var_available:
        for lv in (0.95, 0.99):
            h, m = v.figure("historical", lv), v.figure("monte_carlo", lv)
            lines.append(f"{lv * 100:.0f}% VaR hist {_usd(h and h.var)} ({_pct(h and h.var_fraction)}) "
                         f"MC {_usd(m and m.var)} ({_pct(m and m.var_fraction)})  CVaR hist "
                         f"{_usd(h and h.cvar)} MC {_usd(m and m.cvar)}")
    else:
        lines.append(f"VaR n/a: {v.var_reason}"[:78])
    worst = "UNBOUNDED (no stop)" if v.worst_total is None and v.worst_cases else \
        f"{_usd(v.worst_total)} USDT ({_pct(v.worst_total_fraction)})"
    groups = ", ".join(f"{g.group} {_pct(g.gross_fraction)}" for g in v.groups)
    lines.append(f"worst case {worst}; gross/equity: {groups or '—'}"[:78])
    return "\n".join(lines)


class RiskScreen(PolledQueryScreen):
    """See the module docstring."""

    ACTIONS = (
        Action("risk-refresh", "ctrl+r", "Measure the book's risk again now", "reload", readonly_ok=True),
    )
    SCREEN_NUMBER = 7
    SCREEN_TITLE = "Risk"
    #: seconds between two reads while the screen is visible
    REFRESH_S = 30.0
    QUERY = "risk"
    SUMMARY_ID = "risk-summary"

    DEFAULT_CSS = """
    RiskScreen #risk-summary { height: auto; padding: 0 1; border-bottom: solid $primary; }
    RiskScreen #risk-worst { height: 1fr; }
    RiskScreen #risk-scenarios { height: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.view: RiskView | None = None
        self._worst_cache: dict[str, tuple[str, ...]] = {}
        self._scen_cache: dict[str, tuple[str, ...]] = {}

    def compose(self) -> ComposeResult:
        yield Static("measuring the book's risk…", id="risk-summary")
        worst = DataTable(id="risk-worst", cursor_type="row")
        for key, label in WORST_COLUMNS:
            worst.add_column(label, key=key)
        yield worst
        scen = DataTable(id="risk-scenarios", cursor_type="row")
        for key, label in SCEN_COLUMNS:
            scen.add_column(label, key=key)
        yield scen

    # ------------------------------------------------------------------ data
    async def fetch_view(self, api: Any) -> Any:
        return await api.risk()

    def show(self, v: RiskView) -> None:
        """Paint `v`: summary, worst case per runner (+ total), scenarios (updated in place)."""
        self.view = v
        self.query_one("#risk-summary", Static).update(summary_text(v))
        rows: dict[str, tuple[str, ...]] = {}
        for c in v.worst_cases:
            key = f"{c.strategy} {c.symbol} {c.timeframe}"
            stop = "NONE" if c.unbounded else ("—" if c.stop is None else f"{c.stop:.6g}")
            rows[key] = (f"{c.symbol} {c.timeframe}"[:22], c.side or "—", str(c.levels_to_fill), stop,
                         "UNBOUNDED" if c.unbounded else _usd(c.loss), _usd(c.loss_from_equity))
        rows["~total"] = ("total", "", "", "", "UNBOUNDED" if v.worst_total is None and v.worst_cases
                          else _usd(v.worst_total), _pct(v.worst_total_fraction))
        sync_table(self.query_one("#risk-worst", DataTable), rows, [k for k, _ in WORST_COLUMNS],
                   self._worst_cache)
        srows: dict[str, tuple[str, ...]] = {}
        for s in v.scenarios:
            if not s.available:
                srows[s.name] = (s.name[:20], "n/a", "", "", "", s.reason[:30])
                continue
            srows[s.name] = (s.name[:20], _usd(s.loss), _pct(s.loss_fraction), _usd(s.worst_loss),
                             _pct(s.worst_loss_fraction), s.detail[:30])
        sync_table(self.query_one("#risk-scenarios", DataTable), srows, [k for k, _ in SCEN_COLUMNS],
                   self._scen_cache)

    # ------------------------------------------------------------------ actions
