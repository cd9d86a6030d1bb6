"""A local stand-in for Bitget's v2 public websocket and the REST endpoints ccxt needs.

`BitgetWsStub` is an aiohttp server on 127.0.0.1 (random port) that speaks the
protocol `ccxt.pro.bitget` uses:

* websocket `/v2/ws/public`: text `ping` -> `pong`; `{"op": "subscribe", "args": [...]}`
  -> `{"event": "subscribe", "arg": ...}` ack, then for a candle channel a
  `{"action": "snapshot", ...}` push of the forming candle (plus a little history);
  `push_forming()`/`advance()` send `{"action": "update", ...}` pushes;
* REST: markets (`/api/v2/mix/market/contracts`, coins, spot symbols, margin
  currencies, all but the USDT-M perpetual empty) and candles
  (`/api/v2/mix/market/candles` and `history-candles`).

Time is virtual: `forming_ts` is the open time (ms UTC) of the candle being
formed now; every candle before it is closed and has its final values
`final_row(ts)`; the forming one shows `partial_row(ts, forming_fraction)`.
The test drives time with `advance()` and cuts connections with `disconnect()`.
Point a ccxt client at the stub with `point_bitget_at(exchange, stub)`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import WSMsgType, web

SYMBOL_ID = "BTCUSDT"
SYMBOL = "BTC/USDT:USDT"
INST_TYPE = "USDT-FUTURES"
TF_MS = 60_000
#: Open time of candle index 0 of the synthetic series: 2024-01-01T00:00:00Z.
EPOCH_MS = 1_704_067_200_000

_CONTRACT = {
    "symbol": SYMBOL_ID, "baseCoin": "BTC", "quoteCoin": "USDT", "buyLimitPriceRatio": "0.01",
    "sellLimitPriceRatio": "0.01", "feeRateUpRatio": "0.005", "makerFeeRate": "0.0002",
    "takerFeeRate": "0.0006", "openCostUpRatio": "0.01", "supportMarginCoins": ["USDT"],
    "minTradeNum": "0.001", "priceEndStep": "1", "volumePlace": "3", "pricePlace": "1",
    "sizeMultiplier": "0.001", "symbolType": "perpetual", "minTradeUSDT": "5",
    "maxSymbolOrderNum": "200", "maxProductOrderNum": "400", "maxPositionNum": "150",
    "symbolStatus": "normal", "offTime": "-1", "limitOpenTime": "-1", "deliveryTime": "",
    "deliveryStartTime": "", "deliveryPeriod": "", "launchTime": "", "fundInterval": "8",
    "minLever": "1", "maxLever": "125", "posLimit": "0.05", "maintainTime": "",
}


def final_row(ts: int) -> list[float]:
    """The final `[ts, open, high, low, close, volume]` of the synthetic candle opening at `ts` (ms UTC)."""
    k = (ts - EPOCH_MS) // TF_MS
    o = 100.0 + (k * 7 % 23) * 0.5
    c = 100.0 + ((k + 3) * 5 % 19) * 0.5
    h = max(o, c) + 1.0 + (k % 3) * 0.25
    low = min(o, c) - 1.0 - (k % 5) * 0.25
    return [ts, o, h, low, c, 10.0 + (k % 11)]


def partial_row(ts: int, fraction: float) -> list[float]:
    """The candle opening at `ts` as it looks `fraction` (0..1) into its period (consistent OHLC)."""
    if fraction >= 1.0:
        return final_row(ts)
    _, o, h, low, c, v = final_row(ts)
    cp = o + (c - o) * fraction
    return [ts, o, max(o, cp) + 0.5 * fraction, min(o, cp) - 0.5 * fraction, cp, v * fraction]


def _wire(row: list[float]) -> list[str]:
    """A row as Bitget sends it: strings, plus quote and USDT volume."""
    ts, o, h, low, c, v = row
    quote = f"{v * c:.4f}"
    return [str(int(ts)), repr(o), repr(h), repr(low), repr(c), repr(v), quote, quote]


def _ok(data: Any) -> web.Response:
    return web.json_response({"code": "00000", "msg": "success", "requestTime": 0, "data": data})


class BitgetWsStub:
    """Bitget v2 public websocket + REST stand-in for one USDT-M perpetual (BTCUSDT) on 1m candles.

    Args:
        forming_ts: open time (ms UTC) of the candle forming when the test starts.
        snapshot_history: closed candles sent before the forming one in a subscribe snapshot.
        forming_fraction: how far (0..1) the forming candle is when a snapshot or REST shows it.

    Attributes (for assertions):
        received: every JSON message clients sent (subscribe ops), in order.
        candle_subscribes: number of candle-channel subscriptions acknowledged so far.
        pings: number of text pings answered.
        rest_candle_requests: the query of every REST candle request.
    """

    def __init__(self, forming_ts: int, *, snapshot_history: int = 2, forming_fraction: float = 0.5) -> None:
        self.forming_ts = forming_ts
        self.snapshot_history = snapshot_history
        self.forming_fraction = forming_fraction
        self.received: list[dict] = []
        self.candle_subscribes = 0
        self.pings = 0
        self.rest_candle_requests: list[dict[str, str]] = []
        self._subs: dict[web.WebSocketResponse, list[dict]] = {}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # ---- lifecycle -------------------------------------------------------------------
    async def start(self) -> "BitgetWsStub":
        """Listen on 127.0.0.1 (random free port); sets `base_url`."""
        app = web.Application()
        app.router.add_get("/v2/ws/public", self._ws)
        app.router.add_get("/api/v2/mix/market/contracts", self._contracts)
        app.router.add_get("/api/v2/mix/market/candles", self._candles)
        app.router.add_get("/api/v2/mix/market/history-candles", self._candles)
        for path in ("/api/v2/spot/public/coins", "/api/v2/spot/public/symbols", "/api/v2/margin/currencies"):
            app.router.add_get(path, self._empty)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self

    async def close(self) -> None:
        """Close every client socket and stop listening."""
        await self.disconnect()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/v2/ws/public"

    # ---- test controls ---------------------------------------------------------------
    async def wait_candle_subscribes(self, n: int, timeout: float = 5.0) -> None:
        """Wait until `n` candle subscriptions in total have been acknowledged."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.candle_subscribes >= n), timeout)

    async def push_forming(self, fraction: float | None = None) -> None:
        """Push an update of the forming candle at `fraction` of its period (default `forming_fraction`)."""
        f = self.forming_fraction if fraction is None else fraction
        await self._push_candles([partial_row(self.forming_ts, f)])

    async def advance(self, n: int = 1) -> None:
        """Move virtual time `n` candles on, pushing as Bitget does: the final values of the
        closing candle, then the new forming candle."""
        for _ in range(n):
            await self._push_candles([final_row(self.forming_ts)])
            self.forming_ts += TF_MS
            await self._push_candles([partial_row(self.forming_ts, self.forming_fraction)])

    async def disconnect(self, advance_to: int | None = None) -> None:
        """Close every client socket (code 1012, as during an exchange restart); then,
        when given, jump virtual time to `advance_to` (the candles in between close unseen)."""
        clients = list(self._subs)
        self._subs.clear()
        if advance_to is not None:
            self.forming_ts = advance_to
        for ws in clients:
            await ws.close(code=1012, message=b"service restart")

    async def push_raw(self, payload: Any) -> None:
        """Send `payload` (JSON-encoded unless it is a str) to every connected client."""
        text = payload if isinstance(payload, str) else json.dumps(payload)
        for ws in list(self._subs):
            if not ws.closed:
                await ws.send_str(text)

    async def push_ticker(self, last: float, ts: int | None = None) -> None:
        """Push a ticker snapshot (last, bid, ask) to clients subscribed to the ticker channel."""
        ts = self.forming_ts if ts is None else ts
        data = {
            "instId": SYMBOL_ID, "lastPr": repr(last), "bidPr": repr(last - 0.5), "askPr": repr(last + 0.5),
            "bidSz": "1", "askSz": "1", "open24h": "100", "high24h": "110", "low24h": "90",
            "change24h": "0.01", "baseVolume": "1000", "quoteVolume": "100000", "ts": str(ts),
        }
        await self._push("ticker", {"action": "snapshot", "arg": self._arg("ticker"), "data": [data], "ts": ts})

    def candle_message(self, rows: list[list], action: str = "update") -> dict:
        """A candle1m push as Bitget sends it (rows are `[ts, o, h, l, c, v]` numbers or raw wire lists)."""
        data = [_wire(r) if all(isinstance(x, (int, float)) for x in r) and len(r) == 6 else r for r in rows]
        return {"action": action, "arg": self._arg("candle1m"), "data": data, "ts": self.forming_ts}

    # ---- internals -------------------------------------------------------------------
    @staticmethod
    def _arg(channel: str) -> dict:
        return {"instType": INST_TYPE, "channel": channel, "instId": SYMBOL_ID}

    async def _push_candles(self, rows: list[list]) -> None:
        await self._push("candle1m", self.candle_message(rows))

    async def _push(self, channel: str, message: dict) -> None:
        text = json.dumps(message)
        for ws, args in list(self._subs.items()):
            if not ws.closed and any(a.get("channel") == channel for a in args):
                await ws.send_str(text)

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._subs[ws] = []
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            if msg.data == "ping":
                self.pings += 1
                await ws.send_str("pong")
                continue
            obj = json.loads(msg.data)
            self.received.append(obj)
            if obj.get("op") != "subscribe":
                continue
            for arg in obj.get("args", []):
                await ws.send_str(json.dumps({"event": "subscribe", "arg": arg}))
                if ws in self._subs:
                    self._subs[ws].append(arg)
                if arg.get("channel") == "candle1m":
                    first = self.forming_ts - self.snapshot_history * TF_MS
                    rows = [final_row(t) for t in range(first, self.forming_ts, TF_MS)]
                    rows.append(partial_row(self.forming_ts, self.forming_fraction))
                    await ws.send_str(json.dumps(self.candle_message(rows, "snapshot")))
                    async with self._changed:
                        self.candle_subscribes += 1
                        self._changed.notify_all()
        self._subs.pop(ws, None)
        return ws

    async def _contracts(self, request: web.Request) -> web.Response:
        return _ok([_CONTRACT] if request.query.get("productType") == INST_TYPE else [])

    async def _empty(self, request: web.Request) -> web.Response:
        return _ok([])

    async def _candles(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.rest_candle_requests.append(q)
        if q.get("symbol") != SYMBOL_ID or q.get("granularity") != "1m":
            return web.json_response({"code": "40034", "msg": "Parameter does not exist", "data": None}, status=400)
        start = int(q.get("startTime", self.forming_ts - 100 * TF_MS))
        end = int(q.get("endTime", self.forming_ts))
        limit = int(q.get("limit", 100))
        first = -(-start // TF_MS) * TF_MS
        rows = []
        for ts in range(first, min(end, self.forming_ts) + 1, TF_MS):
            row = final_row(ts) if ts < self.forming_ts else partial_row(ts, self.forming_fraction)
            rows.append(_wire(row)[:7])
            if len(rows) == limit:
                break
        return _ok(rows)


def point_bitget_at(exchange: Any, stub: BitgetWsStub) -> None:
    """Send every REST and public-websocket request of a ccxt bitget client to `stub`."""
    for key, value in list(exchange.urls["api"].items()):
        if isinstance(value, str):
            exchange.urls["api"][key] = stub.base_url
    exchange.urls["api"]["ws"]["public"] = stub.ws_url
