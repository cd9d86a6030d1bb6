"""Fail closed, never silent: the live engine against the Bitget stand-in (real ccxt client,
127.0.0.1) on an operator's worst day — one test per finding of the issue that introduced the
one order path:

1. a malformed exchange answer (a position row without `openPriceAvg`) is a typed error; the
   between-candle protection loop survives it, says so, and still re-creates a vanished stop;
   an unexpected exception in the loop is logged, alerted critical, halts the runner (entries
   cancelled, stop kept) and the supervisor restarts the loop, which lifts the halt;
2. after `UnprotectedPosition` (stop refused, reduce-only close refused) the runner is halted at
   once: its resting entries are cancelled, the position cannot grow, the alert repeats, and
   the symbol's kill switch trips when the grace period passes;
3. a new database with the same client-id prefix: orders of the old one found in the venue's
   history refuse the start (exit 2) and say how to adopt them; adopted on purpose, the new
   database's ids never collide with the old ones and no phantom trade is booked;
4. a re-created stop and an emergency close are recorded before they are sent: a crash in
   flight is adopted at the restart, never refused nor advised to cancel the only stop;
5. 429s while re-sizing the stop never close the position while its previous stop is live, and
   the retries wait at least the venue's Retry-After;
6. the window from an entry fill to its stop, measured at every stand-in event, stays within 2 s.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from core.events.bus import AlertEvent, HealthEvent, KillSwitchEvent
from core.executor.client_ids import parse_client_id
from core.executor.grid_executor import STALE_STOP, UNPROTECTED
from core.executor.reconcile import AccountInUse
from core.executor.state_store import StateStore
from tests.engine.test_live_engine import assert_consistent, sent_client_ids
from tests.support.bitget_private_stub import (
    MODIFY_TPSL,
    PLACE_ORDER,
    PLACE_TPSL,
    SINGLE_POSITION,
    server_error,
    too_many,
)
from tests.support.live_harness import PREFIX, STUB_SYM, LiveHarness


class HoldingFeed:
    """A replay that, after its last candle, stays open (like a live feed between candles), so
    the engine keeps running its protection loop until the test stops it."""

    def __init__(self, inner, hold: asyncio.Event) -> None:
        self.inner = inner
        self.hold = hold
        self.symbol = inner.symbol
        self.timeframe = inner.timeframe
        self.live = False
        self.last_message_at = None

    async def stream(self, after_ts=None):
        async for ev in self.inner.stream(after_ts):
            yield ev
        await self.hold.wait()


def holding_engine(h: LiveHarness, candles=None):
    """The harness's live engine whose feed stays open after the candles (see HoldingFeed)."""
    eng = h.engine(candles)
    hold = asyncio.Event()
    src = eng.sources[0]
    make = src.make_feed
    src.make_feed = lambda after: HoldingFeed(make(after), hold)
    src.replay = False
    return eng, hold


async def wait_for(cond, timeout: float = 10.0, step: float = 0.01) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(step)


async def run_until_position(stub, h: LiveHarness, candles):
    """Trade `candles` (they end with a position open) with the candle-driven engine, then start
    a holding engine on the same database (no candle left to process) whose protection loop runs
    at the harness's intervals; returns (engine, hold event, runner)."""
    fast = (h.poll_interval_s, h.recheck_interval_s)
    h.poll_interval_s = h.recheck_interval_s = 3600
    await h.engine(candles).run()
    h.poll_interval_s, h.recheck_interval_s = fast
    assert abs(stub.position(STUB_SYM).qty) > 0 and stub.protected(STUB_SYM)
    eng, hold = holding_engine(h, candles)
    await eng.start()
    r = eng.runners[0]
    assert r.state == "ready" and r.book.qty > 0
    return eng, hold, r


async def crash(eng) -> None:
    """The process dies mid-request: every task is cancelled where it is (a request in flight
    gets no answer), nothing more is recorded, the database and its lock are let go."""
    await eng.supervisor.stop()
    eng.store.close()
    eng.store = None
    eng._lock.release()


def ours(stub) -> list:
    return [o for o in stub.live_orders(STUB_SYM) if parse_client_id(o.client_oid, PREFIX)]


def drain(sub) -> list:
    out = []
    while len(sub):
        out.append(sub.get_nowait())
    return out


