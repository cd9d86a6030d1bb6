"""PositionBook: the one position accounting of Radar (`../shared/specs/envelope_dca.md`, "Money").

One book per runner and symbol: the account's cash and the open position (qty, cost, average
entry, stop, levels filled, the cycle's fees), and the closed cycles. The simulated venue's
matching engines keep their account in a PositionBook (they subclass it), and the executor
keeps its own account of a runner in one, built from the fills a venue reports (simulated or
an exchange), so paper, replay and live book money with the same code, in the same order of
floating-point operations:

* `open_cycle(ts, unit)`: a cycle starts (first entry fill); `unit` is the USDT notional per
  level fixed for the cycle;
* `add_entry(level, price, qty, fee)`: cash −= fee; the cycle's fees += fee; qty += q;
  cost += q·X; average entry A = cost / qty;
* `close_cycle(ts, price, reason, fee)`: long realised `qty·(Y − A)`, short `qty·(A − Y)`;
  cash += realised − fee; the cycle's P&L is realised − the cycle's entry fees − the exit fee;
* `reduce(qty, price, fee)`: a part of the position closed by the venue (a partial stop on an
  exchange; never in the simulated venue): the same money rule on that part, the average entry
  kept; the cycle's P&L and its exit price (volume-weighted) include it when the cycle closes.

The stop is the strategy's (`GridStrategy.on_fill`), set by the owner after each entry.
Money is USDT (float64), prices quote currency, quantities base units, times ms UTC.
Cash never includes the notional: it is the margin account (capital + realised P&L − fees).
"""

from __future__ import annotations

import math

from core.model.account import Account
from core.model.cycle import Cycle
from core.model.fills import Fill
from core.model.sides import LONG

#: the fields `snapshot()` carries (JSON; nan as None)
BOOK_FIELDS = ("cash", "qty", "cost", "avg_entry", "stop", "levels_filled", "unit", "cycle_fees", "open_ts",
               "level_qty", "closed_qty", "closed_value", "cycle_realised")
#: fields older states did not carry, and their value then
_DEFAULTS = {"closed_qty": 0.0, "closed_value": 0.0, "cycle_realised": 0.0}
_NAN_FIELDS = frozenset({"avg_entry", "stop", "unit"})

#: a level counts as filled when at least this fraction of its ordered qty has filled
FILLED_FRACTION = 0.999


