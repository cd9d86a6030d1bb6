"""The outcome of a pre-trade risk check: `Approved` or a `Rejection` with a code.

`RejectCode` values are machine-readable and stable (they are counted per code in the
`risk_rejections` table and sent as `RiskRejection.reason` on the event bus); each names
the `risk.yaml` key it enforces. `Rejection.reason` is the sentence for the operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.events.bus import RiskRejection


class RejectCode(StrEnum):
    """Why an entry was refused (the value is the stored / published code).

    Members and their rule (all in `risk.yaml`):
        LEVERAGE_CAP: leverage above `limits.leverage_cap`.
        MAX_OPEN_POSITIONS: a new position beyond `limits.max_open_positions`.
        GROUP_SAME_DIRECTION: a new position beyond `limits.max_same_direction_per_group`
            (groups from `assets.yaml` `group`).
        MAX_NOTIONAL_PER_SYMBOL: symbol notional above `limits.max_notional_per_symbol`.
        MAX_TOTAL_NOTIONAL: total notional above `limits.max_total_notional`.
        MARGIN: required margin (notional / leverage + round-trip taker fees of
            `fees.taker`) above the free margin.
        PORTFOLIO_INVALID: the portfolio view holds a non-finite number
            (fail closed: an unknown account never approves an entry).
    """

    LEVERAGE_CAP = "leverage_cap"
    MAX_OPEN_POSITIONS = "max_open_positions"
    GROUP_SAME_DIRECTION = "max_same_direction_per_group"
    MAX_NOTIONAL_PER_SYMBOL = "max_notional_per_symbol"
    MAX_TOTAL_NOTIONAL = "max_total_notional"
    MARGIN = "margin"
    PORTFOLIO_INVALID = "portfolio_invalid"


@dataclass(frozen=True, slots=True)
class Approved:
    """The entry passed every rule.

    Attributes:
        symbol: ccxt unified symbol of the entry.
        margin_required: margin the entry needs, USDT (notional / leverage + round-trip taker fees).
    """

    symbol: str
    margin_required: float

    @property
    def ok(self) -> bool:
        """Always True."""
        return True


@dataclass(frozen=True, slots=True)
class Rejection:
    """The entry broke a rule.

    Attributes:
        code: which rule (see `RejectCode`).
        reason: one sentence for the operator, with the figures.
        symbol: ccxt unified symbol of the refused entry.
        value: the figure that broke the rule (USDT, a count, or a leverage).
        limit: the configured limit it was compared with (same unit as `value`).
    """

    code: RejectCode
    reason: str
    symbol: str
    value: float
    limit: float

    @property
    def ok(self) -> bool:
        """Always False."""
        return False

    def to_event(self, strategy: str, ts_ms: int) -> RiskRejection:
        """The bus event of this rejection: reason = the code, detail = the human reason."""
        return RiskRejection(strategy, self.symbol, ts_ms, str(self.code), self.reason)


CheckResult = Approved | Rejection
