"""Every performance figure of a `PerfInput` as one JSON-able dict: the API's `performance`
query (`core.engine.api.EngineAPI.performance`, typed by `core.api.views.PerformanceView`),
the console's Performance screen and the HTML report read it."""

from __future__ import annotations

from core.backtest import metrics
from core.performance.curves import curves, thin
from core.performance.cycle_stats import per_asset
from core.performance.monthly import monthly_returns
from core.performance.rolling import rolling_sharpe
from core.performance.sources import PerfInput
from core.performance.win_loss import win_loss

#: default rolling Sharpe window (days) and most curve points sent to a chart
WINDOW_DAYS = 30
MAX_POINTS = 2000


def performance(inp: PerfInput, window_days: int = WINDOW_DAYS, max_points: int | None = MAX_POINTS,
                bins: int = 10) -> dict:
    """The figures of `inp`:

    {title, runners, start_ms, end_ms (first/last candle open, ms UTC, None when empty), points
    (equity points), start_equity, final_equity (USDT), total_return (fraction, from
    start_equity), max_drawdown (fraction), sharpe (`metrics.daily_sharpe`),
    curves {ts, equity, drawdown} (thinned to `max_points`, None: all; `curves.thin`),
    monthly [{year, month, ret, end_equity}], rolling_sharpe {window_days, ts, values},
    cycles [CycleStats dicts per asset, then "all"], win_loss (WinLoss dict)}.

    Raises:
        ValueError: window_days < 2, max_points < 3, bins < 1, or a malformed series.
    """
    c = curves(inp.ts, inp.equity)
    shown = c if max_points is None else thin(c, max_points)
    rts, rvals = rolling_sharpe(c.ts, c.equity, window_days)
    pnls = [cy.pnl for cs in inp.cycles.values() for cy in cs]
    n = len(c)
    return {
        "title": inp.title, "runners": list(inp.runners),
        "start_ms": int(c.ts[0]) if n else None, "end_ms": int(c.ts[-1]) if n else None, "points": n,
        "start_equity": float(inp.start_equity), "final_equity": float(c.equity[-1]) if n else float(inp.start_equity),
        "total_return": float(c.equity[-1] / inp.start_equity - 1.0) if n else 0.0,
        "max_drawdown": metrics.max_drawdown(c.equity), "sharpe": metrics.daily_sharpe(c.ts, c.equity),
        "curves": {"ts": shown.ts.tolist(), "equity": shown.equity.tolist(), "drawdown": shown.drawdown.tolist()},
        "monthly": [vars(m) for m in monthly_returns(c.ts, c.equity, inp.start_equity)],
        "rolling_sharpe": {"window_days": int(window_days), "ts": rts.tolist(), "values": rvals.tolist()},
        "cycles": [s.to_dict() for s in per_asset(inp.cycles, inp.span_ms)],
        "win_loss": win_loss(pnls, bins).to_dict(),
    }
