"""The numba fast engine of envelope_dca (core.backtest.fast) against the spec.

Hand-made candles with the expected numbers worked out by hand in the comments
(`../shared/specs/envelope_dca.md`), long and short; skip-ahead vs scan-everything
bit-identical on real data; hypothesis random OHLC paths.

Conventions of the hand cases: hourly candles; two flat "warm-up" candles at 100 and
ma_period 2, so the first tradable candle (t = 2) sees m = 100. Default account:
C0 = 10,000, λ = 1, maker 0.0002, taker 0.0006. Long levels with s = 0.05, d = 0.05:
P0 = 100·0.95 = 95, P1 = 100·0.90 = 90. Short levels: P0 = 100/0.95 = 105.263157…,
P1 = 100/0.9 = 111.111…; with L = 2 each level is worth E/2 = 5,000 USDT, so
q = 5000/105.263… = 47.5 and 5000/111.11… = 45 exactly.
"""

from __future__ import annotations

import functools
import gzip
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.backtest import metrics
from core.backtest.fast import DEFAULT_GRID, DEFAULT_PARAMS, grid_combos, run_fast, sweep
from core.backtest.fast.combos import combos_from_dicts
from core.errors import UsageError
from core.model.account import Account
from core.model.candles import Candles
from core.strategies.base import ParamError
from tests.support.shared_data import shared_file

H = 3_600_000
T0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC

LONG = "envelope_dca"
SHORT = "envelope_dca_short"
REL = 1e-12


def mk(rows, step=H, t0=T0) -> Candles:
    """Candles from (o, h, l, c) rows, one every `step` ms."""
    arr = np.array([[t0 + i * step, o, h, l, c, 1.0] for i, (o, h, l, c) in enumerate(rows)], dtype=np.float64)
    return Candles.from_rows("TEST/USDT", "spot", "1h", arr)


WARM = [(100.0, 100.0, 100.0, 100.0)] * 2


def P(n=2, levels=2, s=0.05, d=0.05, sl=0.2):
    return {"ma_period": n, "num_levels": levels, "envelope_start": s, "envelope_step": d, "sl_percent": sl}


def both_modes(candles, strategy, params, account=Account()):
    """run_fast with skip-ahead, after checking it equals the scan-everything variant bit for bit."""
    a = run_fast(candles, strategy, params, account)
    b = run_fast(candles, strategy, params, account, skip=False)
    assert np.array_equal(a.equity, b.equity)
    assert a.cycles == b.cycles and a.final_equity == b.final_equity
    s = sweep(candles, strategy, [params], account)
    assert s.final_equity[0] == a.final_equity and s.n_cycles[0] == a.n_cycles
    assert s.max_drawdown[0] == pytest.approx(metrics.max_drawdown(a.equity), rel=1e-12, abs=1e-15)
    assert s.sharpe[0] == pytest.approx(metrics.daily_sharpe(a.ts, a.equity), rel=1e-9, abs=1e-12)
    return a


# ---------------------------------------------------------------- long, by hand

def test_long_gap_down_fill_at_open_then_end_of_data():
    c = mk(WARM + [(93.0, 94.0, 92.0, 93.5), (94.0, 95.0, 93.8, 94.5)])
    r = both_modes(c, LONG, P())
    # t=2, m=100: the open 93 is below P0=95 -> level 0 fills AT THE OPEN (93); P1=90 < 93 stays.
    #   q0 = 5000/93 = 53.763440…, maker fee 5000·0.0002 = 1; A = 93, S = 93·0.8 = 74.4.
    #   green 93→92 (90 and 74.4 not reached), 92→94 (< m=100), 94→93.5.
    #   equity = 9999 + q0·(93.5−93) = 10025.881720430107
    assert list(r.equity[:2]) == [10_000.0, 10_000.0]
    assert r.equity[2] == pytest.approx(10025.881720430107, rel=REL)
    # t=3, m=(100+93.5)/2 = 96.75, P1 = 87.075: nothing happens; end of data: exit at the close 94.5.
    #   realised q0·1.5 = 80.64516…, taker q0·94.5·0.0006 = 3.04838…
    #   cash = 9999 + 80.64516 − 3.04839 = 10076.596774193547; pnl = 80.64516 − 1 − 3.04839 = 76.59677…
    assert r.n_cycles == 1
    cy = r.cycles[0]
    assert (cy.open_time, cy.close_time, cy.side, cy.levels_filled, cy.exit_reason) == (T0 + 2 * H, T0 + 3 * H, "long", 1, "end")
    assert cy.avg_entry == pytest.approx(93.0, rel=REL)
    assert cy.exit_price == 94.5
    assert cy.qty == pytest.approx(5000 / 93, rel=REL)
    assert cy.pnl == pytest.approx(76.5967741935484, rel=REL)
    assert r.final_equity == pytest.approx(10076.596774193547, rel=REL)
    assert r.equity[-1] == r.final_equity


