"""`risk.yaml` `allocation:`: how the account's capital is split over the runners, and the
drawdown halts of new cycles (issue 14; applied by `core.risk.allocation_runtime.Allocator`).

    allocation:
      policy: risk_parity        # equal | fixed | grade | inverse_volatility | risk_parity | kelly
      rebalance_interval_h: 24   # hours between rebalances (new targets; applied at flat moments)
      lookback_days: 30          # daily returns used for volatility / covariance / Kelly
      min_history_days: 10       # fewer common days of returns: equal weights (logged)
      weights: {}                # fixed: "strategy@symbol" or "symbol" -> fraction of the account
      kelly_fraction: 0.5        # kelly: fraction of the full Kelly allocation, in (0, 1]
      kelly_cap: 0.4             # kelly: highest weight of one runner, in (0, 1]
      max_drawdown_strategy: 0.15    # fraction below a strategy's peak (transfer-adjusted): its NEW cycles halt
      max_drawdown_account: 0.12     # fraction below the account's peak: every NEW cycle halts

Semantics (documented once here, see also `core.risk.allocation_runtime`):

* section absent: today's split, nothing else (a replay gives every runner the whole
  `account.initial_capital`; paper / live split it equally).
* `equal`: the same static split as today (a replay keeps the full capital per runner, so its
  report still equals the per-strategy backtest; paper / live 1/N each), never transferred;
  the weights 1/N are recorded at every rebalance and the drawdown halts apply.
* every other policy shares ONE account in every mode (replay, paper, live): each runner starts
  with `initial_capital / N`, and at each rebalance gets the target `weight x account equity`,
  moved into / out of its cash only while it is between cycles.

Fractions are fractions (0.15 = 15 %), never percent. Keys of other policies may be left at
their defaults; the keys a policy needs are checked (RuleError naming the key).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from core.config.base import ConfigModel, RuleError

#: allocation policies, in the order of the docs
POLICIES = ("equal", "fixed", "grade", "inverse_volatility", "risk_parity", "kelly")


class AllocationConfig(ConfigModel):
    """Attributes:
        policy: one of `POLICIES`.
        rebalance_interval_h: hours between rebalances (> 0); a rebalance happens once every
            runner has a candle in a new interval (intervals counted from 1970-01-01 UTC).
        lookback_days: daily returns used by the volatility / covariance / Kelly policies (>= 2).
        min_history_days: with fewer common daily returns than this, the equal weights are used
            (logged) (>= 2, <= lookback_days).
        weights: `fixed`: "strategy@symbol" (one runner) or "symbol" (every runner on it) ->
            fraction of the account equity (>= 0, summing to <= 1; the rest stays unallocated).
        kelly_fraction: `kelly`: fraction of the full (mean-variance) Kelly allocation, in (0, 1].
        kelly_cap: `kelly`: highest weight of one runner, in (0, 1].
        max_drawdown_strategy: drop of a strategy's transfer-adjusted equity from its peak that
            halts its NEW cycles, a fraction in (0, 1); None: no such halt.
        max_drawdown_account: drop of the account equity from its peak that halts every NEW
            cycle (the kill switch, without flattening), a fraction in (0, 1); None: none.
    """

    policy: Literal["equal", "fixed", "grade", "inverse_volatility", "risk_parity", "kelly"]
    rebalance_interval_h: float = Field(gt=0)
    lookback_days: int = Field(default=30, ge=2)
    min_history_days: int = Field(default=10, ge=2)
    weights: dict[str, float] = Field(default_factory=dict)
    kelly_fraction: float = Field(default=0.5, gt=0, le=1)
    kelly_cap: float = Field(default=0.4, gt=0, le=1)
    max_drawdown_strategy: float | None = Field(default=None, gt=0, lt=1)
    max_drawdown_account: float | None = Field(default=None, gt=0, lt=1)

    @model_validator(mode="after")
    def _rules(self) -> "AllocationConfig":
        if self.min_history_days > self.lookback_days:
            raise RuleError(f"expected a value <= lookback_days ({self.lookback_days}), got "
                            f"{self.min_history_days}", at=("min_history_days",))
        for key, w in self.weights.items():
            if not (0.0 <= w <= 1.0):
                raise RuleError(f"expected a fraction in [0, 1], got {w!r}", at=("weights", key))
        total = sum(self.weights.values())
        if total > 1.0 + 1e-9:
            raise RuleError(f"expected weights summing to <= 1 (fractions of the account), got {total:.6g}",
                            at=("weights",))
        if self.policy == "fixed" and not self.weights:
            raise RuleError("policy fixed needs weights: \"strategy@symbol\" or \"symbol\" -> fraction",
                            at=("weights",))
        return self
