"""ccxt exceptions / Bitget error codes -> the gateway's typed errors.

The rule that matters for money: an order CREATE that failed in transport (timeout, reset
connection, HTTP 5xx) may still have reached the exchange, so it maps to `OrderUnknown`
(look the order up by client id before anything is re-sent), never to a plain
"retry me". The same failure on a READ maps to `GatewayUnavailable` (retry / back off;
never read as "no position").

| ccxt / Bitget                                   | create / amend / cancel       | read                |
|-------------------------------------------------|-------------------------------|---------------------|
| 429, DDoSProtection, RateLimitExceeded          | GatewayUnavailable(retry_after_s) (refused before processing)  |
| RequestTimeout, NetworkError, ExchangeNotAvailable, BadResponse | OrderUnknown   | GatewayUnavailable  |
| 40917 / 45122 (stop price already crossed)      | StopCrossed                   | -                   |
| 40786 / "duplicate clientOid"                   | DuplicateClientId             | -                   |
| OrderNotFound (40768, 40109, 43001)             | OrderNotFound                 | OrderNotFound       |
| InsufficientFunds, InvalidOrder, BadRequest, other exchange answers | OrderRejected | GatewayError     |
| AuthenticationError, PermissionDenied           | GatewayError (fatal: fix the keys) |                |
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import ccxt

from core.model.errors import (
    DuplicateClientId,
    GatewayError,
    GatewayUnavailable,
    OrderNotFound,
    OrderRejected,
    OrderUnknown,
    RateLimited,
    StopCrossed,
)

#: Bitget codes meaning "the stop/trigger price is already on the wrong side of the mark price".
STOP_CROSSED_CODES = frozenset({"40917", "45122"})
#: Bitget codes meaning "this clientOid was used already".
DUPLICATE_CODES = frozenset({"40786", "40757"})

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
    """The typed error for `exc` raised by a ccxt call.

    Args:
        op: "create" (an order may have been sent), "amend", "cancel" or "read".
        client_id: the order's client id (for OrderUnknown and messages).
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
        if op == "create":
            return OrderUnknown(client_id or "", f"outcome unknown, look it up by client id before re-sending: {text}")
        return GatewayUnavailable(text)
    if code in STOP_CROSSED_CODES:
        return StopCrossed(text)
    if code in DUPLICATE_CODES or "duplicate" in str(exc).lower() and "clientoid" in str(exc).lower():
        return DuplicateClientId(text)
    if isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFound(text)
    if isinstance(exc, (ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.AccountSuspended)):
        return GatewayError(f"credentials/permissions refused (fix the API keys): {text}")
    if op in ("create", "amend") and isinstance(exc, ccxt.ExchangeError):
        return OrderRejected(text)
    if op == "cancel" and isinstance(exc, ccxt.ExchangeError):
        return OrderRejected(text)
    return GatewayError(text)