# ---------------------------------------------------------------- finding 1
async def test_malformed_position_answer_never_kills_the_protection_loop(stub, candles, tmp_path):
    h = LiveHarness(stub, tmp_path / "live.db", candles.between(None, int(candles.ts[120])),
                    poll_interval_s=0.02, recheck_interval_s=0.05)
    eng, hold, r = await run_until_position(stub, h, h.candles)
    sub = eng.bus.subscribe([HealthEvent, AlertEvent])
    task = f"protect:{r.name}:{r.symbol}"
    stub.malformed(SINGLE_POSITION, drop=("openPriceAvg",), times=6)
    await wait_for(lambda: not stub.faults or all(f.hits >= f.times for f in stub.faults), 10)
    await asyncio.sleep(0.2)
    events = drain(sub)
    assert any(isinstance(e, HealthEvent) and e.state == "degraded" and "openPriceAvg" in e.detail
               for e in events), "the malformed answer must be said (health degraded naming the field)"
    st = eng.supervisor.tasks[task]
    assert st.state == "running" and st.failures == 0 and not eng.supervisor.stale(task, 0.5)
    # the loop still protects: a stop removed at the exchange afterwards is put back
    for p in stub.live_plans(STUB_SYM, "pos_loss"):
        p.status = "cancelled"
    await wait_for(lambda: stub.protected(STUB_SYM) and stub.live_plans(STUB_SYM, "pos_loss"), 10)
    await eng.stop()
    assert_consistent(stub, h.db)
    await h.close()


async def test_a_protection_loop_that_crashes_is_alerted_halts_the_runner_and_restarts(stub, candles, tmp_path):
    h = LiveHarness(stub, tmp_path / "live.db", candles.between(None, int(candles.ts[120])),
                    poll_interval_s=0.02, recheck_interval_s=0.05)
    eng, hold, r = await run_until_position(stub, h, h.candles)
    assert ours(stub), "needs resting entries"
    sub = eng.bus.subscribe([AlertEvent, HealthEvent])
    boom = {"n": 0}
    real_tick = r.tick

    async def tick():
        if boom["n"] < 2:
            boom["n"] += 1
            raise RuntimeError("a bug in the loop")
        await real_tick()
    r.tick = tick
    await wait_for(lambda: r.halted is not None, 5)
    assert r.halted.startswith("protection loop")
    await wait_for(lambda: not ours(stub), 5)                   # entries cancelled at the exchange
    events = drain(sub)
    assert any(isinstance(e, AlertEvent) and e.severity == "critical" and "RuntimeError" in e.title for e in events)
    assert any(isinstance(e, HealthEvent) and e.state == "down" for e in events)
    task = f"protect:{r.name}:{r.symbol}"
    await wait_for(lambda: eng.supervisor.tasks[task].restarts >= 2 and r.halted is None, 15)
    await eng.stop()
    assert_consistent(stub, h.db)
    await h.close()


# ---------------------------------------------------------------- finding 2
async def test_unprotected_position_halts_the_runner_and_trips_the_symbols_kill_switch(stub, candles, tmp_path):
    h = LiveHarness(stub, tmp_path / "live.db", candles.between(None, int(candles.ts[120])),
                    poll_interval_s=0.02, recheck_interval_s=0.05, unprotected_grace_s=0.5, stop_retries=2)
    eng, hold, r = await run_until_position(stub, h, h.candles)
    r.protection.backoff_s = 0.01
    sub = eng.bus.subscribe([AlertEvent, KillSwitchEvent])
    qty = abs(stub.position(STUB_SYM).qty)
    resting = [o.price for o in ours(stub)]
    assert resting, "needs resting entries below the market"
    stub.add_fault(PLACE_TPSL, respond=server_error(), times=None)     # the stop is refused
    stub.add_fault(PLACE_ORDER, respond=server_error(), times=None)    # and so is the reduce-only close
    for p in stub.live_plans(STUB_SYM):
        p.status = "cancelled"                                        # the stop vanished
    await wait_for(lambda: r.halted == UNPROTECTED, 10)
    await wait_for(lambda: not ours(stub), 5)                          # entries cancelled at once
    # the market goes through the old entry prices: the position cannot grow
    for px in sorted(resting, reverse=True):
        stub.set_mark(STUB_SYM, px * 0.999)
    assert abs(stub.position(STUB_SYM).qty) == pytest.approx(qty)
    await wait_for(lambda: r.symbol in eng.kill_switch.symbols, 10)
    await asyncio.sleep(0.2)
    events = drain(sub)
    repeated = [e for e in events if isinstance(e, AlertEvent) and "UNPROTECTED POSITION" in e.title]
    assert len(repeated) >= 2, "the alert repeats until the position is protected"
    assert any(isinstance(e, KillSwitchEvent) and e.active for e in events)
    assert eng.kill_switch.blocks(r.symbol) and not eng.kill_switch.active
    # the exchange works again: protected again (the stop placed, or the position closed at
    # market if the close went through first), the halt lifts, the symbol stays blocked
    stub.clear_faults()
    await wait_for(lambda: r.halted is None and stub.protected(STUB_SYM), 10)
    assert abs(stub.position(STUB_SYM).qty) in (pytest.approx(qty), 0.0)
    assert eng.kill_switch.blocks(r.symbol)
    await eng.stop()
    assert_consistent(stub, h.db)
    await h.close()


