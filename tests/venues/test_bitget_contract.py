"""CcxtGateway on the venue contract (`core.executor.gateway.Gateway`) against the Bitget stand-in, through the
REAL ccxt client on 127.0.0.1: whole-position stops, amend = cancel-and-recreate, the Bitget codes ccxt does not
type, malformed answers, preset stop-losses, order history, paginated fills, the stand-in's protection log and its
faults (hang, 500, 429, rejects, malformed, garbage, partial fills, exchange restart)."""

from __future__ import annotations

import asyncio
import time

import ccxt
import pytest

from core.config.exchanges import ExchangeConfig
from core.data.download import override_api_urls
from core.executor.client_ids import ClientIds
from core.executor.gateway import Gateway
from core.model.errors import (
    AccountModeError,
    DuplicateClientId,
    GatewayError,
    GatewayUnavailable,
    InsufficientPosition,
    MalformedAnswer,
    MarginModeLocked,
    NoPositionToClose,
    OrderNotFound,
    OrderRejected,
    OrderUnknown,
    PositionModeMismatch,
    RateLimited,
    StopAlreadyExists,
    StopCrossed,
)
from core.model.orders import OrderRequest
from core.venues.bitget.errors import map_error
from core.venues.bitget.gateway import MAX_PAGES, CcxtGateway, ReadRetry, make_exchange
from tests.support import bitget_private_stub as S
from tests.support.bitget_private_stub import BitgetPrivateStub, error, garbage, hang, server_error, too_many

SYM = "BTC/USDT:USDT"
IDS = ClientIds("rdr1", "grid", SYM)


def cfg(**kw) -> ExchangeConfig:
    base = {"id": "bitget", "market_type": "swap", "sandbox": False, "uta": False, "rate_limit_ms": 0,
            "client_order_prefix": "rdr1", "timeouts": {"request_ms": 300, "order_ack_ms": 100}}
    base.update(kw)
    return ExchangeConfig(**base)


FAST = ReadRetry(3, 0.01, 0.02)


async def new_gw(stub: BitgetPrivateStub, retry: ReadRetry = FAST, **kw) -> CcxtGateway:
    ex = make_exchange(cfg(**kw), "key", "secret", "pass")
    override_api_urls(ex, stub.base_url)
    gw = CcxtGateway(cfg(**kw), SYM, ex, leverage=5, read_retry=retry)
    await gw.start()
    return gw


@pytest.fixture
async def stub():
    async with BitgetPrivateStub() as s:
        yield s


@pytest.fixture
async def gw(stub):
    g = await new_gw(stub)
    yield g
    await g.close()


def entry(level: int, price: float | None, qty: float = 0.01, cycle: int = 0, **kw) -> OrderRequest:
    return OrderRequest(IDS(cycle, level, "entry"), SYM, "entry", "buy", price, level, qty=qty, **kw)


def stop(price: float, qty: float, cycle: int = 0) -> OrderRequest:
    return OrderRequest(IDS(cycle, -1, "stop"), SYM, "stop", "sell", price, reduce_only=True, qty=qty)


async def raw(stub: BitgetPrivateStub):
    ex = make_exchange(cfg(), "key", "secret", "pass")
    override_api_urls(ex, stub.base_url)
    return ex


# ---------------------------------------------------------------- the contract's shape
async def test_capabilities_and_protocol(gw):
    assert (CcxtGateway.external, CcxtGateway.rests_take_profit, CcxtGateway.renames_on_amend) == (True, False, True)
    assert isinstance(gw, Gateway)
    assert await gw.on_candle(0, 1.0, 1.0, 1.0, 1.0) is None


async def test_place_order_takes_qty_from_the_request_and_the_old_keyword(stub, gw):
    await gw.place_order(entry(0, 39_000.0, qty=0.02))
    await gw.place_order(OrderRequest(IDS(0, 1, "entry"), SYM, "entry", "buy", 38_000.0, 1), qty=0.03)
    sizes = [c["size"] for c in stub.calls_to(S.PLACE_ORDER)]
    assert sizes == ["0.02", "0.03"]
    with pytest.raises(OrderRejected, match="positive qty"):
        await gw.place_order(OrderRequest(IDS(0, 2, "entry"), SYM, "entry", "buy", 37_000.0, 2))
    with pytest.raises(OrderRejected, match="preset stop"):
        await gw.place_order(OrderRequest(IDS(0, -1, "exit"), SYM, "exit", "sell", None, qty=0.01, preset_stop=1.0))
    assert len(stub.calls_to(S.PLACE_ORDER)) == 2


