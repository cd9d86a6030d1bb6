"""Seeded chaos for the live engine against the Bitget stand-ins (tests/engine/test_live_chaos.py).

Nothing here edits the stand-ins: it composes them.

* `ChaosStub` is `BitgetPrivateStub` with
  - O(1) order / client-id lookups (`_find_order`, `_cid_used` scan every order ever made in the
    stand-in: a 2,000-candle run makes ~10,000 orders and spends most of its time there); same
    answers as the stand-in's own scans (the earliest order matching the id or the client id);
  - a per-request fault injector (`plan`, a `FaultPlan`, asked by a `Dispatcher` per path): for a
    request it picks, a one-shot fault of the stand-in's own kinds (`PFault`: respond /
    hang_after_s / transform, so `fault_counts` and `calls` are the stand-in's) applies to that
    request alone;
  - invariant watches run at EVERY stand-in event (each protection-log sample, i.e. every order
    placed / filled / cancelled / amended, plan placed / modified / cancelled / triggered, mark
    move): `ProtectionWatch` measures every stretch in which a position is not fully covered by
    exchange-side stops, and every create / amend request that reaches the exchange's handler is
    checked never to carry a client id of ours the exchange already holds (`duplicates`).
* `ChaosPartial` replaces `stub.partial`: while active, a seeded fraction of our entries fills
  only partly when first touched (the rest on a later touch).
* `TickerWs` is the websocket part: `tests/support/ws_bitget_stub.py` serves Bitget's public
  websocket; a pusher sends the private stand-in's mark as ticker pushes, the engine reads them
  through the real `core.data.live_feed.TickerFeed` (ccxt.pro) and acts on them (client-side
  take-profit); `drop()` closes the sockets (code 1012), `bad_push()` sends a NaN ticker.
* `ChaosHarness` is `LiveHarness` with the protection loop running (`poll_interval_s`,
  `recheck_interval_s`), the websocket ticker source, no client-side rate limiting against
  127.0.0.1, and a per-candle schedule (faults on/off, restarts, websocket drops).
* `soak(...)` runs one engine over the candles with or without chaos, then checks the end state
  (`SoakResult`).

Timeouts: `dropped(s)` stalls past the client's timeout and never runs the handler (the request
never reached the matching engine; used for writes); the stand-in's `hang(s)` runs the handler
after the stall (a read answered late; for an order it would be a late arrival); `hang_after_s`
runs the handler first (the order exists, the answer is lost).

Determinism: the seed fixes every draw (which request gets which fault, partial fractions, the
candles of restarts and websocket drops). Between-candle polls and ticker pushes run on wall-clock
timers, so which request a draw lands on can differ from run to run; the forced faults of `soak`
make sure every kind happens.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from core.data.feed import ClosedCandle, FeedReconnect, TickerUpdate
from core.data.replay import ReplayFeed
from core.engine.engine import CandleSource, Engine, LiveSetup, RunnerSpec
from core.executor.client_ids import parse_client_id
from core.executor.state_store import StateStore
from tests.support.bitget_private_stub import (
    ACCOUNTS,
    ALL_POSITION,
    CANCEL_ORDER,
    CANCEL_PLAN,
    MODIFY_ORDER,
    MODIFY_TPSL,
    ORDER_DETAIL,
    ORDER_FILLS,
    ORDERS_HISTORY,
    ORDERS_PENDING,
    PLACE_ORDER,
    PLACE_PLAN,
    PLACE_TPSL,
    PLAN_HISTORY,
    PLAN_PENDING,
    SINGLE_POSITION,
    TICKER,
    BitgetPrivateStub,
    PFault,
    ProtectionSample,
    _kind,
    error,
    garbage,
    hang,
    malformed_rows,
    server_error,
    too_many,
)
from tests.support.live_harness import PREFIX, STUB_SYM, SYM, LiveHarness

READS = (ORDER_DETAIL, ORDERS_PENDING, ORDERS_HISTORY, PLAN_PENDING, PLAN_HISTORY, SINGLE_POSITION, ALL_POSITION,
         ACCOUNTS, TICKER, ORDER_FILLS)
WRITES = (PLACE_ORDER, MODIFY_ORDER, CANCEL_ORDER, PLACE_TPSL, MODIFY_TPSL, CANCEL_PLAN)
#: the kinds of request faults and their weights (a kind that does not fit the request is re-drawn)
KIND_WEIGHTS = {"server_error": 26, "too_many": 18, "timeout": 8, "timeout_after": 6, "reject": 10,
                "malformed": 18, "garbage": 6}
CLIENT_TIMEOUT_S = 0.4          # tests/support/live_harness.py: timeouts.request_ms = 400
HANG_S = 0.5                    # a stall past the client's timeout


def ours(cid: Any) -> tuple | None:
    return parse_client_id(cid, PREFIX) if isinstance(cid, str) else None


def dropped(seconds: float) -> Any:
    """A timeout BEFORE the exchange processed the request: stall past the client's timeout, then
    give up without running the handler (the request never reached the matching engine; the
    stand-in's own `hang` runs the handler late instead, which for an order is a late arrival)."""
    async def respond(stub: Any, request: web.Request) -> web.StreamResponse:
        try:
            await asyncio.wait_for(stub._closing.wait(), seconds)
        except TimeoutError:
            pass
        return web.Response(status=504, text="Gateway Timeout")
    return _kind(respond, "timeout")


def _breaking(path: str, rng: random.Random) -> Callable[[Any], Any]:
    """A `transform` that makes `path`'s answer malformed: a field dropped from or made
    non-numeric in every row; when there are no rows, the list itself is of the wrong type."""
    row_edits = {
        ORDER_DETAIL: [{"drop": ("baseVolume",)}, {"set_": {"priceAvg": "n/a"}}, {"drop": ("clientOid",)},
                       {"set_": {"state": "weird"}}],
        SINGLE_POSITION: [{"drop": ("openPriceAvg",)}, {"set_": {"total": "abc"}}, {"drop": ("holdSide",)}],
        ALL_POSITION: [{"set_": {"total": "abc"}}],
        PLAN_PENDING: [{"drop": ("triggerPrice",)}, {"set_": {"triggerPrice": "n/a"}}, {"drop": ("clientOid",)},
                       {"drop": ("planType",)}],
        PLAN_HISTORY: [{"drop": ("planStatus",)}, {"set_": {"triggerPrice": "x"}}],
        ORDERS_PENDING: [{"drop": ("clientOid",)}, {"set_": {"size": "?"}}, {"drop": ("baseVolume",)}],
        ORDERS_HISTORY: [{"set_": {"cTime": "yesterday"}}, {"drop": ("orderId",)}],
        ORDER_FILLS: [{"set_": {"price": "x"}}, {"drop": ("baseVolume",)}, {"set_": {"feeDetail": None}}],
        TICKER: [{"set_": {"markPrice": "n/a"}}, {"drop": ("markPrice",)}],
        ACCOUNTS: [{"drop": ("unrealizedPL",)}, {"set_": {"accountEquity": "lots"}}],
    }
    edit = rng.choice(row_edits.get(path, [{"drop": ("orderId",)}]))
    rows = malformed_rows(edit.get("drop", ()), edit.get("set_"))
    label = f"drop {edit['drop']}" if "drop" in edit else f"set {edit['set_']}"

    def transform(data: Any) -> Any:
        out = rows(data)
        if out != data:
            return out
        if isinstance(data, dict):          # an empty page: the list is not a list
            keys = [k for k in ("entrustedList", "fillList") if k in data]
            return {**data, **{k: "oops" for k in keys}} if keys else ["not", "an", "object"]
        return {"not": "a list"}            # an empty list (flat position, ...): an object instead
    transform.label = label  # type: ignore[attr-defined]
    return transform


@dataclass
class Injected:
    """One injected fault (for the report)."""

    t: float
    candle: int
    path: str
    kind: str
    detail: str


class FaultPlan:
    """Which stand-in requests get a fault: each eligible request, while `active`, with probability
    `rate`, one fault of a kind drawn by `KIND_WEIGHTS` (re-drawn until it fits the request)."""

    def __init__(self, rng: random.Random, rate: float) -> None:
        self.rng = rng
        self.rate = rate
        self.active = False
        self.candle = -1
        self.log: list[Injected] = []
        self.forced: list[list] = []       # [from candle, path, kind, done]: at least these faults happen

    def force(self, candle: int, path: str, kind: str) -> None:
        """Inject `kind` into the first request on `path` at or after candle index `candle`."""
        self.forced.append([candle, path, kind, False])

    def pick(self, path: str, params: dict) -> dict | None:
        """`add_fault` keyword arguments for this request, or None."""
        if not self.active or (path not in READS and path not in WRITES):
            return None
        for f in self.forced:
            if not f[3] and f[1] == path and self.candle >= f[0]:
                fault = self._fault(f[2], path, params)
                if fault is not None:
                    f[3] = True
                    detail = "forced: " + fault.pop("detail", "")
                    self.log.append(Injected(time.monotonic(), self.candle, path, fault.get("kind") or f[2], detail))
                    return fault
        rng = self.rng
        if rng.random() >= self.rate:
            return None
        kinds, weights = zip(*KIND_WEIGHTS.items(), strict=True)
        for _ in range(20):
            kind = rng.choices(kinds, weights)[0]
            fault = self._fault(kind, path, params)
            if fault is not None:
                detail = fault.pop("detail", "")
                self.log.append(Injected(time.monotonic(), self.candle, path, fault.get("kind") or kind, detail))
                return fault
        return None

    def _fault(self, kind: str, path: str, params: dict) -> dict | None:
        rng = self.rng
        write = path in WRITES
        if kind == "server_error":
            return {"respond": server_error(), "kind": "server_error"}
        if kind == "too_many":
            ra = rng.choice((0.02, 0.05, 0.1, 0.2))
            return {"respond": too_many(ra), "kind": "too_many", "detail": f"Retry-After {ra}"}
        if kind == "timeout":
            return {"respond": dropped(HANG_S) if write else hang(HANG_S), "kind": "timeout",
                    "detail": "not processed" if write else "answered late"}
        if kind == "timeout_after":
            if not write:
                return None
            return {"hang_after_s": HANG_S, "kind": "timeout_after", "detail": "processed, answer lost"}
        if kind == "reject":
            cid = params.get("newClientOid") if path == MODIFY_ORDER else params.get("clientOid")
            parsed = ours(cid)
            if path not in (PLACE_ORDER, MODIFY_ORDER) or parsed is None or parsed[0] != "entry":
                return None
            return {"respond": error("40762", "The order amount exceeds the balance"), "kind": "reject",
                    "detail": f"40762 {cid}"}
        if kind == "malformed":
            if write:
                return None
            t = _breaking(path, rng)
            return {"transform": t, "kind": "malformed", "detail": t.label}  # type: ignore[attr-defined]
        if kind == "garbage":
            return {"respond": garbage(), "kind": "garbage", "detail": "HTML instead of JSON"}
        raise ValueError(kind)


@dataclass
class Window:
    """A stretch (time.monotonic() s) in which an open position was not fully covered."""

    start: float
    end: float | None
    start_event: str
    end_event: str
    candle: int
    qty: float
    covered: float

    @property
    def seconds(self) -> float:
        return (self.end if self.end is not None else time.monotonic()) - self.start


class ProtectionWatch:
    """Checks every protection-log sample (every stand-in event): measures each unprotected window."""

    def __init__(self) -> None:
        self.windows: list[Window] = []
        self.open: Window | None = None
        self.events = 0
        self.candle = -1

    def sample(self, s: ProtectionSample) -> None:
        self.events += 1
        if not s.protected and self.open is None:
            self.open = Window(s.t, None, s.event, "", self.candle, s.qty, s.covered)
        elif s.protected and self.open is not None:
            self.open.end, self.open.end_event = s.t, s.event
            self.windows.append(self.open)
            self.open = None

    def all(self) -> list[Window]:
        return self.windows + ([self.open] if self.open is not None else [])

    def longest(self) -> float:
        return max((w.seconds for w in self.all()), default=0.0)


class ChaosPartial(dict):
    """`stub.partial`: while `active`, each touch of one of our entries fills only a fraction with
    probability `rate` (seeded); otherwise the stand-in's plain dict behaviour."""

    def __init__(self, rng: random.Random, rate: float) -> None:
        super().__init__()
        self.rng = rng
        self.rate = rate
        self.active = False

    def pop(self, key, default=None):
        if key in self:
            return dict.pop(self, key)
        parsed = ours(key)
        if self.active and parsed is not None and parsed[0] == "entry" and self.rng.random() < self.rate:
            return self.rng.choice((0.3, 0.5, 0.7))
        return default


class ChaosStub(BitgetPrivateStub):
    """See the module docstring."""

    def __init__(self, *a: Any, plan: FaultPlan | None = None, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.plan = plan
        self.watch = ProtectionWatch()
        self.duplicates: list[tuple[str, str]] = []     # (path, client id) reaching the handler again
        self.handled: collections.Counter[str] = collections.Counter()
        self._by_cid: dict[str, Any] = {}
        self._plan_cids: set[str] = set()
        self._dispatchers = [Dispatcher(self, p) for p in READS + WRITES]
        self.faults.extend(self._dispatchers)       # type: ignore[arg-type]

    # ---- O(1) lookups (the stand-in scans every order it ever made)
    def _new_order(self, cid, *a, **kw):
        o = super()._new_order(cid, *a, **kw)
        self._by_cid.setdefault(cid, o)
        return o

    def _new_plan(self, cid, *a, **kw):
        p = super()._new_plan(cid, *a, **kw)
        self._plan_cids.add(p.client_oid)
        return p

    def _find_order(self, q: dict):
        found = []
        if q.get("orderId") and q["orderId"] in self.orders:
            found.append(self.orders[q["orderId"]])
        if q.get("clientOid") and q["clientOid"] in self._by_cid:
            found.append(self._by_cid[q["clientOid"]])
        return min(found, key=lambda o: int(o.order_id)) if found else None

    def _cid_used(self, cid):
        return bool(cid) and (cid in self._by_cid or cid in self._plan_cids)

    # ---- invariants at every event
    def _snap(self, symbol: str, event: str) -> None:
        super()._snap(symbol, event)
        self.watch.sample(self.protection_log[-1])

    def _arrived(self, path: str, cid: Any) -> None:
        if ours(cid) is not None:
            self.handled[path] += 1
            if self._cid_used(cid):
                self.duplicates.append((path, cid))

    async def _place_order(self, q: dict) -> Any:
        self._arrived(PLACE_ORDER, q.get("clientOid"))
        return await super()._place_order(q)

    async def _modify_order(self, q: dict) -> Any:
        self._arrived(MODIFY_ORDER, q.get("newClientOid"))
        return await super()._modify_order(q)

    async def _place_tpsl(self, q: dict) -> Any:
        self._arrived(PLACE_TPSL, q.get("clientOid"))
        return await super()._place_tpsl(q)

    async def _place_plan(self, q: dict) -> Any:
        self._arrived(PLACE_PLAN, q.get("clientOid"))
        return await super()._place_plan(q)

    # ---- the fault injector
    def _wrap(self, handler, private: bool):
        inner = super()._wrap(handler, private)

        async def route(request: web.Request) -> web.StreamResponse:
            try:
                return await inner(request)
            finally:                              # drop the spent one-shot faults (never mid-scan)
                if len(self.faults) > len(self._dispatchers):
                    self.faults[:] = [f for f in self.faults
                                      if isinstance(f, Dispatcher) or f.times is None or f.seen < f.skip + f.times]
        return route


class Dispatcher:
    """Sits in `stub.faults` for one path and never applies itself: when the stand-in's route scans
    the faults of a request (synchronously, right after logging the request in `stub.calls`), it
    asks the plan about that request and, for a fault, APPENDS a one-shot `PFault` to the list
    being scanned, which the same scan then applies to this request alone (a list iterator sees
    items appended during the iteration)."""

    def __init__(self, stub: ChaosStub, path: str) -> None:
        self.stub = stub
        self.path = path
        self.kind = "dispatcher"

    def applies(self) -> bool:
        stub = self.stub
        plan = stub.plan
        if plan is None or not plan.active or not stub.calls or stub.calls[-1].path != self.path:
            return False
        fault = plan.pick(self.path, stub.calls[-1].params)
        if fault is not None:
            kind = fault.pop("kind")
            stub.faults.append(PFault(self.path, 0, 1, fault.get("respond"), fault.get("hang_after_s"),
                                      fault.get("transform"), kind))
        return False


class EndingFeed:
    """A live feed that ends when `done` is set (the replayed candles are over), so a replay with a
    websocket ticker source finishes."""

    def __init__(self, inner: Any, done: asyncio.Event) -> None:
        self.inner = inner
        self.done = done

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def stream(self, after_ts: int | None = None):
        agen = self.inner.stream(after_ts)
        stop = asyncio.ensure_future(self.done.wait())
        try:
            while True:
                nxt = asyncio.ensure_future(agen.__anext__())
                await asyncio.wait({nxt, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not nxt.done():
                    nxt.cancel()
                    await asyncio.gather(nxt, return_exceptions=True)
                    return
                try:
                    ev = nxt.result()
                except StopAsyncIteration:
                    return
                yield ev
        finally:
            stop.cancel()
            await agen.aclose()


class TickerWs:
    """The websocket ticker (see the module docstring)."""

    def __init__(self, stub: BitgetPrivateStub, every_s: float = 0.02) -> None:
        self.stub = stub
        self.every_s = every_s
        self.ws = None
        self.exchange = None
        self.pushes = 0
        self.task: asyncio.Task | None = None
        self.done = asyncio.Event()

    async def start(self) -> None:
        import ccxt.pro

        from tests.support.ws_bitget_stub import BitgetWsStub, point_bitget_at
        self.ws = await BitgetWsStub(forming_ts=self.stub.now_ms).start()
        ex = ccxt.pro.bitget({"enableRateLimit": False, "options": {"fetchMarkets": {"types": ["swap"]}}})
        ex.timeout_on_exit = 0
        point_bitget_at(ex, self.ws)
        self.exchange = ex
        self.task = asyncio.get_running_loop().create_task(self._push_loop())

    def feed(self) -> EndingFeed:
        from core.data.live_feed import Backoff, TickerFeed
        return EndingFeed(TickerFeed(self.exchange, SYM, backoff=Backoff(0.02, 2.0, 0.2, 0.2),
                                     rng=random.Random(7)), self.done)

    async def _push_loop(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            with contextlib.suppress(Exception):          # a socket closing under the push
                await self.ws.push_ticker(self.stub.mark[STUB_SYM], ts=self.stub.now_ms)
                self.pushes += 1

    async def drop(self) -> None:
        await self.ws.disconnect()

    async def bad_push(self) -> None:
        await self.ws.push_raw({"action": "snapshot", "arg": {"instType": "USDT-FUTURES", "channel": "ticker",
                                                              "instId": "BTCUSDT"},
                                "data": [{"instId": "BTCUSDT", "lastPr": "NaN", "ts": str(self.stub.now_ms)}],
                                "ts": self.stub.now_ms})

    async def close(self) -> None:
        self.done.set()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.exchange is not None:
            await self.exchange.close()
        if self.ws is not None:
            await self.ws.close()


@dataclass
class Schedule:
    """Per-candle chaos: faults on for candle indices [start, stop); restarts and websocket events
    at the given candle indices."""

    start: int
    stop: int
    restarts: dict[int, float] = field(default_factory=dict)     # candle index -> seconds down
    ws_drops: set[int] = field(default_factory=set)
    ws_bad: set[int] = field(default_factory=set)


class ChaosHarness(LiveHarness):
    """See the module docstring."""

    def __init__(self, stub: ChaosStub, db: Path, candles, *, ticker: TickerWs | None, schedule: Schedule | None,
                 partial: ChaosPartial | None, poll_s: float, recheck_s: float, **kw: Any) -> None:
        super().__init__(stub, db, candles, **kw)
        self.ticker = ticker
        self.schedule = schedule
        self.partial = partial
        self.poll_s = poll_s
        self.recheck_s = recheck_s
        self.index = {int(t): i for i, t in enumerate(candles.ts.tolist())}
        self.last_ts = int(candles.ts[-1])
        self.seen = 0
        self.reconnects = 0
        self.tickers = 0
        self.tasks: list[asyncio.Task] = []

    def gateway(self, symbol: str):
        gw = super().gateway(symbol)
        gw.ex.enableRateLimit = False       # ccxt's leaky bucket idles ~1 ms a request against 127.0.0.1
        return gw

    def engine(self, candles=None, **kw) -> Engine:
        c = self.candles if candles is None else candles
        cols = [a.tolist() for a in (c.ts, c.open, c.high, c.low, c.close)]

        def history(up_to, n):
            hi = len(cols[0]) if up_to is None else bisect.bisect_right(cols[0], up_to)
            return list(zip(*(x[max(0, hi - n):hi] for x in cols), strict=False))

        src = CandleSource(SYM, c.timeframe, lambda after: ReplayFeed.from_candles(c, speed="max",
                                                                                     start_after_ts=after),
                           history, replay=True,
                           make_ticker_feed=self.ticker.feed if self.ticker is not None else None)
        live = LiveSetup(self.gateway, PREFIX, stop_retries=self.stop_retries, recheck_interval_s=self.recheck_s,
                         poll_interval_s=self.poll_s, reconnect_backoff_s=0.2,
                         alert=lambda lvl, msg: self.alerts.append((lvl, msg)))
        eng = Engine(self.db, [src], [RunnerSpec("envelope_dca", self.params, SYM, c.timeframe)], self.account,
                     mode="live", status_interval=0, live=live, **kw)
        eng.feed_listeners.append(self.on_event)
        return eng

    def on_event(self, ev) -> None:
        if type(ev) is FeedReconnect:
            self.reconnects += 1
            return
        if type(ev) is TickerUpdate:
            self.tickers += 1
            return
        if type(ev) is not ClosedCandle:
            return
        i = self.index.get(ev.ts, -1)
        self.seen += 1
        self.stub.watch.candle = i
        sch = self.schedule
        if sch is not None:
            on = sch.start <= i < sch.stop
            if self.stub.plan is not None:
                self.stub.plan.active = on
                self.stub.plan.candle = i
            if self.partial is not None:
                self.partial.active = on
            loop = asyncio.get_running_loop()
            if i in sch.restarts:
                self.tasks.append(loop.create_task(self._restart(sch.restarts[i])))
            if self.ticker is not None and i in sch.ws_drops:
                self.stub.fault_counts["ws_drop"] += 1
                self.tasks.append(loop.create_task(self.ticker.drop()))
            if self.ticker is not None and i in sch.ws_bad:
                self.stub.fault_counts["ws_malformed"] += 1
                self.tasks.append(loop.create_task(self.ticker.bad_push()))
        super().on_event(ev)
        if ev.ts == self.last_ts and self.ticker is not None:
            self.ticker.done.set()

    async def _restart(self, down_s: float) -> None:
        if self.ticker is not None:                    # the exchange's websocket goes down with it
            await self.ticker.drop()
        await self.stub.restart(down_s)


# ---------------------------------------------------------------------------- end-state checks
def fills_report(stub: BitgetPrivateStub, db: Path) -> list[str]:
    """Differences between the fills the exchange made for us and the ones the store recorded
    (empty = no fill lost or invented): per entry client id (amended ids included) the filled
    qty and its average price; in total the exit qty; the net = the exchange's position."""
    problems: list[str] = []
    store = StateStore(db)
    try:
        rid = store.runners()[0]["id"]
        rows = store.conn.execute("SELECT client_id, kind, qty, price FROM trading_fills WHERE runner_id=?",
                                  (rid,)).fetchall()
    finally:
        store.close()
    rec_entry: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    rec_exit = 0.0
    for cid, kind, qty, price in rows:
        if kind == "entry":
            rec_entry[cid][0] += qty
            rec_entry[cid][1] += qty * price
        else:
            rec_exit += qty
    cid_of = {o.order_id: o.client_oid for o in stub.orders.values()}
    ex_entry: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    ex_buy = ex_sell = 0.0
    for t in stub.trades:
        q, px = float(t["baseVolume"]), float(t["price"])
        if t["side"] == "buy":
            ex_buy += q
            cid = cid_of.get(t["orderId"], "")
            if ours(cid) is not None:
                ex_entry[cid][0] += q
                ex_entry[cid][1] += q * px
        else:
            ex_sell += q
    for cid in sorted(set(rec_entry) | set(ex_entry)):
        a, b = ex_entry.get(cid, [0.0, 0.0]), rec_entry.get(cid, [0.0, 0.0])
        if not math.isclose(a[0], b[0], rel_tol=1e-9, abs_tol=1e-9):
            problems.append(f"entry {cid}: exchange filled {a[0]:g}, store recorded {b[0]:g}")
        elif a[0] > 0 and not math.isclose(a[1] / a[0], b[1] / b[0], rel_tol=1e-9):
            problems.append(f"entry {cid}: exchange avg {a[1] / a[0]:.6f}, store {b[1] / b[0]:.6f}")
    rec_buy = sum(v[0] for v in rec_entry.values())
    if not math.isclose(ex_buy, rec_buy, abs_tol=1e-9):
        problems.append(f"entries: exchange bought {ex_buy:g} in all, store recorded {rec_buy:g}")
    if not math.isclose(ex_sell, rec_exit, abs_tol=1e-9):
        problems.append(f"exits: exchange sold {ex_sell:g} in all, store recorded {rec_exit:g}")
    pos = stub.position(STUB_SYM).qty
    if not math.isclose(ex_buy - ex_sell, pos, abs_tol=1e-9):        # the stand-in's own bookkeeping
        problems.append(f"exchange trades net {ex_buy - ex_sell:g} but position {pos:g}")
    return problems


def check(fn: Callable[[], Any]) -> str | None:
    """None when `fn()` passes, else the assertion's message."""
    try:
        fn()
    except AssertionError as e:
        return f"AssertionError: {e}" if str(e) else "AssertionError (see assert_consistent)"
    return None


@dataclass
class SoakResult:
    seed: int | None
    candles: int
    seen: int
    faults: collections.Counter
    injected: list[Injected]
    windows: list[Window]
    longest_s: float
    boundary_unprotected: list[int]
    events: int
    duplicates: list[tuple[str, str]]
    cycles: collections.Counter
    fills: int
    alerts: list[tuple[str, str]]
    reconnects: int
    tickers: int
    ticker_pushes: int
    error: str | None
    runner_state: str
    halted: str | None
    pending: tuple[int, int]            # (pending intents, pending orders) in the store right after the run
    consistent: str | None              # assert_consistent right after the run
    fills_problems: list[str]
    flat_after_run: bool
    restart_actions: list[tuple[str, str | None, str]]
    consistent_flat: str | None         # after a restart + flatten: the cash to the cent
    fills_problems_flat: list[str]
    timings: dict[str, float]
    stub: Any = None                    # the stand-in, for a post-mortem

    def fault_total(self) -> int:
        return sum(self.faults.values())


async def soak(candles, db: Path, *, seed: int | None, params: dict, rate: float = 0.015,
               partial_rate: float = 0.08, clean_tail: int = 60, warmup: int = 20, restarts: int = 2,
               restart_down_s: float = 0.6, ws_drops: int = 25, ws_bad: int = 10, poll_s: float = 0.25,
               recheck_s: float = 2.0, run_timeout_s: float = 300.0,
               forced: tuple[tuple[str, str, int], ...] = ((MODIFY_ORDER, "garbage", 3), (CANCEL_ORDER, "garbage", 1),
                                                           (PLACE_ORDER, "timeout_after", 2),
                                                           (PLACE_TPSL, "timeout_after", 2))) -> SoakResult:
    """One live engine over `candles` against a `ChaosStub` and the websocket ticker; with `seed`
    None no fault at all (the fault-free run). `forced`: (path, kind, how many) faults that happen
    whatever the random draw, at seeded candles (besides the random ones). See the module
    docstring."""
    from tests.engine.test_live_engine import assert_consistent

    timings: dict[str, float] = {}
    t0 = time.monotonic()
    n = len(candles)
    rng = random.Random(seed)
    plan = FaultPlan(random.Random(rng.random()), rate) if seed is not None else None
    partial = ChaosPartial(random.Random(rng.random()), partial_rate) if seed is not None else None
    schedule = None
    if seed is not None:
        span = range(warmup + 10, n - clean_tail - 60)
        schedule = Schedule(warmup, n - clean_tail,
                            restarts={i: restart_down_s for i in rng.sample(span, restarts)},
                            ws_drops=set(rng.sample(span, ws_drops)), ws_bad=set(rng.sample(span, ws_bad)))
        for path, kind, k in forced:
            for i in rng.sample(span, k):
                plan.force(i, path, kind)
    async with ChaosStub(mark=float(candles.open[0]), plan=plan) as stub:
        if partial is not None:
            stub.partial = partial
        ticker = TickerWs(stub)
        await ticker.start()
        h = ChaosHarness(stub, db, candles, ticker=ticker, schedule=schedule, partial=partial, poll_s=poll_s,
                         recheck_s=recheck_s, params=params)
        err = None
        eng = h.engine()
        try:
            await asyncio.wait_for(eng.run(), run_timeout_s)
        except BaseException as e:         # noqa: BLE001 - reported, not raised: the checks say what broke
            err = f"{type(e).__name__}: {e}"
        if plan is not None:
            plan.active = False
        if partial is not None:
            partial.active = False
        await asyncio.gather(*h.tasks, return_exceptions=True)
        timings["run_s"] = time.monotonic() - t0
        r = eng.runners[0] if eng.runners else None
        pending = _pending(db)
        consistent = check(lambda: assert_consistent(stub, db))
        fills_problems = fills_report(stub, db)
        flat = stub.position(STUB_SYM).qty == 0
        longest = stub.watch.longest()
        windows = list(stub.watch.all())
        faults = collections.Counter(stub.fault_counts)
        events = stub.watch.events
        # a restart after the chaos reconciles cleanly; flatten so the cash compares to the cent
        t1 = time.monotonic()
        actions: list[tuple[str, str | None, str]] = []
        consistent_flat = None
        fills_flat: list[str] = []
        eng2 = h.engine()
        try:
            await eng2.start()
            r2 = eng2.runners[0]
            actions = list(r2.last_report.actions) if r2.last_report is not None else []
            if r2.book.qty > 0:
                await r2.flatten("kill")
            await eng2.stop()
            consistent_flat = check(lambda: (assert_consistent(stub, db),
                                             _assert(stub.position(STUB_SYM).qty == 0, "not flat after flatten")))
            fills_flat = fills_report(stub, db)
        except BaseException as e:         # noqa: BLE001
            consistent_flat = f"restart/flatten failed: {type(e).__name__}: {e}"
            with contextlib.suppress(Exception):
                await eng2.stop()
        timings["restart_flatten_s"] = time.monotonic() - t1
        await ticker.close()
        await h.close()
    timings["total_s"] = time.monotonic() - t0
    return SoakResult(
        seed=seed, candles=n, seen=h.seen, faults=faults, injected=plan.log if plan is not None else [],
        windows=windows, longest_s=longest, boundary_unprotected=list(h.unprotected), events=events,
        duplicates=list(stub.duplicates),
        cycles=collections.Counter(c.exit_reason for c in r.cycles) if r else collections.Counter(),
        fills=len(r.book.fills) if r else 0, alerts=list(h.alerts), reconnects=h.reconnects, tickers=h.tickers,
        ticker_pushes=ticker.pushes, error=err, runner_state=r.state if r else "?",
        halted=r.executor.halted if r else None, pending=pending, consistent=consistent,
        fills_problems=fills_problems, flat_after_run=flat, restart_actions=actions, consistent_flat=consistent_flat,
        fills_problems_flat=fills_flat, timings=timings, stub=stub)


def _pending(db: Path) -> tuple[int, int]:
    store = StateStore(db)
    try:
        rid = store.runners()[0]["id"]
        return len(store.pending_intents(rid)), len(store.orders_by_status(rid, ("pending",)))
    finally:
        store.close()


def _assert(cond: bool, msg: str) -> None:
    assert cond, msg
