"""Probability of Backtest Overfitting (PBO) by combinatorially symmetric cross-validation (CSCV).

Source: D. H. Bailey, J. M. Borwein, M. López de Prado, Q. J. Zhu, "The
Probability of Backtest Overfitting", Journal of Computational Finance 20(4),
2017 (SSRN 2326253, 2013–2015), Section 2 "The CSCV procedure", steps 1–6:

1. M is a T×N performance matrix: rows are time (here: time blocks or
   walk-forward windows), columns the N trials (parameter combos).
2. Split the rows into S contiguous submatrices M_s (S even).
3. Form every combination c of S/2 submatrices: the training set J_c (rows of
   the chosen submatrices, in time order) and its complement, the testing set
   J̄_c. Both J_c and J̄_c appear as training sets: the symmetry of CSCV.
4. For each c: the performance of every trial on J_c and on J̄_c; n* = the
   trial with the best in-sample (J_c) performance; r̄ = the rank of n*'s
   out-of-sample performance among the N trials (1 = worst, N = best);
   relative rank ω̄_c = r̄ / (N + 1) ∈ (0, 1); logit λ_c = ln(ω̄_c / (1 − ω̄_c)).
5. λ_c > 0: the in-sample winner beats the out-of-sample median.
6. PBO = ∫_{−∞}^{0} f(λ) dλ, estimated as the share of combinations with λ_c <= 0.

Choices made here:

* Performance of a trial on a set of rows: `metric="mean"` (default) is the
  mean of its rows — right when each row already is a performance figure of
  one block or window (its return, its Sharpe); `metric="sharpe"` is
  mean / std (ddof = 1) of its rows — the paper's setting, rows being
  per-period returns.
* Rows are split with `numpy.array_split`: S contiguous blocks whose sizes
  differ by at most one row when S does not divide T.
* Ties, compared with a tolerance: two performances a, b of one combination's half
  are tied when |a − b| <= tie_rtol · max_j |perf_j| (the largest finite magnitude
  among the N trials on that half; default tie_rtol = 1e-12; infinities tie only with
  themselves). Sharpes equal in exact arithmetic but computed from differently
  ordered sums differ by ~1e-16 relative, and without a tolerance such 1e-17 noise
  changed 3,828 of 12,870 logits on BTC (issue 13). n* is the first trial (lowest
  column index) tied with the best in-sample performance; a tied out-of-sample rank is
  the average rank of the tie: ω̄ = (#below + (#tied + 1)/2) / (N + 1), #tied counting
  n* and every trial tied with it.
* S defaults to 16, or to the largest even number <= T when T < 16.
* When C(S, S/2) exceeds `max_combinations`, a seeded random sample of
  max_combinations/2 distinct combinations is drawn together with their
  complements (so the sample stays symmetric); `PBOResult.sampled` says so.
"""

from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass
from typing import Literal

import numpy as np

#: Default number of submatrices S.
DEFAULT_SUBMATRICES = 16

#: Default cap on the number of combinations evaluated (C(16, 8) = 12,870 fits).
DEFAULT_MAX_COMBINATIONS = 20_000

#: Default relative tolerance under which two performances count as tied.
TIE_RTOL = 1e-12

#: Values gathered per chunk (bounds memory: 8 bytes each).
_CHUNK_VALUES = 4_000_000


@dataclass(frozen=True, eq=False)
class PBOResult:
    """Outcome of `pbo`.

    Attributes:
        pbo: share of combinations whose logit λ <= 0, in [0, 1].
        logits: shape (C,), λ_c = ln(ω̄_c / (1 − ω̄_c)) per combination c.
        relative_ranks: shape (C,), ω̄_c = OOS rank of the IS-best trial / (N + 1).
        is_performance: shape (C,), in-sample performance of the IS-best trial.
        oos_performance: shape (C,), out-of-sample performance of that trial
            (against `is_performance`: the paper's performance degradation).
        n_submatrices: S used.
        n_combinations: C evaluated (C(S, S/2), or the sample size).
        sampled: True when the combinations are a random sample, not all C(S, S/2).
    """

    pbo: float
    logits: np.ndarray
    relative_ranks: np.ndarray
    is_performance: np.ndarray
    oos_performance: np.ndarray
    n_submatrices: int
    n_combinations: int
    sampled: bool


