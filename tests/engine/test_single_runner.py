"""SingleStrategyRunner (core.engine.single_runner): a paper replay of a single-position strategy
gives exactly the event backtest's trades and equity (bit-identical floats); a restart on the
same database resumes with identical results; every recorded open position has its stop.

Real data: the first 3000 candles of binance-spot BTC/USDT 1h (the five spot strategies) and
of binance-futures BTC/USDT:USDT 5m with its 8h funding rates (funding).
"""

from __future__ import annotations

import functools
import gzip
import json
import math
import time
from pathlib import Path

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


@functools.lru_cache(maxsize=None)
def full_btc() -> Candles:
    return load_from_file(shared_file(BTC_1H))


@functools.lru_cache(maxsize=None)
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


def backtest(name: str, c: Candles, fund, params: dict | None = None):
    return run_single_backtest(c, registry.create(name, params or {}), Account(), funding=fund)


def runner(db: Path, name: str, c: Candles, fund, bus: EventBus | None = None, params: dict | None = None,
           store: StateStore | None = None) -> SingleStrategyRunner:
    store = store or StateStore(db)
    return SingleStrategyRunner(name, params or {}, c.symbol, c.timeframe, Account(), store, KillSwitch(store), bus,
                                funding=fund)


def assert_same(r: SingleStrategyRunner, bt) -> None:
    """Trades, final cash and the per-candle equity curve identical to the backtest's."""
    assert r.gateway.cycles == bt.cycles
    assert r.gateway.engine.cash == bt.final_equity
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
    for row in rows(c):
        r.on_candle(*row)
    r.finish()
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
        for row in rows(c):
            r.on_candle(*row)
        r.finish()
        conn = r.store.conn
        open_rows = conn.execute("SELECT p.stop, p.stop_client_id, p.levels_filled, o.purpose, o.price "
                                 "FROM trading_positions p LEFT JOIN trading_orders o "
                                 "ON o.client_id = p.stop_client_id WHERE p.qty > 0").fetchall()
        assert len(open_rows) == len(r.gateway.cycles) > 0
        for stop, stop_cid, levels, purpose, _price in open_rows:
            assert stop is not None and math.isfinite(stop), f"{name}: an open position without a stop"
            assert stop_cid is not None and purpose == "stop" and levels == 1
        flat = conn.execute("SELECT count(*) FROM trading_positions WHERE qty = 0").fetchone()[0]
        assert flat == len(r.gateway.cycles)
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
        for row in all_rows[start:cut]:
            r.on_candle(*row)
        for row in all_rows[max(0, cut - 3):cut]:      # already processed: ignored
            r.on_candle(*row)
        if cut == N:
            r.finish()
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
    for row in all_rows[:boom_at]:
        r.on_candle(*row)

    def boom(ts: int) -> None:
        raise RuntimeError("crash after the fills, before the commit")

    r.on_equity = boom
    with pytest.raises(RuntimeError):
        r.on_candle(*all_rows[boom_at])
    r.store.close()
    r2 = runner(db, "bollinger_mr", c, fund)
    assert r2.restore(all_rows[:boom_at]) is True
    assert r2.cursor == all_rows[boom_at - 1][0] and len(r2.gateway.cycles) == 5
    for row in all_rows[boom_at:]:
        r2.on_candle(*row)
    r2.finish()
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
    for row in rows(tail):
        r.on_candle(*row)
    r.finish()
    assert r.gateway.cycles == bt.cycles and r.gateway.engine.cash == bt.final_equity
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
    for row in all_rows[:t_in]:
        r.on_candle(*row)
    assert r.position()["qty"] > 0
    r.kill.trip("test", reason="test")
    assert r.cancel_entries() == 0
    r.flatten("kill")
    assert r.position()["qty"] == 0.0 and r.gateway.cycles[-1].exit_reason == "kill"
    n = len(r.gateway.cycles)
    for row in all_rows[t_in:]:
        r.on_candle(*row)
    r.finish()
    assert len(r.gateway.cycles) == n                      # no entry while the kill switch is on
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
        for row in rows(c):
            r.on_candle(*row)
        r.finish()
        events = [rej.get_nowait() for _ in range(len(rej))]
        if busy:
            assert r.gateway.cycles == [] and r.gateway.engine.cash == 10_000.0
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
    for row in rows(c):
        flag["busy"] = not t1 <= row[0] < t3
        r.on_candle(*row)
    r.finish()
    assert [e.ts for e in (rej.get_nowait() for _ in range(len(rej)))] == [bt.cycles[0].open_time, t3]
    assert r.executor.risk_rejections == 2 and [x.open_time for x in r.gateway.cycles] == [t1, bt.cycles[2].open_time]
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
    assert set(STREAMS) == {"vwap_rsi", "momentum", "bollinger_mr", "donchian_breakout", "supertrend", "funding"}
    for row in rows(c):
        r.on_candle(*row[:5])                              # the engine's 5-value call
        p, g = r.position(), r.grid_state()
        assert p["qty"] == 0.0 or (p["stop"] is not None and g["stop"] == p["stop"] and g["levels_filled"] == 1)
        assert {rec[0] for rec in r.executor.orders.values()} <= {"stop", "take_profit"}
        assert bool(r.executor.orders) == (p["qty"] > 0)
    assert r.cursor == int(c.ts[-1]) and r.last_close == float(c.close[-1]) and r.n_candles == len(c)
    assert g["cycles"] == len(r.gateway.cycles) and json.dumps(g)
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
    t0 = time.perf_counter()
    for row in rows(c):
        r.on_candle(*row)
    r.finish()
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
    for row in rows(c):
        r.on_candle(*row)
    r.finish()
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
    for row in rows(c):
        r.on_candle(*row)
    r.finish()
    assert r.gateway.cycles == [] and r.gateway.engine.cash == 10_000.0
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
        for row in rows(c):
            r.on_candle(*row)
        r.finish()
        if approved:
            assert len(rej) == 0
            assert [(x.open_time, x.close_time, x.exit_reason) for x in r.gateway.cycles] == \
                   [(x.open_time, x.close_time, x.exit_reason) for x in bt.cycles]
            assert r.gateway.cycles[0].qty < bt.cycles[0].qty
        else:
            assert r.gateway.cycles == [] and {e.reason for e in (rej.get_nowait() for _ in range(len(rej)))} == \
                   {"margin"}
        store.close()


