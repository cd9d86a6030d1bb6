"""Walk-forward optimisation: windows, search, stability, and whole runs on synthetic series."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.backtest.fast import run_fast
from core.errors import UsageError
from core.model.account import Account
from core.model.candles import Candles
from core.optimize.search import GridSpace, lhs_sample, neighbours, two_pass_search
from core.optimize.stability import perturbations, stability_score
from core.optimize.walk_forward import (
    WalkForwardCancelled,
    WalkForwardSettings,
    annualised_sharpe,
    cycle_returns,
    walk_forward,
    window_daily_returns,
)
from core.optimize.windows import DAY_MS, rolling_windows, window_slice, windows_for
from core.strategies.params import EnvelopeDcaParams

H = 3_600_000
T0 = 1_600_041_600_000          # 2020-09-14 00:00 UTC, a UTC midnight

#: The planted grid: 2 SMA lengths x 3 envelope starts (the other three parameters fixed).
PLANTED_GRID = {"ma_period": [5, 10], "num_levels": [1], "envelope_start": [0.03, 0.05, 0.08],
                "envelope_step": [0.02], "sl_percent": [0.2]}
PLANTED_WINNER = {"ma_period": 5, "num_levels": 1, "envelope_start": 0.05, "envelope_step": 0.02, "sl_percent": 0.2}
SHORT = WalkForwardSettings(is_days=30, oos_days=10, step_days=10)


def planted_candles(days: int, seed: int = 1, base: float = 100.0) -> Candles:
    """1h candles where envelope_dca (ma_period 5, envelope_start 0.05) wins by construction.

    Repeating blocks around a flat price `base` (tiny noise, never 3 % below any SMA):
    * a dip: one red candle whose low is 7 % below the SMA (touches a 5 % level, not an
      8 % one) closing 4 % below, then a candle back up to `base`: a 5 % level fills at
      0.95·SMA and takes profit at the SMA (+4 %); a 3 % level also profits; 8 % never fills;
    * a slow slide: 8 candles of −1.3 % each, then flat, then back up. The distance below a
      lagging SMA reaches ~3.9 % for ma_period 5 (fills a 3 % level: a loss, not a 5 % one)
      but ~6 % for ma_period 10 (fills its 5 % level: a loss).
    So only (5, 0.05) trades every dip and no slide: positive in every window.
    """
    rng = np.random.default_rng(seed)
    rows: list[list[float]] = []
    price = base

    def add(o: float, h: float, lo: float, c: float) -> None:
        rows.append([T0 + len(rows) * H, o, max(h, o, c), min(lo, o, c), c, 1.0])

    def flat(level: float) -> None:
        nonlocal price
        for _ in range(int(rng.integers(20, 30))):
            c = level * (1 + rng.normal(0, 0.001))
            add(price, max(price, c) * 1.0005, min(price, c) * 0.9995, c)
            price = c

    n = days * 24
    while len(rows) < n:
        flat(base)
        add(price, price, base * 0.93, base * 0.96)
        add(base * 0.96, base * 1.003, base * 0.96, base)
        price = base
        flat(base)
        for _ in range(8):
            add(price, price, price * 0.987, price * 0.987)
            price *= 0.987
        flat(price)
        while price < base:
            c = min(base, price * 1.011)
            add(price, c, price, c)
            price = c
    return Candles.from_rows("PLANT/USDT", "spot", "1h", np.array(rows[:n]))


def gap_random_walk(days: int, seed: int, vol: float = 0.007) -> Candles:
    """A geometric random walk of 1h candles with open = high = low = close (every move is a gap).

    Why gaps: with wicks or straight open→close paths the spec's OHLC path heuristic itself
    gives grid strategies an edge (a level filled on a wick that closes higher) or a handicap
    (a fill always followed by the rest of the move); with every move at the open the
    strategy only acts on prices it has seen, so with zero fees it is a fair game.
    """
    rng = np.random.default_rng(seed)
    n = days * 24
    p = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    ts = T0 + np.arange(n) * H
    return Candles.from_rows("RW/USDT", "spot", "1h", np.column_stack([ts, p, p, p, p, np.ones(n)]))


# -- windows --------------------------------------------------------------------------------
def test_rolling_windows_arithmetic() -> None:
    first = T0 + 5 * H                           # mid-day: floored to its UTC midnight
    end = T0 + 400 * DAY_MS
    wins = rolling_windows(first, end, 180, 60, 60)
    assert len(wins) == (400 - 180 - 60) // 60 + 1 == 3
    for i, w in enumerate(wins):
        assert w.index == i
        assert w.is_start == T0 + i * 60 * DAY_MS
        assert w.is_end - w.is_start == 180 * DAY_MS
        assert w.oos_start == w.is_end and w.oos_end - w.oos_start == 60 * DAY_MS
        assert w.oos_end <= end
    assert [b.oos_start for b in wins[1:]] == [a.oos_end for a in wins[:-1]]   # step = OOS: tiled
    assert len(rolling_windows(T0, T0 + 240 * DAY_MS, 180, 60, 60)) == 1        # exactly one fits
    assert rolling_windows(T0, T0 + 240 * DAY_MS - 1, 180, 60, 60) == []
    assert len(rolling_windows(T0, T0 + 100 * DAY_MS, 30, 10, 5)) == (100 - 40) // 5 + 1


def test_windows_refuse_bad_lengths_and_short_data() -> None:
    with pytest.raises(UsageError, match="oos_days"):
        rolling_windows(T0, T0 + 500 * DAY_MS, 180, 0, 60)
    with pytest.raises(UsageError, match="step_days"):
        rolling_windows(T0, T0 + 500 * DAY_MS, 180, 60, 1.5)
    c = planted_candles(20)
    with pytest.raises(UsageError, match="spans 20.0 days; one window needs is_days \\+ oos_days = 40"):
        windows_for(c, H, 30, 10, 10)


def test_window_slice_prepends_warmup() -> None:
    c = planted_candles(5)
    sl, k = window_slice(c, T0 + DAY_MS, T0 + 2 * DAY_MS, 7)
    assert k == 7 and len(sl) == 24 + 7
    assert sl.ts[k] == T0 + DAY_MS and sl.ts[-1] == T0 + 2 * DAY_MS - H
    sl0, k0 = window_slice(c, T0, T0 + DAY_MS, 7)          # nothing before the data: no warm-up
    assert k0 == 0 and len(sl0) == 24


# -- search ---------------------------------------------------------------------------------
def test_lhs_sample_covers_every_value_of_every_parameter() -> None:
    grid = {"a": [1, 2, 3], "b": [0.1, 0.2, 0.3, 0.4], "c": list(range(5)), "d": list(range(6)), "e": list(range(7))}
    space = GridSpace.from_grid(grid)
    assert space.size == 2520
    for seed in range(5):
        pts = lhs_sample(space, 40, seed)
        assert len(pts) == len(set(pts)) == 40
        idx = np.array([space.index(f) for f in pts])
        for k, n in enumerate(space.shape):
            assert set(idx[:, k].tolist()) == set(range(n)), f"parameter {space.names[k]} not covered"
    assert lhs_sample(space, 40, 3) == lhs_sample(space, 40, 3)               # seeded
    assert lhs_sample(space, 40, 3) != lhs_sample(space, 40, 4)


def test_lhs_sample_whole_grid_when_small_and_respects_validity() -> None:
    space = GridSpace.from_grid({"x": [3, 1, 2], "y": [10, 20]})
    assert space.axes[0] == (1, 2, 3)                                         # sorted
    assert lhs_sample(space, 500) == list(range(6))
    odd = lhs_sample(space, 500, is_valid=lambda f: f % 2 == 1)
    assert odd == [1, 3, 5]
    big = GridSpace.from_grid({"x": list(range(30)), "y": list(range(30))})
    pts = lhs_sample(big, 100, 0, is_valid=lambda f: big.params(f)["x"] < 20)
    assert len(pts) == 100 and all(big.params(f)["x"] < 20 for f in pts)
    with pytest.raises(UsageError, match="n_points"):
        lhs_sample(space, 0)


def test_neighbours_are_the_plus_minus_one_step_hypercube() -> None:
    space = GridSpace.from_grid({"a": range(5), "b": range(5), "c": range(5)})
    centre = space.flat((2, 2, 2))
    assert len(neighbours(space, centre)) == 3 ** 3 - 1
    corner = space.flat((0, 0, 0))
    assert len(neighbours(space, corner)) == 2 ** 3 - 1
    for f in neighbours(space, centre):
        assert max(abs(i - 2) for i in space.index(f)) == 1


def test_two_pass_search_refines_around_the_sample_best() -> None:
    space = GridSpace.from_grid({"a": range(20), "b": range(20)})
    target = (13, 7)

    def score(flats: list[int]) -> np.ndarray:
        return np.array([-float(np.hypot(*np.subtract(space.index(f), target))) for f in flats])

    sample = [space.flat((12, 6)), space.flat((3, 3)), space.flat((18, 17))]
    res = two_pass_search(space, score, sample)
    assert res.first_best == space.flat((12, 6))
    assert res.n_first == 3 and len(res.visited) == 3 + 8
    assert res.best == space.flat(target)                # one step away: found by the fine pass
    assert len(set(res.visited)) == len(res.visited)      # nothing scored twice


# -- stability ------------------------------------------------------------------------------
def test_perturbations_round_clip_and_validate() -> None:
    best = {"ma_period": 5, "num_levels": 2, "envelope_start": 0.9, "envelope_step": 0.03, "sl_percent": 0.5}
    out = perturbations(best, EnvelopeDcaParams)
    mas = sorted(p["ma_period"] for p in out if p["ma_period"] != 5)
    assert mas == [4, 6]                                  # 5*0.9 = 4.5 -> 5 (dropped), 5*1.1 = 5.5 -> 6 (dup)
    assert all(isinstance(p["ma_period"], int) and isinstance(p["num_levels"], int) for p in out)
    assert all(p["num_levels"] == 2 for p in out)      # 1.6, 1.8, 2.2, 2.4 all round to 2: no change
    starts = sorted(p["envelope_start"] for p in out if p["envelope_start"] != 0.9)
    # 0.72, 0.81 valid; 0.99, 1.08 -> clipped below 1 but the deepest level would be >= 1: dropped
    assert starts == pytest.approx([0.72, 0.81])
    for p in out:
        EnvelopeDcaParams.model_validate(p)
        assert sum(p[k] != best[k] for k in best) == 1   # one parameter at a time
    assert len({tuple(sorted(p.items())) for p in out}) == len(out)


def test_stability_score_formula() -> None:
    assert stability_score(1.0, [0.8, 1.2]) == pytest.approx(0.8)          # RMS 0.2 of |M0| = 1
    assert stability_score(2.0, [1.0, 1.0, 1.0, 1.0]) == pytest.approx(0.5)
    assert stability_score(1.0, [1.0, 1.0]) == 1.0
    assert stability_score(0.5, [-1.0, 2.0]) == 0.0                         # moves more than its size
    assert stability_score(0.0, [0.02, -0.02]) == pytest.approx(0.8)        # floor 0.1
    assert stability_score(1.0, [np.nan]) is None


# -- helpers --------------------------------------------------------------------------------
def test_window_daily_returns_start_from_c0() -> None:
    ts = T0 + np.arange(72) * H
    eq = np.full(72, 100.0)
    eq[24:48] = 110.0
    eq[48:] = 99.0
    r = window_daily_returns(ts, eq, 100.0)
    assert r == pytest.approx([0.0, 0.1, 99.0 / 110.0 - 1.0])             # 3 days -> 3 returns
    assert cycle_returns(np.array([100.0, -55.0]), 1000.0) == pytest.approx([0.1, -0.05])
    assert annualised_sharpe(np.array([0.01])) == 0.0
    assert annualised_sharpe(np.array([0.01, 0.03])) == pytest.approx(0.02 / math.sqrt(2e-4) * math.sqrt(365))


# -- whole runs -----------------------------------------------------------------------------
def test_planted_edge_is_found_in_every_window_and_graded_a() -> None:
    c = planted_candles(200)
    res = walk_forward(c, "envelope_dca", PLANTED_GRID, settings=SHORT)
    assert res.complete and len(res.windows) == res.n_windows_planned == (200 - 40) // 10 + 1
    assert res.best_params == PLANTED_WINNER
    assert all(w.chosen == PLANTED_WINNER for w in res.windows)
    assert all(w.oos_return > 0 for w in res.windows)
    # dense: every combo evaluated out of sample; the planted one is the best of them
    assert res.n_combos == 6 and res.combo_oos_sharpe.shape == (6,)
    win = res.combos.index(PLANTED_WINNER)
    assert res.best_index == win
    assert res.combo_oos_sharpe[win] > max(s for i, s in enumerate(res.combo_oos_sharpe) if i != win) + 3.0
    assert res.combo_times_selected[win] == len(res.windows) and res.combo_times_selected.sum() == len(res.windows)
    assert res.grade.grade == "A"
    assert res.criteria.consistency == 1.0 and res.criteria.dsr > 0.95 and res.criteria.param_stability > 0.9
    assert res.pbo is not None and res.pbo < 0.1
    assert res.p_value is not None and res.p_value < 0.01
    assert res.data_first_ts == int(c.ts[0]) and res.data_last_ts <= int(c.ts[-1])


def test_random_walk_grades_f_with_a_high_pbo() -> None:
    """Five fixed seeds (1-5, not selected): a fair-game random walk, zero fees."""
    grid = {"ma_period": [5, 10, 20], "num_levels": [1, 3], "envelope_start": [0.01, 0.02, 0.03],
            "envelope_step": [0.01], "sl_percent": [0.05, 0.1]}
    fair = Account(maker_fee=0.0, taker_fee=0.0)
    settings = WalkForwardSettings(is_days=60, oos_days=20, step_days=20)
    pbos = []
    for seed in range(1, 6):
        res = walk_forward(gap_random_walk(720, seed), "envelope_dca", grid, account=fair, settings=settings)
        assert res.n_combos == 36 and len(res.windows) == 33
        assert res.grade.grade == "F", (seed, res.summary())
        pbos.append(res.pbo)
    assert np.mean(pbos) >= 0.45, pbos


def test_oos_window_is_a_fresh_backtest_with_sma_warmup() -> None:
    """A window's OOS figures equal a lone backtest of that window (fresh C0) whose SMA has the
    ma_period candles before the window as history; trades only happen inside the window."""
    c = planted_candles(80)
    one = {k: [v] for k, v in PLANTED_WINNER.items()}
    res = walk_forward(c, "envelope_dca", one, settings=SHORT)
    assert res.best_params == PLANTED_WINNER
    for rec in res.windows:
        w = rec.window
        sl, k = window_slice(c, w.oos_start, w.oos_end, PLANTED_WINNER["ma_period"])
        lone = run_fast(sl, "envelope_dca", PLANTED_WINNER)
        assert k == PLANTED_WINNER["ma_period"]
        assert rec.oos_return == pytest.approx(lone.final_equity / 10_000.0 - 1.0, rel=0, abs=1e-12)
        assert rec.oos_cycles == lone.n_cycles
        assert all(cy.open_time >= w.oos_start for cy in lone.cycles)
        assert np.all(lone.equity[:k] == 10_000.0)


def test_should_stop_between_windows_gives_a_partial_result() -> None:
    c = planted_candles(200)
    calls = {"n": 0}

    def stop_after_three() -> bool:
        calls["n"] += 1
        return calls["n"] > 3                 # polled before each window: windows 0, 1, 2 run

    with pytest.raises(WalkForwardCancelled) as info:
        walk_forward(c, "envelope_dca", PLANTED_GRID, settings=SHORT, should_stop=stop_after_three)
    partial = info.value.partial
    assert partial is not None and not partial.complete
    assert len(partial.windows) == 3 and partial.n_windows_planned == 17
    with pytest.raises(WalkForwardCancelled) as info0:
        walk_forward(c, "envelope_dca", PLANTED_GRID, settings=SHORT, should_stop=lambda: True)
    assert info0.value.partial is None


def test_progress_is_monotone_and_ends_at_one() -> None:
    seen: list[tuple[float, str, int, int]] = []
    walk_forward(planted_candles(80), "envelope_dca", PLANTED_GRID, settings=SHORT,
                 progress=lambda f, phase, w, n: seen.append((f, phase, w, n)))
    fr = [s[0] for s in seen]
    assert fr == sorted(fr) and fr[0] == 0.0 and fr[-1] == 1.0
    assert [s[2] for s in seen if s[1] == "window"] == list(range(0, 6))      # 80 days: 5 windows
    assert {s[3] for s in seen} == {5}


def test_bad_inputs_are_named() -> None:
    c = planted_candles(80)
    with pytest.raises(UsageError, match="unknown strategy 'nope'"):
        walk_forward(c, "nope", PLANTED_GRID, settings=SHORT)
    with pytest.raises(UsageError, match="unknown parameters \\['ma_len'\\]"):
        walk_forward(c, "envelope_dca", {"ma_len": [5]}, settings=SHORT)
    with pytest.raises(UsageError, match="setting seed must be an integer >= 0, got -1"):
        WalkForwardSettings(seed=-1)
    with pytest.raises(UsageError, match="setting max_points must be an integer >= 1"):
        WalkForwardSettings(max_points=0)
    with pytest.raises(UsageError, match="no valid combo"):
        walk_forward(c, "envelope_dca", {"num_levels": [5], "envelope_start": [0.5], "envelope_step": [0.2]},
                     settings=SHORT)
