"""LiveLedger: the account of one live grid runner, kept from the fills the exchange reports.

The paper venue's matching engine decides fills itself; on an exchange the fills are facts
reported later (order states, a position that went flat). The ledger applies them with the
spec's money rules (`../shared/specs/envelope_dca.md`, "Money"), so a live cycle is recorded
exactly like a backtest cycle:

* entry fill of `q` units at `X` (maker fee `q·X·f_m`, or the fee the exchange reports):
  cash −= fee; qty += q; cost += q·X; average entry A = cost / qty; the stop is the
  strategy's `on_fill(level, X, q, A)`;
* exit of the whole position at `Y` (taker fee): long realised `qty·(Y − A)`, short
  `qty·(A − Y)`; cash += realised − exit fee; the cycle's P&L is realised − every fee.

Sizing: `unit` (USDT notional per level) is fixed when a cycle starts, from
`strategy.cycle_notional(cash·(1 − reserve), leverage)` where `reserve = fee_reserve(account)`
keeps room for the fees at this leverage, because an exchange (and the RiskManager's margin
check, which counts a taker round trip) refuses the last level of a 1x grid sized on the
whole cash once the earlier levels' fees were paid.

Attribute names follow `core.venues.sim.matching.MatchingEngine` (cash, qty, cost, avg_entry,
stop, levels_filled, unit, cycle_fees, open_ts, cycles, fills, side, leverage), so queries
(console, risk, alerts) read either through the same names. Money USDT (float64), prices
quote currency, quantities base units, times ms UTC.
"""

from __future__ import annotations

import math

from core.model.account import Account
from core.model.cycle import Cycle
from core.model.fills import ENTRY, EXIT, Fill
from core.model.sides import LONG
from core.strategies.base import GridStrategy

#: fields carried through `snapshot()` / `restore()` (JSON)
_FIELDS = ("cash", "qty", "cost", "avg_entry", "stop", "levels_filled", "unit", "cycle_fees", "open_ts",
           "level_qty", "take_profit")

#: a level counts as filled when at least this fraction of its ordered qty has filled
FILLED_FRACTION = 0.999


def fee_reserve(account: Account) -> float:
    """Fraction of the cash kept out of a cycle's sizing: (maker + 2·taker)·leverage, the
    entry fee plus a taker round trip on the whole notional. With it every level of a grid
    passes `core.risk.limits.margin_required` (notional/leverage + 2·taker·notional) against
    the cash left after the earlier levels, for any number of levels."""
    return (float(account.maker_fee) + 2.0 * float(account.taker_fee)) * float(account.leverage)