def test_long_several_levels_in_one_red_candle_and_end_on_same_candle():
    c = mk(WARM + [(99.0, 99.5, 89.0, 91.0)])
    r = both_modes(c, LONG, P())
    # red: O→H→L→C. 99→99.5 up (flat: nothing). 99.5→89 down: P0=95 fills, S = 76; the next
    # threshold is P1=90 (> S) -> fills at 90. Q = 5000/95 + 5000/90 = 108.187134…,
    # A = 10000/Q = 92.432432…, S = 73.945946… (not reached). 89→91 up, < m.
    # Last candle: exit at 91 (end): realised Q·(91−A) = −154.97076, taker Q·91·0.0006 = 5.90702,
    # cash = 10000 − 2 − 154.97076 − 5.90702 = 9837.122222222224
    assert r.n_cycles == 1
    cy = r.cycles[0]
    assert (cy.levels_filled, cy.exit_reason, cy.open_time, cy.close_time) == (2, "end", T0 + 2 * H, T0 + 2 * H)
    assert cy.avg_entry == pytest.approx(92.43243243243242, rel=REL)
    assert cy.qty == pytest.approx(108.18713450292398, rel=REL)
    assert r.final_equity == pytest.approx(9837.122222222224, rel=REL)
    assert cy.pnl == pytest.approx(9837.122222222224 - 10_000, rel=1e-10)


def test_long_stop_in_the_candle_of_the_fill_then_new_cycle_sized_from_cash():
    c = mk(WARM + [(98.0, 99.0, 88.0, 97.0), (94.0, 96.0, 93.0, 95.0)])
    r = both_modes(c, LONG, P(levels=1, sl=0.05))
    # t=2 green: 98→88 down: P0 = 95 fills (q = 10000/95 = 105.263…, fee 2), S = 95·0.95 = 90.25,
    # all levels filled, 88 <= 90.25 -> stop at 90.25; the candle ends (H=99 >= m is never seen).
    #   realised q·(90.25−95) = −500, taker q·90.25·0.0006 = 5.7 -> cash 10000 − 2 − 500 − 5.7 = 9492.3
    c0 = r.cycles[0]
    assert (c0.exit_reason, c0.levels_filled) == ("sl", 1)
    assert c0.exit_price == pytest.approx(90.25, rel=REL)
    assert c0.pnl == pytest.approx(-507.7, rel=REL)
    assert r.equity[2] == pytest.approx(9492.3, rel=REL)
    # t=3: m = (100+97)/2 = 98.5, P0 = 93.575; green 94→93 fills at 93.575 with E = 9492.3:
    #   q = 9492.3/93.575 = 101.44055…, fee 9492.3·0.0002 = 1.89846; S = 88.89625; 93→96 < m.
    #   End at 95: + q·(95−93.575) − q·95·0.0006 -> 9629.172220203045
    c1 = r.cycles[1]
    assert (c1.exit_reason, c1.open_time, c1.close_time) == ("end", T0 + 3 * H, T0 + 3 * H)
    assert c1.qty == pytest.approx(9492.3 / 93.575, rel=1e-12)
    assert r.final_equity == pytest.approx(9629.172220203045, rel=REL)


def test_long_take_profit_on_the_entry_candle_of_a_green_candle():
    c = mk(WARM + [(97.0, 101.0, 94.0, 100.0)])
    r = both_modes(c, LONG, P())
    # green 97→94: P0 = 95 fills (q0 = 5000/95 = 52.631…, fee 1), S = 76, P1 = 90 not reached;
    # 94→101 up reaches m = 100 -> take profit at 100.
    #   realised q0·5 = 263.1579, taker q0·100·0.0006 = 3.1579 -> cash = 9999 + 260 = 10259; pnl 259
    cy = r.cycles[0]
    assert (cy.exit_reason, cy.exit_price, cy.levels_filled) == ("tp", 100.0, 1)
    assert r.final_equity == pytest.approx(10259.0, rel=REL)
    assert cy.pnl == pytest.approx(259.0, rel=1e-10)


