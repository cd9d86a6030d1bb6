"""A worked example of envelope_dca (long, 16 candles) and envelope_dca_short (8 candles),
every expected number derived by hand below from `../shared/specs/envelope_dca.md`.

Account: the spec defaults, C0 = 10,000 USDT, leverage 1, f_m = 0.0002, f_t = 0.0006.
Candles are 1h, candle t opens at T0 + t·1h. Prices are chosen so that the level prices
are exact binary fractions (factors 0.875, 0.75, 0.625, 0.5): the equality touch and the
tie below are exact in float64 too. Fractions are written as a/b where that is clearer.

Long parameters: N = 2, L = 4, s = 0.125, d = 0.125, p = 0.25
  offsets 0.125, 0.25, 0.375, 0.5 → P_i = m·(0.875, 0.75, 0.625, 0.5); S = 0.75·A
  m_t = (C[t−2] + C[t−1]) / 2; no trading on t = 0, 1. Each level gets U = E/4 USDT.

Money rules used everywhere: entry fee = qty·price·f_m = U·0.0002 (qty = U/price);
exit: cash += Q·(X − A) − Q·X·0.0006; pnl = Q·(X − A) − entry fees − exit fee.
Equity at a close = cash + Q·(C − A) (long), cash when flat.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.backtest.event_engine import run_event_backtest
from core.model.candles import Candles

T0 = 1_577_836_800_000  # 2020-01-01 00:00 UTC
H = 3_600_000
MONEY = 1e-9            # absolute tolerance on USDT amounts
PRICE = 1e-9            # absolute tolerance on prices and quantities

LONG_PARAMS = {"ma_period": 2, "num_levels": 4, "envelope_start": 0.125, "envelope_step": 0.125,
               "sl_percent": 0.25}

#          O      H     L      C       m (from the two previous closes) and what happens
LONG_ROWS = [
    (100, 101, 99, 100),          # t0  no trading (t < N)
    (100, 101, 99, 100),          # t1  no trading
    (95, 101, 87.5, 100),         # t2  m=100, P=87.5/75/62.5/50. GREEN O→L→H→C: O→L reaches 87.5 = P0
                                  #     (equality is a touch): L0 fills at 87.5; L→H reaches 101 >= 100:
                                  #     TP at 100 in the same candle as the entry. Cycle A.
    (99, 100, 91, 92),            # t3  m=(100+100)/2=100, P0=87.5 < low 91: nothing (flat)
    (80, 82, 75, 78),             # t4  m=(100+92)/2=96, P=84/72/60/48. Gap down: O=80 <= P0=84 → L0 fills
                                  #     at the open, 80 (P1=72 < 80: not crossed). S=60. RED O→H→L→C:
                                  #     82 < m; H→L to 75 > P1=72: nothing more. Cycle B opens.
    (78, 83, 77, 82),             # t5  m=(92+78)/2=85, P1=63.75: quiet (77 > 63.75, 83 < 85)
    (75, 76, 59, 62),             # t6  m=(78+82)/2=80, P1=80·0.75=60 = S=80·0.75: a TIE. RED: O→H 76 < 80;
                                  #     H→L to 59: S comes first → SL at 60, level 1 does NOT fill.
    (64, 65, 30, 34),             # t7  m=(82+62)/2=72, P=63/54/45/36. RED: O→H nothing (flat); H→L to 30:
                                  #     L0 at 63 (S=47.25), L1 at 54 (S=43.615…), L2 at 45 (S=39.743…),
                                  #     then S (39.74 > P3=36) → SL at S, same candle. Cycle C.
    (46, 47, 41, 44),             # t8  m=(62+34)/2=48, P=42/36/30/24. RED: H→L to 41 <= 42: L0 at 42, S=31.5.
    (38, 40, 29, 36),             # t9  m=(34+44)/2=39 < A=42. RED O→H first: 40 >= 39 → TP at 39 (a losing
                                  #     TP). The low 29 would have filled P1=29.25 (green order) and a new
                                  #     cycle's P0=34.125, but an exit ends the candle. Cycle D.
    (37, 38, 34, 35.5),           # t10 m=(44+36)/2=40, P=35/30/25/20. RED: H→L to 34: L0 at 35, S=26.25.
    (41, 45, 40, 44.5),           # t11 m=(36+35.5)/2=35.75: open 41 >= m → TP at the open, 41. Cycle E.
    (29, 31, 28, 30),             # t12 m=(35.5+44.5)/2=40, P=35/30/25/20. Gap down: P0=35 >= 29 and
                                  #     P1=30 >= 29 → L0 and L1 both fill at the open, 29 (P2=25 < 29).
                                  #     A=29, S=21.75. Then 28 > P2=25, 31 < 40: nothing more.
    (20, 22, 17, 18),             # t13 m=(44.5+30)/2=37.25: open 20 <= S=21.75 → SL at the open, 20.
                                  #     (P0=32.59 >= 20 would fill at the open, but the exit ends the candle.)
    (22, 23, 20, 20.5),           # t14 m=(30+18)/2=24, P=21/18/15/12. RED: H→L to 20: L0 at 21, S=15.75.
    (18.5, 19, 17, 18),           # t15 m=(18+20.5)/2=19.25, P1=14.4375: 19 < m, 17 > S: nothing; last
                                  #     candle: closed at the close, 18, reason "end". Cycle G.
]

# ---- Cycle A (t2): E = 10000, U = 2500.
#   fill L0 at 87.5: q = 2500/87.5 = 200/7 = 28.571428571428573; fee = 2500·0.0002 = 0.5; cash 9999.5
#   TP at 100: real = 200/7·12.5 = 2500/7 = 357.142857142857; exit fee = 200/7·100·0.0006 = 12/7
#   cash = 9999.5 + 2500/7 − 12/7 = 10354.928571428571; pnl = 2488/7 − 0.5 = 354.92857142857144
# ---- Cycle B (t4 … t6): E = 10354.928571428571, U = E/4 = 2588.7321428571427
#   fill L0 at 80 (open): q = U/80 = 32.35915178571429; fee = U·0.0002 = 0.5177464285714286
#   cash = 10354.410825; A = 80; S = 80·0.75 = 60
#   equity t4 = cash + q·(78 − 80) = 10289.692521428571; t5 = cash + q·(82 − 80) = 10419.129128571429
#   SL at 60: real = q·(60 − 80) = −647.1830357142857; exit fee = q·60·0.0006 = 1.1649294642857142
#   cash = 9706.062859821428; pnl = −647.1830357142857 − 0.5177464285714286 − 1.1649294642857142
#        = −648.8657116071429
# ---- Cycle C (t7): E = 9706.062859821428, U = 2426.515714955357, fee per level U·0.0002 = 0.4853031429910714
#   q0 = U/63 = 38.516122459608845, q1 = U/54 = 44.935476202876984, q2 = U/45 = 53.922571443452384
#   after L0: A = 63, S = 47.25; after L1: A = 2/(1/63 + 1/54) = 756/13 = 58.15384615384615, S = 567/13
#   = 43.61538461538461; after L2: A = 3/(1/63 + 1/54 + 1/45) = 5670/107 = 52.99065420560748,
#   S = 8505/214 = 39.742990654205606 (> P3 = 36, so S is met first); Q = 137.37417010593822
#   SL at S: real = Q·(S − A) = −0.25·A·Q = −0.25·3U = −1819.8867862165177; exit fee = Q·S·0.0006
#   = 3.275796215189732; cash = 9706.062859821428 − 3·0.4853031429910714 − 1819.8867862165177
#   − 3.275796215189732 = 7881.4443679607475; pnl = −1824.6184918606807
# ---- Cycle D (t8, t9): E = 7881.4443679607475, U = 1970.3610919901869
#   L0 at 42: q = U/42 = 46.91335933309969; fee = 0.3940722183980374; cash = 7881.05029574235
#   equity t8 = cash + q·(44 − 42) = 7974.877014408549
#   TP at 39: real = −3q = −140.74007799929907; exit fee = q·39·0.0006 = 1.0977726083945327
#   cash = 7739.212445134656; pnl = −142.23192282609165
# ---- Cycle E (t10, t11): E = 7739.212445134656, U = 1934.803111283664
#   L0 at 35: q = U/35 = 55.28008889381897; fee = 0.38696062225673283; cash = 7738.825484512399
#   equity t10 = cash + q·(35.5 − 35) = 7766.465528959309
#   TP at the open, 41: real = 6q = 331.6805333629138; exit fee = q·41·0.0006 = 1.3598901867879467
#   cash = 8069.146127688526; pnl = 329.9336825538692
# ---- Cycle F (t12, t13): E = 8069.146127688526, U = 2017.2865319221314
#   L0, L1 at 29: q each = U/29 = 69.56160454903902, Q = 139.12320909807804; fee each 0.4034573063844263
#   cash = 8068.339213075757; A = 29; S = 21.75; equity t12 = cash + Q·(30 − 29) = 8207.462422173834
#   SL at the open, 20: real = Q·(20 − 29) = −1252.1088818827022; exit fee = Q·20·0.0006 = 1.6694785091769362
#   cash = 6814.560852683877; pnl = −1254.5852750046479
# ---- Cycle G (t14, t15): E = 6814.560852683877, U = 1703.6402131709692
#   L0 at 21: q = U/21 = 81.12572443671283; fee = 0.3407280426341939; cash = 6814.220124641243; S = 15.75
#   equity t14 = cash + q·(20.5 − 21) = 6773.657262422887
#   end at 18: real = −3q = −243.3771733101385; exit fee = q·18·0.0006 = 0.8761578239164985
#   cash = final equity = 6569.966793507188; pnl = −244.59405917668917

#            open t, close t, levels, avg entry, exit, reason, qty, pnl
LONG_CYCLES = [
    (2, 2, 1, 87.5, 100.0, "tp", 28.571428571428573, 354.92857142857144),
    (4, 6, 1, 80.0, 60.0, "sl", 32.35915178571429, -648.8657116071429),
    (7, 7, 3, 52.99065420560748, 39.742990654205606, "sl", 137.37417010593822, -1824.6184918606807),
    (8, 9, 1, 42.0, 39.0, "tp", 46.91335933309969, -142.23192282609165),
    (10, 11, 1, 35.0, 41.0, "tp", 55.28008889381897, 329.9336825538692),
    (12, 13, 2, 29.0, 20.0, "sl", 139.12320909807804, -1254.5852750046479),
    (14, 15, 1, 21.0, 18.0, "end", 81.12572443671283, -244.59405917668917),
]

LONG_EQUITY = [
    10000.0, 10000.0,                          # t0, t1: C0 before trading
    10354.928571428571, 10354.928571428571,    # t2 after cycle A, t3 flat
    10289.692521428571, 10419.129128571429,    # t4, t5: cycle B open
    9706.062859821428,                         # t6 after the SL
    7881.4443679607475,                        # t7 after cycle C
    7974.877014408549, 7739.212445134656,      # t8 open, t9 after the TP
    7766.465528959309, 8069.146127688526,      # t10 open, t11 after the TP
    8207.462422173834, 6814.560852683877,      # t12 open, t13 after the SL
    6773.657262422887, 6569.966793507188,      # t14 open, t15 after the end exit
]

#            t, kind, level (entries) or reason (exits), price, qty, fee
LONG_FILLS = [
    (2, "entry", 0, 87.5, 28.571428571428573, 0.5),
    (2, "exit", "tp", 100.0, 28.571428571428573, 12 / 7),
    (4, "entry", 0, 80.0, 32.35915178571429, 0.5177464285714286),
    (6, "exit", "sl", 60.0, 32.35915178571429, 1.1649294642857142),
    (7, "entry", 0, 63.0, 38.516122459608845, 0.4853031429910714),
    (7, "entry", 1, 54.0, 44.935476202876984, 0.4853031429910714),
    (7, "entry", 2, 45.0, 53.922571443452384, 0.4853031429910714),
    (7, "exit", "sl", 39.742990654205606, 137.37417010593822, 3.275796215189732),
    (8, "entry", 0, 42.0, 46.91335933309969, 0.3940722183980374),
    (9, "exit", "tp", 39.0, 46.91335933309969, 1.0977726083945327),
    (10, "entry", 0, 35.0, 55.28008889381897, 0.38696062225673283),
    (11, "exit", "tp", 41.0, 55.28008889381897, 1.3598901867879467),
    (12, "entry", 0, 29.0, 69.56160454903902, 0.4034573063844263),
    (12, "entry", 1, 29.0, 69.56160454903902, 0.4034573063844263),
    (13, "exit", "sl", 20.0, 139.12320909807804, 1.6694785091769362),
    (14, "entry", 0, 21.0, 81.12572443671283, 0.3407280426341939),
    (15, "exit", "end", 18.0, 81.12572443671283, 0.8761578239164985),
]

#: the stop after each candle that ends with a position open (t: S); the observer sees the
#: last candle before the end-of-data exit
LONG_STOPS = {4: 60.0, 5: 60.0, 8: 31.5, 10: 26.25, 12: 21.75, 14: 15.75, 15: 15.75}


# ======================================================================== short side
# Parameters: N = 2, L = 3, s = 0.125, d = 0.125, p = 0.25
#   offsets 1/8, 1/4, 3/8 → u_i = 1/(1 − offset_i) − 1 = 1/7, 1/3, 3/5 → P_i = m·(8/7, 4/3, 8/5)
#   S = 1.25·A; each level gets U = E/3; exit: cash += Q·(A − X) − Q·X·0.0006;
#   equity = cash + Q·(A − C).
SHORT_PARAMS = {"ma_period": 2, "num_levels": 3, "envelope_start": 0.125, "envelope_step": 0.125,
                "sl_percent": 0.25}

SHORT_ROWS = [
    (105, 106, 104, 105),         # s0  no trading
    (105, 106, 104, 105),         # s1  no trading
    (110, 121, 104, 105),         # s2  m=105, P=120/140/168. RED O→H→L→C: O→H to 121 >= 120: L0 sells at
                                  #     120, S=150 (P1=140 is met first but 121 < 140); H→L to 104 <= 105:
                                  #     TP at 105 in the same candle as the entry. Cycle a.
    (104, 110, 100, 105),         # s3  m=105, P0=120 > high 110: nothing (flat)
    (130, 150, 128, 140),         # s4  m=(105+105)/2=105. Gap up: O=130 >= P0=120 → L0 at the open, 130
                                  #     (P1=140 > 130), S=162.5. GREEN O→L→H→C: 128 > 105; L→H to 150:
                                  #     P1=140 (below S) fills at 140, A=3640/27, S=4550/27=168.52; next
                                  #     P2=168 (below S) is not reached (150). H→C: 140 > 105. Cycle b opens.
    (138, 170, 122, 140),         # s5  m=(105+140)/2=122.5. GREEN: O→L first, 122 <= 122.5: TP at 122.5
                                  #     (a red candle would have gone O→H to 170 >= S=168.52 first: SL).
    (150, 250, 148, 240),         # s6  m=(140+140)/2=140, P=160/186.67/224. GREEN: O→L flat; L→H to 250:
                                  #     L0 at 160 (S=200), L1 at 560/3 (S=2800/13=215.38 < P2=224),
                                  #     then S → SL at 2800/13. Cycle c.
    (230, 235, 225, 228),         # s7  m=(140+240)/2=190, P0=1520/7=217.14 <= O=230: L0 at the open, 230;
                                  #     P1=253.33 > 235, 225 > 190: nothing more; last candle → "end" at 228.
]

# ---- Cycle a (s2): U = 10000/3; q = U/120 = 250/9 = 27.77777777777778; fee = U·0.0002 = 2/3
#   TP at 105: real = q·(120 − 105) = 1250/3; exit fee = q·105·0.0006 = 1.75
#   cash = 10000 − 2/3 + 1250/3 − 1.75 = 10414.25; pnl = 1250/3 − 2/3 − 1.75 = 414.25
# ---- Cycle b (s4, s5): E = 10414.25, U = 3471.4166666666665, fee each = 0.6942833333333334
#   q0 = U/130 = 26.703205128205127, q1 = U/140 = 24.795833333333334, Q = 51.49903846153846
#   A = 2U/Q = 2/(1/130 + 1/140) = 3640/27 = 134.8148148148148; S = 4550/27 = 168.5185185185185
#   cash after the fills = 10412.861433333333; equity s4 = cash + Q·(A − 140) = 10145.829382051283
#   TP at 122.5: real = Q·(A − 122.5) = 634.2011217948718; exit fee = Q·122.5·0.0006 = 3.785179326923077
#   cash = 11043.277375801283; pnl = 634.2011217948718 − 2·0.6942833333333334 − 3.785179326923077
#        = 629.027375801282
# ---- Cycle c (s6): E = 11043.277375801283, U = 3681.0924586004276
#   q0 = U/160 = 23.00682786625267, q1 = U/(560/3) = 19.720138171073717, Q = 42.72696603732639
#   A = 2/(1/160 + 3/560) = 2240/13 = 172.30769230769232; S = 1.25·A = 2800/13 = 215.3846153846154
#   SL at S: real = Q·(A − S) = −0.25·A·Q = −0.25·2U = −1840.5462293002138; exit fee = Q·S·0.0006
#   = 5.521638687900641; cash = 9195.737070829728; pnl = −1847.5403049715544
# ---- Cycle d (s7): E = 9195.737070829728, U = 3065.2456902765757
#   q = U/230 = 13.327155175115546; fee = 0.6130491380553151
#   end at 228: real = q·(230 − 228) = 26.654310350231093; exit fee = q·228·0.0006 = 1.823154827955807
#   cash = final equity = 9219.955177213948; pnl = 24.218106384219972

SHORT_CYCLES = [
    (2, 2, 1, 120.0, 105.0, "tp", 27.77777777777778, 414.25),
    (4, 5, 2, 134.8148148148148, 122.5, "tp", 51.49903846153846, 629.027375801282),
    (6, 6, 2, 172.30769230769232, 215.3846153846154, "sl", 42.72696603732639, -1847.5403049715544),
    (7, 7, 1, 230.0, 228.0, "end", 13.327155175115546, 24.218106384219972),
]

SHORT_EQUITY = [10000.0, 10000.0, 10414.25, 10414.25, 10145.829382051283, 11043.277375801283,
                9195.737070829728, 9219.955177213948]

SHORT_FILLS = [
    (2, "entry", 0, 120.0, 27.77777777777778, 2 / 3),
    (2, "exit", "tp", 105.0, 27.77777777777778, 1.75),
    (4, "entry", 0, 130.0, 26.703205128205127, 0.6942833333333334),
    (4, "entry", 1, 140.0, 24.795833333333334, 0.6942833333333334),
    (5, "exit", "tp", 122.5, 51.49903846153846, 3.785179326923077),
    (6, "entry", 0, 160.0, 23.00682786625267, 0.7362184917200855),
    (6, "entry", 1, 560 / 3, 19.720138171073717, 0.7362184917200855),
    (6, "exit", "sl", 215.3846153846154, 42.72696603732639, 5.521638687900641),
    (7, "entry", 0, 230.0, 13.327155175115546, 0.6130491380553151),
    (7, "exit", "end", 228.0, 13.327155175115546, 1.823154827955807),
]

SHORT_STOPS = {4: 4550 / 27, 7: 230 * 1.25}  # s7: S = 1.25·230 = 287.5


def make_candles(rows) -> Candles:
    arr = np.array([[T0 + i * H, *r, 1.0] for i, r in enumerate(rows)], dtype=np.float64)
    return Candles.from_rows("TEST/USDT", "spot", "1h", arr)


def run(strategy: str, rows, params):
    """The result, the matching engine, and {t: stop} after each candle holding a position."""
    seen = {}
    stops = {}

    def observer(t, eng):
        seen["engine"] = eng
        if eng.levels_filled:
            stops[t] = eng.stop

    res = run_event_backtest(make_candles(rows), strategy, dict(params), observer=observer)
    return res, seen["engine"], stops


CASES = {
    "long": ("envelope_dca", LONG_ROWS, LONG_PARAMS, LONG_CYCLES, LONG_EQUITY, LONG_FILLS, LONG_STOPS, "long"),
    "short": ("envelope_dca_short", SHORT_ROWS, SHORT_PARAMS, SHORT_CYCLES, SHORT_EQUITY, SHORT_FILLS,
              SHORT_STOPS, "short"),
}


@pytest.mark.parametrize("case", CASES)
def test_cycles_match_the_hand_computation(case):
    strategy, rows, params, cycles, _, _, _, side = CASES[case]
    res, _, _ = run(strategy, rows, params)
    assert res.n_cycles == len(cycles)
    for got, (t_open, t_close, levels, avg, exit_price, reason, qty, pnl) in zip(res.cycles, cycles):
        assert (got.open_time, got.close_time, got.side, got.levels_filled, got.exit_reason) == \
            (T0 + t_open * H, T0 + t_close * H, side, levels, reason), got
        assert got.avg_entry == pytest.approx(avg, abs=PRICE)
        assert got.exit_price == pytest.approx(exit_price, abs=PRICE)
        assert got.qty == pytest.approx(qty, abs=PRICE)
        assert got.pnl == pytest.approx(pnl, abs=MONEY)


@pytest.mark.parametrize("case", CASES)
def test_equity_curve_and_final_equity(case):
    strategy, rows, params, cycles, equity, _, _, _ = CASES[case]
    res, eng, _ = run(strategy, rows, params)
    assert res.ts.tolist() == [T0 + i * H for i in range(len(rows))]
    np.testing.assert_allclose(res.equity, equity, rtol=0, atol=MONEY)
    assert res.final_equity == pytest.approx(equity[-1], abs=MONEY)
    assert res.equity[-1] == res.final_equity == eng.cash     # last point after the end exit
    # the cash changes only by the cycles' pnl: C0 + Σ pnl
    assert res.final_equity == pytest.approx(10_000.0 + sum(c[-1] for c in cycles), abs=MONEY)
    assert not eng.in_position


@pytest.mark.parametrize("case", CASES)
def test_fills_with_prices_quantities_and_fees(case):
    strategy, rows, params, _, _, fills, _, _ = CASES[case]
    _, eng, _ = run(strategy, rows, params)
    assert len(eng.fills) == len(fills)
    for got, (t, kind, what, price, qty, fee) in zip(eng.fills, fills):
        assert (got.ts, got.kind) == (T0 + t * H, kind), got
        assert (got.level if kind == "entry" else got.reason) == what, got
        assert got.price == pytest.approx(price, abs=PRICE)
        assert got.qty == pytest.approx(qty, abs=PRICE)
        assert got.fee == pytest.approx(fee, abs=MONEY)
    ids = [f.order_id for f in eng.fills]
    assert len(set(ids)) == len(ids)               # every fill belongs to its own order here


@pytest.mark.parametrize("case", CASES)
def test_stops(case):
    strategy, rows, params, _, _, _, stops, _ = CASES[case]
    _, _, got = run(strategy, rows, params)
    assert set(got) == set(stops)
    for t, s in stops.items():
        assert got[t] == pytest.approx(s, abs=PRICE), t


def test_the_tie_is_exact_and_the_stop_wins():
    """t6 of the long example: P1 = 80·0.75 and S = 80·0.75 are the same float; S first."""
    assert 80.0 * (1.0 - (0.125 + 1 * 0.125)) == 80.0 * (1.0 - 0.25) == 60.0
    res, eng, _ = run("envelope_dca", LONG_ROWS[:7], LONG_PARAMS)
    assert res.cycles[-1].exit_reason == "sl" and res.cycles[-1].levels_filled == 1
    assert [f.level for f in eng.fills if f.kind == "entry" and f.ts == T0 + 6 * H] == []


def test_the_red_candle_would_have_stopped_the_short_out():
    """s5 of the short example with the colour flipped (close < open): O→H reaches S first."""
    rows = list(SHORT_ROWS[:6])
    o, h, lo, _ = rows[5]
    rows[5] = (o, h, lo, 137)  # red now: O→H→L→C
    res, _, _ = run("envelope_dca_short", rows, SHORT_PARAMS)
    last = res.cycles[-1]
    assert (last.exit_reason, last.close_time) == ("sl", T0 + 5 * H)
    assert last.exit_price == pytest.approx(4550 / 27, abs=PRICE)
    assert math.isclose(res.final_equity, res.equity[-1])


def test_short_tie_the_stop_wins():
    """The short-side tie, exact in float64: f1 = 1 + (1/(1 − 0.25) − 1) = 1.3333333333333333 and
    135·f1 = 180.0 exactly; a short filled at 144 has S = 144·1.25 = 180.0 exactly.

    s2: m=120, P0=137.14, P1=160 → gap-up open 144 >= P0: L0 sells 144 (< P1); S = 180.
        q = (10000/3)/144 = 23.148148148148145; fee = (10000/3)·0.0002 = 2/3. RED path stays in 135..146.
    s3: m=(120+136)/2=128, P1=170.67: 133..140 touches nothing.
    s4: m=(136+134)/2=135, P1 = 180.0 = S. GREEN O→L→H→C: 149 > 135; L→H to 185: S first → SL at 180.
        real = q·(144 − 180) = −36q = −2500/3; exit fee = q·180·0.0006 = 2.5
        pnl = −2500/3 − 2/3 − 2.5 = −836.5; cash = 10000 − 836.5 = 9163.5
    (Were the level first: A = 2/(1/144 + 1/180) = 160, S = 200 > 185, the cycle would stay open.)
    """
    params = dict(SHORT_PARAMS)
    rows = [(120, 121, 119, 120), (120, 121, 119, 120), (144, 146, 135, 136), (136, 140, 133, 134),
            (150, 185, 149, 170)]
    assert 135.0 * (1.0 + (1.0 / (1.0 - 0.25) - 1.0)) == 144.0 * 1.25 == 180.0
    res, eng, _ = run("envelope_dca_short", rows, params)
    assert [(c.open_time, c.close_time, c.levels_filled, c.exit_reason) for c in res.cycles] == \
        [(T0 + 2 * H, T0 + 4 * H, 1, "sl")]
    cy = res.cycles[0]
    assert cy.avg_entry == 144.0 and cy.exit_price == 180.0
    assert cy.qty == pytest.approx(10_000 / 3 / 144, abs=PRICE)
    assert cy.pnl == pytest.approx(-836.5, abs=MONEY)
    assert res.final_equity == pytest.approx(9163.5, abs=MONEY)
    assert [f.kind for f in eng.fills] == ["entry", "exit"]