class LiveLedger:
    """See the module docstring.

    Args:
        strategy: the runner's GridStrategy (sizing, stop rule, exit hook).
        account: capital (the runner's starting cash, USDT), leverage and fees (fractions).
    """

    def __init__(self, strategy: GridStrategy, account: Account) -> None:
        self.strategy = strategy
        self.side = strategy.side
        self.n_levels = strategy.num_levels
        self.leverage = float(account.leverage)
        self.maker_fee = float(account.maker_fee)
        self.taker_fee = float(account.taker_fee)
        self.cash = float(account.initial_capital)
        self.reserve = fee_reserve(account)
        self.cycles: list[Cycle] = []
        self.fills: list[Fill] = []
        self._reset()
        self.take_profit = math.nan
        self._fill_id = 0

    def _reset(self) -> None:
        self.qty = 0.0
        self.cost = 0.0
        self.avg_entry = math.nan
        self.stop = math.nan
        self.levels_filled = 0
        self.unit = math.nan
        self.cycle_fees = 0.0
        self.open_ts = -1
        self.level_qty = [0.0] * self.n_levels      # filled base units per level

    # ---------------------------------------------------------------- queries
    @property
    def in_position(self) -> bool:
        return self.qty > 0

    @property
    def cycle(self) -> int:
        """Index of the open (or next) cycle = cycles closed so far."""
        return len(self.cycles)

    def equity(self, price: float) -> float:
        """Cash + unrealised P&L at `price` (no exit fee), USDT."""
        if self.qty <= 0 or not math.isfinite(price):
            return self.cash
        if self.side == LONG:
            return self.cash + self.qty * (price - self.avg_entry)
        return self.cash + self.qty * (self.avg_entry - price)

    def sizing_unit(self, cash: float | None = None) -> float:
        """USDT notional per level: the open cycle's `unit`, else what a new cycle would use
        from `cash` (default the ledger's cash), fee reserve deducted (module docstring)."""
        if self.levels_filled or self.qty > 0:
            return self.unit
        c = self.cash if cash is None else min(self.cash, cash)
        return self.strategy.cycle_notional(c * (1.0 - self.reserve), self.leverage)

    def level_filled(self, level: int, ordered_qty: float | None) -> bool:
        """True when `level` is filled (its qty reached FILLED_FRACTION of `ordered_qty`)."""
        q = self.level_qty[level]
        if q <= 0:
            return False
        return ordered_qty is None or q >= ordered_qty * FILLED_FRACTION

    # ---------------------------------------------------------------- fills
    def apply_entry(self, ts: int, level: int, price: float, qty: float, fee: float | None,
                    unit: float, complete: bool) -> Fill:
        """An entry fill of `qty` units at `price` on `level` (`complete`: the level's order is
        now fully filled). `fee` USDT as reported (None: maker fee). Returns the Fill; the new
        stop is in `stop`.

        Raises:
            ValueError: a non-positive qty or price, or a level out of range.
        """
        if not (qty > 0 and price > 0 and 0 <= level < self.n_levels):
            raise ValueError(f"entry fill level {level} qty {qty} @ {price}: invalid")
        if self.qty <= 0:
            self.open_ts = ts
            self.unit = unit
            self.cycle_fees = 0.0
        f = qty * price * self.maker_fee if fee is None else abs(fee)
        self.cash -= f
        self.cycle_fees += f
        self.qty += qty
        self.cost += qty * price
        self.avg_entry = self.cost / self.qty
        self.level_qty[level] += qty
        if complete:
            self.levels_filled = max(self.levels_filled, level + 1)
        self.stop = self.strategy.on_fill(level, price, qty, self.avg_entry)
        side = "buy" if self.side == LONG else "sell"
        fill = Fill(self._next_id(), ENTRY, None, level, side, ts, price, qty, f)
        self.fills.append(fill)
        return fill

    def apply_exit(self, ts: int, price: float, reason: str, fee: float | None = None) -> tuple[Fill, Cycle]:
        """The whole position closed at `price` (`fee` USDT as reported; None: taker fee).
        Records and returns the cycle; the ledger is flat afterwards.

        Raises:
            ValueError: flat, or a non-positive price.
        """
        if self.qty <= 0 or not price > 0:
            raise ValueError(f"exit @ {price}: no position or invalid price")
        q, a = self.qty, self.avg_entry
        real = q * (price - a) if self.side == LONG else q * (a - price)
        xfee = q * price * self.taker_fee if fee is None else abs(fee)
        self.cash += real - xfee
        cyc = Cycle(open_time=self.open_ts, close_time=ts, side=self.side,
                    levels_filled=max(self.levels_filled, 1), avg_entry=a, exit_price=price, exit_reason=reason,
                    qty=q, pnl=real - self.cycle_fees - xfee)
        self.cycles.append(cyc)
        side = "sell" if self.side == LONG else "buy"
        fill = Fill(self._next_id(), EXIT, reason, -1, side, ts, price, q, xfee)
        self.fills.append(fill)
        if len(self.fills) > 2000:
            del self.fills[:1000]
        self._reset()
        self.strategy.on_exit(reason, price)
        return fill, cyc

    def adopt_qty(self, qty: float) -> None:
        """The exchange holds `qty` (reconciliation): keep the average entry, rescale the cost."""
        if qty <= 0:
            raise ValueError("adopt_qty needs a positive qty (use apply_exit for flat)")
        avg = self.avg_entry if math.isfinite(self.avg_entry) else 0.0
        self.qty = qty
        self.cost = qty * avg

    def _next_id(self) -> int:
        self._fill_id += 1
        return self._fill_id

    # ---------------------------------------------------------------- persistence
    def snapshot(self) -> dict:
        """The ledger as a JSON-able dict (cycles excluded: stored as rows; nan as None)."""
        d = {}
        for k in _FIELDS:
            v = getattr(self, k)
            d[k] = list(v) if isinstance(v, list) else (None if isinstance(v, float) and math.isnan(v) else v)
        d["live"] = True
        return d

    def restore(self, state: dict, cycles: list[Cycle]) -> None:
        """Restore `snapshot()` output and the closed cycles."""
        for k in _FIELDS:
            v = state.get(k)
            if k == "level_qty":
                v = list(v or [0.0] * self.n_levels)
            elif v is None and k in ("avg_entry", "stop", "unit", "take_profit"):
                v = math.nan
            setattr(self, k, v)
        self.cycles = list(cycles)