def test_long_red_candle_ordering_high_before_low():
    # Same H and L as the TP case but red: O→H first (flat, nothing), then H→L fills P0 at 95,
    # then 94→96 up stays below m = 100: no take profit in this candle.
    c = mk(WARM + [(97.0, 101.0, 94.0, 96.0)])
    r = both_modes(c, LONG, P())
    # last candle: end at 96: 9999 + q0·1 − q0·96·0.0006 = 9999 + 52.6316 − 3.0316 = 10048.6
    cy = r.cycles[0]
    assert (cy.exit_reason, cy.levels_filled) == ("end", 1)
    assert r.final_equity == pytest.approx(10048.6, rel=REL)


ENTRY = (97.0, 97.0, 94.0, 96.0)  # red, zero-length O→H; H→L fills P0 = 95; closes at 96 -> next m = 98


def test_long_carried_position_red_takes_profit_before_the_stop():
    c = mk(WARM + [ENTRY, (97.0, 99.0, 70.0, 72.0)])
    r = both_modes(c, LONG, P())
    # t=3, m = 98: red O→H 97→99 reaches m first -> TP at 98, though L=70 is below S=76.
    #   cash = 9999 + q0·3 − q0·98·0.0006 = 9999 + 157.8947 − 3.0947 = 10153.8
    assert [x.exit_reason for x in r.cycles] == ["tp"]
    assert r.cycles[0].exit_price == 98.0
    assert r.final_equity == pytest.approx(10153.8, rel=REL)


def test_long_carried_position_green_fills_then_stops_with_recomputed_stop():
    c = mk(WARM + [ENTRY, (97.0, 99.0, 70.0, 98.5)])
    r = both_modes(c, LONG, P())
    # t=3, m = 98, P1 = 88.2; green O→L 97→70: thresholds P1 = 88.2 (above S = 76) -> fills,
    # q1 = 5000/88.2, fee 1; A = 10000/Q = 91.4738, S = A·0.8 = 73.1790; 70 <= S -> stop at S.
    #   realised Q·(S−A) = −0.2·Q·A = −2000, taker Q·S·0.0006 = 0.8·10000·0.0006 = 4.8
    #   cash = 10000 − 2 − 2000 − 4.8 = 7993.2
    cy = r.cycles[0]
    assert (cy.exit_reason, cy.levels_filled) == ("sl", 2)
    assert cy.avg_entry == pytest.approx(91.47379912663756, rel=REL)
    assert cy.exit_price == pytest.approx(73.17903930131006, rel=REL)
    assert r.final_equity == pytest.approx(7993.2, rel=REL)


def test_long_exits_at_the_open():
    # m = 98 at t=3. Open 99 >= m: TP at the open (99). cash = 9999 + q0·4 − q0·99·0.0006 = 10206.4
    r = both_modes(mk(WARM + [ENTRY, (99.0, 100.0, 98.5, 99.5)]), LONG, P())
    assert (r.cycles[0].exit_reason, r.cycles[0].exit_price, r.cycles[0].close_time) == ("tp", 99.0, T0 + 3 * H)
    assert r.final_equity == pytest.approx(10206.4, rel=REL)
    # Open 70 <= S = 76: stop at the open (70), not at S. cash = 9999 − q0·25 − q0·70·0.0006 = 8681
    r = both_modes(mk(WARM + [ENTRY, (70.0, 72.0, 69.0, 71.0)]), LONG, P())
    assert (r.cycles[0].exit_reason, r.cycles[0].exit_price) == ("sl", 70.0)
    assert r.final_equity == pytest.approx(8681.0, rel=REL)
    # the exit ends the candle: no new cycle starts in it although 69 is below the new P0
    assert r.n_cycles == 1


BIN = [(128.0, 128.0, 128.0, 128.0)] * 2  # m = 128; with s=0.25, d=0.375, p=0.5 every price is exact in binary
NOFEE = Account(maker_fee=0.0, taker_fee=0.0)


def test_long_stop_before_level_at_the_same_price():
    # P0 = 128·0.75 = 96, P1 = 128·(1−0.625) = 48; after the fill at 96, S = 96·0.5 = 48 == P1.
    # red 100→100 (zero length, skipped), 100→40: fill 96, then S and P1 tie at 48: S first -> stop at 48,
    # level 1 never fills. No fees: q0 = 5000/96, realised q0·(48−96) = −2500 -> 7500 exactly.
    r = both_modes(mk(BIN + [(100.0, 100.0, 40.0, 50.0)]), LONG, P(s=0.25, d=0.375, sl=0.5), NOFEE)
    cy = r.cycles[0]
    assert (cy.exit_reason, cy.levels_filled, cy.exit_price) == ("sl", 1, 48.0)
    assert r.final_equity == 7500.0


