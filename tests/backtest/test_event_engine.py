"""The event-driven engine: result contract, a regression figure on real data, and agreement
with an independent, deliberately simple reference implementation of the spec
(`../shared/specs/envelope_dca.md`) written below, candle by candle."""

from __future__ import annotations

import functools
import gzip
import json
import math

import numpy as np
import pytest

from core.backtest.event_engine import run_event_backtest
from core.errors import UsageError
from core.model.account import Account
from core.model.candles import Candles
from core.strategies.base import ParamError
from tests.support.shared_data import shared_file

DEFAULT = {"ma_period": 7, "num_levels": 3, "envelope_start": 0.05, "envelope_step": 0.03, "sl_percent": 0.20}
REL = 1e-9


@functools.lru_cache(maxsize=None)
def btc_1h() -> Candles:
    path = shared_file("binance-spot/BTC_USDT-1h.json.gz")
    with gzip.open(path, "rt") as f:
        rows = np.asarray(json.load(f), dtype=np.float64)
    return Candles.from_rows("BTC/USDT", "spot", "1h", rows)


def head(c: Candles, n: int) -> Candles:
    return Candles(c.symbol, c.market, c.timeframe, c.ts[:n], c.open[:n], c.high[:n], c.low[:n],
                   c.close[:n], c.volume[:n])


# ------------------------------------------------------------------ the reference implementation

def reference(candles: Candles, side: str, params: dict, c0=10_000.0, lev=1.0, fm=0.0002, ft=0.0006):
    """The spec, read literally: returns (cycles as tuples, equity list, final cash).

    Cycle tuple: (open_ts, close_ts, levels_filled, avg_entry, exit_price, reason, qty, pnl).
    """
    n_ma, n_lv = params["ma_period"], params["num_levels"]
    s, d, p = params["envelope_start"], params["envelope_step"], params["sl_percent"]
    long = side == "long"

    def adverse(x, y):        # x has reached y moving against the position
        return x <= y if long else x >= y

    def favourable(x, y):     # x has reached y moving with the position
        return x >= y if long else x <= y

    rows = list(zip(candles.ts.tolist(), candles.open.tolist(), candles.high.tolist(),
                    candles.low.tolist(), candles.close.tolist()))
    closes = [r[4] for r in rows]
    cash = c0
    fills: list[tuple[float, float]] = []      # (price, qty) of the open cycle
    cycle = {}
    cycles, equity = [], []

    def avg():
        return sum_(q * x for x, q in fills) / sum_(q for _, q in fills)

    def sum_(values):
        total = 0.0
        for v in values:
            total += v
        return total

    def stop():
        a = avg()
        return a * (1 - p) if long else a * (1 + p)

    def buy(ts, price):
        nonlocal cash
        if not fills:
            cycle.update(E=cash, open_ts=ts, fees=0.0)
        qty = (cycle["E"] * lev / n_lv) / price
        fee = qty * price * fm
        cash -= fee
        cycle["fees"] += fee
        fills.append((price, qty))

    def close_all(ts, x, reason):
        nonlocal cash
        q = sum_(qq for _, qq in fills)
        a = avg()
        realised = q * (x - a) if long else q * (a - x)
        xfee = q * x * ft
        cash += realised - xfee
        cycles.append((cycle["open_ts"], ts, len(fills), a, x, reason, q, realised - cycle["fees"] - xfee))
        fills.clear()

    for t, (ts, o, h, lo, c) in enumerate(rows):
        if t >= n_ma:
            total = 0.0
            for j in range(t - n_ma, t):
                total += closes[j]
            m = total / n_ma
            levels = []
            for i in range(n_lv):
                off = s + i * d
                levels.append(m * (1 - off) if long else m * (1 + (1 / (1 - off) - 1)))
            done = False
            if fills:                                   # rule 1: exits at the open
                if adverse(o, stop()):
                    close_all(ts, o, "sl")
                    done = True
                elif favourable(o, m):
                    close_all(ts, o, "tp")
                    done = True
            if not done:
                while len(fills) < n_lv and adverse(o, levels[len(fills)]):
                    buy(ts, o)                          # rule 1: crossed levels fill at the open
                path = [o, lo, h, c] if c >= o else [o, h, lo, c]
                for a, b in zip(path, path[1:]):
                    if a == b or done:
                        continue
                    if (b < a) == long:                 # against the position
                        while True:
                            events = []
                            if fills:
                                events.append((stop(), 0, "sl"))
                            if len(fills) < n_lv:
                                events.append((levels[len(fills)], 1, "level"))
                            # first met from the start: the highest (long) / lowest (short); S first on a tie
                            events.sort(key=lambda e: ((-e[0] if long else e[0]), e[1]))
                            price, _, what = events[0]
                            if not adverse(b, price):
                                break
                            if what == "sl":
                                close_all(ts, price, "sl")
                                done = True
                                break
                            buy(ts, price)
                    elif fills and favourable(b, m):    # with the position: TP at m
                        close_all(ts, m, "tp")
                        done = True
        if fills and t == len(rows) - 1:
            close_all(ts, c, "end")
        if fills:
            q = sum_(qq for _, qq in fills)
            a = avg()
            equity.append(cash + (q * (c - a) if long else q * (a - c)))
        else:
            equity.append(cash)
    return cycles, equity, cash


