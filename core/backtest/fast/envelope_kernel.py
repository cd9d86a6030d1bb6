"""The numba kernels of envelope_dca (long and short), exactly `../shared/specs/envelope_dca.md`.

Every jitted function of the fast engine is in this one file on purpose: numba's on-disk
cache (`cache=True`) is invalidated only when the file of the cached function changes,
and a cached function embeds the code of the jitted functions it calls and the values
of the globals it reads. Split across files, an edit of a callee could leave a stale
caller in the cache. Contents: the spec SMA and skip-ahead tables (`sma_into`,
`build_indicators`; Python side in `sma.py`), `next_candidate`, `run_combo` (one combo),
`sweep_worker`/`sweep_prange` (many combos; Python side in `sweep.py`).

One kernel serves both sides through a sign flag `sgn` (+1.0 long, −1.0 short): every
price is multiplied by `sgn` on the way in, which turns the short rules into the long
rules (negation is exact in IEEE arithmetic, so nothing is rounded differently):

* short level `P_i = m·(1+u_i)`  →  `−P_i = (−m)·(1+u_i)`, compared like a long level;
* short stop `S = A·(1+p)`       →  `−S = (−A)·(1+p)`, touched "below" in negated space;
* short exit `Q·(A − X)`         =  `Q·((−X) − (−A))`, the long formula on negated prices;
* quantities and fees use the real (positive) price `sgn·x`.

In the comments below "down", "≤", "level", "stop" are meant in that (long) negated space.

Skip-ahead: while flat, candle t can only do anything if a point of its path touches
level 0 (the open, by `P0 >= O`, or a segment's far end, by `x <= P0`), hence only if
`lo = min(O,H,L,C) <= fl(m·f0)` (long; short: the max, negated). `next_candidate` jumps over
(super-)blocks whose minimum ratio `rr = lo/m` (see `sma.py`) is above `f0·(1 + 1e-12)`
(short: `−f0·(1 − 1e-12)`):

    lo <= fl(m·f0)  ⇒  lo/m <= f0·(1+2⁻⁵³)  ⇒  fl(lo/m) <= f0·(1+2⁻⁵³)²  <  fl(f0·(1+1e-12))

so a real touch is never skipped; candidates are then run through the exact candle code
(which re-tests with the spec's own comparisons), so skip and scan give identical bits
(`skip=False` scans every candle; the tests compare both).
Flat stretches are constant equity: no new drawdown, and zero daily returns, which add
nothing to the Sharpe sums (the number of returns is D−1 from the day count). The flat
day in which a stretch starts still gets its (possibly non-zero) return, at the first
day boundary crossed.

In a position, a quiet candle (open strictly between the stop/next level and m, and no
path point reaching either) skips the path walk: the walk would change nothing.

Daily Sharpe: per-candle equity, last point of each UTC day (ts // 86_400_000), simple
returns, Neumaier-compensated sums of r and r², mean/std(ddof=1)·√365 — equal to
`core.backtest.metrics.daily_sharpe` on the same curve to ~1e-15 relative.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from core.backtest.fast.stats_kernel import add_day_return, daily_sharpe, drawdown_step

# ---------------------------------------------------------------- SMA and skip-ahead tables

#: log2 of the block length (32 candles) and of the number of blocks per super-block (32).
LOG_BLOCK = 5
LOG_SUPER = 5
BLOCK = 1 << LOG_BLOCK
SUPER = BLOCK << LOG_SUPER


@njit(cache=True, nogil=True)
def sma_into(close, n_period, out):
    """Spec SMA into `out`: out[t] = (close[t-N+1] + … + close[t]) / N summed oldest first; NaN for t < N-1."""
    n = close.shape[0]
    m = n - n_period + 1
    for t in range(min(n_period - 1, n)):
        out[t] = np.nan
    if m <= 0:
        return
    acc = out[n_period - 1:]
    for t in range(m):
        acc[t] = close[t]              # the oldest term (== 0.0 + close[t])
    for j in range(1, n_period):       # then term j of every window, in order
        for t in range(m):
            acc[t] += close[t + j]
    for t in range(m):
        acc[t] /= n_period


@njit(cache=True, nogil=True)
def sma_fresh(close, n_period):
    """Spec SMA as a new array (see sma_into)."""
    out = np.empty(close.shape[0])
    sma_into(close, n_period, out)
    return out


@njit(cache=True, nogil=True)
def _fill_tables(sma, o, h, l, c, n_period, sgn, rr, bmin, smin):
    n = o.shape[0]
    for t in range(min(n_period, n)):
        rr[t] = np.inf                 # no trading before N earlier candles
    if sgn > 0:
        for t in range(n_period, n):   # the lowest point of the candle's path, over m
            a = o[t]
            b = h[t]
            x = l[t]
            y = c[t]
            lo = a if a < b else b
            lo2 = x if x < y else y
            r = (lo if lo < lo2 else lo2) / sma[t - 1]
            z = a + b + x + y + r      # NaN when any input is NaN: then always a candidate
            rr[t] = r if z == z else -np.inf
    else:
        for t in range(n_period, n):   # minus the highest point of the candle's path, over m
            a = o[t]
            b = h[t]
            x = l[t]
            y = c[t]
            hi = a if a > b else b
            hi2 = x if x > y else y
            r = -((hi if hi > hi2 else hi2) / sma[t - 1])
            z = a + b + x + y + r
            rr[t] = r if z == z else -np.inf
    for b in range(bmin.shape[0]):
        lo = b * BLOCK
        hi = min(lo + BLOCK, n)
        v = np.inf
        for t in range(lo, hi):
            x = rr[t]
            if x < v:
                v = x
        bmin[b] = v
    for sb in range(smin.shape[0]):
        lo = sb << LOG_SUPER
        hi = min(lo + (1 << LOG_SUPER), bmin.shape[0])
        v = np.inf
        for b in range(lo, hi):
            v = min(v, bmin[b])
        smin[sb] = v


@njit(cache=True, nogil=True)
def build_indicators(o, h, l, c, periods, sgn, sma2d, rr2d, bmin2d, smin2d):
    """Fill row k of each table for ma_period `periods[k]` (sgn = +1 long, -1 short)."""
    for k in range(periods.shape[0]):
        sma_into(c, periods[k], sma2d[k])
        _fill_tables(sma2d[k], o, h, l, c, periods[k], sgn, rr2d[k], bmin2d[k], smin2d[k])


# ---------------------------------------------------------------- one combo

#: exit reason codes of the cycle arrays
REASON_TP = 0
REASON_SL = 1
REASON_END = 2
REASONS = ("tp", "sl", "end")

#: relative margin of the skip-ahead threshold (≫ the 2⁻⁵² the float rounding can cost)
TOUCH_MARGIN = 1e-12

#: columns of the per-combo statistics returned by `run_combo`
STAT_FIELDS = ("final_equity", "n_cycles", "max_drawdown", "sharpe", "n_wins", "gross_profit", "gross_loss")
N_STATS = len(STAT_FIELDS)

_SUPER_MASK = (1 << LOG_SUPER) - 1


@njit(cache=True, nogil=True)
def next_candidate(rr, bmin, smin, t, thr):
    """First t' >= t with rr[t'] <= thr (rr.shape[0] when none), skipping whole (super-)blocks."""
    n = rr.shape[0]
    end = min(((t >> LOG_BLOCK) + 1) << LOG_BLOCK, n)
    while t < end:                      # rest of the current block, one by one
        if rr[t] <= thr:
            return t
        t += 1
    while t < n:                        # t is at a block boundary here
        b = t >> LOG_BLOCK
        if (b & _SUPER_MASK) == 0 and smin[b >> LOG_SUPER] > thr:
            t += SUPER
            continue
        if bmin[b] > thr:
            t += BLOCK
            continue
        end = min(t + BLOCK, n)
        while t < end:
            if rr[t] <= thr:
                return t
            t += 1
    return n


@njit(cache=True, nogil=True)
def level_factors(n_levels, start, step, sgn):
    """Level price factors f_i (P_i = m·f_i): long 1 − offset_i, short 1 + u_i, u_i = 1/(1−offset_i) − 1."""
    fac = np.empty(n_levels)
    for i in range(n_levels):
        off = start + i * step
        if sgn > 0:
            fac[i] = 1.0 - off
        else:
            fac[i] = 1.0 + (1.0 / (1.0 - off) - 1.0)
    return fac


@njit(cache=True, nogil=True)
def run_combo(day, o, h, l, c, sma, rr, bmin, smin, n_days,
              n_period, n_levels, start, step, sl_pct, sgn,
              capital, leverage, maker_fee, taker_fee,
              skip, record, eq_out, cyc_i, cyc_f):
    """Backtest one parameter combo; returns the stats tuple (see STAT_FIELDS).

    day: int64 UTC day (ts // 86_400_000) of each candle. sma: spec SMA for n_period.
    rr/bmin/smin: skip-ahead tables for n_period and this side (unused when skip is False).
    n_days: number of distinct days in `day`. record: write eq_out[t] for every candle and
    one row per cycle into cyc_i (open idx, close idx, levels, reason) and
    cyc_f (avg_entry, exit_price, qty, pnl); otherwise those arrays may be empty.
    """
    n = o.shape[0]
    fac = level_factors(n_levels, start, step, sgn)
    if sgn > 0:
        slf = 1.0 - sl_pct
        thr = fac[0] * (1.0 + TOUCH_MARGIN)
    else:
        slf = 1.0 + sl_pct
        thr = -(fac[0] * (1.0 - TOUCH_MARGIN))

    cash = capital
    nf = 0            # levels filled in the open cycle (0: flat)
    unit = 0.0        # E·λ/L of the open cycle
    sq = 0.0          # Σ qty
    sqp = 0.0         # Σ qty·fill (signed prices)
    avg = 0.0         # A (signed)
    stop = 0.0        # S (signed)
    fees = 0.0        # maker fees paid in the open cycle
    open_t = 0

    n_cyc = 0
    n_win = 0
    gprofit = 0.0
    gloss = 0.0
    peak = capital
    maxdd = 0.0
    # daily Sharpe state: last point of the current day, last point of the previous day
    cur_day = day[0] if n > 0 else 0
    cur_eq = capital
    prev_eq = capital
    have_prev = False
    s1 = 0.0
    c1 = 0.0
    s2 = 0.0
    c2 = 0.0

    t = 0
    while t < n:
        if nf == 0 and skip:
            t2 = next_candidate(rr, bmin, smin, t, thr)
            if t2 > t:
                # candles t … t2-1 are flat: equity == cash, no drawdown beyond what is known
                if record:
                    eq_out[t:t2] = cash
                dl = day[t2 - 1]
                if dl != cur_day:
                    # close the current day; the later skipped days all return exactly 0
                    if have_prev:
                        s1, c1, s2, c2 = add_day_return(cur_eq, prev_eq, s1, c1, s2, c2)
                    prev_eq = cur_eq
                    have_prev = True
                    cur_day = dl
                t = t2
                if t >= n:
                    break

        if t < n_period:
            eq = cash                                   # no trading yet
        else:
            m = sgn * sma[t - 1]
            op = sgn * o[t]
            cp = sgn * c[t]
            lp = sgn * l[t]
            hp = sgn * h[t]
            ex_reason = -1
            ex_x = 0.0
            # Fast path of a carried position on a quiet candle: no path point reaches the
            # stop, the next level or m, and the open crosses nothing -> nothing happens
            # (the full logic below would conclude the same; it is only skipped).
            quiet = False
            if nf > 0:
                lo3 = min(lp, hp, cp)
                hi3 = max(lp, hp, cp)
                floor_ = stop
                if nf < n_levels:
                    lv = m * fac[nf]
                    if lv > floor_:
                        floor_ = lv
                quiet = op > floor_ and op < m and lo3 > floor_ and hi3 < m
            if not quiet:
                if c[t] >= o[t]:                        # green/flat: O → L → H → C
                    x1 = lp
                    x2 = hp
                else:                                   # red: O → H → L → C
                    x1 = hp
                    x2 = lp
                # 1. at the open: exits of a carried position
                if nf > 0:
                    if op <= stop:
                        ex_reason = REASON_SL
                        ex_x = op
                    elif op >= m:
                        ex_reason = REASON_TP
                        ex_x = op
                if ex_reason < 0:
                    # 1b. levels the open has crossed fill at the open, in index order
                    while nf < n_levels and m * fac[nf] >= op:
                        if nf == 0:
                            unit = cash * leverage / n_levels
                            sq = 0.0
                            sqp = 0.0
                            fees = 0.0
                            open_t = t
                        price = sgn * op
                        q = unit / price
                        fee = q * price * maker_fee
                        cash -= fee
                        fees += fee
                        sq += q
                        sqp += q * op
                        avg = sqp / sq
                        stop = avg * slf
                        nf += 1
                    # 2. the three segments of the path
                    a = op
                    for k in range(3):
                        if k == 0:
                            b = x1
                        elif k == 1:
                            b = x2
                        else:
                            b = cp
                        if b < a:                           # against the position
                            while True:
                                if nf > 0 and (nf == n_levels or stop >= m * fac[nf]):
                                    if b <= stop:           # the stop comes first (also at equal price)
                                        ex_reason = REASON_SL
                                        ex_x = stop
                                    break
                                lvl = m * fac[nf]
                                if b <= lvl:
                                    if nf == 0:
                                        unit = cash * leverage / n_levels
                                        sq = 0.0
                                        sqp = 0.0
                                        fees = 0.0
                                        open_t = t
                                    price = sgn * lvl
                                    q = unit / price
                                    fee = q * price * maker_fee
                                    cash -= fee
                                    fees += fee
                                    sq += q
                                    sqp += q * lvl
                                    avg = sqp / sq
                                    stop = avg * slf
                                    nf += 1
                                    continue
                                break
                            if ex_reason >= 0:
                                break
                        elif b > a:                         # with the position: take profit at m
                            if nf > 0 and b >= m:
                                ex_reason = REASON_TP
                                ex_x = m
                                break
                        a = b
            if ex_reason < 0 and nf > 0 and t == n - 1:
                ex_reason = REASON_END                  # 4. end of data: close at the last close
                ex_x = cp
            if ex_reason >= 0:
                xr = sgn * ex_x
                real = sq * (ex_x - avg)
                xfee = sq * xr * taker_fee
                cash += real - xfee
                pnl = real - fees - xfee
                if record:
                    cyc_i[n_cyc, 0] = open_t
                    cyc_i[n_cyc, 1] = t
                    cyc_i[n_cyc, 2] = nf
                    cyc_i[n_cyc, 3] = ex_reason
                    cyc_f[n_cyc, 0] = sgn * avg
                    cyc_f[n_cyc, 1] = xr
                    cyc_f[n_cyc, 2] = sq
                    cyc_f[n_cyc, 3] = pnl
                n_cyc += 1
                if pnl > 0.0:
                    n_win += 1
                    gprofit += pnl
                elif pnl < 0.0:
                    gloss -= pnl
                nf = 0
            if nf > 0:
                eq = cash + sq * (cp - avg)
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
        t += 1

    if have_prev:
        s1, c1, s2, c2 = add_day_return(cur_eq, prev_eq, s1, c1, s2, c2)
    sharpe = daily_sharpe(s1, c1, s2, c2, n_days)
    return cash, n_cyc, maxdd, sharpe, n_win, gprofit, gloss


# ---------------------------------------------------------------- many combos

@njit(cache=True, nogil=True)
def sweep_worker(day, o, h, l, c, sma2d, rr2d, bmin2d, smin2d, n_days,
                 krow, n_period, n_levels, start, step, sl_pct, sgn,
                 capital, leverage, maker_fee, taker_fee, skip, order, first, stride, out):
    """Run combos order[first::stride] and write their stats rows into out."""
    no_eq = np.empty(0)
    no_ci = np.empty((0, 4), dtype=np.int64)
    no_cf = np.empty((0, 4))
    for j in range(first, order.shape[0], stride):
        i = order[j]
        k = krow[i]
        fe, ncy, mdd, shp, nwin, gp, gl = run_combo(
            day, o, h, l, c, sma2d[k], rr2d[k], bmin2d[k], smin2d[k], n_days,
            n_period[i], n_levels[i], start[i], step[i], sl_pct[i], sgn,
            capital, leverage, maker_fee, taker_fee, skip, False, no_eq, no_ci, no_cf)
        out[i, 0] = fe
        out[i, 1] = ncy
        out[i, 2] = mdd
        out[i, 3] = shp
        out[i, 4] = nwin
        out[i, 5] = gp
        out[i, 6] = gl


@njit(cache=True, parallel=True)
def sweep_prange(day, o, h, l, c, sma2d, rr2d, bmin2d, smin2d, n_days,
                 krow, n_period, n_levels, start, step, sl_pct, sgn,
                 capital, leverage, maker_fee, taker_fee, skip, order, n_workers, out):
    """sweep_worker on n_workers numba threads, worker w taking combos order[w::n_workers]."""
    for w in prange(n_workers):
        sweep_worker(day, o, h, l, c, sma2d, rr2d, bmin2d, smin2d, n_days,
                     krow, n_period, n_levels, start, step, sl_pct, sgn,
                     capital, leverage, maker_fee, taker_fee, skip, order, w, n_workers, out)
