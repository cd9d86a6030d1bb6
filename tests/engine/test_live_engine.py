"""The live engine (Engine mode "live": LiveRunner -> LiveGridExecutor -> CcxtGateway) against
the Bitget v2 mix stand-in on 127.0.0.1, with the real ccxt bitget client, real BTC 1h
candles walking the stand-in's mark price, and injected faults. Every run must end with:

* the store consistent with the exchange: the ledger's position = the exchange's, the
  entries the store has open = our live orders at the exchange, the ledger's cash = the
  exchange's balance (fees as reported), no client id sent twice;
* at every candle boundary, no position at the exchange without a pos_loss stop sized to it.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from core.engine.api import EngineAPI
from core.events.bus import ReconcileEvent
from core.executor.client_ids import parse_client_id
from core.executor.reconcile import AccountInUse
from core.executor.state_store import StateStore
from tests.support.bitget_private_stub import (
    MODIFY_ORDER,
    ORDER_DETAIL,
    PLACE_ORDER,
    PLACE_TPSL,
    SINGLE_POSITION,
    BitgetPrivateStub,
    Position,
    error,
    hang,
    server_error,
    too_many,
)
from tests.support.live_harness import PREFIX, STUB_SYM, LiveHarness


def sent_client_ids(stub: BitgetPrivateStub) -> list[str]:
    """Every client id of ours the stand-in was asked to create: placed orders and the new ids of
    amended ones (Bitget re-creates an amended order under `newClientOid`)."""
    ids = [c.get("clientOid") for c in stub.calls_to(PLACE_ORDER)]
    ids += [c.get("newClientOid") for c in stub.calls_to(MODIFY_ORDER)]
    return [c for c in ids if c and parse_client_id(c, PREFIX)]


def assert_consistent(stub: BitgetPrivateStub, db: Path, runner=None) -> None:
    """The store, the ledger and the exchange agree (module docstring)."""
    store = StateStore(db)
    try:
        rid = store.runners()[0]["id"]
        st = store.load_state(rid)
        grid = st["grid"]["book"]
        pos = stub.position(STUB_SYM)
        assert math.isclose(grid["qty"], abs(pos.qty), rel_tol=1e-9, abs_tol=1e-12), (grid["qty"], pos.qty)
        ours = {o.client_oid for o in stub.live_orders(STUB_SYM) if parse_client_id(o.client_oid, PREFIX)}
        stored_open = {r["client_id"] for r in store.orders_by_status(rid, ("open",)) if r["purpose"] == "entry"}
        assert ours == stored_open
        assert not store.orders_by_status(rid, ("pending",))
        assert not store.pending_intents(rid)
        if pos.qty == 0:
            assert math.isclose(grid["cash"], stub.balance, rel_tol=0, abs_tol=0.01), (grid["cash"], stub.balance)
        # every recorded open position carries its stop
        rows = store.conn.execute("SELECT qty, stop, stop_client_id FROM trading_positions WHERE runner_id=?",
                                  (rid,)).fetchall()
        assert all(s is not None and c for q, s, c in rows if q > 0)
    finally:
        store.close()
    sent = sent_client_ids(stub)
    accepted = [o.client_oid for o in stub.orders.values() if parse_client_id(o.client_oid, PREFIX)]
    assert len(accepted) == len(set(accepted)), "a client id reached the exchange twice"
    assert set(accepted) <= set(sent)


async def test_live_replay_trades_protected_and_consistent(stub, candles, tmp_path):
    h = LiveHarness(stub, tmp_path / "live.db", candles)
    eng = h.engine()
    await eng.run()
    r = eng.runners[0]
    assert r.state == "ready"
    assert len(r.cycles) >= 5 and {c.exit_reason for c in r.cycles} >= {"tp"}
    assert h.checked == len(candles) and h.unprotected == []
    assert any(f.kind == "entry" for f in r.book.fills)
    assert_consistent(stub, h.db)
    # the ledger's money is the exchange's, to the cent (fees as the exchange reported them)
    assert stub.position(STUB_SYM).qty != 0 or abs(r.book.cash - stub.balance) < 0.01
    await h.close()


@pytest.mark.parametrize("fault", ["transport_after_create", "transport_before_create"])
async def test_restart_while_a_level_is_being_opened(stub, candles, tmp_path, fault):
    """The engine dies while a grid level's order is in flight; the restart adopts it (it was
    created) or re-sends it once (it was not), never twice."""
    h = LiveHarness(stub, tmp_path / "live.db", candles)
    skip = 4
    if fault == "transport_after_create":
        stub.add_fault(PLACE_ORDER, hang_after_s=3.0, skip=skip)
    else:
        stub.add_fault(PLACE_ORDER, respond=hang(3.0), skip=skip)
    eng = h.engine()
    task = asyncio.create_task(eng.run())
    for _ in range(600):
        await asyncio.sleep(0.01)
        if len(stub.calls_to(PLACE_ORDER)) > skip:
            break
    inflight = stub.calls_to(PLACE_ORDER)[skip]["clientOid"]
    await asyncio.sleep(0.05)
    task.cancel()                                    # the crash: mid-request
    with pytest.raises(asyncio.CancelledError):
        await task
    stub.clear_faults()
    store = StateStore(h.db)
    assert store.order(inflight)["status"] == "pending"
    assert [i["client_id"] for i in store.pending_intents(store.runners()[0]["id"])] == [inflight]
    store.close()

    eng2 = h.engine()
    sub = eng2.bus.subscribe([ReconcileEvent])
    await eng2.run()
    actions = {}
    while len(sub):
        ev = sub.get_nowait()
        actions.setdefault(ev.action, []).append(ev.client_id)
    want = "adopted" if fault == "transport_after_create" else "never_sent"
    assert inflight in actions.get(want, []), actions
    assert sum(1 for o in stub.orders.values() if o.client_oid == inflight) == 1
    assert h.unprotected == []
    assert_consistent(stub, h.db)
    await h.close()


@pytest.mark.parametrize("path,respond,times", [
    (ORDER_DETAIL, server_error(), 3),
    (ORDER_DETAIL, too_many(0.01), 2),
    (SINGLE_POSITION, server_error(), 6),
    (PLACE_ORDER, server_error(), 2),
    (PLACE_ORDER, error("40762", "The order amount exceeds the balance"), 1),
    (PLACE_TPSL, server_error(), 2),
    (PLACE_ORDER, hang(1.0), 1),              # timeout before the exchange took it: looked up, re-sent once
    (ORDER_DETAIL, hang(1.0), 2),             # read timeouts: retried, never "flat"
])
async def test_faults_end_consistent_and_protected(stub, candles, tmp_path, path, respond, times):
    h = LiveHarness(stub, tmp_path / "live.db", candles)
    stub.add_fault(path, respond=respond, skip=3, times=times)
    eng = h.engine()
    await eng.run()
    assert eng.error is None
    assert h.unprotected == []
    assert len(eng.runners[0].cycles) >= 3
    assert_consistent(stub, h.db)
    await h.close()


class PartialByOrder(dict):
    """`stub.partial` keyed by (purpose, level, cycle) of our client ids, whatever the database
    epoch and amendment suffix of the id the stand-in sees when the order is touched."""

    def pop(self, key, default=None):
        parsed = parse_client_id(key, PREFIX)
        k = None if parsed is None else parsed[:3]
        return dict.pop(self, k) if k in self else default


async def test_partial_fill_is_recorded_and_the_stop_sized_to_it(stub, candles, tmp_path):
    h = LiveHarness(stub, tmp_path / "live.db", candles)
    eng = h.engine()
    # the first entry of cycle 0 fills half when first touched, the rest on a later touch
    stub.partial = PartialByOrder({("entry", 0, 0): 0.5})
    await eng.run()
    store = StateStore(h.db)
    rows = store.conn.execute("SELECT client_id, seq, qty FROM trading_fills WHERE kind='entry' ORDER BY id").fetchall()
    store.close()
    first = [r for r in rows if parse_client_id(r[0], PREFIX)[:3] == ("entry", 0, 0)]
    assert [r[1] for r in first][:2] == [0, 1], first         # two fills of one order: seq 0, then 1
    assert stub.fault_counts["partial"] == 1
    assert h.unprotected == []
    assert_consistent(stub, h.db)
    await h.close()


async def test_unplaceable_stop_closes_at_market_with_a_critical_alert(stub, candles, tmp_path):
    h = LiveHarness(stub, tmp_path / "live.db", candles, stop_retries=2)
    stub.add_fault(PLACE_TPSL, respond=server_error(), times=None)
    eng = h.engine()
    await eng.run()
    r = eng.runners[0]
    assert r.cycles and all(c.exit_reason == "unprotected" for c in r.cycles)
    assert any(lvl == "critical" and "closed at market" in msg for lvl, msg in h.alerts)
    assert h.unprotected == [] and stub.position(STUB_SYM).qty == 0
    assert_consistent(stub, h.db)
    await h.close()


async def test_second_engine_on_the_account_is_refused(stub, candles, tmp_path):
    h = LiveHarness(stub, tmp_path / "a.db", candles.between(None, int(candles.ts[60])))
    await h.engine().run()
    assert any(o.client_oid.startswith(PREFIX) for o in stub.live_orders(STUB_SYM)), "needs resting entries"
    other = LiveHarness(stub, tmp_path / "b.db", candles)
    with pytest.raises(AccountInUse, match="another radar engine"):
        await other.engine().run()
    await h.close()
    await other.close()


async def test_external_position_blocks_the_runner(stub, candles, tmp_path):
    stub.positions[STUB_SYM] = Position(qty=0.25, avg=float(candles.open[0]))
    h = LiveHarness(stub, tmp_path / "live.db", candles.between(None, int(candles.ts[100])))
    eng = h.engine()
    await eng.run()
    r = eng.runners[0]
    assert r.state == "blocked" and "external" in r.state_reason
    assert not [c for c in stub.calls_to(PLACE_ORDER)]
    assert any(lvl == "critical" for lvl, _ in h.alerts)
    await h.close()


async def test_kill_switch_cancels_live_entries_and_keeps_the_stop(stub, candles, tmp_path):
    h = LiveHarness(stub, tmp_path / "live.db", candles)
    eng = h.engine()
    api = EngineAPI(eng)
    killed = {}

    def kill_when_in_position(ev) -> None:
        if not killed and eng.runners and eng.runners[0].book.qty > 0 and eng.runners[0].executor.orders:
            killed["task"] = asyncio.get_running_loop().create_task(api.kill("test", flatten=False))

    eng.feed_listeners.append(kill_when_in_position)
    await eng.run()
    assert killed, "the run never had a position with resting entries"
    res = await killed["task"]
    assert res["active"] and eng.kill_switch.active
    assert not eng.runners[0].executor.orders
    assert h.unprotected == []
    # after the kill no entry rests at the exchange (none was sent again)
    assert not [o for o in stub.live_orders(STUB_SYM) if "-e" in o.client_oid]
    assert_consistent(stub, h.db)
    await h.close()


async def test_cli_live_setup_drives_the_engine(stub, candles, tmp_path):
    """The `radar run --live` wiring (`live_plan`, `_live_setup`: one shared ccxt client behind a
    circuit breaker, the exchanges.yaml prefix, risk.yaml stop settings) trades through the stub."""
    import shutil

    import yaml

    from core.config import load_config
    from core.config.secrets import Secrets
    from core.data.download import override_api_urls
    from core.engine.assembly import live_plan
    from core.engine.assembly import live_setup as _live_setup
    from core.paths import DEFAULT_CONFIG_DIR

    cfg_dir = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, cfg_dir)
    doc = yaml.safe_load((cfg_dir / "strategies.yaml").read_text())
    doc["strategies"]["envelope_dca"]["live_eligible"] = True
    (cfg_dir / "strategies.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    cfg = load_config(cfg_dir)
    assert live_plan(cfg, Secrets())["missing_keys"] == ["BITGET_API_KEY", "BITGET_API_SECRET",
                                                         "BITGET_API_PASSPHRASE"]
    secrets = Secrets(bitget_api_key="k", bitget_api_secret="s", bitget_api_passphrase="p")
    plan = live_plan(cfg, secrets)
    assert plan["strategies"] == ["envelope_dca"] and "DOGE/USDT" not in plan["symbols"]
    assert "BTC/USDT:USDT" in plan["symbols"] and not plan["missing_keys"]
    setup = _live_setup(cfg, secrets, plan, 1)
    assert setup.id_prefix == cfg.exchanges["bitget"].client_order_prefix
    assert setup.stop_retries == cfg.risk.stops.placement_retries
    made = []

    def factory(symbol):
        gw = setup.gateway_factory(symbol)
        gw.ex.set_sandbox_mode(False)
        override_api_urls(gw.ex, stub.base_url)
        gw.ex.enableRateLimit = False        # exchanges.yaml paces 100 ms/request: too slow for a test
        made.append(gw)
        return gw

    h = LiveHarness(stub, tmp_path / "live.db", candles.between(None, int(candles.ts[120])))
    h.gateway = factory
    eng = h.engine()
    eng.live.id_prefix = setup.id_prefix
    await eng.run()
    assert made and made[0].breaker is not None and eng.runners[0].state == "ready"
    assert stub.calls_to(PLACE_ORDER) and all(parse_client_id(c["clientOid"], setup.id_prefix)
                                              for c in stub.calls_to(PLACE_ORDER) if "clientOid" in c)
    assert h.unprotected == []
    await made[0].close()


async def test_missing_stop_is_recreated_on_restart_and_on_the_interval(stub, candles, tmp_path):
    """A stop removed at the exchange (by hand, or lost) is put back: at the restart's
    reconciliation, and by the periodic check while running."""
    first = candles.between(None, int(candles.ts[120]))        # ends with a position open
    h = LiveHarness(stub, tmp_path / "live.db", first)
    await h.engine().run()
    assert stub.position(STUB_SYM).qty != 0
    for p in stub.live_plans(STUB_SYM, "pos_loss"):
        p.status = "cancelled"                                 # the stop vanished while the engine was down
    eng = h.engine()
    sub = eng.bus.subscribe([ReconcileEvent])
    await eng.start()
    actions = []
    while len(sub):
        actions.append(sub.get_nowait().action)
    assert "stop_replaced" in actions
    stops = stub.live_plans(STUB_SYM, "pos_loss")
    assert len(stops) == 1 and abs(stops[0].size - abs(stub.position(STUB_SYM).qty)) < 1e-9
    # while running: the periodic check re-creates it under a fresh client id
    stops[0].status = "cancelled"
    r = eng.runners[0]
    await r.verify_stops()
    again = stub.live_plans(STUB_SYM, "pos_loss")
    assert len(again) == 1 and again[0].client_oid != stops[0].client_oid
    assert again[0].client_oid.startswith(stops[0].client_oid.rstrip("0123456789").rstrip("r"))
    await eng.stop()
    assert_consistent(stub, h.db)
    eng3 = h.engine()                    # the re-created stop is ours: no "another engine" refusal
    await eng3.start()
    assert eng3.runners[0].state == "ready"
    await eng3.stop()
    await h.close()


async def test_ticker_touching_the_take_profit_closes_at_market(stub, candles, tmp_path):
    h = LiveHarness(stub, tmp_path / "live.db", candles.between(None, int(candles.ts[120])))
    await h.engine().run()                                     # ends with a position open
    eng = h.engine()
    await eng.start()
    r = eng.runners[0]
    tp = r.executor.take_profit
    assert r.book.qty > 0 and math.isfinite(tp)
    await r.on_ticker(tp * 0.99)                               # not touched: nothing happens
    assert stub.position(STUB_SYM).qty != 0
    stub.set_mark(STUB_SYM, tp * 1.001)
    await r.on_ticker(tp * 1.001)
    assert stub.position(STUB_SYM).qty == 0
    assert r.cycles[-1].exit_reason == "tp" and r.book.qty == 0
    await eng.stop()
    assert_consistent(stub, h.db)
    await h.close()


async def test_stop_outs_are_recorded_at_the_exchanges_fills(stub, candles, tmp_path):
    """A tight stop: the exchange stops the position out several times, filling at the mark that
    crossed the trigger (slippage). The ledger reads the closing fills back, so its cash is the
    exchange's balance to the cent."""
    h = LiveHarness(stub, tmp_path / "live.db", candles, params={"sl_percent": 0.03})
    eng = h.engine()
    await eng.run()
    r = eng.runners[0]
    stops = [c for c in r.cycles if c.exit_reason == "sl"]
    assert len(stops) >= 3
    assert stub.position(STUB_SYM).qty == 0
    assert abs(r.book.cash - stub.balance) < 0.01, (r.book.cash, stub.balance)
    assert h.unprotected == []
    assert_consistent(stub, h.db)
    await h.close()
