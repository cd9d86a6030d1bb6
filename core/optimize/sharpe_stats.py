"""Probabilistic Sharpe Ratio (PSR), Deflated Sharpe Ratio (DSR) and the expected maximum Sharpe.

Every Sharpe ratio here is **per period, not annualised**: mean / standard
deviation of the returns at their own frequency (per cycle, per day, ...). An
annualised Sharpe `SR_a` over `q` periods a year is `SR_a / sqrt(q)` per
period, and a variance of annualised Sharpe ratios `V_a` is `V_a / q` per period.

Sources:

* [BLdP 2012] D. H. Bailey, M. López de Prado, "The Sharpe Ratio Efficient
  Frontier", Journal of Risk 15(2), 2012, Section 3 "Probabilistic Sharpe
  Ratio": PSR(SR*) = Φ[(SR̂ − SR*)·√(T − 1) / √(1 − γ3·SR̂ + (γ4 − 1)/4·SR̂²)].
* [BLdP 2014] D. H. Bailey, M. López de Prado, "The Deflated Sharpe Ratio:
  Correcting for Selection Bias, Backtest Overfitting and Non-Normality",
  Journal of Portfolio Management 40(5), 2014, pp. 94–107, Section "The
  Deflated Sharpe Ratio" (DSR = PSR(SR0), SR0 from the expected maximum of N
  trials) and Section "A numerical example".

The equations are written out in full in each docstring because their numbers
differ between the SSRN preprints and the journal versions.
"""

from __future__ import annotations

import math
import numbers
from statistics import NormalDist
from typing import NamedTuple

import numpy as np

#: Euler–Mascheroni constant γ used by the expected-maximum approximation [BLdP 2014].
EULER_MASCHERONI = 0.5772156649015329

_STD_NORMAL = NormalDist()


def _real(name: str, value: object) -> float:
    """`value` as a finite float, else ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out!r}")
    return out


def _count(name: str, value: object, minimum: int) -> int:
    """`value` as an int >= `minimum`, else ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    out = int(value)
    if out < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {out}")
    return out


def psr(sr: float, t: int, skew: float, kurt: float, sr_benchmark: float = 0.0) -> float:
    """Probabilistic Sharpe Ratio: the probability that the true Sharpe exceeds `sr_benchmark`.

    Formula ([BLdP 2012], Section 3; restated in [BLdP 2014]):

        PSR(SR*) = Φ( (SR̂ − SR*) · √(T − 1) / √(1 − γ3·SR̂ + (γ4 − 1)/4 · SR̂²) )

    with Φ the standard normal CDF. For normal returns (γ3 = 0, γ4 = 3) the
    denominator is √(1 + SR̂²/2), the Lo (2002) standard error.

    Args:
        sr: observed Sharpe ratio SR̂, per period (NOT annualised).
        t: number of returns T the Sharpe was measured on (integer >= 2).
        skew: skewness γ3 of those returns.
        kurt: RAW kurtosis γ4 of those returns (3 for a normal distribution;
            NOT excess kurtosis). Must satisfy γ4 >= 1 + γ3² (Pearson's
            inequality, true of every distribution and of the moment
            estimators of `sharpe_moments`).
        sr_benchmark: the benchmark SR*, per period, same periodicity as `sr`.

    Returns:
        A probability in [0, 1] (a float).

    Raises:
        ValueError: an argument is not a finite real number, `t` is not an
            integer >= 2, `kurt` < 1 + skew² (often: excess kurtosis passed
            instead of raw kurtosis), or the variance term
            1 − γ3·SR̂ + (γ4 − 1)/4·SR̂² is not > 0.
    """
    sr = _real("sr", sr)
    t = _count("t", t, 2)
    skew = _real("skew", skew)
    kurt = _real("kurt", kurt)
    sr_benchmark = _real("sr_benchmark", sr_benchmark)
    if kurt < 1.0 + skew * skew - 1e-9:
        raise ValueError(f"kurt must be the raw kurtosis (3 for a normal distribution, not excess "
                         f"kurtosis) and >= 1 + skew² = {1.0 + skew * skew:g}; got {kurt:g}")
    var_term = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
    if not var_term > 0.0:
        raise ValueError(f"sr, skew, kurt give a non-positive variance term 1 - skew*sr + (kurt-1)/4*sr² "
                         f"= {var_term:g} (sr={sr:g}, skew={skew:g}, kurt={kurt:g})")
    z = (sr - sr_benchmark) * math.sqrt(t - 1) / math.sqrt(var_term)
    return _STD_NORMAL.cdf(z)


