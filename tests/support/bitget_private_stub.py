"""A local stand-in for Bitget's PRIVATE v2 mix (USDT-M futures) REST API, for tests: a tiny
in-memory exchange on 127.0.0.1. Public endpoints (time, coins, contracts) are served by composing
`tests.support.bitget_stub.BitgetStub`'s handlers; nothing here edits that file.

Point the real ccxt bitget async client at it with `core.data.download.override_api_urls`
(dummy keys; `options = {"uta": False, "fetchMarkets": {"types": ["swap"]}, "defaultType": "swap"}`).
Prices USDT, sizes base units, times ms UTC (`now_ms`, settable through `public.now_ms`).

Where each behaviour comes from (R = recorded: a real Bitget answer in ccxt's test suite,
`ts/src/test/static/{request,response}/bitget.json`, extracts in `tests/venues/fixtures/`;
D = Bitget's v2 API docs; A = assumed, neither recorded nor documented):

| endpoint / behaviour                               | served as                                                     | src |
|----------------------------------------------------|---------------------------------------------------------------|-----|
| envelope                                           | `{"code": "00000", "msg": "success", "requestTime", "data"}`  | R   |
| GET account/accounts                               | USDT row; `accountEquity` = cash + unrealised P&L             | D   |
| GET account/account                                | marginMode, posMode, leverage fields as JSON numbers          | R   |
| POST account/set-leverage / set-margin-mode / set-position-mode | 45117 while positions/orders exist (margin mode)  | R (requests) / A (45117) |
| POST order/place-order                             | limit / market (market fills at `mark`); `{orderId, clientOid}` | R   |
|   reduce-only with no position                     | 22002 "No position to close"                                  | D   |
|   hedge-form order (`tradeSide`) in one-way mode   | 40774                                                         | R (ccxt table message) |
|   `marginMode` other than the account's            | 40017 (parameter verification)                                | A   |
|   clientOid used before                            | 40786                                                         | A   |
|   `presetStopLossPrice`                            | stored; each (partial) fill creates / grows a `loss_plan` of the filled size at that trigger, client id = its order id | A (UTA recording: an attached stop gets a generated id and the entry's size) |
| POST order/modify-order                            | cancel-and-recreate: NEW orderId, `newClientOid` required (22003), reused one refused (40786), newSize + newPrice both required, only an unfilled ("live") order (40017 otherwise), answer `{orderId: null, clientOid: newClientOid}` | D (ccxt source comment for the answer) |
|   preset stop of an amended order                  | kept on the new order (`amend_keeps_preset`)                  | A   |
|   in one-way mode                                  | allowed; `modify_in_one_way = False` refuses it (40017)       | A: one version of the docs page says size/price modification is hedge-mode only |
| POST order/cancel-order                            | `{orderId, clientOid}`; 40768 when not open                   | R   |
| GET order/orders-pending, order/orders-history     | `status` key; history = finished orders only; pages (`limit` <= 100, `idLessThan` = `endId`, newest first) | R (history row) / D (paging) / A (finished only) |
| GET order/detail                                   | `state` key (not `status`); 40109 when unknown                | R   |
| POST order/place-tpsl-order                        | pos_loss / pos_profit (size not required), loss_plan / profit_plan (size required) | R (request) / D |
|   no position / other side                         | 43023                                                         | A   |
|   pos_loss already live                            | 43024                                                         | A   |
|   pos_loss trigger already crossed                 | 40917 (long) / 45122 (short)                                  | R (ccxt table messages) |
| POST order/place-plan-order                        | normal_plan / track_plan (stored, never triggered)            | D   |
| POST order/modify-tpsl-order                       | pos_loss: size ignored (whole position)                       | R (request) / D |
| POST order/cancel-plan-order                       | orderIdList; unknown ids land in failureList (43025)          | R   |
| GET order/orders-plan-pending, orders-plan-history | planType normal_plan / profit_loss / track_plan; pages as above; a pos_loss / pos_profit row's `size` is "" | D / A ("" size) |
| GET position/all-position, single-position         | recorded keys; `[]` when flat                                 | R   |
| GET market/ticker                                  | lastPr = markPrice = `mark[symbol]`                           | D   |
| GET order/fills                                    | fillList newest first, pages (`limit`, `idLessThan` = `endId`, startTime/endTime) | R (row) / D (paging) |
| one-way `tradeSide` of orders and fills            | "buy_single" / "sell_single"                                  | D (tradeSide list; the detail example shows "") |
| one-way `posSide`                                  | "net"                                                         | A   |
| empty lists                                        | `entrustedList: null`, `fillList: null`, `endId: null`        | A   |

Exchange model (one-way mode): `set_mark(symbol, price)` moves the mark price: resting limit buys at
or above it / sells at or below it fill (`partial[clientOid] = fraction` fills only that fraction;
a limit order fills only when the mark is moved to it, never on placement: A), then a crossed
pos_loss closes the whole position and a crossed loss_plan closes its size, at the mark. A position
going flat cancels its TP/SL plans (pos_loss, pos_profit, loss_plan, profit_plan: A for the last
two).

Protection log: after every state-changing event (order placed / filled / cancelled / amended, plan
placed / modified / cancelled / triggered, mark move) `protection_log` gets a `ProtectionSample`
(time.monotonic(), symbol, event, position qty, covered qty). Covered = the whole position when a
pos_loss is live, else the sum of the live loss_plans' sizes. `protected(symbol)`,
`unprotected_intervals()`, `longest_unprotected_s()` read it.

Faults (per path; every applied fault counts in `fault_counts[kind]`):
`add_fault(path, respond=...)` answers instead: `server_error()` (HTTP 500), `too_many(s)` (429 +
Retry-After), `error(code, msg)` (a business reject), `hang(s)` (a timeout past the client's),
`garbage()` (HTTP 200, not JSON); `hang_after_s` runs the handler (the order IS created) and then
stalls; `transform` rewrites the answer's data; `malformed(path, drop=..., set=...)` drops fields
from / sets fields of every row of the answer; `partial[clientOid]` fills a fraction;
`await restart(down_s)` stops serving (connection refused) for `down_s` seconds and comes back on
the same port with the same state. Every call is in `calls`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from aiohttp import web

from tests.support.bitget_stub import COINS_PATH, CONTRACTS_PATH, TIME_PATH, BitgetStub, Responder, _envelope
from tests.support.bitget_stub import error as _public_error
from tests.support.bitget_stub import hang as _public_hang

MIX = "/api/v2/mix"
ACCOUNTS = f"{MIX}/account/accounts"
ACCOUNT = f"{MIX}/account/account"
SET_LEVERAGE = f"{MIX}/account/set-leverage"
SET_MARGIN_MODE = f"{MIX}/account/set-margin-mode"
SET_POSITION_MODE = f"{MIX}/account/set-position-mode"
PLACE_ORDER = f"{MIX}/order/place-order"
CANCEL_ORDER = f"{MIX}/order/cancel-order"
ORDERS_PENDING = f"{MIX}/order/orders-pending"
ORDERS_HISTORY = f"{MIX}/order/orders-history"
ORDER_DETAIL = f"{MIX}/order/detail"
PLACE_TPSL = f"{MIX}/order/place-tpsl-order"
PLACE_PLAN = f"{MIX}/order/place-plan-order"
MODIFY_TPSL = f"{MIX}/order/modify-tpsl-order"
MODIFY_ORDER = f"{MIX}/order/modify-order"
CANCEL_PLAN = f"{MIX}/order/cancel-plan-order"
PLAN_PENDING = f"{MIX}/order/orders-plan-pending"
PLAN_HISTORY = f"{MIX}/order/orders-plan-history"
ALL_POSITION = f"{MIX}/position/all-position"
SINGLE_POSITION = f"{MIX}/position/single-position"
TICKER = f"{MIX}/market/ticker"
ORDER_FILLS = f"{MIX}/order/fills"
CONTROL_MARK = "/test/mark"      # not Bitget: lets a test in another process walk the mark

PAGE_MAX = 100                   # D: limit maximum / default of the paginated reads
FEE_RATE = 0.0006                # taker fee of every fill (A: one rate for maker and taker)
TPSL_PLANS = ("pos_loss", "pos_profit", "loss_plan", "profit_plan")
WHOLE_POSITION = ("pos_loss", "pos_profit")

__all__ = ["BitgetPrivateStub", "Position", "ProtectionSample", "error", "garbage", "hang", "malformed_rows",
           "server_error", "too_many"]


# ---------------------------------------------------------------------------- responders
def _kind(responder: Responder, kind: str) -> Responder:
    responder.kind = kind  # type: ignore[attr-defined]
    return responder


def server_error() -> Responder:
    """HTTP 500, plain text (ccxt: ExchangeNotAvailable)."""
    async def respond(stub: Any, request: web.Request) -> web.StreamResponse:
        return web.Response(status=500, text="Internal Server Error")
    return _kind(respond, "server_error")


def too_many(retry_after_s: float = 0.05) -> Responder:
    """HTTP 429 with Bitget's body and a Retry-After header (ccxt: RateLimitExceeded/DDoSProtection)."""
    async def respond(stub: Any, request: web.Request) -> web.StreamResponse:
        return web.json_response(_envelope(None, stub.now_ms, "429", "Too Many Requests"), status=429,
                                 headers={"Retry-After": str(retry_after_s)})
    return _kind(respond, "too_many")


