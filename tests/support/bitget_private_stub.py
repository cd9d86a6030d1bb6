"""A local stand-in for Bitget's PRIVATE v2 mix (USDT-M futures) REST API, for tests: a tiny
in-memory exchange on 127.0.0.1. Public endpoints (time, coins, contracts) are served by
composing `tests.support.bitget_stub.BitgetStub`'s handlers; nothing here edits that file.

Point the real ccxt bitget async client at it with `core.data.download.override_api_urls`
(dummy keys; `options = {"uta": False, "fetchMarkets": {"types": ["swap"]}, "defaultType": "swap"}`).

Served (Bitget envelope `{"code": "00000", "msg": "success", "requestTime", "data"}`):

GET  /api/v2/mix/account/accounts           balances (USDT)
GET  /api/v2/mix/account/account            one symbol: marginMode, posMode, leverage
POST /api/v2/mix/account/set-leverage | set-margin-mode | set-position-mode
POST /api/v2/mix/order/place-order          limit / market (market fills at `mark`)
POST /api/v2/mix/order/cancel-order
GET  /api/v2/mix/order/orders-pending        plain open orders
GET  /api/v2/mix/order/detail                by clientOid or orderId (any status)
POST /api/v2/mix/order/place-tpsl-order      planType pos_loss / pos_profit (whole position)
POST /api/v2/mix/order/place-plan-order      normal_plan / track_plan (stored, never triggered)
POST /api/v2/mix/order/modify-tpsl-order
POST /api/v2/mix/order/cancel-plan-order     orderIdList; unknown ids land in failureList
GET  /api/v2/mix/order/orders-plan-pending   planType normal_plan | profit_loss | track_plan
GET  /api/v2/mix/position/all-position | single-position
GET  /api/v2/mix/market/ticker               last = mark = `mark[symbol]`
GET  /api/v2/mix/order/fills                 the account's trades (fillList), oldest first

Exchange model (one-way mode): `set_mark(symbol, price)` moves the mark price: resting limit
buys at or above it / sells at or below it fill (`partial[clientOid] = fraction` fills only
that fraction), then a pos_loss stop whose trigger is crossed closes the whole position at
the mark. A position going flat cancels its pos_loss / pos_profit orders (as Bitget does).
A pos_loss whose trigger is already crossed is refused with 40917 (long) / 45122 (short).

Faults (`add_fault(path, ...)`): `respond` answers instead (`server_error()`, `too_many()`,
`error(code, msg)`, `hang(s)` from bitget_stub) or `hang_after_s` runs the handler (the order
IS created) and then stalls, past a short client timeout. Every call is in `calls`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from tests.support.bitget_stub import (
    COINS_PATH,
    CONTRACTS_PATH,
    TIME_PATH,
    BitgetStub,
    Responder,
    _envelope,
    error,
    hang,
)

MIX = "/api/v2/mix"
ACCOUNTS = f"{MIX}/account/accounts"
ACCOUNT = f"{MIX}/account/account"
SET_LEVERAGE = f"{MIX}/account/set-leverage"
SET_MARGIN_MODE = f"{MIX}/account/set-margin-mode"
SET_POSITION_MODE = f"{MIX}/account/set-position-mode"
PLACE_ORDER = f"{MIX}/order/place-order"
CANCEL_ORDER = f"{MIX}/order/cancel-order"
ORDERS_PENDING = f"{MIX}/order/orders-pending"
ORDER_DETAIL = f"{MIX}/order/detail"
PLACE_TPSL = f"{MIX}/order/place-tpsl-order"
PLACE_PLAN = f"{MIX}/order/place-plan-order"
MODIFY_TPSL = f"{MIX}/order/modify-tpsl-order"
MODIFY_ORDER = f"{MIX}/order/modify-order"
CANCEL_PLAN = f"{MIX}/order/cancel-plan-order"
PLAN_PENDING = f"{MIX}/order/orders-plan-pending"
ALL_POSITION = f"{MIX}/position/all-position"
SINGLE_POSITION = f"{MIX}/position/single-position"
TICKER = f"{MIX}/market/ticker"
ORDER_FILLS = f"{MIX}/order/fills"
CONTROL_MARK = "/test/mark"      # not Bitget: lets a test in another process walk the mark

__all__ = ["BitgetPrivateStub", "error", "hang", "server_error", "too_many"]


def server_error() -> Responder:
    """HTTP 500, plain text (ccxt: ExchangeNotAvailable)."""
    async def respond(stub: Any, request: web.Request) -> web.StreamResponse:
        return web.Response(status=500, text="Internal Server Error")
    return respond


def too_many(retry_after_s: float = 0.05) -> Responder:
    """HTTP 429 with Bitget's body and a Retry-After header (ccxt: RateLimitExceeded/DDoSProtection)."""
    async def respond(stub: Any, request: web.Request) -> web.StreamResponse:
        return web.json_response(_envelope(None, stub.now_ms, "429", "Too Many Requests"), status=429,
                                 headers={"Retry-After": str(retry_after_s)})
    return respond


