"""A local stand-in for Bitget's public REST API (v2) for tests: an aiohttp app on 127.0.0.1.

Point the real ccxt client at it by overriding every `exchange.urls['api']`
entry with `stub.base_url` (see `core.data.download.override_api_urls`).

Served (GET, Bitget's `{"code": "00000", "msg": "success", "requestTime", "data"}` envelope):

* `/api/v2/public/time`                server time (`now_ms`)
* `/api/v2/spot/public/coins`          the coins of the contracts (no chains)
* `/api/v2/mix/market/contracts`       perpetual contracts of `productType=USDT-FUTURES`
                                       (other product types: none)
* `/api/v2/mix/market/candles`         recent candles, limit <= 1000
* `/api/v2/mix/market/history-candles` history candles, limit <= 200, endTime - startTime <= 90 days
* `/api/v2/mix/market/history-fund-rate`  funding history, newest first, `pageSize` <= 100, `pageNo` from 1

Candles are synthetic and deterministic: a pure function of (symbol, open time,
granularity) from the symbol's listing (`listing_ms`) up to and including the
still-forming candle at `now_ms`. A window `[startTime, endTime]` is inclusive
and, like Bitget, aligned on its end: the newest `limit` candles of it are
returned, oldest first. Funding rates sit every `funding_interval_ms` from
`funding_start_ms` to `now_ms`. `expected_candles` / `expected_funding` give
the same series as ccxt parses it, for comparison.

Fault injection (`add_fault`): per path, let `skip` calls through, then on the
next `times` calls (None: all later calls) either answer instead
(`respond`: `rate_limited()`, `unavailable()`, `hang(seconds)`, `error(...)`) or
rewrite the `data` of the normal answer (`transform`). Every call is recorded
in `calls` (path and query). New endpoints: add a handler returning the
`data` value and register it in `_routes`.

Use `async with BitgetStub() as stub:` inside a running loop, or
`with stub.serve_in_thread():` when the code under test runs its own loop
(e.g. the CLI's `asyncio.run`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterator

from aiohttp import web

H = 3_600_000
DAY = 24 * H

#: Bitget mix granularity -> candle length in ms.
GRANULARITY_MS = {
    "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1H": H, "2H": 2 * H, "4H": 4 * H, "6H": 6 * H, "12H": 12 * H, "1D": DAY,
    "6Hutc": 6 * H, "12Hutc": 12 * H, "1Dutc": DAY, "3Dutc": 3 * DAY, "1Wutc": 7 * DAY,
}
CONTRACTS_PATH = "/api/v2/mix/market/contracts"
CANDLES_PATH = "/api/v2/mix/market/candles"
HISTORY_CANDLES_PATH = "/api/v2/mix/market/history-candles"
FUNDING_PATH = "/api/v2/mix/market/history-fund-rate"
COINS_PATH = "/api/v2/spot/public/coins"
TIME_PATH = "/api/v2/public/time"

Responder = Callable[["BitgetStub", web.Request], Awaitable[web.StreamResponse | None]]
Transform = Callable[[Any], Any]


@dataclass
class Fault:
    """One injected fault on `path`: after `skip` calls, for `times` calls (None: forever).

    `respond` answers instead of the handler (returning None falls through to
    the normal answer); `transform` rewrites the normal answer's `data`.
    `hits` counts the calls it applied to.
    """

    path: str
    skip: int = 0
    times: int | None = 1
    respond: Responder | None = None
    transform: Transform | None = None
    seen: int = 0
    hits: int = 0

    def applies(self) -> bool:
        """Count one call to `path`; True when this call is in the fault's range."""
        self.seen += 1
        on = self.seen > self.skip and (self.times is None or self.seen <= self.skip + self.times)
        self.hits += on
        return on


@dataclass(frozen=True)
class Call:
    """One request the stub received."""

    path: str
    query: dict[str, str]


def _envelope(data: Any, now_ms: int, code: str = "00000", msg: str = "success") -> dict:
    return {"code": code, "msg": msg, "requestTime": now_ms, "data": data}


def error(code: str, msg: str, status: int = 400) -> Responder:
    """Answer with a Bitget error envelope, e.g. `error("40034", "Parameter does not exist")`."""
    async def respond(stub: "BitgetStub", request: web.Request) -> web.StreamResponse:
        return web.json_response(_envelope(None, stub.now_ms, code, msg), status=status)
    return respond


def rate_limited() -> Responder:
    """HTTP 429 with Bitget's body (ccxt: DDoSProtection/RateLimitExceeded)."""
    return error("429", "Too Many Requests", status=429)


def unavailable() -> Responder:
    """HTTP 503 with a plain-text body (ccxt: ExchangeNotAvailable)."""
    async def respond(stub: "BitgetStub", request: web.Request) -> web.StreamResponse:
        return web.Response(status=503, text="Service Unavailable")
    return respond


