"""Live candles from the real ccxt.pro bitget client against a local Bitget stand-in.

Everything runs on 127.0.0.1 (tests/support/ws_bitget_stub.py); nothing reaches the internet.
"""

from __future__ import annotations

import asyncio
import random
from typing import Callable

import ccxt.pro
import numpy as np
import pytest

from core.data.backfill import Backfiller
from core.data.engine import DataEngine
from core.data.feed import ClosedCandle, FeedFresh, FeedReconnect, FeedStale, MessageRejected, TickerUpdate
from core.data.live_feed import Backoff, LiveFeed, MessageGuard, TickerFeed
from core.model.candles import Candles
from core.storage.candle_store import load_candles, upsert_candles
from core.storage.db import open_sync
from tests.support.ws_bitget_stub import EPOCH_MS, SYMBOL, TF_MS, BitgetWsStub, final_row, point_bitget_at

FAST = Backoff(initial_s=0.01, factor=2.0, max_s=0.05, jitter=0.5)


def T(i: int) -> int:
    """Open time of synthetic candle i (ms UTC)."""
    return EPOCH_MS + i * TF_MS


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Wait for a condition of the system under test (the timeout only guards against hangs)."""
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)
    try:
        await asyncio.wait_for(poll(), timeout)
    except asyncio.TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
async def stub():
    s = await BitgetWsStub(forming_ts=T(10), snapshot_history=2).start()
    yield s
    await s.close()


@pytest.fixture
async def exchange(stub):
    # no client-side rate limiting against the local stand-in (it only slows the tests down)
    ex = ccxt.pro.bitget({"enableRateLimit": False, "options": {"fetchMarkets": {"types": ["swap"]}}})
    ex.timeout_on_exit = 0  # close() would otherwise idle 250 ms
    point_bitget_at(ex, stub)
    yield ex
    await ex.close()


def live_feed(exchange, **kwargs) -> LiveFeed:
    return LiveFeed(exchange, SYMBOL, "1m", backoff=FAST, backfiller=Backfiller(retry_delay_s=0.01),
                    rng=random.Random(1), **kwargs)


def expected(first: int, last: int) -> list[tuple]:
    return [tuple(final_row(T(i))) for i in range(first, last + 1)]


async def test_disconnect_mid_candle_backfills_and_delivers_every_closed_candle_once(stub, exchange, db_path):
    # the store already holds candles 0..6: the engine resumes after 6 and primes the 5m bucket 5..9
    conn = open_sync(db_path)
    upsert_candles(conn, Candles.from_rows(SYMBOL, "futures", "1m", np.array(expected(0, 6))))
    conn.close()
    engine = DataEngine([live_feed(exchange)], db_path=db_path, aggregates={(SYMBOL, "1m"): ["5m"]})
    got: list[ClosedCandle] = []
    fives: list[ClosedCandle] = []
    reconnects: list[FeedReconnect] = []
    engine.subscribe(lambda c: (got if c.timeframe == "1m" else fives).append(c), kinds=(ClosedCandle,))
    engine.subscribe(reconnects.append, kinds=(FeedReconnect,))
    await engine.start()
    try:
        await stub.wait_candle_subscribes(1)
        await wait_until(lambda: len(got) >= 3, "the start-up back-fill of candles 7..9")
        await stub.push_forming(0.7)
        await stub.advance()  # candle 10 closes on the stream
        await wait_until(lambda: got[-1].ts == T(10), "candle 10")
        await stub.push_forming(0.3)  # candle 11 is forming ...
        await stub.disconnect(advance_to=T(15))  # ... when the server drops us; 11..14 close unseen
        await stub.wait_candle_subscribes(2)
        await wait_until(lambda: got[-1].ts == T(14), "the back-fill of 11..14 after the reconnect")
        await stub.advance(2)  # 15 and 16 close on the new stream
        await wait_until(lambda: got[-1].ts == T(16), "candle 16")
    finally:
        await engine.stop()

    assert [c.row for c in got] == expected(7, 16), "every closed candle exactly once, in order, equal to the server's"
    assert [c.source for c in got] == ["backfill"] * 3 + ["live"] + ["backfill"] * 4 + ["live"] * 2
    assert any(q.get("startTime") == str(T(11)) for q in stub.rest_candle_requests), "missed candles came by REST"
    assert len(reconnects) == 1 and reconnects[0].attempt == 1 and "1012" in reconnects[0].error
    stats = engine.stats[(SYMBOL, "1m")]
    assert (stats.delivered, stats.duplicates_dropped, stats.out_of_order_dropped, stats.gaps) == (10, 0, 0, 0)
    # 5m buckets: 5..9 (primed with the stored 5, 6) and 10..14, both complete
    assert [(c.ts, c.complete) for c in fives] == [(T(5), True), (T(10), True)]
    rows = expected(10, 14)
    assert fives[1].row == (T(10), rows[0][1], max(r[2] for r in rows), min(r[3] for r in rows), rows[-1][4],
                            pytest.approx(sum(r[5] for r in rows)))
    conn = open_sync(db_path)
    stored = load_candles(conn, SYMBOL, "futures", "1m")
    stored_5m = load_candles(conn, SYMBOL, "futures", "5m")
    conn.close()
    assert stored.ts.tolist() == [T(i) for i in range(17)]
    assert [tuple(r) for r in np.column_stack([stored.ts, stored.open, stored.high, stored.low, stored.close,
                                               stored.volume]).tolist()] == expected(0, 16)
    assert stored_5m.ts.tolist() == [T(5), T(10)]


async def test_stale_when_the_server_goes_silent_and_fresh_when_it_resumes(stub, exchange):
    engine = DataEngine([live_feed(exchange)], stale_after_s=0.3, stale_check_s=0.02)
    health = engine.events(kinds=(FeedStale, FeedFresh, FeedReconnect))
    await engine.start()
    try:
        await stub.wait_candle_subscribes(1)
        stale = await asyncio.wait_for(anext(health), 5)  # the server says nothing after the snapshot
        assert isinstance(stale, FeedStale) and stale.symbol == SYMBOL and stale.age_s >= 0.3
        await stub.push_forming(0.8)
        fresh = await asyncio.wait_for(anext(health), 5)
        assert isinstance(fresh, FeedFresh) and fresh.symbol == SYMBOL and fresh.silent_s >= 0.3
    finally:
        await engine.stop()
    assert [e async for e in health] == [], "no reconnect and no second stale event"


async def test_malformed_pushes_are_rejected_without_killing_the_feed(stub, exchange):
    feed = live_feed(exchange)
    engine = DataEngine([feed], stale_after_s=60, start_after={(SYMBOL, "1m"): T(9)})
    got: list[ClosedCandle] = []
    other: list = []
    engine.subscribe(got.append, kinds=(ClosedCandle,))
    engine.subscribe(other.append, kinds=(MessageRejected, FeedReconnect))
    await engine.start()
    try:
        await stub.wait_candle_subscribes(1)
        await wait_until(lambda: feed.last_message_at is not None, "the subscribe snapshot")
        bad_rows = [
            ["abc", "1", "2"],  # unreadable
            [str(T(10)), "100", "90", "95", "98", "1", "0", "0"],  # high < low
            [str(T(10) + 1), "100", "101", "99", "100", "1", "0", "0"],  # off the minute grid
            [str(T(10)), "100", "101", "99", "100", "-5", "0", "0"],  # negative volume
        ]
        for row in bad_rows:
            await stub.push_raw(stub.candle_message([row]))
        await stub.push_raw({"action": "update", "arg": stub.candle_message([])["arg"], "data": "oops"})
        # a well-formed push that ccxt itself chokes on must not stop its receive loop either
        real_handler = exchange.handle_ohlcv

        def choke(client, message):
            exchange.handle_ohlcv = real_handler
            raise KeyError("boom")

        exchange.handle_ohlcv = choke
        await stub.push_forming(0.6)
        await stub.advance(2)  # the feed still works: 10 and 11 close
        await wait_until(lambda: len(got) == 2, "candles 10 and 11")
    finally:
        await engine.stop()
    assert [c.row for c in got] == expected(10, 11)
    rejected = [e for e in other if isinstance(e, MessageRejected)]
    assert len(rejected) == 6 and all(e.symbol == SYMBOL and e.timeframe == "1m" for e in rejected)
    assert [e.ts for e in rejected] == [None, T(10), T(10) + 1, T(10), None, None]
    assert "high" in rejected[1].reason and "grid" in rejected[2].reason and "volume" in rejected[3].reason
    assert "ccxt failed" in rejected[5].reason and "boom" in rejected[5].reason
    assert not [e for e in other if isinstance(e, FeedReconnect)]
    assert MessageGuard.install(exchange).rejected == 6
    cached = exchange.ohlcvs[SYMBOL]["1m"]
    assert all(isinstance(row[0], int) for row in cached), "nothing malformed reached ccxt's cache"


async def test_a_silent_stream_is_reconnected_when_configured(stub, exchange):
    engine = DataEngine([live_feed(exchange, silence_reconnect_s=0.2)], stale_after_s=60)
    got: list[ClosedCandle] = []
    reconnects: list[FeedReconnect] = []
    engine.subscribe(got.append, kinds=(ClosedCandle,))
    engine.subscribe(reconnects.append, kinds=(FeedReconnect,))
    await engine.start()
    try:
        await stub.wait_candle_subscribes(2)  # silence -> forced reconnect -> subscribed again
        await stub.advance()
        await wait_until(lambda: len(got) == 1, "candle 10")
    finally:
        await engine.stop()
    assert reconnects and "no BTC/USDT:USDT 1m push" in reconnects[0].error
    assert [c.row for c in got] == expected(10, 10)


async def test_ticker_updates_and_a_bad_ticker(stub, exchange):
    engine = DataEngine([TickerFeed(exchange, SYMBOL, backoff=FAST)], stale_after_s=60)
    events = engine.events(kinds=(TickerUpdate, MessageRejected))
    await engine.start()
    try:
        await wait_until(lambda: any(a.get("channel") == "ticker" for m in stub.received for a in m.get("args", [])),
                         "the ticker subscription")
        await stub.push_ticker(123.5, ts=T(3))
        first = await asyncio.wait_for(anext(events), 5)
        await stub.push_raw({"action": "snapshot", "arg": {"instType": "USDT-FUTURES", "channel": "ticker",
                                                           "instId": "BTCUSDT"},
                             "data": [{"instId": "BTCUSDT", "lastPr": "NaN", "ts": str(T(4))}], "ts": T(4)})
        second = await asyncio.wait_for(anext(events), 5)
    finally:
        await engine.stop()
    assert first == TickerUpdate(SYMBOL, T(3), 123.5, 123.0, 124.0)
    assert isinstance(second, MessageRejected) and second.ts == T(4) and "last price" in second.reason


class ScriptedFeed:
    """A fake candle feed yielding given open times (to exercise the engine's order guard)."""

    live = False
    last_message_at = None

    def __init__(self, ts: list[int]) -> None:
        self.symbol, self.timeframe, self._ts = "ETH/USDT:USDT", "1m", ts

    async def stream(self, after_ts=None):
        for t in self._ts:
            yield ClosedCandle(self.symbol, self.timeframe, t, 1.0, 1.0, 1.0, 1.0, 1.0, "live")


async def test_engine_never_delivers_duplicates_or_out_of_order_candles():
    engine = DataEngine([ScriptedFeed([T(1), T(2), T(2), T(1), T(3), T(5), T(4)])])
    got: list[int] = []
    engine.subscribe(lambda c: got.append(c.ts))
    await engine.start()
    await engine.join()
    assert got == [T(1), T(2), T(3), T(5)]
    st = engine.stats[("ETH/USDT:USDT", "1m")]
    assert (st.delivered, st.duplicates_dropped, st.out_of_order_dropped, st.gaps) == (4, 1, 2, 1)


def test_backoff_grows_is_bounded_and_jittered():
    b = Backoff(initial_s=1.0, factor=2.0, max_s=10.0, jitter=0.2)
    rng = random.Random(7)
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (50, 10.0)]:
        delays = [b.delay(attempt, rng) for _ in range(200)]
        assert min(delays) >= base * 0.8 and max(delays) <= min(10.0, base * 1.2)
        assert len(set(delays)) > 1, "jittered"
    assert Backoff(initial_s=1.0, jitter=0.0).delay(3) == 4.0
    with pytest.raises(ValueError):
        Backoff(jitter=1.5)
