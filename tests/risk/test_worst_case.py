"""The grid's worst case (`core.risk.worst_case`) equals hand computations.

envelope_dca, p = 0.20, maker 0.0002, taker 0.0006, unit 1000 USDT per level. Every level of a
cycle costs `unit` (q_i = unit / P_i), so with C' = Σ q·P the cost of the whole position and
S = A'·(1 − p) (long) the loss to the stop is Q'·(A' − S) + fees = p·C' + f_m·(new notional) +
f_t·(1 − p)·C' — whatever the prices.
"""

from __future__ import annotations

import math

import pytest

from core.risk.book import RestingLevel, RunnerBook
from core.risk.worst_case import total_loss, worst_case

PARAMS = {"ma_period": 7, "num_levels": 3, "envelope_start": 0.05, "envelope_step": 0.03, "sl_percent": 0.20}
MAKER, TAKER = 0.0002, 0.0006


def grid(side: str, qty: float, avg: float | None, levels: list[tuple[int, float]], *, last: float = 100.0,
         filled: int = 1) -> RunnerBook:
    strategy = "envelope_dca" if side == "long" else "envelope_dca_short"
    stop = None if avg is None else avg * (0.8 if side == "long" else 1.2)
    return RunnerBook(strategy, "BTC/USDT", "1h", "grid", side, PARAMS, last, 10_000.0, qty, avg, stop, filled, 3,
                      1000.0, tuple(RestingLevel(i, p, 1000.0 / p) for i, p in levels), MAKER, TAKER)


def test_long_grid_two_levels_left_equals_the_hand_computation() -> None:
    r = grid("long", 10.0, 100.0, [(1, 95.0), (2, 92.0)], last=98.0)
    w = worst_case(r)
    q = 10.0 + 1000.0 / 95.0 + 1000.0 / 92.0
    avg = 3000.0 / q
    stop = avg * 0.8
    hand = q * (avg - stop) + 2000.0 * MAKER + q * stop * TAKER
    assert hand == pytest.approx(600.0 + 0.4 + 1.44, abs=1e-9)          # p·C' + f_m·2000 + f_t·0.8·3000
    assert w.loss == pytest.approx(hand, rel=1e-12, abs=1e-9)
    assert w.levels_to_fill == 2
    assert w.qty == pytest.approx(q, rel=1e-12)
    assert w.avg_entry == pytest.approx(avg, rel=1e-12)
    assert w.stop == pytest.approx(stop, rel=1e-12)
    assert w.entry_fees == pytest.approx(0.4, abs=1e-12)
    assert w.loss_from_equity == pytest.approx(hand + 10.0 * (98.0 - 100.0), abs=1e-9)   # + unrealised (−20)


def test_short_grid_and_a_fresh_cycle() -> None:
    short = worst_case(grid("short", 10.0, 100.0, [(1, 105.0), (2, 108.0)]))
    assert short.loss == pytest.approx(600.0 + 0.4 + 1.2 * 3000.0 * TAKER, abs=1e-9)   # 602.56
    assert short.stop == pytest.approx(1.2 * 3000.0 / short.qty, rel=1e-12)
    flat = worst_case(grid("long", 0.0, None, [(0, 95.0), (1, 92.0), (2, 89.0)], filled=0))
    assert flat.loss == pytest.approx(600.0 + 3000.0 * MAKER + 0.8 * 3000.0 * TAKER, abs=1e-9)   # 602.04
    assert flat.levels_to_fill == 3
    idle = worst_case(grid("long", 0.0, None, [], filled=0))
    assert idle.loss == 0.0 and idle.qty == 0.0


def test_single_position_loses_to_its_stop_and_no_stop_is_unbounded() -> None:
    single = RunnerBook("momentum", "ETH/USDT", "1h", "single", "long", {}, 52.0, 1000.0, 2.0, 50.0, 45.0, 1, 1,
                        None, (), MAKER, TAKER)
    w = worst_case(single)
    assert w.loss == pytest.approx(2.0 * 5.0 + 2.0 * 45.0 * TAKER, abs=1e-12)               # 10.054
    naked = RunnerBook("momentum", "ETH/USDT", "1h", "single", "short", {}, 52.0, 1000.0, 2.0, 50.0, None, 1, 1,
                       None, (), MAKER, TAKER)
    u = worst_case(naked)
    assert u.unbounded and u.loss is None and "NO STOP" in u.note
    assert total_loss([w, u]) is None
    long_naked = worst_case(RunnerBook("momentum", "ETH/USDT", "1h", "single", "long", {}, 52.0, 1000.0, 2.0,
                                       50.0, None, 1, 1, None, (), MAKER, TAKER))
    assert long_naked.loss == pytest.approx(100.0, abs=1e-12) and math.isclose(long_naked.stop, 0.0)
    assert total_loss([w, long_naked]) == pytest.approx(110.054, abs=1e-9)