# ---------------------------------------------------------------- B: whole-position stop
async def test_pos_loss_is_whole_position_qty_none(stub, gw):
    await gw.place_order(entry(0, None))
    await gw.place_order(stop(37_000.0, 0.01))
    ex = await raw(stub)
    res = await ex.privateMixGetV2MixOrderOrdersPlanPending({"productType": "USDT-FUTURES", "symbol": "BTCUSDT",
                                                             "planType": "profit_loss"})
    await ex.close()
    [row] = res["data"]["entrustedList"]
    assert row["planType"] == "pos_loss" and row["size"] == ""          # Bitget: size not required for pos_loss
    live = await gw.fetch_stop()
    assert (live.client_id, live.price, live.qty) == (IDS(0, -1, "stop"), 37_000.0, None)
    [oo] = [o for o in await gw.fetch_open_orders() if o.purpose == "stop"]
    assert oo.qty is None
    stub.set_mark("BTCUSDT", 40_100.0)
    await gw.place_order(entry(1, None, qty=0.02))                    # the position grows: the stop still covers
    assert stub.protected() and (await gw.fetch_stop()).qty is None
    moved = await gw.amend_order(IDS(0, -1, "stop"), 37_500.0)
    assert (moved.client_id, moved.price, moved.qty) == (IDS(0, -1, "stop"), 37_500.0, None)
    assert stub.live_plans()[0].trigger_price == 37_500.0
    with pytest.raises(StopAlreadyExists):                             # 43024: one pos_loss per position
        await gw.place_order(OrderRequest(IDS(0, -1, "stop") + "r1", SYM, "stop", "sell", 37_000.0, qty=0.03))


async def test_stop_without_position_is_insufficient_position(gw):
    with pytest.raises(InsufficientPosition):                          # 43023
        await gw.place_order(stop(37_000.0, 0.01))


# ---------------------------------------------------------------- B: amend = cancel and re-create
async def test_amend_recreates_the_entry_under_the_new_client_id(stub, gw):
    old, new = IDS(0, 0, "entry"), IDS(0, 0, "entry") + "a1"
    await gw.place_order(entry(0, 39_000.0, qty=0.02))
    old_oid = stub.live_orders()[0].order_id
    oo = await gw.amend_order(old, 38_800.0, None, new)
    assert (oo.client_id, oo.price, oo.qty, oo.purpose, oo.level, oo.side) == (new, 38_800.0, 0.02, "entry", 0, "buy")
    [live] = stub.live_orders()
    assert live.client_oid == new and live.order_id != old_oid and live.price == 38_800.0
    assert stub.calls_to(S.MODIFY_ORDER)[-1] == {**stub.calls_to(S.MODIFY_ORDER)[-1], "clientOid": old,
                                                 "newClientOid": new, "newSize": "0.02", "newPrice": "38800"}
    st_new, st_old = await gw.fetch_order_state(new), await gw.fetch_order_state(old)
    assert (st_new.status, st_new.order_id, st_new.price) == ("open", live.order_id, 38_800.0)
    assert (st_old.status, st_old.order_id) == ("cancelled", old_oid)
    assert [o.client_id for o in await gw.fetch_open_orders()] == [new]
    newer = new[:-1] + "2"
    oo2 = await gw.amend_order(new, 38_700.0, 0.03, newer)                 # qty changes too
    assert (oo2.client_id, oo2.qty) == (newer, 0.03) and stub.live_orders()[0].size == 0.03


