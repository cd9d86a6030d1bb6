"""CircuitBreaker: stops hammering an exchange that is not answering, and probes until it answers again.

States (`CircuitState`):

* closed: calls go through. Each transport/availability failure (see
  `is_transport_error`: ccxt NetworkError such as RequestTimeout,
  ExchangeNotAvailable, DDoSProtection/RateLimitExceeded, plus BadResponse, the
  executor gateway's GatewayUnavailable, TimeoutError and ConnectionError) adds
  to a streak; `failure_threshold` failures in a row open the circuit. A call
  the exchange answered - success or a business rejection such as
  InsufficientFunds, InvalidOrder or the gateway's OrderRejected (any other ccxt
  or gateway error) - ends the streak.
* open: every call is refused at once with `CircuitOpenError` (the function is
  not called) until the cool-down has passed.
* half-open: after the cool-down exactly one call (the probe) goes through;
  other calls meanwhile are refused. The exchange answering the probe closes
  the circuit; a transport failure opens it again for another cool-down
  (doubling each time up to `max_cooldown_s`, when given). A probe that is
  cancelled or fails with a non-exchange error (a bug) decides nothing: the
  next call probes again.

Use: `ticker = await breaker.call(exchange.fetch_ticker, "BTC/USDT:USDT")`.
Not thread-safe: use one breaker from one event loop. Time comes from an
injectable ms-UTC clock; `core.health.checks.exchange_check` turns
`breaker.stats()` into a health `Check`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Callable

from core.errors import RadarError
from core.model.clock import Clock, format_ms, system_clock
from core.model.errors import GatewayError, GatewayUnavailable

log = logging.getLogger(__name__)

#: Longest error text kept in stats and messages.
MAX_ERROR_CHARS = 200


class CircuitState(StrEnum):
    """Where a circuit breaker is: closed (calls pass), open (calls refused), half_open (one probe)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(RadarError):
    """A call was refused because the circuit is open (or half-open with its probe in flight).

    The wrapped function was not called. Exit code 1.

    Attributes:
        name: the breaker's name, e.g. "bitget".
        state: open or half_open.
        retry_at_ms: when a probe will be allowed (ms UTC); for half-open, now.
        last_error: the failure that opened the circuit (text), or None.
    """

    def __init__(self, name: str, state: CircuitState, retry_at_ms: int, last_error: str | None) -> None:
        self.name = name
        self.state = state
        self.retry_at_ms = retry_at_ms
        self.last_error = last_error
        if state is CircuitState.HALF_OPEN:
            what = "half-open, a probe call is in flight"
        else:
            what = f"open until {format_ms(retry_at_ms)}"
        cause = f" (last error: {last_error})" if last_error else ""
        super().__init__(f"{name}: circuit {what}; call refused{cause}")


def is_transport_error(exc: BaseException) -> bool:
    """True for errors meaning the exchange could not be reached or did not answer properly.

    Counted: ccxt.NetworkError and its subclasses (RequestTimeout, ExchangeNotAvailable,
    OnMaintenance, DDoSProtection, RateLimitExceeded) except InvalidNonce (a client clock/nonce
    problem), ccxt.BadResponse, the executor's `GatewayUnavailable`, and the builtin
    TimeoutError (= asyncio.TimeoutError) and ConnectionError. Not counted: business rejections
    (ccxt.ExchangeError: InsufficientFunds, InvalidOrder, AuthenticationError, ...; the
    gateway's OrderRejected, OrderNotFound) and everything else.
    """
    import ccxt  # imported here: `radar health` must not pay for ccxt at start-up

    if isinstance(exc, ccxt.InvalidNonce):
        return False
    return isinstance(exc, (ccxt.NetworkError, ccxt.BadResponse, GatewayUnavailable, TimeoutError,
                            ConnectionError))


