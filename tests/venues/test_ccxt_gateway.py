"""CcxtGateway + Protection: the real ccxt bitget async client against tests/support/bitget_private_stub.py
(127.0.0.1 only, dummy keys), with injected faults. Every fault ends consistent and protected."""

from __future__ import annotations

import pytest

from core.config.exchanges import ExchangeConfig
from core.data.download import override_api_urls
from core.executor.client_ids import ClientIds
from core.executor.protection import Protection
from core.model.errors import AccountModeError, GatewayUnavailable, OrderRejected, OrderUnknown, StopCrossed
from core.model.orders import OrderRequest
from core.venues.bitget.gateway import CcxtGateway, ReadRetry, make_exchange
from tests.support.bitget_private_stub import (
    ORDER_DETAIL,
    ORDERS_PENDING,
    PLACE_ORDER,
    PLACE_TPSL,
    SINGLE_POSITION,
    BitgetPrivateStub,
    error,
    server_error,
    too_many,
)

SYM = "BTC/USDT:USDT"
IDS = ClientIds("rdr1", "grid", SYM)


def cfg(**kw) -> ExchangeConfig:
    base = dict(id="bitget", market_type="swap", sandbox=False, uta=False, rate_limit_ms=0, client_order_prefix="rdr1",
                timeouts={"request_ms": 300, "order_ack_ms": 100})
    base.update(kw)
    return ExchangeConfig(**base)


async def no_sleep(s: float) -> None:
    return None


async def new_gw(stub: BitgetPrivateStub, **kw) -> CcxtGateway:
    ex = make_exchange(cfg(**kw), "key", "secret", "pass")
    override_api_urls(ex, stub.base_url)
    gw = CcxtGateway(cfg(**kw), SYM, ex, leverage=5, read_retry=ReadRetry(4, 0.01, 0.05))
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


def entry(level: int, price: float | None, cycle: int = 0) -> OrderRequest:
    return OrderRequest(IDS(cycle, level, "entry"), SYM, "entry", "buy", price, level)


class Alerts(list):
    def __call__(self, level: str, msg: str) -> None:
        self.append((level, msg))


# ---------------------------------------------------------------- start-up
async def test_start_sets_leverage_mode_and_product_type(stub, gw):
    assert gw.started and stub.leverage["BTCUSDT"] == 5 and stub.margin_mode == "isolated"
    assert gw.ex.options["uta"] is False
    priv = [c for c in stub.calls if c.path.startswith("/api/v2/mix/account") or "/order/" in c.path]
    assert priv and all(c.params.get("productType") == "USDT-FUTURES" for c in priv)


async def test_wrong_position_mode_is_refused(stub):
    stub.pos_mode = "hedge_mode"
    with pytest.raises(AccountModeError, match="one-way"):
        await new_gw(stub)


async def test_wrong_margin_mode_that_cannot_be_changed_is_refused(stub):
    stub.margin_mode, stub.margin_mode_locked = "crossed", True
    ex = make_exchange(cfg(), "k", "s", "p")
    override_api_urls(ex, stub.base_url)
    g = CcxtGateway(cfg(), SYM, ex, leverage=5)
    with pytest.raises(AccountModeError, match="margin mode 'crossed'"):
        await g.start()
    with pytest.raises(AccountModeError):
        await g.place_order(entry(0, 39_000.0), qty=0.01)
    assert not stub.calls_to(PLACE_ORDER)
    await g.close()


async def test_uta_is_stated_and_refused(stub):
    ex = make_exchange(cfg(uta=True), "k", "s", "p")
    override_api_urls(ex, stub.base_url)
    g = CcxtGateway(cfg(uta=True), SYM, ex)
    assert ex.options["uta"] is True
    with pytest.raises(AccountModeError, match="uta"):
        await g.start()
    await g.close()