async def test_amend_needs_a_fresh_new_client_id(stub, gw):
    await gw.place_order(entry(0, 39_000.0))
    await gw.place_order(entry(1, 38_000.0))
    with pytest.raises(OrderRejected, match="new client id"):
        await gw.amend_order(IDS(0, 0, "entry"), 38_900.0)
    with pytest.raises(OrderRejected):
        await gw.amend_order(IDS(0, 0, "entry"), 38_900.0, None, IDS(0, 0, "entry"))
    assert not stub.calls_to(S.MODIFY_ORDER)
    with pytest.raises(DuplicateClientId):                                  # 40786: newClientOid used before
        await gw.amend_order(IDS(0, 0, "entry"), 38_900.0, None, IDS(0, 1, "entry"))
    with pytest.raises(OrderNotFound):
        await gw.amend_order(IDS(0, 5, "entry"), 38_900.0, None, IDS(0, 5, "entry") + "a1")
    ex = await raw(stub)                                                    # Bitget: 22003 without newClientOid
    with pytest.raises(ccxt.ExchangeError) as e:
        await ex.privateMixPostV2MixOrderModifyOrder({"productType": "USDT-FUTURES", "symbol": "BTCUSDT",
                                                      "clientOid": IDS(0, 0, "entry"), "newSize": "0.01",
                                                      "newPrice": "38900"})
    await ex.close()
    assert "22003" in str(e.value) and type(map_error(e.value, op="amend")) is OrderRejected


async def test_partly_filled_entry_cannot_be_amended(stub, gw):
    req = entry(0, 39_000.0, qty=0.05)
    stub.partial[req.client_id] = 0.4
    await gw.place_order(req)
    stub.set_mark("BTCUSDT", 38_990.0)
    with pytest.raises(OrderRejected):
        await gw.amend_order(req.client_id, 38_500.0, None, req.client_id + "a1")
    assert stub.live_orders()[0].client_oid == req.client_id


async def test_amend_refused_in_one_way_mode_keeps_the_order(stub, gw):
    """One version of Bitget's modify-order page says size/price modification is hedge-mode only: the refusal
    is a typed OrderRejected and the old order stays live under its old id."""
    stub.modify_in_one_way = False
    await gw.place_order(entry(0, 39_000.0))
    with pytest.raises(OrderRejected):
        await gw.amend_order(IDS(0, 0, "entry"), 38_800.0, None, IDS(0, 0, "entry") + "a1")
    [live] = stub.live_orders()
    assert (live.client_oid, live.price) == (IDS(0, 0, "entry"), 39_000.0)
    assert (await gw.reconcile_order(IDS(0, 0, "entry") + "a1")) is None


async def test_amend_transport_failure_is_unknown_for_the_new_id(stub, gw):
    old, new = IDS(0, 0, "entry"), IDS(0, 0, "entry") + "a1"
    await gw.place_order(entry(0, 39_000.0))
    stub.add_fault(S.MODIFY_ORDER, hang_after_s=2.0)                       # re-created, answer too late
    with pytest.raises(OrderUnknown) as e:
        await gw.amend_order(old, 38_800.0, None, new)
    assert e.value.client_id == new
    st = await gw.reconcile_order(new)
    assert st is not None and st.status == "open" and st.price == 38_800.0
    assert stub.fault_counts["hang_after"] == 1


# ---------------------------------------------------------------- B: codes ccxt does not type
def bitget_exc(code: str, msg: str = "x") -> ccxt.ExchangeError:
    return ccxt.ExchangeError(f'bitget {{"code":"{code}","msg":"{msg}","requestTime":1,"data":null}}')


@pytest.mark.parametrize("code,op,cls", [
    ("40774", "create", PositionModeMismatch), ("22002", "create", NoPositionToClose),
    ("43023", "create", InsufficientPosition), ("43024", "create", StopAlreadyExists),
    ("45117", "setting", MarginModeLocked), ("22003", "amend", OrderRejected), ("22001", "cancel", OrderNotFound),
    ("40917", "amend", StopCrossed), ("45122", "create", StopCrossed),
    ("40786", "create", DuplicateClientId), ("40768", "read", OrderNotFound),
])
def test_codes_map_to_typed_errors(code, op, cls):
    err = map_error(bitget_exc(code), op=op, client_id="c1")
    assert type(err) is cls
    if cls is PositionModeMismatch:
        assert isinstance(err, OrderRejected) and isinstance(err, AccountModeError)