def expected_max_sharpe(n_trials: int, var_sharpes: float) -> float:
    """SR0: the expected maximum Sharpe of `n_trials` skill-less trials ([BLdP 2014]).

    Formula ([BLdP 2014], Section "The Deflated Sharpe Ratio", from the
    False Strategy theorem of Bailey, Borwein, López de Prado & Zhu 2014):

        SR0 = √V[SR_n] · ( (1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e)) )

    with γ ≈ 0.5772156649 (Euler–Mascheroni), Φ⁻¹ the standard normal
    quantile, e Euler's number. N = 1 (no selection) returns 0.0, where the
    formula is undefined (Φ⁻¹(0) = −∞): the expected Sharpe of one skill-less
    trial.

    Args:
        n_trials: N, the number of trials actually tested (integer >= 1).
        var_sharpes: V[SR_n], the variance across the trials of their Sharpe
            ratios (>= 0), in the SAME periodicity as the Sharpe that will be
            compared to SR0 (per period: a variance of annualised Sharpes over
            q periods a year divided by q).

    Returns:
        SR0, a per-period Sharpe in the units of √var_sharpes (>= 0).

    Raises:
        ValueError: `n_trials` is not an integer >= 1, or `var_sharpes` is
            not a finite number >= 0.
    """
    n = _count("n_trials", n_trials, 1)
    var = _real("var_sharpes", var_sharpes)
    if var < 0.0:
        raise ValueError(f"var_sharpes must be >= 0 (a variance), got {var:g}")
    if n == 1:
        return 0.0
    g = EULER_MASCHERONI
    z = (1.0 - g) * _STD_NORMAL.inv_cdf(1.0 - 1.0 / n) + g * _STD_NORMAL.inv_cdf(1.0 - 1.0 / (n * math.e))
    return math.sqrt(var) * z


def dsr(sr: float, t: int, skew: float, kurt: float, n_trials: int, var_sharpes: float) -> float:
    """Deflated Sharpe Ratio: PSR against the Sharpe that selection alone would produce.

    Formula ([BLdP 2014], Section "The Deflated Sharpe Ratio"):

        DSR = PSR(SR0) = Φ( (SR̂ − SR0) · √(T − 1) / √(1 − γ3·SR̂ + (γ4 − 1)/4 · SR̂²) )
        SR0 = √V[SR_n] · ( (1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e)) )

    See `psr` and `expected_max_sharpe`. Paper example ([BLdP 2014], "A
    numerical example"): SR̂ = 2.5/√250, T = 1250, γ3 = −3, γ4 = 10, N = 100,
    V = 0.5/250 give SR0 ≈ 0.1132 and DSR ≈ 0.9004.

    Args:
        sr: SR̂ of the selected trial, per period (NOT annualised).
        t: number of returns T behind `sr` (integer >= 2).
        skew: skewness γ3 of the selected trial's returns.
        kurt: RAW kurtosis γ4 of those returns (3 for a normal distribution).
        n_trials: N, the number of trials tested to select it (integer >= 1).
        var_sharpes: variance of the N trials' Sharpe ratios, per period (same
            periodicity as `sr`).

    Returns:
        A probability in [0, 1]; >= 0.95 is the paper's significance level.

    Raises:
        ValueError: as `psr` and `expected_max_sharpe`.
    """
    return psr(sr, t, skew, kurt, sr_benchmark=expected_max_sharpe(n_trials, var_sharpes))


class SharpeMoments(NamedTuple):
    """Inputs of `psr` / `dsr` estimated from one return series.

    Attributes:
        sr: per-period Sharpe ratio (not annualised).
        t: number of returns.
        skew: skewness γ3.
        kurt: raw kurtosis γ4 (3 for a normal distribution).
    """

    sr: float
    t: int
    skew: float
    kurt: float


