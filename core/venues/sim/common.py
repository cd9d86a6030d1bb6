"""What the simulated venues (`core.venues.sim.grid_venue.SimGridVenue`,
`core.venues.sim.single_venue.SimSingleVenue`) answer alike under the `Gateway` contract: an
in-process venue (no connection, no mark price between candles, no rounding, no preset stops)
with the resting take-profit, and the latest fills of the process as its trade list."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from core.model.errors import OrderRejected
from core.model.orders import VenueTrade

#: fills kept for `fetch_recent_trades` (not persisted across a restart)
KEEP_TRADES = 256


class SimVenueCommon:
    """Mixin of the simulated venues: capabilities and the contract's trivial answers. The venue
    sets `self.engine` (its matching engine: `.cash`, USDT) and appends its fills to
    `self._trades` (`new_trade_list()`)."""

    external = False
    rests_take_profit = True
    renames_on_amend = False

    engine: object
    _trades: deque[VenueTrade]

    @staticmethod
    def new_trade_list() -> deque[VenueTrade]:
        """An empty bounded list of the latest fills (`KEEP_TRADES`)."""
        return deque(maxlen=KEEP_TRADES)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def drop_preset_stops(self) -> int:
        return 0

    async def fetch_recent_trades(self, enough: Callable[[list[VenueTrade]], bool]) -> list[VenueTrade]:
        """The latest fills of this process (at most `KEEP_TRADES`; not kept across a restart),
        oldest first. Within a candle the matching engines never fill an entry after an exit,
        so an executor's fill order is never in doubt here; the list exists for the contract."""
        return list(self._trades)

    async def fetch_balance(self) -> float:
        return self.engine.cash  # type: ignore[attr-defined]

    async def fetch_mark_price(self) -> float:
        raise OrderRejected("the simulated venue has no mark price between candles")

    def price_of(self, price: float) -> float:
        return price

    def amount_of(self, qty: float) -> float:
        return qty

    def min_amount(self) -> float:
        return 0.0


__all__ = ["KEEP_TRADES", "SimVenueCommon"]