def test_long_equality_touches_fill_and_take_profit():
    # t=2: red 100→96 touches P0 = 96 exactly (low == level): fills. 96→99 < m.
    # t=3: m = (128+99)/2 = 113.5; green 100→99 (P1 = 42.5625, S = 48: nothing), 99→113.5 touches
    # m exactly: TP at 113.5. No fees: q0·17.5 = 5000/96·17.5 = 911.458333… -> 10911.458333…
    rows = BIN + [(100.0, 100.0, 96.0, 99.0), (100.0, 113.5, 99.0, 110.0), (110.0, 111.0, 109.0, 110.0)]
    r = both_modes(mk(rows), LONG, P(s=0.25, d=0.375, sl=0.5), NOFEE)
    cy = r.cycles[0]
    assert (cy.exit_reason, cy.exit_price, cy.open_time, cy.close_time) == ("tp", 113.5, T0 + 2 * H, T0 + 3 * H)
    assert r.final_equity == pytest.approx(10_000 + 5000 / 96 * 17.5, rel=REL)
    assert r.n_cycles == 1
    # a low one tick above the level does not fill
    r = both_modes(mk(BIN + [(100.0, 100.0, np.nextafter(96.0, 97.0), 99.0)]), LONG, P(s=0.25, d=0.375, sl=0.5))
    assert r.n_cycles == 0 and r.final_equity == 10_000.0


def test_no_trading_before_ma_period_candles():
    # t=0,1 have fewer than N=2 earlier candles: no fill although the lows are far below anything.
    r = both_modes(mk([(100.0, 100.0, 1.0, 100.0)] * 2), LONG, P())
    assert r.n_cycles == 0 and list(r.equity) == [10_000.0, 10_000.0]


def test_fees_and_leverage():
    c = mk(WARM + [(97.0, 101.0, 94.0, 100.0)])  # the green take-profit case
    # no fees: 10000 + q0·5 = 10000 + 5000/95·5 = 10263.157894736842
    assert both_modes(c, LONG, P(), NOFEE).final_equity == pytest.approx(10263.157894736842, rel=REL)
    # maker 0.001, taker 0.002: −5000·0.001 − q0·100·0.002 = −5 − 10.526316 -> 10247.631578947368
    acc = Account(maker_fee=0.001, taker_fee=0.002)
    r = both_modes(c, LONG, P(), acc)
    assert r.final_equity == pytest.approx(10247.631578947368, rel=REL)
    assert r.cycles[0].pnl == pytest.approx(247.631578947368, rel=1e-10)
    # leverage 2: each level is worth 10000·2/2 = 10000 -> q0 = 10000/95: 10000 − 2 + 526.3158 − 6.3158 = 10518
    assert both_modes(c, LONG, P(), Account(leverage=2.0)).final_equity == pytest.approx(10518.0, rel=REL)
    # initial capital 1000: everything scales by 0.1
    assert both_modes(c, LONG, P(), Account(initial_capital=1000.0)).final_equity == pytest.approx(1025.9, rel=REL)


# ---------------------------------------------------------------- short, by hand

def test_short_gap_up_fill_at_open_then_end():
    r = both_modes(mk(WARM + [(107.0, 108.0, 106.0, 106.5)]), SHORT, P())
    # open 107 >= P0 = 105.263 -> fills at the open 107 (q0 = 5000/107, fee 1); P1 = 111.1 > 107 stays.
    # S = 107·1.2 = 128.4. red 107→108 up (P1, S not reached), 108→106 down (> m = 100), 106→106.5.
    # end at 106.5: 9999 + q0·0.5 − q0·106.5·0.0006 = 10019.378504672897
    cy = r.cycles[0]
    assert (cy.side, cy.exit_reason, cy.avg_entry, cy.levels_filled) == ("short", "end", 107.0, 1)
    assert r.final_equity == pytest.approx(10019.378504672897, rel=REL)


def test_short_take_profit_on_the_entry_candle_of_a_red_candle():
    r = both_modes(mk(WARM + [(103.0, 106.0, 99.0, 102.0)]), SHORT, P())
    # red: 103→106 up fills P0 = 105.263 (q0 = 47.5, fee 1); 106→99 down reaches m = 100: TP at 100.
    #   realised 47.5·5.263 = 250, taker 47.5·100·0.0006 = 2.85 -> 10000 − 1 + 250 − 2.85 = 10246.15
    cy = r.cycles[0]
    assert (cy.exit_reason, cy.exit_price) == ("tp", 100.0)
    assert cy.qty == pytest.approx(47.5, rel=REL)
    assert r.final_equity == pytest.approx(10246.15, rel=REL)


