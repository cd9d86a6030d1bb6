"""CcxtGateway: Bitget USDT-M perpetuals through ccxt's async client, behind the venue contract
`core.executor.gateway.Gateway` (`external = True`, `rests_take_profit = False`,
`renames_on_amend = True`).

One instance trades one symbol of one account, one-way position mode. Prices are USDT, quantities
base units, money USDT, times ms UTC. Where a behaviour comes from is marked: (recorded) = a real
Bitget answer kept in ccxt's test suite (`tests/venues/fixtures/`), (docs) = Bitget's v2 API
documentation, (assumed) = neither; the stand-in `tests/support/bitget_private_stub.py` follows
the same marks.

* `start()` (required before any order): `options['uta']` is set from the config (UTA accounts
  are refused for now: the v2 classic mix endpoints are used), markets loaded, the margin mode and
  leverage set for the symbol, then the account is ASSERTED to be in the configured margin mode and
  one-way position mode (`AccountModeError` otherwise: no trading).
* entries are limit orders (market when price is None) with the client id as `clientOid` and the
  margin mode given explicitly (ccxt would default to cross). `OrderRequest.preset_stop` on an
  entry is sent as Bitget's preset stop-loss (ccxt `stopLoss={"triggerPrice": p}` ->
  `presetStopLossPrice`, request recorded): Bitget holds a stop for the filled part from the
  moment the entry fills; `drop_preset_stops()` cancels those stops once the whole-position stop
  covers the position.
* the stop is the exchange-side whole-position `pos_loss` TP/SL order (ccxt `stopLossPrice`),
  amended with modify-tpsl-order. A `pos_loss` closes the WHOLE position whatever its size field
  (docs: `size` is not required for pos_loss / pos_profit), so its quantity is reported as None
  ("whole position"), never as the echoed or empty size: a size compared with the position would
  otherwise re-amend the stop on every check and raise a false "no stop" alert.
* an entry amendment is Bitget's modify-order, which CANCELS the order and RE-CREATES it under a
  new order id (docs): `newClientOid = new_client_id` is required (Bitget refuses a reused one;
  ccxt would otherwise invent a uuid), both size and price are sent (docs: pass both), and the
  order continues under `new_client_id`. A transport failure of an amend is `OrderUnknown` for
  the NEW id (the re-created order may exist).
* the take-profit is CLIENT-SIDE: kept here, listed by `fetch_all_open_orders`, never sent; the
  executor closes at market (`close_position`) when the price touches it.
* order creation is never blindly retried: a transport error leaves the order UNKNOWN
  (`OrderUnknown`); the next `place_order` with that client id, or `reconcile_order`, looks it up
  by client id (order/detail with clientOid, then the open orders) before anything is re-sent.
* reads are retried with backoff on `GatewayUnavailable` (429 honours Retry-After) and then
  raise; a failed position query never counts as flat. Every answer is checked field by field
  before use: a missing or non-numeric field raises `MalformedAnswer(call, field, detail)`.
  Values are then taken through ccxt's own parsers (`parse_order`, `parse_trade`).
* paginated reads (orders-pending, orders-plan-pending, orders-history, orders-plan-history,
  fills: at most 100 rows a page, newest first, `idLessThan = endId` of the previous page; docs)
  are read page by page; more than `MAX_PAGES` pages raises (never a silently cut list).
* every private read passes productType "USDT-FUTURES"; the open orders are the four kinds: plain,
  trigger (normal_plan), TP/SL (profit_loss) and trailing (track_plan).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import ccxt

from core.config.exchanges import ExchangeConfig
from core.executor.gateway import ClosingFill
from core.model.errors import (
    AccountModeError,
    DuplicateClientId,
    GatewayError,
    GatewayUnavailable,
    MalformedAnswer,
    NoPositionToClose,
    OrderNotFound,
    OrderRejected,
    OrderUnknown,
    RateLimited,
)
from core.model.orders import GatewayFill, OpenOrder, OrderRequest, OrderState, PositionInfo, VenueTrade
from core.venues.bitget.errors import map_error
from core.venues.exchange_errors import EXCHANGE_ERRORS

log = logging.getLogger(__name__)

PRODUCT_TYPE = "USDT-FUTURES"
#: Bitget planType of the kinds of open plan orders (orders-plan-pending / orders-plan-history).
PLAN_KINDS = ("normal_plan", "profit_loss", "track_plan")
#: TP/SL plans acting on the whole position: their size field is not the quantity (docs).
WHOLE_POSITION_PLANS = frozenset({"pos_loss", "pos_profit"})
#: Bitget's page size limit of the paginated order / fill reads (docs: maximum 100).
PAGE_LIMIT = 100
#: More pages than this raise GatewayError instead of returning a cut list.
MAX_PAGES = 50
#: How far before the oldest preset stop `drop_preset_stops` looks for the entries that carried
#: it (ms) when this process did not send them itself (after a restart).
PRESET_LOOKBACK_MS = 7 * 24 * 3_600_000
_PURPOSE_BY_CODE = {"e": "entry", "s": "stop", "t": "take_profit", "x": "exit"}
#: ccxt unified order status -> OrderState.status
_STATUS = {"open": "open", "closed": "filled", "canceled": "cancelled", "rejected": "rejected",
           "expired": "cancelled"}
#: Bitget planStatus -> OrderState.status (docs: live, executed, fail_execute, cancelled, executing)
_PLAN_STATUS = {"live": "open", "not_trigger": "open", "executing": "open", "executed": "filled",
                "triggered": "filled", "cancelled": "cancelled", "canceled": "cancelled",
                "fail_execute": "rejected", "fail_trigger": "rejected"}


@dataclass(frozen=True, slots=True)
class ReadRetry:
    """Retries of read calls: `attempts` in all, delays base_s * 2**i capped at max_s (seconds)."""

    attempts: int = 4
    base_s: float = 0.5
    max_s: float = 8.0


def parse_client_id(cid: str | None, prefix: str) -> tuple[str, int, int] | None:
    """(purpose, level, cycle) of one of our client ids, None for a foreign id.

    Our ids (`core.executor.client_ids`): `{prefix}{epoch}-{hash8}-{cycle}-{purpose}{level}` with
    an optional database epoch (0-4 hex digits) and an optional amendment / re-creation suffix
    `a<n>` / `r<n>`: any epoch and any suffix count as ours."""
    if not cid or not cid.startswith(prefix):
        return None
    m = re.fullmatch(re.escape(prefix) + r"[0-9a-f]{0,4}-[0-9a-f]{8}-(\d+)-([estx])(\d*)(?:[ar]\d+)?", cid)
    if m is None:
        return None
    purpose = _PURPOSE_BY_CODE[m.group(2)]
    level = int(m.group(3)) if m.group(3) and purpose == "entry" else -1
    return purpose, level, int(m.group(1))


def make_exchange(cfg: ExchangeConfig, api_key: str, secret: str, passphrase: str) -> Any:
    """The ccxt async bitget client for `cfg` (rate limited, timeouts, uta stated explicitly)."""
    import ccxt.async_support as ccxt_async

    ex = ccxt_async.bitget({
        "apiKey": api_key, "secret": secret, "password": passphrase,
        "enableRateLimit": True, "rateLimit": cfg.rate_limit_ms, "timeout": cfg.timeouts.request_ms,
        "options": {"defaultType": "swap", "uta": cfg.uta, "fetchMarkets": {"types": ["swap"]}},
    })
    if cfg.sandbox:
        ex.set_sandbox_mode(True)
    return ex


def exchange_from_secrets(cfg: ExchangeConfig, secrets: Any) -> Any:
    """`make_exchange` with the keys of `core.config.secrets.Secrets` (all three required)."""
    if not secrets.has_bitget():
        raise GatewayError("BITGET_API_KEY, BITGET_API_SECRET and BITGET_API_PASSPHRASE must all be set")
    return make_exchange(cfg, secrets.bitget_api_key.get_secret_value(), secrets.bitget_api_secret.get_secret_value(),
                         secrets.bitget_api_passphrase.get_secret_value())


# -------------------------------------------------------------------- answer checks
def _row(call: str, row: Any, what: str = "row") -> dict:
    if not isinstance(row, dict):
        raise MalformedAnswer(call, what, f"is {type(row).__name__}, not an object")
    return row


def _text(call: str, row: dict, name: str) -> str:
    """A required non-empty string field."""
    v = _row(call, row).get(name)
    if v is None:
        raise MalformedAnswer(call, name)
    if not isinstance(v, str) or v == "":
        raise MalformedAnswer(call, name, f"is not a non-empty string: {v!r}")
    return v


def _number(call: str, row: dict, name: str, *, empty_ok: bool = False) -> float | None:
    """A required numeric field (Bitget sends numbers as strings); "" or null is None when
    `empty_ok` (documented empty-string convention), an error otherwise."""
    row = _row(call, row)
    if name not in row:
        raise MalformedAnswer(call, name)
    v = row[name]
    if v is None or v == "":
        if empty_ok:
            return None
        raise MalformedAnswer(call, name, "is empty")
    if isinstance(v, bool):
        raise MalformedAnswer(call, name, f"is not a number: {v!r}")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise MalformedAnswer(call, name, f"is not a number: {v!r}") from None
    if not math.isfinite(x):
        raise MalformedAnswer(call, name, f"is not finite: {v!r}")
    return x


def _opt_number(call: str, row: dict, name: str) -> float | None:
    """An optional numeric field: absent, null or "" is None; anything else must be a number."""
    if name not in _row(call, row):
        return None
    return _number(call, row, name, empty_ok=True)


def _side(call: str, row: dict, name: str = "side") -> str:
    v = _text(call, row, name).lower()
    if v not in ("buy", "sell"):
        raise MalformedAnswer(call, name, f"is not buy/sell: {v!r}")
    return v


def _data(call: str, res: Any, kind: type) -> Any:
    """The `data` of a Bitget envelope, checked to be a `kind` (list or dict; null is accepted for
    a dict, as Bitget sends `data: null` for an empty result on some endpoints)."""
    if not isinstance(res, dict):
        raise MalformedAnswer(call, "data", f"the answer is {type(res).__name__}, not a JSON object")
    if "data" not in res:
        raise MalformedAnswer(call, "data")
    data = res["data"]
    if data is None and kind is dict:
        return {}
    if not isinstance(data, kind):
        raise MalformedAnswer(call, "data", f"is {type(data).__name__}, not {kind.__name__}")
    return data


def _rows(call: str, data: dict, key: str) -> list[dict]:
    """`data[key]`: a list of objects (null / absent = no rows, as Bitget sends for empty lists)."""
    v = data.get(key)
    if v is None:
        return []
    if not isinstance(v, list):
        raise MalformedAnswer(call, key, f"is {type(v).__name__}, not a list")
    return [_row(call, r, key) for r in v]


def _names_an_order(res: Any) -> bool:
    """True when a write's parsed answer names an order (ccxt's order dict with an id or a
    client id, or Bitget's raw envelope with orderId / clientOid or a success list)."""
    if not isinstance(res, dict):
        return False
    if res.get("id") or res.get("clientOrderId"):
        return True
    info = res.get("info")
    if isinstance(info, dict):
        data = info.get("data", info)
        if isinstance(data, dict) and (data.get("orderId") or data.get("clientOid") or data.get("successList")):
            return True
    return False


