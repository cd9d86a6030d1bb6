"""The numba fast engine of the single-position strategies (`docs/single_position.md`).

One shared kernel (`run_single`) serves the six strategies: a strategy is its per-candle
`SignalArrays` (sig, sref, tref; see `core.backtest.single_driver`) plus its exit model
(stop mode, take-profit mode: PCT / ATR / LINE, their parameters, the maximum holding).
The arrays are computed once per distinct indicator parameter set
(`cls.indicator_key`) by the strategy's own `signal_arrays` — the very function the event
engine's strategy objects read — and shared by every combo with that set. Combos run in
parallel (`prange` over workers, nogil kernel). Market entries only, size_fraction 1 (the
six strategies); limit entries exist in the event engine only.

All jitted functions are in this one file (numba's `cache=True` is keyed per file).
Per-candle arithmetic is written in the same order as `core.venues.sim.single_matching`, so
both engines produce the same bits. Daily Sharpe: last equity point per UTC day, simple
returns, Neumaier-compensated sums, mean/std(ddof=1)·√365, as the envelope kernel.
"""

from __future__ import annotations

import itertools
from typing import Mapping

import numpy as np
from numba import njit, prange

from core.backtest.fast.stats_kernel import add_day_return, daily_sharpe, drawdown_step
from core.backtest.result import BacktestResult
from core.errors import UsageError
from core.model.account import Account
from core.model.candles import Candles
from core.model.cycle import Cycle
from core.strategies import registry
from core.strategies.array_signal import ATR, LINE, PCT, ArraySignalStrategy
from core.strategies.base import ParamError

REASON_TP = 0
REASON_SL = 1
REASON_END = 2
REASON_TIME = 3
REASONS = ("tp", "sl", "end", "time")
N_STATS = 7  # final_equity, n_cycles, max_drawdown, sharpe, n_wins, gross_profit, gross_loss

_PCT = PCT
_ATR = ATR
_LINE = LINE


@njit(cache=True, nogil=True)
def _fixed(mode, down, x, param, ref):
    """Fixed exit price from the fill x: PCT x·(1∓param), ATR x ∓ param·ref (down: minus)."""
    if mode == _PCT:
        if down:
            return x * (1.0 - param)
        return x * (1.0 + param)
    d = param * ref
    if down:
        return x - d
    return x + d