def _combinations(s: int, cap: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Boolean (C, S) membership of the training halves; sampled symmetrically when C(S, S/2) > cap."""
    half = s // 2
    total = math.comb(s, half)
    if total <= cap:
        chosen = np.array(list(itertools.combinations(range(s), half)), dtype=np.intp)
        out = np.zeros((total, s), dtype=bool)
        out[np.arange(total)[:, None], chosen] = True
        return out, False
    want = max(1, cap // 2)
    seen: set[tuple[int, ...]] = set()
    while len(seen) < want:
        draws = rng.random((2 * (want - len(seen)), s - 1)).argsort(axis=1)[:, : half - 1] + 1
        for row in draws:
            seen.add((0, *sorted(row.tolist())))
            if len(seen) == want:
                break
    chosen = np.array(sorted(seen), dtype=np.intp)
    with_first = np.zeros((want, s), dtype=bool)
    with_first[np.arange(want)[:, None], chosen] = True
    return np.concatenate([with_first, ~with_first]), True


def _performance(sums: np.ndarray, squares: np.ndarray, counts: np.ndarray, metric: str) -> np.ndarray:
    """(C, N) performance from per-combination row sums, sums of squares and row counts (C,)."""
    n = counts[:, None]
    mean = sums / n
    if metric == "mean":
        return mean
    var = np.maximum(squares - sums * mean, 0.0) / (n - 1)
    sd = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = mean / sd
    degenerate = np.where(mean > 0, np.inf, np.where(mean < 0, -np.inf, 0.0))
    return np.where(sd > 0, sharpe, degenerate)


def _row_tolerance(perf: np.ndarray, rtol: float) -> np.ndarray:
    """(C,) tie tolerance per row: rtol × the largest finite |value| of the row (0 when none)."""
    mag = np.where(np.isfinite(perf), np.abs(perf), 0.0)
    return rtol * mag.max(axis=1)


def _tied(perf: np.ndarray, v: np.ndarray, rtol: float) -> np.ndarray:
    """(C, N) True where perf[c, j] ties v[c] within the row tolerance (infinities: exact)."""
    tol = _row_tolerance(perf, rtol)[:, None]
    vv = v[:, None]
    with np.errstate(invalid="ignore"):
        close = np.abs(perf - vv) <= tol
    return (perf == vv) | (close & np.isfinite(perf) & np.isfinite(vv))


def _first_best(perf: np.ndarray, rtol: float) -> np.ndarray:
    """(C,) the lowest column index tied (within tolerance) with the row's maximum."""
    best = perf.max(axis=1)
    return np.argmax(_tied(perf, best, rtol), axis=1)


def pbo(performance: np.ndarray, n_submatrices: int | None = None, *,
        metric: Literal["mean", "sharpe"] = "mean",
        max_combinations: int = DEFAULT_MAX_COMBINATIONS,
        seed: int | np.random.Generator = 0, tie_rtol: float = TIE_RTOL) -> PBOResult:
    """Probability of Backtest Overfitting of selecting the in-sample best of N trials (CSCV).

    See the module docstring for the procedure (Bailey, Borwein, López de
    Prado & Zhu 2017, Section 2, steps 1–6) and the choices made.

    Args:
        performance: T×N array, rows = time blocks / walk-forward windows (or
            periods) in time order, columns = trials; finite values. T >= 2, N >= 2.
        n_submatrices: S, even, 2 <= S <= T; None -> 16, or the largest even
            number <= T when T < 16.
        metric: "mean" (mean of the rows; rows are per-block performance
            figures) or "sharpe" (mean/std with ddof = 1 of the rows, per
            period, not annualised; rows are per-period returns and every half
            must hold at least 2 rows).
        max_combinations: cap on the combinations evaluated (integer >= 2);
            above it a seeded symmetric random sample is used. Default 20,000.
        seed: non-negative integer or numpy Generator for that sample.
        tie_rtol: relative tolerance of a tie (module docstring), >= 0; 0 = exact comparisons.

    Returns:
        `PBOResult` with the PBO in [0, 1] and the λ distribution.

    Raises:
        ValueError: `performance` is not 2-D, has fewer than 2 rows or
            columns, or holds a NaN/infinity; `n_submatrices` is not an even
            integer in [2, T]; `metric` is unknown; a "sharpe" half would hold
            fewer than 2 rows; `max_combinations` is not an integer >= 2;
            `seed` is neither a non-negative integer nor a Generator.
    """
    m = np.asarray(performance, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"performance must be a 2-D array (rows = time blocks, columns = trials), got shape {m.shape}")
    t, n = m.shape
    if t < 2:
        raise ValueError(f"performance must have at least 2 rows (time blocks), got {t}")
    if n < 2:
        raise ValueError(f"performance must have at least 2 columns (trials), got {n}")
    if not np.all(np.isfinite(m)):
        raise ValueError("performance must be finite; got NaN or infinite values")
    if n_submatrices is None:
        s = DEFAULT_SUBMATRICES if t >= DEFAULT_SUBMATRICES else t - t % 2
    else:
        if isinstance(n_submatrices, bool) or not isinstance(n_submatrices, numbers.Integral):
            raise ValueError(f"n_submatrices must be an even integer, got {n_submatrices!r}")
        s = int(n_submatrices)
        if s < 2 or s % 2 or s > t:
            raise ValueError(f"n_submatrices must be an even integer between 2 and the number of rows ({t}), got {s}")
    if metric not in ("mean", "sharpe"):
        raise ValueError(f"metric must be 'mean' or 'sharpe', got {metric!r}")
    if isinstance(max_combinations, bool) or not isinstance(max_combinations, numbers.Integral) \
            or int(max_combinations) < 2:
        raise ValueError(f"max_combinations must be an integer >= 2, got {max_combinations!r}")
    if isinstance(tie_rtol, bool) or not isinstance(tie_rtol, numbers.Real) or not float(tie_rtol) >= 0.0 \
            or not math.isfinite(float(tie_rtol)):
        raise ValueError(f"tie_rtol must be a finite number >= 0, got {tie_rtol!r}")
    tie_rtol = float(tie_rtol)
    if isinstance(seed, np.random.Generator):
        rng = seed
    elif isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer or a numpy Generator, got {seed!r}")
    else:
        rng = np.random.default_rng(int(seed))

    blocks = np.array_split(np.arange(t), s)
    sizes = np.array([b.size for b in blocks], dtype=np.float64)
    if metric == "sharpe" and np.sort(sizes)[: s // 2].sum() < 2:
        raise ValueError(f"metric 'sharpe' needs at least 2 rows in each half; {t} rows in {s} submatrices "
                         "give halves of 1 row")
    block_sums = np.stack([m[b].sum(axis=0) for b in blocks])          # (S, N)
    block_squares = np.stack([(m[b] ** 2).sum(axis=0) for b in blocks]) if metric == "sharpe" \
        else np.zeros_like(block_sums)                                  # (S, N), used by "sharpe" only
    total_sums, total_squares, total_rows = block_sums.sum(0), block_squares.sum(0), float(t)

    combos, sampled = _combinations(s, int(max_combinations), rng)
    c = combos.shape[0]
    train = np.nonzero(combos)[1].reshape(c, s // 2)  # training block indices of each combination
    logits = np.empty(c)
    ranks = np.empty(c)
    is_best = np.empty(c)
    oos_best = np.empty(c)
    # gathers, not matrix products: a small BLAS product is slow on a busy multi-core machine
    step = max(1, _CHUNK_VALUES // (train.shape[1] * n))
    for lo in range(0, c, step):
        idx = train[lo:lo + step]
        rows_is = sizes[idx].sum(axis=1)
        sums_is = block_sums[idx].sum(axis=1)
        sq_is = block_squares[idx].sum(axis=1) if metric == "sharpe" else sums_is
        perf_is = _performance(sums_is, sq_is, rows_is, metric)
        perf_oos = _performance(total_sums - sums_is, total_squares - sq_is, total_rows - rows_is, metric)
        star = _first_best(perf_is, tie_rtol)
        k = np.arange(idx.shape[0])
        v = perf_oos[k, star]
        equal = _tied(perf_oos, v, tie_rtol)
        below = np.count_nonzero((perf_oos < v[:, None]) & ~equal, axis=1)
        tied = np.count_nonzero(equal, axis=1)                  # includes n* itself
        omega = (below + (tied + 1) / 2.0) / (n + 1.0)
        hi = lo + idx.shape[0]
        ranks[lo:hi] = omega
        logits[lo:hi] = np.log(omega / (1.0 - omega))
        is_best[lo:hi] = perf_is[k, star]
        oos_best[lo:hi] = v
    return PBOResult(pbo=float(np.mean(logits <= 0.0)), logits=logits, relative_ranks=ranks,
                     is_performance=is_best, oos_performance=oos_best, n_submatrices=s,
                     n_combinations=c, sampled=sampled)
