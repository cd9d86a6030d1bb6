"""Counts of the errors the exchange calls raised, by kind: read by the metrics at scrape time.

Every call a live gateway makes to the exchange goes through one place
(`core.venues.bitget.gateway.CcxtGateway._call`), which records each exception it sees here
before the gateway maps it to a typed error (`core.venues.bitget.errors.map_error`):

    EXCHANGE_ERRORS.record("bitget", exc)
    EXCHANGE_ERRORS.counts()       # {("bitget", "NetworkError"): 3, ...}

Kinds (`KINDS`, by the ccxt class, most specific first): RateLimitExceeded (ccxt
RateLimitExceeded / DDoSProtection), NetworkError (every other ccxt NetworkError: timeouts,
exchange not available, ...), InvalidOrder, InsufficientFunds, ExchangeError (every other ccxt
ExchangeError), other (anything else: a bad answer the gateway could not read, an OSError, ...).
A call the circuit breaker refused never reached the exchange and is not counted. Counts are
per process (since the engine started); nothing blocks (a Counter on the event loop's thread).
"""

from __future__ import annotations

import threading
from collections import Counter

#: Every kind, in the order they are tested (a subclass before its base class).
KINDS = ("RateLimitExceeded", "NetworkError", "InvalidOrder", "InsufficientFunds", "ExchangeError", "other")


def error_kind(exc: BaseException) -> str:
    """The kind of `exc` (see `KINDS`)."""
    try:
        import ccxt
    except ImportError:  # pragma: no cover - ccxt is a dependency
        return "other"
    if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
        return "RateLimitExceeded"
    if isinstance(exc, ccxt.NetworkError):
        return "NetworkError"
    if isinstance(exc, ccxt.InvalidOrder):
        return "InvalidOrder"
    if isinstance(exc, ccxt.InsufficientFunds):
        return "InsufficientFunds"
    if isinstance(exc, ccxt.ExchangeError):
        return "ExchangeError"
    return "other"


class ExchangeErrors:
    """Errors of exchange calls by (venue, kind) (see the module docstring)."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def record(self, venue: str, exc: BaseException) -> str:
        """Count `exc` raised by a call to `venue` (e.g. "bitget"); returns its kind."""
        kind = error_kind(exc)
        with self._lock:
            self._counts[(str(venue), kind)] += 1
        return kind

    def counts(self) -> dict[tuple[str, str], int]:
        """{(venue, kind): errors so far}, only the pairs seen."""
        with self._lock:
            return dict(self._counts)

    def venues(self) -> list[str]:
        """The venues with at least one error, sorted."""
        with self._lock:
            return sorted({v for v, _ in self._counts})

    def reset(self) -> None:
        """Forget every count (tests)."""
        with self._lock:
            self._counts.clear()


#: The process-wide counts (one engine per process).
EXCHANGE_ERRORS = ExchangeErrors()
