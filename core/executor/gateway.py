"""The `Gateway` protocol: what the executor needs from a venue (paper or an exchange).

Orders are addressed by CLIENT order id (`core.executor.client_ids`), so a restarted engine
re-derives the ids of orders it already sent and a venue refuses a duplicate. Prices are
quote currency, quantities base units, times ms UTC.

Implementations: `core.executor.paper.PaperGateway` (the backtester's matching engine);
a `CcxtGateway` (live) comes later and must raise the typed errors below.

`external`: True when a call leaves the process (a real exchange). The executor then makes
its write-ahead records durable (COMMIT) before every call; with an in-process venue
(`external = False`, state persisted in the same transaction) one transaction per candle
is enough, because a crash loses the venue's change together with the records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from core.errors import RadarError


class GatewayError(RadarError):
    """A gateway call failed (base class)."""


class GatewayUnavailable(GatewayError):
    """The venue cannot be reached now (network, maintenance); the call may be retried."""


class OrderRejected(GatewayError):
    """The venue refused the order (price, size, margin, reduce-only, ...)."""


class DuplicateClientId(OrderRejected):
    """An order with this client id exists already (e.g. placed before a crash)."""


class OrderNotFound(GatewayError):
    """No open order with this client id (filled, cancelled, or never placed)."""


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One order to place.

    Attributes:
        client_id: deterministic client order id. symbol: ccxt unified symbol.
        purpose: "entry" | "take_profit" | "stop" | "exit". side: "buy" | "sell".
        price: limit price (entries, take-profit) or trigger price (stop); None = market.
        level: level index for grid entries, -1 otherwise.
        reduce_only: exits only reduce the position.
    """

    client_id: str
    symbol: str
    purpose: str
    side: str
    price: float | None
    level: int = -1
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """An order resting at the venue (price quote currency; qty None when sized at fill time)."""

    client_id: str
    symbol: str
    purpose: str
    side: str
    price: float | None
    level: int = -1
    qty: float | None = None


@dataclass(frozen=True, slots=True)
class GatewayFill:
    """A fill reported by the venue (whole order; fee USDT; reason for exits: tp | sl | end | kill).

    pos_qty, pos_avg_entry, pos_stop: the position right after this fill (qty 0 after an exit),
    as the venue reports it; the stop is the one attached after the fill.
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
    """The venue's position of a symbol (qty 0 when flat; avg_entry/stop None when flat)."""

    symbol: str
    side: str
    qty: float
    avg_entry: float | None
    stop: float | None


@runtime_checkable
class Gateway(Protocol):
    """A venue, addressed by client order ids. All methods may raise `GatewayError`s."""

    external: bool

    def place_order(self, order: OrderRequest) -> OpenOrder:
        """Place `order`. Raises DuplicateClientId, OrderRejected, GatewayUnavailable."""
        ...

    def amend_order(self, client_id: str, price: float) -> OpenOrder:
        """Move a resting order to `price`. Raises OrderNotFound, OrderRejected."""
        ...

    def cancel_order(self, client_id: str) -> None:
        """Cancel a resting order. Raises OrderNotFound."""
        ...

    def close_position(self, client_id: str, ts: int, price: float | None, reason: str) -> GatewayFill | None:
        """Close the whole position at market (paper: at `price`); None when flat."""
        ...

    def fetch_open_orders(self) -> list[OpenOrder]:
        ...

    def fetch_position(self) -> PositionInfo:
        ...

    def fetch_balance(self) -> float:
        """Cash of the account, USDT."""
        ...
