"""Orders, fills and positions as they cross the venue contract (`core.executor.gateway`).

Orders are addressed by CLIENT order id (`core.executor.client_ids`). Prices are quote
currency (USDT), quantities base units, times ms UTC, money USDT.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One order to place.

    Attributes:
        client_id: deterministic client order id. symbol: ccxt unified symbol.
        purpose: "entry" | "take_profit" | "stop" | "exit". side: "buy" | "sell".
        price: limit price (entries, take-profit) or trigger price (stop); None = market.
        level: level index for grid entries, -1 otherwise.
        reduce_only: exits only reduce the position.
        qty: base units (entries, stops and exits on an exchange; the simulated venue sizes
            entries by the cycle's notional and ignores it).
        preset_stop: a stop-loss trigger price attached to an entry, held by the venue from
            the moment the entry fills (Bitget `presetStopLossPrice`); None = none.
    """

    client_id: str
    symbol: str
    purpose: str
    side: str
    price: float | None
    level: int = -1
    reduce_only: bool = False
    qty: float | None = None
    preset_stop: float | None = None


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """An order resting at the venue (price quote currency; qty base units, None when sized at fill time)."""

    client_id: str
    symbol: str
    purpose: str
    side: str
    price: float | None
    level: int = -1
    qty: float | None = None


@dataclass(frozen=True, slots=True)
class GatewayFill:
    """A fill reported by a venue (fee USDT; reason for exits: tp | sl | end | kill | ...).

    pos_qty, pos_avg_entry, pos_stop, pos_levels: the position right after this fill (qty 0
    after an exit), as the venue reports it.
    """

    client_id: str
    symbol: str
    ts: int
    purpose: str
    side: str
    price: float
    qty: float
    fee: float
    level: int = -1
    reason: str | None = None
    pos_qty: float = 0.0
    pos_avg_entry: float | None = None
    pos_stop: float | None = None
    pos_levels: int = 0


@dataclass(frozen=True, slots=True)
class PositionInfo:
    """The venue's position of a symbol: side "long" | "short" ("flat" with qty 0), qty base
    units (> 0 when open), avg_entry and stop quote prices (None when flat / no stop)."""

    symbol: str
    side: str
    qty: float
    avg_entry: float | None
    stop: float | None


@dataclass(frozen=True, slots=True)
class OrderState:
    """What the venue says about one order (by client id).

    status: "open" (resting, possibly partly filled) | "filled" | "cancelled" | "rejected".
    qty: ordered base units; filled: filled base units; avg_price: average fill price (None: no fill).
    fee: USDT paid on the filled part (None when the venue does not say).
    ts: ms UTC of the order's last fill as the venue reports it (None: not reported).
    reason: for the simulated venue's exits, the exit reason ("tp", "sl", ...); None otherwise.
    """

    client_id: str
    order_id: str | None
    status: str
    side: str | None
    price: float | None
    qty: float | None
    filled: float
    avg_price: float | None
    purpose: str = "entry"
    level: int = -1
    fee: float | None = None
    ts: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class VenueTrade:
    """One trade (fill) of the account at the venue, as its trade list reports it.

    trade_id: the venue's id of the trade. seq: its place in the venue's order of events
    (Bitget: the numeric tradeId, increasing; the simulated venue: a counter), the tie-break
    for trades of the same ms. order_id / client_id: the order it filled (either may be None
    when the venue does not say). side: "buy" | "sell". price: quote currency. qty: base
    units (> 0). fee: USDT paid (>= 0). ts: ms UTC as the venue reports it. reason: the exit
    reason when the venue knows it (the simulated venue's "tp" / "sl"), else None.
    """

    trade_id: str
    seq: int
    order_id: str | None
    client_id: str | None
    side: str
    price: float
    qty: float
    fee: float
    ts: int
    reason: str | None = None
