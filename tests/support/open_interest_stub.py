"""`BitgetStub` plus Bitget's open-interest endpoint (a snapshot: bitget has no history).

* `/api/v2/mix/market/open-interest`  `{"openInterestList": [{"symbol", "size"}], "ts"}` of
  `productType=USDT-FUTURES` symbols, at the stub's clock `now_ms`; the value is
  `open_interest(symbol, now_ms)` (deterministic).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from tests.support.bitget_stub import BitgetStub

OPEN_INTEREST_PATH = "/api/v2/mix/market/open-interest"


class OpenInterestStub(BitgetStub):
    """The Bitget stub serving the open-interest snapshot too (module docstring)."""

    @staticmethod
    def open_interest(symbol: str, ts: int) -> str:
        """The synthetic open interest (contracts, as a string) of `symbol` at `ts` ms UTC."""
        return f"{50_000 + len(symbol) * 1000 + (ts // 300_000) % 997 * 3.25:.4f}"

    async def _open_interest(self, q: dict[str, str]) -> Any:
        bad = self._check_symbol(q)
        if bad is not None:
            return bad
        return {"openInterestList": [{"symbol": q["symbol"], "size": self.open_interest(q["symbol"], self.now_ms)}],
                "ts": str(self.now_ms)}

    def _routes(self) -> dict[str, Callable[[dict[str, str]], Awaitable[Any]]]:
        routes = super()._routes()
        routes[OPEN_INTEREST_PATH] = self._open_interest
        return routes