def hang(seconds: float, arrived: asyncio.Event | None = None) -> Responder:
    """Wait `seconds` (or until the stub closes) before the normal answer: past a short client timeout.

    `arrived` (an event of the stub's loop) is set when the request comes in.
    """
    async def respond(stub: "BitgetStub", request: web.Request) -> None:
        if arrived is not None:
            arrived.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stub._closing.wait(), seconds)
        return None
    return respond


class BitgetStub:
    """The stub server (see the module docstring).

    Args:
        now_ms: the stub's clock, ms UTC (default: the wall clock at construction); settable.
        symbols: contract ids (e.g. "BTCUSDT") listed under USDT-FUTURES.
        listing_ms: no candle opens before this time.
        funding_start_ms: first funding time (default: 100 intervals before `now_ms`, on the grid).
        funding_interval_ms: spacing of funding times.
    """

    def __init__(self, now_ms: int | None = None, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
                 listing_ms: int = 0, funding_start_ms: int | None = None, funding_interval_ms: int = 8 * H) -> None:
        self.now_ms = int(time.time() * 1000) if now_ms is None else int(now_ms)
        self.symbols = symbols
        self.listing_ms = listing_ms
        self.funding_interval_ms = funding_interval_ms
        self.funding_start_ms = (funding_start_ms if funding_start_ms is not None
                                 else (self.now_ms // funding_interval_ms - 100) * funding_interval_ms)
        self.faults: list[Fault] = []
        self.calls: list[Call] = []
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()

    # ------------------------------------------------------------------ data

    @staticmethod
    def candle_strings(symbol: str, ts: int, tf_ms: int) -> list[str]:
        """The Bitget row `[ts, open, high, low, close, baseVolume, quoteVolume]` (strings) of one candle."""
        k = ts // tf_ms
        base = {"BTCUSDT": 40_000.0, "ETHUSDT": 2_000.0}.get(symbol, 100.0)
        o = base * (1 + 0.05 * math.sin(k / 37.0))
        c = base * (1 + 0.05 * math.sin((k + 1) / 37.0))
        hi = max(o, c) * (1 + 0.001 * (1 + k % 5))
        lo = min(o, c) * (1 - 0.001 * (1 + k % 3))
        vol = 10 + (k * 7919 % 1000) / 10
        return [str(ts), f"{o:.2f}", f"{hi:.2f}", f"{lo:.2f}", f"{c:.2f}", f"{vol:.1f}", f"{vol * c:.2f}"]

    def candle_times(self, tf_ms: int, start: int, end: int) -> range:
        """Open times served in `[start, end]` (inclusive), listing to forming candle."""
        first = max(start, self.listing_ms)
        first = -(-first // tf_ms) * tf_ms
        last = min(end, self.now_ms) // tf_ms * tf_ms
        return range(first, last + 1, tf_ms)

    def expected_candles(self, symbol: str, tf_ms: int, start: int, end: int) -> list[list[float]]:
        """`[ts, o, h, l, c, v]` floats as ccxt parses them, open times in `[start, end)`, forming one included."""
        return [[float(x) for x in self.candle_strings(symbol, ts, tf_ms)[:6]]
                for ts in self.candle_times(tf_ms, start, end - 1)]

    def funding_rate(self, symbol: str, ts: int) -> str:
        """The synthetic funding rate (fraction, as a string) at `ts`."""
        k = ts // self.funding_interval_ms + len(symbol)
        return f"{((k * 37) % 21 - 10) * 1e-5:.6f}"

    def funding_times(self) -> range:
        """Every funding time served, oldest first."""
        return range(self.funding_start_ms, self.now_ms + 1, self.funding_interval_ms)

    def expected_funding(self, symbol: str, start: int, end: int) -> list[tuple[int, float]]:
        """(ts, rate) with `start <= ts < end`, oldest first."""
        return [(ts, float(self.funding_rate(symbol, ts))) for ts in self.funding_times() if start <= ts < end]

    # ------------------------------------------------------------------ faults and calls

    def add_fault(self, path: str, *, respond: Responder | None = None, transform: Transform | None = None,
                  skip: int = 0, times: int | None = 1) -> Fault:
        """Inject a fault on `path` (see `Fault`); returns it (its `hits` count applications)."""
        fault = Fault(path, skip, times, respond, transform)
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every fault."""
        self.faults.clear()

    def calls_to(self, path: str) -> list[dict[str, str]]:
        """Query parameters of every call to `path`, in order."""
        return [c.query for c in self.calls if c.path == path]

    # ------------------------------------------------------------------ handlers (return the `data` value)

    async def _time(self, q: dict[str, str]) -> Any:
        return {"serverTime": str(self.now_ms)}

    async def _coins(self, q: dict[str, str]) -> Any:
        coins = sorted({s[:-4] for s in self.symbols} | {"USDT"})
        return [{"coinId": str(i + 1), "coin": c, "transfer": "true", "chains": []} for i, c in enumerate(coins)]

    async def _contracts(self, q: dict[str, str]) -> Any:
        if q.get("productType") != "USDT-FUTURES":
            return []
        return [{
            "symbol": s, "baseCoin": s[:-4], "quoteCoin": "USDT", "supportMarginCoins": ["USDT"],
            "symbolType": "perpetual", "symbolStatus": "normal", "pricePlace": "1", "priceEndStep": "1",
            "volumePlace": "3", "sizeMultiplier": "0.001", "minTradeNum": "0.001", "minTradeUSDT": "5",
            "makerFeeRate": "0.0002", "takerFeeRate": "0.0006", "minLever": "1", "maxLever": "125",
            "fundInterval": str(self.funding_interval_ms // H), "launchTime": str(self.listing_ms),
        } for s in self.symbols]

    async def _candles(self, q: dict[str, str], max_limit: int, max_span_ms: int | None) -> Any:
        bad = self._check_symbol(q)
        if bad is not None:
            return bad
        tf = GRANULARITY_MS.get(q.get("granularity", ""))
        if tf is None:
            return error("40034", f"Parameter granularity {q.get('granularity')!r} does not exist")
        try:
            limit = int(q.get("limit", "100"))
            end = int(q.get("endTime", self.now_ms))
            start = int(q["startTime"]) if "startTime" in q else None
        except ValueError:
            return error("40017", "Parameter verification failed")
        if not 1 <= limit <= max_limit:
            return error("40017", f"Parameter verification failed: limit {limit} not in [1, {max_limit}]")
        if start is not None and max_span_ms is not None and end - start > max_span_ms:
            return error("40017", "Parameter verification failed: endTime - startTime over 90 days")
        times = self.candle_times(tf, -(2**62) if start is None else start, end)
        return [self.candle_strings(q["symbol"], ts, tf) for ts in times[-limit:]]

    async def _funding(self, q: dict[str, str]) -> Any:
        bad = self._check_symbol(q)
        if bad is not None:
            return bad
        try:
            size, page = int(q.get("pageSize", "20")), int(q.get("pageNo", "1"))
        except ValueError:
            return error("40017", "Parameter verification failed")
        if not (1 <= size <= 100 and page >= 1):
            return error("40017", f"Parameter verification failed: pageSize {size}, pageNo {page}")
        newest_first = self.funding_times()[::-1][(page - 1) * size: page * size]
        return [{"symbol": q["symbol"], "fundingRate": self.funding_rate(q["symbol"], ts), "fundingTime": str(ts)}
                for ts in newest_first]

    def _check_symbol(self, q: dict[str, str]) -> Responder | None:
        if q.get("productType") != "USDT-FUTURES" or q.get("symbol") not in self.symbols:
            return error("40034", f"Parameter symbol {q.get('symbol')!r} / productType does not exist")
        return None

    def _routes(self) -> dict[str, Callable[[dict[str, str]], Awaitable[Any]]]:
        return {
            TIME_PATH: self._time,
            COINS_PATH: self._coins,
            CONTRACTS_PATH: self._contracts,
            CANDLES_PATH: lambda q: self._candles(q, 1000, None),
            HISTORY_CANDLES_PATH: lambda q: self._candles(q, 200, 90 * DAY),
            FUNDING_PATH: self._funding,
        }

    def _wrap(self, handler: Callable[[dict[str, str]], Awaitable[Any]]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def route(request: web.Request) -> web.StreamResponse:
            query = dict(request.query)
            self.calls.append(Call(request.path, query))
            active = [f for f in self.faults if f.path == request.path and f.applies()]
            for fault in active:
                if fault.respond is not None:
                    answer = await fault.respond(self, request)
                    if answer is not None:
                        return answer
            data = await handler(query)
            if callable(data):  # a Responder: the request was refused
                return await data(self, request)
            for fault in active:
                if fault.transform is not None:
                    data = fault.transform(data)
            return web.json_response(_envelope(data, self.now_ms))
        return route

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> str:
        """Serve on 127.0.0.1 (a free port) in the running loop; returns `base_url`."""
        self._closing = asyncio.Event()
        app = web.Application()
        for path, handler in self._routes().items():
            app.router.add_get(path, self._wrap(handler))
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def close(self) -> None:
        """Stop serving (hanging requests are released first)."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "BitgetStub":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @contextlib.contextmanager
    def serve_in_thread(self) -> Iterator[str]:
        """Serve from a background thread with its own loop; yields `base_url`."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="bitget-stub", daemon=True)
        thread.start()
        try:
            yield asyncio.run_coroutine_threadsafe(self.start(), loop).result(timeout=10)
        finally:
            asyncio.run_coroutine_threadsafe(self.close(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
