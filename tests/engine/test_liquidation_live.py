"""liquidation on paper from the live stream: a RECORDED stream replayed through the live code path.

The stream is generated deterministically here (small, no file): 5m candles of a random walk
with a few liquidation cascades (a large candle after which the open interest drops), and,
after every candle, the snapshot bitget's `fetch_open_interest` answered when that candle
closed (ccxt's open-interest structure, stamped a few hundred ms after the close). Replayed
event by event: the candle goes to the paper `SingleStrategyRunner`; the snapshot comes from a
ccxt-like exchange serving the recording to `OpenInterestRecorder.on_candle_closed` (the
code the engine runs live), which stores it and feeds the runner's signal stream. The paper
run must equal the event backtest on the same candles and the stored series.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import ccxt.async_support as ccxt
import numpy as np
import pytest

from core.backtest.single_driver import run_single_backtest
from core.data.download import RetryPolicy
from core.data.liquidation_stream import OpenInterestRecorder
from core.engine.single_runner import SingleStrategyRunner
from core.errors import RadarError
from core.executor.kill_switch import KillSwitch
from core.executor.state_store import StateStore
from core.model.account import Account
from core.model.candles import Candles
from core.storage.db import open_sync
from core.storage.open_interest_store import load_open_interest
from core.strategies import registry

SYM = "BTC/USDT:USDT"
M5 = 300_000
T0 = 1_743_465_600_000          # 2025-04-01 00:00 UTC
P = dict(oi_period=1, oi_drop_threshold=0.01, move_atr=1.5, atr_period=14, sl_atr=1.5, tp_atr=2.0,
         max_hold_candles=6)
FAST = RetryPolicy(attempts=2, base_delay_s=0.0, max_delay_s=0.0)


def recorded_stream(n: int = 400, seed: int = 5) -> tuple[np.ndarray, list[dict]]:
    """(candle rows (n, 6) [ts, o, h, l, c, v], the n snapshots polled at each candle's close)."""
    rng = np.random.default_rng(seed)
    cascades = set(range(40, n, 37))
    rows, snaps = [], []
    price, oi = 80_000.0, 120_000.0
    for j in range(n):
        o = price
        r = rng.normal(0.0, 0.0015)
        if j in cascades:
            r = (-1 if j % 2 else 1) * rng.uniform(0.008, 0.015)
        c = o * (1.0 + r)
        h = max(o, c) * (1.0 + abs(rng.normal(0.0, 0.0007)))
        lo = min(o, c) * (1.0 - abs(rng.normal(0.0, 0.0007)))
        rows.append([T0 + j * M5, o, h, lo, c, float(rng.uniform(50, 150))])
        oi *= 1.0 + rng.normal(0.0, 0.001) - (rng.uniform(0.015, 0.03) if j in cascades else 0.0)
        snaps.append({"symbol": SYM, "openInterestAmount": round(oi, 4), "openInterestValue": None,
                      "timestamp": T0 + (j + 1) * M5 + int(rng.integers(150, 900)), "info": {}})
        price = c
    return np.asarray(rows, dtype=np.float64), snaps


class RecordedExchange:
    """Serves the recorded snapshots to `fetch_open_interest`, one per poll; `fail` = poll
    numbers (0-based) answered with an exchange error instead."""

    id = "bitget"

    def __init__(self, snaps: list[dict], fail: set[int] = frozenset()) -> None:
        self.snaps = snaps
        self.fail = fail
        self.polls = 0

    async def fetch_open_interest(self, symbol: str) -> dict:
        k = self.polls
        self.polls += 1
        if k in self.fail:
            raise ccxt.ExchangeError("bitget {\"code\":\"40034\",\"msg\":\"recorded failure\"}")
        return dict(self.snaps[k])


def replay(db: Path, rows: np.ndarray, snaps: list[dict], fail: set[int] = frozenset()):
    """The recorded stream through the live path; returns (runner, recorder, conn)."""
    conn = open_sync(db)
    store = StateStore(db)
    now = [0]
    rec = OpenInterestRecorder(RecordedExchange(snaps, fail), SYM, "5m", conn, retry=FAST, clock=lambda: now[0])
    r = SingleStrategyRunner("liquidation", P, SYM, "5m", Account(), store, KillSwitch(store), None,
                             funding=rec.value_at)

    async def run() -> None:
        for row in rows.tolist():
            await r.on_candle(int(row[0]), *row[1:])
            now[0] = int(row[0]) + M5 + 400            # the candle just closed (the recording's clock)
            await rec.on_candle_closed(int(row[0]))
        await r.finish()

    asyncio.run(run())
    return r, rec, conn


def test_recorded_stream_on_paper_equals_the_backtest_of_the_stored_series(tmp_path: Path) -> None:
    rows, snaps = recorded_stream()
    r, rec, conn = replay(tmp_path / "paper.db", rows, snaps)
    ts, oi = load_open_interest(conn, SYM)
    # every snapshot stored, stamped with its candle boundary (the next candle's open)
    assert ts.tolist() == [int(t) + M5 for t in rows[:, 0]]
    assert oi.tolist() == [s["openInterestAmount"] for s in snaps]
    candles = Candles.from_rows(SYM, "futures", "5m", rows)
    bt = run_single_backtest(candles, registry.create("liquidation", P), Account(), funding=(ts, oi))
    assert len(bt.cycles) >= 6 and {c.side for c in bt.cycles} == {"long", "short"}
    assert r.cycles == bt.cycles
    assert r.book.cash == bt.final_equity
    st_ts, eq = r.store.load_equity(r.runner_id)
    assert st_ts == bt.ts.tolist() and eq == bt.equity.tolist()
    # entries open right after a cascade candle
    cascade_opens = {T0 + (j + 1) * M5 for j in range(40, 400, 37)}
    assert {c.open_time for c in bt.cycles} <= cascade_opens
    conn.close()
    r.store.close()


def test_a_failed_poll_is_a_gap_no_entry_on_a_stale_open_interest(tmp_path: Path) -> None:
    rows, snaps = recorded_stream()
    first = run_single_backtest(Candles.from_rows(SYM, "futures", "5m", rows), registry.create("liquidation", P),
                                Account(), funding=(rows[:, 0].astype(np.int64) + M5,
                                                    np.array([s["openInterestAmount"] for s in snaps])))
    j = (first.cycles[0].open_time - T0) // M5 - 1      # the cascade candle whose close gave the first entry
    r, rec, conn = replay(tmp_path / "gap.db", rows, snaps, fail={j})
    stamp = T0 + (j + 1) * M5
    assert rec.gaps == 1 and math.isnan(rec.value_at(stamp)) and not math.isnan(rec.value_at(stamp + M5))
    assert stamp not in load_open_interest(conn, SYM)[0].tolist()       # the gap is not stored
    assert first.cycles[0].open_time not in {c.open_time for c in r.cycles}   # no entry on it
    assert len(r.cycles) >= len(first.cycles) - 1
    # a candle reported a timeframe late (a catch-up burst) is not polled: no stale stamp
    late = OpenInterestRecorder(RecordedExchange(snaps), SYM, "5m", None, clock=lambda: T0 + 3 * M5 - 1)
    assert asyncio.run(late.on_candle_closed(T0)) is None and late.exchange.polls == 0
    assert asyncio.run(late.on_candle_closed(T0 + M5))[0] == T0 + 2 * M5 and late.exchange.polls == 1
    conn.close()
    r.store.close()


def test_the_runner_refuses_liquidation_without_its_series(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "r.db")
    with pytest.raises(RadarError, match="open interest"):
        SingleStrategyRunner("liquidation", {}, SYM, "5m", Account(), store, KillSwitch(store))
    store.close()


def test_the_engine_hook_polls_after_each_candle_of_its_symbol_and_closes_at_shutdown() -> None:
    from types import SimpleNamespace

    from core.engine.assembly import _attach_recorder

    rows, snaps = recorded_stream(n=5)
    closed = []

    class Ex(RecordedExchange):
        async def close(self) -> None:
            closed.append(True)

    rec = OpenInterestRecorder(Ex(snaps), SYM, "5m", None, retry=FAST, clock=lambda: T0 + 2 * M5)
    engine = SimpleNamespace(candle_hooks=[])
    src = SimpleNamespace(timeframe="5m", aclose=None)
    _attach_recorder(engine, src, rec)
    (hook,) = engine.candle_hooks
    mine = SimpleNamespace(symbol=SYM, timeframe="5m")
    other = SimpleNamespace(symbol="ETH/USDT:USDT", timeframe="5m")

    async def run() -> None:
        hook(other, T0, 1.0, 1.0, 1.0, 1.0)
        hook(mine, T0, 1.0, 1.0, 1.0, 1.0)
        hook(mine, T0, 1.0, 1.0, 1.0, 1.0)        # a second runner on the symbol: one poll
        await asyncio.sleep(0.01)
        await src.aclose()

    asyncio.run(run())
    assert rec.exchange.polls == 1 and rec.ts == [T0 + M5] and closed == [True]


def test_restart_mid_stream_resumes_exactly(tmp_path: Path) -> None:
    """Stopped after 200 candles and restarted (stored runner state, signal stream included, and
    the recorder warmed up from the stored open interest): the same trades and equity."""
    rows, snaps = recorded_stream()
    db = tmp_path / "restart.db"
    now = [0]

    async def feed(r, rec, part) -> None:
        for row in part.tolist():
            await r.on_candle(int(row[0]), *row[1:])
            now[0] = int(row[0]) + M5 + 400
            await rec.on_candle_closed(int(row[0]))

    ex = RecordedExchange(snaps)
    conn = open_sync(db)
    store = StateStore(db)
    rec = OpenInterestRecorder(ex, SYM, "5m", conn, retry=FAST, clock=lambda: now[0])
    r = SingleStrategyRunner("liquidation", P, SYM, "5m", Account(), store, KillSwitch(store), None,
                             funding=rec.value_at)
    asyncio.run(feed(r, rec, rows[:200]))
    store.close()
    store = StateStore(db)
    rec = OpenInterestRecorder(ex, SYM, "5m", conn, initial=load_open_interest(conn, SYM), retry=FAST,
                               clock=lambda: now[0])
    r = SingleStrategyRunner("liquidation", P, SYM, "5m", Account(), store, KillSwitch(store), None,
                             funding=rec.value_at)
    assert r.restore([tuple(x) for x in rows[:200].tolist()]) is True

    async def rest() -> None:
        await feed(r, rec, rows[200:])
        await r.finish()

    asyncio.run(rest())
    ts, oi = load_open_interest(conn, SYM)
    bt = run_single_backtest(Candles.from_rows(SYM, "futures", "5m", rows), registry.create("liquidation", P),
                             Account(), funding=(ts, oi))
    assert r.cycles == bt.cycles and r.book.cash == bt.final_equity
    assert any(c.open_time < T0 + 200 * M5 for c in bt.cycles) and any(c.open_time > T0 + 200 * M5 for c in bt.cycles)
    conn.close()
    store.close()


def test_a_malformed_snapshot_is_a_gap_too() -> None:
    """An answer the client library itself cannot read (not an exchange error: ccxt's own parser
    raising on a changed format) is a gap like a failed poll: no sample, no entry on the stale
    one before it."""

    class Garbled(RecordedExchange):
        async def fetch_open_interest(self, symbol: str) -> dict:
            self.polls += 1
            raise KeyError("openInterest")           # ccxt's parse of an answer in a new format

    rec = OpenInterestRecorder(Garbled([]), SYM, "5m", None, retry=FAST, clock=lambda: T0 + 2 * M5)
    stamp, value = asyncio.run(rec.on_candle_closed(T0 + M5))
    assert stamp == T0 + 2 * M5 and math.isnan(value) and rec.gaps == 1 and math.isnan(rec.value_at(stamp))
