"""Backtest account settings, cycles and results: the contract every engine returns.

`BacktestResult.to_spec_json()` is exactly the JSON of `../shared/specs/envelope_dca.md`
("Outputs"), the output of `radar backtest --json`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from core.model.account import Account
from core.model.cycle import Cycle


@dataclass
class BacktestResult:
    """What one backtest run produced.

    equity: float64 per-candle equity at each close (USDT), shape (n,), the last point equals
    final_equity. ts: int64 open times (ms UTC) of those candles, shape (n,).
    """

    strategy: str
    symbol: str
    timeframe: str
    params: dict
    cycles: list[Cycle]
    final_equity: float
    ts: np.ndarray
    equity: np.ndarray
    account: Account = field(default_factory=Account)

    @property
    def n_cycles(self) -> int:
        return len(self.cycles)

    def to_spec_json(self) -> dict:
        """The spec's backtest JSON as a dict (numbers unrounded; profit_factor None when no losing cycle)."""
        from core.backtest import metrics

        pnls = np.array([c.pnl for c in self.cycles], dtype=np.float64)
        return {
            "strategy": self.strategy,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "params": dict(self.params),
            "n_cycles": self.n_cycles,
            "final_equity": float(self.final_equity),
            "total_return": float(self.final_equity / self.account.initial_capital - 1.0),
            "max_drawdown": metrics.max_drawdown(self.equity),
            "sharpe": metrics.daily_sharpe(self.ts, self.equity),
            "win_rate": metrics.win_rate(pnls),
            "profit_factor": metrics.profit_factor(pnls),
            "cycles": [asdict(c) for c in self.cycles],
        }