def error(code: str, msg: str, status: int = 400) -> Responder:
    """A Bitget business reject: the error envelope with `code` (HTTP 400)."""
    return _kind(_public_error(code, msg, status), "reject")


def hang(seconds: float, arrived: asyncio.Event | None = None) -> Responder:
    """Stall `seconds` (or until the stub closes) before the normal answer: past a short client timeout."""
    return _kind(_public_hang(seconds, arrived), "hang")


def garbage(text: str = "<html>502 Bad Gateway</html>", status: int = 200) -> Responder:
    """An answer that is not JSON at all (a proxy's error page)."""
    async def respond(stub: Any, request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=text, content_type="text/html")
    return _kind(respond, "garbage")


_LIST_KEYS = ("entrustedList", "fillList", "successList")


def malformed_rows(drop: Iterable[str] = (), set_: dict | None = None) -> Callable[[Any], Any]:
    """A `transform` that drops the fields `drop` from, and sets `set_` on, every row of an
    answer's data: the items of a list, of `entrustedList` / `fillList` / `successList`, or the
    object itself."""
    drop = tuple(drop)
    set_ = dict(set_ or {})

    def edit(row: Any) -> Any:
        if isinstance(row, dict):
            row = {k: v for k, v in row.items() if k not in drop}
            row.update(set_)
        return row

    def transform(data: Any) -> Any:
        if isinstance(data, list):
            return [edit(r) for r in data]
        if isinstance(data, dict):
            keys = [k for k in _LIST_KEYS if isinstance(data.get(k), list)]
            if keys:
                return {**data, **{k: [edit(r) for r in data[k]] for k in keys}}
            return edit(data)
        return data
    return transform


