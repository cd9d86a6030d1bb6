"""funding and grid_funding on paper with their funding rates REFRESHED while running
(`core.data.funding_stream.FundingRecorder`), over real BTC perpetual candles.

The candles are binance-futures BTC 5m of 2025 resampled to 1h, the rates the 8 h funding file
beside them. A ccxt-like exchange serves that file as bitget's `fetch_funding_rate_history`
would at each candle close (its newest page of the rates settled by then, filtered by `since`).
The recorder starts with the rates known before the first candle only (none here: the file's
first rate settles after it) and is polled after every candle, as the engine's candle hook does;
the paper runners read its live series. They must trade exactly as the event backtest on the
full series; with the refresh failing from some point on, exactly as the backtest on the rates
known until then (no new entry once the last one is over 16 h old), an error logged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from pathlib import Path

import ccxt.async_support as ccxt
import numpy as np
import pytest

from core.backtest.event_engine import run_event_backtest
from core.backtest.loading import load_from_file
from core.backtest.report import build_report
from core.backtest.single_driver import run_single_backtest
from core.data.download import RetryPolicy
from core.data.funding_stream import FundingRecorder
from core.engine.assembly import funding_beside
from core.engine.grid_runner import GridRunner
from core.engine.single_runner import SingleStrategyRunner
from core.executor.kill_switch import KillSwitch
from core.executor.state_store import StateStore
from core.indicators.signal_streams import funding_lookup
from core.model.account import Account
from core.storage.candle_store import load_funding_rates
from core.storage.db import open_sync
from core.strategies import registry
from core.strategies.funding import MAX_RATE_AGE_MS
from core.venues.sim.grid_venue import SimGridVenue
from tests.support.shared_data import shared_file

H = 3_600_000
FAST = RetryPolicy(attempts=2, base_delay_s=0.0, max_delay_s=0.0)
SINGLE = {"funding_threshold": 0.00002, "sl_percent": 0.03, "tp_percent": 0.03, "max_hold_candles": 24}
GRID = {"ma_period": 5, "num_levels": 2, "envelope_start": 0.01, "envelope_step": 0.01, "sl_percent": 0.1,
        "funding_threshold": 0.000005}


@functools.lru_cache(maxsize=None)
def market():
    """(1h Candles of the BTC perpetual, (fts int64 ms, rate) of its funding file)."""
    path = Path(shared_file("binance-futures/BTC_USDT_USDT-5m-futures.json.gz"))
    return load_from_file(path, resample="1h"), funding_beside(path)


class FundingExchange:
    """bitget's `fetch_funding_rate_history` over a recorded series: the newest `limit` rates
    settled by `clock()`, filtered by `since` (as ccxt does); from `fail_from` (ms UTC) on, an
    exchange error."""

    id = "bitget"

    def __init__(self, fts, rates, clock, fail_from: int | None = None) -> None:
        self.fts, self.rates = [int(x) for x in fts], [float(x) for x in rates]
        self.clock, self.fail_from = clock, fail_from
        self.polls = 0

    async def fetch_funding_rate_history(self, symbol, since=None, limit=None, params={}):
        self.polls += 1
        now = self.clock()
        if self.fail_from is not None and now >= self.fail_from:
            raise ccxt.ExchangeError('bitget {"code":"40034","msg":"recorded failure"}')
        page = [(t, r) for t, r in zip(self.fts, self.rates) if t <= now][-(limit or 20):]
        return [{"info": {}, "symbol": symbol, "fundingRate": r, "timestamp": t, "datetime": None}
                for t, r in page if since is None or t >= since]

    async def close(self) -> None:
        pass


def recorder(db: Path, candles, funding, fail_from: int | None = None):
    """(recorder warmed up with the rates known at the first candle's open, clock list)."""
    now = [int(candles.ts[0])]
    known = funding[0] <= candles.ts[0]
    rec = FundingRecorder(FundingExchange(*funding, clock=lambda: now[0], fail_from=fail_from),
                          candles.symbol, "1h", open_sync(db), (funding[0][known], funding[1][known]), retry=FAST)
    return rec, now


async def drive(runner, rec, now, candles, volume: bool) -> None:
    """Each candle to the runner at its close, then the recorder's poll (the engine's candle hook;
    the grid runner also refreshes its live series itself before quoting the next candle)."""
    for ts, o, h, lo, c, v in zip(*(a.tolist() for a in (candles.ts, candles.open, candles.high, candles.low,
                                                          candles.close, candles.volume))):
        now[0] = ts + H + 400                   # the candle just closed
        await (runner.on_candle(ts, o, h, lo, c, v) if volume else runner.on_candle(ts, o, h, lo, c))
        await rec.on_candle_closed(ts)
    await runner.finish()


def single_run(db: Path, fail_from: int | None = None):
    candles, funding = market()
    rec, now = recorder(db, candles, funding, fail_from)
    store = StateStore(db)
    r = SingleStrategyRunner("funding", SINGLE, candles.symbol, "1h", Account(), store, KillSwitch(store), None,
                             funding=rec)
    asyncio.run(drive(r, rec, now, candles, volume=True))
    store.close()
    return r, rec


def grid_run(db: Path, strategy: str, fail_from: int | None = None):
    candles, funding = market()
    rec, now = recorder(db, candles, funding, fail_from)
    store = StateStore(db)
    strat = registry.create(strategy, GRID)
    r = GridRunner(strategy, GRID, candles.symbol, "1h", Account(), store, KillSwitch(store), None, mode="paper",
                   venue=lambda ids: SimGridVenue(strat, candles.symbol, Account(), ids, 0.0), funding=rec)
    r.restore([])

    async def run() -> None:
        assert await r.connect()
        await drive(r, rec, now, candles, volume=False)

    asyncio.run(run())
    store.close()
    return r, rec


def test_single_funding_refreshed_live_equals_the_backtest_of_the_full_series(tmp_path: Path) -> None:
    candles, funding = market()
    assert not (funding[0] <= candles.ts[0]).any()               # it starts with no rate at all
    r, rec = single_run(tmp_path / "s.db")
    bt = run_single_backtest(candles, registry.create("funding", SINGLE), Account(), funding=funding)
    assert len(bt.cycles) >= 20 and {c.side for c in bt.cycles} == {"long", "short"}
    assert r.cycles == bt.cycles
    assert r.book.cash == bt.final_equity
    # every rate settled by the last close was recorded and stored, in order; polls only when one was due
    settled = funding[0] <= int(candles.ts[-1]) + H + 400
    assert rec.ts == funding[0][settled].tolist() and rec.rate == funding[1][settled].tolist()
    ts, rate = load_funding_rates(rec.conn, candles.symbol)
    assert ts.tolist() == rec.ts and rate.tolist() == rec.rate
    assert rec.failures == 0 and rec.exchange.polls < len(candles)
    rec.conn.close()


@pytest.mark.parametrize("strategy", ("grid_funding", "grid_funding_short"))
def test_grid_funding_refreshed_live_equals_the_event_backtest(tmp_path: Path, strategy: str) -> None:
    candles, funding = market()
    grid_run(tmp_path / "g.db", strategy)[1].conn.close()
    want = run_event_backtest(candles, strategy, GRID, Account(), funding=funding).to_spec_json()
    assert want["n_cycles"] >= 5
    assert build_report(tmp_path / "g.db", Account()) == [want]


def _fail_point():
    """(time the refresh starts failing, funding series known until then): mid-file, where the
    full series still gives entries more than 16 h after the last known rate."""
    candles, funding = market()
    k = len(funding[0]) // 3
    fail_from = int(funding[0][k]) + 1_000      # the poll at the close after rate k (+400 ms) still answers
    keep = funding[0] <= funding[0][k]
    return fail_from, (funding[0][keep], funding[1][keep]), int(funding[0][k]) + MAX_RATE_AGE_MS


def test_a_failing_refresh_stops_new_entries_16h_after_the_last_rate(tmp_path: Path, caplog) -> None:
    candles, funding = market()
    fail_from, known, stale_at = _fail_point()
    full = run_single_backtest(candles, registry.create("funding", SINGLE), Account(), funding=funding)
    assert any(c.open_time > stale_at for c in full.cycles)     # with fresh rates it would keep trading
    with caplog.at_level(logging.ERROR, logger="core.data.funding_stream"):
        r, rec = single_run(tmp_path / "f.db", fail_from)
    assert rec.failures > 0 and rec.ts == known[0].tolist()
    assert any("no refresh of the funding rates" in m.getMessage() and m.levelno == logging.ERROR
               for m in caplog.records)
    assert r.cycles and not any(c.open_time > stale_at for c in r.cycles)
    bt = run_single_backtest(candles, registry.create("funding", SINGLE), Account(), funding=known)
    assert r.cycles == bt.cycles and r.book.cash == bt.final_equity
    rec.conn.close()


def test_a_failing_refresh_closes_the_grid_funding_gate(tmp_path: Path) -> None:
    candles, funding = market()
    fail_from, known, stale_at = _fail_point()
    grid_run(tmp_path / "g.db", "grid_funding_short", fail_from)[1].conn.close()
    full = run_event_backtest(candles, "grid_funding_short", GRID, Account(), funding=funding)
    assert any(c.open_time > stale_at for c in full.cycles)
    want = run_event_backtest(candles, "grid_funding_short", GRID, Account(), funding=known)
    assert not any(c.open_time > stale_at + H for c in want.cycles)
    assert build_report(tmp_path / "g.db", Account()) == [want.to_spec_json()]


def test_a_malformed_answer_appends_nothing(caplog) -> None:
    """A rate missing, times out of order, or not a list: nothing appended, logged, counted."""

    class Garbled(FundingExchange):
        def __init__(self, answer) -> None:
            super().__init__([], [], clock=lambda: 0)
            self.answer = answer

        async def fetch_funding_rate_history(self, symbol, since=None, limit=None, params={}):
            self.polls += 1
            return self.answer

    good = {"timestamp": 10 * H, "fundingRate": 0.0001}
    for answer in ([{"timestamp": 10 * H, "fundingRate": None}], [dict(good), {"timestamp": 9 * H + 1,
                                                                              "fundingRate": 0.0}],
                   {"data": []}, [dict(good), "x"]):
        rec = FundingRecorder(Garbled(answer), "BTC/USDT:USDT", "1h", None, ([0], [0.0002]), retry=FAST)
        with caplog.at_level(logging.ERROR, logger="core.data.funding_stream"):
            assert asyncio.run(rec.on_candle_closed(9 * H)) is None
        assert rec.failures == 1 and rec.ts == [0] and rec.rate == [0.0002], answer
    assert sum(r.levelno == logging.ERROR for r in caplog.records) == 4
    # an older or repeated rate is not appended (strictly increasing times only)
    rec = FundingRecorder(Garbled([{"timestamp": 0, "fundingRate": 0.5}, dict(good)]), "BTC/USDT:USDT", "1h",
                          None, ([0], [0.0002]), retry=FAST)
    assert asyncio.run(rec.on_candle_closed(9 * H)) == [(10 * H, 0.0001)]
    assert rec.ts == [0, 10 * H] and rec.rate == [0.0002, 0.0001]
    # no poll before a rate can be due (1 h after the last one)
    assert asyncio.run(rec.on_candle_closed(10 * H - 1)) is None and rec.exchange.polls == 1


def test_the_live_series_reads_as_the_static_pair() -> None:
    """Same lookups (and staleness) for a recorder's series as for the (ts, rate) pair it holds."""
    _, funding = market()
    rec = FundingRecorder(FundingExchange([], [], clock=lambda: 0), "BTC/USDT:USDT", "1h", None, funding)
    a, b = funding_lookup(funding, MAX_RATE_AGE_MS), funding_lookup(rec, MAX_RATE_AGE_MS)
    probe = np.arange(int(funding[0][0]) - 2 * H, int(funding[0][-1]) + 30 * H, 1_800_000 + 7)
    for t in probe.tolist():
        x, y = a(t), b(t)
        assert (math.isnan(x) and math.isnan(y)) or x == y, t
    late = int(funding[0][-1]) + 20 * H
    assert math.isnan(b(late))
    rec.ts.append(late - H)                     # a refreshed rate is seen at once
    rec.rate.append(-0.0003)
    assert b(late) == -0.0003 and math.isnan(a(late))


def test_the_engine_hook_polls_the_funding_recorder_and_closes_it(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from core.engine.assembly import _attach_recorder

    closed = []

    class Ex(FundingExchange):
        async def close(self) -> None:
            closed.append(True)

    rec = FundingRecorder(Ex([8 * H], [0.0001], clock=lambda: 9 * H), "BTC/USDT:USDT", "1h", None, retry=FAST)
    engine = SimpleNamespace(candle_hooks=[])
    src = SimpleNamespace(timeframe="1h", aclose=None)
    _attach_recorder(engine, src, rec)
    (hook,) = engine.candle_hooks

    async def run() -> None:
        hook(SimpleNamespace(symbol="ETH/USDT:USDT", timeframe="1h"), 7 * H, 1.0, 1.0, 1.0, 1.0)
        mine = SimpleNamespace(symbol="BTC/USDT:USDT", timeframe="1h")
        hook(mine, 7 * H, 1.0, 1.0, 1.0, 1.0)
        hook(mine, 7 * H, 1.0, 1.0, 1.0, 1.0)      # a second runner on the symbol: one poll
        await asyncio.sleep(0.01)
        await src.aclose()

    asyncio.run(run())
    assert rec.exchange.polls == 1 and rec.ts == [8 * H] and closed == [True]


def test_the_live_plan_refreshes_the_stored_rates(tmp_path: Path) -> None:
    """On the live feed (paper) the engine gives `funding` and `grid_funding` a FundingRecorder
    warmed up with the stored rates, polled after each candle by the engine's hook."""
    pytest.importorskip("ccxt.pro")
    import shutil

    import yaml

    from core.config import load_config
    from core.engine.assembly import RunOptions, build_engine, plan_engine
    from core.paths import DEFAULT_CONFIG_DIR
    from core.storage.candle_store import upsert_funding_rates

    conf = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, conf)
    doc = yaml.safe_load((conf / "strategies.yaml").read_text())
    for name in ("funding", "grid_funding"):
        doc["strategies"][name]["enabled"] = True
    (conf / "strategies.yaml").write_text(yaml.safe_dump(doc))
    cfg = load_config(conf)
    db = tmp_path / "p.db"
    conn = open_sync(db)
    upsert_funding_rates(conn, "BTC/USDT:USDT", np.array([0, 8 * H], dtype=np.int64), np.array([1e-4, -2e-4]))
    conn.close()
    plan = plan_engine(cfg, RunOptions(db=db))
    src = next(s for s in plan.sources if s.symbol == "BTC/USDT:USDT")
    assert isinstance(src.funding, FundingRecorder) and src.funding_recorder is src.funding
    assert src.funding.ts == [0, 8 * H] and src.funding.rate == [1e-4, -2e-4]
    assert {"funding", "grid_funding"} <= {s.strategy for s in plan.specs if s.symbol == src.symbol}
    engine = build_engine(cfg, RunOptions(db=db), plan=plan)
    assert len(engine.candle_hooks) >= 1

    async def close() -> None:
        for s in plan.sources:
            if s.aclose is not None:
                await s.aclose()

    asyncio.run(close())


def test_a_newest_page_that_may_skip_rates_is_used_but_not_stored(tmp_path: Path, caplog) -> None:
    """bitget answers its newest page: when all of it is newer than the last known rate, rates
    may be missing in between; the page feeds the signal but the store keeps its gap-free prefix
    (the next `radar data download --funding` resumes from it)."""
    fts = [8 * H * (k + 10) for k in range(150)]
    rates = [1e-5 * (k % 7 - 3) for k in range(150)]
    conn = open_sync(tmp_path / "gap.db")
    rec = FundingRecorder(FundingExchange(fts, rates, clock=lambda: fts[-1]), "BTC/USDT:USDT", "1h", conn,
                          ([0], [0.0001]), retry=FAST)
    with caplog.at_level(logging.WARNING, logger="core.data.funding_stream"):
        got = asyncio.run(rec.on_candle_closed(fts[-1] - H))
    assert got == list(zip(fts[-100:], rates[-100:])) and rec.ts == [0] + fts[-100:]
    assert not rec.storing and any("no longer stored" in m.getMessage() for m in caplog.records)
    assert load_funding_rates(conn, "BTC/USDT:USDT")[0].tolist() == []
    conn.close()


def test_a_hanging_refresh_does_not_hold_the_grid_candle(tmp_path: Path, monkeypatch, caplog) -> None:
    """A refresh that does not answer is abandoned after the budget: the candle is processed on
    the rates known (the exchange's retries must not hold a live candle's order updates)."""
    import core.engine.grid_runner as gr

    monkeypatch.setattr(gr, "FUNDING_REFRESH_BUDGET_S", 0.05)
    candles, funding = market()
    rec, now = recorder(tmp_path / "h.db", candles, funding)

    async def hang(ts_open: int):
        await asyncio.Event().wait()

    rec.on_candle_closed = hang
    store = StateStore(tmp_path / "h.db")
    strat = registry.create("grid_funding_short", GRID)
    r = GridRunner("grid_funding_short", GRID, candles.symbol, "1h", Account(), store, KillSwitch(store), None,
                   mode="paper", venue=lambda ids: SimGridVenue(strat, candles.symbol, Account(), ids, 0.0), funding=rec)
    r.restore([])

    async def run() -> None:
        assert await r.connect()
        for i in range(3):
            t = int(candles.ts[i])
            await asyncio.wait_for(r.on_candle(t, *(float(a[i]) for a in (candles.open, candles.high, candles.low,
                                                                            candles.close))), 2.0)

    with caplog.at_level(logging.ERROR):
        asyncio.run(run())
    store.close()
    assert r.cursor == int(candles.ts[2])
    assert sum("abandoned for this candle" in m for m in caplog.messages) == 3


def test_a_failing_refresh_logs_the_first_failure_then_every_12th_and_the_recovery(caplog) -> None:
    from core.data.funding_stream import REPEAT_ERROR_EVERY

    ok = [False]

    class Flaky(FundingExchange):
        async def fetch_funding_rate_history(self, symbol, since=None, limit=None, params={}):
            self.polls += 1
            if not ok[0]:
                raise ccxt.ExchangeError('bitget {"code":"40034","msg":"recorded failure"}')
            return []

    rec = FundingRecorder(Flaky([], [], clock=lambda: 0), "BTC/USDT:USDT", "1h", None, ([0], [0.0002]), retry=FAST)
    with caplog.at_level(logging.INFO, logger="core.data.funding_stream"):
        for k in range(25):
            asyncio.run(rec.on_candle_closed(k * H))
        ok[0] = True
        asyncio.run(rec.on_candle_closed(25 * H))
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert rec.failures == 25 and len(errors) == 1 + 24 // REPEAT_ERROR_EVERY == 3
    assert rec.failing == 0 and any("works again after 25" in r.getMessage() for r in caplog.records)
