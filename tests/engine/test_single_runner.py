"""SingleStrategyRunner (core.engine.single_runner): a paper replay of a single-position strategy
gives exactly the event backtest's trades and equity (bit-identical floats); a restart on the
same database resumes with identical results; every recorded open position has its stop. The
runner's executor drives the simulated venue through the async `Gateway` contract only (plus
its one documented sim-only hook).

Real data: the first 3000 candles of binance-spot BTC/USDT 1h (the five spot strategies) and
of binance-futures BTC/USDT:USDT 5m with its 8h funding rates (funding).
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import math
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from core.backtest.loading import load_from_file
from core.backtest.report import build_report
from core.backtest.single_driver import run_single_backtest
from core.engine.single_runner import SingleStrategyRunner
from core.errors import RadarError
from core.events.bus import EventBus, FillEvent, OrderEvent, PositionEvent, RiskRejection
from core.executor.kill_switch import KillSwitch
from core.executor.state_store import StateStore
from core.indicators.signal_streams import STREAMS, funding_lookup
from core.model.account import Account
from core.model.candles import Candles
from core.strategies import registry
from core.strategies.base import SinglePositionStrategy
from tests.support.shared_data import shared_file

BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"
BTC_5M_PERP = "binance-futures/BTC_USDT_USDT-5m-futures.json.gz"
BTC_FUNDING = "binance-futures/BTC_USDT_USDT-8h-funding_rate.json.gz"
SPOT_STRATEGIES = ("vwap_rsi", "momentum", "bollinger_mr", "donchian_breakout", "supertrend")
ALL = (*SPOT_STRATEGIES, "funding")
N = 3000


@functools.cache
def full_btc() -> Candles:
    return load_from_file(shared_file(BTC_1H))


@functools.cache
def perp() -> tuple[Candles, tuple[np.ndarray, np.ndarray]]:
    c = load_from_file(shared_file(BTC_5M_PERP))
    with gzip.open(shared_file(BTC_FUNDING), "rt") as f:
        fr = np.asarray(json.load(f), dtype=np.float64)
    return c, (fr[:, 0].astype(np.int64), fr[:, 1].copy())


def head(c: Candles, n: int) -> Candles:
    return c.between(None, int(c.ts[n])) if n < len(c) else c


def series(name: str, n: int = N) -> tuple[Candles, tuple | None]:
    """The candles (and funding series) a strategy is tested on."""
    if name == "funding":
        c, fund = perp()
        return head(c, n), fund
    return head(full_btc(), n), None


def rows(c: Candles) -> list[tuple]:
    return list(zip(*(a.tolist() for a in (c.ts, c.open, c.high, c.low, c.close, c.volume))))


async def _feed(r: SingleStrategyRunner, rws: list[tuple], finish: bool) -> None:
    for row in rws:
        await r.on_candle(*row)
    if finish:
        await r.finish()


def feed(r: SingleStrategyRunner, rws: list[tuple], finish: bool = False) -> None:
    """The runner through `rws` (then `finish` when asked), in one event loop."""
    asyncio.run(_feed(r, rws, finish))


def backtest(name: str, c: Candles, fund, params: dict | None = None):
    return run_single_backtest(c, registry.create(name, params or {}), Account(), funding=fund)


def runner(db: Path, name: str, c: Candles, fund, bus: EventBus | None = None, params: dict | None = None,
           store: StateStore | None = None) -> SingleStrategyRunner:
    store = store or StateStore(db)
    return SingleStrategyRunner(name, params or {}, c.symbol, c.timeframe, Account(), store, KillSwitch(store), bus,
                                funding=fund)


def assert_same(r: SingleStrategyRunner, bt) -> None:
    """Trades, final cash and the per-candle equity curve identical to the backtest's."""
    assert r.cycles == bt.cycles
    assert r.book.cash == bt.final_equity
    assert r.venue.cycles == r.cycles and r.venue.engine.cash == r.book.cash   # the venue and the book agree
    assert r.equity_last == bt.final_equity
    ts, eq = r.store.load_equity(r.runner_id)
    assert ts == bt.ts.tolist()
    assert eq == bt.equity.tolist()
    assert r.store.load_cycles(r.runner_id) == bt.cycles


