"""The numba kernel of the grid family (grid_atr, grid_rsi, grid_funding, grid_mtf; both sides),
exactly `../shared/specs/envelope_dca.md` with the deltas of docs/grid_family.md.

One generic candle walk for every member: the caller (`core.backtest.fast.grid_family`)
gives per-candle arrays computed exactly as the event strategies compute them —

* `m[t]`: candle t's take-profit / level base (NaN: the strategy does not quote t);
* `dd[t]`: a per-candle distance (the ATR of grid_atr; zeros for the envelope members);
* `gate[t]`: the new-cycle gate (int8, 1 open) —

and per-combo level factors `fa`, `fb`, so that level i of candle t is
`P_i = m[t]·fa[i] − dd[t]·fb[i]` (envelope members: fa = f_i, fb = 0, giving `m·f_i`
bit for bit; grid_atr: fa = 1, fb = off_i, giving `m − off_i·ATR`).

Both sides share the walk through the sign flag `sgn` (+1 long, −1 short), as in
`envelope_kernel.py`: prices are negated on the way in, which turns the short rules into
the long ones exactly (`(−m)·fa − dd·fb = −(m·fa + dd·fb)`: grid_atr_short's `m + off·ATR`;
and `(−m)·f = −(m·f)`).

No skip-ahead: every candle is walked (the per-candle work is a few dozen float ops).
Caching note (see `envelope_kernel.py`): the only jitted callees are the statistics helpers
of `stats_kernel.py`, as for the envelope kernel; everything else is in this file.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from core.backtest.fast.stats_kernel import add_day_return, daily_sharpe, drawdown_step

#: exit reason codes of the cycle arrays (as envelope_kernel)
REASON_TP = 0
REASON_SL = 1
REASON_END = 2
REASONS = ("tp", "sl", "end")
STAT_FIELDS = ("final_equity", "n_cycles", "max_drawdown", "sharpe", "n_wins", "gross_profit", "gross_loss")
N_STATS = len(STAT_FIELDS)


@njit(cache=True, nogil=True)
def run_grid(day, o, h, l, c, m_arr, dd_arr, gate, fa, fb, sl_pct, sgn, n_days,
             capital, leverage, maker_fee, taker_fee, record, eq_out, cyc_i, cyc_f):
    """Backtest one combo of a grid-family strategy; returns the stats tuple (STAT_FIELDS).

    day: int64 UTC day of each candle; o/h/l/c float64 (n,); m_arr/dd_arr float64 (n,);
    gate int8 (n,); fa/fb float64 (L,), L = num_levels; sl_pct fraction; sgn ±1.0;
    capital USDT; fees fractions. record: write eq_out[t] and one row per cycle into
    cyc_i (open idx, close idx, levels, reason) and cyc_f (avg_entry, exit, qty, pnl).
    """
    n = o.shape[0]
    n_levels = fa.shape[0]
    slf = 1.0 - sl_pct if sgn > 0 else 1.0 + sl_pct

    cash = capital
    nf = 0
    unit = 0.0
    sq = 0.0
    sqp = 0.0
    avg = 0.0
    stop = 0.0
    fees = 0.0
    open_t = 0

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
        mt = m_arr[t]
        if not (mt == mt) or (nf == 0 and gate[t] == 0):
            # not quoted (warm-up), or flat with the new-cycle gate closed: nothing happens
            if nf > 0:
                cp = sgn * c[t]
                if t == n - 1:
                    ex_x = cp
                    xr = sgn * ex_x
                    real = sq * (ex_x - avg)
                    xfee = sq * xr * taker_fee
                    cash += real - xfee
                    pnl = real - fees - xfee
                    if record:
                        cyc_i[n_cyc, 0] = open_t
                        cyc_i[n_cyc, 1] = t
                        cyc_i[n_cyc, 2] = nf
                        cyc_i[n_cyc, 3] = REASON_END
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
                    eq = cash
                else:
                    eq = cash + sq * (cp - avg)
            else:
                eq = cash
        else:
            m = sgn * mt
            dd = dd_arr[t]
            op = sgn * o[t]
            cp = sgn * c[t]
            lp = sgn * l[t]
            hp = sgn * h[t]
            ex_reason = -1
            ex_x = 0.0
            if c[t] >= o[t]:                        # green/flat: O → L → H → C
                x1 = lp
                x2 = hp
            else:                                   # red: O → H → L → C
                x1 = hp
                x2 = lp
            if nf > 0:                              # 1. at the open: exits of a carried position
                if op <= stop:
                    ex_reason = REASON_SL
                    ex_x = op
                elif op >= m:
                    ex_reason = REASON_TP
                    ex_x = op
            if ex_reason < 0:
                # 1b. levels the open has crossed fill at the open, in index order
                while nf < n_levels and m * fa[nf] - dd * fb[nf] >= op:
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
                a = op
                for k in range(3):                  # 2. the three segments of the path
                    if k == 0:
                        b = x1
                    elif k == 1:
                        b = x2
                    else:
                        b = cp
                    if b < a:                       # against the position
                        while True:
                            if nf > 0 and (nf == n_levels or stop >= m * fa[nf] - dd * fb[nf]):
                                if b <= stop:       # the stop comes first (also at equal price)
                                    ex_reason = REASON_SL
                                    ex_x = stop
                                break
                            lvl = m * fa[nf] - dd * fb[nf]
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
                    elif b > a:                     # with the position: take profit at m
                        if nf > 0 and b >= m:
                            ex_reason = REASON_TP
                            ex_x = m
                            break
                    a = b
            if ex_reason < 0 and nf > 0 and t == n - 1:
                ex_reason = REASON_END              # 4. end of data: close at the last close
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

    if have_prev:
        s1, c1, s2, c2 = add_day_return(cur_eq, prev_eq, s1, c1, s2, c2)
    sharpe = daily_sharpe(s1, c1, s2, c2, n_days)
    return cash, n_cyc, maxdd, sharpe, n_win, gprofit, gloss


@njit(cache=True, nogil=True)
def sweep_grid_worker(day, o, h, l, c, m2d, dd2d, gate2d, krow, fa2d, fb2d, sl_pct, sgn, n_days,
                      capital, leverage, maker_fee, taker_fee, first, stride, out):
    """Run combos first::stride and write their stats rows (N_STATS columns) into out.

    Combo i reads the per-candle arrays of row krow[i] of m2d/dd2d/gate2d and its level
    factors fa2d[i], fb2d[i], NaN-padded after its num_levels (its L = the leading finite
    entries of fa2d[i])."""
    no_eq = np.empty(0)
    no_ci = np.empty((0, 4), dtype=np.int64)
    no_cf = np.empty((0, 4))
    for i in range(first, krow.shape[0], stride):
        k = krow[i]
        L = 0
        while L < fa2d.shape[1] and fa2d[i, L] == fa2d[i, L]:
            L += 1
        fe, ncy, mdd, shp, nwin, gp, gl = run_grid(
            day, o, h, l, c, m2d[k], dd2d[k], gate2d[k], fa2d[i, :L], fb2d[i, :L], sl_pct[i], sgn, n_days,
            capital, leverage, maker_fee, taker_fee, False, no_eq, no_ci, no_cf)
        out[i, 0] = fe
        out[i, 1] = ncy
        out[i, 2] = mdd
        out[i, 3] = shp
        out[i, 4] = nwin
        out[i, 5] = gp
        out[i, 6] = gl