def test_short_green_candle_ordering_low_before_high():
    r = both_modes(mk(WARM + [(103.0, 106.0, 99.0, 104.0)]), SHORT, P())
    # green: 103→99 down first (flat: nothing), 99→106 fills P0, 106→104 stays above m.
    #   end at 104: 9999 + 47.5·(105.263−104) − 47.5·104·0.0006 = 9999 + 60 − 2.964 = 10056.036
    assert r.cycles[0].exit_reason == "end"
    assert r.final_equity == pytest.approx(10056.036, rel=REL)


def test_short_stop_in_the_candle_of_the_fill():
    r = both_modes(mk(WARM + [(103.0, 112.0, 101.0, 102.0)]), SHORT, P(levels=1, sl=0.05))
    # red 103→112: P0 = 105.263 fills (q = 95, fee 2), S = 105.263·1.05 = 110.526, 112 >= S: stop.
    #   realised 95·(105.263−110.526) = −500, taker 95·110.526·0.0006 = 6.3 -> 9491.7; pnl −508.3
    cy = r.cycles[0]
    assert (cy.exit_reason, cy.levels_filled) == ("sl", 1)
    assert cy.exit_price == pytest.approx(110.52631578947368, rel=REL)
    assert cy.pnl == pytest.approx(-508.3, rel=1e-10)
    assert r.final_equity == pytest.approx(9491.7, rel=REL)


def test_short_several_levels_in_one_candle():
    r = both_modes(mk(WARM + [(101.0, 113.0, 100.5, 112.0)]), SHORT, P())
    # green: 101→100.5 (flat), 100.5→113 up: P0 = 105.263 fills (47.5), S = 126.3 > P1 = 111.1 fills (45);
    # Q = 92.5, A = 10000/92.5 = 108.108, S = 129.73. 113→112 > m. End at 112:
    #   9998 + 92.5·(108.108−112) − 92.5·112·0.0006 = 9998 − 360 − 6.216 = 9631.784
    cy = r.cycles[0]
    assert (cy.levels_filled, cy.qty) == (2, pytest.approx(92.5, rel=REL))
    assert cy.avg_entry == pytest.approx(108.10810810810811, rel=REL)
    assert r.final_equity == pytest.approx(9631.784, rel=REL)


def test_short_carried_position_exits_at_open_and_green_take_profit_first():
    entry = (103.0, 106.0, 102.0, 104.0)  # green: 103→102, 102→106 fills P0 (47.5), 106→104; next m = 102
    # open 101 <= m = 102: TP at the open 101: 9999 + 47.5·4.263 − 47.5·101·0.0006 = 9999 + 202.5 − 2.8785
    r = both_modes(mk(WARM + [entry, (101.0, 103.0, 100.0, 102.0)]), SHORT, P())
    assert (r.cycles[0].exit_reason, r.cycles[0].exit_price) == ("tp", 101.0)
    assert r.final_equity == pytest.approx(10198.6215, rel=REL)
    # green with H far above S = 126.3: O→L 103→101.5 reaches m = 102 first: TP at 102
    r = both_modes(mk(WARM + [entry, (103.0, 140.0, 101.5, 139.0)]), SHORT, P())
    assert (r.cycles[0].exit_reason, r.cycles[0].exit_price) == ("tp", 102.0)
    # red: O→H 103→140 first: P1 = 102/0.9 = 113.33 fills, then the new S (about 130.4) is hit -> stop
    r = both_modes(mk(WARM + [entry, (103.0, 140.0, 101.5, 102.5)]), SHORT, P())
    assert (r.cycles[0].exit_reason, r.cycles[0].levels_filled) == ("sl", 2)
    # open 130 >= S = 105.263·1.2 = 126.3: stop at the open
    r = both_modes(mk(WARM + [entry, (130.0, 131.0, 129.0, 130.0)]), SHORT, P())
    assert (r.cycles[0].exit_reason, r.cycles[0].exit_price) == ("sl", 130.0)