COMBOS = [
    DEFAULT,
    {"ma_period": 5, "num_levels": 4, "envelope_start": 0.02, "envelope_step": 0.01, "sl_percent": 0.10},
    {"ma_period": 3, "num_levels": 2, "envelope_start": 0.01, "envelope_step": 0.005, "sl_percent": 0.03},
    {"ma_period": 10, "num_levels": 1, "envelope_start": 0.015, "envelope_step": 0.0, "sl_percent": 0.15},
    {"ma_period": 2, "num_levels": 3, "envelope_start": 0.005, "envelope_step": 0.0, "sl_percent": 0.02},
]


@functools.lru_cache(maxsize=None)
def reference_on_btc(side: str, combo: int):
    """The reference on the first 5,000 BTC/USDT 1h candles (cached: it is slow on purpose)."""
    return reference(head(btc_1h(), 5_000), side, COMBOS[combo])


@pytest.mark.parametrize("side,strategy", [("long", "envelope_dca"), ("short", "envelope_dca_short")])
@pytest.mark.parametrize("combo", range(len(COMBOS)))
def test_agrees_with_the_reference_on_real_candles(side, strategy, combo):
    ref_cycles, ref_equity, ref_cash = reference_on_btc(side, combo)
    res = run_event_backtest(head(btc_1h(), 5_000), strategy, dict(COMBOS[combo]))
    assert len(ref_cycles) >= 3, "the combo should exercise several cycles"
    assert res.n_cycles == len(ref_cycles)
    for got, want in zip(res.cycles, ref_cycles):
        assert (got.open_time, got.close_time, got.levels_filled, got.exit_reason) == \
            (want[0], want[1], want[2], want[5]), (got, want)
        for g, w in zip((got.avg_entry, got.exit_price, got.qty, got.pnl), (want[3], want[4], want[6], want[7])):
            assert math.isclose(g, w, rel_tol=REL, abs_tol=1e-9), (got, want)
    assert math.isclose(res.final_equity, ref_cash, rel_tol=REL)
    np.testing.assert_allclose(res.equity, ref_equity, rtol=REL, atol=0)


def test_the_reference_combos_cover_every_exit_and_several_levels():
    """The comparison above is only as good as what the data makes happen."""
    for side in ("long", "short"):
        reasons, levels = set(), set()
        for combo in range(len(COMBOS)):
            cycles, _, _ = reference_on_btc(side, combo)
            reasons |= {c[5] for c in cycles}
            levels |= {c[2] for c in cycles}
        assert {"tp", "sl"} <= reasons, side
        assert {1, 2, 3} <= levels, side


# ------------------------------------------------------------------ regression on the full series

@pytest.mark.parametrize("strategy,n_cycles,final_equity", [
    ("envelope_dca", 285, 105039.25703831363),
    ("envelope_dca_short", 170, 13751.771947883663),
])
def test_regression_btc_1h_default_params(strategy, n_cycles, final_equity):
    """Recorded figures of the full BTC/USDT 1h series (45,024 candles) at the default params;
    the first 5,000 candles agree with the reference above, these guard the rest."""
    candles = btc_1h()
    assert len(candles) == 45_024
    res = run_event_backtest(candles, strategy, dict(DEFAULT))
    assert res.n_cycles == n_cycles
    assert math.isclose(res.final_equity, final_equity, rel_tol=REL)
    assert res.equity.shape == (45_024,) and res.equity[-1] == res.final_equity


