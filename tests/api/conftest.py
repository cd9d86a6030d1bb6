"""Fixtures of the engine-API tests: a real paper Engine on real BTC 1h candles (ending with a
position open), kept running after its data (a live-like feed: no end-of-data exit), with the
run services of `radar run` (alerts, jobs, watchdog, loop lag, the API server on `<db>.sock`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core.backtest.event_engine import run_event_backtest
from core.backtest.loading import load_from_file
from core.engine.engine import CandleSource, Engine, RunnerSpec
from core.engine.services import RunServices
from core.model.account import Account
from core.model.candles import Candles
from tests.support.shared_data import shared_file

BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"


class HoldFeed:
    """A replay feed that, after its last candle, waits like a live feed (until cancelled)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.symbol, self.timeframe = inner.symbol, inner.timeframe
        self.live = False
        self.last_message_at = None

    async def stream(self, after_ts: int | None = None):
        async for ev in self.inner.stream(after_ts):
            yield ev
        await asyncio.Event().wait()


def held_source(candles: Candles) -> CandleSource:
    """A source of `candles` that does not end (no end-of-data exits)."""
    from core.data.replay import ReplayFeed

    cols = [a.tolist() for a in (candles.ts, candles.open, candles.high, candles.low, candles.close)]

    def history(up_to, n):
        return [r for r in zip(*cols) if up_to is None or r[0] <= up_to][-n:]

    return CandleSource(candles.symbol, candles.timeframe,
                        lambda after: HoldFeed(ReplayFeed.from_candles(candles, speed="max", start_after_ts=after)),
                        history, replay=False)


@pytest.fixture(scope="session")
def open_position_candles() -> Candles:
    """The first BTC 1h candles up to one after envelope_dca opened a position (1 or 2 levels filled)."""
    full = load_from_file(shared_file(BTC_1H))
    full = full.between(None, int(full.ts[3000]))
    open_at: list[int] = []
    run_event_backtest(full, "envelope_dca", {}, Account(),
                       observer=lambda t, m: open_at.append(t) if m.levels_filled and m.levels_filled < 3 else None)
    return full.between(None, int(full.ts[open_at[0] + 1]))


async def eventually(pred, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := pred()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
    return got


class Run:
    """An engine with its run services (as `radar run --no-ui` builds them) on `db`."""

    def __init__(self, db: Path, candles: Candles, **services: Any) -> None:
        self.db = db
        self.engine = Engine(db, [held_source(candles)], [RunnerSpec("envelope_dca", {}, candles.symbol,
                                                                     candles.timeframe)],
                             Account(), status_interval=0)
        self.n_candles = len(candles.ts)
        self.kwargs = {"telegram": False, "health_interval_s": 0.2, **services}
        self.services: RunServices | None = None
        self.task: asyncio.Task | None = None

    @property
    def server(self) -> Any:
        return self.services.api

    @property
    def socket(self) -> Path:
        return self.services.api.socket_path

    async def __aenter__(self) -> Run:
        self.engine.acquire_lock()
        try:
            self.services = await RunServices.open(self.engine, self.db, mode="headless", **self.kwargs)
        except BaseException:
            self.engine._lock.release()
            raise
        self.task = asyncio.get_running_loop().create_task(self.engine.run())
        await eventually(lambda: self.engine.stats.candles >= self.n_candles, 30, "the candles to be processed")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None and not self.task.done():
            self.engine.request_stop()
        if self.task is not None:
            await asyncio.wait_for(self.task, 30)
        await self.services.close()


@pytest.fixture
async def run(tmp_path: Path, open_position_candles: Candles) -> AsyncIterator[Run]:
    async with Run(tmp_path / "radar.db", open_position_candles) as r:
        yield r