def test_bad_strategy_and_params():
    # the same rules and errors as the event engine (core.strategies.envelope_dca.normalize_params)
    c = mk(WARM)
    with pytest.raises(UsageError):
        run_fast(c, "envelope_dca_sideways", P())
    for bad in (P(n=0), P(levels=4, s=0.5, d=0.2), P(s=0.0), P(sl=1.0), P(d=-0.01), {"ma_period": 7.5},
                {**P(), "tp_percent": 0.1}):
        with pytest.raises(ParamError):
            run_fast(c, LONG, bad)
    with pytest.raises(ParamError):
        sweep(c, SHORT, {**DEFAULT_GRID, "sl_percent": [0.2, 1.5]})
    with pytest.raises(ParamError):
        sweep(c, SHORT, {"ma_periods": [5]})
    # missing parameters take the defaults, like the event engine
    assert run_fast(c, LONG, {"ma_period": 2}).params == {**DEFAULT_PARAMS, "ma_period": 2}


def test_nan_prices_are_never_skipped_over():
    # a NaN high hides nothing from skip-ahead: the gapped-down open still fills (t=2), as in a full scan
    rows = WARM + [(93.0, np.nan, 92.0, 93.5), (94.0, 95.0, 93.8, 94.5), (np.nan, 99.0, 80.0, 90.0)]
    for strategy in (LONG, SHORT):
        a = run_fast(mk(rows), strategy, P())
        b = run_fast(mk(rows), strategy, P(), skip=False)
        assert np.array_equal(a.equity, b.equity, equal_nan=True) and a.cycles == b.cycles
    assert run_fast(mk(rows), LONG, P()).cycles[0].open_time == T0 + 2 * H


def test_empty_and_short_series():
    r = run_fast(mk([]), LONG, P())
    assert r.final_equity == 10_000.0 and r.equity.size == 0 and r.n_cycles == 0
    s = sweep(mk([(1.0, 1.0, 1.0, 1.0)]), SHORT, grid_combos())
    assert np.all(s.final_equity == 10_000.0) and np.all(s.n_cycles == 0)


# ---------------------------------------------------------------- real data

@functools.lru_cache(maxsize=None)
def real(sym: str = "BTC") -> Candles:
    path = shared_file(f"binance-spot/{sym}_USDT-1h.json.gz")
    with gzip.open(path, "rt") as f:
        rows = np.asarray(json.load(f), dtype=np.float64)
    return Candles.from_rows(f"{sym}/USDT", "spot", "1h", rows)


REAL_COMBOS = [
    P(5, 2, 0.05, 0.02, 0.15), P(7, 3, 0.05, 0.03, 0.20), P(10, 4, 0.10, 0.05, 0.30),
    P(7, 4, 0.07, 0.02, 0.25), P(3, 5, 0.02, 0.01, 0.10), P(20, 1, 0.03, 0.0, 0.05),
]


@pytest.mark.parametrize("strategy", [LONG, SHORT])
def test_real_data_skip_equals_scan_bit_for_bit(strategy):
    c = real("BTC")
    for params in REAL_COMBOS:
        a = run_fast(c, strategy, params)
        b = run_fast(c, strategy, params, skip=False)
        assert np.array_equal(a.equity, b.equity)
        assert a.cycles == b.cycles
        assert a.n_cycles > 0
        assert not np.isnan(a.equity).any()
        assert a.equity[-1] == a.final_equity
    # the sweep (stats only) matches run_fast and the spec metrics on its curve
    g = grid_combos()
    s1 = sweep(c, strategy, g)
    s0 = sweep(c, strategy, g, skip=False, parallel="serial")
    st_ = sweep(c, strategy, g, parallel="threads")
    for name in ("final_equity", "n_cycles", "max_drawdown", "sharpe", "win_rate"):
        assert np.array_equal(getattr(s1, name), getattr(s0, name)), name
        assert np.array_equal(getattr(s1, name), getattr(st_, name)), name
    assert np.array_equal(s1.profit_factor, s0.profit_factor, equal_nan=True)
    for i in range(0, len(g), 41):
        r = run_fast(c, strategy, g.params(i))
        spec = r.to_spec_json()
        assert s1.final_equity[i] == r.final_equity and s1.n_cycles[i] == r.n_cycles
        assert math.isclose(s1.max_drawdown[i], spec["max_drawdown"], rel_tol=1e-12)
        assert math.isclose(s1.sharpe[i], spec["sharpe"], rel_tol=1e-9, abs_tol=1e-12)
        assert math.isclose(s1.win_rate[i], spec["win_rate"], rel_tol=1e-12)
        pf = spec["profit_factor"]
        assert (np.isnan(s1.profit_factor[i]) and pf is None) or math.isclose(s1.profit_factor[i], pf, rel_tol=1e-9)


