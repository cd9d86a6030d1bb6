"""`risk.yaml`: account, fees, limits, kill switch and stop handling.

Money is in USDT; `*_limit`, `max_drawdown` and fees are fractions
(0.05 = 5 %), never percent. Every key is required: risk settings are never
silently defaulted.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from core.config.allocation import AllocationConfig
from core.config.base import ConfigModel, RuleError


class AccountConfig(ConfigModel):
    """Attributes:
        initial_capital: starting equity of backtests and the paper account, USDT (> 0).
        leverage: leverage used to size positions (integer >= 1).
    """

    initial_capital: float = Field(gt=0)
    leverage: int = Field(ge=1)


class FeesConfig(ConfigModel):
    """Attributes:
        maker: maker fee, a fraction of the notional in [0, 0.01] (0.0002 = 0.02 %).
        taker: taker fee, a fraction of the notional in [0, 0.01] (0.0006 = 0.06 %).
    """

    maker: float = Field(ge=0, le=0.01)
    taker: float = Field(ge=0, le=0.01)


class LimitsConfig(ConfigModel):
    """Pre-trade and account limits.

    Attributes:
        leverage_cap: highest leverage ever set on the exchange (integer >= 1).
        max_open_positions: open positions across all symbols (>= 1).
        max_notional_per_symbol: position notional per symbol, USDT (> 0).
        max_total_notional: notional of all open positions, USDT
            (> 0, >= max_notional_per_symbol).
        daily_loss_limit: loss since the UTC day start that trips the kill
            switch, a fraction in (0, 1) of the equity at the UTC day start.
        max_drawdown: drop from the equity peak that trips the kill switch, a
            fraction in (0, 1).
        max_same_direction_per_group: open positions on the same side (long or
            short) within one correlation group of `assets.yaml` (>= 1).
    """

    leverage_cap: int = Field(ge=1)
    max_open_positions: int = Field(ge=1)
    max_notional_per_symbol: float = Field(gt=0)
    max_total_notional: float = Field(gt=0)
    daily_loss_limit: float = Field(gt=0, lt=1)
    max_drawdown: float = Field(gt=0, lt=1)
    max_same_direction_per_group: int = Field(ge=1)

    @model_validator(mode="after")
    def _symbol_within_total(self) -> "LimitsConfig":
        if self.max_notional_per_symbol > self.max_total_notional:
            raise RuleError(f"expected a value >= max_notional_per_symbol "
                            f"({self.max_notional_per_symbol!r}), got {self.max_total_notional!r}",
                            at=("max_total_notional",))
        return self


class KillSwitchConfig(ConfigModel):
    """Attributes:
        flatten_on_trip: when the kill switch trips, close every open position
            at market (true) or only stop opening new ones (false).
    """

    flatten_on_trip: bool


class StopsConfig(ConfigModel):
    """Protective stop orders on the exchange.

    Attributes:
        recheck_interval_s: seconds between checks that every open position
            still has its stop on the exchange (> 0).
        placement_retries: further attempts after a failed stop placement
            before the position is flattened (integer >= 0).
        unprotected_grace_s: seconds a position may stay without a stop (neither the stop nor
            the market close went through; the runner is halted and the alert repeated) before
            the kill switch is tripped for its symbol (> 0; default 120).
    """

    recheck_interval_s: float = Field(gt=0)
    placement_retries: int = Field(ge=0)
    unprotected_grace_s: float = Field(default=120.0, gt=0)


class RiskConfig(ConfigModel):
    """The whole `risk.yaml`.

    Rule: `account.leverage <= limits.leverage_cap`. `allocation` is the one optional section
    (absent: the equal split of today, `core.config.allocation`).
    """

    account: AccountConfig
    fees: FeesConfig
    limits: LimitsConfig
    kill_switch: KillSwitchConfig
    stops: StopsConfig
    allocation: AllocationConfig | None = None

    @model_validator(mode="after")
    def _leverage_within_cap(self) -> "RiskConfig":
        if self.account.leverage > self.limits.leverage_cap:
            raise RuleError(f"expected a value <= limits.leverage_cap ({self.limits.leverage_cap}), "
                            f"got {self.account.leverage}", at=("account", "leverage"))
        return self