def test_transport_failures_by_operation():
    exc = ccxt.RequestTimeout("timed out")
    assert isinstance(map_error(exc, op="create", client_id="a"), OrderUnknown)
    err = map_error(exc, op="amend", client_id="new")
    assert isinstance(err, OrderUnknown) and err.client_id == "new"
    for op in ("read", "cancel", "setting"):
        assert type(map_error(exc, op=op)) is GatewayUnavailable
    assert isinstance(map_error(ccxt.DDoSProtection("429"), op="create", headers={"Retry-After": "2"}), RateLimited)


async def test_stand_in_uses_the_codes_like_bitget(stub, gw):
    ex = await raw(stub)
    with pytest.raises(ccxt.BaseError) as e:                               # a hedge-form order in one-way mode
        await ex.create_order(SYM, "market", "buy", 0.01, None, {"hedged": True, "marginMode": "isolated"})
    assert isinstance(map_error(e.value, op="create"), PositionModeMismatch)
    await gw.place_order(entry(0, 39_000.0))                               # an order: margin mode locked
    with pytest.raises(ccxt.BaseError) as e:
        await ex.set_margin_mode("cross", SYM, {"productType": "USDT-FUTURES"})
    assert isinstance(map_error(e.value, op="setting"), MarginModeLocked)
    await ex.close()


async def test_no_position_to_close_means_flat(stub, gw):
    await gw.place_order(entry(0, None))

    async def flattened_meanwhile(s, request):            # e.g. the stop triggered between the read and the close
        s.positions["BTCUSDT"] = S.Position()
        return await error("22002", "No position to close")(s, request)
    stub.add_fault(S.PLACE_ORDER, respond=flattened_meanwhile)
    assert await gw.close_position(IDS(0, -1, "exit"), 1, None, "tp") is None
    await gw.place_order(entry(1, None))
    stub.add_fault(S.PLACE_ORDER, respond=error("22002", "No position to close"))
    with pytest.raises(NoPositionToClose):                 # refused while the read says there is one: typed, not flat
        await gw.close_position(IDS(1, -1, "exit"), 1, None, "tp")


# ---------------------------------------------------------------- B: equity, one-way, fills pages
async def test_equity_includes_unrealised_pnl_and_balance_is_cash(stub, gw):
    await gw.place_order(entry(0, None, qty=0.1))                          # long 0.1 at 40000
    stub.set_mark("BTCUSDT", 41_000.0)
    ex = await raw(stub)
    res = await ex.privateMixGetV2MixAccountAccounts({"productType": "USDT-FUTURES"})
    await ex.close()
    [row] = res["data"]
    assert float(row["unrealizedPL"]) == pytest.approx(100.0)
    assert float(row["accountEquity"]) == pytest.approx(stub.balance + 100.0)
    assert await gw.fetch_balance() == pytest.approx(stub.balance)


def _trade(stub: BitgetPrivateStub, side: str, qty: float, price: float, reduce: bool = False) -> None:
    o = stub._new_order(f"manual{len(stub.orders)}", "BTCUSDT", side, "market", None, qty, reduce)
    stub._fill(o, qty, price)


