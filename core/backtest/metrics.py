"""Performance metrics of a backtest, with their formulas.

The ones named in `../shared/specs/envelope_dca.md` ("Outputs") follow that text exactly:
max_drawdown, daily_sharpe, win_rate, profit_factor (and total_return, which the JSON of
`BacktestResult.to_spec_json` computes as final_equity / C0 − 1, the same formula as here).

The others are Radar's own, each defined in its docstring: cagr, daily_sortino, calmar,
expectancy, exposure. `summarize(result)` gathers them all.

Conventions: equity in USDT, returns and drawdowns as fractions (0.1 = 10 %), times ms UTC,
years of 365 days (crypto trades every day, matching the √365 of the Sharpe). A ratio that
is undefined (division by zero) is None, as the spec's profit_factor.
"""

from __future__ import annotations

import math

import numpy as np

DAY_MS = 86_400_000
YEAR_MS = 365 * DAY_MS


def max_drawdown(equity: np.ndarray) -> float:
    """Largest (peak − equity)/peak over the curve, peak = running max from the first point (fraction, >= 0)."""
    eq = np.asarray(equity, dtype=np.float64)
    if eq.size == 0:
        return 0.0
    peak = np.maximum.accumulate(eq)
    return float(np.max((peak - eq) / peak))


def daily_equity(ts: np.ndarray, equity: np.ndarray) -> np.ndarray:
    """Last equity point of each UTC day that has candles (day of the candle's open time), in order."""
    ts = np.asarray(ts, dtype=np.int64)
    eq = np.asarray(equity, dtype=np.float64)
    if ts.size == 0:
        return eq[:0]
    day = ts // DAY_MS
    last_of_day = np.nonzero(np.diff(day) != 0)[0]
    return np.concatenate([eq[last_of_day], eq[-1:]])


def daily_returns(ts: np.ndarray, equity: np.ndarray) -> np.ndarray:
    """Simple returns between the `daily_equity` points: D days give D−1 returns (spec "sharpe")."""
    d = daily_equity(ts, equity)
    if d.size < 2:
        return d[:0]
    return d[1:] / d[:-1] - 1.0


def daily_sharpe(ts: np.ndarray, equity: np.ndarray) -> float:
    """Annualised Sharpe of daily simple returns: mean/std(ddof=1) × √365.

    Days are the UTC days of the candles' open times; days without candles are skipped.
    0.0 when there are fewer than two returns or the std is 0.
    """
    r = daily_returns(ts, equity)
    if r.size < 2:
        return 0.0
    sd = float(np.std(r, ddof=1))
    if sd == 0.0 or not math.isfinite(sd):
        return 0.0
    return float(np.mean(r) / sd * math.sqrt(365.0))


def daily_sortino(ts: np.ndarray, equity: np.ndarray) -> float | None:
    """Annualised Sortino of the daily simple returns r_1 … r_n of `daily_returns`:

        mean(r) / DD × √365,   DD = sqrt( (1/n) · Σ min(r_i, 0)² )

    (downside deviation below a 0 target over all n returns, Sortino & Price 1994).
    0.0 when there are fewer than two returns (as the Sharpe); None when no return is
    negative (DD = 0: the ratio is unbounded).
    """
    r = daily_returns(ts, equity)
    if r.size < 2:
        return 0.0
    downside = np.minimum(r, 0.0)
    dd = math.sqrt(float(np.mean(downside * downside)))
    if dd == 0.0:
        return None
    return float(np.mean(r) / dd * math.sqrt(365.0))


def total_return(initial: float, final: float) -> float:
    """final / initial − 1 (fraction; spec "Outputs")."""
    return float(final / initial - 1.0)