def test_sweep_accepts_grid_dicts_and_param_lists():
    c = real("BTC")
    small = {"ma_period": [5, 7], "num_levels": [2], "envelope_start": [0.05], "envelope_step": [0.03], "sl_percent": [0.2]}
    s = sweep(c, LONG, small)
    assert len(s) == 2 and s.combos.params(1)["ma_period"] == 7
    s2 = sweep(c, LONG, combos_from_dicts([s.combos.params(1)]))
    assert s2.final_equity[0] == s.final_equity[1]
    assert s.row(0)["n_cycles"] == int(s.n_cycles[0])


# ---------------------------------------------------------------- hypothesis: random OHLC paths

@st.composite
def ohlc_paths(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, 400))
    tick = draw(st.sampled_from([0.0, 0.5, 1.0]))       # coarse prices make exact equalities frequent
    vol = draw(st.sampled_from([0.005, 0.02, 0.08]))
    rng = np.random.default_rng(seed)
    c = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    o = np.concatenate([[100.0], c[:-1]]) * np.exp(rng.normal(0.0, vol / 2, n) * (rng.random(n) < 0.3))
    hi = np.maximum(o, c) * np.exp(np.abs(rng.normal(0.0, vol, n)))
    lo = np.minimum(o, c) * np.exp(-np.abs(rng.normal(0.0, vol, n)))
    if tick:
        o, hi, lo, c = (np.maximum(np.round(x / tick) * tick, tick) for x in (o, hi, lo, c))
        hi = np.maximum(hi, np.maximum(o, c))
        lo = np.minimum(lo, np.minimum(o, c))
    if draw(st.booleans()) and draw(st.booleans()):
        # inconsistent candles (low above the open, high below the close, ...): the engine
        # must still follow the path literally, and skip-ahead must not miss a touch
        k = rng.random(n) < 0.3
        o, hi, lo, c = (np.where(k, x * np.exp(rng.normal(0.0, vol, n)), x) for x in (o, hi, lo, c))
    gaps = rng.integers(1, 4, n) * (rng.random(n) < 0.1) * 7  # a few multi-hour gaps
    ts = T0 + np.cumsum(np.ones(n, dtype=np.int64) + gaps) * H
    rows = np.column_stack([ts, o, hi, lo, c, np.ones(n)])
    return Candles.from_rows("RND/USDT", "spot", "1h", rows)