class PositionBook:
    """The account and position of one runner (see the module docstring).

    Args:
        side: "long" | "short". n_levels: levels per cycle (1 for single-position trades).
        account: starting cash (USDT), leverage and maker/taker fees (fractions).

    Attributes: side, n_levels, leverage, maker_fee, taker_fee, cash, qty (0 when flat), cost,
    avg_entry (nan when flat), stop (nan when flat), levels_filled (0 … n_levels), unit (USDT per
    level of the open cycle, nan when flat), cycle_fees, open_ts (ms UTC of the first fill, -1
    when flat), level_qty (filled base units per level), cycles (closed, oldest first), fills
    (recent `Fill`s, oldest first, appended by the owner and trimmed by `note_fill`).
    """

    __slots__ = ("side", "n_levels", "leverage", "maker_fee", "taker_fee", "cash", "qty", "cost", "avg_entry",
                 "stop", "levels_filled", "unit", "cycle_fees", "open_ts", "level_qty", "cycles", "fills",
                 "closed_qty", "closed_value", "cycle_realised")

    def __init__(self, side: str, n_levels: int, account: Account = Account()) -> None:
        self.side = side
        self.n_levels = int(n_levels)
        self.leverage = float(account.leverage)
        self.maker_fee = float(account.maker_fee)
        self.taker_fee = float(account.taker_fee)
        self.cash = float(account.initial_capital)
        self.cycles: list[Cycle] = []
        self.fills: list[Fill] = []
        self.reset_position()

    def reset_position(self) -> None:
        """Flat: no position, no open cycle."""
        self.qty = 0.0
        self.cost = 0.0
        self.avg_entry = math.nan
        self.stop = math.nan
        self.levels_filled = 0
        self.unit = math.nan
        self.cycle_fees = 0.0
        self.open_ts = -1
        self.level_qty = [0.0] * self.n_levels
        self.closed_qty = 0.0               # base units of the open cycle closed by `reduce`
        self.closed_value = 0.0             # sum of qty·price of those closes
        self.cycle_realised = 0.0           # their realised P&L less their fees, USDT

    # ---------------------------------------------------------------- queries
    @property
    def in_position(self) -> bool:
        """True while a position is open (at least one entry filled, partly or whole)."""
        return self.qty > 0

    @property
    def cycle(self) -> int:
        """Index of the open (or next) cycle = cycles closed so far."""
        return len(self.cycles)

    def equity(self, price: float) -> float:
        """Cash + unrealised P&L at `price` (no exit fee), USDT; the cash when flat."""
        if self.qty <= 0:
            return self.cash
        if self.side == LONG:
            return self.cash + self.qty * (price - self.avg_entry)
        return self.cash + self.qty * (self.avg_entry - price)

    def level_complete(self, level: int, ordered_qty: float | None) -> bool:
        """True when `level`'s filled qty reached FILLED_FRACTION of `ordered_qty` (None: any fill)."""
        q = self.level_qty[level]
        if q <= 0:
            return False
        return ordered_qty is None or q >= ordered_qty * FILLED_FRACTION

    # ---------------------------------------------------------------- money
    def open_cycle(self, ts: int, unit: float) -> None:
        """A cycle starts at `ts` (ms UTC) with `unit` USDT of notional per level."""
        self.qty = 0.0
        self.cost = 0.0
        self.cycle_fees = 0.0
        self.open_ts = ts
        self.unit = unit
        self.level_qty = [0.0] * self.n_levels

    def add_entry(self, level: int, price: float, qty: float, fee: float, complete: bool = True) -> float:
        """An entry fill of `qty` base units at `price` on `level`, `fee` USDT paid (`complete`:
        the level's order is now fully filled). Returns the new average entry.

        Raises:
            ValueError: a non-positive qty or price, or a level out of range.
        """
        if not (qty > 0 and price > 0 and 0 <= level < self.n_levels):
            raise ValueError(f"entry fill level {level} qty {qty} @ {price}: invalid")
        self.cash -= fee
        self.cycle_fees += fee
        self.qty += qty
        self.cost += qty * price
        avg = self.cost / self.qty
        self.avg_entry = avg
        self.level_qty[level] += qty
        if complete and level >= self.levels_filled:
            self.levels_filled = level + 1
        return avg

    def close_cycle(self, ts: int, price: float, reason: str, fee: float) -> Cycle:
        """The whole position closed at `price` at `ts` (ms UTC) for `reason`, `fee` USDT paid.
        Records and returns the cycle; the book is flat afterwards.

        Raises:
            ValueError: flat, or a non-positive price.
        """
        q = self.qty
        if q <= 0 or not price > 0:
            raise ValueError(f"exit @ {price}: no position or invalid price")
        a = self.avg_entry
        real = q * (price - a) if self.side == LONG else q * (a - price)
        self.cash += real - fee
        pnl = real - self.cycle_fees - fee
        exit_price = price
        if self.closed_qty:                 # parts closed earlier by the venue (`reduce`)
            pnl += self.cycle_realised
            exit_price = (self.closed_value + q * price) / (self.closed_qty + q)
            q += self.closed_qty
        cyc = Cycle(open_time=self.open_ts, close_time=ts, side=self.side,
                    levels_filled=self.levels_filled if self.levels_filled > 0 else 1, avg_entry=a,
                    exit_price=exit_price, exit_reason=reason, qty=q, pnl=pnl)
        self.cycles.append(cyc)
        self.reset_position()
        return cyc

    def reduce(self, qty: float, price: float, fee: float) -> float:
        """Part of the position (`qty` base units) closed at `price` by the venue, `fee` USDT
        paid: the money rule of an exit on that part; the average entry is kept. Returns the
        realised P&L of the part (before the fee).

        Raises:
            ValueError: qty not in (0, position qty), or a non-positive price.
        """
        if not (0 < qty < self.qty and price > 0):
            raise ValueError(f"partial close of {qty} @ {price} from a position of {self.qty}: invalid")
        a = self.avg_entry
        real = qty * (price - a) if self.side == LONG else qty * (a - price)
        self.cash += real - fee
        self.cycle_realised += real - fee
        self.closed_qty += qty
        self.closed_value += qty * price
        self.qty -= qty
        self.cost = self.qty * a
        return real

    def adopt_qty(self, qty: float) -> None:
        """The venue holds `qty` (reconciliation): keep the average entry, rescale the cost.

        Raises:
            ValueError: qty <= 0 (a flat venue is an exit, `close_cycle`).
        """
        if qty <= 0:
            raise ValueError("adopt_qty needs a positive qty (a flat venue is an exit)")
        avg = self.avg_entry if math.isfinite(self.avg_entry) else 0.0
        self.qty = qty
        self.cost = qty * avg

    def note_fill(self, fill: Fill, keep: int = 2000) -> None:
        """Append a fill to `fills`, keeping at most about `keep` of the most recent ones."""
        fills = self.fills
        fills.append(fill)
        if len(fills) > keep:
            del fills[:keep // 2]

    # ---------------------------------------------------------------- persistence
    def snapshot(self) -> dict:
        """The book as a JSON-able dict (closed cycles excluded: they are stored as rows; nan as None)."""
        d = {}
        for k in BOOK_FIELDS:
            v = getattr(self, k)
            d[k] = list(v) if isinstance(v, list) else (None if isinstance(v, float) and v != v else v)
        return d

    def restore(self, state: dict, cycles: list[Cycle]) -> None:
        """Restore `snapshot()` output and the closed cycles (missing `level_qty`: derived from
        levels_filled, as older states did not carry it)."""
        for k in BOOK_FIELDS:
            if k == "level_qty":
                lq = state.get("level_qty")
                self.level_qty = list(lq) if lq else [0.0] * self.n_levels
                continue
            v = state[k] if k in state else _DEFAULTS[k]
            if v is None and k in _NAN_FIELDS:
                v = math.nan
            setattr(self, k, v)
        self.cycles = list(cycles)
