"""ccxt exceptions / Bitget error codes -> the gateway's typed errors (`core.model.errors`).

The rule that matters for money: an order CREATE or AMEND that failed in transport (timeout,
reset connection, HTTP 5xx) may still have reached the exchange, so it maps to `OrderUnknown`
(look the order up by client id before anything is re-sent; for an amend, Bitget re-creates
the order under the new client id, which may exist), never to a plain "retry me". The same
failure on a READ, a cancel or an account setting maps to `GatewayUnavailable` (retry / back
off; never read as "no position").

Bitget codes are matched explicitly BEFORE ccxt's exception class, because ccxt's `exceptions`
table (python ccxt 4.5, `bitget.describe()['exceptions']['exact']`) files several of them under
a generic class or not at all (then ccxt raises a bare `ExchangeError`):

| Bitget code | meaning (source)                                           | ccxt 4.5 class  | typed error            |
|-------------|------------------------------------------------------------|-----------------|------------------------|
| 429         | rate limited (Bitget docs; HTTP 429)                       | DDoSProtection  | RateLimited(retry_after_s) |
| 40917/45122 | stop price already crossed by the mark (ccxt table)        | InvalidOrder    | StopCrossed            |
| 40786/40757 | clientOid used already (assumed: the issue / stand-in)     | -               | DuplicateClientId      |
| 22002       | no position to close (Bitget docs error-code list)         | -               | NoPositionToClose      |
| 43023       | insufficient position for a TP/SL (assumed: the issue)     | -               | InsufficientPosition   |
| 43024       | a position stop exists already (assumed: the issue)        | -               | StopAlreadyExists      |
| 40774       | order type does not fit the one-way position mode (ccxt table message: "The order type for unilateral position must also be the unilateral position type.") | InvalidOrder | PositionModeMismatch |
| 45117       | margin mode locked by positions/orders (assumed: the issue) | -              | MarginModeLocked       |
| 22003       | modify price/size needs newClientOid (Bitget docs)         | -               | OrderRejected          |
| 22001       | no order to cancel (Bitget docs)                           | -               | OrderNotFound          |
| 40768/40109/43001/43025 | order / plan order does not exist (ccxt table)  | OrderNotFound / InvalidOrder | OrderNotFound |

Then by ccxt class:

| ccxt                                            | create / amend                | read / cancel / setting |
|-------------------------------------------------|-------------------------------|-------------------------|
| DDoSProtection, RateLimitExceeded               | RateLimited (refused before processing)                 |
| RequestTimeout, NetworkError, ExchangeNotAvailable, BadResponse | OrderUnknown  | GatewayUnavailable      |
| OrderNotFound                                   | OrderNotFound                 | OrderNotFound           |
| AuthenticationError, PermissionDenied           | GatewayError (fatal: fix the keys)                      |
| any other exchange answer                       | OrderRejected                 | cancel: OrderRejected; read/setting: GatewayError |
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import ccxt

from core.model.errors import (
    DuplicateClientId,
    GatewayError,
    GatewayUnavailable,
    InsufficientPosition,
    MarginModeLocked,
    NoPositionToClose,
    OrderNotFound,
    OrderRejected,
    OrderUnknown,
    PositionModeMismatch,
    RateLimited,
    StopAlreadyExists,
    StopCrossed,
)

#: Bitget codes meaning "the stop/trigger price is already on the wrong side of the mark price".
STOP_CROSSED_CODES = frozenset({"40917", "45122"})
#: Bitget codes meaning "this clientOid was used already".
DUPLICATE_CODES = frozenset({"40786", "40757"})
#: Bitget codes meaning "no such (open) order".
NOT_FOUND_CODES = frozenset({"40768", "40109", "43001", "43025", "22001"})
#: Bitget code -> typed error class, for codes ccxt files too generically (module docstring).
CODE_ERRORS: dict[str, type[GatewayError]] = {
    "22002": NoPositionToClose,
    "43023": InsufficientPosition,
    "43024": StopAlreadyExists,
    "40774": PositionModeMismatch,
    "45117": MarginModeLocked,
    "22003": OrderRejected,
}

#: operations whose transport failure leaves an order in an unknown state.
UNKNOWN_ON_TRANSPORT = frozenset({"create", "amend"})

_CODE_RE = re.compile(r'"code"\s*:\s*"?(\d+)"?')


def bitget_code(exc: BaseException) -> str | None:
    """The Bitget `code` in a ccxt error's message (ccxt puts the response body there), or None."""
    m = _CODE_RE.search(str(exc))
    return m.group(1) if m else None


def retry_after_s(headers: Mapping[str, Any] | None) -> float | None:
    """Seconds from a Retry-After header (case-insensitive), None when absent or not a number."""
    if not headers:
        return None
    for k, v in headers.items():
        if str(k).lower() == "retry-after":
            try:
                return max(0.0, float(v))
            except (TypeError, ValueError):
                return None
    return None


def map_error(exc: BaseException, *, op: str, client_id: str | None = None,
              headers: Mapping[str, Any] | None = None) -> GatewayError:
    """The typed error for `exc` raised by a ccxt call (see the module docstring).

    Args:
        op: "create" (an order may have been sent), "amend" (an order may have been re-created
            under `client_id`), "cancel", "setting" (account settings) or "read".
        client_id: the order's client id (for OrderUnknown and messages); for an amend, the NEW
            client id the re-created order would carry.
        headers: the last response's headers (for Retry-After on 429).
    """
    if isinstance(exc, GatewayError):
        return exc
    what = f"{op} {client_id}" if client_id else op
    text = f"{what}: {type(exc).__name__}: {str(exc)[:300]}"
    code = bitget_code(exc)
    # 429 first: ccxt's DDoSProtection/RateLimitExceeded are NetworkErrors, but the request was refused.
    if isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)) or code == "429":
        return RateLimited(text, retry_after_s(headers))
    if isinstance(exc, (ccxt.NetworkError, ccxt.BadResponse, TimeoutError, ConnectionError, OSError)):
        if op in UNKNOWN_ON_TRANSPORT:
            return OrderUnknown(client_id or "", f"outcome unknown, look it up by client id before re-sending: {text}")
        return GatewayUnavailable(text)
    if code in STOP_CROSSED_CODES:
        return StopCrossed(text)
    if code in DUPLICATE_CODES or "duplicate" in str(exc).lower() and "clientoid" in str(exc).lower():
        return DuplicateClientId(text)
    if code in CODE_ERRORS:
        return CODE_ERRORS[code](text)
    if code in NOT_FOUND_CODES or isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFound(text)
    if isinstance(exc, (ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.AccountSuspended)):
        return GatewayError(f"credentials/permissions refused (fix the API keys): {text}")
    if op in ("create", "amend", "cancel") and isinstance(exc, ccxt.ExchangeError):
        return OrderRejected(text)
    return GatewayError(text)
