"""CircuitBreaker state machine (closed/open/half-open) on a manual clock, and the exchange health check."""

from __future__ import annotations

import asyncio

import ccxt
import pytest

from core.health.breaker import CircuitBreaker, CircuitOpenError, CircuitState, is_transport_error
from core.health.checks import exchange_check
from core.health.status import HealthStatus
from core.model.clock import ManualClock
from core.model.errors import GatewayUnavailable, OrderNotFound, OrderRejected

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC


class Exchange:
    """A fake exchange call: raises the queued errors in turn, then answers "ok"; counts calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def fetch(self, arg: str = "x") -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return f"ok:{arg}"


async def _fail(breaker: CircuitBreaker, exc: BaseException, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(type(exc)):
            await breaker.call(Exchange(exc).fetch)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def breaker(clock: ManualClock) -> CircuitBreaker:
    return CircuitBreaker("bitget", failure_threshold=3, cooldown_s=30, clock=clock)


async def test_closed_passes_results_and_args(breaker: CircuitBreaker) -> None:
    ex = Exchange()
    assert await breaker.call(ex.fetch, "BTC/USDT") == "ok:BTC/USDT"
    assert breaker.state is CircuitState.CLOSED
    assert breaker.stats().last_success_ms == T0


async def test_opens_after_threshold_failures_and_refuses_without_calling(breaker: CircuitBreaker) -> None:
    await _fail(breaker, ccxt.RequestTimeout("timed out"), 2)
    assert breaker.state is CircuitState.CLOSED
    await _fail(breaker, ccxt.ExchangeNotAvailable("502 bad gateway"))
    assert breaker.state is CircuitState.OPEN
    ex = Exchange()
    with pytest.raises(CircuitOpenError) as err:
        await breaker.call(ex.fetch)
    assert ex.calls == 0
    assert err.value.state is CircuitState.OPEN
    assert err.value.retry_at_ms == T0 + 30_000
    assert "502 bad gateway" in str(err.value) and "bitget" in str(err.value)
    stats = breaker.stats()
    assert (stats.consecutive_failures, stats.total_failures, stats.rejected) == (3, 3, 1)
    assert stats.opened_ms == T0 and "ExchangeNotAvailable" in (stats.last_error or "")


@pytest.mark.parametrize("exc", [
    ccxt.NetworkError("x"), ccxt.RequestTimeout("x"), ccxt.ExchangeNotAvailable("x"), ccxt.OnMaintenance("x"),
    ccxt.DDoSProtection("x"), ccxt.RateLimitExceeded("x"), ccxt.BadResponse("x"), TimeoutError("x"),
    ConnectionResetError("x"), GatewayUnavailable("bitget unreachable"),
])
async def test_transport_errors_count(exc: BaseException) -> None:
    assert is_transport_error(exc)
    b = CircuitBreaker("ex", failure_threshold=2, clock=ManualClock(T0))
    await _fail(b, exc, 2)
    assert b.state is CircuitState.OPEN


@pytest.mark.parametrize("exc", [
    ccxt.InsufficientFunds("x"), ccxt.InvalidOrder("x"), ccxt.OrderNotFound("x"), ccxt.AuthenticationError("x"),
    ccxt.BadSymbol("x"), ccxt.InvalidNonce("x"), OrderRejected("x"), OrderNotFound("x"), ValueError("a bug"),
])
async def test_business_rejections_and_bugs_never_open(exc: BaseException) -> None:
    assert not is_transport_error(exc)
    b = CircuitBreaker("ex", failure_threshold=2, clock=ManualClock(T0))
    await _fail(b, exc, 5)
    assert b.state is CircuitState.CLOSED
    assert b.stats().total_failures == 0


async def test_an_exchange_answer_ends_the_failure_streak(breaker: CircuitBreaker) -> None:
    await _fail(breaker, ccxt.RequestTimeout("t"), 2)
    await _fail(breaker, ccxt.InsufficientFunds("not enough USDT"))  # the exchange answered
    assert breaker.stats().consecutive_failures == 0
    await _fail(breaker, ccxt.RequestTimeout("t"), 2)
    assert breaker.state is CircuitState.CLOSED
    assert await breaker.call(Exchange().fetch) == "ok:x"
    await _fail(breaker, ccxt.RequestTimeout("t"), 2)
    assert breaker.state is CircuitState.CLOSED


async def test_a_bug_neither_counts_nor_resets(breaker: CircuitBreaker) -> None:
    await _fail(breaker, ccxt.RequestTimeout("t"), 2)
    await _fail(breaker, KeyError("bug"))
    assert breaker.stats().consecutive_failures == 2
    await _fail(breaker, ccxt.RequestTimeout("t"))
    assert breaker.state is CircuitState.OPEN


async def test_cool_down_then_half_open(breaker: CircuitBreaker, clock: ManualClock) -> None:
    await _fail(breaker, ccxt.RequestTimeout("t"), 3)
    clock.advance(29_999)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        await breaker.call(Exchange().fetch)
    clock.advance(1)
    assert breaker.state is CircuitState.HALF_OPEN
    ex = Exchange()
    assert await breaker.call(ex.fetch) == "ok:x"  # the probe
    assert ex.calls == 1
    assert breaker.state is CircuitState.CLOSED
    assert breaker.stats().consecutive_failures == 0 and breaker.stats().retry_at_ms is None


async def test_failed_probe_reopens_for_a_new_cool_down(breaker: CircuitBreaker, clock: ManualClock) -> None:
    await _fail(breaker, ccxt.RequestTimeout("t"), 3)
    clock.advance(30_000)
    await _fail(breaker, ccxt.ExchangeNotAvailable("still down"))
    assert breaker.state is CircuitState.OPEN
    assert breaker.stats().retry_at_ms == clock() + 30_000
    clock.advance(29_000)
    with pytest.raises(CircuitOpenError):
        await breaker.call(Exchange().fetch)
    clock.advance(1_000)
    assert await breaker.call(Exchange().fetch) == "ok:x"
    assert breaker.state is CircuitState.CLOSED


async def test_half_open_lets_exactly_one_concurrent_probe_through(breaker: CircuitBreaker,
                                                                   clock: ManualClock) -> None:
    await _fail(breaker, ccxt.RequestTimeout("t"), 3)
    clock.advance(30_000)
    release = asyncio.Event()
    calls = 0

    async def slow_probe() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "answered"

    probe = asyncio.create_task(breaker.call(slow_probe))
    await asyncio.sleep(0)
    assert calls == 1
    ex = Exchange()
    others = await asyncio.gather(*(breaker.call(ex.fetch) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(e, CircuitOpenError) and e.state is CircuitState.HALF_OPEN for e in others)
    assert (calls, ex.calls) == (1, 0)
    release.set()
    assert await probe == "answered"
    assert breaker.state is CircuitState.CLOSED
    assert breaker.stats().rejected == 5
    assert await breaker.call(Exchange().fetch) == "ok:x"


async def test_cancelled_probe_frees_the_slot(breaker: CircuitBreaker, clock: ManualClock) -> None:
    await _fail(breaker, ccxt.RequestTimeout("t"), 3)
    clock.advance(30_000)
    probe = asyncio.create_task(breaker.call(asyncio.sleep, 3600))
    await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert breaker.state is CircuitState.HALF_OPEN
    assert await breaker.call(Exchange().fetch) == "ok:x"
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize("rejection", [ccxt.InvalidOrder("price too far"), OrderRejected("reduce-only")])
async def test_business_rejection_of_the_probe_closes(breaker: CircuitBreaker, clock: ManualClock,
                                                      rejection: Exception) -> None:
    await _fail(breaker, ccxt.RequestTimeout("t"), 3)
    clock.advance(30_000)
    await _fail(breaker, rejection)
    assert breaker.state is CircuitState.CLOSED


async def test_bug_in_the_probe_decides_nothing(breaker: CircuitBreaker, clock: ManualClock) -> None:
    await _fail(breaker, ccxt.RequestTimeout("t"), 3)
    clock.advance(30_000)
    await _fail(breaker, ValueError("bug"))
    assert breaker.state is CircuitState.HALF_OPEN
    await _fail(breaker, ccxt.RequestTimeout("t"))  # the next call is the probe
    assert breaker.state is CircuitState.OPEN


async def test_cool_down_doubles_up_to_the_max_and_resets_on_close(clock: ManualClock) -> None:
    b = CircuitBreaker("ex", failure_threshold=1, cooldown_s=10, max_cooldown_s=25, clock=clock)
    await _fail(b, ccxt.RequestTimeout("t"))
    assert b.stats().retry_at_ms == clock() + 10_000
    for expected_ms in (20_000, 25_000, 25_000):
        clock.advance(b.stats().retry_at_ms - clock())
        await _fail(b, ccxt.RequestTimeout("t"))
        assert b.stats().retry_at_ms == clock() + expected_ms
    clock.advance(25_000)
    await b.call(Exchange().fetch)
    await _fail(b, ccxt.RequestTimeout("t"))
    assert b.stats().retry_at_ms == clock() + 10_000


async def test_late_success_of_an_old_call_does_not_close_an_open_circuit(breaker: CircuitBreaker) -> None:
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "late"

    old = asyncio.create_task(breaker.call(slow))
    await asyncio.sleep(0)
    await _fail(breaker, ccxt.RequestTimeout("t"), 3)
    release.set()
    assert await old == "late"
    assert breaker.state is CircuitState.OPEN


async def test_reset_closes(breaker: CircuitBreaker) -> None:
    await _fail(breaker, ccxt.RequestTimeout("t"), 3)
    breaker.reset()
    assert breaker.state is CircuitState.CLOSED
    assert await breaker.call(Exchange().fetch) == "ok:x"


def test_bad_settings_raise() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker("x", failure_threshold=0)
    with pytest.raises(ValueError, match="cooldown_s"):
        CircuitBreaker("x", cooldown_s=0)
    with pytest.raises(ValueError, match="max_cooldown_s"):
        CircuitBreaker("x", cooldown_s=10, max_cooldown_s=5)


async def test_exchange_check_follows_the_breaker(breaker: CircuitBreaker, clock: ManualClock) -> None:
    check = exchange_check(breaker.stats, clock=clock)
    assert check().status is HealthStatus.OK
    await _fail(breaker, ccxt.RequestTimeout("read timed out"))
    c = check()
    assert c.status is HealthStatus.DEGRADED
    assert "1 failures in a row" in c.reason and "read timed out" in c.reason
    await _fail(breaker, ccxt.RequestTimeout("read timed out"), 2)
    c = check()
    assert c.status is HealthStatus.DOWN and "circuit open" in c.reason and "probe in 30s" in c.reason
    clock.advance(30_000)
    assert check().status is HealthStatus.DOWN and "half-open" in check().reason
    await breaker.call(Exchange().fetch)
    assert check().status is HealthStatus.OK
    assert check().metrics["state"] == "closed"


async def test_exchange_check_silence(breaker: CircuitBreaker, clock: ManualClock) -> None:
    check = exchange_check(breaker.stats, max_silence_s=60, clock=clock)
    assert check().status is HealthStatus.DEGRADED and "no call answered yet" in check().reason
    await breaker.call(Exchange().fetch)
    clock.advance(59_999)
    assert check().status is HealthStatus.OK
    clock.advance(1)
    c = check()
    assert c.status is HealthStatus.DEGRADED and "no call answered for 1m (expected within 1m)" in c.reason