@dataclass
class PFault:
    path: str
    skip: int = 0
    times: int | None = 1
    respond: Responder | None = None
    hang_after_s: float | None = None
    seen: int = 0
    hits: int = 0

    def applies(self) -> bool:
        self.seen += 1
        on = self.seen > self.skip and (self.times is None or self.seen <= self.skip + self.times)
        self.hits += on
        return on


@dataclass
class PCall:
    method: str
    path: str
    params: dict


@dataclass
class Position:
    qty: float = 0.0          # signed: > 0 long, < 0 short
    avg: float = 0.0


@dataclass
class StubOrder:
    order_id: str
    client_oid: str
    symbol: str
    side: str
    order_type: str
    price: float | None
    size: float
    reduce_only: bool
    margin_mode: str
    filled: float = 0.0
    avg: float = 0.0
    status: str = "live"       # live | partially_filled | filled | canceled
    c_time: int = 0
    fee: float = 0.0


@dataclass
class StubPlan:
    order_id: str
    client_oid: str
    symbol: str
    plan_type: str             # pos_loss | pos_profit | normal_plan | track_plan
    trigger_price: float
    size: float
    hold_side: str             # one-way: "buy" = long position, "sell" = short position
    side: str = ""
    status: str = "live"       # live | executed | cancelled
    c_time: int = 0


