"""The typed errors of the venue contract (`core.executor.gateway.Gateway`).

Every venue (the simulated one, an exchange through ccxt) raises these and nothing else, so
the executor's rules are venue-independent:

* `GatewayUnavailable` (and `RateLimited`): the request was NOT processed; it may be retried.
* `OrderUnknown`: an order-changing request failed in transport; the order MAY exist. Never
  re-send it: look it up by client id first (`Gateway.reconcile_order`).
* `OrderRejected` (and `DuplicateClientId`, `StopCrossed`): the venue refused the order.
* `OrderNotFound`: no order with this client id is open.
* `MalformedAnswer`: the venue answered, but not in the documented shape (a field missing or
  not a number): names the call and the field; never read as "flat" or "no order".
* `AccountModeError`: the account is not set up as configured (margin / position mode): no trading.

Refinements a venue may raise where it can tell (all are `OrderRejected` or `AccountModeError`,
so a caller that only knows the base classes stays correct):

* `NoPositionToClose` (a reduce-only close found no position: the venue is flat),
  `InsufficientPosition` (a position stop/take-profit refused: no or too small a position),
  `StopAlreadyExists` (the venue holds its one whole-position stop already: amend it instead);
* `PositionModeMismatch` (the order's position-mode form does not fit the account's position
  mode) and `MarginModeLocked` (the margin mode cannot be changed while positions/orders exist).
"""

from __future__ import annotations

from core.errors import RadarError


class GatewayError(RadarError):
    """A venue call failed (base class)."""


class GatewayUnavailable(GatewayError):
    """The venue cannot be reached now (network, maintenance, circuit open); the call was not
    processed and may be retried."""


class RateLimited(GatewayUnavailable):
    """HTTP 429 / rate limit: retry after `retry_after_s` seconds (None: the venue did not say)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class OrderRejected(GatewayError):
    """The venue refused the order (price, size, margin, reduce-only, ...)."""


class DuplicateClientId(OrderRejected):
    """An order with this client id exists already (e.g. placed before a crash)."""


class StopCrossed(OrderRejected):
    """A stop was refused because its trigger price is already crossed by the mark price: the
    position must be closed at market now."""


class OrderNotFound(GatewayError):
    """No open order with this client id (filled, cancelled, or never placed)."""


class OrderUnknown(GatewayError):
    """An order create / amend / close failed in transport: the order MAY exist at the venue.

    Never re-send blindly: look it up by `client_id` (`Gateway.reconcile_order`) first.
    """

    def __init__(self, client_id: str, message: str) -> None:
        self.client_id = client_id
        super().__init__(message)


class MalformedAnswer(GatewayError):
    """The venue's answer to `call` lacks `field` or has it in the wrong form (`detail`)."""

    def __init__(self, call: str, field: str, detail: str = "") -> None:
        self.call = call
        self.field = field
        super().__init__(f"malformed answer to {call}: field {field!r} {detail or 'missing'}")


class AccountModeError(GatewayError):
    """The account is not in the configured margin mode / one-way position mode: refuse to trade."""


class NoPositionToClose(OrderRejected):
    """A reduce-only close was refused because the venue holds no position of the symbol
    (Bitget 22002): the venue is flat. Confirm with a position read before acting on it."""


class InsufficientPosition(OrderRejected):
    """A position stop / take-profit was refused because there is no position (or it is on the
    other side / smaller than the order) (Bitget 43023)."""


class StopAlreadyExists(OrderRejected):
    """The venue already holds the symbol's whole-position stop (Bitget 43024): look it up and
    amend it instead of placing another one."""


class PositionModeMismatch(OrderRejected, AccountModeError):
    """The order's position-mode form (one-way vs hedge) does not fit the account's position mode
    (Bitget 40774): the account is not set up as configured; refuse to trade."""


class MarginModeLocked(AccountModeError):
    """The margin mode cannot be changed while the symbol has positions or orders (Bitget
    45117); whether the account is in the configured mode must be read, not assumed."""
