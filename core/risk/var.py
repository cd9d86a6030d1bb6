"""Value at Risk and CVaR (expected shortfall) of the book, historical and Monte Carlo.

Inputs: the runners' joint daily returns — per runner the simple return of its equity between
the last equity points of consecutive UTC days (the days any runner has points; a runner
without a point on a day keeps its previous equity, return 0) — and the exposure of each
runner now, its equity in USDT. A day's P&L of the book is Σ_i E_i · r_{i,d}.

* Historical: the P&L of the book on each past day (Jorion, *Value at Risk*, 3rd ed., ch. 10,
  historical simulation).
* Monte Carlo: `n_paths` days drawn from a multivariate normal with the sample mean and
  covariance (ddof 1) of the joint returns (Jorion ch. 12, "Monte Carlo methods"), seeded
  (`numpy.random.default_rng(seed)`), so a report is repeatable.

Both use the same estimator on the n P&L outcomes, sorted ascending (worst first), with
k = ⌈n·(1 − α)⌉:

    VaR_α  = −P&L_(k)                       (the k-th worst day; Jorion ch. 5)
    CVaR_α = −(1/k)·Σ_{j≤k} P&L_(j)        (the mean of the k worst; Acerbi & Tasche, "On the
                                             coherence of expected shortfall", J. Banking &
                                             Finance 26 (2002), eq. for the sample ES)

so CVaR_α ≥ VaR_α. Figures are losses in USDT (positive = a loss) over one day, and as a
fraction of the book's equity now.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from core.errors import RadarError

DAY_MS = 86_400_000
#: confidence levels reported
LEVELS = (0.95, 0.99)


@dataclass(frozen=True)
class VarFigure:
    """One (method, level) figure. var/cvar: USDT one-day losses; var_fraction/cvar_fraction: of
    the equity (fractions, 0.05 = 5 %)."""

    method: str
    level: float
    var: float
    cvar: float
    var_fraction: float
    cvar_fraction: float


@dataclass(frozen=True)
class VarReport:
    """VaR/CVaR of the book. figures: historical then Monte Carlo, each level; days: daily
    returns used; available False (figures empty) with `reason` when fewer than
    `MIN_RETURNS` returns exist; mc: how the Monte Carlo drew (method, paths, seed)."""

    equity: float
    days: int
    available: bool
    figures: tuple[VarFigure, ...] = ()
    reason: str = ""
    mc: dict = field(default_factory=dict)

    def get(self, method: str, level: float) -> VarFigure | None:
        """The figure of `method` ("historical" | "monte_carlo") at `level` (e.g. 0.99)."""
        return next((f for f in self.figures if f.method == method and abs(f.level - level) < 1e-12), None)


#: fewest daily returns for a VaR (the covariance needs 2; fewer days say nothing)
MIN_RETURNS = 5


def daily_equity_returns(series: Mapping[str, tuple[Sequence[int], Sequence[float]]],
                         lookback_days: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The runners' joint daily returns.

    Args:
        series: label -> (ts ms UTC ascending, equity USDT) of each runner's equity points.
        lookback_days: keep only the newest this many returns (None: all).

    Returns:
        (days (D,) int UTC day numbers of the returns' end days, R (D, n) simple returns,
        labels (n,)): column j is runner labels[j].
    """
    labels = list(series)
    closing: list[dict[int, float]] = []
    all_days: set[int] = set()
    for label in labels:
        ts, eq = series[label]
        d: dict[int, float] = {}
        for t, e in zip(ts, eq):
            d[int(t) // DAY_MS] = float(e)          # ascending ts: the day's last point wins
        closing.append(d)
        all_days.update(d)
    days = sorted(all_days)
    if len(days) < 2 or not labels:
        return np.zeros(0, dtype=np.int64), np.zeros((0, len(labels))), labels
    level = np.full((len(days), len(labels)), np.nan)
    for j, d in enumerate(closing):
        prev = math.nan
        for i, day in enumerate(days):
            prev = d.get(day, prev)
            level[i, j] = prev
    with np.errstate(divide="ignore", invalid="ignore"):
        r = level[1:] / level[:-1] - 1.0
    r = np.where(np.isfinite(r), r, 0.0)            # before a runner's first point, or a 0 equity
    out_days = np.asarray(days[1:], dtype=np.int64)
    if lookback_days is not None and len(out_days) > lookback_days:
        out_days, r = out_days[-lookback_days:], r[-lookback_days:]
    return out_days, r, labels


def tail(pnl: np.ndarray, level: float) -> tuple[float, float]:
    """(VaR, CVaR) at confidence `level` of the P&L outcomes `pnl` (USDT, gains positive): the
    estimator of the module docstring. Returns losses (positive = a loss).

    Raises:
        RadarError: no outcome, or a level outside (0, 1).
    """
    if not 0.0 < level < 1.0:
        raise RadarError(f"VaR level must be in (0, 1), got {level!r}")
    x = np.sort(np.asarray(pnl, dtype=np.float64))
    if x.size == 0:
        raise RadarError("VaR of no outcome")
    k = max(1, math.ceil(x.size * (1.0 - level) - 1e-9))
    return float(-x[k - 1]), float(-x[:k].mean())


def book_var(returns: np.ndarray, exposure: np.ndarray, equity: float, *, levels: Sequence[float] = LEVELS,
             n_paths: int = 20_000, seed: int = 7) -> VarReport:
    """Historical and Monte Carlo VaR/CVaR of a book (see the module docstring).

    Args:
        returns: (D, n) joint daily returns (fractions) of the n runners.
        exposure: (n,) each runner's equity now, USDT.
        equity: the book's equity now, USDT (the fractions' denominator).
        levels: confidence levels, e.g. (0.95, 0.99).
        n_paths, seed: Monte Carlo draws and the generator's seed.

    Raises:
        RadarError: shapes that do not match.
    """
    r = np.asarray(returns, dtype=np.float64)
    e = np.asarray(exposure, dtype=np.float64)
    if r.ndim != 2 or e.shape != (r.shape[1],):
        raise RadarError(f"returns {r.shape} and exposure {e.shape} do not match")
    mc = {"method": "multivariate normal on the sample mean and covariance of the joint daily returns",
          "paths": int(n_paths), "seed": int(seed)}
    days = int(r.shape[0])
    if days < MIN_RETURNS:
        return VarReport(float(equity), days, False, reason=f"{days} daily return(s) in the history; "
                                                            f"at least {MIN_RETURNS} needed", mc=mc)
    hist = r @ e
    mean = r.mean(axis=0)
    cov = np.atleast_2d(np.cov(r, rowvar=False, ddof=1))
    rng = np.random.default_rng(seed)
    sims = rng.multivariate_normal(mean, cov, size=int(n_paths), method="eigh") @ e
    figs = []
    den = float(equity) if equity else math.nan
    for method, pnl in (("historical", hist), ("monte_carlo", sims)):
        for lv in levels:
            v, c = tail(pnl, lv)
            figs.append(VarFigure(method, float(lv), v, c, v / den, c / den))
    return VarReport(float(equity), days, True, tuple(figs), mc=mc)
