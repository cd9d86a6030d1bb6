"""PaperGateway: the backtester's matching engine (`core.venues.sim.matching`) behind the `Gateway`
protocol, driven candle by candle by the feed (replayed or live).

One PaperGateway is one paper account for one (strategy, symbol): its own cash (the risk
config's initial capital), leverage and fees, exactly as a backtest, so a paper run over the
same candles gives the backtest's cycles to the cent.

Orders:
* entries (`purpose="entry"`, one per grid level) and the take-profit are resting orders the
  executor places, amends and cancels by client id; the matching engine reads their prices;
* the stop is attached to the position (like an exchange's position stop): the matching
  engine moves it after every entry fill to the price the strategy's `on_fill` returns,
  inside the same candle, exactly as the spec requires; it shows in `fetch_open_orders`
  with the client id of the cycle's stop;
* `close_position` is a market exit (taker fee).

`match_candle(ts, o, h, l, c)` walks the candle's intrabar path and returns the fills.
`snapshot()` / `restore()` carry the whole account and book through SQLite (JSON, floats exact).
"""

from __future__ import annotations

import math

from core.executor.client_ids import ClientIds
from core.model.account import Account
from core.model.cycle import Cycle
from core.model.errors import DuplicateClientId, OrderNotFound, OrderRejected
from core.model.fills import END, ENTRY, SL, TP
from core.model.orders import GatewayFill, OpenOrder, OrderRequest, PositionInfo
from core.model.sides import LONG
from core.strategies.base import GridStrategy
from core.venues.sim.matching import LongMatchingEngine, MatchingEngine, ShortMatchingEngine

_STATE_FIELDS = ("cash", "qty", "cost", "avg_entry", "stop", "levels_filled", "unit", "cycle_fees",
                 "open_ts", "_next_id", "level_ids", "stop_id", "tp_id")


class _Book(GridStrategy):
    """What the matching engine sees as its strategy: the resting orders' prices (set through
    the gateway) and the strategy's sizing and stop rule (position-attached stop)."""

    def __init__(self, strategy: GridStrategy, sizing_reserve: float = 0.0) -> None:
        self.strategy = strategy
        self.sizing_reserve = sizing_reserve
        self.name = strategy.name
        self.side = strategy.side
        self.num_levels = strategy.num_levels
        self.params = strategy.params
        self.levels = [math.nan] * strategy.num_levels
        self.take_profit = math.nan

    def on_candle_open(self, history) -> bool:  # pragma: no cover - never called on the book
        raise RuntimeError("the paper book is quoted through the gateway")

    def cycle_notional(self, cash: float, leverage: float) -> float:
        if self.sizing_reserve:
            cash = cash * (1.0 - self.sizing_reserve)
        return self.strategy.cycle_notional(cash, leverage)

    def on_fill(self, level: int, price: float, qty: float, avg_entry: float) -> float:
        return self.strategy.on_fill(level, price, qty, avg_entry)

    def on_exit(self, reason: str, price: float) -> None:
        self.strategy.on_exit(reason, price)