async def test_fills_are_paged_newest_first_and_the_closing_fill_reads_enough_pages(stub, gw):
    _trade(stub, "buy", 0.15, 40_000.0)
    for i in range(150):                                          # 150 closing fills: two pages
        _trade(stub, "sell", 0.001, 39_000.0 + i, reduce=True)
    ex = await raw(stub)
    p = {"productType": "USDT-FUTURES", "symbol": "BTCUSDT"}
    first = (await ex.privateMixGetV2MixOrderFills(p))["data"]
    second = (await ex.privateMixGetV2MixOrderFills({**p, "idLessThan": first["endId"]}))["data"]
    small = (await ex.privateMixGetV2MixOrderFills({**p, "limit": "5"}))["data"]
    with pytest.raises(ccxt.BaseError):
        await ex.privateMixGetV2MixOrderFills({**p, "limit": "101"})
    await ex.close()
    ids = [int(t["tradeId"]) for t in first["fillList"] + second["fillList"]]
    assert len(first["fillList"]) == 100 and len(second["fillList"]) == 51 and ids == sorted(ids, reverse=True)
    assert first["endId"] == first["fillList"][-1]["tradeId"] and len(small["fillList"]) == 5
    got = await gw.fetch_closing_fill("buy", 0.15)
    assert got.qty == pytest.approx(0.15) and got.price == pytest.approx(39_074.5)
    assert got.fee == pytest.approx(sum(0.001 * (39_000.0 + i) * S.FEE_RATE for i in range(150)))
    assert got.ts == stub.now_ms and got.reason is None
    assert len(stub.calls_to(S.ORDER_FILLS)) == 4 + 2             # 4 raw + 2 pages for the gateway


# ---------------------------------------------------------------- C: malformed answers are typed, naming the field
async def _position(gw):
    return await gw.fetch_position()


async def _open_orders(gw):
    return await gw.fetch_all_open_orders()


@pytest.mark.parametrize("path,drop,set_,call_fn,call,field", [
    (S.SINGLE_POSITION, ("openPriceAvg",), None, _position, "single-position", "openPriceAvg"),
    (S.SINGLE_POSITION, ("total",), None, _position, "single-position", "total"),
    (S.SINGLE_POSITION, ("holdSide",), None, _position, "single-position", "holdSide"),
    (S.SINGLE_POSITION, (), {"total": "n/a"}, _position, "single-position", "total"),
    (S.ORDER_DETAIL, ("state",), None, lambda g: g.fetch_order_state(IDS(0, 0, "entry")), "detail", "state"),
    (S.ORDER_DETAIL, ("baseVolume",), None, lambda g: g.fetch_order_state(IDS(0, 0, "entry")), "detail", "baseVolume"),
    (S.ORDER_DETAIL, (), {"size": "abc"}, lambda g: g.fetch_order_state(IDS(0, 0, "entry")), "detail", "size"),
    (S.ORDER_DETAIL, (), {"priceAvg": ""}, lambda g: g.fetch_order_state(IDS(0, 0, "entry")), "detail", "priceAvg"),
    (S.ACCOUNTS, (), {"marginCoin": "BTC"}, lambda g: g.fetch_balance(), "accounts", "marginCoin"),
    (S.ACCOUNTS, ("accountEquity",), None, lambda g: g.fetch_balance(), "accounts", "accountEquity"),
    (S.ACCOUNTS, ("unrealizedPL",), None, lambda g: g.fetch_balance(), "accounts", "unrealizedPL"),
    (S.TICKER, ("markPrice",), None, lambda g: g.fetch_mark_price(), "ticker", "markPrice"),
    (S.TICKER, (), {"markPrice": "-1"}, lambda g: g.fetch_mark_price(), "ticker", "markPrice"),
    (S.PLAN_PENDING, ("triggerPrice",), None, lambda g: g.fetch_stop(), "orders-plan-pending", "triggerPrice"),
    (S.PLAN_PENDING, ("planType",), None, lambda g: g.fetch_stop(), "orders-plan-pending", "planType"),
    (S.ORDERS_PENDING, ("clientOid",), None, _open_orders, "orders-pending", "clientOid"),
    (S.ORDERS_PENDING, ("size",), None, _open_orders, "orders-pending", "size"),
    (S.ORDERS_PENDING, (), {"side": "up"}, _open_orders, "orders-pending", "side"),
    (S.ORDER_FILLS, ("feeDetail",), None, lambda g: g.fetch_closing_fill("buy", 0.02), "fills", "feeDetail"),
    (S.ORDER_FILLS, ("price",), None, lambda g: g.fetch_closing_fill("buy", 0.02), "fills", "price"),
    (S.ORDERS_HISTORY, ("status",), None, lambda g: g.fetch_order_history(0), "orders-history", "status"),
    (S.PLAN_HISTORY, ("planStatus",), None, lambda g: g.fetch_order_history(0), "orders-plan-history", "planStatus"),
])
async def test_malformed_answers_are_typed_naming_the_field(stub, gw, path, drop, set_, call_fn, call, field):
    await gw.place_order(entry(0, None, qty=0.02))             # a position, a filled order, fills
    await gw.place_order(entry(1, 30_000.0))                   # a resting order
    await gw.place_order(stop(35_000.0, 0.02))                 # a pos_loss
    ex = await raw(stub)                                       # a finished plan for the plan history
    await ex.privateMixPostV2MixOrderPlacePlanOrder({"productType": "USDT-FUTURES", "symbol": "BTCUSDT",
                                                     "marginCoin": "USDT", "planType": "normal_plan", "size": "0.01",
                                                     "side": "buy", "triggerPrice": "30000", "orderType": "market",
                                                     "clientOid": IDS(2, 3, "entry")})
    await ex.privateMixPostV2MixOrderCancelPlanOrder({"productType": "USDT-FUTURES", "symbol": "BTCUSDT",
                                                      "orderIdList": [{"clientOid": IDS(2, 3, "entry")}]})
    await ex.close()
    stub.malformed(path, drop=drop, set=set_, times=None)
    with pytest.raises(MalformedAnswer) as e:
        await call_fn(gw)
    assert (e.value.call, e.value.field) == (call, field)
    assert stub.fault_counts["malformed"] >= 1