@pytest.mark.parametrize("name", ALL)
def test_paper_replay_equals_event_backtest(tmp_path: Path, name: str) -> None:
    c, fund = series(name)
    bt = backtest(name, c, fund)
    assert bt.n_cycles >= 10, f"{name}: too few trades in the slice to mean much"
    bus = EventBus()
    sub = bus.subscribe((FillEvent, PositionEvent, OrderEvent), maxsize=100)
    r = runner(tmp_path / "r.db", name, c, fund, bus)
    assert r.restore(None) is False
    feed(r, rows(c), finish=True)
    assert_same(r, bt)
    assert r.finished and r.position()["qty"] == 0.0
    # the stored report is the backtest's spec JSON
    (rep,) = build_report(tmp_path / "r.db", Account())
    assert rep == bt.to_spec_json()
    # records: two fills per trade, one cycle per trade with levels_filled = 1, nothing left open
    conn = r.store.conn
    assert conn.execute("SELECT count(*) FROM trading_fills").fetchone()[0] == 2 * bt.n_cycles
    assert conn.execute("SELECT count(*) FROM trading_cycles WHERE levels_filled=1").fetchone()[0] == bt.n_cycles
    assert conn.execute("SELECT count(*) FROM trading_orders WHERE status IN ('open', 'pending')").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM trading_intents WHERE status != 'done'").fetchone()[0] == 0
    kinds = dict(conn.execute("SELECT purpose, count(*) FROM trading_orders GROUP BY purpose").fetchall())
    assert kinds["entry"] == bt.n_cycles and kinds["stop"] == bt.n_cycles
    reasons = dict(conn.execute("SELECT reason, count(*) FROM trading_fills WHERE kind='exit' "
                                "GROUP BY reason").fetchall())
    assert reasons == {k: sum(1 for x in bt.cycles if x.exit_reason == k) for k in {x.exit_reason for x in bt.cycles}}
    # the bus saw every fill and position change (critical events: never dropped)
    seen = {FillEvent: 0, PositionEvent: 0, OrderEvent: 0}
    while len(sub):
        seen[type(sub.get_nowait())] += 1
    assert seen[FillEvent] == 2 * bt.n_cycles and seen[PositionEvent] == 2 * bt.n_cycles
    assert seen[OrderEvent] >= 2 * bt.n_cycles
    r.store.close()


def test_every_open_position_row_has_its_stop(tmp_path: Path) -> None:
    for name in ALL:
        c, fund = series(name)
        r = runner(tmp_path / f"{name}.db", name, c, fund)
        r.restore(None)
        feed(r, rows(c), finish=True)
        conn = r.store.conn
        open_rows = conn.execute("SELECT p.stop, p.stop_client_id, p.levels_filled, o.purpose, o.price "
                                 "FROM trading_positions p LEFT JOIN trading_orders o "
                                 "ON o.client_id = p.stop_client_id WHERE p.qty > 0").fetchall()
        assert len(open_rows) == len(r.cycles) > 0
        for stop, stop_cid, levels, purpose, _price in open_rows:
            assert stop is not None and math.isfinite(stop), f"{name}: an open position without a stop"
            assert stop_cid is not None and purpose == "stop" and levels == 1
        flat = conn.execute("SELECT count(*) FROM trading_positions WHERE qty = 0").fetchone()[0]
        assert flat == len(r.cycles)
        r.store.close()