def is_exchange_answer(exc: BaseException) -> bool:
    """True for an error that is the exchange's answer (it was reachable): any ccxt error or
    `core.executor.gateway.GatewayError` that `is_transport_error` does not count."""
    import ccxt

    return isinstance(exc, (ccxt.BaseError, GatewayError)) and not is_transport_error(exc)


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


@dataclass(frozen=True)
class BreakerStats:
    """A snapshot of a breaker (times ms UTC; None: never).

    Attributes:
        name: the breaker's name.
        state: as `CircuitBreaker.state` (an open circuit whose cool-down has passed is half_open).
        consecutive_failures: transport failures in a row (reset when the exchange answers).
        failure_threshold: failures in a row that open the circuit.
        total_failures: transport failures since creation.
        rejected: calls refused with CircuitOpenError since creation.
        last_success_ms: the latest call the exchange answered (success or business rejection).
        last_failure_ms: the latest transport failure.
        last_error: text of the latest transport failure.
        opened_ms: when the circuit last opened (None when closed).
        retry_at_ms: when an open circuit allows its probe (None when closed).
    """

    name: str
    state: CircuitState
    consecutive_failures: int
    failure_threshold: int
    total_failures: int
    rejected: int
    last_success_ms: int | None
    last_failure_ms: int | None
    last_error: str | None
    opened_ms: int | None
    retry_at_ms: int | None


