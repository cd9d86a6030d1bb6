"""Fixed parameters of a walk-forward ("optimize" job `fixed`: {name: value}).

A fixed parameter is not searched: the research grid of that parameter becomes the single
value (`apply_fixed`); a parameter outside the grid gets the value instead of its configured
one. `check_fixed` validates the names and values against the strategy's own parameter rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from core.errors import RadarError, UsageError


def check_fixed(strategy: str, fixed: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fixed parameters, checked: names of `strategy`'s parameters, finite numbers, values
    the strategy accepts (each on the strategy's defaults; a rule between two parameters is
    checked on the whole combination when the walk-forward builds it).

    Raises:
        UsageError: not a mapping, an unknown name (the message lists the parameters), a value
            that is not a finite number, or a value the strategy refuses (its own message).
    """
    from core.strategies import registry

    if not fixed:
        return {}
    if not isinstance(fixed, Mapping):
        raise UsageError(f"optimize: fixed parameters must be a mapping name -> value, got {fixed!r}")
    defaults = registry.create(strategy, {}).params
    out: dict[str, Any] = {}
    for name, value in fixed.items():
        if name not in defaults:
            raise UsageError(f"optimize: fixed parameter {name!r} is not a parameter of {strategy} "
                             f"({', '.join(defaults)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UsageError(f"optimize: fixed {name} must be a number, got {value!r}")
        try:
            got = registry.create(strategy, {**defaults, name: value}).params[name]
        except RadarError as exc:
            raise UsageError(f"optimize: fixed {name}={value!r}: {exc}") from None
        out[name] = got
    return out


def apply_fixed(grid: dict[str, list], base: dict[str, Any], fixed: Mapping[str, Any]) -> tuple[dict, dict]:
    """(grid, base params) with each fixed parameter's grid reduced to its value (or, outside
    the grid, its base value replaced). The inputs are not changed."""
    grid = {k: list(v) for k, v in grid.items()}
    base = dict(base)
    for name, value in (fixed or {}).items():
        if name in grid:
            grid[name] = [value]
        base[name] = value
    return grid, base
