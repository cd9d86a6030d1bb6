"""The `Gateway` protocol: what the executor needs from a venue, simulated or an exchange.

One executor per strategy family (`core.executor.grid_executor`, `core.executor.single_executor`)
drives every venue through this contract; paper and live differ only in the venue behind it:

* `core.venues.sim` — the simulated venue: the matching engines of the backtest, matched
  candle by candle (`on_candle`), in-process (`external = False`);
* `core.venues.bitget` — Bitget USDT-M perpetuals through ccxt (`external = True`).

Orders are addressed by CLIENT order id (`core.executor.client_ids`), so a restarted engine
re-derives the ids of orders it already sent and a venue refuses a duplicate. Prices are
quote currency, quantities base units, money USDT, times ms UTC. Every method may raise the
typed errors of `core.model.errors` and nothing else; in particular:

* an order-changing call that failed in transport raises `OrderUnknown`: the order MAY exist;
  `reconcile_order(client_id)` must be asked before anything is re-sent;
* a read never reports "flat" or "no order" on an error: it raises (`GatewayUnavailable`,
  `MalformedAnswer`).

Capabilities (class attributes):

* `external`: the venue lives outside the process. The executor then makes its write-ahead
  records durable (COMMIT) before every call; with an in-process venue, whose state is saved
  in the same transaction as the records, one transaction per candle is enough.
* `rests_take_profit`: the venue holds the take-profit as a resting order and matches it
  (simulated); False: the take-profit is client-side and the executor closes at market when
  the mark price touches it (Bitget: the take-profit moves every candle with the SMA).
* `renames_on_amend`: an amend re-creates the order under a new client id (Bitget documents
  modify-order as cancel-and-recreate and wants a fresh `newClientOid`); the executor records
  the new id before it sends the amend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

from core.model.orders import GatewayFill, OpenOrder, OrderRequest, OrderState, PositionInfo, VenueTrade


@dataclass(frozen=True, slots=True)
class ClosingFill:
    """How a position that the executor did not close itself was closed at the venue (a stop
    that triggered; in the simulated venue also a take-profit): volume-weighted price, qty
    (base units), fee (USDT), ts (ms UTC, None when not reported), reason ("sl", "tp"; None when
    the venue does not say: a stop, since the take-profit of an exchange is client-side)."""

    price: float
    qty: float
    fee: float
    ts: int | None = None
    reason: str | None = None


@runtime_checkable
class Gateway(Protocol):
    """One symbol of one account at a venue (see the module docstring)."""

    symbol: str
    external: bool
    rests_take_profit: bool
    renames_on_amend: bool

    async def start(self) -> None:
        """Connect and verify the account (margin mode, position mode, leverage).
        Raises AccountModeError (refuse to trade) or GatewayError."""
        ...

    async def close(self) -> None:
        """Release the connection (stops stay at the venue)."""
        ...

    async def on_candle(self, ts: int, o: float, h: float, lo: float, c: float) -> None:
        """The market went through this closed candle: a simulated venue matches its resting
        orders along the candle's path; an exchange already did (no-op)."""
        ...

    async def place_order(self, order: OrderRequest) -> OpenOrder:
        """Place `order`. Raises DuplicateClientId, OrderRejected (StopCrossed for a stop
        already crossed), GatewayUnavailable (not sent), OrderUnknown (may exist)."""
        ...

    async def amend_order(self, client_id: str, price: float, qty: float | None = None,
                          new_client_id: str | None = None) -> OpenOrder:
        """Move a resting order to `price` (and `qty`); with `renames_on_amend` it continues as
        `new_client_id`. Raises OrderNotFound, OrderRejected, OrderUnknown."""
        ...

    async def cancel_order(self, client_id: str) -> None:
        """Cancel a resting order. Raises OrderNotFound."""
        ...

    async def close_position(self, client_id: str, ts: int, price: float | None, reason: str) -> GatewayFill | None:
        """Close the whole position at market (reduce-only) under `client_id`; None when flat.
        `price`: the last known price (the simulated venue fills there). Raises OrderUnknown."""
        ...

    async def fetch_order_state(self, client_id: str) -> OrderState:
        """The state of one order (fills included). Raises OrderNotFound."""
        ...

    async def reconcile_order(self, client_id: str) -> OrderState | None:
        """Look an order up by client id after an `OrderUnknown` or a restart: its state, None
        when the venue has no order with this id (safe to re-send). Raises GatewayUnavailable
        when the venue cannot tell (never None on an error)."""
        ...

    async def fetch_all_open_orders(self) -> tuple[list[OpenOrder], list[dict]]:
        """(ours, foreign): our open orders of every kind, and the symbol's orders without our
        prefix as dicts {id, client_id, kind, side, price, qty}. Raises when any read fails."""
        ...

    async def fetch_order_history(self, since_ms: int) -> list[OrderState]:
        """Our orders (this installation's prefix, any database epoch) created since `since_ms`,
        of every status, as far back as the venue keeps them. Raises when a read fails."""
        ...

    async def fetch_position(self) -> PositionInfo:
        """The position (qty 0 when flat). Raises on any failure: an error is never "flat"."""
        ...

    async def fetch_stop(self) -> OpenOrder | None:
        """The whole-position stop of the symbol (ours or not), None when there is none."""
        ...

    async def drop_preset_stops(self) -> int:
        """Cancel the stops the venue attached to filled entries (`OrderRequest.preset_stop`)
        once the whole-position stop covers the position. Returns how many were cancelled."""
        ...

    async def fetch_closing_fill(self, entry_side: str, qty: float) -> ClosingFill | None:
        """How the position (of `qty` base units, opened by `entry_side` orders) was closed,
        None when the venue's fills do not show it. Raises GatewayError when the read fails."""
        ...

    async def fetch_recent_trades(self, enough: Callable[[list[VenueTrade]], bool]) -> list[VenueTrade]:
        """The account's most recent trades of the symbol, read newest first (page by page on
        an exchange) until `enough(trades_so_far_newest_first)` says True or the list ends;
        returned OLDEST first (by ts, then seq). Used to put fills that one poll found in
        their real order (a stop-out and a later entry fill seen together). Raises
        GatewayError when a read fails, MalformedAnswer."""
        ...

    async def fetch_balance(self) -> float:
        """Cash of the account, USDT (realised; unrealised P&L excluded)."""
        ...

    async def fetch_mark_price(self) -> float:
        """The symbol's mark price (quote currency)."""
        ...

    def price_of(self, price: float) -> float:
        """`price` rounded to the venue's price precision."""
        ...

    def amount_of(self, qty: float) -> float:
        """`qty` rounded to the venue's amount precision (base units); 0.0 below it."""
        ...

    def min_amount(self) -> float:
        """The smallest order amount (base units; 0 when the venue does not say)."""
        ...