hyp_params = st.fixed_dictionaries({
    "ma_period": st.integers(1, 12),
    "num_levels": st.integers(1, 5),
    "envelope_start": st.sampled_from([0.005, 0.01, 0.02, 0.05, 0.125, 0.25]),
    "envelope_step": st.sampled_from([0.0, 0.01, 0.03, 0.0625, 0.1]),
    "sl_percent": st.sampled_from([0.01, 0.02, 0.05, 0.2, 0.5]),
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(candles=ohlc_paths(), params=hyp_params, strategy=st.sampled_from([LONG, SHORT]))
def test_random_paths_scan_equals_skip_and_metrics_agree(candles, params, strategy):
    a = run_fast(candles, strategy, params)
    b = run_fast(candles, strategy, params, skip=False)
    assert not np.isnan(a.equity).any() and np.isfinite(a.final_equity)
    assert np.array_equal(a.equity, b.equity) and a.cycles == b.cycles
    if len(candles):
        assert a.equity[-1] == a.final_equity
    for cy in a.cycles:
        assert cy.open_time <= cy.close_time and 1 <= cy.levels_filled <= params["num_levels"]
    s = sweep(candles, strategy, [params])
    s0 = sweep(candles, strategy, [params], skip=False)
    assert s.final_equity[0] == a.final_equity == s0.final_equity[0]
    assert s.n_cycles[0] == a.n_cycles == s0.n_cycles[0]
    assert s.sharpe[0] == s0.sharpe[0] and s.max_drawdown[0] == s0.max_drawdown[0]
    if len(candles):
        assert math.isclose(s.max_drawdown[0], metrics.max_drawdown(a.equity), rel_tol=1e-12, abs_tol=1e-15)
        assert math.isclose(s.sharpe[0], metrics.daily_sharpe(a.ts, a.equity), rel_tol=1e-9, abs_tol=1e-12)


# ---------------------------------------------------------------- a literal reference of the spec

def reference(candles: Candles, strategy: str, params: dict, acc: Account = Account()):
    """The spec read line by line, in plain Python, long and short written out separately.

    Returns (final_equity, cycles as tuples, per-candle equity list). Slow; for small series.
    """
    long_ = strategy == LONG
    N, L = params["ma_period"], params["num_levels"]
    s, d, p = params["envelope_start"], params["envelope_step"], params["sl_percent"]
    o, h, l, c = (x.tolist() for x in (candles.open, candles.high, candles.low, candles.close))
    n = len(o)
    sma = [None] * n
    for t in range(N - 1, n):
        tot = 0.0
        for j in range(t - N + 1, t + 1):      # oldest first
            tot += c[j]
        sma[t] = tot / N
    offs = [s + i * d for i in range(L)]
    cash = acc.initial_capital
    fills: list[tuple[float, float]] = []
    E = fees = 0.0
    open_t = 0
    cycles, equity = [], []

    def avg():
        return sum(q * x for q, x in fills) / sum(q for q, _ in fills)

    def stop():
        return avg() * (1 - p) if long_ else avg() * (1 + p)

    for t in range(n):
        if t < N:
            equity.append(cash)
            continue
        m = sma[t - 1]
        P = [m * (1 - off) for off in offs] if long_ else [m * (1 + (1 / (1 - off) - 1)) for off in offs]

        def fill(x):
            nonlocal cash, fees, E, open_t
            if not fills:
                E, fees, open_t = cash, 0.0, t
            q = (E * acc.leverage / L) / x
            fee = q * x * acc.maker_fee
            cash -= fee
            fees += fee
            fills.append((q, x))

        ex = None
        if fills:
            S = stop()
            if (o[t] <= S) if long_ else (o[t] >= S):
                ex = (o[t], "sl")
            elif (o[t] >= m) if long_ else (o[t] <= m):
                ex = (o[t], "tp")
        if ex is None:
            while len(fills) < L and ((P[len(fills)] >= o[t]) if long_ else (P[len(fills)] <= o[t])):
                fill(o[t])
            path = [o[t], l[t], h[t], c[t]] if c[t] >= o[t] else [o[t], h[t], l[t], c[t]]
            for a, b in zip(path, path[1:]):
                if a == b:
                    continue
                if (b < a) if long_ else (b > a):          # against the position
                    while True:
                        k = len(fills)
                        nxt = P[k] if k < L else None
                        if fills:
                            S = stop()
                            if nxt is None or ((S >= nxt) if long_ else (S <= nxt)):
                                if (b <= S) if long_ else (b >= S):
                                    ex = (S, "sl")
                                break
                        if (b <= nxt) if long_ else (b >= nxt):
                            fill(nxt)
                            continue
                        break
                    if ex:
                        break
                elif fills and ((b >= m) if long_ else (b <= m)):
                    ex = (m, "tp")
                    break
        if ex is None and fills and t == n - 1:
            ex = (c[t], "end")
        if ex:
            X, why = ex
            Q, A = sum(q for q, _ in fills), avg()
            real_ = Q * (X - A) if long_ else Q * (A - X)
            xfee = Q * X * acc.taker_fee
            cash += real_ - xfee
            cycles.append((int(candles.ts[open_t]), int(candles.ts[t]), len(fills), why, A, X, Q, real_ - fees - xfee))
            fills.clear()
        if fills:
            Q, A = sum(q for q, _ in fills), avg()
            equity.append(cash + (Q * (c[t] - A) if long_ else Q * (A - c[t])))
        else:
            equity.append(cash)
    return cash, cycles, equity


def as_tuples(r):
    return [(x.open_time, x.close_time, x.levels_filled, x.exit_reason, x.avg_entry, x.exit_price, x.qty, x.pnl)
            for x in r.cycles]


def test_reference_reproduces_the_hand_cases():
    # the literal reference gives the hand-worked numbers too (so it can judge random paths)
    fin, cyc, _ = reference(mk(WARM + [(97.0, 101.0, 94.0, 100.0)]), LONG, P())
    assert fin == pytest.approx(10259.0, rel=REL) and cyc[0][3] == "tp"
    fin, cyc, _ = reference(mk(WARM + [(101.0, 113.0, 100.5, 112.0)]), SHORT, P())
    assert fin == pytest.approx(9631.784, rel=REL) and cyc[0][2] == 2


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(candles=ohlc_paths(), params=hyp_params, strategy=st.sampled_from([LONG, SHORT]),
       fees=st.sampled_from([Account(), NOFEE, Account(initial_capital=777.0, leverage=3.0, maker_fee=-0.0001)]))
def test_random_paths_equal_the_literal_reference_bit_for_bit(candles, params, strategy, fees):
    fin, cyc, eq = reference(candles, strategy, params, fees)
    r = run_fast(candles, strategy, params, fees)
    assert r.final_equity == fin
    assert as_tuples(r) == cyc
    assert r.equity.tolist() == eq