@njit(cache=True, nogil=True)
def run_single(day, n_days, o, h, l, c, sig, sref, tref,
               stop_mode, stop_param, tp_mode, tp_param, max_hold,
               capital, leverage, taker_fee, record, eq_out, cyc_i, cyc_f):
    """Backtest one combo; returns (final_equity, n_cycles, max_drawdown, sharpe, n_wins,
    gross_profit, gross_loss).

    day: int64 UTC day of each candle (ts // 86_400_000), n_days distinct days.
    o/h/l/c: float64 (n,). sig int8 (n,), sref/tref float64 (n,): the SignalArrays.
    record: write eq_out[t] (n,) and one row per trade into cyc_i (open idx, close idx,
    side ±1, reason code) and cyc_f (entry, exit, qty, pnl).
    """
    n = o.shape[0]
    cash = capital
    pos = 0
    qty = 0.0
    x = 0.0
    S = np.nan
    T = np.nan
    fee_in = 0.0
    te = 0
    held = 0
    n_cyc = 0
    n_win = 0
    gprofit = 0.0
    gloss = 0.0
    peak = capital
    maxdd = 0.0
    cur_day = day[0] if n > 0 else 0
    cur_eq = capital
    prev_eq = capital
    have_prev = False
    s1 = 0.0
    c1 = 0.0
    s2 = 0.0
    c2 = 0.0
    for t in range(n):
        op = o[t]
        cp = c[t]
        if cp >= op:
            x1 = l[t]
            x2 = h[t]
        else:
            x1 = h[t]
            x2 = l[t]
        rc = -1
        y = 0.0
        walk = False
        if pos != 0:
            if stop_mode == _LINE:
                S = sref[t]
            if tp_mode == _LINE:
                T = tref[t]
            if pos > 0:
                if op <= S:
                    rc = REASON_SL
                    y = op
                elif op >= T:
                    rc = REASON_TP
                    y = op
            else:
                if op >= S:
                    rc = REASON_SL
                    y = op
                elif op <= T:
                    rc = REASON_TP
                    y = op
            if rc < 0 and max_hold > 0 and held >= max_hold:
                rc = REASON_TIME
                y = op
            walk = rc < 0
        else:
            s = sig[t]
            if s != 0:
                pos = 1 if s > 0 else -1
                x = op
                qty = cash * leverage * 1.0 / x
                fee_in = qty * x * taker_fee
                cash -= fee_in
                te = t
                held = 0
                long = pos > 0
                if stop_mode == _LINE:
                    S = sref[t]
                else:
                    S = _fixed(stop_mode, long, x, stop_param, sref[t])
                if tp_mode == _LINE:
                    T = tref[t]
                else:
                    T = _fixed(tp_mode, not long, x, tp_param, tref[t])
                if long:
                    if S >= x:
                        rc = REASON_SL
                        y = x
                    elif T <= x:
                        rc = REASON_TP
                        y = x
                else:
                    if S <= x:
                        rc = REASON_SL
                        y = x
                    elif T >= x:
                        rc = REASON_TP
                        y = x
                walk = rc < 0
        if walk:
            a = op
            for k in range(3):
                b = x1 if k == 0 else (x2 if k == 1 else cp)
                if pos > 0:
                    if b < a:
                        if b <= S:
                            rc = REASON_SL
                            y = S
                            break
                    elif b > a and b >= T:
                        rc = REASON_TP
                        y = T
                        break
                else:
                    if b > a:
                        if b >= S:
                            rc = REASON_SL
                            y = S
                            break
                    elif b < a and b <= T:
                        rc = REASON_TP
                        y = T
                        break
                a = b
            if rc < 0:
                held += 1
        if rc < 0 and pos != 0 and t == n - 1:
            rc = REASON_END
            y = cp
        if rc >= 0:
            if pos > 0:
                real = qty * (y - x)
            else:
                real = qty * (x - y)
            xfee = qty * y * taker_fee
            cash += real - xfee
            pnl = real - fee_in - xfee
            if record:
                cyc_i[n_cyc, 0] = te
                cyc_i[n_cyc, 1] = t
                cyc_i[n_cyc, 2] = pos
                cyc_i[n_cyc, 3] = rc
                cyc_f[n_cyc, 0] = x
                cyc_f[n_cyc, 1] = y
                cyc_f[n_cyc, 2] = qty
                cyc_f[n_cyc, 3] = pnl
            n_cyc += 1
            if pnl > 0.0:
                n_win += 1
                gprofit += pnl
            elif pnl < 0.0:
                gloss -= pnl
            pos = 0
            qty = 0.0
            S = np.nan
            T = np.nan
        if pos > 0:
            eq = cash + qty * (cp - x)
        elif pos < 0:
            eq = cash + qty * (x - cp)
        else:
            eq = cash
        if record:
            eq_out[t] = eq
        peak, maxdd = drawdown_step(eq, peak, maxdd)
        dt = day[t]
        if dt != cur_day:
            if have_prev:
                s1, c1, s2, c2 = add_day_return(cur_eq, prev_eq, s1, c1, s2, c2)
            prev_eq = cur_eq
            have_prev = True
            cur_day = dt
        cur_eq = eq
    if have_prev:
        s1, c1, s2, c2 = add_day_return(cur_eq, prev_eq, s1, c1, s2, c2)
    sharpe = daily_sharpe(s1, c1, s2, c2, n_days)
    return cash, n_cyc, maxdd, sharpe, n_win, gprofit, gloss


@njit(cache=True, nogil=True)
def sweep_worker(day, n_days, o, h, l, c, sig2d, sref2d, tref2d, krow,
                 stop_mode, stop_param, tp_mode, tp_param, max_hold,
                 capital, leverage, taker_fee, first, stride, out):
    """Run combos first, first+stride, … and write their stats rows into out (n_combos, 7)."""
    no_eq = np.empty(0)
    no_ci = np.empty((0, 4), dtype=np.int64)
    no_cf = np.empty((0, 4))
    for i in range(first, krow.shape[0], stride):
        k = krow[i]
        fe, ncy, mdd, shp, nwin, gp, gl = run_single(
            day, n_days, o, h, l, c, sig2d[k], sref2d[k], tref2d[k],
            stop_mode, stop_param[i], tp_mode, tp_param[i], max_hold[i],
            capital, leverage, taker_fee, False, no_eq, no_ci, no_cf)
        out[i, 0] = fe
        out[i, 1] = ncy
        out[i, 2] = mdd
        out[i, 3] = shp
        out[i, 4] = nwin
        out[i, 5] = gp
        out[i, 6] = gl


