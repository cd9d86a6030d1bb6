"""Capital-allocation policies: the weights of the runners from their daily returns (issue 14).

Pure functions, no engine state: `daily_closes` / `returns_matrix` build the returns every
policy reads, `policy_weights` turns them (or the config's fixed weights, or the research
scores) into weights. The runtime (`core.risk.allocation_runtime.Allocator`) turns weights into
capital targets; the config is `core.config.allocation.AllocationConfig`.

Returns: the DAILY SIMPLE RETURNS OF EACH RUNNER'S SYMBOL CLOSES (the close of the last candle
of each complete UTC day in the runner's candle history), not of the runner's equity. Why:
a runner's equity curve is flat while it is between cycles and jumps at every capital transfer,
so its returns say little about the risk it takes when it trades, and a new runner has none;
the closes exist from the first day, are the same in replay, paper and live, and a test can
rebuild them from the data files alone. Only days present in every runner's history are used
(inner join), the last `lookback_days` returns of them; the UTC day in progress is left out.

Library: skfolio (https://skfolio.org), chosen over riskfolio-lib and PyPortfolioOpt because it
has every policy we need as an estimator on the same returns matrix (`InverseVolatility`,
`RiskBudgeting` for risk parity, `MeanRisk` for the Kelly utility), is actively maintained,
scikit-learn shaped (fit(X).weights_), and solves with CLARABEL through cvxpy (no licensed
solver). `equal` and `grade` need no optimisation (1/N, and scores normalised).

Policies (weights w >= 0, sum(w) <= 1; the rest of the account stays unallocated):

* equal: w_i = 1/N (what skfolio's `EqualWeighted` gives).
* fixed: the config's weights, as given.
* grade: w_i = s_i / sum(s), s_i the research score (0-100) of the runner's latest stored
  optimisation result (`core.optimize.results_store`); a runner without one scores 0. All
  zero: every weight 0 (nothing allocated: fail closed).
* inverse_volatility: skfolio `InverseVolatility` (w_i proportional to 1/sigma_i).
* risk_parity: skfolio `RiskBudgeting(risk_measure=VARIANCE)`: equal risk contributions
  on the sample covariance.
* kelly: fractional Kelly with a cap: skfolio `MeanRisk(MAXIMIZE_UTILITY, VARIANCE,
  risk_aversion=1/(2f))`, i.e. max mu'w - w'Sigma w / (2f) whose unconstrained optimum is
  f * Sigma^-1 mu (Thorp, "The Kelly criterion in blackjack, sports betting and the stock
  market", 2006, the continuous approximation), long only, w_i <= kelly_cap, sum(w) <= 1.

Errors: `AllocationError` (a `RadarError`) when the library fails or gives non-finite weights.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import numpy as np

from core.errors import RadarError

DAY_MS = 86_400_000


class AllocationError(RadarError):
    """The weights of a policy could not be computed (the message says which policy and why)."""


def daily_closes(ts: Sequence[int], close: Sequence[float], before_ms: int, max_days: int) -> dict[int, float]:
    """The close of the last candle of each UTC day before the day of `before_ms`.

    Args:
        ts: candle open times, ms UTC, ascending. close: their closes (same length).
        before_ms: ms UTC; the day containing it (in progress) and later days are left out.
        max_days: keep at most this many of the most recent days.

    Returns:
        day number (ms UTC // 86 400 000) -> close, for at most `max_days` days; non-finite or
        non-positive closes are skipped.
    """
    end_day = int(before_ms) // DAY_MS
    i = bisect.bisect_left(ts, end_day * DAY_MS) - 1
    out: dict[int, float] = {}
    while i >= 0 and len(out) < max_days:
        day = int(ts[i]) // DAY_MS
        c = float(close[i])
        if day not in out and math.isfinite(c) and c > 0:
            out[day] = c
            # jump to the last candle of the previous day
            i = bisect.bisect_left(ts, day * DAY_MS, 0, i) - 1
            continue
        i -= 1
    return out


def returns_matrix(closes: Sequence[dict[int, float]], lookback_days: int) -> tuple[list[int], np.ndarray]:
    """Daily simple returns of several series on their common days.

    Args:
        closes: per runner, day -> close (`daily_closes`).
        lookback_days: at most this many returns (the most recent).

    Returns:
        (days, R): the days whose return is in R (the day of each row's later close), and R of
        shape (T, N), R[t, i] = close_i(day_t) / close_i(previous common day) - 1, T <= lookback_days
        (T = 0 when fewer than two common days).
    """
    if not closes:
        return [], np.zeros((0, 0))
    common = set(closes[0])
    for c in closes[1:]:
        common &= set(c)
    days = sorted(common)[-(lookback_days + 1):]
    if len(days) < 2:
        return [], np.zeros((0, len(closes)))
    px = np.array([[c[d] for c in closes] for d in days], dtype=np.float64)
    return days[1:], px[1:] / px[:-1] - 1.0


def fixed_weights(labels: Sequence[tuple[str, str]], weights: dict[str, float]) -> np.ndarray:
    """The config's fixed weights of runners (strategy, symbol): "strategy@symbol" first, then
    "symbol"; a runner named by neither gets 0."""
    out = []
    for strategy, symbol in labels:
        w = weights.get(f"{strategy}@{symbol}")
        if w is None:
            w = weights.get(symbol, 0.0)
        out.append(float(w))
    return np.array(out, dtype=np.float64)


def grade_weights(scores: Sequence[float | None]) -> np.ndarray:
    """Weights proportional to the research scores (0-100; None / nan / negative count as 0);
    all zero when no runner has a positive score (nothing allocated)."""
    s = np.array([0.0 if x is None or not math.isfinite(x) or x < 0 else float(x) for x in scores])
    total = s.sum()
    return s / total if total > 0 else np.zeros_like(s)


def policy_weights(policy: str, returns: np.ndarray, *, n: int, fixed: np.ndarray | None = None,
                   scores: Sequence[float | None] | None = None, kelly_fraction: float = 0.5,
                   kelly_cap: float = 1.0) -> np.ndarray:
    """The weights of `policy` (module docstring) for `n` runners.

    Args:
        policy: one of `core.config.allocation.POLICIES`.
        returns: (T, n) daily simple returns (`returns_matrix`); read by inverse_volatility,
            risk_parity and kelly (T >= 2).
        n: number of runners. fixed: the fixed weights (policy fixed). scores: the research
            scores (policy grade). kelly_fraction: f in (0, 1]. kelly_cap: highest weight.

    Returns:
        float64 array of shape (n,), each in [0, 1], sum <= 1 (+1e-9).

    Raises:
        AllocationError: unknown policy, missing input, a library failure or non-finite weights.
    """
    if n <= 0:
        return np.zeros(0)
    if policy == "equal":
        w = np.full(n, 1.0 / n)
    elif policy == "fixed":
        if fixed is None or len(fixed) != n:
            raise AllocationError("policy fixed: no fixed weight per runner")
        w = np.asarray(fixed, dtype=np.float64)
    elif policy == "grade":
        if scores is None or len(scores) != n:
            raise AllocationError("policy grade: no research score per runner")
        w = grade_weights(scores)
    elif policy in ("inverse_volatility", "risk_parity", "kelly"):
        x = np.asarray(returns, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != n or x.shape[0] < 2 or not np.isfinite(x).all():
            raise AllocationError(f"policy {policy}: need finite daily returns of shape (T >= 2, {n}), "
                                  f"got {x.shape}")
        try:
            w = _skfolio_weights(policy, x, kelly_fraction, kelly_cap)
        except AllocationError:
            raise
        except Exception as exc:  # the solver or the estimator failed: the caller keeps its targets
            raise AllocationError(f"policy {policy}: skfolio failed: {type(exc).__name__}: {exc}") from exc
    else:
        raise AllocationError(f"unknown allocation policy {policy!r}")
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (n,) or not np.isfinite(w).all():
        raise AllocationError(f"policy {policy}: non-finite weights {w.tolist()}")
    w = np.clip(w, 0.0, 1.0)
    total = float(w.sum())
    if total > 1.0:
        w = w / total
    return w


def skfolio_model(policy: str, kelly_fraction: float = 0.5, kelly_cap: float = 1.0):
    """The (unfitted) skfolio estimator of `policy` (inverse_volatility, risk_parity, kelly),
    exactly as `policy_weights` fits it (tests call the library with it directly)."""
    from skfolio import RiskMeasure
    from skfolio.optimization import InverseVolatility, MeanRisk, ObjectiveFunction, RiskBudgeting

    if policy == "inverse_volatility":
        return InverseVolatility()
    if policy == "risk_parity":
        return RiskBudgeting(risk_measure=RiskMeasure.VARIANCE)
    if policy == "kelly":
        return MeanRisk(objective_function=ObjectiveFunction.MAXIMIZE_UTILITY, risk_measure=RiskMeasure.VARIANCE,
                        risk_aversion=1.0 / (2.0 * kelly_fraction), min_weights=0.0, max_weights=kelly_cap,
                        budget=None, max_budget=1.0)
    raise AllocationError(f"policy {policy!r} has no skfolio model")


def _skfolio_weights(policy: str, x: np.ndarray, kelly_fraction: float, kelly_cap: float) -> np.ndarray:
    if np.any(x.std(axis=0) == 0.0):
        raise AllocationError(f"policy {policy}: a runner's returns have zero variance over the lookback")
    return np.asarray(skfolio_model(policy, kelly_fraction, kelly_cap).fit(x).weights_, dtype=np.float64)
