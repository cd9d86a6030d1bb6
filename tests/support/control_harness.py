"""A real paper engine whose candles the test releases one at a time (operator-control tests).

    async with GatedRun(db, candles, start=38) as run:       # candles 0..37 processed, then it waits
        await run.release(1)                                  # candle 38 processed (cursor moved)
        run.api.snapshot(); run.socket                        # EngineAPI, the API socket of <db>.sock

The engine is `core.engine.engine.Engine` with one envelope_dca runner on the simulated venue,
its run services (`RunServices`: alerts, jobs, watchdog, the API server; Telegram when given
secrets), on a feed that delivers real candles up to the gate and then waits like a live feed
(no end-of-data exit). A second `GatedRun` on the same database resumes after the first one's
cursor (restart).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from core.backtest.loading import load_from_file
from core.data.feed import ClosedCandle
from core.engine.api import EngineAPI
from core.engine.engine import CandleSource, Engine, RunnerSpec
from core.engine.services import RunServices
from core.model.account import Account
from core.model.candles import Candles
from tests.support.shared_data import shared_file

BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"
#: envelope_dca (default params) on the first BTC 1h candles: a cycle opens at candle 37 (level 0,
#: at its close still open) and closes at its take-profit in candle 38; the next opens at candle 39.
IN_POSITION_AT, CLOSED_AT, REOPENED_AT = 37, 38, 39


def btc_candles(n: int = 400) -> Candles:
    """The first `n` real BTC/USDT 1h candles."""
    full = load_from_file(shared_file(BTC_1H))
    return full.between(None, int(full.ts[n]))


async def eventually(pred: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := pred()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
    return got


class Gate:
    """How many candles of the series the feed may deliver."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed
        self.changed = asyncio.Event()

    def open(self, n: int) -> None:
        self.allowed += n
        self.changed.set()


class GatedFeed:
    """Delivers the candles of `candles` up to the gate, then waits for more (like a live feed)."""

    def __init__(self, candles: Candles, gate: Gate) -> None:
        self.candles = candles
        self.gate = gate
        self.symbol, self.timeframe = candles.symbol, candles.timeframe
        self.live = False
        self.last_message_at = None

    async def stream(self, after_ts: int | None = None):
        c = self.candles
        rows = list(zip(*(a.tolist() for a in (c.ts, c.open, c.high, c.low, c.close, c.volume))))
        i = 0
        while True:
            while i < len(rows) and i < self.gate.allowed:
                ts, o, h, lo, cl, v = rows[i]
                i += 1
                if after_ts is None or ts > after_ts:
                    yield ClosedCandle(self.symbol, self.timeframe, int(ts), o, h, lo, cl, v, "replay")
            self.gate.changed.clear()
            await self.gate.changed.wait()


class GatedRun:
    """See the module docstring.

    Args:
        db: the engine's database. candles: the whole series. start: candles delivered at once.
        params: the strategy's params in the spec (strategies.yaml's). secrets: for Telegram.
        strategy: the runner's strategy (default envelope_dca).
        services: more `RunServices.open` keyword arguments.
    """

    def __init__(self, db: Path, candles: Candles, start: int, params: dict | None = None, secrets: Any = None,
                 strategy: str = "envelope_dca", **services: Any) -> None:
        self.db = db
        self.candles = candles
        self.gate = Gate(start)
        rows = [a.tolist() for a in (candles.ts, candles.open, candles.high, candles.low, candles.close)]

        def history(up_to: int | None, n: int):       # a new runner warms up on its first candles
            return [] if up_to is None else [r for r in zip(*rows) if r[0] <= up_to][-n:]

        src = CandleSource(candles.symbol, candles.timeframe, lambda after: GatedFeed(candles, self.gate), history,
                           replay=False)
        self.engine = Engine(db, [src], [RunnerSpec(strategy, dict(params or {}), candles.symbol, candles.timeframe)],
                             Account(), status_interval=0)
        self.secrets = secrets
        self.kwargs = {"telegram": secrets is not None, "health_interval_s": 0.2, **services}
        self.services: RunServices | None = None
        self.task: asyncio.Task | None = None

    @property
    def runner(self) -> Any:
        return self.engine.runners[0]

    @property
    def api(self) -> EngineAPI:
        return self.services.api.api

    @property
    def socket(self) -> Path:
        return self.services.api.socket_path

    def ts(self, i: int) -> int:
        return int(self.candles.ts[i])

    async def release(self, n: int = 1) -> None:
        """Let `n` more candles through and wait until the runner processed the last one."""
        self.gate.open(n)
        want = self.ts(self.gate.allowed - 1)
        await eventually(lambda: self.runner.cursor == want, 30, f"candle {self.gate.allowed - 1} processed")

    async def __aenter__(self) -> GatedRun:
        self.engine.acquire_lock()
        try:
            self.services = await RunServices.open(self.engine, self.db, mode="headless", secrets=self.secrets,
                                                   **self.kwargs)
        except BaseException:
            self.engine._lock.release()
            raise
        self.task = asyncio.get_running_loop().create_task(self.engine.run())
        await eventually(lambda: self.engine.runners and self.runner.cursor == self.ts(self.gate.allowed - 1), 30,
                         "the first candles to be processed")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None and not self.task.done():
            self.engine.request_stop()
        if self.task is not None:
            await asyncio.wait_for(self.task, 30)
        await self.services.close()