class PaperGateway:
    """A simulated venue for one grid strategy on one symbol (see the module docstring).

    Args:
        strategy: the runner's GridStrategy (sizing and stop rule).
        symbol: ccxt unified symbol.
        account: capital, leverage and fees.
        ids: the runner's client ids (to name the fills of the attached stop and market exits).
        sizing_reserve: fraction of the cash kept out of each cycle's sizing (0 = the spec's
            sizing, as the backtest; `core.executor.live_ledger.fee_reserve` on the live feed,
            as the live ledger sizes).
    """

    external = False

    def __init__(self, strategy: GridStrategy, symbol: str, account: Account, ids: ClientIds,
                 sizing_reserve: float = 0.0) -> None:
        self.symbol = symbol
        self.ids = ids
        self.book = _Book(strategy, sizing_reserve)
        cls = LongMatchingEngine if strategy.side == LONG else ShortMatchingEngine
        self.engine: MatchingEngine = cls(self.book, account, self._on_engine_fill)
        self._orders: dict[str, OpenOrder] = {}
        self._pending: list[GatewayFill] = []
        self._exit_client_id: str | None = None

    # ---------------------------------------------------------------- Gateway protocol
    def place_order(self, order: OrderRequest) -> OpenOrder:
        if order.client_id in self._orders:
            raise DuplicateClientId(f"client order id {order.client_id} is already open")
        oo = OpenOrder(order.client_id, self.symbol, order.purpose, order.side, order.price, order.level)
        self._set_price(oo, order.price)
        self._orders[order.client_id] = oo
        return oo

    def amend_order(self, client_id: str, price: float) -> OpenOrder:
        old = self._orders.get(client_id)
        if old is None:
            raise OrderNotFound(f"no open order {client_id}")
        oo = OpenOrder(client_id, self.symbol, old.purpose, old.side, price, old.level)
        self._set_price(oo, price)
        self._orders[client_id] = oo
        return oo

    def cancel_order(self, client_id: str) -> None:
        old = self._orders.pop(client_id, None)
        if old is None:
            raise OrderNotFound(f"no open order {client_id}")
        self._set_price(old, math.nan)

    def close_position(self, client_id: str, ts: int, price: float | None, reason: str) -> GatewayFill | None:
        if self.engine.levels_filled == 0:
            return None
        if price is None or not math.isfinite(price):
            raise OrderRejected("the paper venue needs a price for a market exit (the last close)")
        self._exit_client_id = client_id
        try:
            self.engine.close_position(ts, price, reason)
        finally:
            self._exit_client_id = None
        return self._take()[-1]

    def fetch_open_orders(self) -> list[OpenOrder]:
        out = list(self._orders.values())
        eng = self.engine
        if eng.levels_filled:
            cid = self.ids(len(eng.cycles), -1, "stop")
            out.append(OpenOrder(cid, self.symbol, "stop", eng._exit_side, eng.stop, -1, eng.qty))
        return out

    def fetch_position(self) -> PositionInfo:
        eng = self.engine
        if eng.levels_filled == 0:
            return PositionInfo(self.symbol, eng.side, 0.0, None, None)
        return PositionInfo(self.symbol, eng.side, eng.qty, eng.avg_entry, eng.stop)

    def fetch_balance(self) -> float:
        return self.engine.cash

    # ---------------------------------------------------------------- simulation
    def match_candle(self, ts: int, o: float, h: float, lo: float, c: float) -> list[GatewayFill]:
        """Walk one closed candle against the resting orders; the fills, in order."""
        self.engine.process_candle(ts, o, h, lo, c)
        return self._take() if self._pending else []

    @property
    def cycles(self) -> list[Cycle]:
        return self.engine.cycles

    def equity(self, price: float) -> float:
        eng = self.engine
        return eng.cash if eng.levels_filled == 0 else eng.equity(price)

    def snapshot(self) -> dict:
        """The account and book as a JSON-able dict (cycles excluded: stored as rows)."""
        eng = self.engine
        d = {f: getattr(eng, f) for f in _STATE_FIELDS}
        d["level_ids"] = list(eng.level_ids)
        return d

    def restore(self, state: dict, cycles: list[Cycle], open_orders: dict[str, list]) -> None:
        """Restore `snapshot()` output, the closed cycles and the resting orders
        (client_id -> [purpose, level, price]; the position's stop is restored with the account)."""
        eng = self.engine
        for f in _STATE_FIELDS:
            setattr(eng, f, state[f])
        eng.level_ids = list(state["level_ids"])
        eng.cycles = list(cycles)
        self.book.levels[:] = [math.nan] * self.book.num_levels
        self.book.take_profit = math.nan
        self._orders = {}
        exit_side = eng._exit_side
        for cid, (purpose, level, price) in open_orders.items():
            if purpose in ("entry", "take_profit"):
                side = eng._entry_side if purpose == "entry" else exit_side
                oo = OpenOrder(cid, self.symbol, purpose, side, price, level)
                self._set_price(oo, price)
                self._orders[cid] = oo

    # ---------------------------------------------------------------- internals
    def _set_price(self, oo: OpenOrder, price: float | None) -> None:
        p = math.nan if price is None else price
        if oo.purpose == "entry":
            if not 0 <= oo.level < self.book.num_levels:
                raise OrderRejected(f"{oo.client_id}: no grid level {oo.level}")
            self.book.levels[oo.level] = p
        elif oo.purpose == "take_profit":
            self.book.take_profit = p
        else:
            raise OrderRejected(f"{oo.client_id}: the paper venue attaches the stop to the position; "
                                f"cannot rest a {oo.purpose!r} order")

    def _take(self) -> list[GatewayFill]:
        out = self._pending
        self._pending = []
        return out

    def _on_engine_fill(self, f) -> None:
        eng = self.engine
        if f.kind == ENTRY:
            cid = self.ids(len(eng.cycles), f.level, "entry")
            self._orders.pop(cid, None)
            purpose = "entry"
        else:
            cycle = len(eng.cycles) - 1          # the cycle was recorded before the fill is reported
            if f.reason == SL:
                cid, purpose = self.ids(cycle, -1, "stop"), "stop"
            elif f.reason == TP:
                cid, purpose = self.ids(cycle, -1, "take_profit"), "take_profit"
                self._orders.pop(cid, None)
            else:
                cid, purpose = self._exit_client_id or self.ids(cycle, -1, "exit"), "exit"
        if f.kind == ENTRY:
            pos = (eng.qty, eng.avg_entry, eng.stop, eng.levels_filled)
        else:
            pos = (0.0, None, None, 0)
        self._pending.append(GatewayFill(cid, self.symbol, f.ts, purpose, f.side, f.price, f.qty, f.fee,
                                         f.level, f.reason, *pos))


__all__ = ["PaperGateway", "END"]
