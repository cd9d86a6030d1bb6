"""Snapshots (pytest-textual-snapshot) of the Grid, Jobs and Health screens at 80x24 and 160x48,
on a real engine replaying the first 3,000 candles of the shared BTC 1h file up to a candle
where a cycle is open (so the Grid shows filled and pending levels), with every clock frozen:
the app's monotonic clock, the Health screen's wall clock and the watchdog's; the Jobs screen
lists fixed job records. The Scanner, Positions and Alerts snapshots are in test_tui_screens.py.

Update the baselines with `pytest tests/tui/test_tui_snapshots_more.py --snapshot-update`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

pytest.importorskip("pytest_textual_snapshot")

from core.backtest.loading import load_from_file  # noqa: E402
from core.engine.api import EngineAPI  # noqa: E402
from core.engine.engine import CandleSource, Engine, RunnerSpec  # noqa: E402
from core.jobs.model import JobRecord  # noqa: E402
from core.model.account import Account  # noqa: E402
from tests.support.shared_data import shared_file  # noqa: E402

BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"
FROZEN_MS = 1_700_000_060_000           # the wall clock of the Health screen and the watchdog
N_CANDLES = 3000


def _replay_engine(tmp: Path) -> Engine:
    """An engine replaying BTC 1h up to the first fill of a cycle that is closed later by its
    take-profit or stop (the position is open at the last candle); the feed then ends
    (replay=False: no end-of-data exit), so `await engine.run()` returns with the state kept."""
    from core.backtest.event_engine import run_event_backtest
    from core.data.replay import ReplayFeed

    full = load_from_file(shared_file(BTC_1H))
    head = full.between(None, int(full.ts[N_CANDLES]))
    res = run_event_backtest(head, "envelope_dca", {}, Account())
    cycle = next(c for c in res.cycles if c.close_time > c.open_time and c.exit_reason != "end")
    candles = full.between(None, int(cycle.open_time) + 1)
    cols = [a.tolist() for a in (candles.ts, candles.open, candles.high, candles.low, candles.close)]

    def history(up_to, k):
        rows = [r for r in zip(*cols) if up_to is None or r[0] <= up_to]
        return rows[-k:]

    src = CandleSource(candles.symbol, candles.timeframe,
                       lambda after: ReplayFeed.from_candles(candles, speed="max", start_after_ts=after),
                       history, replay=False)
    return Engine(tmp / "engine.db", [src], [RunnerSpec("envelope_dca", {}, candles.symbol, candles.timeframe)],
                  Account(), status_interval=0, clock=lambda: FROZEN_MS)


class FixedJobs:
    """The JobManager surface the Jobs screen uses (subscribe, jobs), with fixed records."""

    def __init__(self) -> None:
        def rec(i, state, progress, phase, error=None, sym="BTC/USDT"):
            return JobRecord(id=i, kind="wfo", params={"strategy": "envelope_dca", "timeframe": "1h",
                                                       "series": [{"symbol": sym}]},
                             state=state, error=error, progress=progress, phase=phase, result=None,
                             created_ms=FROZEN_MS - 3_600_000, started_ms=FROZEN_MS - 3_000_000,
                             finished_ms=None if state in ("running", "queued") else FROZEN_MS - 60_000)
        self.records = [rec(3, "running", 42.0, "windows"), rec(2, "queued", 0.0, None, sym="ETH/USDT"),
                        rec(1, "done", 100.0, "done"), rec(0, "failed", 17.0, "windows", error="no data")]

    def subscribe(self, callback):
        return lambda: None

    def jobs(self, limit: int = 50):
        return self.records[:limit]


def _watchdog():
    from core.health import Check, Watchdog

    wd = Watchdog(clock=lambda: FROZEN_MS - 30_000)
    wd.register("feed:BTC/USDT", lambda: Check.ok(age_s=0.42, stale_after_s=30.0, reconnect_attempt=0))
    wd.register("loop", lambda: Check.degraded("event loop lag up to 0.2s", p50_s=0.001, p99_s=0.15, max_s=0.2,
                                               samples=100))
    wd.register("database", lambda: Check.ok(latency_s=0.002, size_bytes=5 * 1024 * 1024, free_bytes=10 ** 10))
    wd.register("telegram", lambda: Check.down("Telegram outbox is not running; nothing is sent",
                                               queued=3, failed=0, dropped=1, retrying=0))
    wd.register("gateway", lambda: Check.ok(state="closed", consecutive_failures=0, rate_limit_remaining=900,
                                            rate_limit=1200))
    return wd


def _frozen_replay_app(tmp: Path, screen_key: str):
    from core.api.local_port import LocalPort
    from tui.app import RadarApp

    eng = _replay_engine(tmp)
    wd = _watchdog()
    now = [1000.0]
    app = RadarApp(LocalPort(EngineAPI(eng), jobs=FixedJobs(), health=wd), host_name="trade-01",
                   actor="console:test", clock=lambda: now[0])
    app.watchdog = wd                    # the Health screen reads app.watchdog (the app keeps it as .health)

    async def run_before(pilot) -> None:
        await wd.run_once()
        await eng.run()                   # replays to the fixed candle, then the feed ends
        await pilot.pause()
        if screen_key != "1":
            await pilot.press(screen_key)
        await pilot.pause()
        scr = app.screen
        if hasattr(scr, "clock") and screen_key == "6":
            scr.clock = lambda: FROZEN_MS
        if screen_key == "5":
            for _ in range(200):           # the job list is read in a thread worker
                if getattr(scr, "jobs", None):
                    break
                await asyncio.sleep(0.01)
        app.refresh_now()
        await pilot.pause()
        await pilot.pause()

    return app, run_before


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
@pytest.mark.parametrize("screen_key", ["2", "5", "6"])
def test_snapshots_replay(snap_compare, tmp_path: Path, size, screen_key) -> None:
    app, run_before = _frozen_replay_app(tmp_path, screen_key)
    assert snap_compare(app, terminal_size=size, run_before=run_before)
