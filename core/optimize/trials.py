"""Effective number of independent trials N_eff, for the Deflated Sharpe Ratio's expected maximum.

The DSR (Bailey & López de Prado 2014, `core.optimize.sharpe_stats.dsr`) deflates the
selected Sharpe by SR0, the expected maximum Sharpe of N *independent* skill-less trials.
Parameter combos of one strategy are far from independent (neighbouring grid points
trade almost the same way), so counting every combo as one trial over-deflates.

Estimator used (`effective_trials`): the average-correlation formula of

* [BLdP 2014] D. H. Bailey, M. López de Prado, "The Deflated Sharpe Ratio: Correcting
  for Selection Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio
  Management 40(5), 2014, Section "The Deflated Sharpe Ratio" (the number of
  independent trials implied by M trials with average pairwise correlation ρ̄):

      N̂ = ρ̄ + (1 − ρ̄) · M

  ρ̄ = 0 gives M (independent trials), ρ̄ = 1 gives 1 (one trial repeated). ρ̄ is the
  mean of the off-diagonal Pearson correlations of the trials' return series (here:
  the daily in-sample returns of every combo in one walk-forward window), clipped to
  [0, 1] (a negative mean correlation of many trials is estimation noise: at most
  −1/(M − 1) is possible), and N̂ is rounded to the nearest integer >= 1 because the
  expected-maximum formula takes a count.

Why this estimator and not López de Prado's ONC clustering (M. López de Prado, M. J.
Lewis, "Detection of false investment strategies using unsupervised learning methods",
Quantitative Finance 19(9), 2019) or an eigenvalue count: it is deterministic, has no
tuning (ONC depends on k-means restarts and a silhouette threshold), costs O(M²·T) once,
and it is the estimator the DSR paper itself gives; on the synthetic check of
`tests/optimize/test_dsr_selection.py` (324 trials, ρ̄ ≈ 0.58) it gives N̂ ≈ 137, the
"effective N near 138" of issue 13. Constant series (a combo that never traded) carry
no correlation information and are left out of ρ̄ but still count in M.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class EffectiveTrials(NamedTuple):
    """Outcome of `effective_trials`.

    Attributes:
        n_trials: M, the trials counted.
        mean_correlation: ρ̄ used (after clipping to [0, 1]); NaN when fewer than 2
            non-constant series.
        n_eff: N̂ = round(ρ̄ + (1 − ρ̄)·M), an integer in [1, M] (M when ρ̄ is NaN).
    """

    n_trials: int
    mean_correlation: float
    n_eff: int


def mean_pairwise_correlation(returns: np.ndarray) -> float:
    """Mean off-diagonal Pearson correlation of the columns of `returns` (T×M).

    Constant columns are dropped. Returns NaN with fewer than 2 non-constant columns
    or fewer than 3 rows. Computed as (‖Σ_j z_j‖² − Σ_j ‖z_j‖²) / (M(M − 1)) on the
    standardised columns z_j, O(T·M) memory, no M×M matrix.
    """
    x = np.asarray(returns, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"returns must be a 2-D array (rows = periods, columns = trials), got shape {x.shape}")
    if x.shape[0] < 3:
        return float("nan")
    x = x[:, np.all(np.isfinite(x), axis=0)]
    sd = x.std(axis=0)
    x = x[:, sd > 0.0]
    m = x.shape[1]
    if m < 2:
        return float("nan")
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    total = z.sum(axis=1)
    t = z.shape[0]
    # Σ_{i≠j} corr_ij = (‖Σ z‖² − Σ‖z_j‖²) / T, with ‖z_j‖² = T
    off = (float(total @ total) - t * m) / t
    return off / (m * (m - 1))


def n_eff_from_correlation(n_trials: int, rho: float) -> int:
    """N̂ = round(ρ̄ + (1 − ρ̄)·M) of [BLdP 2014], ρ̄ clipped to [0, 1]; M when ρ̄ is NaN."""
    m = int(n_trials)
    if m < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials!r}")
    if not np.isfinite(rho):
        return m
    r = min(1.0, max(0.0, float(rho)))
    return int(min(m, max(1, round(r + (1.0 - r) * m))))


def effective_trials(returns: np.ndarray) -> EffectiveTrials:
    """N_eff of the M trials whose return series are the columns of `returns` (T×M).

    See the module docstring: N̂ = ρ̄ + (1 − ρ̄)·M ([BLdP 2014]).
    """
    x = np.asarray(returns, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"returns must be a 2-D array (rows = periods, columns = trials), got shape {x.shape}")
    m = int(x.shape[1])
    rho = mean_pairwise_correlation(x)
    rho_used = float("nan") if not np.isfinite(rho) else min(1.0, max(0.0, rho))
    return EffectiveTrials(n_trials=m, mean_correlation=rho_used, n_eff=n_eff_from_correlation(max(m, 1), rho))