# ------------------------------------------------------------------ the result contract

def synthetic(n: int = 300, seed: int = 7) -> Candles:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    opens = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(opens, close) * (1 + rng.uniform(0, 0.02, n))
    low = np.minimum(opens, close) * (1 - rng.uniform(0, 0.02, n))
    ts = 1_600_000_000_000 // 3_600_000 * 3_600_000 + np.arange(n) * 3_600_000
    return Candles.from_rows("SYN/USDT", "spot", "1h", np.column_stack([ts, opens, high, low, close, np.ones(n)]))


def test_spec_json_shape():
    res = run_event_backtest(synthetic(), "envelope_dca", {"ma_period": 5, "num_levels": 3})
    doc = json.loads(json.dumps(res.to_spec_json(), allow_nan=False))
    assert list(doc) == ["strategy", "symbol", "timeframe", "params", "n_cycles", "final_equity", "total_return",
                         "max_drawdown", "sharpe", "win_rate", "profit_factor", "cycles"]
    assert (doc["strategy"], doc["symbol"], doc["timeframe"]) == ("envelope_dca", "SYN/USDT", "1h")
    assert doc["params"] == {"ma_period": 5, "num_levels": 3, "envelope_start": 0.05, "envelope_step": 0.03,
                             "sl_percent": 0.2}
    assert isinstance(doc["params"]["ma_period"], int) and isinstance(doc["params"]["envelope_start"], float)
    assert doc["n_cycles"] == len(doc["cycles"]) > 0
    assert doc["total_return"] == pytest.approx(doc["final_equity"] / 10_000 - 1, abs=1e-15)
    for cy in doc["cycles"]:
        assert list(cy) == ["open_time", "close_time", "side", "levels_filled", "avg_entry", "exit_price",
                            "exit_reason", "qty", "pnl"]
        assert isinstance(cy["open_time"], int) and cy["open_time"] <= cy["close_time"]
        assert cy["side"] == "long" and cy["exit_reason"] in ("tp", "sl", "end")
        assert 1 <= cy["levels_filled"] <= 3 and cy["qty"] > 0
    wins = sum(c["pnl"] > 0 for c in doc["cycles"])
    assert doc["win_rate"] == pytest.approx(wins / doc["n_cycles"])


def test_equity_starts_at_c0_and_cycles_do_not_overlap():
    res = run_event_backtest(synthetic(), "envelope_dca_short", {"ma_period": 4}, Account(initial_capital=5_000))
    assert res.equity[:4].tolist() == [5_000.0] * 4          # no trading while t < N
    assert res.final_equity == pytest.approx(5_000 + sum(c.pnl for c in res.cycles), rel=1e-12)
    for prev, nxt in zip(res.cycles, res.cycles[1:]):
        assert nxt.open_time > prev.close_time               # the next cycle starts on a later candle


def test_fewer_candles_than_the_period_and_no_candles():
    short = head(synthetic(), 5)
    res = run_event_backtest(short, "envelope_dca", {"ma_period": 7})
    assert res.n_cycles == 0 and res.equity.tolist() == [10_000.0] * 5 and res.final_equity == 10_000.0
    empty = run_event_backtest(head(short, 0), "envelope_dca", {})
    assert empty.n_cycles == 0 and empty.equity.shape == (0,) and empty.final_equity == 10_000.0
    assert empty.to_spec_json()["max_drawdown"] == 0.0


def test_errors():
    with pytest.raises(UsageError, match="unknown strategy 'nope'"):
        run_event_backtest(synthetic(20), "nope", {})
    with pytest.raises(ParamError, match="unknown parameter"):
        run_event_backtest(synthetic(20), "envelope_dca", {"ma_perod": 3})
    with pytest.raises(ParamError, match="num_levels must be >= 1"):
        run_event_backtest(synthetic(20), "envelope_dca", {"num_levels": 0})
    with pytest.raises(ParamError, match="must be < 1"):
        run_event_backtest(synthetic(20), "envelope_dca", {"num_levels": 5, "envelope_start": 0.5,
                                                           "envelope_step": 0.2})
    with pytest.raises(ParamError, match="ma_period must be an integer"):
        run_event_backtest(synthetic(20), "envelope_dca", {"ma_period": 2.5})


