"""Replay of stored candles through the same interface as live (core.data.replay + DataEngine)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from core.data.engine import DataEngine
from core.data.feed import ClosedCandle
from core.data.freqtrade import read_data_file
from core.data.replay import ReplayFeed
from core.errors import DataError
from core.model.candles import Candles
from core.storage.candle_store import load_candles, upsert_candles
from core.storage.db import open_sync
from tests.support.shared_data import shared_file

H = 3_600_000
M = 60_000
T0 = 1_704_067_200_000


def synthetic(symbol: str, timeframe: str, ts: list[int]) -> Candles:
    k = np.arange(len(ts), dtype=np.float64)
    rows = np.column_stack([np.array(ts, dtype=np.float64), 100 + k, 102 + k, 99 + k, 101 + k, 1 + k])
    return Candles.from_rows(symbol, "futures" if ":" in symbol else "spot", timeframe, rows)


class FakeClock:
    """Injected clock (seconds) whose sleep advances it and records the delay."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(scope="module")
def btc_1h() -> tuple:
    path = shared_file("binance-spot/BTC_USDT-1h.json.gz")
    return path, read_data_file(path)[1]


async def test_real_file_replays_every_candle_in_order_through_the_engine(btc_1h):
    path, candles = btc_1h
    got: list[ClosedCandle] = []
    engine = DataEngine([ReplayFeed.from_file(path, speed="max")])
    engine.subscribe(got.append, kinds=(ClosedCandle,))
    await engine.start()
    await engine.join()
    assert len(got) == len(candles)
    assert np.array_equal(np.array([c.ts for c in got], dtype=np.int64), candles.ts)
    assert {c.source for c in got} == {"replay"} and {c.symbol for c in got} == {"BTC/USDT"}
    i = len(candles) // 2
    assert got[i].row == (int(candles.ts[i]), candles.open[i], candles.high[i], candles.low[i],
                          candles.close[i], candles.volume[i])
    stats = engine.stats[("BTC/USDT", "1h")]
    assert (stats.delivered, stats.duplicates_dropped, stats.out_of_order_dropped) == (len(candles), 0, 0)


async def test_start_after_ts_resumes_exactly_after_that_candle(btc_1h):
    path, candles = btc_1h
    k = 1000
    got = [c.ts async for c in ReplayFeed.from_file(path, start_after_ts=int(candles.ts[k])).stream()]
    assert got[0] == candles.ts[k + 1] and len(got) == len(candles) - k - 1
    # the engine's resume point does the same (feed and engine bounds combine: the later wins)
    got2: list[int] = []
    engine = DataEngine([ReplayFeed.from_file(path)], start_after={("BTC/USDT", "1h"): int(candles.ts[k])})
    engine.subscribe(lambda c: got2.append(c.ts))
    await engine.start()
    await engine.join()
    assert got2 == got


async def test_speed_paces_by_market_time_on_the_injected_clock():
    ts = [T0, T0 + H, T0 + 2 * H, T0 + 4 * H, T0 + 5 * H]  # one candle missing
    clock = FakeClock()
    feed = ReplayFeed.from_candles(synthetic("BTC/USDT", "1h", ts), speed=3600, clock=clock, sleep=clock.sleep)
    delivered_at = []
    async for c in feed.stream():
        delivered_at.append((c.ts, clock.now))
    assert delivered_at == [(T0, 0.0), (T0 + H, 1.0), (T0 + 2 * H, 2.0), (T0 + 4 * H, 4.0), (T0 + 5 * H, 5.0)]
    assert clock.sleeps == [1.0, 1.0, 2.0, 1.0]

    clock = FakeClock()
    feed = ReplayFeed.from_candles(synthetic("BTC/USDT", "1h", ts), speed=7200, clock=clock, sleep=clock.sleep)
    assert len([c async for c in feed.stream()]) == 5
    assert clock.sleeps == [0.5, 0.5, 1.0, 0.5]


async def test_max_speed_lets_other_tasks_run_while_replaying():
    n = 5000
    feed = ReplayFeed.from_candles(synthetic("BTC/USDT", "1m", [T0 + i * M for i in range(n)]), speed="max",
                                   yield_every=100)
    seen_by_ticker: list[int] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            seen_by_ticker.append(feed.delivered)
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    count = 0
    async for _ in feed.stream():
        count += 1
    done.set()
    await task
    assert count == n
    during = [d for d in seen_by_ticker if 0 < d < n]
    assert len(during) >= n // 100 - 2, "the replay never yielded to the loop"


async def test_replay_from_the_store_resumes_after_a_candle(db_path):
    ts = [T0 + i * M for i in range(30)]
    conn = open_sync(db_path)
    upsert_candles(conn, synthetic("ETH/USDT:USDT", "1m", ts))
    conn.close()
    feed = ReplayFeed.from_store(db_path, "ETH/USDT:USDT", "futures", "1m", start_after_ts=ts[9])
    got = [c async for c in feed.stream()]
    assert [c.ts for c in got] == ts[10:]
    assert got[0].open == 110.0 and got[0].source == "replay"
    with pytest.raises(DataError, match="no stored candles"):
        [c async for c in ReplayFeed.from_store(db_path, "XRP/USDT", "spot", "1m").stream()]


async def test_engine_aggregates_and_stores_replayed_candles(tmp_path):
    ts = [T0 + i * M for i in range(12)] + [T0 + i * M for i in range(13, 20)]  # minute 12 missing
    out_db = tmp_path / "out.db"
    got: list[ClosedCandle] = []
    engine = DataEngine(
        [ReplayFeed.from_candles(synthetic("BTC/USDT:USDT", "1m", ts))],
        aggregates={("BTC/USDT:USDT", "1m"): ["5m"]}, db_path=out_db,
    )
    async with engine.events(kinds=(ClosedCandle,)) as stream:
        await engine.start()
        await engine.join()
        async for c in stream:
            got.append(c)
    fives = [(c.ts, c.complete) for c in got if c.timeframe == "5m"]
    assert fives == [(T0, True), (T0 + 5 * M, True), (T0 + 10 * M, False), (T0 + 15 * M, True)]
    assert [c.ts for c in got if c.timeframe == "1m"] == ts
    # a 5m candle is delivered right after the 1m candle that closed it
    order = [(c.timeframe, c.ts) for c in got]
    assert order.index(("5m", T0)) == order.index(("1m", T0 + 4 * M)) + 1
    assert engine.stats[("BTC/USDT:USDT", "1m")].gaps == 1
    conn = open_sync(out_db)
    stored_1m = load_candles(conn, "BTC/USDT:USDT", "futures", "1m")
    stored_5m = load_candles(conn, "BTC/USDT:USDT", "futures", "5m")
    conn.close()
    assert stored_1m.ts.tolist() == ts and stored_5m.ts.tolist() == [T0 + i * 5 * M for i in range(4)]
    assert stored_5m.high[0] == max(c.high for c in got[:5]) and stored_5m.volume[0] == sum(1 + k for k in range(5))


def test_bad_speed_is_refused():
    candles = synthetic("BTC/USDT", "1h", [T0])
    for bad in (0, -1, float("nan"), "fast"):
        with pytest.raises(ValueError, match="speed"):
            ReplayFeed.from_candles(candles, speed=bad)
