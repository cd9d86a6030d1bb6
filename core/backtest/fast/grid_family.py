"""The fast engine of the grid family: per-candle arrays + the generic kernel `grid_kernel.run_grid`.

`quote_arrays` computes, for a whole candle series, what each event strategy
(`core.strategies.grid_atr` / `grid_rsi` / `grid_funding` / `grid_mtf`) quotes at every
candle's open — take-profit `m[t]` (NaN: no quote), distance `dd[t]` (the ATR, else 0) and
gate `gate[t]` — with the same float64 operations in the same order (fresh sums oldest first
through `envelope_kernel.sma_fresh`, the spec SMA), so the two engines agree to the bit
(docs/grid_family.md; tests/backtest/test_grid_family_agree.py).

`run_grid_fast` backtests one combo (equity curve and cycles, a `BacktestResult`);
`sweep_grid_stats` many combos (stats only), the arrays built once per distinct
indicator key.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from core.backtest.fast.envelope_kernel import sma_fresh
from core.backtest.fast.grid_kernel import N_STATS, REASONS, run_grid, sweep_grid_worker
from core.backtest.result import BacktestResult
from core.errors import UsageError
from core.model.account import Account
from core.model.candles import Candles
from core.model.cycle import Cycle
from core.strategies import registry
from core.strategies.grid_atr import atr_offsets
from core.strategies.grid_common import envelope_factors

#: strategy -> (kind, side sign)
FAMILY: dict[str, tuple[str, float]] = {
    "grid_atr": ("atr", 1.0), "grid_atr_short": ("atr", -1.0),
    "grid_rsi": ("rsi", 1.0), "grid_rsi_short": ("rsi", -1.0),
    "grid_funding": ("funding", 1.0), "grid_funding_short": ("funding", -1.0),
    "grid_mtf": ("mtf", 1.0), "grid_mtf_short": ("mtf", -1.0),
}


def is_grid_family(strategy: str) -> bool:
    """True for the eight grid-family names."""
    return strategy in FAMILY


def needs_funding(strategy: str) -> bool:
    """True for grid_funding / grid_funding_short."""
    return FAMILY.get(strategy, ("", 0.0))[0] == "funding"


def warmup_candles(strategy: str, params: Mapping[str, object], timeframe: str | None = None) -> int:
    """Base candles a window needs before its first candle so that the strategy first quotes
    there (never before it): atr max(N, A+1); rsi max(N, R+1); funding N; mtf max(N, T)·H/B
    (H/B base candles per HTF candle; the walk-forward's whole-day windows start on a HTF
    bucket boundary, and W existing candles never hold more than W·B/H complete buckets)."""
    kind = FAMILY[strategy][0]
    n = int(params["ma_period"])
    if kind == "atr":
        return max(n, int(params["atr_period"]) + 1)
    if kind == "rsi":
        return max(n, int(params["rsi_period"]) + 1)
    if kind == "funding":
        return n
    from core.strategies.grid_mtf import htf_geometry

    h, b = htf_geometry(int(params["htf_hours"]), timeframe)
    return max(n, int(params["trend_period"])) * (h // b)


def indicator_key(strategy: str, p: Mapping[str, object]) -> tuple:
    """The parameters the per-candle arrays depend on (combos sharing it share the arrays)."""
    kind = FAMILY[strategy][0]
    n = int(p["ma_period"])
    if kind == "atr":
        return (n, int(p["atr_period"]))
    if kind == "rsi":
        return (n, int(p["rsi_period"]), float(p["rsi_oversold"]), float(p["rsi_overbought"]))
    if kind == "funding":
        return (n, float(p["funding_threshold"]))
    return (n, int(p["htf_hours"]), int(p["trend_period"]))


def _sma_next(c: np.ndarray, n: int) -> np.ndarray:
    """out[t] = spec SMA of closes t−n … t−1 (NaN for t < n)."""
    out = np.full(c.shape[0], np.nan)
    if c.shape[0] > 1:
        out[1:] = sma_fresh(np.ascontiguousarray(c, dtype=np.float64), n)[:-1]
    return out


def _lagged_mean(x1: np.ndarray, n: int, size: int) -> np.ndarray:
    """x1[k] = a per-candle value of candle k+1 (k = 0 … size−2); out[t] = fresh mean of the
    values of candles t−n … t−1 (NaN for t < n + 1)."""
    out = np.full(size, np.nan)
    if size > 2:
        out[2:] = sma_fresh(np.ascontiguousarray(x1, dtype=np.float64), n)[: size - 2]
    return out


def quote_arrays(strategy: str, p: Mapping[str, object], ts: np.ndarray, o: np.ndarray, h: np.ndarray,
                 lo: np.ndarray, c: np.ndarray, timeframe: str | None = None, funding=None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(m, dd, gate) of every candle (float64, float64, int8; shape (n,)) as the event strategy
    of `strategy` quotes them (docs/grid_family.md). m[t] NaN where it does not quote t.

    Raises:
        UsageError: grid_funding without funding; ParamError: grid_mtf geometry.
    """
    kind, sgn = FAMILY[strategy]
    n = c.shape[0]
    m = _sma_next(c, int(p["ma_period"]))
    dd = np.zeros(n)
    gate = np.ones(n, dtype=np.int8)
    if kind == "atr":
        tr1 = np.maximum(np.maximum(h[1:] - lo[1:], np.abs(h[1:] - c[:-1])), np.abs(lo[1:] - c[:-1]))
        atr = _lagged_mean(tr1, int(p["atr_period"]), n)
        m[~np.isfinite(atr)] = np.nan
        dd = np.where(np.isfinite(atr), atr, 0.0)
    elif kind == "rsi":
        d = c[1:] - c[:-1]
        r = int(p["rsi_period"])
        ag = _lagged_mean(np.where(d > 0.0, d, 0.0), r, n)
        al = _lagged_mean(np.where(d < 0.0, -d, 0.0), r, n)
        den = ag + al
        with np.errstate(divide="ignore", invalid="ignore"):
            rsi = np.where(den > 0.0, 100.0 * ag / den, 50.0)
        rsi[~np.isfinite(ag)] = np.nan
        m[~np.isfinite(rsi)] = np.nan
        gate = ((rsi < float(p["rsi_oversold"])) if sgn > 0 else (rsi > float(p["rsi_overbought"]))).astype(np.int8)
    elif kind == "funding":
        gate = np.zeros(n, dtype=np.int8)
        if funding is None or len(funding[0]) == 0:
            raise UsageError(f"{strategy} needs the perpetual's funding-rate series (funding=(ts, rate))")
        from core.data.timeframes import timeframe_ms

        if not timeframe:
            raise UsageError(f"{strategy} needs the candles' timeframe")
        fts = np.asarray(funding[0], dtype=np.int64)
        rate = np.asarray(funding[1], dtype=np.float64)
        if n > 1:
            from core.strategies.grid_funding import MAX_RATE_AGE_MS

            at = ts[:-1] + timeframe_ms(timeframe)
            idx = np.searchsorted(fts, at, "right") - 1
            ok = idx >= 0
            ok[ok] = at[ok] - fts[idx[ok]] <= MAX_RATE_AGE_MS          # a stale rate: closed
            rt = np.full(n - 1, np.nan)
            rt[ok] = rate[idx[ok]]
            thr = float(p["funding_threshold"])
            gate[1:] = ((rt < -thr) if sgn > 0 else (rt > thr)).astype(np.int8)
    else:
        m, gate = _mtf_arrays(p, ts, c, timeframe, sgn)
    return m, dd, gate