@pytest.mark.parametrize("responder", [garbage(), garbage("[1, 2", status=200)])
async def test_an_answer_that_is_not_json_is_never_flat(stub, gw, responder):
    await gw.place_order(entry(0, None))
    stub.add_fault(S.SINGLE_POSITION, respond=responder, times=None)
    with pytest.raises(GatewayError):
        await gw.fetch_position()
    assert stub.fault_counts["garbage"] >= 1


async def test_start_with_a_malformed_account_answer_refuses(stub):
    stub.malformed(S.ACCOUNT, drop=("posMode",))
    with pytest.raises(MalformedAnswer, match="posMode"):
        await new_gw(stub)


# ---------------------------------------------------------------- D: preset stop-loss
async def test_preset_stop_becomes_a_loss_plan_of_the_filled_size(stub, gw):
    req = entry(0, 39_000.0, qty=0.05, preset_stop=37_000.0)
    stub.partial[req.client_id] = 0.4
    await gw.place_order(req)
    assert stub.calls_to(S.PLACE_ORDER)[0]["presetStopLossPrice"] == "37000"
    stub.set_mark("BTCUSDT", 38_990.0)                                     # 0.02 filled
    [plan] = stub.live_plans(plan_type="loss_plan")
    assert (plan.size, plan.trigger_price, plan.client_oid) == (0.02, 37_000.0, plan.order_id)
    assert stub.protected() and stub.longest_unprotected_s() == 0.0
    stub.set_mark("BTCUSDT", 38_980.0)                                     # the rest fills: the plan grows
    [plan] = stub.live_plans(plan_type="loss_plan")
    assert plan.size == pytest.approx(0.05) and stub.protected()
    _, foreign = await gw.fetch_all_open_orders()
    assert [(f["kind"], f["qty"], f["price"]) for f in foreign] == [("loss_plan", 0.05, 37_000.0)]
    stub.set_mark("BTCUSDT", 36_900.0)                                     # it triggers like a stop for its size
    assert stub.position().qty == 0 and not stub.live_plans()
    got = await gw.fetch_closing_fill("buy", 0.05)
    assert got.qty == pytest.approx(0.05) and got.price == 36_900.0


async def test_loss_plans_are_cancelled_when_the_position_goes_flat(stub, gw):
    await gw.place_order(entry(0, None, qty=0.02, preset_stop=37_000.0))
    assert stub.live_plans(plan_type="loss_plan")
    await gw.close_position(IDS(0, -1, "exit"), 1, None, "tp")
    assert not stub.live_plans()


