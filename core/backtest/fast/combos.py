"""Parameter combos of envelope_dca as columnar arrays, built from a grid dict or a list of dicts."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from core.strategies.base import ParamError
from core.strategies.envelope_dca import DEFAULT_PARAMS, normalize_params

#: the five strategy parameters, in the order of a grid's cross product
PARAM_NAMES = ("ma_period", "num_levels", "envelope_start", "envelope_step", "sl_percent")
INT_PARAMS = ("ma_period", "num_levels")

#: the default optimisation grid: 3·3·3·3·4 = 324 combos
DEFAULT_GRID: dict[str, tuple] = {
    "ma_period": (5, 7, 10),
    "num_levels": (2, 3, 4),
    "envelope_start": (0.05, 0.07, 0.10),
    "envelope_step": (0.02, 0.03, 0.05),
    "sl_percent": (0.15, 0.20, 0.25, 0.30),
}


@dataclass(frozen=True)
class Combos:
    """n parameter combos: int64 ma_period/num_levels, float64 envelope_start/envelope_step/sl_percent."""

    ma_period: np.ndarray
    num_levels: np.ndarray
    envelope_start: np.ndarray
    envelope_step: np.ndarray
    sl_percent: np.ndarray

    def __len__(self) -> int:
        return int(self.ma_period.shape[0])

    def params(self, i: int) -> dict:
        """Combo i as a params dict (ints for the two integer parameters)."""
        return {name: (int if name in INT_PARAMS else float)(getattr(self, name)[i]) for name in PARAM_NAMES}

    def to_dicts(self) -> list[dict]:
        return [self.params(i) for i in range(len(self))]


def _validate(c: Combos) -> Combos:
    """The rules of `core.strategies.envelope_dca.normalize_params`, on whole columns."""
    if len(c) == 0:
        return c
    bad = None
    if np.any(c.ma_period < 1):
        bad = "ma_period must be >= 1"
    elif np.any(c.num_levels < 1):
        bad = "num_levels must be >= 1"
    elif not all(np.all(np.isfinite(getattr(c, k))) for k in ("envelope_start", "envelope_step", "sl_percent")):
        bad = "envelope_start, envelope_step and sl_percent must be finite numbers"
    elif not np.all((c.envelope_start > 0.0) & (c.envelope_start < 1.0)):
        bad = "envelope_start must be in (0, 1)"
    elif not np.all(c.envelope_step >= 0.0):
        bad = "envelope_step must be >= 0"
    elif not np.all((c.sl_percent > 0.0) & (c.sl_percent < 1.0)):
        bad = "sl_percent must be in (0, 1)"
    elif not np.all(c.envelope_start + (c.num_levels - 1) * c.envelope_step < 1.0):
        bad = "envelope_start + (num_levels - 1) * envelope_step must be < 1"
    if bad:
        raise ParamError(f"{bad} (in {int(len(c))} combos)")
    return c


def _int_param(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or int(value) != value:
        raise ParamError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _float_param(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ParamError(f"{name} must be a number, got {value!r}")
    return float(value)


def combos_from_dicts(items: Iterable[Mapping]) -> Combos:
    """Combos from params dicts, each normalised and checked like the event engine does
    (`normalize_params`: missing keys take DEFAULT_PARAMS, unknown keys are refused)."""
    rows = [normalize_params(dict(row)) for row in items]
    return Combos(*(np.asarray([r[name] for r in rows], dtype=np.int64 if name in INT_PARAMS else np.float64)
                    for name in PARAM_NAMES))


def grid_combos(grid: Mapping[str, Iterable] | None = None) -> Combos:
    """The cross product of a grid {param: values} in PARAM_NAMES order (default: DEFAULT_GRID).

    A scalar value is a one-value axis; missing params take DEFAULT_PARAMS.
    """
    grid = DEFAULT_GRID if grid is None else grid
    unknown = set(grid) - set(PARAM_NAMES)
    if unknown:
        raise ParamError(f"unknown grid parameter(s) {sorted(unknown)}; expected: {', '.join(PARAM_NAMES)}")
    axes = []
    for name in PARAM_NAMES:
        values = grid.get(name, DEFAULT_PARAMS[name])
        values = list(values) if isinstance(values, (list, tuple, np.ndarray, range)) else [values]
        axes.append([_int_param(name, v) for v in values] if name in INT_PARAMS else [_float_param(name, v) for v in values])
    cols = list(zip(*itertools.product(*axes))) or [()] * len(PARAM_NAMES)
    return _validate(Combos(*(np.asarray(col, dtype=np.int64 if name in INT_PARAMS else np.float64)
                              for name, col in zip(PARAM_NAMES, cols))))


def as_combos(combos) -> Combos:
    """Accept Combos, a grid dict ({param: value or list of values}) or an iterable of params dicts."""
    if isinstance(combos, Combos):
        return _validate(combos)
    if isinstance(combos, Mapping):
        return grid_combos(combos)
    return combos_from_dicts(combos)
