"""CcxtGateway: Bitget USDT-M perpetuals through ccxt's async client, behind `AsyncGateway`.

One instance trades one symbol of one account (like `PaperGateway`), one-way position mode.

* `start()` (required before any order): `options['uta']` is set from the config (UTA accounts
  are refused for now: the v2 classic mix endpoints are used), markets loaded, the margin
  mode and leverage set for the symbol, then the account is ASSERTED to be in the configured
  margin mode and one-way position mode (`AccountModeError` otherwise: no trading).
* entries are limit orders (market when price is None) with the client id as `clientOid`
  and the margin mode given explicitly (ccxt would default to cross);
* the stop is the exchange-side whole-position `pos_loss` TP/SL order (ccxt `stopLossPrice`),
  amended (modify-tpsl-order) when a level fills; see `core.executor.protection`;
* the take-profit is CLIENT-SIDE: kept here, listed by `fetch_open_orders`, never sent; the
  executor closes at market (`close_position`) when the price touches it;
* order creation is never blindly retried: a transport error leaves the order UNKNOWN
  (`OrderUnknown`); the next `place_order` with that client id, or `reconcile_order`, looks it
  up by client id (order/detail with clientOid, then the open orders) before anything is re-sent;
* reads are retried with backoff on `GatewayUnavailable` (429 honours Retry-After) and then
  raise; a failed position query never counts as flat;
* every private read passes productType "USDT-FUTURES"; the open orders are the four kinds:
  plain, trigger (normal_plan), TP/SL (profit_loss) and trailing (track_plan).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from core.config.exchanges import ExchangeConfig
from core.model.errors import (
    AccountModeError,
    GatewayError,
    GatewayUnavailable,
    OrderNotFound,
    OrderRejected,
    OrderUnknown,
    RateLimited,
)
from core.model.orders import GatewayFill, OpenOrder, OrderRequest, OrderState, PositionInfo
from core.venues.bitget.errors import map_error

log = logging.getLogger(__name__)

PRODUCT_TYPE = "USDT-FUTURES"
#: Bitget planType of the kinds of open plan orders (orders-plan-pending).
PLAN_KINDS = ("normal_plan", "profit_loss", "track_plan")
_PURPOSE_BY_CODE = {"e": "entry", "s": "stop", "t": "take_profit", "x": "exit"}
_STATUS = {"open": "open", "closed": "filled", "canceled": "cancelled", "rejected": "rejected",
           "expired": "cancelled"}


@dataclass(frozen=True, slots=True)
class ReadRetry:
    """Retries of read calls: `attempts` in all, delays base_s * 2**i capped at max_s."""

    attempts: int = 4
    base_s: float = 0.5
    max_s: float = 8.0


def parse_client_id(cid: str | None, prefix: str) -> tuple[str, int, int] | None:
    """(purpose, level, cycle) of one of our client ids (`core.executor.client_ids` format,
    optionally with a re-creation suffix `r<n>` on stops), None for a foreign id."""
    if not cid or not cid.startswith(prefix + "-"):
        return None
    m = re.fullmatch(re.escape(prefix) + r"-[0-9a-f]{8}-(\d+)-([estx])(\d*)(?:r\d+)?", cid)
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

    # ---------------------------------------------------------------- plumbing
    async def _call(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        if self.breaker is None:
            return await fn(*args, **kwargs)
        from core.health.breaker import CircuitOpenError
        try:
            return await self.breaker.call(fn, *args, **kwargs)
        except CircuitOpenError as e:
            raise GatewayUnavailable(str(e)) from e

    def _headers(self) -> Any:
        return getattr(self.ex, "last_response_headers", None)

    async def _read(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        rr = self.read_retry
        for attempt in range(rr.attempts):
            try:
                return await self._call(fn, *args, **kwargs)
            except Exception as e:  # noqa: BLE001 - mapped below
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
        try:
            return await self._call(fn, *args, **kwargs)
        except Exception as e:  # noqa: BLE001 - mapped below
            err = map_error(e, op=op, client_id=cid, headers=self._headers())
            if isinstance(err, OrderUnknown):
                self._unknown[cid] = time.monotonic()
            raise err from e

    def _p(self, **extra: Any) -> dict:
        return {"productType": PRODUCT_TYPE, **extra}

    def _require_started(self) -> None:
        if not self.started:
            raise AccountModeError("CcxtGateway.start() has not verified the account: refusing to trade")

    # ---------------------------------------------------------------- start-up
    async def start(self) -> None:
        """Load markets, set margin mode + leverage, assert margin mode and one-way mode."""
        if self.cfg.uta:
            raise AccountModeError("unified trading accounts (uta: true) are not supported by CcxtGateway yet; "
                                   "use a classic account or set uta: false only if the account really is classic")
        await self._read(self.ex.load_markets)
        market = self.ex.market(self.symbol)
        if not market.get("swap") or market.get("settle") != "USDT":
            raise AccountModeError(f"{self.symbol} is not a USDT-M perpetual")
        self.market_id = market["id"]
        try:
            await self._write("amend", "set-margin-mode", self.ex.set_margin_mode, self.margin_mode, self.symbol,
                              self._p())
        except GatewayError as e:          # refused with a position/orders open: the assertion below decides
            log.warning("set_margin_mode(%s) refused: %s", self.margin_mode, e)
        await self._write("amend", "set-leverage", self.ex.set_leverage, self.leverage, self.symbol,
                          self._p(marginMode=self.margin_mode))
        acct = await self._read(self.ex.privateMixGetV2MixAccountAccount,
                                {"symbol": self.market_id, "marginCoin": "USDT", "productType": PRODUCT_TYPE})
        data = acct.get("data") or {}
        want_margin = "crossed" if self.margin_mode == "cross" else "isolated"
        if data.get("marginMode") != want_margin:
            raise AccountModeError(f"{self.symbol}: the account is in margin mode {data.get('marginMode')!r}, "
                                   f"config says {want_margin!r}; close positions/orders of the symbol or fix "
                                   f"exchanges.yaml: refusing to trade")
        if data.get("posMode") != "one_way_mode":
            raise AccountModeError(f"the account is in position mode {data.get('posMode')!r}; Radar needs "
                                   f"one-way mode (set it in Bitget: futures settings): refusing to trade")
        self.started = True

    async def close(self) -> None:
        await self.ex.close()

    # ---------------------------------------------------------------- orders
    async def place_order(self, order: OrderRequest, qty: float | None = None) -> OpenOrder:
        self._require_started()
        if order.symbol != self.symbol:
            raise OrderRejected(f"{order.client_id}: gateway trades {self.symbol}, not {order.symbol}")
        cid = order.client_id
        if cid in self._unknown:                       # never re-send before looking it up
            st = await self.reconcile_order(cid)
            if st is not None:
                return OpenOrder(cid, self.symbol, order.purpose, order.side, st.price, order.level, st.qty)
        if order.purpose == "take_profit":
            if cid in self._tp:
                from core.model.errors import DuplicateClientId
                raise DuplicateClientId(f"client order id {cid} is already open")
            oo = OpenOrder(cid, self.symbol, "take_profit", order.side, order.price, order.level, qty)
            self._tp[cid] = oo
            return oo
        if qty is None or qty <= 0:
            raise OrderRejected(f"{cid}: a live {order.purpose} order needs a positive qty")
        amount = float(self.ex.amount_to_precision(self.symbol, qty))
        if order.purpose == "stop":
            if order.price is None:
                raise OrderRejected(f"{cid}: a stop needs a trigger price")
            params = self._p(clientOrderId=cid, stopLossPrice=order.price, triggerType="mark_price",
                             oneWayMode=True)
            await self._write("create", cid, self.ex.create_order, self.symbol, "market", order.side, amount, None,
                              params)
            return OpenOrder(cid, self.symbol, "stop", order.side, order.price, -1, amount)
        otype = "market" if order.price is None or order.purpose == "exit" else "limit"
        params = self._p(clientOrderId=cid, marginMode=self.margin_mode, oneWayMode=True)
        if order.reduce_only:
            params["reduceOnly"] = True
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
        else:
            st = await self._order_detail(client_id, purpose, level)
            if st is None:
                plain = await self._read(self.ex.fetch_open_orders, self.symbol, None, None,
                                         self._p(clientOrderId=client_id))
                st = next((self._state(o, purpose, level) for o in plain if o.get("clientOrderId") == client_id), None)
        self._unknown.pop(client_id, None)
        return st

    def _state(self, o: dict, purpose: str, level: int) -> OrderState:
        fee = (o.get("fee") or {}).get("cost")
        return OrderState(o.get("clientOrderId") or "", o.get("id"), _STATUS.get(o.get("status") or "", "open"),
                          o.get("side"), o.get("price") if o.get("price") else o.get("triggerPrice"),
                          o.get("amount"), float(o.get("filled") or 0.0), o.get("average"), purpose, level,
                          None if fee is None else abs(float(fee)))

    async def _order_detail(self, cid: str, purpose: str, level: int) -> OrderState | None:
        try:
            o = await self._read(self.ex.fetch_order, None, self.symbol, self._p(clientOrderId=cid))
        except OrderNotFound:
            return None
        return self._state(o, purpose, level)

    async def fetch_order_state(self, client_id: str) -> OrderState:
        """The state of one order (fills included). Raises OrderNotFound, GatewayUnavailable."""
        parsed = parse_client_id(client_id, self.prefix)
        purpose, level = (parsed[0], parsed[1]) if parsed else ("entry", -1)
        st = await self._find_plan(client_id) if purpose == "stop" else await self._order_detail(client_id, purpose, level)
        if st is None:
            raise OrderNotFound(f"no order {client_id}")
        return st

    async def _find_plan(self, cid: str) -> OrderState | None:
        for o in await self._plans("profit_loss"):
            if o.get("clientOrderId") == cid:
                return self._state(o, "stop", -1)
        return None

    async def _plans(self, kind: str) -> list[dict]:
        params = self._p(planType=kind)
        if kind == "track_plan":
            params["trailing"] = True
        else:
            params["trigger"] = True
        return await self._read(self.ex.fetch_open_orders, self.symbol, None, None, params)

    async def amend_order(self, client_id: str, price: float, qty: float | None = None) -> OpenOrder:
        self._require_started()
        parsed = parse_client_id(client_id, self.prefix)
        purpose = parsed[0] if parsed else "entry"
        if purpose == "take_profit":
            old = self._tp.get(client_id)
            if old is None:
                raise OrderNotFound(f"no open order {client_id}")
            oo = OpenOrder(client_id, self.symbol, "take_profit", old.side, price, old.level, old.qty)
            self._tp[client_id] = oo
            return oo
        if purpose == "stop":
            st = await self._find_plan(client_id)
            if st is None:
                raise OrderNotFound(f"no open stop {client_id}")
            size = qty if qty is not None else st.qty
            if size is None:
                pos = await self.fetch_position()
                size = pos.qty
            await self._write("amend", client_id, self.ex.edit_order, None, self.symbol, "market", st.side or "sell",
                              size, None, self._p(clientOrderId=client_id, stopLossPrice=price))
            return OpenOrder(client_id, self.symbol, "stop", st.side or "", price, -1, size)
        await self._write("amend", client_id, self.ex.edit_order, None, self.symbol, "limit", None, qty, price,
                          self._p(clientOrderId=client_id, newClientOid=client_id))
        return OpenOrder(client_id, self.symbol, purpose, "", price, parsed[1] if parsed else -1, qty)

    async def cancel_order(self, client_id: str) -> None:
        parsed = parse_client_id(client_id, self.prefix)
        purpose = parsed[0] if parsed else "entry"
        if purpose == "take_profit":
            if self._tp.pop(client_id, None) is None:
                raise OrderNotFound(f"no open order {client_id}")
            return
        if purpose == "stop":
            res = await self._write("cancel", client_id, self.ex.cancel_order, None, self.symbol,
                                    self._p(clientOrderId=client_id, trigger=True, planType="pos_loss"))
            if not res.get("id") and not res.get("clientOrderId"):
                raise OrderNotFound(f"no open stop {client_id}")
            return
        await self._write("cancel", client_id, self.ex.cancel_order, None, self.symbol,
                          self._p(clientOrderId=client_id))

    async def close_position(self, client_id: str, ts: int, price: float | None, reason: str) -> GatewayFill | None:
        """Market reduce-only close of the whole position; None when flat (verified by a read)."""
        self._require_started()
        st: OrderState | None = None
        if client_id in self._unknown:
            st = await self.reconcile_order(client_id)
        if st is None:
            pos = await self.fetch_position()
            if pos.qty == 0:
                return None
            side = "sell" if pos.side == "long" else "buy"
            await self._write("create", client_id, self.ex.create_order, self.symbol, "market", side, pos.qty, None,
                              self._p(clientOrderId=client_id, reduceOnly=True, marginMode=self.margin_mode,
                                      oneWayMode=True))
            st = await self.fetch_order_state(client_id)
        after = await self.fetch_position()
        fee = st.fee or 0.0
        return GatewayFill(client_id, self.symbol, ts, "exit", st.side or "", float(st.avg_price or price or 0.0),
                           st.filled, fee, -1, reason, after.qty, after.avg_entry, after.stop, 0 if after.qty == 0 else 1)

    # ---------------------------------------------------------------- reads
    async def fetch_open_orders(self) -> list[OpenOrder]:
        """Our orders of the four kinds (plain, normal_plan, profit_loss, track_plan) + client-side TPs.
        Raises if any of the four reads fails (a partial list would hide an order)."""
        ours, foreign = await self.fetch_all_open_orders()
        for f in foreign:
            log.warning("foreign open order on %s: %s (%s)", self.symbol, f["id"], f["client_id"])
        return ours

    async def fetch_all_open_orders(self) -> tuple[list[OpenOrder], list[dict]]:
        """(ours, foreign): our open orders of the four kinds + client-side TPs, and the orders
        of the symbol whose client id does not carry our prefix, as dicts {id, client_id, kind,
        side, price, qty}. Raises if any of the four reads fails."""
        plain = await self._read(self.ex.fetch_open_orders, self.symbol, None, None, self._p())
        out: list[OpenOrder] = []
        foreign: list[dict] = []
        rows = [(o, False) for o in plain]
        for kind in PLAN_KINDS:
            rows += [(o, True) for o in await self._plans(kind)]
        for o, is_plan in rows:
            cid = o.get("clientOrderId")
            parsed = parse_client_id(cid, self.prefix)
            if parsed is None:
                foreign.append({"id": o.get("id"), "client_id": cid,
                                "kind": (o.get("info") or {}).get("planType") if is_plan else "plain",
                                "side": o.get("side"), "qty": o.get("amount"),
                                "price": o.get("triggerPrice") if is_plan else o.get("price")})
                continue
            purpose, level, _ = parsed
            price = o.get("triggerPrice") if is_plan else o.get("price")
            qty = o.get("amount")
            if not is_plan and o.get("filled"):
                qty = (qty or 0.0) - float(o["filled"])
            out.append(OpenOrder(cid, self.symbol, purpose, o.get("side") or "", price, level, qty))
        out.extend(self._tp.values())
        return out, foreign

    async def fetch_closing_fill(self, entry_side: str, qty: float) -> tuple[float, float, float] | None:
        """The exchange's fills that closed the position (e.g. a triggered stop): (volume-weighted
        price, qty, fee USDT) of the exit-side trades after the last entry-side trade, or None
        when they do not add up to `qty` (within 1 %). Reads `fetch_my_trades` (order/fills).
        Raises GatewayError when the read fails."""
        trades = await self._read(self.ex.fetch_my_trades, self.symbol, None, None, self._p())
        trades = sorted(trades, key=lambda t: (t.get("timestamp") or 0, str(t.get("id"))))
        last_entry = max((i for i, t in enumerate(trades) if t.get("side") == entry_side), default=-1)
        closing = [t for t in trades[last_entry + 1:] if t.get("side") != entry_side]
        q = sum(float(t.get("amount") or 0.0) for t in closing)
        if not closing or abs(q - qty) > 0.01 * qty:
            return None
        px = sum(float(t["price"]) * float(t["amount"]) for t in closing) / q
        fee = sum(abs(float((t.get("fee") or {}).get("cost") or 0.0)) for t in closing)
        return px, q, fee

    async def fetch_mark_price(self) -> float:
        """The symbol's mark price (quote currency) from the ticker. Raises GatewayError."""
        t = await self._read(self.ex.fetch_ticker, self.symbol, self._p())
        info = t.get("info") or {}
        for v in (info.get("markPrice"), t.get("last")):
            try:
                x = float(v)
            except (TypeError, ValueError):
                continue
            if x > 0:
                return x
        raise GatewayError(f"{self.symbol}: the ticker has no mark or last price")

    def amount_of(self, qty: float) -> float:
        """`qty` rounded to the symbol's amount precision (base units); 0.0 when below it."""
        try:
            return float(self.ex.amount_to_precision(self.symbol, qty))
        except Exception:  # noqa: BLE001 - ccxt raises InvalidOrder below the minimum
            return 0.0

    def price_of(self, price: float) -> float:
        """`price` rounded to the symbol's price precision."""
        return float(self.ex.price_to_precision(self.symbol, price))

    def min_amount(self) -> float:
        """The symbol's minimum order amount (base units; 0 when the market does not say)."""
        lim = (self.ex.market(self.symbol).get("limits") or {}).get("amount") or {}
        return float(lim.get("min") or 0.0)

    async def fetch_stop(self) -> OpenOrder | None:
        """The live pos_loss stop of the symbol (ours or not), None when there is none."""
        for o in await self._plans("profit_loss"):
            if (o.get("info") or {}).get("planType") == "pos_loss":
                return OpenOrder(o.get("clientOrderId") or "", self.symbol, "stop", o.get("side") or "",
                                 o.get("triggerPrice"), -1, o.get("amount"))
        return None

    async def fetch_position(self) -> PositionInfo:
        """The position (qty 0 when flat). Raises on ANY failure: an error is never "flat"."""
        mid = self.market_id or self.ex.market(self.symbol)["id"]
        res = await self._read(self.ex.privateMixGetV2MixPositionSinglePosition,
                               {"symbol": mid, "marginCoin": "USDT", "productType": PRODUCT_TYPE})
        data = res.get("data") if isinstance(res, dict) else None
        if not isinstance(data, list) or res.get("code") != "00000":
            raise GatewayError(f"unexpected single-position answer: {str(res)[:200]}")
        rows = [r for r in data if float(r.get("total") or 0) > 0]
        if not rows:
            return PositionInfo(self.symbol, "flat", 0.0, None, None)
        if len(rows) > 1:
            raise AccountModeError(f"{self.symbol}: {len(rows)} positions (hedge mode?): refusing to trade")
        r = rows[0]
        stop = await self.fetch_stop()
        return PositionInfo(self.symbol, r["holdSide"], float(r["total"]), float(r["openPriceAvg"]),
                            stop.price if stop else None)

    async def fetch_balance(self) -> float:
        bal = await self._read(self.ex.fetch_balance, {"type": "swap", "productType": PRODUCT_TYPE})
        usdt = bal.get("USDT") or {}
        if usdt.get("total") is None:
            raise GatewayError("the balance answer has no USDT total")
        return float(usdt["total"])