def _mtf_arrays(p, ts, c, timeframe, sgn) -> tuple[np.ndarray, np.ndarray]:
    from core.strategies.grid_mtf import htf_geometry

    H, B = htf_geometry(int(p["htf_hours"]), timeframe)
    n = c.shape[0]
    m = np.full(n, np.nan)
    gate = np.zeros(n, dtype=np.int8)
    if n == 0:
        return m, gate
    ts = np.asarray(ts, dtype=np.int64)
    bucket = ts - ts % H
    new_run = np.ones(n, dtype=bool)
    new_run[1:] = bucket[1:] != bucket[:-1]
    starts = np.flatnonzero(new_run)
    run_id = np.cumsum(new_run) - 1
    count = np.arange(n) - starts[run_id] + 1
    complete = (count == H // B) & (ts + B == bucket + H)
    hc = np.ascontiguousarray(c[complete], dtype=np.float64)
    k = np.zeros(n, dtype=np.int64)                 # HTF candles known at candle t's open
    k[1:] = np.cumsum(complete)[:-1]
    N, T = int(p["ma_period"]), int(p["trend_period"])
    ok = k >= max(N, T)
    if hc.shape[0] == 0 or not ok.any():
        return m, gate
    smn = sma_fresh(hc, N)
    smt = sma_fresh(hc, T)
    j = k[ok] - 1
    m[ok] = smn[j]
    x = hc[j]
    gate[ok] = ((x > smt[j]) if sgn > 0 else (x < smt[j])).astype(np.int8)
    return m, gate


def level_factor_arrays(strategy: str, p: Mapping[str, object]) -> tuple[np.ndarray, np.ndarray]:
    """(fa, fb), shape (L,): level i = m·fa[i] − dd·fb[i] (grid_atr: 1, off_i; others f_i, 0)."""
    kind, sgn = FAMILY[strategy]
    L = int(p["num_levels"])
    if kind == "atr":
        return np.ones(L), np.asarray(atr_offsets(dict(p)), dtype=np.float64)
    side = "long" if sgn > 0 else "short"
    return np.asarray(envelope_factors(side, dict(p)), dtype=np.float64), np.zeros(L)


def _day_arrays(ts: np.ndarray) -> tuple[np.ndarray, int]:
    day = np.ascontiguousarray(ts // 86_400_000)
    return day, (int(1 + np.count_nonzero(np.diff(day))) if day.size else 0)


def run_grid_fast(candles: Candles, strategy: str, params: dict, account: Account = Account(), *,
                  funding=None) -> BacktestResult:
    """Backtest one combo of a grid-family strategy (per-candle equity and every cycle).

    Args: as `core.backtest.fast.run_fast`; funding=(ts, rate) required by grid_funding.
    Raises:
        UsageError: not a grid-family name, or grid_funding without funding.
        ParamError: invalid parameters.
    """
    if strategy not in FAMILY:
        raise UsageError(f"fast grid engine: unknown strategy {strategy!r} (known: {', '.join(FAMILY)})")
    p = registry.create(strategy, params).params
    sgn = FAMILY[strategy][1]
    f = np.ascontiguousarray
    ts = np.asarray(candles.ts, dtype=np.int64)
    n = ts.shape[0]
    if n == 0:
        return BacktestResult(strategy, candles.symbol, candles.timeframe, dict(p), [],
                              float(account.initial_capital), ts, np.empty(0), account)
    o, h, lo, c = (f(x, dtype=np.float64) for x in (candles.open, candles.high, candles.low, candles.close))
    m, dd, gate = quote_arrays(strategy, p, ts, o, h, lo, c, candles.timeframe, funding)
    fa, fb = level_factor_arrays(strategy, p)
    day, n_days = _day_arrays(ts)
    eq = np.empty(n)
    cyc_i = np.empty((n, 4), dtype=np.int64)
    cyc_f = np.empty((n, 4))
    st = run_grid(day, o, h, lo, c, m, dd, gate, fa, fb, float(p["sl_percent"]), sgn, n_days,
                  float(account.initial_capital), float(account.leverage), float(account.maker_fee),
                  float(account.taker_fee), True, eq, cyc_i, cyc_f)
    side = "long" if sgn > 0 else "short"
    cycles = [
        Cycle(open_time=int(ts[ci[0]]), close_time=int(ts[ci[1]]), side=side, levels_filled=int(ci[2]),
              avg_entry=float(cf[0]), exit_price=float(cf[1]), exit_reason=REASONS[ci[3]],
              qty=float(cf[2]), pnl=float(cf[3]))
        for ci, cf in zip(cyc_i[: st[1]].tolist(), cyc_f[: st[1]].tolist())
    ]
    return BacktestResult(strategy, candles.symbol, candles.timeframe, dict(p), cycles, float(st[0]), ts, eq,
                          account)


def sweep_grid_stats(candles: Candles, strategy: str, combos: list[dict], account: Account = Account(), *,
                     funding=None, workers: int | None = None) -> np.ndarray:
    """Stats of many combos, shape (n_combos, N_STATS): final equity, cycles, max drawdown,
    Sharpe, wins, gross profit, gross loss (`grid_kernel.STAT_FIELDS`). Combos are params
    dicts (validated by the strategy); Python threads over the nogil kernel as the envelope's
    "threads" back-end."""
    from core.backtest.fast.sweep import _pool, default_workers

    if strategy not in FAMILY:
        raise UsageError(f"fast grid engine: unknown strategy {strategy!r} (known: {', '.join(FAMILY)})")
    ps = [registry.create(strategy, dict(cb)).params for cb in combos]
    nc = len(ps)
    out = np.zeros((nc, N_STATS))
    out[:, 0] = account.initial_capital
    ts = np.asarray(candles.ts, dtype=np.int64)
    if nc == 0 or ts.shape[0] == 0:
        return out
    f = np.ascontiguousarray
    o, h, lo, c = (f(x, dtype=np.float64) for x in (candles.open, candles.high, candles.low, candles.close))
    keys: dict[tuple, int] = {}
    rows = []
    krow = np.empty(nc, dtype=np.int64)
    for i, p in enumerate(ps):
        k = indicator_key(strategy, p)
        if k not in keys:
            keys[k] = len(keys)
            rows.append(quote_arrays(strategy, p, ts, o, h, lo, c, candles.timeframe, funding))
        krow[i] = keys[k]
    m2d = f(np.stack([r[0] for r in rows]))
    dd2d = f(np.stack([r[1] for r in rows]))
    gate2d = f(np.stack([r[2] for r in rows]))
    lmax = max(int(p["num_levels"]) for p in ps)
    fa2d = np.full((nc, lmax), np.nan)
    fb2d = np.full((nc, lmax), np.nan)
    for i, p in enumerate(ps):
        fa, fb = level_factor_arrays(strategy, p)
        fa2d[i, : fa.shape[0]] = fa
        fb2d[i, : fb.shape[0]] = fb
    sl = np.asarray([float(p["sl_percent"]) for p in ps])
    day, n_days = _day_arrays(ts)
    args = (day, o, h, lo, c, m2d, dd2d, gate2d, krow, fa2d, fb2d, sl, FAMILY[strategy][1], n_days,
            float(account.initial_capital), float(account.leverage), float(account.maker_fee),
            float(account.taker_fee))
    nw = min(workers or default_workers(), nc)
    if nw == 1:
        sweep_grid_worker(*args, 0, 1, out)
    else:
        futs = [_pool(nw - 1).submit(sweep_grid_worker, *args, w, nw, out) for w in range(1, nw)]
        sweep_grid_worker(*args, 0, nw, out)
        for fu in futs:
            fu.result()
    return out
