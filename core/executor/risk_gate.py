"""The pre-trade risk gate of the grid executor (`core.executor.grid_executor.GridExecutor`).

Before an ENTRY order that is not resting yet is placed, `check_entry` asks the RiskManager
(`core.risk`) with the account as `portfolio()` describes it. A rejected order is re-checked
only when the account changed (its positions, resting entries, or this runner's cycle) or
`RISK_RECHECK_MS` of market time passed, so a standing rejection is not re-counted every
candle. Exits, take-profits and stops are never checked.

`book` is the runner's `core.model.position.PositionBook` (levels_filled, cycles, unit,
cash, leverage); the notional of the entry is the executor's sizing (`GridExecutor.entry_notional`).
"""

from __future__ import annotations

import math
from typing import Any, Callable

#: a rejected entry is re-checked after this much market time even when nothing changed (ms)
RISK_RECHECK_MS = 24 * 3_600_000


def entry_notional(book: Any, strategy: Any) -> float:
    """USDT notional of the next entry level of `book` (the open cycle's unit, or a new cycle's,
    sized as the book sizes it: the live ledger's `sizing_unit`, or the paper matching
    engine's strategy view, which applies the paper sizing reserve)."""
    if book.levels_filled:
        return book.unit
    sizing = getattr(book, "sizing_unit", None)
    if sizing is not None:
        return sizing()
    return getattr(book, "strategy", strategy).cycle_notional(book.cash, book.leverage)


class RiskGate:
    """Throttled pre-trade checks of one runner's entries (see the module docstring).

    Args:
        risk: the RiskManager. portfolio: () -> PortfolioView of the whole account.
        strategy_name, symbol, side ("long" | "short"), strategy: the runner's.
    """

    def __init__(self, risk: Any, portfolio: Callable[[], Any], strategy_name: str, symbol: str, side: str,
                 strategy: Any) -> None:
        self.risk = risk
        self.portfolio = portfolio
        self.name = strategy_name
        self.symbol = symbol
        self.side = side
        self.strategy = strategy
        self.rejected: dict[str, tuple] = {}      # cid -> (fingerprint, ts) of its last rejection
        self.rejections = 0

    def check(self, book: Any, cid: str, level: int, price: float, ts: int, notional: float | None = None) -> bool:
        """True when the entry `cid` (level, limit price) may be placed at market time `ts` (ms UTC);
        `notional` (USDT) is the entry's size (default: `entry_notional(book, strategy)`)."""
        from core.risk import EntryCheck, Rejection

        if not (math.isfinite(price) and price > 0):
            return True                     # not a real order price: the venue ignores it
        pf = self.portfolio()
        prev = self.rejected.get(cid)
        fp = (len(pf.positions), len(pf.pending), round(sum(abs(e.notional) for e in (*pf.positions, *pf.pending)), 2),
              book.levels_filled, len(book.cycles))
        if prev is not None and prev[0] == fp and ts - prev[1] < RISK_RECHECK_MS:
            return False
        if notional is None:
            notional = entry_notional(book, self.strategy)
        if not (math.isfinite(notional) and notional > 0):
            return True
        check = EntryCheck(self.symbol, self.side, float(notional), float(book.leverage),
                           is_new_position=book.levels_filled == 0 and level == 0, level=level, strategy=self.name)
        result = self.risk.check_entry(check, pf, ts)
        if isinstance(result, Rejection):
            self.rejected[cid] = (fp, ts)
            self.rejections += 1
            return False
        self.rejected.pop(cid, None)
        return True