def cagr(initial: float, final: float, start_ms: int, end_ms: int) -> float | None:
    """Compound annual growth rate: (final / initial) ^ (1 / years) − 1, years = (end − start) / 365 d.

    `start_ms`/`end_ms` bound the period traded (for a backtest: the first candle's open
    and the last candle's close). −1.0 when final <= 0 (all lost); None when the period is
    not positive.
    """
    years = (end_ms - start_ms) / YEAR_MS
    if not years > 0:
        return None
    if final <= 0:
        return -1.0
    return float((final / initial) ** (1.0 / years) - 1.0)


def calmar(cagr_value: float | None, max_dd: float) -> float | None:
    """CAGR / max drawdown (both fractions); None when either is undefined or the drawdown is 0."""
    if cagr_value is None or max_dd == 0.0:
        return None
    return float(cagr_value / max_dd)


def win_rate(pnls: np.ndarray) -> float:
    """Share of cycles with pnl > 0 (0 when there is no cycle; pnl == 0 is neither win nor loss)."""
    p = np.asarray(pnls, dtype=np.float64)
    return 0.0 if p.size == 0 else float(np.count_nonzero(p > 0) / p.size)


def profit_factor(pnls: np.ndarray) -> float | None:
    """Sum of positive pnl / −(sum of negative pnl); None when no cycle has pnl < 0."""
    p = np.asarray(pnls, dtype=np.float64)
    neg = p[p < 0]
    if neg.size == 0:
        return None
    return float(p[p > 0].sum() / -neg.sum())


def expectancy(pnls: np.ndarray) -> float:
    """Mean pnl per cycle, USDT: Σ pnl / n_cycles (= win rate × mean win − loss rate × mean
    loss); 0.0 when there is no cycle."""
    p = np.asarray(pnls, dtype=np.float64)
    return 0.0 if p.size == 0 else float(p.sum() / p.size)


def exposure(ts: np.ndarray, cycles) -> float:
    """Share of candles during which a position was open: a candle counts when it lies between
    a cycle's `open_time` and `close_time` candles, both included (so the candles of the first
    fill and of the exit count). Cycles do not overlap. 0.0 for no candle.

    ts: int64 candle open times (ms UTC), sorted; cycles: objects with open_time/close_time.
    """
    ts = np.asarray(ts, dtype=np.int64)
    if ts.size == 0:
        return 0.0
    held = 0
    for cy in cycles:
        first = int(np.searchsorted(ts, cy.open_time, "left"))
        last = int(np.searchsorted(ts, cy.close_time, "right"))
        held += last - first
    return held / ts.size


def summarize(result) -> dict:
    """Every metric of a `core.backtest.result.BacktestResult`, as a dict of plain numbers.

    Keys: n_cycles, final_equity (USDT), total_return, cagr, max_drawdown, sharpe, sortino,
    calmar, win_rate, profit_factor, expectancy (USDT per cycle), exposure; None where a
    metric is undefined. The CAGR period runs from the first candle's open to the last
    candle's close (last open + one timeframe).
    """
    from core.data.timeframes import timeframe_ms

    ts = np.asarray(result.ts, dtype=np.int64)
    eq = np.asarray(result.equity, dtype=np.float64)
    pnls = np.array([c.pnl for c in result.cycles], dtype=np.float64)
    c0 = float(result.account.initial_capital)
    final = float(result.final_equity)
    mdd = max_drawdown(eq)
    growth = None
    if ts.size:
        growth = cagr(c0, final, int(ts[0]), int(ts[-1]) + timeframe_ms(result.timeframe))
    return {
        "n_cycles": len(result.cycles),
        "final_equity": final,
        "total_return": total_return(c0, final),
        "cagr": growth,
        "max_drawdown": mdd,
        "sharpe": daily_sharpe(ts, eq),
        "sortino": daily_sortino(ts, eq),
        "calmar": calmar(growth, mdd),
        "win_rate": win_rate(pnls),
        "profit_factor": profit_factor(pnls),
        "expectancy": expectancy(pnls),
        "exposure": exposure(ts, result.cycles),
    }