class CircuitBreaker:
    """Closed -> open after N transport failures, open -> half-open after a cool-down, one probe decides.

    Args:
        name: what it guards, for messages and stats, e.g. "bitget" or "bitget-private".
        failure_threshold: transport failures in a row that open the circuit (>= 1; default 5).
        cooldown_s: seconds an opened circuit refuses calls before a probe (> 0; default 30).
        max_cooldown_s: when given (>= cooldown_s), each failed probe doubles the cool-down up
            to this many seconds; closing resets it. None: the cool-down is always `cooldown_s`.
        clock: current time, int ms UTC (tests pass a `core.alerts.ManualClock`).
        is_failure: which exceptions count as failures (default `is_transport_error`).

    Raises:
        ValueError: a threshold < 1, a cool-down <= 0, or max_cooldown_s < cooldown_s.
    """

    def __init__(self, name: str, *, failure_threshold: int = 5, cooldown_s: float = 30.0,
                 max_cooldown_s: float | None = None, clock: Clock = system_clock,
                 is_failure: Callable[[BaseException], bool] = is_transport_error) -> None:
        if failure_threshold < 1:
            raise ValueError(f"circuit breaker {name}: failure_threshold must be >= 1, got {failure_threshold}")
        if not cooldown_s > 0:
            raise ValueError(f"circuit breaker {name}: cooldown_s must be > 0 seconds, got {cooldown_s}")
        if max_cooldown_s is not None and max_cooldown_s < cooldown_s:
            raise ValueError(f"circuit breaker {name}: max_cooldown_s ({max_cooldown_s}) must be >= "
                             f"cooldown_s ({cooldown_s})")
        self.name = name
        self.failure_threshold = int(failure_threshold)
        self._base_cooldown_ms = int(cooldown_s * 1000)
        self._max_cooldown_ms = int((max_cooldown_s if max_cooldown_s is not None else cooldown_s) * 1000)
        self._cooldown_ms = self._base_cooldown_ms
        self._clock = clock
        self._is_failure = is_failure
        self._state = CircuitState.CLOSED
        self._probing = False
        self._streak = 0
        self._total_failures = 0
        self._rejected = 0
        self._last_success_ms: int | None = None
        self._last_failure_ms: int | None = None
        self._last_error: str | None = None
        self._opened_ms: int | None = None
        self._retry_at_ms: int | None = None

    # ------------------------------------------------------------------- state

    @property
    def state(self) -> CircuitState:
        """The current state; an open circuit whose cool-down has passed reads as half_open."""
        if self._state is CircuitState.OPEN and self._retry_at_ms is not None \
                and self._clock() >= self._retry_at_ms:
            return CircuitState.HALF_OPEN
        return self._state

    def stats(self) -> BreakerStats:
        """A snapshot of the counters and state."""
        return BreakerStats(
            name=self.name, state=self.state, consecutive_failures=self._streak,
            failure_threshold=self.failure_threshold, total_failures=self._total_failures,
            rejected=self._rejected, last_success_ms=self._last_success_ms,
            last_failure_ms=self._last_failure_ms, last_error=self._last_error,
            opened_ms=self._opened_ms, retry_at_ms=self._retry_at_ms)

    def reset(self) -> None:
        """Close the circuit now (operator override); clears the failure streak and the cool-down backoff."""
        self._close("reset")

    def _set(self, state: CircuitState, why: str) -> None:
        if state is self._state:
            return
        old, self._state = self._state, state
        level = logging.WARNING if state is CircuitState.OPEN else logging.INFO
        log.log(level, "circuit %s: %s -> %s (%s)", self.name, old.value, state.value, why)

    def _close(self, why: str) -> None:
        self._streak = 0
        self._probing = False
        self._cooldown_ms = self._base_cooldown_ms
        self._opened_ms = None
        self._retry_at_ms = None
        self._set(CircuitState.CLOSED, why)

    def _open(self, now: int, why: str) -> None:
        self._probing = False
        self._opened_ms = now
        self._retry_at_ms = now + self._cooldown_ms
        self._set(CircuitState.OPEN, why)

    # ------------------------------------------------------------------- calls

    def _admit(self) -> bool:
        """Let a call through or refuse it; True when the call is the half-open probe.

        Raises:
            CircuitOpenError: open within the cool-down, or half-open with the probe in flight.
        """
        if self._state is CircuitState.CLOSED:
            return False
        now = self._clock()
        if self._state is CircuitState.OPEN:
            assert self._retry_at_ms is not None
            if now < self._retry_at_ms:
                self._rejected += 1
                raise CircuitOpenError(self.name, CircuitState.OPEN, self._retry_at_ms, self._last_error)
            self._set(CircuitState.HALF_OPEN, "cool-down over, probing")
        if self._probing:
            self._rejected += 1
            raise CircuitOpenError(self.name, CircuitState.HALF_OPEN, now, self._last_error)
        self._probing = True
        return True

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`await fn(*args, **kwargs)` through the breaker; returns its result, raises what it raises.

        `fn` is normally a coroutine function (e.g. a ccxt async method); a plain function's
        result is returned as is.

        Raises:
            CircuitOpenError: refused without calling `fn` (open, or half-open with a probe in flight).
            whatever `fn` raises, after it was counted.
        """
        probe = self._admit()
        try:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
        except asyncio.CancelledError:
            if probe:
                self._probing = False
            raise
        except Exception as exc:
            if self._is_failure(exc):
                self._on_failure(exc, probe)
            elif is_exchange_answer(exc):  # the exchange answered: a business rejection
                self._on_answer(probe)
            elif probe:  # a bug or an unknown error: no verdict on the exchange
                self._probing = False
            raise
        except BaseException:
            if probe:
                self._probing = False
            raise
        self._on_answer(probe)
        return result

    def _on_answer(self, probe: bool) -> None:
        self._last_success_ms = self._clock()
        if probe:
            self._close("probe answered")
        elif self._state is CircuitState.CLOSED:
            self._streak = 0

    def _on_failure(self, exc: BaseException, probe: bool) -> None:
        now = self._clock()
        self._total_failures += 1
        self._last_failure_ms = now
        self._last_error = _error_text(exc)
        if probe:
            self._streak += 1
            self._cooldown_ms = min(self._cooldown_ms * 2, self._max_cooldown_ms)
            self._open(now, f"probe failed: {self._last_error}")
        elif self._state is CircuitState.CLOSED:
            self._streak += 1
            if self._streak >= self.failure_threshold:
                self._open(now, f"{self._streak} failures in a row, last: {self._last_error}")