class _FixedExits(SinglePositionStrategy):
    """Exits 10 below / 20 above the fill (long), for the gateway test."""

    name = "fixed"
    params: dict = {}

    def on_candle_open(self, history):
        return None

    def manage(self, history, entry_price):
        return entry_price - 10.0, entry_price + 20.0


def test_single_paper_gateway_protocol() -> None:
    from core.executor.client_ids import ClientIds
    from core.model.errors import OrderNotFound, OrderRejected
    from core.model.orders import OrderRequest
    from core.strategies.base import CandleHistory
    from core.venues.sim.single_venue import SinglePaperGateway

    ids = ClientIds("rd", "fixed", "X/USDT")
    gw = SinglePaperGateway(_FixedExits(), CandleHistory(), "X/USDT", Account(), ids)
    with pytest.raises(OrderRejected):
        gw.place_order(OrderRequest(ids(0, -1, "stop"), "X/USDT", "stop", "sell", 90.0))
    with pytest.raises(OrderNotFound):
        gw.cancel_order("nope")
    # a limit entry that is not reached expires with its candle
    gw.place_order(OrderRequest(ids(0, 0, "entry"), "X/USDT", "entry", "buy", 50.0, 0))
    assert [o.purpose for o in gw.fetch_open_orders()] == ["entry"]
    assert gw.match_candle(0, 100.0, 101.0, 99.0, 100.5) == [] and gw.expired == [ids(0, 0, "entry")]
    # a market entry: filled at the open, reported with the stop set right after the fill
    gw.place_order(OrderRequest(ids(0, 1, "entry"), "X/USDT", "entry", "buy", None, 1))
    (f,) = gw.match_candle(1, 100.0, 105.0, 95.0, 104.0)
    assert (f.purpose, f.price, f.level, f.pos_stop, f.pos_levels) == ("entry", 100.0, 1, 90.0, 1)
    assert gw.entry_exits.pop(f.client_id) == (90.0, 120.0)
    assert gw.fetch_position().qty == f.qty and gw.fetch_position().stop == 90.0
    assert {o.purpose: o.price for o in gw.fetch_open_orders()} == {"stop": 90.0, "take_profit": 120.0}
    gw.amend_order(ids(0, -1, "stop"), 97.0)
    (x,) = gw.match_candle(2, 104.0, 104.5, 96.0, 96.5)        # red candle: O -> H -> L reaches 97
    assert (x.client_id, x.purpose, x.reason, x.price) == (ids(0, -1, "stop"), "stop", "sl", 97.0)
    assert gw.fetch_position().qty == 0.0 and gw.fetch_open_orders() == []
    assert gw.close_position(ids(1, -1, "exit"), 3, 96.5, "kill") is None
    assert gw.fetch_balance() == gw.engine.cash == gw.cycles[0].pnl + 10_000.0
    # the account survives a snapshot / restore through JSON
    state = json.loads(json.dumps(gw.snapshot()))
    gw2 = SinglePaperGateway(_FixedExits(), CandleHistory(), "X/USDT", Account(), ids)
    gw2.restore(state, list(gw.cycles))
    assert json.dumps(gw2.snapshot()) == json.dumps(gw.snapshot()) and gw2.cycles == gw.cycles