@njit(cache=True, parallel=True)
def sweep_prange(day, n_days, o, h, l, c, sig2d, sref2d, tref2d, krow,
                 stop_mode, stop_param, tp_mode, tp_param, max_hold,
                 capital, leverage, taker_fee, n_workers, out):
    """sweep_worker on n_workers numba threads, worker w taking combos w, w+n_workers, …"""
    for w in prange(n_workers):
        sweep_worker(day, n_days, o, h, l, c, sig2d, sref2d, tref2d, krow,
                     stop_mode, stop_param, tp_mode, tp_param, max_hold,
                     capital, leverage, taker_fee, w, n_workers, out)


# ---------------------------------------------------------------- Python side

def strategy_class(strategy: str) -> type[ArraySignalStrategy] | None:
    """The ArraySignalStrategy class registered as `strategy`, None for other strategies."""
    cls = registry.STRATEGIES.get(strategy)
    return cls if isinstance(cls, type) and issubclass(cls, ArraySignalStrategy) else None


def is_single(strategy: str) -> bool:
    """True when the fast engine runs `strategy` with these kernels."""
    return strategy_class(strategy) is not None


class SingleCombos:
    """Parameter combos of one single-position strategy: normalised params dicts, in order."""

    def __init__(self, strategy: str, rows: list[dict]) -> None:
        self.strategy = strategy
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def params(self, i: int) -> dict:
        return dict(self.rows[i])

    def to_dicts(self) -> list[dict]:
        return [dict(r) for r in self.rows]


def _normalise(cls: type[ArraySignalStrategy], p: Mapping) -> dict:
    try:
        return cls.MODEL(**dict(p)).model_dump()
    except Exception as err:  # pydantic ValidationError or TypeError
        raise ParamError(f"{cls.name}: {err}") from None


def single_combos(strategy: str, combos) -> SingleCombos:
    """Combos from SingleCombos, a grid dict {param: value or values} (cross product in the
    parameter model's field order; missing params take the defaults; combos breaking a
    cross-field rule are skipped) or an iterable of params dicts (each must be valid)."""
    cls = strategy_class(strategy)
    if cls is None:
        raise UsageError(f"fast engine: {strategy!r} is not a single-position strategy")
    if isinstance(combos, SingleCombos):
        return combos
    if isinstance(combos, Mapping):
        fields = list(cls.MODEL.model_fields)
        unknown = set(combos) - set(fields)
        if unknown:
            raise ParamError(f"unknown grid parameter(s) {sorted(unknown)}; expected: {', '.join(fields)}")
        names = [f for f in fields if f in combos]
        axes = [list(v) if isinstance(v, (list, tuple, np.ndarray, range)) else [v] for v in (combos[f] for f in names)]
        rows = []
        for values in itertools.product(*axes):
            try:
                rows.append(_normalise(cls, dict(zip(names, values))))
            except ParamError:
                if any(not isinstance(v, (int, float, np.integer, np.floating)) for v in values):
                    raise
        return SingleCombos(strategy, rows)
    return SingleCombos(strategy, [_normalise(cls, p) for p in combos])