class CcxtGateway:
    """Bitget USDT-M for one symbol (see the module docstring).

    Args:
        cfg: the account's `ExchangeConfig` (uta, margin_mode, prefix, timeouts, rate limit).
        symbol: ccxt unified symbol, e.g. "BTC/USDT:USDT".
        exchange: a ccxt async bitget instance (see `make_exchange` / `exchange_from_secrets`).
        leverage: set on the symbol at `start()`.
        breaker: optional `core.health.breaker.CircuitBreaker` every exchange call goes through.
        read_retry: retries of reads.
        sleep: injectable (tests).
    """

    external = True
    rests_take_profit = False
    renames_on_amend = True

    def __init__(self, cfg: ExchangeConfig, symbol: str, exchange: Any, *, leverage: int = 1,
                 breaker: Any = None, read_retry: ReadRetry = ReadRetry(),
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.cfg = cfg
        self.symbol = symbol
        self.ex = exchange
        self.ex.options["uta"] = bool(cfg.uta)            # stated explicitly, never auto-detected
        self.leverage = leverage
        self.breaker = breaker
        self.read_retry = read_retry
        self.sleep = sleep
        self.prefix = cfg.client_order_prefix
        self.margin_mode = cfg.margin_mode                 # ccxt: isolated | cross
        self.started = False
        self.market_id: str | None = None
        self._tp: dict[str, OpenOrder] = {}                 # client-side take-profits
        self._unknown: dict[str, float] = {}                # client id -> monotonic time it became unknown
        self._presets: set[str] = set()                     # preset stop prices sent (price_to_precision strings)

    # ---------------------------------------------------------------- plumbing
    async def _call(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        """Every exchange call goes through here: each error it raises is counted by kind
        (`core.venues.exchange_errors`, read by the metrics) before the caller maps it."""
        if self.breaker is None:
            try:
                return await fn(*args, **kwargs)
            except Exception as e:
                EXCHANGE_ERRORS.record(self.cfg.id, e)
                raise
        from core.health.breaker import CircuitOpenError
        try:
            return await self.breaker.call(fn, *args, **kwargs)
        except CircuitOpenError as e:          # refused by the breaker: the exchange was not called
            raise GatewayUnavailable(str(e)) from e
        except Exception as e:
            EXCHANGE_ERRORS.record(self.cfg.id, e)
            raise

    def _headers(self) -> Any:
        return getattr(self.ex, "last_response_headers", None)

    async def _read(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        rr = self.read_retry
        for attempt in range(rr.attempts):
            try:
                return await self._call(fn, *args, **kwargs)
            except Exception as e:
                err = map_error(e, op="read", headers=self._headers())
                if not isinstance(err, GatewayUnavailable) or attempt == rr.attempts - 1:
                    raise err from e
                delay = min(rr.max_s, rr.base_s * 2 ** attempt)
                if isinstance(err, RateLimited) and err.retry_after_s is not None:
                    delay = max(delay, err.retry_after_s)
                log.warning("bitget read failed (%s), retry %d in %.2fs", err, attempt + 1, delay)
                await self.sleep(delay)
        raise GatewayUnavailable("unreachable")  # pragma: no cover

    async def _write(self, op: str, cid: str, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        """One order-changing call. Its answer must be Bitget's: an order (create, amend, cancel)
        names its orderId or clientOid; anything else (an HTML page with HTTP 200, an empty body)
        is NOT a success: OrderUnknown for a create / amend (the order may exist: looked up by
        client id), GatewayUnavailable for a cancel (retried)."""
        try:
            res = await self._call(fn, *args, **kwargs)
        except Exception as e:
            err = map_error(e, op=op, client_id=cid, headers=self._headers())
            if isinstance(err, OrderUnknown):
                self._unknown[cid] = time.monotonic()
            raise err from e
        if op in ("create", "amend", "cancel") and not _names_an_order(res):
            what = f"{op} {cid}: the answer is not Bitget's ({str(res)[:120]!r})"
            if op == "cancel":
                raise GatewayUnavailable(what + "; retried")
            self._unknown[cid] = time.monotonic()
            raise OrderUnknown(cid, what + "; looked up by client id before anything is re-sent")
        return res

    def _p(self, **extra: Any) -> dict:
        return {"productType": PRODUCT_TYPE, **extra}

    def _mid(self) -> str:
        return self.market_id or self.ex.market(self.symbol)["id"]

    def _market(self) -> dict:
        return self.ex.market(self.symbol)

    def _require_started(self) -> None:
        if not self.started:
            raise AccountModeError("CcxtGateway.start() has not verified the account: refusing to trade")

    async def _pages(self, call: str, fn: Callable[..., Awaitable[Any]], params: dict, key: str,
                     until: Callable[[list[dict]], bool] | None = None) -> list[dict]:
        """Every row of a paginated Bitget list (`data[key]`, `data.endId`), newest page first.
        `until(page)` True stops after that page. Raises GatewayError past MAX_PAGES pages."""
        rows: list[dict] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            p = {**params, "limit": str(PAGE_LIMIT)}
            if cursor is not None:
                p["idLessThan"] = cursor
            data = _data(call, await self._read(fn, p), dict)
            page = _rows(call, data, key)
            rows.extend(page)
            if len(page) < PAGE_LIMIT or (until is not None and until(page)):
                return rows
            end = data.get("endId")
            if not isinstance(end, str) or not end:
                raise MalformedAnswer(call, "endId", f"is {end!r} after a full page of {PAGE_LIMIT}")
            if end == cursor:
                raise MalformedAnswer(call, "endId", f"repeats {end!r}: the pagination does not advance")
            cursor = end
        raise GatewayError(f"{call}: more than {MAX_PAGES} pages of {PAGE_LIMIT}: refusing a cut list")

    # ---------------------------------------------------------------- start-up
    async def start(self) -> None:
        """Load markets, set margin mode + leverage, assert margin mode and one-way mode."""
        if self.cfg.uta:
            raise AccountModeError("unified trading accounts (uta: true) are not supported by CcxtGateway yet; "
                                   "use a classic account or set uta: false only if the account really is classic")
        await self._read(self.ex.load_markets)
        market = self._market()
        if not market.get("swap") or market.get("settle") != "USDT":
            raise AccountModeError(f"{self.symbol} is not a USDT-M perpetual")
        self.market_id = market["id"]
        try:
            await self._write("setting", "set-margin-mode", self.ex.set_margin_mode, self.margin_mode, self.symbol,
                              self._p())
        except GatewayError as e:          # e.g. MarginModeLocked (45117): the assertion below decides
            log.warning("set_margin_mode(%s) refused: %s", self.margin_mode, e)
        await self._write("setting", "set-leverage", self.ex.set_leverage, self.leverage, self.symbol,
                          self._p(marginMode=self.margin_mode))
        res = await self._read(self.ex.privateMixGetV2MixAccountAccount,
                               {"symbol": self.market_id, "marginCoin": "USDT", "productType": PRODUCT_TYPE})
        data = _data("account", res, dict)
        margin_mode = _text("account", data, "marginMode")
        pos_mode = _text("account", data, "posMode")
        want_margin = "crossed" if self.margin_mode == "cross" else "isolated"
        if margin_mode != want_margin:
            raise AccountModeError(f"{self.symbol}: the account is in margin mode {margin_mode!r}, "
                                   f"config says {want_margin!r}; close positions/orders of the symbol or fix "
                                   f"exchanges.yaml: refusing to trade")
        if pos_mode != "one_way_mode":
            raise AccountModeError(f"the account is in position mode {pos_mode!r}; Radar needs "
                                   f"one-way mode (set it in Bitget: futures settings): refusing to trade")
        self.started = True

    async def close(self) -> None:
        await self.ex.close()

    async def on_candle(self, ts: int, o: float, h: float, lo: float, c: float) -> None:
        """The exchange matched its orders itself: nothing to do."""
        return

    # ---------------------------------------------------------------- orders
    def _amount(self, cid: str, qty: float) -> float:
        try:
            amount = float(self.ex.amount_to_precision(self.symbol, qty))
        except ccxt.BaseError as e:
            raise OrderRejected(f"{cid}: qty {qty} is below the symbol's amount precision: {e}") from e
        if amount <= 0:
            raise OrderRejected(f"{cid}: qty {qty} rounds to 0 at the symbol's amount precision")
        return amount

    async def place_order(self, order: OrderRequest, qty: float | None = None) -> OpenOrder:
        """Place `order` (qty from `order.qty`; the `qty` keyword is the old form, used when
        `order.qty` is None). Raises DuplicateClientId, OrderRejected (StopCrossed),
        GatewayUnavailable, OrderUnknown, AccountModeError (not started)."""
        self._require_started()
        if order.symbol != self.symbol:
            raise OrderRejected(f"{order.client_id}: gateway trades {self.symbol}, not {order.symbol}")
        cid = order.client_id
        size = order.qty if order.qty is not None else qty
        if cid in self._unknown:                       # never re-send before looking it up
            st = await self.reconcile_order(cid)
            if st is not None and st.status == "open":
                return OpenOrder(cid, self.symbol, order.purpose, order.side, st.price, order.level, st.qty)
            if st is not None:                         # it existed and no longer rests: the id is spent
                raise DuplicateClientId(f"{cid}: an order with this client id existed already ({st.status})")
        if order.preset_stop is not None and order.purpose != "entry":
            raise OrderRejected(f"{cid}: a preset stop goes with an entry, not a {order.purpose} order")
        if order.purpose == "take_profit":
            if cid in self._tp:
                raise DuplicateClientId(f"client order id {cid} is already open")
            oo = OpenOrder(cid, self.symbol, "take_profit", order.side, order.price, order.level, size)
            self._tp[cid] = oo
            return oo
        if size is None or size <= 0:
            raise OrderRejected(f"{cid}: a live {order.purpose} order needs a positive qty")
        amount = self._amount(cid, size)
        if order.purpose == "stop":
            if order.price is None:
                raise OrderRejected(f"{cid}: a stop needs a trigger price")
            params = self._p(clientOrderId=cid, stopLossPrice=order.price, triggerType="mark_price",
                             oneWayMode=True)
            await self._write("create", cid, self.ex.create_order, self.symbol, "market", order.side, amount, None,
                              params)
            return OpenOrder(cid, self.symbol, "stop", order.side, order.price, -1, None)
        otype = "market" if order.price is None or order.purpose == "exit" else "limit"
        params = self._p(clientOrderId=cid, marginMode=self.margin_mode, oneWayMode=True)
        if order.reduce_only:
            params["reduceOnly"] = True
        if order.preset_stop is not None:
            params["stopLoss"] = {"triggerPrice": order.preset_stop}
            self._presets.add(self.ex.price_to_precision(self.symbol, order.preset_stop))
        price = None if otype == "market" else order.price
        await self._write("create", cid, self.ex.create_order, self.symbol, otype, order.side, amount, price, params)
        return OpenOrder(cid, self.symbol, order.purpose, order.side, price, order.level, amount)

    async def reconcile_order(self, client_id: str) -> OrderState | None:
        """Look an order up by client id (waits out `order_ack_ms` after it became unknown)."""
        since = self._unknown.get(client_id)
        if since is not None:
            wait = self.cfg.timeouts.order_ack_ms / 1000 - (time.monotonic() - since)
            if wait > 0:
                await self.sleep(wait)
        parsed = parse_client_id(client_id, self.prefix)
        purpose, level = (parsed[0], parsed[1]) if parsed else ("entry", -1)
        st: OrderState | None
        if purpose == "stop":
            st = await self._find_plan(client_id)
            if st is None:                       # triggered or cancelled since: it existed
                st = await self._find_plan_history(client_id)
        else:
            st = await self._order_detail(client_id, purpose, level)
            if st is None:
                rows = await self._pages("orders-pending", self.ex.privateMixGetV2MixOrderOrdersPending,
                                         self._p(symbol=self._mid(), clientOid=client_id), "entrustedList")
                st = next((self._plain_state("orders-pending", r, purpose, level) for r in rows
                           if r.get("clientOid") == client_id), None)
        self._unknown.pop(client_id, None)
        return st

    # ---------------------------------------------------------------- parsing of order rows
    def _plain_state(self, call: str, row: dict, purpose: str, level: int) -> OrderState:
        """OrderState of a plain order row (detail: `state`; orders-pending / orders-history:
        `status`), checked field by field, values through ccxt's `parse_order`."""
        status_field = "state" if "state" in _row(call, row) else "status" if "status" in row else (
            "state" if call == "detail" else "status")      # recorded: detail says `state`, the lists `status`
        raw_status = _text(call, row, status_field)
        status = _STATUS.get(self.ex.parse_order_status(raw_status) or "")
        if status is None:
            raise MalformedAnswer(call, status_field, f"has an unknown value {raw_status!r}")
        _text(call, row, "orderId")
        _text(call, row, "clientOid")
        _side(call, row)
        _number(call, row, "size")
        filled = _number(call, row, "baseVolume")
        avg = _number(call, row, "priceAvg", empty_ok=True)
        if filled and avg is None:
            raise MalformedAnswer(call, "priceAvg", f"is empty although {filled} is filled")
        _opt_number(call, row, "price")
        _opt_number(call, row, "fee")
        _opt_number(call, row, "uTime")
        o = self._parse(call, self.ex.parse_order, row)
        fee = (o.get("fee") or {}).get("cost")
        average = o.get("average") if filled else None
        return OrderState(o.get("clientOrderId") or "", o.get("id"), status, o.get("side"), o.get("price") or None,
                          o.get("amount"), float(o.get("filled") or 0.0), average, purpose, level,
                          None if fee is None else abs(float(fee)), o.get("lastUpdateTimestamp"))

    def _plan_state(self, call: str, row: dict, purpose: str, level: int) -> OrderState:
        """OrderState of a plan row (orders-plan-pending / -history). A whole-position plan
        (pos_loss / pos_profit) has qty None. `filled` is 0: a triggered plan's fills are the
        fills of the market order it placed (read them with `fetch_closing_fill`)."""
        plan_type = _text(call, row, "planType")
        raw_status = _text(call, row, "planStatus")
        status = _PLAN_STATUS.get(raw_status)
        if status is None:
            raise MalformedAnswer(call, "planStatus", f"has an unknown value {raw_status!r}")
        _text(call, row, "orderId")
        cid = _text(call, row, "clientOid")
        side = _side(call, row)
        trigger = _number(call, row, "triggerPrice")
        qty = None if plan_type in WHOLE_POSITION_PLANS else _number(call, row, "size")
        ts = _opt_number(call, row, "uTime")
        return OrderState(cid, row["orderId"], status, side, trigger, qty, 0.0, None, purpose, level, None,
                          None if ts is None else int(ts))

    def _parse(self, call: str, parser: Callable[..., dict], row: dict) -> dict:
        """ccxt's parser on a row whose fields were checked; a parser failure is still typed."""
        try:
            return parser(row, self._market())
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise MalformedAnswer(call, "row", f"ccxt could not parse it: {type(e).__name__}: {e}") from e

    async def _order_detail(self, cid: str, purpose: str, level: int) -> OrderState | None:
        try:
            res = await self._read(self.ex.privateMixGetV2MixOrderDetail,
                                   self._p(symbol=self._mid(), clientOid=cid))
        except OrderNotFound:
            return None
        return self._plain_state("detail", _data("detail", res, dict), purpose, level)

    async def fetch_order_state(self, client_id: str) -> OrderState:
        """The state of one order (fills included; `ts` = its last update, uTime, ms UTC).
        Raises OrderNotFound, GatewayUnavailable, MalformedAnswer."""
        parsed = parse_client_id(client_id, self.prefix)
        purpose, level = (parsed[0], parsed[1]) if parsed else ("entry", -1)
        if purpose == "take_profit" and client_id in self._tp:
            tp = self._tp[client_id]
            return OrderState(client_id, None, "open", tp.side, tp.price, tp.qty, 0.0, None, "take_profit", level)
        if purpose == "stop":
            st = await self._find_plan(client_id)
            if st is None:
                st = await self._find_plan_history(client_id)
        else:
            st = await self._order_detail(client_id, purpose, level)
        if st is None:
            raise OrderNotFound(f"no order {client_id}")
        return st

    async def _plans(self, kind: str, **extra: Any) -> list[dict]:
        """Rows of orders-plan-pending of one planType kind (every page)."""
        return await self._pages("orders-plan-pending", self.ex.privateMixGetV2MixOrderOrdersPlanPending,
                                 self._p(symbol=self._mid(), planType=kind, **extra), "entrustedList")

    async def _find_plan(self, cid: str) -> OrderState | None:
        for r in await self._plans("profit_loss"):
            if r.get("clientOid") == cid:
                return self._plan_state("orders-plan-pending", r, "stop", -1)
        return None

    async def _find_plan_history(self, cid: str) -> OrderState | None:
        rows = await self._pages("orders-plan-history", self.ex.privateMixGetV2MixOrderOrdersPlanHistory,
                                 self._p(symbol=self._mid(), planType="profit_loss"), "entrustedList",
                                 until=lambda page: any(r.get("clientOid") == cid for r in page))
        for r in rows:
            if r.get("clientOid") == cid:
                return self._plan_state("orders-plan-history", r, "stop", -1)
        return None

    async def amend_order(self, client_id: str, price: float, qty: float | None = None,
                          new_client_id: str | None = None) -> OpenOrder:
        """Move a resting order to `price` (and `qty`, base units).

        * entries (plain orders): Bitget modify-order re-creates the order (docs): it continues as
          `new_client_id` (required: OrderRejected when missing or equal to `client_id`); size and
          price are both sent (the current size when `qty` is None). The old id is no longer open.
        * the stop (pos_loss): modify-tpsl-order keeps the order and its id (`new_client_id` is
          not used); its qty stays None (whole position).
        * the client-side take-profit: moved here; renamed to `new_client_id` when given.

        Raises OrderNotFound, OrderRejected, OrderUnknown (transport: the re-created order may
        exist under `new_client_id`), GatewayUnavailable.
        """
        self._require_started()
        parsed = parse_client_id(client_id, self.prefix)
        purpose, level = (parsed[0], parsed[1]) if parsed else ("entry", -1)
        if purpose == "take_profit":
            old = self._tp.pop(client_id, None)
            if old is None:
                raise OrderNotFound(f"no open order {client_id}")
            cid = new_client_id or client_id
            oo = OpenOrder(cid, self.symbol, "take_profit", old.side, price, old.level,
                           qty if qty is not None else old.qty)
            self._tp[cid] = oo
            return oo
        if purpose == "stop":
            st = await self._find_plan(client_id)
            if st is None:
                raise OrderNotFound(f"no open stop {client_id}")
            size = qty if qty is not None else st.qty
            if size is None:                     # whole-position stop: ccxt wants a size field
                size = (await self.fetch_position()).qty
            if not size:
                raise OrderRejected(f"{client_id}: no position to size the stop amendment")
            await self._write("amend", client_id, self.ex.edit_order, None, self.symbol, "market", st.side or "sell",
                              self._amount(client_id, size), None, self._p(clientOrderId=client_id, stopLossPrice=price))
            return OpenOrder(client_id, self.symbol, "stop", st.side or "", price, -1, st.qty)
        if not new_client_id:
            raise OrderRejected(f"{client_id}: Bitget re-creates an amended order: a new client id is required")
        if new_client_id == client_id:
            raise OrderRejected(f"{client_id}: the amended order needs a client id different from the old one")
        st = await self._order_detail(client_id, purpose, level)
        if st is None or st.status != "open":
            raise OrderNotFound(f"no open order {client_id}")
        size = qty if qty is not None else st.qty
        if size is None or size <= 0:
            raise OrderRejected(f"{client_id}: no size to amend with")
        amount = self._amount(client_id, size)
        side = st.side or ""
        await self._write("amend", new_client_id, self.ex.edit_order, None, self.symbol, "limit", side, amount, price,
                          self._p(clientOrderId=client_id, newClientOid=new_client_id))
        return OpenOrder(new_client_id, self.symbol, purpose, side, price, level, amount)

    async def cancel_order(self, client_id: str) -> None:
        """Cancel a resting order. Raises OrderNotFound, OrderRejected, GatewayUnavailable."""
        parsed = parse_client_id(client_id, self.prefix)
        purpose = parsed[0] if parsed else "entry"
        if purpose == "take_profit":
            if self._tp.pop(client_id, None) is None:
                raise OrderNotFound(f"no open order {client_id}")
            return
        if purpose == "stop":
            res = await self._write("cancel", client_id, self.ex.cancel_order, None, self.symbol,
                                    self._p(clientOrderId=client_id, trigger=True, planType="pos_loss"))
            if not (res or {}).get("id") and not (res or {}).get("clientOrderId"):
                raise OrderNotFound(f"no open stop {client_id}")
            return
        await self._write("cancel", client_id, self.ex.cancel_order, None, self.symbol,
                          self._p(clientOrderId=client_id))

    async def close_position(self, client_id: str, ts: int, price: float | None, reason: str) -> GatewayFill | None:
        """Market reduce-only close of the whole position under `client_id`; None when flat
        (verified by a read; Bitget 22002 "no position to close" is confirmed by a read too).
        Raises OrderUnknown (the close may exist: call again with the same id), GatewayError."""
        self._require_started()
        st: OrderState | None = None
        if client_id in self._unknown:
            st = await self.reconcile_order(client_id)
        if st is None:
            pos = await self.fetch_position()
            if pos.qty == 0:
                return None
            side = "sell" if pos.side == "long" else "buy"
            try:
                await self._write("create", client_id, self.ex.create_order, self.symbol, "market", side, pos.qty,
                                  None, self._p(clientOrderId=client_id, reduceOnly=True, marginMode=self.margin_mode,
                                                oneWayMode=True))
            except NoPositionToClose:
                if (await self.fetch_position()).qty == 0:
                    return None
                raise
            st = await self.fetch_order_state(client_id)
        if st.filled <= 0:
            self._unknown[client_id] = time.monotonic()
            raise OrderUnknown(client_id, f"{client_id}: the market close reports no fill yet (status {st.status})")
        after = await self.fetch_position()
        return GatewayFill(client_id, self.symbol, ts, "exit", st.side or "", float(st.avg_price or price or 0.0),
                           st.filled, st.fee or 0.0, -1, reason, after.qty, after.avg_entry, after.stop,
                           0 if after.qty == 0 else 1)

    # ---------------------------------------------------------------- reads
    async def fetch_open_orders(self) -> list[OpenOrder]:
        """Our orders of the four kinds (plain, normal_plan, profit_loss, track_plan) + client-side TPs.
        Raises if any of the four reads fails (a partial list would hide an order)."""
        ours, foreign = await self.fetch_all_open_orders()
        for f in foreign:
            log.warning("foreign open order on %s: %s (%s, %s)", self.symbol, f["id"], f["client_id"], f["kind"])
        return ours

    async def fetch_all_open_orders(self) -> tuple[list[OpenOrder], list[dict]]:
        """(ours, foreign): our open orders of the four kinds + client-side TPs, and the orders of
        the symbol whose client id does not carry our prefix, as dicts {id, client_id, kind, side,
        price, qty}. The stops Bitget made from filled entries' preset stop-losses (`loss_plan`,
        Bitget-generated client id) are in `foreign` with kind "loss_plan". Raises if any read
        fails. qty: base units still to fill (plain), the plan's size, None for whole-position."""
        plain = await self._pages("orders-pending", self.ex.privateMixGetV2MixOrderOrdersPending,
                                  self._p(symbol=self._mid()), "entrustedList")
        out: list[OpenOrder] = []
        foreign: list[dict] = []
        for r in plain:
            cid = _text("orders-pending", r, "clientOid")
            side = _side("orders-pending", r)
            size = _number("orders-pending", r, "size") or 0.0
            filled = _number("orders-pending", r, "baseVolume") or 0.0
            price = _opt_number("orders-pending", r, "price") or None
            parsed = parse_client_id(cid, self.prefix)
            if parsed is None:
                foreign.append({"id": r.get("orderId"), "client_id": cid, "kind": "plain", "side": side,
                                "price": price, "qty": size - filled})
                continue
            out.append(OpenOrder(cid, self.symbol, parsed[0], side, price, parsed[1], round(size - filled, 12)))
        for kind in PLAN_KINDS:
            for r in await self._plans(kind):
                cid = _text("orders-plan-pending", r, "clientOid")
                plan_type = _text("orders-plan-pending", r, "planType")
                side = _side("orders-plan-pending", r)
                trigger = _number("orders-plan-pending", r, "triggerPrice")
                qty = None if plan_type in WHOLE_POSITION_PLANS else _number("orders-plan-pending", r, "size")
                parsed = parse_client_id(cid, self.prefix)
                if parsed is None:
                    foreign.append({"id": r.get("orderId"), "client_id": cid, "kind": plan_type, "side": side,
                                    "price": trigger, "qty": qty})
                    continue
                out.append(OpenOrder(cid, self.symbol, parsed[0], side, trigger, parsed[1], qty))
        out.extend(self._tp.values())
        return out, foreign

    async def fetch_order_history(self, since_ms: int) -> list[OrderState]:
        """Our orders (this installation's prefix, any epoch / suffix) created since `since_ms`
        (ms UTC), of every status: orders-history (plain) and orders-plan-history (the three plan
        kinds), plus the open ones (orders-pending / orders-plan-pending; assumed: the history
        endpoints list finished orders only), oldest first. Bitget keeps 90 days (docs). Raises
        when a read fails."""
        call_plain = [("orders-history", self.ex.privateMixGetV2MixOrderOrdersHistory, {}),
                      ("orders-pending", self.ex.privateMixGetV2MixOrderOrdersPending, {})]
        found: dict[str, tuple[int, OrderState]] = {}
        for call, fn, extra in call_plain:
            rows = await self._pages(call, fn, self._p(symbol=self._mid(), startTime=str(since_ms), **extra),
                                     "entrustedList")
            for r in rows:
                self._collect(found, call, r, since_ms, plan=False)
        for kind in PLAN_KINDS:
            for call, fn in (("orders-plan-history", self.ex.privateMixGetV2MixOrderOrdersPlanHistory),
                             ("orders-plan-pending", self.ex.privateMixGetV2MixOrderOrdersPlanPending)):
                rows = await self._pages(call, fn, self._p(symbol=self._mid(), planType=kind, startTime=str(since_ms)),
                                         "entrustedList")
                for r in rows:
                    self._collect(found, call, r, since_ms, plan=True)
        return [st for _, st in sorted(found.values(), key=lambda x: (x[0], x[1].client_id))]

    def _collect(self, found: dict[str, tuple[int, OrderState]], call: str, r: dict, since_ms: int,
                 plan: bool) -> None:
        cid = r.get("clientOid")
        parsed = parse_client_id(cid if isinstance(cid, str) else None, self.prefix)
        if parsed is None:
            return
        c_time = _number(call, r, "cTime")
        if c_time is None or c_time < since_ms:
            return
        oid = _text(call, r, "orderId")
        st = (self._plan_state(call, r, parsed[0], parsed[1]) if plan
              else self._plain_state(call, r, parsed[0], parsed[1]))
        if oid not in found or found[oid][1].status == "open":
            found[oid] = (int(c_time), st)

    async def fetch_closing_fill(self, entry_side: str, qty: float) -> ClosingFill | None:
        """How the position (of `qty` base units, opened by `entry_side` orders) was closed: the
        most recent exit-side fills that add up to `qty` (older closes, such as an earlier partial
        close of the same position the executor booked already, stay out; so do entry fills in
        between, which the executor booked), as (volume-weighted price USDT, qty base units, fee
        USDT, ts = the last of them ms UTC, reason None). None when they do not add up to `qty`
        (within 1 %). Reads order/fills page by page (newest first, docs) until they do. Raises
        GatewayError when a read fails, MalformedAnswer."""

        def closing(newest: list[VenueTrade]) -> list[VenueTrade]:
            got: list[VenueTrade] = []
            q = 0.0
            for t in newest:
                if t.side == entry_side:
                    continue
                got.append(t)
                q += t.qty
                if q >= qty * (1.0 - 1e-9):
                    break
            return got

        trades = await self.fetch_recent_trades(lambda newest: sum(t.qty for t in closing(newest)) >= qty * (1 - 1e-9))
        got = closing(trades[::-1])
        q = sum(t.qty for t in got)
        if not got or abs(q - qty) > 0.01 * qty:
            return None
        px = sum(t.price * t.qty for t in got) / q
        fee = sum(t.fee for t in got)
        return ClosingFill(px, q, fee, max(t.ts for t in got), None)

    async def fetch_recent_trades(self, enough: Callable[[list[VenueTrade]], bool]) -> list[VenueTrade]:
        """The account's most recent trades of the symbol (GET order/fills, newest first, page by
        page) until `enough(trades_so_far_newest_first)` or the list ends; returned oldest first
        (cTime, then the numeric tradeId). Raises GatewayError when a read fails, MalformedAnswer
        naming the field of a row that is not a trade."""
        call = "fills"
        got: list[VenueTrade] = []

        def until(page: list[dict]) -> bool:
            got.extend(self._trade(call, r) for r in page)
            got.sort(key=lambda t: (t.ts, t.seq), reverse=True)
            return enough(list(got))

        rows = await self._pages(call, self.ex.privateMixGetV2MixOrderFills, self._p(symbol=self._mid()), "fillList",
                                 until=until)
        if len(got) != len(rows):                 # the last page, not seen by `until`
            seen = {t.trade_id for t in got}
            got.extend(t for t in (self._trade(call, r) for r in rows) if t.trade_id not in seen)
        return sorted(got, key=lambda t: (t.ts, t.seq))

    def _trade(self, call: str, r: Any) -> VenueTrade:
        """One order/fills row as a VenueTrade (fields checked; ccxt's parser for the rest)."""
        r = _row(call, r)
        tid = _text(call, r, "tradeId")
        oid = _text(call, r, "orderId")
        side = _side(call, r)
        _number(call, r, "price")
        _number(call, r, "baseVolume")
        _number(call, r, "cTime")
        fees = r.get("feeDetail")
        if not isinstance(fees, list) or not fees:
            raise MalformedAnswer(call, "feeDetail", f"is {fees!r}, not a non-empty list")
        _number(call, _row(call, fees[0], "feeDetail"), "totalFee")
        t = self._parse(call, self.ex.parse_trade, r)
        fee = abs(float((t.get("fee") or {}).get("cost") or 0.0))
        return VenueTrade(tid, int(tid) if tid.isdigit() else 0, oid, None, side, float(t["price"]),
                          float(t["amount"]), fee, int(t["timestamp"]))

    async def fetch_mark_price(self) -> float:
        """The symbol's mark price (USDT) from the ticker's `markPrice`. Raises GatewayError,
        MalformedAnswer (missing, not a number, not positive)."""
        res = await self._read(self.ex.publicMixGetV2MixMarketTicker, self._p(symbol=self._mid()))
        data = _data("ticker", res, list)
        if not data:
            raise MalformedAnswer("ticker", "data", "is an empty list")
        mark = _number("ticker", _row("ticker", data[0]), "markPrice")
        if mark is None or mark <= 0:
            raise MalformedAnswer("ticker", "markPrice", f"is not positive: {mark!r}")
        return mark

    def amount_of(self, qty: float) -> float:
        """`qty` rounded to the symbol's amount precision (base units); 0.0 when below it."""
        try:
            return float(self.ex.amount_to_precision(self.symbol, qty))
        except Exception:  # noqa: BLE001 - ccxt raises InvalidOrder below the minimum
            return 0.0

    def price_of(self, price: float) -> float:
        """`price` rounded to the symbol's price precision (USDT)."""
        return float(self.ex.price_to_precision(self.symbol, price))

    def min_amount(self) -> float:
        """The symbol's minimum order amount (base units; 0 when the market does not say)."""
        lim = (self._market().get("limits") or {}).get("amount") or {}
        return float(lim.get("min") or 0.0)

    async def fetch_stop(self) -> OpenOrder | None:
        """The live whole-position stop (`pos_loss`) of the symbol (ours or not), None when there
        is none. Its qty is None: a pos_loss closes the whole position (module docstring)."""
        stops = [r for r in await self._plans("profit_loss")
                 if _text("orders-plan-pending", r, "planType") == "pos_loss"]
        if not stops:
            return None
        if len(stops) > 1:
            log.warning("%s: %d pos_loss stops are live; reporting the first", self.symbol, len(stops))
        r = stops[0]
        return OpenOrder(_text("orders-plan-pending", r, "clientOid"), self.symbol, "stop",
                         _side("orders-plan-pending", r), _number("orders-plan-pending", r, "triggerPrice"), -1, None)

    async def drop_preset_stops(self) -> int:
        """Cancel the `loss_plan` stops Bitget made from OUR filled entries' preset stop-loss
        (recorded on UTA: such a stop gets a Bitget-generated client id, so it is recognised by its
        trigger price = the `presetStopLossPrice` of one of our orders: sent by this process, or
        listed in our open / recent orders). Only while the whole-position stop is live.
        Returns how many were cancelled. Raises OrderRejected (no whole-position stop live:
        the preset stops stay), GatewayError."""
        self._require_started()
        if await self.fetch_stop() is None:
            raise OrderRejected(f"{self.symbol}: no whole-position stop is live: the preset stops stay")
        plans = [r for r in await self._plans("profit_loss")
                 if _text("orders-plan-pending", r, "planType") == "loss_plan"]
        if not plans:
            return 0
        keys = {_text("orders-plan-pending", r, "orderId"): self._price_key(_number("orders-plan-pending", r,
                                                                                     "triggerPrice")) for r in plans}
        ours_prices = set(self._presets)
        if any(k not in ours_prices for k in keys.values()):
            oldest = min(int(_number("orders-plan-pending", r, "cTime") or 0) for r in plans)
            for st in await self._preset_rows(oldest - PRESET_LOOKBACK_MS):
                ours_prices.add(st)
        n = 0
        for r in plans:
            oid = r.get("orderId")
            cid = r.get("clientOid")
            mine = parse_client_id(cid if isinstance(cid, str) else None, self.prefix) is not None
            if not mine and keys.get(oid) not in ours_prices:
                continue
            try:
                res = await self._write("cancel", str(oid), self.ex.cancel_order, oid, self.symbol,
                                        self._p(trigger=True, planType="loss_plan"))
            except OrderNotFound:
                continue                        # triggered or cancelled meanwhile
            if not (res or {}).get("id"):       # Bitget lists it in failureList (ccxt parses an empty order)
                log.warning("%s: preset stop %s was not cancelled (failureList): %s", self.symbol, oid,
                            (res or {}).get("info"))
                continue
            n += 1
        return n

    def _price_key(self, price: float | None) -> str:
        return self.ex.price_to_precision(self.symbol, price) if price is not None else ""

    async def _preset_rows(self, since_ms: int) -> set[str]:
        """The preset stop-loss prices (price-precision strings) of our plain orders created since
        `since_ms` (orders-history and orders-pending)."""
        out: set[str] = set()
        for call, fn in (("orders-history", self.ex.privateMixGetV2MixOrderOrdersHistory),
                         ("orders-pending", self.ex.privateMixGetV2MixOrderOrdersPending)):
            for r in await self._pages(call, fn, self._p(symbol=self._mid(), startTime=str(max(0, since_ms))),
                                       "entrustedList"):
                cid = r.get("clientOid")
                if parse_client_id(cid if isinstance(cid, str) else None, self.prefix) is None:
                    continue
                p = _opt_number(call, r, "presetStopLossPrice")
                if p:
                    out.add(self._price_key(p))
        return out

    async def fetch_position(self) -> PositionInfo:
        """The position (qty 0 when flat). Raises on ANY failure: an error is never "flat"."""
        call = "single-position"
        res = await self._read(self.ex.privateMixGetV2MixPositionSinglePosition,
                               {"symbol": self._mid(), "marginCoin": "USDT", "productType": PRODUCT_TYPE})
        data = _data(call, res, list)
        rows = []
        for r in data:
            total = _number(call, _row(call, r), "total") or 0.0
            if total > 0:
                rows.append((r, total))
        if not rows:
            return PositionInfo(self.symbol, "flat", 0.0, None, None)
        if len(rows) > 1:
            raise AccountModeError(f"{self.symbol}: {len(rows)} positions (hedge mode?): refusing to trade")
        r, total = rows[0]
        side = _text(call, r, "holdSide")
        if side not in ("long", "short"):
            raise MalformedAnswer(call, "holdSide", f"is not long/short: {side!r}")
        avg = _number(call, r, "openPriceAvg")
        stop = await self.fetch_stop()
        return PositionInfo(self.symbol, side, total, avg, stop.price if stop else None)

    async def fetch_balance(self) -> float:
        """Cash of the account, USDT: `accountEquity - unrealizedPL` of the USDT row of
        account/accounts (docs: equity includes the unrealised P&L). Raises MalformedAnswer when
        there is no USDT row or a field is missing / not a number."""
        call = "accounts"
        res = await self._read(self.ex.privateMixGetV2MixAccountAccounts, {"productType": PRODUCT_TYPE})
        data = _data(call, res, list)
        usdt = [r for r in data if isinstance(r, dict) and str(r.get("marginCoin", "")).upper() == "USDT"]
        if not usdt:
            raise MalformedAnswer(call, "marginCoin", "has no USDT row")
        equity = _number(call, usdt[0], "accountEquity")
        upl = _number(call, usdt[0], "unrealizedPL")
        return float(equity) - float(upl)  # type: ignore[arg-type]
