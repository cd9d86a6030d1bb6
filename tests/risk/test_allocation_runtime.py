"""The Allocator (issue 14): capital moves only between cycles, through the unallocated pool,
persisted with the runner's state (a restart resumes it); the equal policy never moves cash;
a strategy's drawdown closes its runners' entry gates (loud), transfers do not count as loss."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.config.allocation import AllocationConfig
from core.events.bus import AlertEvent, EventBus
from core.executor.kill_switch import KillSwitch
from core.executor.state_store import StateStore
from core.model.account import Account
from core.risk.allocation_runtime import HALT_PREFIX, Allocator
from core.risk.allocation_store import last_weights, transfers
from core.strategies.base import CandleHistory

H = 3_600_000
DAY = 24 * H


class FakeRunner:
    """What the Allocator reads of a runner: identity, cursor, history, book, executor gate,
    equity, lock, venue, `is_flat`, `_save`."""

    def __init__(self, name: str, symbol: str, cash: float) -> None:
        self.name, self.symbol, self.timeframe = name, symbol, "1h"
        self.cursor = None
        self.history = CandleHistory()
        self.book = SimpleNamespace(cash=cash, side=None)
        self.executor = SimpleNamespace(paused=None, orders={})
        self.account = Account(initial_capital=cash)
        self.equity_last = cash
        self.day_start_equity = cash
        self.lock = asyncio.Lock()
        self.venue = SimpleNamespace(external=False, engine=SimpleNamespace(cash=cash))
        self.in_cycle = False
        self.pause_info = None
        self.saves = 0

    def is_flat(self) -> bool:
        return not self.in_cycle

    def _save(self) -> None:
        self.saves += 1

    def _pause_text(self) -> str:
        return "paused by operator"

    async def cancel_entries(self) -> int:
        self.cancelled = getattr(self, "cancelled", 0) + 1
        return 2


def _cfg(**kw) -> AllocationConfig:
    base = dict(policy="fixed", rebalance_interval_h=24, weights={"BTC/USDT": 0.7, "ETH/USDT": 0.3})
    base.update(kw)
    return AllocationConfig(**base)


def _candle(alloc: Allocator, r: FakeRunner, ts: int) -> None:
    r.cursor = ts
    asyncio.run(alloc.after_candle(r, ts))


def test_capital_moves_only_between_cycles_through_the_pool(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "a.db")
    try:
        a, b = FakeRunner("envelope_dca", "BTC/USDT", 5000.0), FakeRunner("envelope_dca", "ETH/USDT", 5000.0)
        b.in_cycle = True
        alloc = Allocator(_cfg(), [a, b], store, KillSwitch(store), EventBus(), shared=True)
        alloc.start()
        t0 = 100 * DAY
        _candle(alloc, a, t0)
        _candle(alloc, b, t0)
        assert alloc.targets == {"envelope_dca@BTC/USDT@1h": pytest.approx(7000.0),
                                 "envelope_dca@ETH/USDT@1h": pytest.approx(3000.0)}
        # A is flat but the pool is empty; B is in a cycle: it keeps its capital
        assert (a.book.cash, b.book.cash, alloc.pool) == (5000.0, 5000.0, 0.0)
        assert transfers(store.conn) == []
        _candle(alloc, b, t0 + H)
        assert b.book.cash == 5000.0                           # still in its cycle
        b.in_cycle = False                                     # the cycle ended
        _candle(alloc, b, t0 + 2 * H)
        assert b.book.cash == pytest.approx(3000.0) and b.venue.engine.cash == pytest.approx(3000.0)
        assert alloc.pool == pytest.approx(2000.0) and b.saves == 1
        _candle(alloc, a, t0 + 2 * H)                          # A's next flat moment: it takes the pool
        assert a.book.cash == pytest.approx(7000.0) and a.venue.engine.cash == pytest.approx(7000.0)
        assert a.equity_last == pytest.approx(7000.0) and alloc.pool == pytest.approx(0.0)
        assert alloc.pending == set()
        moves = transfers(store.conn)
        assert [(m["runner"], round(m["amount"], 6)) for m in moves] == [
            ("envelope_dca@ETH/USDT@1h", -2000.0), ("envelope_dca@BTC/USDT@1h", 2000.0)]
        w = last_weights(store.conn)
        assert w["ts_ms"] == t0 and w["weights"] == {"envelope_dca@BTC/USDT@1h": 0.7, "envelope_dca@ETH/USDT@1h": 0.3}
        # no second rebalance inside the interval, one when both runners entered the next one
        _candle(alloc, a, t0 + DAY)
        assert alloc.last_rebalance_ms == t0                   # B has not reached the next interval yet
        _candle(alloc, b, t0 + DAY)
        assert alloc.last_rebalance_ms == t0 + DAY
    finally:
        store.close()


def test_a_restart_resumes_the_pool_and_the_pending_targets(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    store = StateStore(db)
    a, b = FakeRunner("envelope_dca", "BTC/USDT", 5000.0), FakeRunner("envelope_dca", "ETH/USDT", 5000.0)
    a.in_cycle = True
    alloc = Allocator(_cfg(), [a, b], store, KillSwitch(store), EventBus(), shared=True)
    alloc.start()
    _candle(alloc, a, 10 * DAY)
    _candle(alloc, b, 10 * DAY)                                # B releases 2000; A still in its cycle
    assert alloc.pool == pytest.approx(2000.0)
    store.close()
    store = StateStore(db)
    try:
        again = Allocator(_cfg(), [a, b], store, KillSwitch(store), EventBus(), shared=True)
        again.start()
        assert again.pool == pytest.approx(2000.0) and again.pending == {"envelope_dca@BTC/USDT@1h"}
        a.in_cycle = False
        _candle(again, a, 10 * DAY + H)
        assert a.book.cash == pytest.approx(7000.0) and again.pool == pytest.approx(0.0)
    finally:
        store.close()


def test_equal_never_moves_cash_and_records_one_over_n(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "a.db")
    try:
        rs = [FakeRunner("envelope_dca", s, 10_000.0) for s in ("BTC/USDT", "ETH/USDT", "SOL/USDT")]
        rs[0].equity_last = 14_000.0
        alloc = Allocator(_cfg(policy="equal", weights={}), rs, store, KillSwitch(store), EventBus(), shared=False)
        alloc.start()
        for day in range(3):
            for r in rs:
                _candle(alloc, r, (50 + day) * DAY)
        assert [r.book.cash for r in rs] == [10_000.0] * 3 and alloc.pool == 0.0
        assert transfers(store.conn) == []
        w = last_weights(store.conn)
        assert w["ts_ms"] == 52 * DAY and list(w["weights"].values()) == pytest.approx([1 / 3] * 3, abs=1e-15)
        assert set(w["targets"].values()) == {10_000.0}          # a replay keeps the whole capital per runner
    finally:
        store.close()


def test_strategy_drawdown_halts_its_new_cycles_loudly_and_transfers_are_no_loss(tmp_path: Path, caplog) -> None:
    store = StateStore(tmp_path / "a.db")
    bus = EventBus()
    sub = bus.subscribe((AlertEvent,))
    try:
        a, b = FakeRunner("envelope_dca", "BTC/USDT", 5000.0), FakeRunner("grid_atr", "ETH/USDT", 5000.0)
        b.in_cycle = True
        alloc = Allocator(_cfg(max_drawdown_strategy=0.1), [a, b], store, KillSwitch(store), bus, shared=True)
        alloc.start()
        _candle(alloc, a, 5 * DAY)                 # A flat, pool empty: no transfer yet
        b.in_cycle = False
        _candle(alloc, b, 5 * DAY)                 # B gives 2000 to the pool: 40 % of its equity, no loss
        assert b.book.cash == pytest.approx(3000.0)
        assert alloc.trackers["grid_atr"].drawdown == pytest.approx(0.0)
        assert b.executor.paused is None
        b.equity_last = 3000.0 * 0.85              # a real 15 % loss
        with caplog.at_level("CRITICAL"):
            _candle(alloc, b, 5 * DAY + H)
        assert b.executor.paused.startswith(HALT_PREFIX) and "grid_atr" in b.executor.paused
        assert a.executor.paused is None           # the other strategy trades on
        assert b.cancelled == 1 and not hasattr(a, "cancelled")   # the halted strategy's resting entries
        assert "ALLOCATION HALT" in caplog.text
        alerts = sub.take_queued()
        assert any(e.severity == "critical" and "grid_atr" in e.title for e in alerts), alerts
        assert alloc.halted_at == {"grid_atr": 5 * DAY + H}
        b.executor.paused = None                   # an operator's resume does not lift it
        _candle(alloc, b, 5 * DAY + 2 * H)
        assert b.executor.paused.startswith(HALT_PREFIX)
        b.equity_last = 3000.0 * 0.91              # 9 %: under the limit, not under 0.8 x the limit
        _candle(alloc, b, 5 * DAY + 3 * H)
        assert b.executor.paused.startswith(HALT_PREFIX)
        b.equity_last = 3000.0                     # recovered
        _candle(alloc, b, 5 * DAY + 4 * H)
        assert b.executor.paused is None and alloc.halted == {}
    finally:
        store.close()