def _candles(candles: Candles):
    f = np.ascontiguousarray
    ts = np.asarray(candles.ts, dtype=np.int64)
    day = f(ts // 86_400_000)
    n_days = int(1 + np.count_nonzero(np.diff(day))) if day.size else 0
    return (ts, day, n_days, f(candles.open, dtype=np.float64), f(candles.high, dtype=np.float64),
            f(candles.low, dtype=np.float64), f(candles.close, dtype=np.float64),
            f(candles.volume, dtype=np.float64))


def build_tables(cls: type[ArraySignalStrategy], cmb: SingleCombos, candles: Candles, funding=None):
    """(sig2d int8 (K, n), sref2d, tref2d float64 (K, n), krow int64 (n_combos,)): the signal
    arrays of each distinct indicator key, computed once, and each combo's row."""
    if cls.NEEDS_FUNDING and funding is None:
        raise ParamError(f"{cls.name}: needs a funding-rate series (funding=(ts, rate))")
    if funding is not None:
        funding = (np.asarray(funding[0], dtype=np.int64), np.asarray(funding[1], dtype=np.float64))
    ts, _, _, o, h, l, c, v = _candles(candles)
    keys: dict[tuple, int] = {}
    krow = np.empty(len(cmb), dtype=np.int64)
    firsts = []
    for i, p in enumerate(cmb.rows):
        k = cls.indicator_key(p)
        if k not in keys:
            keys[k] = len(keys)
            firsts.append(p)
        krow[i] = keys[k]
    n = o.shape[0]
    sig2d = np.zeros((len(firsts), n), dtype=np.int8)
    sref2d = np.empty((len(firsts), n))
    tref2d = np.empty((len(firsts), n))
    for k, p in enumerate(firsts):
        a = cls.signal_arrays(p, ts, o, h, l, c, v, funding)
        sig2d[k] = a.sig
        sref2d[k] = a.sref
        tref2d[k] = a.tref
    return sig2d, sref2d, tref2d, krow


def _exit_columns(cls, cmb: SingleCombos):
    ex = [cls.exit_params(p) for p in cmb.rows]
    return (np.asarray([e[0] for e in ex], dtype=np.float64), np.asarray([e[1] for e in ex], dtype=np.float64),
            np.asarray([e[2] for e in ex], dtype=np.int64))


def run_single_fast(candles: Candles, strategy: str, params: dict, account: Account = Account(), *,
                    funding=None) -> BacktestResult:
    """One combo with the full per-candle equity (shape (n,)) and every trade."""
    cls = strategy_class(strategy)
    cmb = single_combos(strategy, [params])
    p = cmb.params(0)
    ts, day, n_days, o, h, l, c, _ = _candles(candles)
    n = o.shape[0]
    if n == 0:
        return BacktestResult(strategy, candles.symbol, candles.timeframe, p, [],
                              float(account.initial_capital), ts, np.empty(0), account)
    sig2d, sref2d, tref2d, _ = build_tables(cls, cmb, candles, funding)
    sp, tp, mh = _exit_columns(cls, cmb)
    eq = np.empty(n)
    cyc_i = np.empty((n, 4), dtype=np.int64)
    cyc_f = np.empty((n, 4))
    st = run_single(day, n_days, o, h, l, c, sig2d[0], sref2d[0], tref2d[0],
                    cls.STOP_MODE, sp[0], cls.TP_MODE, tp[0], mh[0],
                    float(account.initial_capital), float(account.leverage), float(account.taker_fee),
                    True, eq, cyc_i, cyc_f)
    cycles = [
        Cycle(open_time=int(ts[ci[0]]), close_time=int(ts[ci[1]]), side="long" if ci[2] > 0 else "short",
              levels_filled=1, avg_entry=float(cf[0]), exit_price=float(cf[1]), exit_reason=REASONS[ci[3]],
              qty=float(cf[2]), pnl=float(cf[3]))
        for ci, cf in zip(cyc_i[: st[1]].tolist(), cyc_f[: st[1]].tolist())
    ]
    return BacktestResult(strategy, candles.symbol, candles.timeframe, p, cycles, float(st[0]), ts, eq, account)


def sweep_single(candles: Candles, strategy: str, combos, account: Account = Account(), *,
                 parallel: str = "prange", workers: int | None = None, funding=None):
    """Every combo of a single-position strategy (stats only) -> core.backtest.fast.SweepResult.

    parallel: "prange" (numba threads over the nogil kernel) or "serial"; workers: number of
    workers (default NUMBA_NUM_THREADS). funding: (ts, rate), required by `funding`.
    """
    from core.backtest.fast.sweep import SweepResult, default_workers

    cls = strategy_class(strategy)
    cmb = single_combos(strategy, combos)
    nc = len(cmb)
    _, day, n_days, o, h, l, c, _ = _candles(candles)
    out = np.zeros((nc, N_STATS))
    if nc and o.shape[0]:
        sig2d, sref2d, tref2d, krow = build_tables(cls, cmb, candles, funding)
        sp, tp, mh = _exit_columns(cls, cmb)
        nw = min(workers or default_workers(), nc)
        args = (day, n_days, o, h, l, c, sig2d, sref2d, tref2d, krow,
                cls.STOP_MODE, sp, cls.TP_MODE, tp, mh,
                float(account.initial_capital), float(account.leverage), float(account.taker_fee))
        if parallel == "serial" or nw == 1:
            sweep_worker(*args, 0, 1, out)
        elif parallel in ("prange", "threads"):
            sweep_prange(*args, nw, out)
        else:
            raise UsageError(f"sweep: parallel must be prange, threads or serial, not {parallel!r}")
    else:
        out[:, 0] = account.initial_capital
    return SweepResult.from_stats(strategy, cmb, out, account)