async def test_drop_preset_stops_only_ours_and_only_under_the_whole_position_stop(stub, gw):
    await gw.place_order(entry(0, None, qty=0.02, preset_stop=37_000.0))
    await gw.place_order(entry(1, None, qty=0.01, preset_stop=36_000.0))
    ex = await raw(stub)                                                   # someone else's loss_plan
    await ex.privateMixPostV2MixOrderPlaceTpslOrder({"productType": "USDT-FUTURES", "symbol": "BTCUSDT",
                                                     "marginCoin": "USDT", "planType": "loss_plan", "size": "0.001",
                                                     "holdSide": "buy", "triggerPrice": "30000",
                                                     "clientOid": "manual-1"})
    await ex.close()
    with pytest.raises(OrderRejected, match="no whole-position stop"):
        await gw.drop_preset_stops()
    assert len(stub.live_plans(plan_type="loss_plan")) == 3
    await gw.place_order(stop(35_000.0, 0.03))
    gw2 = await new_gw(stub)                                               # a restarted process: no memory
    assert await gw2.drop_preset_stops() == 2
    assert [p.client_oid for p in stub.live_plans(plan_type="loss_plan")] == ["manual-1"]
    assert await gw.drop_preset_stops() == 0
    assert stub.protected()
    await gw2.close()


# ---------------------------------------------------------------- D: order history, order state ts
async def test_order_history_lists_ours_of_every_status_since(stub, gw):
    t0 = stub.now_ms
    stub.public.now_ms = t0 + 1000
    await gw.place_order(entry(0, None))                                   # filled
    await gw.place_order(entry(1, 38_000.0))                               # amended: cancelled + new open
    await gw.amend_order(IDS(0, 1, "entry"), 37_900.0, None, IDS(0, 1, "entry") + "a1")
    await gw.place_order(entry(2, 37_000.0))
    await gw.cancel_order(IDS(0, 2, "entry"))                              # cancelled
    await gw.place_order(stop(35_000.0, 0.01))                             # plan, open
    ex = await raw(stub)
    await ex.privateMixPostV2MixOrderPlaceOrder({"productType": "USDT-FUTURES", "symbol": "BTCUSDT",
                                                 "marginCoin": "USDT", "marginMode": "isolated", "size": "0.01",
                                                 "side": "buy", "orderType": "limit", "price": "30000",
                                                 "clientOid": "foreign-1"})
    await ex.close()
    stub.public.now_ms = t0 + 5000
    await gw.place_order(entry(3, 36_000.0, cycle=1))
    hist = {s.client_id: s for s in await gw.fetch_order_history(t0 + 1000)}
    assert {k: v.status for k, v in hist.items()} == {
        IDS(0, 0, "entry"): "filled", IDS(0, 1, "entry"): "cancelled", IDS(0, 1, "entry") + "a1": "open",
        IDS(0, 2, "entry"): "cancelled", IDS(0, -1, "stop"): "open", IDS(1, 3, "entry"): "open"}
    assert hist[IDS(0, -1, "stop")].purpose == "stop" and hist[IDS(0, -1, "stop")].qty is None
    assert hist[IDS(0, 1, "entry") + "a1"].level == 1 and hist[IDS(0, 0, "entry")].avg_price == 40_000.0
    assert {s.client_id for s in await gw.fetch_order_history(t0 + 5000)} == {IDS(1, 3, "entry")}
    st = await gw.fetch_order_state(IDS(0, 0, "entry"))
    assert st.ts == t0 + 1000


async def test_order_history_reads_every_page(stub, gw):
    for i in range(130):
        o = stub._new_order(IDS(i, 0, "entry"), "BTCUSDT", "buy", "limit", 30_000.0, 0.001, False)
        o.status = "canceled"
    hist = await gw.fetch_order_history(0)
    assert len(hist) == 130 and len(stub.calls_to(S.ORDERS_HISTORY)) == 2


async def test_a_list_longer_than_max_pages_is_refused(stub, gw, monkeypatch):
    import core.venues.bitget.gateway as G
    monkeypatch.setattr(G, "MAX_PAGES", 1)
    for i in range(101):
        stub._new_order(IDS(i, 0, "entry"), "BTCUSDT", "buy", "limit", 30_000.0, 0.001, False)
    with pytest.raises(GatewayError, match="pages"):
        await gw.fetch_all_open_orders()
    assert MAX_PAGES == 50


