"""Parameter stability: how much the out-of-sample metric moves when the best params are nudged.

Definition (the research-pipeline issue: "the metric's variance under ±10 % and ±20 %
perturbations of the best params"):

1. Perturbations (`perturbations`): for each numeric parameter p of the best params
   (one at a time, the others unchanged) and each fraction f in (−0.20, −0.10, +0.10,
   +0.20): p' = p·(1 + f); integer parameters are rounded half up (floor(x + 0.5));
   the value is clipped into the parameter's bounds of its model
   (`core.strategies.params`: ge/le inclusive, gt/lt exclusive: an integer moves to the
   next integer inside, a float to 1e-9 inside). A perturbation equal to the best params
   (e.g. num_levels 2·1.1 = 2.2 → 2) or to an earlier one is dropped, and so is one the
   model refuses (a cross-field rule such as envelope_dca's deepest level < 1).
2. Each perturbation is evaluated exactly as the best combo: the same OOS metric M
   (walk-forward: the annualised Sharpe of its daily OOS returns, all windows together,
   fresh C0 per window).
3. Dispersion relative to the best's value M0, over the K perturbations:

       D = sqrt( (1/K) · Σ_k (M_k − M0)² ) / max(|M0|, floor)        floor = 0.1

   (a root-mean-square deviation taken around M0, not around the perturbations' own
   mean: a peak whose neighbours are all uniformly worse is unstable too; the floor
   keeps D finite when M0 is near 0).
4. Stability = max(0, 1 − D), in [0, 1]: 1 = the metric does not move at all; 0.8 = it
   moves by 20 % of its size on average (full sub-score in `config/grading.yaml`);
   0 = it moves by as much as its own size or more.
5. Stability variance (`perturbation_variance`, the roadmap's criterion, graded by the
   default profile of `config/grading.yaml`): V = (1/K) · Σ_k (M_k − M0)², the mean
   squared deviation of the K perturbations' metric from the best's (annualised Sharpe
   units squared; taken around M0 for the reason of step 3). V < 0.1: the metric moves
   by less than about 0.3 Sharpe under perturbation (full marks); V > 1: by more than 1.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from pydantic import ValidationError

from core.strategies.params import StrategyParams

#: The relative perturbations applied to each numeric parameter.
FRACTIONS = (-0.20, -0.10, 0.10, 0.20)

#: Lower bound of the denominator |M0| (annualised Sharpe units).
METRIC_FLOOR = 0.1

#: Distance kept inside an exclusive float bound.
_INSIDE = 1e-9


def _bounds(model: type[StrategyParams] | None, name: str, is_int: bool) -> tuple[float, float]:
    lo, hi = -math.inf, math.inf
    if model is None or name not in model.model_fields:
        return lo, hi
    step = 1 if is_int else _INSIDE
    for meta in model.model_fields[name].metadata:
        if getattr(meta, "ge", None) is not None:
            lo = max(lo, float(meta.ge))
        if getattr(meta, "gt", None) is not None:
            lo = max(lo, float(meta.gt) + step)
        if getattr(meta, "le", None) is not None:
            hi = min(hi, float(meta.le))
        if getattr(meta, "lt", None) is not None:
            hi = min(hi, float(meta.lt) - step)
    return lo, hi


def perturbations(params: Mapping[str, object], model: type[StrategyParams] | None = None,
                  fractions: Sequence[float] = FRACTIONS) -> list[dict]:
    """The perturbed parameter sets of step 1 (module docstring), in parameter then fraction order.

    Args:
        params: the best params {name: value}; bool and non-numeric values are left alone.
        model: the strategy's parameter model, for the bounds and the validity check
            (None: no clipping, no check).
        fractions: relative changes, e.g. (−0.2, −0.1, 0.1, 0.2); each > −1.

    Returns:
        Distinct parameter dicts, each differing from `params` in exactly one value.

    Raises:
        ValueError: a fraction is not a finite number > −1.
    """
    for f in fractions:
        if not (isinstance(f, (int, float)) and math.isfinite(f) and f > -1.0):
            raise ValueError(f"perturbation fractions must be finite numbers > -1, got {f!r}")
    base = dict(params)
    out: list[dict] = []
    for name, value in base.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            continue
        is_int = isinstance(value, (int, np.integer))
        lo, hi = _bounds(model, name, is_int)
        for f in fractions:
            raw = float(value) * (1.0 + float(f))
            new: float | int = math.floor(raw + 0.5) if is_int else raw
            new = min(max(new, lo), hi)
            new = int(new) if is_int else float(new)
            cand = {**base, name: new}
            if cand == base or cand in out:
                continue
            if model is not None:
                try:
                    model.model_validate(cand, strict=False)
                except ValidationError:
                    continue
            out.append(cand)
    return out


def stability_score(best_metric: float, perturbed_metrics: Sequence[float] | np.ndarray,
                    floor: float = METRIC_FLOOR) -> float | None:
    """Steps 3–4: max(0, 1 − RMS(M_k − M0) / max(|M0|, floor)), in [0, 1].

    Args:
        best_metric: M0, the metric of the best params (e.g. annualised OOS Sharpe).
        perturbed_metrics: M_k of each perturbation (NaN entries are ignored).
        floor: lower bound of the denominator (> 0).

    Returns:
        The stability in [0, 1], or None when there is no finite M_k to compare with.

    Raises:
        ValueError: `best_metric` is not finite or `floor` is not > 0.
    """
    m0 = float(best_metric)
    if not math.isfinite(m0):
        raise ValueError(f"best_metric must be finite, got {best_metric!r}")
    if not floor > 0:
        raise ValueError(f"floor must be > 0, got {floor!r}")
    m = np.asarray(perturbed_metrics, dtype=np.float64)
    m = m[np.isfinite(m)]
    if m.size == 0:
        return None
    d = math.sqrt(float(np.mean((m - m0) ** 2))) / max(abs(m0), float(floor))
    return max(0.0, 1.0 - d)


def perturbation_variance(best_metric: float, perturbed_metrics: Sequence[float] | np.ndarray) -> float | None:
    """Step 5: V = (1/K)·Σ(M_k − M0)² over the finite M_k; None when there is none.

    Raises:
        ValueError: `best_metric` is not finite.
    """
    m0 = float(best_metric)
    if not math.isfinite(m0):
        raise ValueError(f"best_metric must be finite, got {best_metric!r}")
    m = np.asarray(perturbed_metrics, dtype=np.float64)
    m = m[np.isfinite(m)]
    if m.size == 0:
        return None
    return float(np.mean((m - m0) ** 2))