# ---------------------------------------------------------------- finding 3
async def test_a_new_database_refuses_the_old_ones_orders_and_never_books_phantom_trades(stub, candles, tmp_path):
    a = LiveHarness(stub, tmp_path / "a.db", candles.between(None, int(candles.ts[200])))
    await a.engine().run()
    old_ids = {o.client_oid for o in stub.orders.values() if parse_client_id(o.client_oid, PREFIX)}
    assert old_ids
    # the old engine is gone and its account flattened by hand: no open order of ours is left,
    # only the venue's history knows them (today's "another engine" check saw open orders only)
    for o in ours(stub):
        o.status = "canceled"
    for p in stub.live_plans(STUB_SYM):
        p.status = "cancelled"
    if stub.position(STUB_SYM).qty:
        stub.position(STUB_SYM).qty = 0.0
    b = LiveHarness(stub, tmp_path / "b.db", candles)
    before = len(stub.calls_to(PLACE_ORDER))
    with pytest.raises(AccountInUse) as err:
        await b.engine().run()
    msg = str(err.value)
    assert err.value.exit_code == 2 and "history" in msg and "--adopt-history" in msg
    assert len(stub.calls_to(PLACE_ORDER)) == before, "nothing may be sent before the refusal"
    # adopted on purpose: trades, with ids of its own epoch (never one of the old database's)
    balance0 = stub.balance
    b2 = LiveHarness(stub, tmp_path / "b.db", candles, adopt_history=True)
    eng = b2.engine()
    await eng.run()
    r = eng.runners[0]
    new_ids = {o.client_oid for o in stub.orders.values() if parse_client_id(o.client_oid, PREFIX)} - old_ids
    assert new_ids and not (new_ids & old_ids)
    assert {parse_client_id(c, PREFIX)[3] for c in new_ids} != {parse_client_id(c, PREFIX)[3] for c in old_ids}
    sent = sent_client_ids(stub)
    assert len(sent) == len(set(sent)), "a client id reached the exchange twice"
    # no phantom trade: the ledger's money moved exactly as the exchange's balance did
    assert r.cycles
    if stub.position(STUB_SYM).qty == 0:
        pnl = sum(c.pnl for c in r.cycles)
        assert abs((stub.balance - balance0) - pnl) < 0.01, (stub.balance - balance0, pnl)
    await a.close()
    await b2.close()


# ---------------------------------------------------------------- finding 4
async def test_a_crash_while_a_stop_is_recreated_is_adopted_at_the_restart(stub, candles, tmp_path):
    h = LiveHarness(stub, tmp_path / "live.db", candles.between(None, int(candles.ts[120])),
                    poll_interval_s=0.02, recheck_interval_s=0.05)
    eng, hold, r = await run_until_position(stub, h, h.candles)
    stub.add_fault(PLACE_TPSL, hang_after_s=5.0)                # the stop is created, the answer never comes
    for p in stub.live_plans(STUB_SYM, "pos_loss"):
        p.status = "cancelled"
    n0 = len(stub.calls_to(PLACE_TPSL))
    await wait_for(lambda: len(stub.calls_to(PLACE_TPSL)) > n0, 10)
    await asyncio.sleep(0.05)
    recreated = stub.calls_to(PLACE_TPSL)[-1]["clientOid"]
    await crash(eng)
    store = StateStore(h.db)
    try:
        row = store.order(recreated)
        assert row is not None and row["purpose"] == "stop", "the re-created stop was not recorded before it was sent"
    finally:
        store.close()
    stub.clear_faults()
    eng2 = h.engine(h.candles)
    await eng2.start()                                           # no AccountInUse: the stop is ours
    r2 = eng2.runners[0]
    assert r2.state == "ready"
    assert [p.client_oid for p in stub.live_plans(STUB_SYM, "pos_loss")] == [recreated]
    await eng2.stop()
    assert_consistent(stub, h.db)
    await h.close()


