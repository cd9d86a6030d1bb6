"""`AsyncGateway`: the `Gateway` protocol (core.executor.gateway) as coroutines, for venues
reached over the network (`CcxtGateway`). Same types, same typed errors, plus:

* `place_order` and `close_position` may raise `OrderUnknown` (core.executor.bitget_errors):
  the request failed in transport and the order MAY exist; call `reconcile_order(client_id)`
  before anything is re-sent;
* `fetch_position` never reports flat on an error: it raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from core.executor.gateway import GatewayFill, OpenOrder, OrderRequest, PositionInfo


@dataclass(frozen=True, slots=True)
class OrderState:
    """What the venue says about one order (by client id).

    status: "open" (resting, possibly partly filled) | "filled" | "cancelled" | "rejected".
    qty: ordered base units; filled: filled base units; avg_price: average fill price (None: no fill).
    fee: USDT paid on the filled part (None when the venue does not say).
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
    fee: float | None = None        # USDT paid on the filled part, as reported (None: not reported)


@runtime_checkable
class AsyncGateway(Protocol):
    """A network venue addressed by client order ids. All methods may raise `GatewayError`s."""

    external: bool

    async def place_order(self, order: OrderRequest, qty: float | None = None) -> OpenOrder:
        """Place `order` (`qty` base units; entries and stops need it).
        Raises DuplicateClientId, OrderRejected, GatewayUnavailable, OrderUnknown."""
        ...

    async def amend_order(self, client_id: str, price: float) -> OpenOrder:
        """Move a resting order to `price`. Raises OrderNotFound, OrderRejected."""
        ...

    async def cancel_order(self, client_id: str) -> None:
        """Cancel a resting order. Raises OrderNotFound."""
        ...

    async def close_position(self, client_id: str, ts: int, price: float | None, reason: str) -> GatewayFill | None:
        """Close the whole position at market; None when flat."""
        ...

    async def fetch_open_orders(self) -> list[OpenOrder]:
        ...

    async def fetch_position(self) -> PositionInfo:
        ...

    async def fetch_balance(self) -> float:
        """Cash of the account, USDT."""
        ...

    async def reconcile_order(self, client_id: str) -> OrderState | None:
        """Look an order up by client id after an `OrderUnknown` (or a restart): its state
        (open, filled, ...), None when the venue has no order with this id (safe to re-send).
        Raises GatewayUnavailable when the venue cannot tell (never None on an error)."""
        ...
