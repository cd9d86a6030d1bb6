"""Account settings of one trading account (backtest, paper or live runner)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Account:
    """Initial capital (USDT), leverage (x), maker/taker fees (fractions of notional, e.g.
    0.0002 = 0.02 %)."""

    initial_capital: float = 10_000.0
    leverage: float = 1.0
    maker_fee: float = 0.0002
    taker_fee: float = 0.0006
