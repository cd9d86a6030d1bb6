"""Queries on a loaded `RadarConfig`: a strategy's parameters for a symbol, its research grid."""

from __future__ import annotations

from typing import Any

from core.config.loader import GRIDS_FILE, RadarConfig
from core.errors import ConfigError, UsageError
from core.strategies.params import STRATEGY_PARAMS, StrategyParams


def _settings(cfg: RadarConfig, strategy: str):
    if strategy not in STRATEGY_PARAMS:
        raise UsageError(f"unknown strategy {strategy!r}; expected one of: {', '.join(STRATEGY_PARAMS)}")
    return cfg.strategies[strategy]


def strategy_params(cfg: RadarConfig, strategy: str, symbol: str | None = None) -> StrategyParams:
    """The validated parameters of `strategy` for `symbol`.

    Merge order: the model defaults <- `params:` of strategies.yaml <- the
    `overrides:` entry of `symbol` (when `symbol` is given and has one). A
    symbol without an override (or None) gets the strategy-wide params.

    Returns:
        an instance of `STRATEGY_PARAMS[strategy]` (frozen).

    Raises:
        UsageError: `strategy` is not a registered strategy name.
    """
    return _settings(cfg, strategy).params_for(symbol)


def param_grid(cfg: RadarConfig, strategy: str) -> dict[str, list[Any]]:
    """The research grid of `strategy`: parameter name -> values (a fresh copy).

    Parameters missing from the grid keep their configured value
    (`strategy_params`). A combination may still break a cross-field rule of
    the model (e.g. fast_ema < slow_ema); the caller skips those.

    Raises:
        UsageError: `strategy` is not a registered strategy name.
        ConfigError: param_grids.yaml has no grid for `strategy`.
    """
    _settings(cfg, strategy)
    grid = cfg.param_grids.get(strategy)
    if grid is None:
        raise ConfigError(cfg.file(GRIDS_FILE), f"param_grids.{strategy}",
                          "no grid for this strategy; expected a mapping of parameter name -> list of values")
    return {name: list(values) for name, values in grid.items()}
