"""Operator control per runner on the LIVE engine (the real ccxt client against the Bitget stand-in,
`tests.support.live_harness`): the pause gates entries in the executor shared with paper, so no
entry order reaches the exchange after it while the position keeps its exchange-side stop; a
force-exit closes at market with its reason; parameters apply only when flat."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from core.engine.api import EngineAPI
from tests.engine.test_live_engine import assert_consistent
from tests.support.live_harness import STUB_SYM, SYM, LiveHarness


def entry_orders(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM trading_orders WHERE purpose='entry'").fetchone()[0]
    finally:
        conn.close()


async def test_live_pause_sends_no_entry_after_it_and_keeps_the_stop(stub, candles, tmp_path: Path) -> None:
    h = LiveHarness(stub, tmp_path / "live.db", candles)
    eng = h.engine()
    api = EngineAPI(eng)
    seen: dict = {}

    def pause_when_in_position(ev) -> None:
        r = eng.runners[0] if eng.runners else None
        if not seen and r is not None and r.book.qty > 0 and r.executor.orders and r.state == "ready":
            seen["entries"] = entry_orders(h.db)
            seen["candle"] = ev.ts
            seen["task"] = asyncio.get_running_loop().create_task(api.pause("test", SYM, reason="live test"))

    eng.feed_listeners.append(pause_when_in_position)
    await eng.run()
    assert seen, "the run never had a position with resting entries"
    res = await seen["task"]
    r = eng.runners[0]
    # the pause lands while the candle is processed: its entries are cancelled by the pause itself or,
    # no longer wanted, by that candle's order sync; either way none stays open and none is sent again
    assert res["paused"] and r.pause_info["by"] == "test"
    assert entry_orders(h.db) == seen["entries"], "no entry order recorded (nor sent) after the pause"
    conn = sqlite3.connect(h.db)
    assert conn.execute("SELECT COUNT(*) FROM trading_orders WHERE purpose='entry' AND status IN ('open', "
                        "'pending')").fetchone()[0] == 0
    conn.close()
    assert not [o for o in stub.live_orders(STUB_SYM) if "-e" in o.client_oid]       # none rests at the exchange
    assert h.unprotected == [], "the position kept its exchange-side stop at every candle"
    assert_consistent(stub, h.db)
    await h.close()


async def test_live_forceexit_and_params_when_flat(stub, candles, tmp_path: Path) -> None:
    h = LiveHarness(stub, tmp_path / "live.db", candles.between(None, int(candles.ts[200])))
    eng = h.engine()
    api = EngineAPI(eng)
    done: dict = {}

    async def act() -> None:
        r = eng.runners[0]
        done["pending"] = await api.apply_params("test", SYM, {"envelope_start": 0.07})
        done["exit"] = await api.flatten("test", SYM, strategy="envelope_dca")
        done["flat_after_exit"] = r.is_flat()

    def when_in_position(ev) -> None:
        r = eng.runners[0] if eng.runners else None
        if not done and r is not None and r.book.qty > 0 and r.state == "ready":
            done["task"] = asyncio.get_running_loop().create_task(act())

    eng.feed_listeners.append(when_in_position)
    await eng.run()
    assert done, "the run never had a position"
    await done["task"]
    r = eng.runners[0]
    assert done["pending"]["state"] == "pending" and done["exit"]["flattened"] == 1
    assert any(c.exit_reason == "forceexit" for c in r.cycles)
    assert r.strategy.params["envelope_start"] == 0.07 and r.pending_params is None    # applied once flat
    assert h.unprotected == []
    assert_consistent(stub, h.db)
    await h.close()
