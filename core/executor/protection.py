"""The "never unprotected" procedure (rule one: never an open position without a stop).

After an entry fills, `Protection.ensure_stop(stop_cid, stop_price, exit_cid)` makes the venue
hold ONE whole-position stop at `stop_price` covering the position: it re-sizes (amends) the
live stop when there is one, else places it; then it drops the stops the venue attached to the
filled entries (`preset_stop`), which the whole-position stop now covers.

Failures, in order of what is tried (fail closed):

* a transient failure (`GatewayUnavailable`, `RateLimited`, `OrderUnknown`) is retried with
  exponential backoff that honours the venue's Retry-After;
* while a previous stop is still live at the venue the position is NOT closed, whatever the
  failure: the outcome is "stale" (protected, but at an old price or size) and the caller
  halts new entries and tries again on its next check (rate limits never close a position);
* only when the venue holds no stop at all after every attempt, or refuses the stop because its
  price is already crossed (`StopCrossed`), is the position closed at market (reduce-only),
  with a CRITICAL alert through `alert(level, message)`;
* when the market close fails too, `UnprotectedPosition` is raised: the caller halts the
  runner (entries cancelled and refused), keeps trying, escalates, and trips the symbol's kill
  switch after the grace period (`core.engine.grid_runner`).

Every order it sends (a stop placed, re-sized or re-created; an emergency close) is first
announced to `record(action, client_id, price)` — the executor's write-ahead record, made
durable before the call — so a crash in flight leaves a known id that the restart adopts.
Re-created stops get a fresh id `<stop id>r<n>` (a venue refuses a reused client id).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from core.executor.client_ids import ClientIds
from core.executor.crashpoints import crashpoint
from core.model.errors import (
    DuplicateClientId,
    GatewayError,
    GatewayUnavailable,
    OrderNotFound,
    OrderUnknown,
    RateLimited,
    StopCrossed,
)
from core.model.orders import GatewayFill, OrderRequest

log = logging.getLogger(__name__)

Alert = Callable[[str, str], Any]          # (level "critical" | "warning", message); may be async
Settle = Callable[[str], None]                          # (outcome "done" | "failed" | "unknown") of a record
Record = Callable[[str, str, "float | None"], Settle]    # (action, client id, price): write-ahead


@dataclass(frozen=True, slots=True)
class ProtectionResult:
    """What `ensure_stop` did.

    outcome: "protected" (the stop is at the wanted price, covering the position), "stale" (a
    stop is live but could not be moved/re-sized yet: still protected, retried later), "flat"
    (no position), or "closed" (no stop could be placed: closed at market; `fill` is the exit).
    stop_client_id: the live stop's client id. qty: the position's qty (base units).
    """

    outcome: str
    stop_client_id: str | None = None
    qty: float = 0.0
    fill: GatewayFill | None = None


class UnprotectedPosition(GatewayError):
    """Neither a stop nor the market close went through: a human must act NOW."""


def _noop_settle(outcome: str) -> None:
    return None


def _noop_record(action: str, client_id: str, price: float | None) -> Settle:
    return _noop_settle


async def _sent(settle: Settle, call: Awaitable[Any]) -> Any:
    """Await a protection order's call and settle its write-ahead record with the outcome."""
    try:
        res = await call
    except OrderUnknown:
        settle("unknown")
        raise
    except BaseException:
        settle("failed")
        raise
    settle("done")
    return res