def sharpe_moments(returns: np.ndarray) -> SharpeMoments:
    """Per-period Sharpe, count, skewness and raw kurtosis of a return series.

    Estimators, with r̄ the mean and m_k = (1/T)·Σ(r_i − r̄)^k:

        sr   = r̄ / s,  s = √( Σ(r_i − r̄)² / (T − 1) )      (sample std, ddof = 1)
        skew = m3 / m2^(3/2)                                (moment estimator, biased)
        kurt = m4 / m2²                                     (raw, biased; 3 for a normal)

    the estimators of López de Prado's reference code (pandas std,
    scipy.stats skew / kurtosis(fisher=False) with bias=True). The moment
    estimators always satisfy kurt >= 1 + skew², so the result is valid
    input for `psr`. No risk-free rate is subtracted: pass excess returns if
    one applies.

    Args:
        returns: 1-D array of T >= 3 simple returns as fractions (0.01 = 1 %),
            one per period, all finite.

    Returns:
        `SharpeMoments(sr, t, skew, kurt)`.

    Raises:
        ValueError: `returns` is not 1-D, has fewer than 3 values, holds a
            NaN or infinity, or is constant (standard deviation 0).
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"returns must be a 1-D array, got shape {r.shape}")
    if r.size < 3:
        raise ValueError(f"returns must hold at least 3 values, got {r.size}")
    if not np.all(np.isfinite(r)):
        bad = int(np.count_nonzero(~np.isfinite(r)))
        raise ValueError(f"returns must be finite; {bad} value(s) are NaN or infinite")
    if float(np.ptp(r)) == 0.0:
        raise ValueError("returns are constant (standard deviation 0): the Sharpe ratio is undefined")
    dev = r - r.mean()
    m2 = float(np.mean(dev**2))
    sd = math.sqrt(m2 * r.size / (r.size - 1))
    skew = float(np.mean(dev**3)) / m2**1.5
    kurt = float(np.mean(dev**4)) / m2**2
    return SharpeMoments(sr=float(r.mean()) / sd, t=int(r.size), skew=skew, kurt=kurt)


class SelectionDSR(NamedTuple):
    """DSR of one selection: the in-sample best of M trials against those trials (`selection_dsr`).

    Attributes:
        dsr: DSR = PSR(SR0) of the chosen trial, a probability.
        sr, t, skew, kurt: the chosen trial's per-period Sharpe, length and moments.
        n_trials: M, the trials the choice was made among.
        n_eff: the effective number of independent trials used as N (`core.optimize.trials`).
        mean_correlation: ρ̄ behind n_eff (NaN when it could not be estimated).
        var_sharpes: V, sample variance (ddof 1) of the M trials' per-period Sharpes.
        sr0: the expected maximum Sharpe SR0 of n_eff trials with that V.
    """

    dsr: float
    sr: float
    t: int
    skew: float
    kurt: float
    n_trials: int
    n_eff: int
    mean_correlation: float
    var_sharpes: float
    sr0: float


def selection_dsr(chosen_returns: np.ndarray, trial_sharpes: np.ndarray, n_eff: int | None = None, *,
                  correlation_returns: np.ndarray | None = None) -> SelectionDSR:
    """DSR where the choice is made: the chosen trial's Sharpe against the trials it was chosen from.

    [BLdP 2014] deflate the Sharpe of the trial *selected* as the best of N trials on
    the data the selection saw. In a walk-forward that is each window's in-sample
    search: the chosen combo's in-sample returns (`chosen_returns`, T periods), the
    per-period in-sample Sharpes of all M combos of that search (`trial_sharpes`, for
    V = their sample variance, ddof 1) and an effective number of independent trials
    N (`core.optimize.trials`): `n_eff` when given, else N̂ = ρ̄ + (1 − ρ̄)·M of [BLdP 2014]
    with ρ̄ the mean pairwise correlation of the columns of `correlation_returns` (the
    trials' in-sample return series, all M of them or a random subset: ρ̄ is a mean, a
    subset estimates it without bias) and M = len(trial_sharpes):

        DSR = Φ( (SR̂ − SR0) · √(T − 1) / √(1 − γ3·SR̂ + (γ4 − 1)/4 · SR̂²) )
        SR0 = √V · ( (1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e)) ),   N = n_eff

    Raises:
        ValueError: `chosen_returns` are unusable (`sharpe_moments`), no trial Sharpe, a
            non-finite Sharpe, `n_eff` < 1, or neither `n_eff` nor `correlation_returns`.
    """
    from core.optimize.trials import mean_pairwise_correlation, n_eff_from_correlation

    mom = sharpe_moments(chosen_returns)
    s = np.asarray(trial_sharpes, dtype=np.float64)
    if s.ndim != 1 or s.size < 1:
        raise ValueError(f"trial_sharpes must be a non-empty 1-D array, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("trial_sharpes must be finite")
    rho = float("nan")
    if n_eff is None:
        if correlation_returns is None:
            raise ValueError("give n_eff or correlation_returns")
        rho = mean_pairwise_correlation(correlation_returns)
        n_eff = n_eff_from_correlation(int(s.size), rho)
        rho = rho if not math.isfinite(rho) else min(1.0, max(0.0, rho))
    n = _count("n_eff", n_eff, 1)
    var = float(np.var(s, ddof=1)) if s.size >= 2 else 0.0
    sr0 = expected_max_sharpe(n, var)
    value = psr(mom.sr, mom.t, mom.skew, mom.kurt, sr_benchmark=sr0)
    return SelectionDSR(dsr=value, sr=mom.sr, t=mom.t, skew=mom.skew, kurt=mom.kurt, n_trials=int(s.size),
                        n_eff=n, mean_correlation=rho, var_sharpes=var, sr0=sr0)


def combine_selection_dsr(values: list[SelectionDSR]) -> float:
    """The walk-forward's DSR: the mean of the per-window `selection_dsr` values.

    Each window is one application of [BLdP 2014]'s test (one selection, its own
    trials); the mean is the expected DSR of one selection made by this procedure.
    Pooling the windows' returns into one longer T is not done: the in-sample periods
    of consecutive windows overlap (IS 180 d, step 60 d: each day lies in three) and
    each window has its own winner, so a pooled T would count the same evidence several
    times and mix different selected trials.

    Raises:
        ValueError: `values` is empty.
    """
    if not values:
        raise ValueError("no window DSR to combine")
    return float(np.mean([v.dsr for v in values]))