# ---------------------------------------------------------------- orders
async def test_limit_entry_fill_stop_amend_and_open_orders(stub, gw):
    prot = Protection(gw, Alerts(), sleep=no_sleep)
    await gw.place_order(entry(0, 39_000.0), qty=0.01)
    await gw.place_order(entry(1, 38_000.0), qty=0.02)
    o = stub.calls_to(PLACE_ORDER)[0]
    assert o["marginMode"] == "isolated" and o["clientOid"] == IDS(0, 0, "entry") and o["orderType"] == "limit"
    stub.set_mark("BTCUSDT", 38_900.0)
    pos = await gw.fetch_position()
    assert (pos.side, pos.qty, pos.avg_entry, pos.stop) == ("long", 0.01, 39_000.0, None)
    r = await prot.ensure_stop(IDS(0, -1, "stop"), 37_000.0, IDS(0, -1, "exit"))
    assert r.outcome == "protected" and r.qty == 0.01
    tpsl = stub.calls_to(PLACE_TPSL)[0]
    assert tpsl["planType"] == "pos_loss" and tpsl["holdSide"] == "buy" and tpsl["triggerPrice"] == "37000"
    stub.set_mark("BTCUSDT", 37_900.0)           # level 1 fills
    r = await prot.ensure_stop(IDS(0, -1, "stop"), 37_500.0, IDS(0, -1, "exit"))
    assert r.outcome == "protected"
    [plan] = stub.live_plans()
    assert plan.trigger_price == 37_500.0 and plan.size == pytest.approx(0.03)
    await gw.place_order(OrderRequest(IDS(0, -1, "take_profit"), SYM, "take_profit", "sell", 41_000.0,
                                      reduce_only=True), qty=0.03)
    oo = {o.client_id: o for o in await gw.fetch_open_orders()}
    assert oo[IDS(0, -1, "stop")].price == 37_500.0 and oo[IDS(0, -1, "take_profit")].price == 41_000.0
    assert not stub.calls_to(PLACE_ORDER)[2:]           # the take-profit is client-side
    kinds = {c["planType"] for c in stub.calls_to("/api/v2/mix/order/orders-plan-pending")}
    assert kinds >= {"normal_plan", "profit_loss", "track_plan"}
    fill = await gw.close_position(IDS(0, -1, "exit"), 1, None, "tp")
    assert fill.qty == pytest.approx(0.03) and fill.pos_qty == 0 and stub.position().qty == 0
    assert not stub.live_plans()                     # the exchange dropped the stop with the position


async def test_order_rejected_is_typed(stub, gw):
    stub.add_fault(PLACE_ORDER, respond=error("40762", "The order amount exceeds the balance"))
    with pytest.raises(OrderRejected):
        await gw.place_order(entry(0, 39_000.0), qty=0.01)
    assert not stub.live_orders()


async def test_timeout_on_create_is_unknown_then_found_without_duplicate(stub, gw):
    stub.add_fault(PLACE_ORDER, hang_after_s=2.0)           # created at the stub, answer too late
    req = entry(0, 39_000.0)
    with pytest.raises(OrderUnknown):
        await gw.place_order(req, qty=0.01)
    assert len(stub.live_orders()) == 1
    oo = await gw.place_order(req, qty=0.01)                # looks it up first: adopts, no re-send
    assert oo.client_id == req.client_id
    assert len(stub.calls_to(PLACE_ORDER)) == 1 and len(stub.live_orders()) == 1
    assert stub.calls_to(ORDER_DETAIL)[-1]["clientOid"] == req.client_id


async def test_restart_while_a_level_is_being_opened_adopts_it(stub, gw):
    stub.add_fault(PLACE_ORDER, hang_after_s=2.0)
    req = entry(2, 38_500.0)
    with pytest.raises(OrderUnknown):
        await gw.place_order(req, qty=0.01)
    await gw.close()
    gw2 = await new_gw(stub)                                  # "restart"
    st = await gw2.reconcile_order(req.client_id)
    assert st is not None and st.status == "open" and st.level == 2 and st.qty == 0.01
    assert [o.client_id for o in await gw2.fetch_open_orders()] == [req.client_id]
    assert len(stub.calls_to(PLACE_ORDER)) == 1
    assert await gw2.reconcile_order(IDS(0, 3, "entry")) is None    # never sent: safe to send
    await gw2.close()