class Protection:
    """See the module docstring.

    Args:
        gateway: the runner's venue (`core.executor.gateway.Gateway`).
        alert: `(level, message)` callback (may be async).
        attempts: stop placement attempts before giving up on placing it.
        backoff_s: first retry delay (doubles each attempt, at least the venue's Retry-After).
        max_backoff_s: cap of one delay.
        close_attempts: market-close attempts when no stop can be placed.
        sleep: injectable (tests). clock_ms: ms UTC for the records.
    """

    def __init__(self, gateway: Any, alert: Alert, *, attempts: int = 3, backoff_s: float = 0.5,
                 max_backoff_s: float = 30.0, close_attempts: int = 3,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.gw = gateway
        self.alert = alert
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.close_attempts = close_attempts
        self.sleep = sleep
        self.clock_ms = clock_ms or (lambda: 0)
        self.wanted: tuple[str, float, str] | None = None      # (stop cid, price, exit cid)
        self._not_before = 0.0                                   # monotonic s: the venue's Retry-After

    async def _alert(self, level: str, msg: str) -> None:
        log.critical(msg) if level == "critical" else log.warning(msg)
        res = self.alert(level, msg)
        if inspect.isawaitable(res):
            await res

    def delay(self, attempt: int, err: BaseException | None) -> float:
        """Seconds to wait before retry `attempt` (0-based): `backoff_s·2^attempt`, capped, and
        never less than the venue's Retry-After (remembered across calls: the next protection
        round does not call before it either)."""
        d = min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
        if isinstance(err, RateLimited) and err.retry_after_s is not None:
            d = max(d, err.retry_after_s)
            self._not_before = max(self._not_before, time.monotonic() + err.retry_after_s)
        return d

    async def _respect_retry_after(self) -> None:
        wait = self._not_before - time.monotonic()
        if wait > 0:
            await self.sleep(wait)

    async def ensure_stop(self, stop_cid: str, stop_price: float, exit_cid: str,
                          record: Record = _noop_record, placed: bool = False) -> ProtectionResult:
        """Place or re-size the whole-position stop (module docstring). `placed`: `stop_cid` was
        sent to the venue before, so when no stop is live it is gone (triggered, cancelled) and
        the new stop gets a fresh id (`ClientIds.recreated`) instead of a refused duplicate.
        Raises UnprotectedPosition."""
        self.wanted = (stop_cid, stop_price, exit_cid)
        last: Exception | None = None
        cid = stop_cid
        live = None
        gw = self.gw
        for attempt in range(self.attempts):
            await self._respect_retry_after()
            try:
                pos = await gw.fetch_position()
                if pos.qty == 0:
                    return ProtectionResult("flat")
                exit_side = "sell" if pos.side == "long" else "buy"
                live = await gw.fetch_stop()
                if live is not None and live.client_id:
                    covered = live.qty is None or abs(live.qty - pos.qty) <= 1e-12 * max(pos.qty, 1.0)
                    if live.price != stop_price or not covered:
                        settle = record("stop_resize", live.client_id, stop_price)
                        crashpoint("during_stop_resize")
                        await _sent(settle, gw.amend_order(live.client_id, stop_price, pos.qty))
                    await self._drop_presets()
                    return ProtectionResult("protected", live.client_id, pos.qty)
                if placed and cid == stop_cid:
                    cid = ClientIds.recreated(cid)         # the stop sent under stop_cid is gone
                req = OrderRequest(cid, gw.symbol, "stop", exit_side, stop_price, -1, reduce_only=True, qty=pos.qty)
                settle = record("stop_place", cid, stop_price)
                try:
                    await _sent(settle, gw.place_order(req))
                except DuplicateClientId:
                    cid = ClientIds.recreated(cid)         # that id was used (an earlier stop): a fresh one
                    raise
                await self._drop_presets()
                return ProtectionResult("protected", cid, pos.qty)
            except StopCrossed as e:
                return await self._emergency_close(exit_cid, f"stop {stop_price} already crossed ({e})", record)
            except (OrderUnknown, DuplicateClientId, GatewayUnavailable, OrderNotFound) as e:
                last = e                      # transient, or the next round looks the stop up first
                if isinstance(e, RateLimited):
                    self.delay(0, e)          # remember the venue's Retry-After
            except GatewayError as e:
                last = e
            log.warning("%s: stop %s not placed at %s (attempt %d/%d): %s", gw.symbol, cid, stop_price, attempt + 1,
                        self.attempts, last)
            if attempt < self.attempts - 1:
                await self.sleep(self.delay(attempt, last))
        if live is not None or await self._stop_is_live():
            await self._alert("warning", f"{gw.symbol}: the stop could not be moved to {stop_price} "
                                         f"({last}); the previous stop stays live, retrying")
            return ProtectionResult("stale", live.client_id if live is not None else None)
        return await self._emergency_close(exit_cid, f"stop {stop_price} could not be placed after "
                                                     f"{self.attempts} attempts: {last}", record)

    async def _stop_is_live(self) -> bool:
        """True when the venue still shows a stop (a failed read counts as "cannot tell": False
        only when the venue answered that there is none)."""
        try:
            return await self.gw.fetch_stop() is not None
        except GatewayError:
            return True          # cannot tell: never close a position on a read failure

    async def _drop_presets(self) -> None:
        try:
            await self.gw.drop_preset_stops()
        except GatewayError as e:        # the whole-position stop is live: the presets only over-protect
            log.warning("%s: the entries' preset stops could not be cancelled yet: %s", self.gw.symbol, e)

    async def _emergency_close(self, exit_cid: str, why: str, record: Record) -> ProtectionResult:
        last: Exception | None = None
        for attempt in range(self.close_attempts):
            try:
                settle = record("flatten", exit_cid, None)
                crashpoint("during_emergency_close")
                fill = await _sent(settle, self.gw.close_position(exit_cid, self.clock_ms(), None, "unprotected"))
                await self._alert("critical", f"{self.gw.symbol}: position closed at market, {why}")
                self.wanted = None
                return ProtectionResult("closed", None, 0.0, fill)
            except GatewayError as e:          # OrderUnknown: close_position looks the id up next time
                last = e
                if attempt < self.close_attempts - 1:
                    await self.sleep(self.delay(attempt, e))
        msg = f"{self.gw.symbol}: UNPROTECTED POSITION - {why}; market close failed too: {last}"
        await self._alert("critical", msg)
        raise UnprotectedPosition(msg)

    async def verify_stops(self, record: Record = _noop_record) -> ProtectionResult | None:
        """Re-create a missing stop (None when there is no position to protect or it is in place)."""
        pos = await self.gw.fetch_position()
        if pos.qty == 0:
            return None
        live = await self.gw.fetch_stop()
        if live is not None and (live.qty is None or abs(live.qty - pos.qty) <= 1e-12 * max(pos.qty, 1.0)):
            return None
        if self.wanted is None:
            await self._alert("critical", f"{self.gw.symbol}: position {pos.qty} has no stop and no wanted "
                                          f"stop price is known: act now")
            return None
        stop_cid, price, exit_cid = self.wanted
        if live is None:
            await self._alert("warning", f"{self.gw.symbol}: stop missing, re-creating at {price}")
            stop_cid = ClientIds.recreated(stop_cid)
        return await self.ensure_stop(stop_cid, price, exit_cid, record)
