"""The "never unprotected" procedure (rule one: never an open position without a stop).

After an entry fills, `Protection.ensure_stop(stop_cid, stop_price, exit_cid)` makes the
exchange hold ONE whole-position `pos_loss` stop at `stop_price` sized to the position's qty:
it amends the live stop when there is one, else places it, with bounded retries. When the
stop cannot be placed (retries exhausted), or the exchange says the price is already crossed
(`StopCrossed`, Bitget 40917 / 45122), the position is closed at market and a CRITICAL alert
goes out through the `alert(level, message)` callback.

`verify_stops()` (call it periodically) re-creates a missing stop at the last wanted price
(a fresh client id `<stop id>r<n>`, since Bitget refuses a reused clientOid).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from core.model.errors import DuplicateClientId, GatewayError, OrderUnknown, StopCrossed
from core.model.orders import GatewayFill, OrderRequest

log = logging.getLogger(__name__)

Alert = Callable[[str, str], Any]          # (level "critical" | "warning", message); may be async


@dataclass(frozen=True, slots=True)
class ProtectionResult:
    """What `ensure_stop` did: "protected" (stop at price, sized to qty), "flat" (no position),
    or "closed" (could not protect: closed at market; `fill` is the exit)."""

    outcome: str
    stop_client_id: str | None = None
    qty: float = 0.0
    fill: GatewayFill | None = None


class UnprotectedPosition(GatewayError):
    """Neither a stop nor the market close went through: a human must act NOW."""


class Protection:
    """See the module docstring. `gateway` is a `CcxtGateway` (fetch_position, fetch_stop,
    place_order(qty=), amend_order(qty=), close_position)."""

    def __init__(self, gateway: Any, alert: Alert, *, attempts: int = 3, backoff_s: float = 0.5,
                 close_attempts: int = 3, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.gw = gateway
        self.alert = alert
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.close_attempts = close_attempts
        self.sleep = sleep
        self.clock_ms = clock_ms or (lambda: 0)
        self.wanted: tuple[str, float, str] | None = None      # (stop cid, price, exit cid)
        self._recreated = 0

    async def _alert(self, level: str, msg: str) -> None:
        log.critical(msg) if level == "critical" else log.warning(msg)
        res = self.alert(level, msg)
        if inspect.isawaitable(res):
            await res

    async def ensure_stop(self, stop_cid: str, stop_price: float, exit_cid: str) -> ProtectionResult:
        """Place or amend the whole-position stop; close at market when that is impossible."""
        self.wanted = (stop_cid, stop_price, exit_cid)
        last: Exception | None = None
        cid = stop_cid
        for attempt in range(self.attempts):
            try:
                pos = await self.gw.fetch_position()
                if pos.qty == 0:
                    return ProtectionResult("flat")
                exit_side = "sell" if pos.side == "long" else "buy"
                live = await self.gw.fetch_stop()
                if live is not None and live.client_id:
                    if live.price != stop_price or live.qty != pos.qty:
                        await self.gw.amend_order(live.client_id, stop_price, qty=pos.qty)
                    return ProtectionResult("protected", live.client_id, pos.qty)
                req = OrderRequest(cid, self.gw.symbol, "stop", exit_side, stop_price, -1, reduce_only=True)
                try:
                    await self.gw.place_order(req, qty=pos.qty)
                except DuplicateClientId:
                    self._recreated += 1
                    cid = f"{_base(stop_cid)}r{self._recreated}"
                    raise
                return ProtectionResult("protected", cid, pos.qty)
            except StopCrossed as e:
                return await self._emergency_close(exit_cid, f"stop {stop_price} already crossed ({e})")
            except (OrderUnknown, DuplicateClientId) as e:
                last = e                      # next round looks the stop up before re-sending
            except GatewayError as e:
                last = e
            log.warning("stop %s not placed (attempt %d/%d): %s", cid, attempt + 1, self.attempts, last)
            if attempt < self.attempts - 1:
                await self.sleep(self.backoff_s * 2 ** attempt)
        return await self._emergency_close(exit_cid, f"stop {stop_price} could not be placed after "
                                                     f"{self.attempts} attempts: {last}")

    async def _emergency_close(self, exit_cid: str, why: str) -> ProtectionResult:
        last: Exception | None = None
        for attempt in range(self.close_attempts):
            try:
                fill = await self.gw.close_position(exit_cid, self.clock_ms(), None, "unprotected")
                await self._alert("critical", f"{self.gw.symbol}: position closed at market, {why}")
                self.wanted = None
                return ProtectionResult("closed", None, 0.0, fill)
            except GatewayError as e:          # OrderUnknown: close_position reconciles by client id next time
                last = e
                if attempt < self.close_attempts - 1:
                    await self.sleep(self.backoff_s * 2 ** attempt)
        msg = f"{self.gw.symbol}: UNPROTECTED POSITION - {why}; market close failed too: {last}"
        await self._alert("critical", msg)
        raise UnprotectedPosition(msg)

    async def verify_stops(self) -> ProtectionResult | None:
        """Re-create a missing stop (None when there is no position to protect or it is in place)."""
        pos = await self.gw.fetch_position()
        if pos.qty == 0:
            return None
        live = await self.gw.fetch_stop()
        if live is not None and live.qty in (None, pos.qty):
            return None
        if self.wanted is None:
            await self._alert("critical", f"{self.gw.symbol}: position {pos.qty} has no stop and no wanted "
                                          f"stop price is known: act now")
            return None
        stop_cid, price, exit_cid = self.wanted
        if live is None:
            await self._alert("warning", f"{self.gw.symbol}: stop missing, re-creating at {price}")
            self._recreated += 1
            stop_cid = f"{_base(stop_cid)}r{self._recreated}"
        return await self.ensure_stop(stop_cid, price, exit_cid)


def _base(stop_cid: str) -> str:
    """The stop's client id without a re-creation suffix `r<n>`."""
    return re.sub(r"r\d+$", "", stop_cid)