@pytest.mark.parametrize("name", ALL)
def test_restart_mid_run_gives_identical_results(tmp_path: Path, name: str) -> None:
    """Stop at a few points (one of them inside a trade), start a new runner on the same
    database, restore it as the engine does (the last rows up to the cursor, or none), go on."""
    c, fund = series(name)
    bt = backtest(name, c, fund)
    in_trade = next(x for x in bt.cycles if x.close_time > x.open_time + 2 * (int(c.ts[1]) - int(c.ts[0])))
    t_in = int(np.searchsorted(c.ts, in_trade.open_time)) + 1          # the candle after the entry
    cuts = sorted({N // 5, t_in, 2 * N // 3})
    all_rows = rows(c)
    db = tmp_path / "s.db"
    start = 0
    for i, cut in enumerate([*cuts, N]):
        r = runner(db, name, c, fund)
        had_state = r.restore(None if i % 2 else all_rows[max(0, start - 500):start])
        assert had_state is (start > 0)
        if start:
            assert r.cursor == all_rows[start - 1][0]
        if start == t_in:
            assert r.position()["qty"] > 0 and r.position()["stop"] is not None
        feed(r, all_rows[start:cut])
        feed(r, all_rows[max(0, cut - 3):cut])          # already processed: ignored
        if cut == N:
            feed(r, [], finish=True)
            assert_same(r, bt)
        r.store.close()
        start = cut


def test_crash_inside_a_candle_rolls_back_and_resumes(tmp_path: Path) -> None:
    c, fund = series("bollinger_mr")
    bt = backtest("bollinger_mr", c, fund)
    all_rows = rows(c)
    db = tmp_path / "c.db"
    r = runner(db, "bollinger_mr", c, fund)
    r.restore(None)
    boom_at = int(np.searchsorted(c.ts, bt.cycles[5].close_time))        # a candle with an exit fill
    feed(r, all_rows[:boom_at])

    def boom(ts: int) -> None:
        raise RuntimeError("crash after the fills, before the commit")

    r.on_equity = boom
    with pytest.raises(RuntimeError):
        feed(r, [all_rows[boom_at]])
    r.store.close()
    r2 = runner(db, "bollinger_mr", c, fund)
    assert r2.restore(all_rows[:boom_at]) is True
    assert r2.cursor == all_rows[boom_at - 1][0] and len(r2.cycles) == 5
    feed(r2, all_rows[boom_at:], finish=True)
    assert_same(r2, bt)
    r2.store.close()


@pytest.mark.parametrize("name", SPOT_STRATEGIES)
def test_warm_up_from_history_rows(tmp_path: Path, name: str) -> None:
    """Without stored state, history rows (5 values: no volume, or 6) warm the signals up: the
    runner trades from its first candle exactly as a backtest whose signals were computed on
    the whole series."""
    c, _ = series(name)
    strat = registry.create(name, {})
    a = strat.signal_arrays(strat.params, c.ts, c.open, c.high, c.low, c.close, c.volume)
    k = next(t for t in range(1000, N) if a.sig[t] == 0 and a.sig[t - 1] == 0)
    strat.prepare = lambda candles: None                # keep the whole-series arrays, from index k
    strat._pre_ts = c.ts[k:].tolist()
    strat._pre = (a.sig[k:].tolist(), a.sref[k:].tolist(), a.tref[k:].tolist())
    tail = c.between(int(c.ts[k]), None)
    bt = run_single_backtest(tail, strat, Account())
    assert bt.n_cycles > 5
    r = runner(tmp_path / "w.db", name, c, None)
    warm = rows(c)[:k]
    assert r.restore(warm if name == "vwap_rsi" else [w[:5] for w in warm]) is False
    assert r.cursor is None and len(r.history) == k
    feed(r, rows(tail), finish=True)
    assert r.cycles == bt.cycles and r.book.cash == bt.final_equity
    r.store.close()


def test_kill_switch_blocks_entries_and_flatten_closes(tmp_path: Path) -> None:
    c, fund = series("momentum")
    bt = backtest("momentum", c, fund)
    trade = bt.cycles[3]
    t_in = int(np.searchsorted(c.ts, trade.open_time)) + 1
    all_rows = rows(c)
    bus = EventBus()
    rej = bus.subscribe((RiskRejection,))
    r = runner(tmp_path / "k.db", "momentum", c, fund, bus)
    r.restore(None)
    feed(r, all_rows[:t_in])
    assert r.position()["qty"] > 0
    r.kill.trip("test", reason="test")
    assert asyncio.run(r.cancel_entries()) == 0
    asyncio.run(r.flatten("kill"))
    assert r.position()["qty"] == 0.0 and r.cycles[-1].exit_reason == "kill"
    n = len(r.cycles)
    feed(r, all_rows[t_in:], finish=True)
    assert len(r.cycles) == n                      # no entry while the kill switch is on
    assert len(rej) == 1                                   # one rejection per episode
    conn = r.store.conn
    assert conn.execute("SELECT count(*) FROM trading_fills WHERE reason='kill'").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM trading_orders WHERE status='open'").fetchone()[0] == 0
    r.store.close()


def test_symbol_busy_blocks_entries(tmp_path: Path) -> None:
    """Grid and single-position trades are mutually exclusive per symbol: while `symbol_busy`
    says another runner holds a position there, a flat runner places no entry (one
    RiskRejection "symbol_busy" per episode, counted); a symbol never busy changes nothing."""
    c, fund = series("donchian_breakout", 1500)
    bt = backtest("donchian_breakout", c, fund)
    assert bt.n_cycles >= 5
    for busy in (True, False):
        bus = EventBus()
        rej = bus.subscribe((RiskRejection,), maxsize=10_000)
        store = StateStore(tmp_path / f"busy-{busy}.db")
        r = SingleStrategyRunner("donchian_breakout", {}, c.symbol, c.timeframe, Account(), store, KillSwitch(store),
                                 bus, symbol_busy=lambda busy=busy: busy)
        assert r.restore(None) is False
        feed(r, rows(c), finish=True)
        events = [rej.get_nowait() for _ in range(len(rej))]
        if busy:
            assert r.cycles == [] and r.book.cash == 10_000.0
            assert events == [RiskRejection("donchian_breakout", c.symbol, bt.cycles[0].open_time, "symbol_busy",
                                            "another strategy holds a position on the symbol")]
            assert r.executor.risk_rejections == 1
            assert store.conn.execute("SELECT count(*) FROM trading_orders").fetchone()[0] == 0
        else:
            assert_same(r, bt)
            assert events == [] and r.executor.risk_rejections == 0
        store.close()
    # busy, free (between the backtest's 2nd and 4th entries), busy again: two episodes
    t1, t3 = bt.cycles[1].open_time, bt.cycles[3].open_time
    flag = {"busy": True}
    bus = EventBus()
    rej = bus.subscribe((RiskRejection,), maxsize=10_000)
    store = StateStore(tmp_path / "busy-episodes.db")
    r = SingleStrategyRunner("donchian_breakout", {}, c.symbol, c.timeframe, Account(), store, KillSwitch(store), bus,
                             symbol_busy=lambda: flag["busy"])

    async def run() -> None:
        for row in rows(c):
            flag["busy"] = not t1 <= row[0] < t3
            await r.on_candle(*row)
        await r.finish()

    asyncio.run(run())
    assert [e.ts for e in (rej.get_nowait() for _ in range(len(rej)))] == [bt.cycles[0].open_time, t3]
    assert r.executor.risk_rejections == 2 and [x.open_time for x in r.cycles] == [t1, bt.cycles[2].open_time]
    store.close()


def test_interface_and_refusals(tmp_path: Path) -> None:
    c, _ = series("supertrend", 600)
    store = StateStore(tmp_path / "i.db")
    ks = KillSwitch(store)
    with pytest.raises(RadarError, match="funding-rate series"):
        SingleStrategyRunner("funding", {}, "BTC/USDT:USDT", "5m", Account(), store, ks)
    with pytest.raises(TypeError):
        SingleStrategyRunner("envelope_dca", {}, c.symbol, c.timeframe, Account(), store, ks)
    r = SingleStrategyRunner("supertrend", {}, c.symbol, c.timeframe, Account(), store, ks)
    assert r.key == (c.symbol, c.timeframe) and r.cursor is None and r.equity_last == 10_000.0
    assert set(STREAMS) == {"vwap_rsi", "momentum", "bollinger_mr", "donchian_breakout", "supertrend", "funding",
                            "liquidation"}
    for name in ("on_candle", "finish", "flatten", "cancel_entries"):
        assert asyncio.iscoroutinefunction(getattr(r, name)), name

    async def run() -> dict:
        for row in rows(c):
            await r.on_candle(*row[:5])                    # the engine's 5-value call
            p, g = r.position(), r.grid_state()
            assert p["qty"] == 0.0 or (p["stop"] is not None and g["stop"] == p["stop"] and g["levels_filled"] == 1)
            assert {rec[0] for rec in r.executor.orders.values()} <= {"stop", "take_profit"}
            assert bool(r.executor.orders) == (p["qty"] > 0)
        return g

    g = asyncio.run(run())
    assert r.cursor == int(c.ts[-1]) and r.last_close == float(c.close[-1]) and r.n_candles == len(c)
    assert g["cycles"] == len(r.cycles) and json.dumps(g)
    # a funding series as a callable
    rate_at = funding_lookup((np.array([0, 100]), np.array([0.1, -0.2])))
    assert math.isnan(rate_at(-1)) and rate_at(0) == 0.1 and rate_at(99) == 0.1 and rate_at(100) == -0.2
    store.close()


def test_full_btc_replay_speed(tmp_path: Path) -> None:
    """The whole BTC 1h series (45k candles, persistence on) in well under a minute: the
    signals are O(1) per candle (a per-candle recomputation would be O(n²))."""
    c = full_btc()
    bt = backtest("bollinger_mr", c, None)
    r = runner(tmp_path / "f.db", "bollinger_mr", c, None)
    r.restore(None)
    rws = rows(c)
    t0 = time.perf_counter()
    feed(r, rws, finish=True)
    dt = time.perf_counter() - t0
    print(f"\nSingleStrategyRunner bollinger_mr: {len(c)} candles in {dt:.1f} s ({len(c) / dt:,.0f} candles/s)")
    assert_same(r, bt)
    assert dt < 60
    r.store.close()


def _risk_config(per_symbol: float):
    from core.config.risk import RiskConfig

    return RiskConfig.model_validate({
        "account": {"initial_capital": 10000.0, "leverage": 1},
        "fees": {"maker": 0.0002, "taker": 0.0006},
        "limits": {"leverage_cap": 3, "max_open_positions": 4, "max_notional_per_symbol": per_symbol,
                   "max_total_notional": 10 * per_symbol, "daily_loss_limit": 0.9, "max_drawdown": 0.99,
                   "max_same_direction_per_group": 2},
        "kill_switch": {"flatten_on_trip": False},
        "stops": {"recheck_interval_s": 30.0, "placement_retries": 3},
    })


class _ApproveAll:
    """A risk manager that approves every entry and remembers what it was asked."""

    def __init__(self) -> None:
        self.checks = []

    def check_entry(self, check, portfolio, ts_ms=None):
        from core.risk import Approved

        self.checks.append((check, portfolio, ts_ms))
        return Approved(check.symbol, 0.0)


def test_pre_trade_risk_check(tmp_path: Path) -> None:
    """Every entry goes through the risk check before it is placed: approved, nothing changes
    (the check sees the entry's side and its notional, cash x leverage); refused by the real
    RiskManager, no order is placed and each refusal is published."""
    from core.model.clock import ManualClock
    from core.risk import RiskManager, RiskStore

    c, fund = series("donchian_breakout", 1500)
    bt = backtest("donchian_breakout", c, fund)
    approve = _ApproveAll()
    r = runner(tmp_path / "ok.db", "donchian_breakout", c, fund)
    r.executor.risk = approve
    feed(r, rows(c), finish=True)
    assert_same(r, bt)
    assert len(approve.checks) == bt.n_cycles
    for (check, pf, ts), trade in zip(approve.checks, bt.cycles):
        assert ts == trade.open_time and check.side == trade.side and check.is_new_position
        assert math.isclose(check.notional, trade.qty * trade.avg_entry, rel_tol=1e-12)
        assert pf.positions == [] and pf.free_margin > 0
    r.store.close()

    bus = EventBus()
    rej = bus.subscribe((RiskRejection,), maxsize=10_000)
    store = StateStore(tmp_path / "refused.db")
    risk = RiskManager(_risk_config(5000.0), {}, RiskStore(store.conn), ManualClock(int(c.ts[0])), bus)
    r = SingleStrategyRunner("donchian_breakout", {}, c.symbol, c.timeframe, Account(), store, KillSwitch(store), bus,
                             risk=risk)
    r.restore(None)
    feed(r, rows(c), finish=True)
    assert r.cycles == [] and r.book.cash == 10_000.0
    assert r.executor.risk_rejections == len(rej) >= bt.n_cycles
    assert store.conn.execute("SELECT count(*) FROM trading_orders").fetchone()[0] == 0
    store.close()

    # an all-in entry (cash x leverage) never passes the margin rule (notional / leverage +
    # 2 x taker x notional); with the live fee reserve kept out of the sizing it does, and the
    # trades are the backtest's (same times and exits, slightly smaller sizes)
    acc = Account()
    reserve = (acc.maker_fee + 2.0 * acc.taker_fee) * acc.leverage
    for sizing_reserve, approved in ((0.0, False), (reserve, True)):
        bus = EventBus()
        rej = bus.subscribe((RiskRejection,), maxsize=10_000)
        store = StateStore(tmp_path / f"margin{sizing_reserve}.db")
        risk = RiskManager(_risk_config(1e9), {}, RiskStore(store.conn), ManualClock(int(c.ts[0])), bus)
        r = SingleStrategyRunner("donchian_breakout", {}, c.symbol, c.timeframe, acc, store, KillSwitch(store), bus,
                                 risk=risk, sizing_reserve=sizing_reserve)
        feed(r, rows(c), finish=True)
        if approved:
            assert len(rej) == 0
            assert [(x.open_time, x.close_time, x.exit_reason) for x in r.cycles] == \
                   [(x.open_time, x.close_time, x.exit_reason) for x in bt.cycles]
            assert r.cycles[0].qty < bt.cycles[0].qty
        else:
            assert r.cycles == [] and {e.reason for e in (rej.get_nowait() for _ in range(len(rej)))} == \
                   {"margin"}
        store.close()


class _FixedExits(SinglePositionStrategy):
    """Exits 10 below / 20 above the fill (long), for the gateway test."""

    name = "fixed"
    params: ClassVar[dict] = {}

    def on_candle_open(self, history):
        return None

    def manage(self, history, entry_price):
        return entry_price - 10.0, entry_price + 20.0


def test_sim_single_venue_implements_the_gateway_protocol() -> None:
    from core.executor.client_ids import ClientIds
    from core.executor.gateway import Gateway
    from core.model.errors import DuplicateClientId, OrderNotFound, OrderRejected
    from core.model.orders import OrderRequest
    from core.strategies.base import CandleHistory, EntryIntent
    from core.venues.sim.single_venue import SimSingleVenue

    ids = ClientIds("rd", "fixed", "X/USDT")
    gw = SimSingleVenue(_FixedExits(), CandleHistory(), "X/USDT", Account(), ids)
    assert isinstance(gw, Gateway)
    assert (gw.external, gw.rests_take_profit, gw.renames_on_amend) == (False, True, False)
    e0, e1, e2 = ids(0, 0, "entry"), ids(0, 1, "entry"), ids(1, 0, "entry")
    stop0, tp0, stop1, tp1, exit1 = (ids(0, -1, "stop"), ids(0, -1, "take_profit"), ids(1, -1, "stop"),
                                     ids(1, -1, "take_profit"), ids(1, -1, "exit"))

    async def prices() -> dict:
        return {o.purpose: o.price for o in (await gw.fetch_all_open_orders())[0]}

    async def run() -> None:
        with pytest.raises(OrderRejected):
            await gw.place_order(OrderRequest(stop0, "X/USDT", "stop", "sell", 90.0))
        with pytest.raises(OrderNotFound):
            await gw.cancel_order("nope")
        with pytest.raises(OrderNotFound):
            await gw.fetch_order_state("nope")
        assert await gw.reconcile_order("nope") is None
        # a limit entry that is not reached expires with its candle
        await gw.place_order(OrderRequest(e0, "X/USDT", "entry", "buy", 50.0, 0))
        with pytest.raises(DuplicateClientId):
            await gw.place_order(OrderRequest(e0, "X/USDT", "entry", "buy", 50.0, 0))
        assert await prices() == {"entry": 50.0}
        await gw.on_candle(0, 100.0, 101.0, 99.0, 100.5)
        assert (await gw.fetch_order_state(e0)).status == "cancelled"
        assert await gw.fetch_all_open_orders() == ([], [])
        # a market entry with its staged intent: filled at the open, its exits rest from the fill
        gw.stage_entry(e1, EntryIntent("long", None, 80.0, None), 0)
        await gw.place_order(OrderRequest(e1, "X/USDT", "entry", "buy", None, 1))
        await gw.on_candle(1, 100.0, 105.0, 95.0, 104.0)
        st = await gw.fetch_order_state(e1)
        assert (st.status, st.avg_price, st.level, st.ts) == ("filled", 100.0, 1, 1)
        assert st.fee == st.filled * 100.0 * Account().taker_fee
        pos = await gw.fetch_position()
        assert (pos.side, pos.qty, pos.stop) == ("long", st.filled, 90.0)
        assert await prices() == {"stop": 90.0, "take_profit": 120.0}
        assert (await gw.fetch_stop()).client_id == stop0
        with pytest.raises(OrderRejected):
            await gw.cancel_order(stop0)               # the stop goes with the position
        await gw.amend_order(stop0, 97.0)
        await gw.on_candle(2, 104.0, 104.5, 96.0, 96.5)     # red candle: O -> H -> L reaches 97
        x = await gw.fetch_order_state(stop0)
        assert (x.status, x.purpose, x.reason, x.avg_price, x.ts) == ("filled", "stop", "sl", 97.0, 2)
        assert (await gw.fetch_order_state(tp0)).status == "cancelled"
        assert (await gw.fetch_position()).qty == 0.0 and await gw.fetch_all_open_orders() == ([], [])
        cf = await gw.fetch_closing_fill("buy", st.filled)
        assert (cf.price, cf.qty, cf.reason, cf.ts) == (97.0, st.filled, "sl", 2)
        assert await gw.fetch_closing_fill("buy", st.filled) is None
        assert await gw.close_position(exit1, 3, 96.5, "kill") is None
        assert await gw.fetch_balance() == gw.engine.cash == gw.cycles[0].pnl + 10_000.0
        assert [t.client_id for t in await gw.fetch_recent_trades(lambda t: True)] == [e1, stop0]
        # an entry without a staged intent (the order's side, price and preset stop); the
        # take-profit rests without a price, then moves; a market exit
        await gw.place_order(OrderRequest(e2, "X/USDT", "entry", "buy", None, 0, preset_stop=90.0))
        await gw.on_candle(3, 100.0, 101.0, 99.0, 100.0)
        assert await prices() == {"stop": 90.0, "take_profit": 120.0}
        with pytest.raises(DuplicateClientId):
            await gw.place_order(OrderRequest(tp1, "X/USDT", "take_profit", "sell", 130.0))
        await gw.amend_order(tp1, math.nan)
        assert await prices() == {"stop": 90.0, "take_profit": None}
        await gw.amend_order(tp1, 130.0)
        assert gw.engine.take_profit == 130.0
        with pytest.raises(OrderNotFound):
            await gw.amend_order(ids(0, -1, "take_profit"), 1.0)      # an exit of an earlier trade
        # the account and the position survive a snapshot / restore through JSON
        state = json.loads(json.dumps(gw.snapshot()))
        gw2 = SimSingleVenue(_FixedExits(), CandleHistory(), "X/USDT", Account(), ids)
        gw2.restore(state, list(gw.cycles), {stop1: ["stop", -1, 90.0]})       # no take-profit row
        assert json.dumps(gw2.snapshot()) == json.dumps(gw.snapshot()) and gw2.cycles == gw.cycles
        assert [o.purpose for o in (await gw2.fetch_all_open_orders())[0]] == ["stop"]
        with pytest.raises(OrderNotFound):
            await gw2.amend_order(tp1, 125.0)
        await gw2.place_order(OrderRequest(tp1, "X/USDT", "take_profit", "sell", 125.0))
        assert gw2.engine.take_profit == 125.0
        await gw2.cancel_order(tp1)
        assert gw2.engine.take_profit != gw2.engine.take_profit
        fill = await gw.close_position(exit1, 4, 101.0, "kill")
        assert (fill.client_id, fill.purpose, fill.reason, fill.price, fill.ts) == (exit1, "exit", "kill", 101.0, 4)
        assert await gw.fetch_closing_fill("buy", fill.qty) is None          # closed by the caller
        assert (await gw.fetch_order_state(exit1)).status == "filled"
        assert (await gw.fetch_order_state(tp1)).status == "cancelled"
        assert [c.exit_reason for c in gw.cycles] == ["sl", "kill"]

    asyncio.run(run())


class _ProtocolOnly:
    """A venue seen through `allowed` names only (the `Gateway` protocol, and the executor's
    documented sim hook): any other attribute raises AttributeError. `used`: the names asked."""

    def __init__(self, venue, allowed: frozenset[str]) -> None:
        self._venue = venue
        self._allowed = allowed
        self.used: set[str] = set()

    def __getattr__(self, name: str):
        if name not in self._allowed:
            raise AttributeError(f"{name!r} is not part of the Gateway protocol")
        self.used.add(name)
        return getattr(self._venue, name)


def _records(store: StateStore) -> tuple[list, list, list]:
    """The fills, orders and positions of a database, client ids without the database's epoch."""
    q = store.conn.execute
    cid = "substr({0}, instr({0}, '-') + 1)"
    return (q(f"SELECT {cid.format('client_id')}, seq, ts, kind, reason, level, side, price, qty, fee "
              "FROM trading_fills ORDER BY id").fetchall(),
            q(f"SELECT {cid.format('client_id')} AS c, cycle, level, purpose, side, price, status "
              "FROM trading_orders ORDER BY c").fetchall(),
            q(f"SELECT ts, qty, avg_entry, stop, {cid.format('stop_client_id')} FROM trading_positions "
              "ORDER BY id").fetchall())


@pytest.mark.parametrize("name", ["donchian_breakout", "funding"])
def test_executor_speaks_only_the_gateway_protocol(tmp_path: Path, name: str) -> None:
    """SingleExecutor drives its venue through the `Gateway` protocol and the one documented
    sim hook, nothing else: behind a proxy that exposes only those names, a replay (with a
    kill-switch flatten in the middle) gives exactly the records of the unproxied runner."""
    from core.executor.gateway import Gateway
    from core.executor.single_executor import SIM_ENTRY_HOOK

    protocol = frozenset({n for n in vars(Gateway) if not n.startswith("_")} | set(Gateway.__annotations__))
    c, fund = series(name, 2000)
    bt = backtest(name, c, fund)
    assert bt.n_cycles >= 5
    cut = int(np.searchsorted(c.ts, bt.cycles[2].open_time)) + 1         # inside the third trade
    all_rows = rows(c)
    got = []
    for proxied in (False, True):
        r = runner(tmp_path / f"{name}-{proxied}.db", name, c, fund)
        proxy = _ProtocolOnly(r.venue, protocol | {SIM_ENTRY_HOOK})
        assert isinstance(proxy, Gateway)
        if proxied:
            r.executor.gateway = proxy
        feed(r, all_rows[:cut])
        assert r.position()["qty"] > 0
        asyncio.run(r.flatten("kill"))
        feed(r, all_rows[cut:], finish=True)
        got.append((_records(r.store), r.cycles, r.book.cash, r.store.load_equity(r.runner_id)))
        if proxied:
            assert proxy.used - protocol == {SIM_ENTRY_HOOK}
            assert {"place_order", "amend_order", "fetch_order_state", "fetch_position", "fetch_closing_fill",
                    "close_position"} <= proxy.used
        assert r.cycles[2].exit_reason == "kill" and r.venue.cycles == r.cycles
        r.store.close()
    assert got[0] == got[1]


def test_restore_from_a_state_without_the_book(tmp_path: Path) -> None:
    """Databases written before the executor kept its own book (only the venue's account in
    trading_state) resume exactly: the book is taken from the account."""
    c, fund = series("bollinger_mr")
    bt = backtest("bollinger_mr", c, fund)
    in_trade = next(x for x in bt.cycles if x.close_time > x.open_time + 2 * (int(c.ts[1]) - int(c.ts[0])))
    cut = int(np.searchsorted(c.ts, in_trade.open_time)) + 1
    all_rows = rows(c)
    db = tmp_path / "old.db"
    r = runner(db, "bollinger_mr", c, fund)
    feed(r, all_rows[:cut])
    assert r.position()["qty"] > 0
    st = r.store.load_state(r.runner_id)
    g = st["grid"]
    del g["book"]
    r.store.save_state(r.runner_id, st["cursor_ts"], st["n_candles"], st["last_close"], g, st["finished"])
    r.store.close()
    r2 = runner(db, "bollinger_mr", c, fund)
    assert r2.restore(all_rows[:cut]) is True and r2.position()["qty"] > 0
    feed(r2, all_rows[cut:], finish=True)
    assert_same(r2, bt)
    r2.store.close()