async def test_a_crash_during_an_emergency_close_is_recorded_at_the_restart(stub, candles, tmp_path):
    h = LiveHarness(stub, tmp_path / "live.db", candles.between(None, int(candles.ts[120])),
                    poll_interval_s=0.02, recheck_interval_s=0.05, stop_retries=1)
    eng, hold, r = await run_until_position(stub, h, h.candles)
    r.protection.backoff_s = 0.01
    stub.add_fault(PLACE_TPSL, respond=server_error(), times=None)
    stub.add_fault(PLACE_ORDER, hang_after_s=5.0)                # the close executes, the answer never comes
    for p in stub.live_plans(STUB_SYM):
        p.status = "cancelled"
    await wait_for(lambda: stub.position(STUB_SYM).qty == 0, 10)
    await asyncio.sleep(0.05)
    close_cid = stub.calls_to(PLACE_ORDER)[-1]["clientOid"]
    store = StateStore(h.db)
    try:
        row = store.order(close_cid)
        assert row is not None and row["purpose"] == "exit", "the emergency close was not recorded before it was sent"
    finally:
        store.close()
    await crash(eng)
    stub.clear_faults()
    eng2 = h.engine(h.candles)
    await eng2.start()
    r2 = eng2.runners[0]
    assert r2.state == "ready" and r2.book.qty == 0 and r2.cycles
    await eng2.stop()
    assert_consistent(stub, h.db)
    await h.close()


# ---------------------------------------------------------------- finding 5
async def test_429s_on_the_stop_never_close_the_position_while_its_stop_is_live(stub, candles, tmp_path):
    h = LiveHarness(stub, tmp_path / "live.db", candles.between(None, int(candles.ts[120])),
                    poll_interval_s=0.02, recheck_interval_s=0.05, stop_retries=3)
    eng, hold, r = await run_until_position(stub, h, h.candles)
    r.protection.backoff_s = 0.01
    stop0 = stub.live_plans(STUB_SYM, "pos_loss")[0]
    stop0_price = stop0.trigger_price
    qty0 = abs(stub.position(STUB_SYM).qty)
    nxt = max((o for o in ours(stub)), key=lambda o: o.price)    # the next level below the market
    times: list[float] = []
    limited = too_many(0.3)

    async def timed(stub_, request):
        times.append(time.monotonic())
        return await limited(stub_, request)
    stub.add_fault(MODIFY_TPSL, respond=timed, times=4)
    closes0 = len([c for c in stub.calls_to(PLACE_ORDER) if c.get("reduceOnly") == "YES"])
    stub.set_mark(STUB_SYM, nxt.price * 0.999)                  # the next level fills: the stop must be re-sized
    await wait_for(lambda: r.halted == STALE_STOP, 10)
    assert abs(stub.position(STUB_SYM).qty) > qty0               # still open, never closed at market
    assert len([c for c in stub.calls_to(PLACE_ORDER) if c.get("reduceOnly") == "YES"]) == closes0
    assert stop0.status == "live"
    await wait_for(lambda: r.halted is None, 10)                 # the 429s end: re-sized, halt lifted
    assert stub.protected(STUB_SYM) and stub.live_plans(STUB_SYM, "pos_loss")[0].trigger_price != stop0_price
    assert len(times) == 4 and min(b - a for a, b in zip(times, times[1:])) >= 0.29, times
    await eng.stop()
    assert_consistent(stub, h.db)
    await h.close()


# ---------------------------------------------------------------- finding 6
async def test_the_fill_to_stop_window_is_measured_at_every_stand_in_event(stub, candles, tmp_path):
    h = LiveHarness(stub, tmp_path / "live.db", candles)
    eng = h.engine()
    await eng.run()
    worst = stub.longest_unprotected_s(STUB_SYM)
    fills = sum(1 for f in eng.runners[0].book.fills if f.kind == "entry")
    print(f"\nlongest time a position was without an exchange-side stop: {worst * 1000:.1f} ms "
          f"over {len(stub.protection_log)} stand-in events, {fills} entry fills")
    assert fills >= 10 and len(stub.protection_log) > 1000
    assert worst <= 2.0
    assert_consistent(stub, h.db)
    await h.close()
