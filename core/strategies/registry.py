"""Strategy implementations by name: the names of the config, the CLI (`--strategy`) and results."""

from __future__ import annotations

from typing import Callable

from core.errors import UsageError
from core.strategies.base import GridStrategy, SinglePositionStrategy
from core.strategies.bollinger_mr import BollingerMr
from core.strategies.donchian_breakout import DonchianBreakout
from core.strategies.envelope_dca import EnvelopeDca, EnvelopeDcaShort
from core.strategies.funding import Funding
from core.strategies.grid_atr import GridAtr, GridAtrShort
from core.strategies.grid_funding import GridFunding, GridFundingShort
from core.strategies.grid_mtf import GridMtf, GridMtfShort
from core.strategies.grid_rsi import GridRsi, GridRsiShort
from core.strategies.liquidation import Liquidation
from core.strategies.momentum import Momentum
from core.strategies.supertrend import Supertrend
from core.strategies.vwap_rsi import VwapRsi

Strategy = GridStrategy | SinglePositionStrategy

#: name -> factory taking a params dict (missing keys take the strategy's defaults)
STRATEGIES: dict[str, Callable[[dict], Strategy]] = {
    "envelope_dca": EnvelopeDca,
    "envelope_dca_short": EnvelopeDcaShort,
    "vwap_rsi": VwapRsi,
    "momentum": Momentum,
    "bollinger_mr": BollingerMr,
    "donchian_breakout": DonchianBreakout,
    "supertrend": Supertrend,
    "funding": Funding,
    "grid_atr": GridAtr,
    "grid_atr_short": GridAtrShort,
    "grid_rsi": GridRsi,
    "grid_rsi_short": GridRsiShort,
    "grid_funding": GridFunding,
    "grid_funding_short": GridFundingShort,
    "grid_mtf": GridMtf,
    "grid_mtf_short": GridMtfShort,
    "liquidation": Liquidation,
}


def names() -> list[str]:
    """The implemented strategy names, in registry order."""
    return list(STRATEGIES)


def create(name: str, params: dict | None = None) -> Strategy:
    """A fresh strategy instance (one per symbol and run).

    Raises:
        UsageError: `name` is not implemented (the message lists the names that are).
        core.strategies.base.ParamError: a parameter is unknown or invalid.
    """
    try:
        factory = STRATEGIES[name]
    except KeyError:
        raise UsageError(f"unknown strategy {name!r}; implemented: {', '.join(STRATEGIES)}") from None
    return factory(dict(params or {}))