# ---------------------------------------------------------------------------- state
@dataclass
class PFault:
    path: str
    skip: int = 0
    times: int | None = 1
    respond: Responder | None = None
    hang_after_s: float | None = None
    transform: Callable[[Any], Any] | None = None
    kind: str = ""
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
    c_time: int = 0


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
    u_time: int = 0
    fee: float = 0.0
    profit: float = 0.0
    preset_sl: float | None = None


@dataclass
class StubPlan:
    order_id: str
    client_oid: str
    symbol: str
    plan_type: str             # pos_loss | pos_profit | loss_plan | profit_plan | normal_plan | track_plan
    trigger_price: float
    size: float                # as requested (pos_loss / pos_profit: informative only, served as "")
    hold_side: str             # one-way: "buy" = long position, "sell" = short position
    side: str = ""
    status: str = "live"       # live | executed | cancelled
    c_time: int = 0
    u_time: int = 0
    source_order: str | None = None    # the entry whose preset stop-loss made this loss_plan


@dataclass(frozen=True)
class ProtectionSample:
    """One protection-log entry: `t` time.monotonic() s, the position's |qty| and the qty the live
    stops cover (base units) right after `event`."""

    t: float
    symbol: str
    event: str
    qty: float
    covered: float

    @property
    def protected(self) -> bool:
        return self.qty <= 1e-12 or self.covered >= self.qty - 1e-9


