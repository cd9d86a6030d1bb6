"""The allocation's drawdown halts tripped on real data (issue 14): BTC and ETH 1h spot over the
crash of May 2021, envelope_dca (grid) and supertrend (single position), equal policy (a
replay keeps the whole capital per runner). The strategy's halt closes its entry gate and
cancels its resting entries (no cycle of it opens afterwards) while its open cycle keeps its
stop / take-profit; the account's halt trips the kill switch without flattening; both are
CRITICAL in the log and alerted. Also: the replay's candles reach the runners in time order."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from core.data.feed import ClosedCandle
from core.engine.replay_order import ReplayTimeOrder
from tests.risk.test_allocation_replay import allocation_config, run_replay
from tests.support.shared_data import shared_file

HALT_MS = int(datetime(2021, 5, 19, 12, tzinfo=timezone.utc).timestamp() * 1000)   # the ETH stop-out of the crash


def test_drawdown_halts_new_cycles_on_the_may_2021_crash(tmp_path: Path, caplog) -> None:
    cfg = allocation_config(tmp_path, enable=("envelope_dca", "supertrend"), policy="equal",
                            max_drawdown_strategy=0.05, max_drawdown_account=0.06)
    files = [shared_file(f"binance-spot/{s}_USDT-1h.json.gz") for s in ("BTC", "ETH")]
    with caplog.at_level("INFO"):
        db = run_replay(tmp_path, cfg, files, "2021-05-10", "2021-05-25")
    conn = sqlite3.connect(db)
    try:
        state = json.loads(conn.execute("SELECT state FROM allocation_state").fetchone()[0])
        kill = conn.execute("SELECT active, flatten, actor, reason FROM kill_switch").fetchone()
        cycles = conn.execute("SELECT r.strategy, r.symbol, c.open_time, c.close_time, c.exit_reason FROM "
                              "trading_cycles c JOIN trading_runners r ON r.id = c.runner_id").fetchall()
    finally:
        conn.close()
    assert state["halted_at"]["envelope_dca"] == HALT_MS
    assert "max_drawdown_strategy is 5.00%" in state["halted"]["envelope_dca"]
    assert state["trackers"]["envelope_dca"][0] / state["trackers"]["envelope_dca"][1] <= 0.95   # still below the limit
    env = [c for c in cycles if c[0] == "envelope_dca"]
    assert env and all(c[2] <= HALT_MS for c in env)                   # no envelope_dca cycle opened after it
    kept = [c for c in env if c[2] <= HALT_MS < c[3]]                  # open at the halt: kept its exits
    assert kept and all(c[4] in ("tp", "sl", "end") for c in kept), kept
    # the account's halt (same candle): the kill switch, no flattening, actor allocation; it stays
    # until an operator resumes even when the drawdown recovers
    assert kill[0] == 1 and kill[1] == 0 and kill[2] == "allocation" and "max_drawdown_account" in kill[3]
    assert "2021-05-19 12:00:00 UTC" in kill[3]
    assert all(c[2] <= HALT_MS for c in cycles)                        # no cycle of any strategy after it
    critical = [r.getMessage() for r in caplog.records if r.levelname == "CRITICAL"]
    assert any("ALLOCATION HALT: strategy envelope_dca" in m for m in critical)
    assert any("kill switch tripped (no flattening)" in m for m in critical)
    assert not any("flatten" in c[4] or c[4] == "kill" for c in cycles)


def _c(sym: str, ts: int) -> ClosedCandle:
    return ClosedCandle(sym, "1h", ts, 1.0, 1.0, 1.0, 1.0, 0.0, "replay")


def test_replay_candles_are_released_in_time_order() -> None:
    order = ReplayTimeOrder({("A", "1h"): 3, ("B", "1h"): 2, ("C", "1h"): None})
    got = []
    for ev in [_c("A", 1), _c("A", 2), _c("A", 3), _c("B", 1), _c("B", 2), "other"]:
        got += order.push(ev)
    names = [(e.symbol, e.ts) if isinstance(e, ClosedCandle) else e for e in got]
    assert names == [("A", 1), ("B", 1), ("A", 2), ("B", 2), ("A", 3), "other"]
    assert order.flush() == []
    # nothing is released before every unfinished series delivered; a resumed, finished series is ended
    order = ReplayTimeOrder({("A", "1h"): 5, ("B", "1h"): 9}, start_after={("A", "1h"): 5})
    assert [e.ts for e in order.push(_c("B", 7))] == [7]
    order = ReplayTimeOrder({("A", "1h"): 5, ("B", "1h"): 9})
    assert order.push(_c("B", 7)) == [] and [e.ts for e in order.flush()] == [7]


def test_time_order_does_not_depend_on_the_interleaving() -> None:
    import random

    series = {("A", "1h"): list(range(0, 50, 1)), ("B", "1h"): list(range(0, 50, 2)), ("C", "1h"): [3, 40]}
    want = None
    for seed in range(5):
        rng = random.Random(seed)
        queues = {k: list(v) for k, v in series.items()}
        order = ReplayTimeOrder({k: v[-1] for k, v in series.items()})
        out = []
        while any(queues.values()):
            k = rng.choice([k for k, q in queues.items() if q])
            for _ in range(rng.randint(1, 7)):
                if queues[k]:
                    out += order.push(_c(k[0], queues[k].pop(0)))
        out += order.flush()
        seq = [(e.ts, e.symbol) for e in out]
        assert seq == sorted(seq, key=lambda x: (x[0], "ABC".index(x[1])))
        want = want or seq
        assert seq == want


def test_a_stopped_replay_resumes_to_the_same_allocation(tmp_path: Path) -> None:
    """Stopped mid-way (state persisted, no end-of-data exits) and started again on the same
    database, a shared-account replay ends with the rebalances, transfers and cash of one run."""
    import asyncio

    from core.config import load_config
    from core.engine.assembly import RunOptions, build_engine
    from tests.risk.test_allocation_replay import _ms

    cfg = load_config(allocation_config(tmp_path, policy="risk_parity", lookback_days=8, min_history_days=4))
    files = tuple(shared_file(f"binance-spot/{s}_USDT-1h.json.gz") for s in ("BTC", "ETH", "SOL"))
    opts = dict(replay=files, start_ms=_ms("2021-01-01"), end_ms=_ms("2021-01-14"), status_interval=0)

    def run(db: Path, stop_after: int | None = None) -> bool:
        engine = build_engine(cfg, RunOptions(db=db, **opts))
        seen = [0]

        def listener(ev) -> None:
            seen[0] += isinstance(ev, ClosedCandle)
            if stop_after is not None and seen[0] == stop_after:
                engine.request_stop()

        engine.feed_listeners.append(listener)
        asyncio.run(engine.run())
        return engine.finished

    def outcome(db: Path) -> tuple:
        conn = sqlite3.connect(db)
        try:
            return (conn.execute("SELECT ts_ms, runner, weight, target, capital FROM allocation_weights "
                                 "ORDER BY ts_ms, runner").fetchall(),
                    conn.execute("SELECT ts_ms, runner, amount, cash_after, pool_after FROM allocation_transfers "
                                 "ORDER BY id").fetchall(),
                    sorted(json.loads(g)["book"]["cash"] for (g,) in conn.execute("SELECT grid FROM trading_state")))
        finally:
            conn.close()

    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    assert run(tmp_path / "one" / "r.db")
    assert not run(tmp_path / "two" / "r.db", stop_after=500)
    assert run(tmp_path / "two" / "r.db")
    whole, resumed = outcome(tmp_path / "one" / "r.db"), outcome(tmp_path / "two" / "r.db")
    assert whole[1], "no transfer: the test proves nothing"
    assert resumed == whole