async def test_500_and_429_on_reads_are_retried_never_flat(stub, gw):
    await gw.place_order(entry(0, None), qty=0.01)           # market: filled at the mark
    stub.add_fault(SINGLE_POSITION, respond=server_error(), times=2)
    stub.add_fault(ORDERS_PENDING, respond=too_many(0.01), times=1)
    pos = await gw.fetch_position()
    assert pos.qty == 0.01
    await gw.fetch_open_orders()
    stub.add_fault(SINGLE_POSITION, respond=server_error(), times=None)
    with pytest.raises(GatewayUnavailable):
        await gw.fetch_position()                               # exhausted: raises, never qty 0
    stub.clear_faults()
    stub.add_fault(SINGLE_POSITION, respond=too_many(0.01), times=None)
    with pytest.raises(GatewayUnavailable):
        await gw.fetch_position()


async def test_partial_fill_reports_qty_and_sizes_stop(stub, gw):
    req = entry(0, 39_000.0)
    stub.partial[req.client_id] = 0.4
    await gw.place_order(req, qty=0.05)
    stub.set_mark("BTCUSDT", 38_950.0)
    st = await gw.fetch_order_state(req.client_id)
    assert st.status == "open" and st.filled == pytest.approx(0.02) and st.qty == 0.05
    [oo] = [o for o in await gw.fetch_open_orders() if o.purpose == "entry"]
    assert oo.qty == pytest.approx(0.03)
    r = await Protection(gw, Alerts(), sleep=no_sleep).ensure_stop(IDS(0, -1, "stop"), 37_000.0, IDS(0, -1, "exit"))
    assert r.outcome == "protected" and r.qty == pytest.approx(0.02)
    assert stub.live_plans()[0].size == pytest.approx(0.02)


async def test_stop_failing_repeatedly_closes_at_market_and_alerts(stub, gw):
    await gw.place_order(entry(0, None), qty=0.01)
    stub.add_fault(PLACE_TPSL, respond=server_error(), times=None)
    alerts = Alerts()
    r = await Protection(gw, alerts, attempts=3, sleep=no_sleep).ensure_stop(IDS(0, -1, "stop"), 37_000.0,
                                                                            IDS(0, -1, "exit"))
    assert r.outcome == "closed" and r.fill.qty == 0.01 and stub.position().qty == 0
    assert alerts and alerts[-1][0] == "critical"
    assert len(stub.calls_to(PLACE_TPSL)) == 3


async def test_stop_already_crossed_closes_at_market(stub, gw):
    await gw.place_order(entry(0, None), qty=0.01)           # long at 40000
    alerts = Alerts()
    with pytest.raises(StopCrossed):
        await gw.place_order(OrderRequest("rdr1-x", SYM, "stop", "sell", 40_500.0), qty=0.01)
    r = await Protection(gw, alerts, sleep=no_sleep).ensure_stop(IDS(0, -1, "stop"), 40_500.0, IDS(0, -1, "exit"))
    assert r.outcome == "closed" and stub.position().qty == 0
    assert alerts[-1][0] == "critical" and "crossed" in alerts[-1][1]


async def test_verify_stops_recreates_a_missing_stop(stub, gw):
    await gw.place_order(entry(0, None), qty=0.01)
    prot = Protection(gw, Alerts(), sleep=no_sleep)
    await prot.ensure_stop(IDS(0, -1, "stop"), 37_000.0, IDS(0, -1, "exit"))
    assert await prot.verify_stops() is None                  # in place: nothing to do
    stub.live_plans()[0].status = "cancelled"                 # someone removed it
    r = await prot.verify_stops()
    assert r.outcome == "protected"
    [plan] = stub.live_plans()
    assert plan.trigger_price == 37_000.0 and plan.size == 0.01 and plan.client_oid.startswith(IDS(0, -1, "stop"))
    assert stub.position().qty == 0.01