# ------------------------------------------------------------------ metrics of a result

def test_summarize_by_hand():
    """Four daily candles, equity 100 → 110 → 99 → 121, three cycles with pnl 10, −5, 16."""
    from core.backtest.metrics import summarize
    from core.backtest.result import BacktestResult
    from core.model.cycle import Cycle

    day = 86_400_000
    ts = np.array([19_000 * day + i * day for i in range(4)], dtype=np.int64)
    cycles = [Cycle(int(ts[0]), int(ts[1]), "long", 1, 1.0, 1.1, "tp", 100.0, 10.0),
              Cycle(int(ts[2]), int(ts[2]), "long", 2, 1.0, 0.9, "sl", 50.0, -5.0),
              Cycle(int(ts[3]), int(ts[3]), "long", 1, 1.0, 1.2, "end", 80.0, 16.0)]
    res = BacktestResult("envelope_dca", "X/USDT", "1d", dict(DEFAULT), cycles, 121.0, ts,
                         np.array([100.0, 110.0, 99.0, 121.0]), Account(initial_capital=100.0))
    s = summarize(res)
    r = np.array([0.1, -0.1, 121 / 99 - 1])                   # daily returns
    assert s["n_cycles"] == 3 and s["final_equity"] == 121.0
    assert s["total_return"] == pytest.approx(0.21, abs=1e-15)
    assert s["cagr"] == pytest.approx(1.21 ** (365 / 4) - 1, rel=1e-12)   # 4 days: first open .. last close
    assert s["max_drawdown"] == pytest.approx(11 / 110, abs=1e-15)        # peak 110, trough 99
    assert s["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(365), rel=1e-12)
    assert s["sortino"] == pytest.approx(r.mean() / math.sqrt(0.01 / 3) * math.sqrt(365), rel=1e-12)
    assert s["calmar"] == pytest.approx(s["cagr"] / 0.1, rel=1e-12)
    assert s["win_rate"] == pytest.approx(2 / 3) and s["profit_factor"] == pytest.approx(26 / 5)
    assert s["expectancy"] == pytest.approx(7.0, abs=1e-12)
    assert s["exposure"] == pytest.approx(1.0)                # candles 0-1, 2, 3 all held a position
    no_loss = BacktestResult("envelope_dca", "X/USDT", "1d", {}, cycles[:1], 110.0, ts[:2],
                             np.array([100.0, 110.0]), Account(initial_capital=100.0))
    s = summarize(no_loss)
    assert s["profit_factor"] is None and s["sortino"] == 0.0 and s["sharpe"] == 0.0   # one daily return
    assert s["exposure"] == 1.0 and s["expectancy"] == 10.0


def test_sortino_without_a_losing_day_and_cagr_edge_cases():
    from core.backtest.metrics import cagr, calmar, daily_sortino

    day = 86_400_000
    ts = np.arange(3, dtype=np.int64) * day
    assert daily_sortino(ts, np.array([100.0, 101.0, 103.0])) is None        # no downside: unbounded
    assert daily_sortino(ts, np.array([100.0, 99.0, 103.0])) == pytest.approx(
        np.mean([-0.01, 103 / 99 - 1]) / math.sqrt(0.0001 / 2) * math.sqrt(365), rel=1e-12)
    assert cagr(100.0, 121.0, 0, 2 * 365 * day) == pytest.approx(0.1, rel=1e-12)   # 1.21 over two years
    assert cagr(100.0, 0.0, 0, day) == -1.0 and cagr(100.0, 110.0, 5, 5) is None
    assert calmar(None, 0.1) is None and calmar(0.2, 0.0) is None and calmar(0.2, 0.1) == pytest.approx(2.0)


def test_exposure_counts_the_candles_between_first_fill_and_exit():
    from core.backtest.metrics import exposure
    from core.model.cycle import Cycle

    ts = np.arange(10, dtype=np.int64) * 3_600_000
    cycles = [Cycle(int(ts[2]), int(ts[4]), "long", 1, 1, 1, "tp", 1, 1), Cycle(int(ts[7]), int(ts[7]), "long",
                                                                                  1, 1, 1, "sl", 1, -1)]
    assert exposure(ts, cycles) == pytest.approx(4 / 10)
    assert exposure(ts[:0], []) == 0.0