class BitgetPrivateStub:
    """The private stub (see the module docstring). `async with BitgetPrivateStub() as stub:`."""

    def __init__(self, symbols: tuple[str, ...] = ("BTCUSDT",), now_ms: int = 1_700_000_000_000,
                 mark: float = 40_000.0, balance: float = 10_000.0) -> None:
        self.public = BitgetStub(now_ms=now_ms, symbols=symbols)
        self.symbols = symbols
        self.mark = {s: mark for s in symbols}
        self.balance = balance
        self.margin_mode = "isolated"          # Bitget: isolated | crossed
        self.pos_mode = "one_way_mode"
        self.margin_mode_locked = False        # True: set-margin-mode refused
        self.leverage = {s: 10 for s in symbols}
        self.orders: dict[str, StubOrder] = {}
        self.plans: dict[str, StubPlan] = {}
        self.positions: dict[str, Position] = {s: Position() for s in symbols}
        self.partial: dict[str, float] = {}    # clientOid -> fraction filled when touched
        self.faults: list[PFault] = []
        self.calls: list[PCall] = []
        self.base_url = ""
        self._ids = itertools.count(1_000_000_001)
        self.trades: list[dict] = []           # every fill, as /order/fills reports it
        self.unprotected: list[int] = []       # /test/mark calls that found a position without its stop
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()

    @property
    def now_ms(self) -> int:
        return self.public.now_ms

    # ------------------------------------------------------------------ test helpers
    def add_fault(self, path: str, *, respond: Responder | None = None, hang_after_s: float | None = None,
                  skip: int = 0, times: int | None = 1) -> PFault:
        f = PFault(path, skip, times, respond, hang_after_s)
        self.faults.append(f)
        return f

    def clear_faults(self) -> None:
        self.faults.clear()

    def calls_to(self, path: str) -> list[dict]:
        return [c.params for c in self.calls if c.path == path]

    def live_orders(self, symbol: str = "BTCUSDT") -> list[StubOrder]:
        return [o for o in self.orders.values() if o.symbol == symbol and o.status in ("live", "partially_filled")]

    def live_plans(self, symbol: str = "BTCUSDT", plan_type: str | None = None) -> list[StubPlan]:
        return [p for p in self.plans.values() if p.symbol == symbol and p.status == "live"
                and (plan_type is None or p.plan_type == plan_type)]

    def position(self, symbol: str = "BTCUSDT") -> Position:
        return self.positions[symbol]

    def protected(self, symbol: str = "BTCUSDT") -> bool:
        """Rule one at the exchange: flat, or exactly one pos_loss stop sized to the position."""
        pos = self.positions[symbol]
        if pos.qty == 0:
            return True
        stops = self.live_plans(symbol, "pos_loss")
        return len(stops) == 1 and abs(stops[0].size - abs(pos.qty)) <= 1e-9

    def set_mark(self, symbol: str, price: float) -> None:
        """Move the mark: fill touched limit orders, then trigger a crossed pos_loss."""
        self.mark[symbol] = price
        for o in list(self.live_orders(symbol)):
            if o.order_type != "limit" or o.price is None:
                continue
            touched = (o.side == "buy" and price <= o.price) or (o.side == "sell" and price >= o.price)
            if touched:
                frac = self.partial.pop(o.client_oid, 1.0)
                self._fill(o, _lots(o.size - o.filled, frac), o.price)
        pos = self.positions[symbol]
        for p in self.live_plans(symbol, "pos_loss"):
            hit = (pos.qty > 0 and price <= p.trigger_price) or (pos.qty < 0 and price >= p.trigger_price)
            if hit:
                p.status = "executed"
                side = "sell" if pos.qty > 0 else "buy"
                o = self._new_order(f"stop-{p.order_id}", symbol, side, "market", None, abs(pos.qty), True)
                self._fill(o, o.size, price)

    # ------------------------------------------------------------------ exchange model
    def _new_order(self, cid: str, symbol: str, side: str, otype: str, price: float | None, size: float,
                   reduce_only: bool) -> StubOrder:
        o = StubOrder(str(next(self._ids)), cid, symbol, side, otype, price, size, reduce_only,
                      self.margin_mode, c_time=self.now_ms)
        self.orders[o.order_id] = o
        return o

    def _fill(self, o: StubOrder, qty: float, price: float) -> None:
        pos = self.positions[o.symbol]
        if o.reduce_only:
            qty = min(qty, abs(pos.qty))
        if qty <= 0:
            if o.reduce_only:
                o.status = "canceled"
            return
        signed = qty if o.side == "buy" else -qty
        closing = pos.qty != 0 and (pos.qty > 0) != (signed > 0)
        self.trades.append({
            "tradeId": str(next(self._ids)), "symbol": o.symbol, "orderId": o.order_id, "price": _s(price),
            "baseVolume": _s(qty), "side": o.side, "quoteVolume": _s(qty * price), "profit": "0",
            "enterPointSource": "api", "tradeSide": "close" if closing else "open", "posMode": self.pos_mode,
            "tradeScope": "maker" if o.order_type == "limit" else "taker", "cTime": str(self.now_ms),
            "feeDetail": [{"deduction": "no", "feeCoin": "USDT", "totalDeductionFee": None,
                           "totalFee": _s(-qty * price * 0.0006)}]})
        if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
            new = pos.qty + signed
            pos.avg = (abs(pos.qty) * pos.avg + qty * price) / abs(new)
            pos.qty = new
        else:
            pnl = (price - pos.avg) * min(qty, abs(pos.qty)) * (1 if pos.qty > 0 else -1)
            self.balance += pnl
            pos.qty = round(pos.qty + signed, 9)
            if pos.qty == 0:
                pos.avg = 0.0
        pos.qty = round(pos.qty, 9)
        fee = qty * price * 0.0006
        self.balance -= fee
        o.fee += fee
        o.avg = (o.filled * o.avg + qty * price) / (o.filled + qty)
        o.filled = round(o.filled + qty, 9)
        o.status = "filled" if o.filled >= o.size - 1e-12 else "partially_filled"
        if pos.qty == 0:
            for p in self.live_plans(o.symbol):
                if p.plan_type in ("pos_loss", "pos_profit"):
                    p.status = "cancelled"

    def _find_order(self, q: dict) -> StubOrder | None:
        for o in self.orders.values():
            if (q.get("orderId") and o.order_id == q["orderId"]) or (q.get("clientOid") and o.client_oid == q["clientOid"]):
                return o
        return None

    def _find_plan(self, q: dict) -> StubPlan | None:
        for p in self.plans.values():
            if (q.get("orderId") and p.order_id == q["orderId"]) or (q.get("clientOid") and p.client_oid == q["clientOid"]):
                return p
        return None

    def _cid_used(self, cid: str | None) -> bool:
        return bool(cid) and (any(o.client_oid == cid for o in self.orders.values())
                              or any(p.client_oid == cid for p in self.plans.values()))

    def _check(self, q: dict) -> Responder | None:
        if q.get("productType") != "USDT-FUTURES":
            return error("40019", f"Parameter productType cannot be empty or wrong: {q.get('productType')!r}")
        if "symbol" in q and q["symbol"] not in self.symbols:
            return error("40034", f"Parameter symbol {q['symbol']!r} does not exist")
        return None

    def _crossed(self, symbol: str, hold_side: str, trigger: float) -> Responder | None:
        mark = self.mark[symbol]
        if hold_side in ("buy", "long") and trigger >= mark:
            return error("40917", f"Stop price for long positions please < mark price {mark}")
        if hold_side in ("sell", "short") and trigger <= mark:
            return error("45122", f"Short position stop loss price please > mark price {mark}")
        return None

    # ------------------------------------------------------------------ views
    def _order_view(self, o: StubOrder) -> dict:
        pos_side = "long" if o.side == "buy" else "short"
        return {
            "symbol": o.symbol, "size": _s(o.size), "orderId": o.order_id, "clientOid": o.client_oid,
            "baseVolume": _s(o.filled), "fee": _s(-o.fee), "price": _s(o.price) if o.price is not None else "",
            "priceAvg": _s(o.avg) if o.filled else "", "status": o.status, "state": o.status, "side": o.side,
            "force": "gtc", "totalProfits": "0", "posSide": "net", "marginCoin": "USDT",
            "quoteVolume": _s(o.filled * o.avg), "leverage": str(self.leverage[o.symbol]),
            "marginMode": o.margin_mode, "tradeSide": "close" if o.reduce_only else "open",
            "posMode": self.pos_mode, "orderType": o.order_type, "orderSource": "normal",
            "reduceOnly": "YES" if o.reduce_only else "NO", "cTime": str(o.c_time), "uTime": str(self.now_ms),
            "_posSide": pos_side,
        }

    def _plan_view(self, p: StubPlan) -> dict:
        return {
            "planType": p.plan_type, "symbol": p.symbol, "size": _s(p.size), "orderId": p.order_id,
            "clientOid": p.client_oid, "price": "0", "executePrice": "0", "callbackRatio": "",
            "triggerPrice": _s(p.trigger_price), "triggerType": "mark_price", "planStatus": p.status,
            "side": p.side or ("sell" if p.hold_side == "buy" else "buy"), "posSide": "net",
            "marginCoin": "USDT", "marginMode": self.margin_mode, "enterPointSource": "API",
            "tradeSide": "close", "posMode": self.pos_mode, "orderType": "market",
            "stopSurplusTriggerPrice": "", "stopLossTriggerPrice": "", "cTime": str(p.c_time),
            "uTime": str(self.now_ms),
        }

    def _position_view(self, symbol: str) -> list[dict]:
        pos = self.positions[symbol]
        if pos.qty == 0:
            return []
        mark = self.mark[symbol]
        upl = (mark - pos.avg) * pos.qty
        return [{
            "marginCoin": "USDT", "symbol": symbol, "holdSide": "long" if pos.qty > 0 else "short",
            "openDelegateSize": "0", "marginSize": _s(abs(pos.qty) * pos.avg / self.leverage[symbol]),
            "available": _s(abs(pos.qty)), "locked": "0", "total": _s(abs(pos.qty)),
            "leverage": str(self.leverage[symbol]), "achievedProfits": "0", "openPriceAvg": _s(pos.avg),
            "marginMode": self.margin_mode, "posMode": self.pos_mode, "unrealizedPL": _s(upl),
            "liquidationPrice": "0", "keepMarginRate": "0.004", "markPrice": _s(mark),
            "cTime": str(self.now_ms), "uTime": str(self.now_ms),
        }]

    # ------------------------------------------------------------------ handlers: return data or a Responder
    async def _accounts(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        return [{"marginCoin": "USDT", "locked": "0", "available": _s(self.balance),
                 "crossedMaxAvailable": _s(self.balance), "isolatedMaxAvailable": _s(self.balance),
                 "maxTransferOut": _s(self.balance), "accountEquity": _s(self.balance),
                 "usdtEquity": _s(self.balance), "btcEquity": "0", "crossedRiskRate": "0",
                 "unrealizedPL": "0", "coupon": "0", "crossedUnrealizedPL": "0", "isolatedUnrealizedPL": "0"}]

    async def _account(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        lev = str(self.leverage[q.get("symbol", self.symbols[0])])
        return {"marginCoin": "USDT", "locked": "0", "available": _s(self.balance),
                "crossedMaxAvailable": _s(self.balance), "isolatedMaxAvailable": _s(self.balance),
                "maxTransferOut": _s(self.balance), "accountEquity": _s(self.balance), "usdtEquity": _s(self.balance),
                "marginMode": self.margin_mode, "posMode": self.pos_mode, "crossedMarginLeverage": lev,
                "isolatedLongLever": lev, "isolatedShortLever": lev}

    async def _set_leverage(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        self.leverage[q["symbol"]] = int(float(q["leverage"]))
        return {"symbol": q["symbol"], "marginCoin": "USDT", "longLeverage": q["leverage"],
                "shortLeverage": q["leverage"], "marginMode": self.margin_mode}

    async def _set_margin_mode(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        busy = self.positions[q["symbol"]].qty != 0 or self.live_orders(q["symbol"])
        if self.margin_mode_locked or busy:
            return error("45117", "Currently holding positions or orders, the margin mode cannot be adjusted")
        self.margin_mode = q["marginMode"]
        return {"symbol": q["symbol"], "marginCoin": "USDT", "marginMode": self.margin_mode}

    async def _set_position_mode(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        self.pos_mode = q["posMode"]
        return {"posMode": self.pos_mode}

    async def _place_order(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        cid = q.get("clientOid") or f"auto{next(self._ids)}"
        if self._cid_used(cid):
            return error("40786", "Duplicate clientOid")
        size = float(q["size"])
        otype = q["orderType"]
        reduce_only = q.get("reduceOnly") == "YES"
        pos = self.positions[q["symbol"]]
        if reduce_only and pos.qty == 0:
            return error("22002", "No position to close")
        if q.get("marginMode") not in (self.margin_mode, None):
            return error("40774", f"marginMode {q.get('marginMode')} does not match the account ({self.margin_mode})")
        price = float(q["price"]) if otype == "limit" else self.mark[q["symbol"]]
        if not reduce_only and size * price / self.leverage[q["symbol"]] > self.balance:
            return error("40762", "The order amount exceeds the balance")
        o = self._new_order(cid, q["symbol"], q["side"], otype, price if otype == "limit" else None, size, reduce_only)
        if otype == "market":
            frac = self.partial.pop(cid, 1.0)
            self._fill(o, _lots(size, frac), self.mark[q["symbol"]])
        return {"orderId": o.order_id, "clientOid": o.client_oid}

    async def _modify_order(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        o = self._find_order(q)
        if o is None or o.status not in ("live", "partially_filled"):
            return error("40768", "Order does not exist")
        if q.get("newPrice"):
            o.price = float(q["newPrice"])
        if q.get("newSize"):
            o.size = float(q["newSize"])
        return {"orderId": o.order_id, "clientOid": o.client_oid}

    async def _cancel_order(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        o = self._find_order(q)
        if o is None or o.status not in ("live", "partially_filled"):
            return error("40768", "Order does not exist")
        o.status = "canceled"
        return {"orderId": o.order_id, "clientOid": o.client_oid}

    async def _orders_pending(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        out = [self._order_view(o) for o in self.orders.values() if o.status in ("live", "partially_filled")
               and (not q.get("symbol") or o.symbol == q["symbol"])
               and (not q.get("clientOid") or o.client_oid == q["clientOid"])]
        return {"entrustedList": out or None, "endId": out[-1]["orderId"] if out else None}

    async def _detail(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        o = self._find_order(q)
        if o is None:
            return error("40109", "The data of the order cannot be found, please confirm the order number")
        return self._order_view(o)

    async def _place_tpsl(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        cid = q.get("clientOid") or f"auto{next(self._ids)}"
        if self._cid_used(cid):
            return error("40786", "Duplicate clientOid")
        symbol, plan_type, trigger = q["symbol"], q["planType"], float(q["triggerPrice"])
        pos = self.positions[symbol]
        hold = q.get("holdSide", "")
        if pos.qty == 0 or (hold in ("buy", "long")) != (pos.qty > 0):
            return error("43023", "Insufficient position, can not set profit or stop loss")
        if plan_type == "pos_loss":
            crossed = self._crossed(symbol, hold, trigger)
            if crossed:
                return crossed
            if self.live_plans(symbol, "pos_loss"):
                return error("43024", "The position already has a position stop loss; modify it")
        p = StubPlan(str(next(self._ids)), cid, symbol, plan_type, trigger, float(q.get("size") or 0), hold,
                     c_time=self.now_ms)
        self.plans[p.order_id] = p
        return {"orderId": p.order_id, "clientOid": p.client_oid}

    async def _place_plan(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        cid = q.get("clientOid") or f"auto{next(self._ids)}"
        if self._cid_used(cid):
            return error("40786", "Duplicate clientOid")
        p = StubPlan(str(next(self._ids)), cid, q["symbol"], q.get("planType", "normal_plan"),
                     float(q["triggerPrice"]), float(q["size"]), "", side=q.get("side", ""), c_time=self.now_ms)
        self.plans[p.order_id] = p
        return {"orderId": p.order_id, "clientOid": p.client_oid}

    async def _modify_tpsl(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        p = self._find_plan(q)
        if p is None or p.status != "live":
            return error("40768", "Order does not exist")
        trigger = float(q["triggerPrice"])
        if p.plan_type == "pos_loss":
            crossed = self._crossed(p.symbol, p.hold_side, trigger)
            if crossed:
                return crossed
        p.trigger_price = trigger
        if q.get("size"):
            p.size = float(q["size"])
        return {"orderId": p.order_id, "clientOid": p.client_oid}

    async def _cancel_plan(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        ok, failed = [], []
        for ref in q.get("orderIdList") or []:
            p = self._find_plan(ref)
            if p is None or p.status != "live":
                failed.append({**ref, "errorMsg": "Order does not exist", "errorCode": "40768"})
            else:
                p.status = "cancelled"
                ok.append({"orderId": p.order_id, "clientOid": p.client_oid})
        return {"successList": ok, "failureList": failed}

    async def _plan_pending(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        kinds = {"normal_plan": ("normal_plan",), "track_plan": ("track_plan",),
                 "profit_loss": ("pos_loss", "pos_profit", "loss_plan", "profit_plan", "moving_plan")}
        want = kinds.get(q.get("planType", ""))
        if want is None:
            return error("40019", f"Parameter planType is wrong: {q.get('planType')!r}")
        out = [self._plan_view(p) for p in self.plans.values() if p.status == "live" and p.plan_type in want
               and (not q.get("symbol") or p.symbol == q["symbol"])
               and (not q.get("clientOid") or p.client_oid == q["clientOid"])]
        return {"entrustedList": out or None, "endId": out[-1]["orderId"] if out else None}

    async def _all_position(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        return [row for s in self.symbols for row in self._position_view(s)]

    async def _single_position(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        return self._position_view(q["symbol"])

    async def _control_mark(self, q: dict) -> Any:
        """Test control (another process drives the market): check that a position has its stop
        (`unprotected` records the moment otherwise), then walk the mark along `path`."""
        sym = q["symbol"]
        if not self.protected(sym):
            self.unprotected.append(int(q.get("now_ms") or 0))
        if q.get("now_ms"):
            self.public.now_ms = int(q["now_ms"])
        for p in q.get("path") or []:
            self.set_mark(sym, float(p))
        return {"ok": True}

    async def _fills(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        since = int(q.get("startTime") or 0)
        rows = [t for t in self.trades if t["symbol"] == q.get("symbol") and int(t["cTime"]) >= since]
        return {"fillList": rows, "endId": rows[-1]["tradeId"] if rows else None}

    async def _ticker(self, q: dict) -> Any:
        sym = q.get("symbol", "")
        if sym not in self.mark:
            return error("40034", "Parameter symbol does not exist")
        m = _s(self.mark[sym])
        return [{"symbol": sym, "lastPr": m, "askPr": m, "bidPr": m, "bidSz": "1", "askSz": "1", "high24h": m,
                 "low24h": m, "ts": str(self.now_ms), "change24h": "0", "baseVolume": "0", "quoteVolume": "0",
                 "usdtVolume": "0", "openUtc": m, "changeUtc24h": "0", "indexPrice": m, "fundingRate": "0",
                 "holdingAmount": "0", "markPrice": m, "open24h": m}]

    # ------------------------------------------------------------------ serving
    def _routes(self) -> list[tuple[str, str, Callable[[dict], Awaitable[Any]]]]:
        pub = self.public._routes()
        return [
            ("GET", TIME_PATH, pub[TIME_PATH]), ("GET", COINS_PATH, pub[COINS_PATH]),
            ("GET", CONTRACTS_PATH, pub[CONTRACTS_PATH]),
            ("GET", ACCOUNTS, self._accounts), ("GET", ACCOUNT, self._account),
            ("POST", SET_LEVERAGE, self._set_leverage), ("POST", SET_MARGIN_MODE, self._set_margin_mode),
            ("POST", SET_POSITION_MODE, self._set_position_mode),
            ("POST", PLACE_ORDER, self._place_order), ("POST", CANCEL_ORDER, self._cancel_order),
            ("POST", MODIFY_ORDER, self._modify_order),
            ("GET", ORDERS_PENDING, self._orders_pending), ("GET", ORDER_DETAIL, self._detail),
            ("POST", PLACE_TPSL, self._place_tpsl), ("POST", PLACE_PLAN, self._place_plan),
            ("POST", MODIFY_TPSL, self._modify_tpsl), ("POST", CANCEL_PLAN, self._cancel_plan),
            ("GET", PLAN_PENDING, self._plan_pending),
            ("GET", ALL_POSITION, self._all_position), ("GET", SINGLE_POSITION, self._single_position),
            ("GET", TICKER, self._ticker), ("GET", ORDER_FILLS, self._fills),
            ("POST", CONTROL_MARK, self._control_mark),
        ]

    def _wrap(self, handler: Callable[[dict], Awaitable[Any]], private: bool):
        async def route(request: web.Request) -> web.StreamResponse:
            params: dict = dict(request.query)
            if request.method == "POST" and request.can_read_body:
                body = await request.text()
                if body:
                    params.update(json.loads(body))
            self.calls.append(PCall(request.method, request.path, params))
            if private and not request.headers.get("ACCESS-KEY"):
                return web.json_response(_envelope(None, self.now_ms, "40037", "Apikey does not exist"), status=400)
            active = [f for f in self.faults if f.path == request.path and f.applies()]
            for fault in active:
                if fault.respond is not None:
                    answer = await fault.respond(self, request)
                    if answer is not None:
                        return answer
            data = await handler(params)
            for fault in active:
                if fault.hang_after_s is not None:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), fault.hang_after_s)
            if callable(data):
                return await data(self, request)
            return web.json_response(_envelope(data, self.now_ms))
        return route

    async def start(self) -> str:
        self._closing = asyncio.Event()
        self.public._closing = self._closing
        app = web.Application()
        for method, path, handler in self._routes():
            private = path.startswith(MIX) and "/market/" not in path
            app.router.add_route(method, path, self._wrap(handler, private))
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "BitgetPrivateStub":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


LOT = 0.001      # the contracts' size step (bitget_stub: volumePlace 3): fills are whole lots


def _lots(qty: float, frac: float) -> float:
    """`frac` of `qty`, in whole lots (a partial fill rounds down; frac 1 fills all)."""
    if frac >= 1.0:
        return round(qty, 9)
    return round(int(qty * frac / LOT + 1e-9) * LOT, 9)


def _s(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:.10f}".rstrip("0").rstrip(".") or "0"
