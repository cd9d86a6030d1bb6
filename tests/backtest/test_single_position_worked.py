"""Worked examples of the single-position matching engine (docs/single_position.md), by hand.

Account: C0 = 10,000 USDT, leverage 1, maker 0.0002, taker 0.0006. A stub strategy places
a given entry on given candles; its exits are percent distances from the fill. Each case
is also run through the fast kernel (`run_single`) with the same inputs where it applies
(market entries), so the hand numbers pin both engines.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.backtest.fast.single_kernels import REASONS, run_single
from core.backtest.single_driver import run_single_backtest
from core.model.account import Account
from core.model.candles import Candles
from core.model.sides import LONG, SHORT
from core.strategies.array_signal import PCT
from core.strategies.base import CandleHistory, EntryIntent, SinglePositionStrategy

TOL = 1e-9


class Stub(SinglePositionStrategy):
    """Enters `side` on the candles in `at` (all candles when None), market (price None) or
    limit; exits: stop and take-profit fractions `sl`, `tp` of the fill price."""

    name = "stub"

    def __init__(self, side=LONG, at=(0,), price=None, sl=0.05, tp=0.10, max_hold=0):
        self.params = {}
        self.side, self.at, self.price, self.sl, self.tp = side, at, price, sl, tp
        self.max_hold = max_hold

    def on_candle_open(self, history: CandleHistory):
        if self.at is not None and len(history) not in self.at:
            return None
        return EntryIntent(self.side, self.price, math.nan, None)

    def manage(self, history, entry_price):
        if self.side == LONG:
            return entry_price * (1.0 - self.sl), entry_price * (1.0 + self.tp)
        return entry_price * (1.0 + self.sl), entry_price * (1.0 - self.tp)


def candles(rows) -> Candles:
    """rows of (open, high, low, close), hourly from ts 0."""
    a = np.asarray([[i * 3_600_000, *r, 1.0] for i, r in enumerate(rows)], dtype=np.float64)
    return Candles.from_rows("X/USDT", "spot", "1h", a)


def event(rows, **kw):
    return run_single_backtest(candles(rows), Stub(**kw))


def fast(rows, side=LONG, at=(0,), sl=0.05, tp=0.10, max_hold=0):
    """The fast kernel on the same candles, signals on the candles in `at`."""
    c = candles(rows)
    n = len(c)
    sig = np.zeros(n, dtype=np.int8)
    for t in (range(n) if at is None else at):
        sig[t] = 1 if side == LONG else -1
    nan = np.full(n, np.nan)
    eq = np.empty(n)
    ci = np.empty((n, 4), dtype=np.int64)
    cf = np.empty((n, 4))
    st = run_single(c.ts // 86_400_000, 1, c.open, c.high, c.low, c.close, sig, nan, nan,
                    PCT, sl, PCT, tp, max_hold, 10_000.0, 1.0, 0.0006, True, eq, ci, cf)
    trades = [(REASONS[ci[k, 3]], cf[k, 1], cf[k, 3]) for k in range(st[1])]
    return st[0], trades, eq


def trades(res):
    return [(c.exit_reason, c.exit_price, c.pnl) for c in res.cycles]


def assert_trades(got, want):
    assert len(got) == len(want)
    for (r1, x1, p1), (r2, x2, p2) in zip(got, want):
        assert r1 == r2
        assert x1 == pytest.approx(x2, rel=TOL)
        assert p1 == pytest.approx(p2, rel=TOL)


def both(rows, want_trades, want_final, want_equity=None, **kw):
    ev = event(rows, **kw)
    assert_trades(trades(ev), want_trades)
    assert ev.final_equity == pytest.approx(want_final, rel=TOL)
    if want_equity is not None:
        assert ev.equity.tolist() == pytest.approx(want_equity, rel=TOL)
    if kw.get("price") is None:
        f_final, f_trades, f_eq = fast(rows, **{k: v for k, v in kw.items() if k != "price"})
        assert_trades(f_trades, want_trades)
        assert f_final == pytest.approx(want_final, rel=TOL)
        assert f_eq.tolist() == pytest.approx(ev.equity.tolist(), rel=TOL)
    return ev


def test_gap_through_the_stop_at_the_open():
    # candle 0: market long at O = 100: qty = 10000/100 = 100, fee 100·100·0.0006 = 6,
    #   cash 9994; S = 95, T = 110; path 100→98→102→101 touches neither;
    #   equity = 9994 + 100·(101 − 100) = 10094.
    # candle 1: opens at 90 <= S: exit at the open, 90 (not 95). real = 100·(90 − 100) = −1000,
    #   exit fee 100·90·0.0006 = 5.4; cash = 9994 − 1000 − 5.4 = 8988.6;
    #   pnl = −1000 − 6 − 5.4 = −1011.4.
    rows = [(100, 102, 98, 101), (90, 92, 88, 91)]
    both(rows, [("sl", 90.0, -1011.4)], 8988.6, [10094.0, 8988.6])


def test_stop_and_take_profit_in_the_same_candle_follow_the_path():
    # entry at 100 on candle 0 (quiet); S = 95, T = 110. Candle 1 reaches both 94 and 111.
    # Red candle 1 (C < O): O→H→L→C, 111 >= 110 first: TP at 110.
    #   real = 100·10 = 1000, exit fee 100·110·0.0006 = 6.6, pnl = 1000 − 6 − 6.6 = 987.4.
    quiet = (100, 101, 99, 100)
    both([quiet, (100, 111, 94, 96)], [("tp", 110.0, 987.4)], 10987.4)
    # Green candle 1 (C >= O): O→L→H→C, 94 <= 95 first: SL at 95.
    #   real = −500, exit fee 100·95·0.0006 = 5.7, pnl = −500 − 6 − 5.7 = −511.7.
    both([quiet, (100, 111, 94, 105)], [("sl", 95.0, -511.7)], 9488.3)


def test_stop_on_the_entry_candle():
    # market long at O = 100 on a red candle 100→101→94→96: up to 101 (T = 110 untouched),
    # down to 94 <= S = 95: SL at 95 in the entry candle. pnl = −500 − 6 − 5.7 = −511.7,
    # final = 10000 − 511.7 = 9488.3 (also the only equity point).
    both([(100, 101, 94, 96)], [("sl", 95.0, -511.7)], 9488.3, [9488.3])


def test_end_of_data_close_and_equity():
    # long at 100, never touched; last close 104: exit "end" at 104, taker fee.
    # real = 400, exit fee 100·104·0.0006 = 6.24, pnl = 400 − 6 − 6.24 = 387.76.
    # equity: candle 0 9994 + 100·(102 − 100) = 10194; candle 1 (after the end exit) 10387.76.
    both([(100, 103, 99, 102), (102, 105, 101, 104)], [("end", 104.0, 387.76)], 10387.76,
         [10194.0, 10387.76])


def test_short_take_profit_and_fees():
    # market short at 200 (sl 5 %, tp 5 %): qty = 10000/200 = 50, fee 50·200·0.0006 = 6;
    # S = 200·1.05 = 210, T = 200·0.95 = 190.
    # green candle 200→189→201→195: down to 189 <= 190: TP at 190.
    # real = 50·(200 − 190) = 500, exit fee 50·190·0.0006 = 5.7, pnl = 488.3.
    both([(200, 201, 189, 195)], [("tp", 190.0, 488.3)], 10488.3, side=SHORT, tp=0.05)


def test_limit_entry_pays_the_maker_fee_and_fills_at_its_price():
    # long limit at 98 on a flat candle 100→97→101→100 (O→L→H→C): fills at 98 on the way
    # down; qty = 10000/98, maker fee qty·98·0.0002 = 2; S = 98·0.95 = 93.1 (97 stays above),
    # T = 98·1.10 = 107.8 (101 stays below): open at the close.
    # candle 1 opens at 108 >= T: TP at the open, 108.
    # real = (10000/98)·10 = 1020.408163…, exit fee (10000/98)·108·0.0006 = 6.612244…,
    # pnl = 1020.408163 − 2 − 6.612245 = 1011.795918…
    q = 10000 / 98
    real = q * 10
    xfee = q * 108 * 0.0006
    ev = both([(100, 101, 97, 100), (108, 109, 107, 108)], [("tp", 108.0, real - 2 - xfee)],
              10000 + real - 2 - xfee, price=98.0)
    assert ev.cycles[0].avg_entry == 98.0


def test_time_exit_and_no_reentry_in_the_exit_candle():
    # always signalling long, max_hold 2: entry on candle 0 at 100, held candles 0 and 1;
    # candle 2 opens at 101: "time" exit at 101; no entry on candle 2; entry again on candle 3
    # at 102 (qty = cash/102), then "end" at the last close 102.
    # trade 1: real = 100, exit fee 100·101·0.0006 = 6.06, pnl = 100 − 6 − 6.06 = 87.94,
    # cash 10087.94. trade 2: qty = 10087.94/102, fee = 10087.94·0.0006 = 6.052764,
    # exit at 102 (real 0), exit fee 6.052764: pnl −12.105528.
    quiet = [(100, 101, 99, 100), (100, 101, 99, 100), (101, 102, 100, 101), (102, 103, 101, 102)]
    fee2 = 10087.94 * 0.0006
    ev = both(quiet, [("time", 101.0, 87.94), ("end", 102.0, -2 * fee2)], 10087.94 - 2 * fee2,
              at=None, max_hold=2)
    assert [c.open_time // 3_600_000 for c in ev.cycles] == [0, 3]


def test_stop_at_the_fill_price_exits_at_once_stop_first():
    # a stop and a take-profit both at the fill price (sl = tp = 0 is not a valid percent,
    # so use a strategy whose exits are the fill itself): SL first, at the fill, pnl = −2 fees.
    class AtFill(Stub):
        def manage(self, history, entry_price):
            return entry_price, entry_price

    ev = run_single_backtest(candles([(100, 101, 99, 100)]), AtFill())
    assert trades(ev) == [("sl", 100.0, pytest.approx(-12.0, rel=TOL))]


def test_fills_are_reported_with_ids():
    from core.venues.sim.single_matching import SingleMatchingEngine

    seen = []
    hist = CandleHistory()
    eng = SingleMatchingEngine(Stub(), hist, Account(), listener=seen.append)
    eng.place_entry(EntryIntent(LONG, None, math.nan, None))
    assert eng.process_candle(0, 100.0, 101.0, 94.0, 96.0) == "sl"
    assert [(f.kind, f.reason, f.side, f.price) for f in seen] == [("entry", None, "buy", 100.0),
                                                                    ("exit", "sl", "sell", 95.0)]
    assert seen[0].order_id != seen[1].order_id
    assert seen[0].fee == pytest.approx(6.0, rel=TOL) and seen[1].fee == pytest.approx(5.7, rel=TOL)