class BitgetPrivateStub:
    """The private stub (see the module docstring). `async with BitgetPrivateStub() as stub:`."""

    def __init__(self, symbols: tuple[str, ...] = ("BTCUSDT",), now_ms: int = 1_700_000_000_000,
                 mark: float = 40_000.0, balance: float = 10_000.0) -> None:
        self.public = BitgetStub(now_ms=now_ms, symbols=symbols)
        self.symbols = symbols
        self.mark = {s: mark for s in symbols}
        self.balance = balance                 # realised cash, USDT (fees and closed P&L booked)
        self.margin_mode = "isolated"          # Bitget: isolated | crossed
        self.pos_mode = "one_way_mode"
        self.margin_mode_locked = False        # True: set-margin-mode refused
        self.amend_keeps_preset = True         # A: modify-order keeps the preset stop-loss on the new order
        self.modify_in_one_way = True          # A: modify-order of size/price works in one-way mode
        self.leverage = {s: 10 for s in symbols}
        self.orders: dict[str, StubOrder] = {}
        self.plans: dict[str, StubPlan] = {}
        self.positions: dict[str, Position] = {s: Position() for s in symbols}
        self.partial: dict[str, float] = {}    # clientOid -> fraction filled when touched
        self.faults: list[PFault] = []
        self.fault_counts: collections.Counter[str] = collections.Counter()
        self.calls: list[PCall] = []
        self.base_url = ""
        self.port = 0
        self._ids = itertools.count(1_000_000_001)
        self.trades: list[dict] = []           # every fill, as /order/fills reports it (oldest first)
        self.unprotected: list[int] = []       # /test/mark calls that found a position without its stop
        self.protection_log: list[ProtectionSample] = []
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()

    @property
    def now_ms(self) -> int:
        return self.public.now_ms

    # ------------------------------------------------------------------ test helpers
    def add_fault(self, path: str, *, respond: Responder | None = None, hang_after_s: float | None = None,
                  transform: Callable[[Any], Any] | None = None, skip: int = 0, times: int | None = 1,
                  kind: str | None = None) -> PFault:
        """Inject a fault on `path` (module docstring); its kind (for `fault_counts`) is the
        responder's, "hang_after", "transform", or `kind` when given."""
        k = kind or getattr(respond, "kind", None) or ("hang_after" if hang_after_s is not None else
                                                       "transform" if transform is not None else "custom")
        f = PFault(path, skip, times, respond, hang_after_s, transform, k)
        self.faults.append(f)
        return f

    def malformed(self, path: str, *, drop: Iterable[str] = (), set: dict | None = None,
                  skip: int = 0, times: int | None = 1) -> PFault:
        """Serve `path`'s normal answer with the fields `drop` removed from (and `set` written into)
        every row, e.g. `malformed(SINGLE_POSITION, drop=("openPriceAvg",))` or
        `malformed(TICKER, set={"markPrice": "n/a"})`."""
        return self.add_fault(path, transform=malformed_rows(drop, set), skip=skip, times=times, kind="malformed")

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

    def covered_qty(self, symbol: str = "BTCUSDT") -> float:
        """Base units the live stops would close: the whole position under a live pos_loss, else
        the sum of the live loss_plans' sizes."""
        qty = abs(self.positions[symbol].qty)
        if self.live_plans(symbol, "pos_loss"):
            return qty
        return sum(p.size for p in self.live_plans(symbol, "loss_plan"))

    def protected(self, symbol: str = "BTCUSDT") -> bool:
        """Rule one at the exchange: flat, or the live stops cover the whole position (a pos_loss
        covers everything; loss_plans their sizes)."""
        qty = abs(self.positions[symbol].qty)
        return qty <= 1e-12 or self.covered_qty(symbol) >= qty - 1e-9

    def unprotected_intervals(self, symbol: str | None = None) -> list[tuple[float, float, str]]:
        """(start, end, symbol) in time.monotonic() seconds of every stretch of the protection log
        in which an open position was not fully covered; a stretch still open ends now."""
        out: list[tuple[float, float, str]] = []
        syms = [symbol] if symbol else list(self.symbols)
        for s in syms:
            start: float | None = None
            for smp in (x for x in self.protection_log if x.symbol == s):
                if not smp.protected and start is None:
                    start = smp.t
                elif smp.protected and start is not None:
                    out.append((start, smp.t, s))
                    start = None
            if start is not None:
                out.append((start, time.monotonic(), s))
        return sorted(out)

    def longest_unprotected_s(self, symbol: str | None = None) -> float:
        """Wall seconds of the longest unprotected stretch (0.0 when there was none)."""
        return max((b - a for a, b, _ in self.unprotected_intervals(symbol)), default=0.0)

    def _snap(self, symbol: str, event: str) -> None:
        self.protection_log.append(ProtectionSample(time.monotonic(), symbol, event,
                                                    abs(self.positions[symbol].qty), self.covered_qty(symbol)))

    def set_mark(self, symbol: str, price: float) -> None:
        """Move the mark: fill touched limit orders, then trigger crossed pos_loss / loss_plan stops."""
        self.mark[symbol] = price
        for o in list(self.live_orders(symbol)):
            if o.order_type != "limit" or o.price is None:
                continue
            touched = (o.side == "buy" and price <= o.price) or (o.side == "sell" and price >= o.price)
            if touched:
                self._fill(o, _lots(o.size - o.filled, self._fraction(o.client_oid)), o.price)
        for p in sorted(self.live_plans(symbol), key=lambda p: p.plan_type != "pos_loss"):
            pos = self.positions[symbol]
            if p.status != "live" or p.plan_type not in ("pos_loss", "loss_plan") or pos.qty == 0:
                continue
            long = p.hold_side in ("buy", "long")
            if long != (pos.qty > 0):
                continue
            hit = (long and price <= p.trigger_price) or (not long and price >= p.trigger_price)
            if hit:
                p.status, p.u_time = "executed", self.now_ms
                side = "sell" if pos.qty > 0 else "buy"
                size = abs(pos.qty) if p.plan_type == "pos_loss" else min(p.size, abs(pos.qty))
                o = self._new_order(p.order_id + "x", symbol, side, "market", None, size, True)
                self._fill(o, o.size, price)
                self._snap(symbol, f"{p.plan_type} triggered")
        self._snap(symbol, "mark")

    def _fraction(self, cid: str) -> float:
        frac = self.partial.pop(cid, 1.0)
        if frac < 1.0:
            self.fault_counts["partial"] += 1
        return frac

    # ------------------------------------------------------------------ exchange model
    def _new_order(self, cid: str, symbol: str, side: str, otype: str, price: float | None, size: float,
                   reduce_only: bool, preset_sl: float | None = None) -> StubOrder:
        o = StubOrder(str(next(self._ids)), cid, symbol, side, otype, price, size, reduce_only,
                      self.margin_mode, c_time=self.now_ms, u_time=self.now_ms, preset_sl=preset_sl)
        self.orders[o.order_id] = o
        return o

    def _new_plan(self, cid: str | None, symbol: str, plan_type: str, trigger: float, size: float, hold: str,
                  side: str = "", source: str | None = None) -> StubPlan:
        oid = str(next(self._ids))
        p = StubPlan(oid, cid or oid, symbol, plan_type, trigger, size, hold, side, c_time=self.now_ms,
                     u_time=self.now_ms, source_order=source)
        self.plans[oid] = p
        return p

    def _fill(self, o: StubOrder, qty: float, price: float) -> None:
        pos = self.positions[o.symbol]
        if o.reduce_only:
            qty = min(qty, abs(pos.qty))
        if qty <= 0:
            if o.reduce_only:
                o.status, o.u_time = "canceled", self.now_ms
            return
        signed = qty if o.side == "buy" else -qty
        opening = pos.qty == 0 or (pos.qty > 0) == (signed > 0)
        pnl = 0.0
        if opening:
            new = pos.qty + signed
            pos.avg = (abs(pos.qty) * pos.avg + qty * price) / abs(new)
            if pos.qty == 0:
                pos.c_time = self.now_ms
            pos.qty = new
        else:
            pnl = (price - pos.avg) * min(qty, abs(pos.qty)) * (1 if pos.qty > 0 else -1)
            self.balance += pnl
            pos.qty = round(pos.qty + signed, 9)
            if pos.qty == 0:
                pos.avg = 0.0
        pos.qty = round(pos.qty, 9)
        fee = qty * price * FEE_RATE
        self.trades.append({
            "tradeId": str(next(self._ids)), "symbol": o.symbol, "orderId": o.order_id, "price": _s(price),
            "baseVolume": _s(qty),
            "feeDetail": [{"deduction": "no", "feeCoin": "USDT", "totalDeductionFee": None, "totalFee": _s(-fee)}],
            "side": o.side, "quoteVolume": _s(qty * price), "profit": _s(pnl), "enterPointSource": "api",
            "tradeSide": self._trade_side(o.side, o.reduce_only), "posMode": self.pos_mode,
            "tradeScope": "maker" if o.order_type == "limit" else "taker", "cTime": str(self.now_ms)})
        self.balance -= fee
        o.fee += fee
        o.profit += pnl
        o.avg = (o.filled * o.avg + qty * price) / (o.filled + qty)
        o.filled = round(o.filled + qty, 9)
        o.status = "filled" if o.filled >= o.size - 1e-12 else "partially_filled"
        o.u_time = self.now_ms
        if opening and o.preset_sl is not None:
            self._grow_preset(o, qty)
        if pos.qty == 0:
            for p in self.live_plans(o.symbol):
                if p.plan_type in TPSL_PLANS:
                    p.status, p.u_time = "cancelled", self.now_ms
        self._snap(o.symbol, f"fill {o.client_oid}")

    def _grow_preset(self, o: StubOrder, qty: float) -> None:
        """A: the preset stop-loss of a filling entry becomes (or grows) a loss_plan of the filled size."""
        for p in self.live_plans(o.symbol, "loss_plan"):
            if p.source_order == o.order_id:
                p.size = round(p.size + qty, 9)
                p.u_time = self.now_ms
                return
        hold = "buy" if o.side == "buy" else "sell"
        self._new_plan(None, o.symbol, "loss_plan", float(o.preset_sl), qty, hold,     # type: ignore[arg-type]
                       side="sell" if hold == "buy" else "buy", source=o.order_id)

    def _trade_side(self, side: str, reduce_only: bool) -> str:
        if self.pos_mode == "one_way_mode":
            return f"{side}_single"
        return "close" if reduce_only else "open"

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

    def _upl(self, symbol: str | None = None) -> float:
        """Unrealised P&L at the mark, USDT (one symbol, or all)."""
        syms = [symbol] if symbol else list(self.symbols)
        return sum((self.mark[s] - self.positions[s].avg) * self.positions[s].qty for s in syms
                   if self.positions[s].qty != 0)

    # ------------------------------------------------------------------ views
    def _order_view(self, o: StubOrder, status_key: str = "status") -> dict:
        one_way = self.pos_mode == "one_way_mode"
        return {
            "symbol": o.symbol, "size": _s(o.size), "orderId": o.order_id, "clientOid": o.client_oid,
            "baseVolume": _s(o.filled), "fee": _s(-o.fee), "price": _s(o.price) if o.price is not None else "",
            "priceAvg": _s(o.avg) if o.filled else "", status_key: o.status, "side": o.side,
            "force": "gtc", "totalProfits": _s(o.profit), "posSide": "net" if one_way else
            ("long" if (o.side == "buy") != o.reduce_only else "short"), "marginCoin": "USDT",
            "presetStopSurplusPrice": "", "presetStopLossPrice": _s(o.preset_sl) if o.preset_sl is not None else "",
            "quoteVolume": _s(o.filled * o.avg), "orderType": o.order_type, "leverage": str(self.leverage[o.symbol]),
            "marginMode": o.margin_mode, "reduceOnly": "YES" if o.reduce_only else "NO",
            "enterPointSource": "API", "tradeSide": self._trade_side(o.side, o.reduce_only), "posMode": self.pos_mode,
            "orderSource": "normal" if o.order_type == "limit" else "market",
            "cTime": str(o.c_time), "uTime": str(o.u_time),
        }

    def _plan_view(self, p: StubPlan) -> dict:
        side = p.side or ("sell" if p.hold_side == "buy" else "buy")
        return {
            "planType": p.plan_type, "symbol": p.symbol,
            "size": "" if p.plan_type in WHOLE_POSITION else _s(p.size), "orderId": p.order_id,
            "clientOid": p.client_oid, "price": "0", "executePrice": "0", "callbackRatio": "",
            "triggerPrice": _s(p.trigger_price), "triggerType": "mark_price", "planStatus": p.status,
            "side": side, "posSide": "net", "marginCoin": "USDT", "marginMode": self.margin_mode,
            "enterPointSource": "API", "tradeSide": self._trade_side(side, p.plan_type in TPSL_PLANS),
            "posMode": self.pos_mode, "orderType": "market", "stopSurplusTriggerPrice": "",
            "stopLossTriggerPrice": "", "cTime": str(p.c_time), "uTime": str(p.u_time),
        }

    def _position_view(self, symbol: str) -> list[dict]:
        pos = self.positions[symbol]
        if pos.qty == 0:
            return []
        mark = self.mark[symbol]
        margin = abs(pos.qty) * pos.avg / self.leverage[symbol]
        return [{
            "marginCoin": "USDT", "symbol": symbol, "holdSide": "long" if pos.qty > 0 else "short",
            "openDelegateSize": "0", "marginSize": _s(margin), "available": _s(abs(pos.qty)), "locked": "0",
            "total": _s(abs(pos.qty)), "leverage": str(self.leverage[symbol]), "achievedProfits": "0",
            "openPriceAvg": _s(pos.avg), "marginMode": self.margin_mode, "posMode": self.pos_mode,
            "unrealizedPL": _s(self._upl(symbol)), "liquidationPrice": "0", "keepMarginRate": "0.004",
            "markPrice": _s(mark), "marginRatio": "0", "cTime": str(pos.c_time or self.now_ms),
        }]

    def _account_row(self) -> dict:
        upl = self._upl()
        equity = self.balance + upl
        crossed = self.margin_mode == "crossed"
        return {"marginCoin": "USDT", "locked": "0", "available": _s(self.balance),
                "crossedMaxAvailable": _s(self.balance), "isolatedMaxAvailable": _s(self.balance),
                "maxTransferOut": _s(self.balance), "accountEquity": _s(equity), "usdtEquity": _s(equity),
                "btcEquity": "0", "crossedRiskRate": "0", "unrealizedPL": _s(upl), "coupon": "0",
                "crossedUnrealizedPL": _s(upl) if crossed else "",
                "isolatedUnrealizedPL": "" if crossed else _s(upl)}

    # ------------------------------------------------------------------ pagination
    @staticmethod
    def _page(q: dict, rows: list[dict], id_key: str, list_key: str) -> Any:
        """D: newest first (largest id first), `limit` <= 100 (default 100), `idLessThan` =
        the `endId` of the previous page, `startTime` / `endTime` on cTime (ms)."""
        try:
            limit = int(q.get("limit") or PAGE_MAX)
            start = int(q["startTime"]) if q.get("startTime") else None
            end = int(q["endTime"]) if q.get("endTime") else None
            below = int(q["idLessThan"]) if q.get("idLessThan") else None
        except ValueError:
            return error("40017", "Parameter verification failed")
        if not 1 <= limit <= PAGE_MAX:
            return error("40017", f"Parameter verification failed: limit {limit} not in [1, {PAGE_MAX}]")
        sel = [r for r in rows if (start is None or int(r["cTime"]) >= start) and (end is None or int(r["cTime"]) <= end)
               and (below is None or int(r[id_key]) < below)]
        sel.sort(key=lambda r: int(r[id_key]), reverse=True)
        page = sel[:limit]
        return {list_key: page or None, "endId": page[-1][id_key] if page else None}

    # ------------------------------------------------------------------ handlers: return data or a Responder
    async def _accounts(self, q: dict) -> Any:
        return self._check(q) or [self._account_row()]

    async def _account(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        lev = self.leverage[q.get("symbol", self.symbols[0])]
        return {**self._account_row(), "crossedMarginLeverage": lev, "isolatedLongLever": lev,
                "isolatedShortLever": lev, "marginMode": self.margin_mode, "posMode": self.pos_mode,
                "grant": "", "assetMode": "single", "isolatedMargin": None, "crossedMargin": None}

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
        if self.pos_mode == "one_way_mode" and q.get("tradeSide"):
            return error("40774", "The order type for unilateral position must also be the unilateral position type.")
        size = float(q["size"])
        otype = q["orderType"]
        reduce_only = q.get("reduceOnly") == "YES"
        symbol = q["symbol"]
        pos = self.positions[symbol]
        if reduce_only and pos.qty == 0:
            return error("22002", "No position to close")
        if q.get("marginMode") not in (self.margin_mode, None):
            return error("40017", f"Parameter verification failed: marginMode {q.get('marginMode')} does not "
                                  f"match the account's {self.margin_mode}")
        price = float(q["price"]) if otype == "limit" else self.mark[symbol]
        if not reduce_only and size * price / self.leverage[symbol] > self.balance:
            return error("40762", "The order amount exceeds the balance")
        preset = float(q["presetStopLossPrice"]) if q.get("presetStopLossPrice") else None
        o = self._new_order(cid, symbol, q["side"], otype, price if otype == "limit" else None, size, reduce_only,
                            preset)
        self._snap(symbol, f"place {cid}")
        if otype == "market":
            self._fill(o, _lots(size, self._fraction(cid)), self.mark[symbol])
            if o.status == "partially_filled":          # a market order's rest is cancelled (A)
                o.status = "canceled"
        return {"orderId": o.order_id, "clientOid": o.client_oid}

    async def _modify_order(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        o = self._find_order(q)
        if o is None or o.status not in ("live", "partially_filled"):
            return error("40768", "Order does not exist")
        new_cid = q.get("newClientOid")
        if not new_cid:
            return error("22003", "modify price and size, please pass in newClientOid")
        if self._cid_used(new_cid):
            return error("40786", "Duplicate clientOid")
        if not q.get("newSize") or not q.get("newPrice"):
            return error("40017", "Parameter verification failed: newSize and newPrice must be passed together")
        if not self.modify_in_one_way and self.pos_mode == "one_way_mode":
            return error("40017", "Modify size and price to only allow Hedge mode, and One-way mode are not allowed")
        if o.status != "live" or o.order_type != "limit":
            return error("40017", "Parameter verification failed: only an unfilled limit order can be modified")
        o.status, o.u_time = "canceled", self.now_ms
        new = self._new_order(new_cid, o.symbol, o.side, "limit", float(q["newPrice"]), float(q["newSize"]),
                              o.reduce_only, o.preset_sl if self.amend_keeps_preset else None)
        self._snap(o.symbol, f"amend {o.client_oid} -> {new.client_oid}")
        return {"orderId": None, "clientOid": new.client_oid}

    async def _cancel_order(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        o = self._find_order(q)
        if o is None or o.status not in ("live", "partially_filled"):
            return error("40768", "Order does not exist")
        o.status, o.u_time = "canceled", self.now_ms
        self._snap(o.symbol, f"cancel {o.client_oid}")
        return {"orderId": o.order_id, "clientOid": o.client_oid}

    def _order_rows(self, q: dict, live: bool) -> list[dict]:
        return [self._order_view(o) for o in self.orders.values()
                if (o.status in ("live", "partially_filled")) == live
                and (not q.get("symbol") or o.symbol == q["symbol"])
                and (not q.get("clientOid") or o.client_oid == q["clientOid"])
                and (not q.get("orderId") or o.order_id == q["orderId"])
                and (not q.get("status") or o.status == q["status"])]

    async def _orders_pending(self, q: dict) -> Any:
        return self._check(q) or self._page(q, self._order_rows(q, True), "orderId", "entrustedList")

    async def _orders_history(self, q: dict) -> Any:
        return self._check(q) or self._page(q, self._order_rows(q, False), "orderId", "entrustedList")

    async def _detail(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        o = self._find_order(q)
        if o is None:
            return error("40109", "The data of the order cannot be found, please confirm the order number")
        return self._order_view(o, "state")

    async def _place_tpsl(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        cid = q.get("clientOid") or None
        if self._cid_used(cid):
            return error("40786", "Duplicate clientOid")
        symbol, plan_type, trigger = q["symbol"], q["planType"], float(q["triggerPrice"])
        pos = self.positions[symbol]
        hold = q.get("holdSide", "")
        if pos.qty == 0 or (hold in ("buy", "long")) != (pos.qty > 0):
            return error("43023", "Insufficient position, can not set profit or stop loss")
        if plan_type not in TPSL_PLANS:
            return error("40017", f"Parameter verification failed: planType {plan_type!r}")
        if plan_type not in WHOLE_POSITION and not q.get("size"):
            return error("40017", f"Parameter verification failed: size is required for {plan_type}")
        if plan_type in ("pos_loss", "loss_plan"):
            crossed = self._crossed(symbol, hold, trigger)
            if crossed:
                return crossed
        if plan_type == "pos_loss" and self.live_plans(symbol, "pos_loss"):
            return error("43024", "The position already has a position stop loss; modify it")
        p = self._new_plan(cid, symbol, plan_type, trigger, float(q.get("size") or 0), hold)
        self._snap(symbol, f"place {plan_type} {p.client_oid}")
        return {"orderId": p.order_id, "clientOid": p.client_oid}

    async def _place_plan(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        cid = q.get("clientOid") or None
        if self._cid_used(cid):
            return error("40786", "Duplicate clientOid")
        p = self._new_plan(cid, q["symbol"], q.get("planType", "normal_plan"), float(q["triggerPrice"]),
                           float(q["size"]), "", side=q.get("side", ""))
        self._snap(p.symbol, f"place {p.plan_type} {p.client_oid}")
        return {"orderId": p.order_id, "clientOid": p.client_oid}

    async def _modify_tpsl(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        p = self._find_plan(q)
        if p is None or p.status != "live":
            return error("43025", "Plan order does not exist")
        trigger = float(q["triggerPrice"])
        if p.plan_type in ("pos_loss", "loss_plan"):
            crossed = self._crossed(p.symbol, p.hold_side, trigger)
            if crossed:
                return crossed
        p.trigger_price, p.u_time = trigger, self.now_ms
        if q.get("size") and p.plan_type not in WHOLE_POSITION:
            p.size = float(q["size"])
        elif q.get("size"):
            p.size = float(q["size"])          # informative only: a pos_loss covers the whole position
        self._snap(p.symbol, f"modify {p.plan_type} {p.client_oid}")
        return {"orderId": p.order_id, "clientOid": p.client_oid}

    async def _cancel_plan(self, q: dict) -> Any:
        bad = self._check(q)
        if bad:
            return bad
        ok, failed = [], []
        for ref in q.get("orderIdList") or []:
            p = self._find_plan(ref)
            if p is None or p.status != "live" or (q.get("planType") and p.plan_type != q["planType"]
                                                   and q["planType"] != "profit_loss"):
                failed.append({**ref, "errorMsg": "Plan order does not exist", "errorCode": "43025"})
            else:
                p.status, p.u_time = "cancelled", self.now_ms
                ok.append({"orderId": p.order_id, "clientOid": p.client_oid})
                self._snap(p.symbol, f"cancel {p.plan_type} {p.client_oid}")
        return {"successList": ok, "failureList": failed}

    _PLAN_KINDS: ClassVar[dict[str, tuple[str, ...]]] = {"normal_plan": ("normal_plan",), "track_plan": ("track_plan",),
                   "profit_loss": ("pos_loss", "pos_profit", "loss_plan", "profit_plan", "moving_plan")}

    def _plan_rows(self, q: dict, live: bool) -> Any:
        want = self._PLAN_KINDS.get(q.get("planType", ""))
        if want is None:
            return error("40019", f"Parameter planType is wrong: {q.get('planType')!r}")
        return [self._plan_view(p) for p in self.plans.values() if (p.status == "live") == live
                and p.plan_type in want and (not q.get("symbol") or p.symbol == q["symbol"])
                and (not q.get("clientOid") or p.client_oid == q["clientOid"])
                and (not q.get("orderId") or p.order_id == q["orderId"])]

    async def _plan_pending(self, q: dict) -> Any:
        rows = self._check(q) or self._plan_rows(q, True)
        return rows if callable(rows) else self._page(q, rows, "orderId", "entrustedList")

    async def _plan_history(self, q: dict) -> Any:
        rows = self._check(q) or self._plan_rows(q, False)
        return rows if callable(rows) else self._page(q, rows, "orderId", "entrustedList")

    async def _all_position(self, q: dict) -> Any:
        return self._check(q) or [row for s in self.symbols for row in self._position_view(s)]

    async def _single_position(self, q: dict) -> Any:
        return self._check(q) or self._position_view(q["symbol"])

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
        rows = [t for t in self.trades if (not q.get("symbol") or t["symbol"] == q["symbol"])
                and (not q.get("orderId") or t["orderId"] == q["orderId"])]
        return self._page(q, rows, "tradeId", "fillList")

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
            ("GET", ORDERS_PENDING, self._orders_pending), ("GET", ORDERS_HISTORY, self._orders_history),
            ("GET", ORDER_DETAIL, self._detail),
            ("POST", PLACE_TPSL, self._place_tpsl), ("POST", PLACE_PLAN, self._place_plan),
            ("POST", MODIFY_TPSL, self._modify_tpsl), ("POST", CANCEL_PLAN, self._cancel_plan),
            ("GET", PLAN_PENDING, self._plan_pending), ("GET", PLAN_HISTORY, self._plan_history),
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
                self.fault_counts[fault.kind] += 1
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
            for fault in active:
                if fault.transform is not None:
                    data = fault.transform(data)
            return web.json_response(_envelope(data, self.now_ms))
        return route

    async def start(self, port: int = 0) -> str:
        """Serve on 127.0.0.1 (`port`, 0 = a free one) in the running loop; returns `base_url`."""
        self._closing = asyncio.Event()
        self.public._closing = self._closing
        app = web.Application()
        for method, path, handler in self._routes():
            private = path.startswith(MIX) and "/market/" not in path
            app.router.add_route(method, path, self._wrap(handler, private))
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{self.port}"
        return self.base_url

    async def stop_serving(self) -> None:
        """Stop answering (connections refused; hanging requests released); the state stays."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def resume_serving(self) -> None:
        """Answer again on the same port, with the same state."""
        if self._runner is None:
            await self.start(self.port)

    async def restart(self, down_s: float) -> None:
        """An exchange restart: connection refused for `down_s` seconds, then back on the same
        port with the same state (counts as fault kind "restart")."""
        self.fault_counts["restart"] += 1
        await self.stop_serving()
        await asyncio.sleep(down_s)
        await self.resume_serving()

    async def close(self) -> None:
        await self.stop_serving()

    async def __aenter__(self) -> BitgetPrivateStub:
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
    if x == 0:
        return "0"
    return f"{x:.10f}".rstrip("0").rstrip(".") or "0"