# ---------------------------------------------------------------- E: the protection log
async def test_protection_log_measures_unprotected_time(stub, gw):
    assert stub.longest_unprotected_s() == 0.0
    await gw.place_order(entry(0, None))                                   # no stop: unprotected from now
    await asyncio.sleep(0.05)
    assert not stub.protected()
    [(a, b, sym)] = stub.unprotected_intervals()
    assert sym == "BTCUSDT" and b - a >= 0.05                              # still open: ends now
    await gw.place_order(stop(37_000.0, 0.01))
    closed = stub.longest_unprotected_s()
    assert stub.protected() and 0.05 <= closed < 5.0
    await asyncio.sleep(0.02)
    assert stub.longest_unprotected_s() == closed                          # closed: no longer grows
    await gw.place_order(entry(1, None))                                   # the pos_loss covers the growth
    assert stub.protected() and len(stub.unprotected_intervals()) == 1
    events = [s.event for s in stub.protection_log]
    assert any(e.startswith("fill") for e in events) and any(e.startswith("place pos_loss") for e in events)


async def test_protection_counts_loss_plan_sizes(stub, gw):
    await gw.place_order(entry(0, None, qty=0.02, preset_stop=37_000.0))
    ex = await raw(stub)
    await ex.privateMixPostV2MixOrderPlaceOrder({"productType": "USDT-FUTURES", "symbol": "BTCUSDT",
                                                 "marginCoin": "USDT", "marginMode": "isolated", "size": "0.01",
                                                 "side": "buy", "orderType": "market", "clientOid": "plain-1"})
    await ex.close()
    assert stub.covered_qty() == pytest.approx(0.02) and not stub.protected()     # 0.03 held, 0.02 covered
    await gw.place_order(stop(36_000.0, 0.03))
    assert stub.protected() and len(stub.unprotected_intervals()) == 1


# ---------------------------------------------------------------- F: faults for the chaos soak
async def test_fault_kinds_are_counted(stub):
    g = await new_gw(stub, ReadRetry(2, 0.01, 0.02))
    stub.add_fault(S.SINGLE_POSITION, respond=hang(1.0))
    stub.add_fault(S.ORDERS_PENDING, respond=server_error())
    stub.add_fault(S.TICKER, respond=too_many(0.01))
    stub.add_fault(S.PLACE_ORDER, respond=error("40762", "The order amount exceeds the balance"))
    await g.fetch_position()                                               # hang past 300 ms, then retried
    await g.fetch_open_orders()
    await g.fetch_mark_price()
    with pytest.raises(OrderRejected):
        await g.place_order(entry(0, 39_000.0))
    req = entry(1, None, qty=0.05)
    stub.partial[req.client_id] = 0.5
    await g.place_order(req)
    assert {k: stub.fault_counts[k] for k in ("hang", "server_error", "too_many", "reject", "partial")} == \
        {"hang": 1, "server_error": 1, "too_many": 1, "reject": 1, "partial": 1}
    assert stub.position().qty == pytest.approx(0.025)
    await g.close()


async def test_exchange_restart_refuses_connections_then_comes_back_with_the_same_state(stub):
    g = await new_gw(stub, ReadRetry(8, 0.1, 0.2))
    await g.place_order(entry(0, None, qty=0.03))
    await g.place_order(stop(37_000.0, 0.03))
    port = stub.port
    once = await new_gw(stub, ReadRetry(1, 0.01, 0.01))
    down = asyncio.create_task(stub.restart(0.4))
    await asyncio.sleep(0.05)
    with pytest.raises(GatewayUnavailable):                               # refused while down, never "flat"
        await once.fetch_position()
    t = time.monotonic()
    pos = await g.fetch_position()                                         # retried until it is back
    await down
    assert time.monotonic() - t >= 0.2 and stub.port == port
    assert (pos.qty, pos.stop) == (0.03, 37_000.0) and stub.fault_counts["restart"] == 1
    await g.close()
    await once.close()
