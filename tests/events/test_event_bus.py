"""The event bus: bounded per-subscriber queues, drop-oldest of low-priority kinds (counted),
orders and fills never dropped, order kept, non-blocking publish."""

from __future__ import annotations

import asyncio

import pytest

from core.events.bus import (
    CandleEvent, EngineStatus, EventBus, FillEvent, HealthEvent, KillSwitchEvent, OrderEvent, PositionEvent,
)


def candle(i: int) -> CandleEvent:
    return CandleEvent("BTC/USDT", "1h", i, 1.0, 1.0, 1.0, 1.0)


def fill(i: int) -> FillEvent:
    return FillEvent("envelope_dca", "BTC/USDT", i, f"rd-x-{i}-e0", "entry", None, 0, "buy", 1.0, 1.0, 0.0)


def order(i: int) -> OrderEvent:
    return OrderEvent("envelope_dca", "BTC/USDT", i, f"rd-x-{i}-e0", "entry", "buy", 1.0, "open")


def drain(sub) -> list:
    out = []
    while True:
        try:
            out.append(sub.get_nowait())
        except asyncio.QueueEmpty:
            return out


def test_bounded_queue_drops_oldest_low_priority_and_counts() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=5)
    for i in range(12):
        bus.publish(candle(i))
    assert len(sub) == 5
    assert [e.ts for e in drain(sub)] == [7, 8, 9, 10, 11]
    assert sub.dropped == {"CandleEvent": 7}


def test_fills_and_orders_never_dropped_and_order_kept() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=4)
    published = []
    for i in range(1000):
        for ev in (candle(i), order(i), fill(i), HealthEvent("feed", "ok", str(i))):
            bus.publish(ev)
            published.append(ev)
    got = drain(sub)
    crit = [e for e in published if isinstance(e, (OrderEvent, FillEvent))]
    assert [e for e in got if isinstance(e, (OrderEvent, FillEvent))] == crit          # all, in order
    assert sub.dropped["CandleEvent"] + sub.dropped["HealthEvent"] == 2000 - sum(
        isinstance(e, (CandleEvent, HealthEvent)) for e in got)
    assert "FillEvent" not in sub.dropped and "OrderEvent" not in sub.dropped
    assert sub.overflow_peak >= 2000                        # critical events overflow the bound
    assert got == sorted(got, key=published.index)          # publish order preserved


def test_low_priority_dropped_when_queue_full_of_critical() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=2)
    bus.publish(fill(1))
    bus.publish(PositionEvent("s", "X", 1, "long", 1.0, 1.0, 0.8, 1))
    bus.publish(EngineStatus("paper", 1, 1.0, 1.0, False))
    bus.publish(KillSwitchEvent(True, False, "me", "test"))
    got = drain(sub)
    assert [type(e).__name__ for e in got] == ["FillEvent", "PositionEvent", "KillSwitchEvent"]
    assert sub.dropped == {"EngineStatus": 1}


def test_kinds_filter_and_independent_subscribers() -> None:
    bus = EventBus()
    fills_only = bus.subscribe((FillEvent,), maxsize=1)
    slow = bus.subscribe(maxsize=1)
    fast = bus.subscribe(maxsize=100)
    for i in range(10):
        bus.publish(candle(i))
        bus.publish(fill(i))
    assert len(fills_only) == 10 and all(isinstance(e, FillEvent) for e in drain(fills_only))
    assert len(fast) == 20 and fast.dropped_total == 0
    assert slow.dropped["CandleEvent"] == 9 and len(drain(slow)) == 11      # 10 fills + the newest candle
    assert bus.published == {"CandleEvent": 10, "FillEvent": 10}


def test_bad_maxsize() -> None:
    with pytest.raises(ValueError):
        EventBus().subscribe(maxsize=0)


async def test_async_iteration_wakes_and_ends_on_close() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=3)
    got = []

    async def reader() -> None:
        async for ev in sub:
            got.append(ev)

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)
    for i in range(5):
        bus.publish(fill(i))
        await asyncio.sleep(0)
    bus.publish(candle(99))
    sub.close()
    bus.publish(fill(100))                 # after close: not delivered
    await asyncio.wait_for(task, 1)
    assert [e.ts for e in got] == [0, 1, 2, 3, 4, 99]
    assert bus.subscribers == 0


async def test_publish_never_blocks_with_stalled_reader() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=10)        # nobody reads
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i in range(50_000):
        bus.publish(candle(i))
    assert loop.time() - t0 < 5
    assert len(sub) == 10 and sub.dropped["CandleEvent"] == 49_990
