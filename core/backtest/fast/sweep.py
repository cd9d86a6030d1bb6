"""Many envelope_dca combos in one call, in parallel over combos.

The SMA and skip-ahead tables are built once per distinct ma_period (per call) and
shared by every combo with that period. Combos are dealt round-robin to the workers in
order of ma_period/num_levels so both cores get a similar mix of cheap and dear combos.
Two parallel back-ends run the same nogil kernel: numba `prange` (default; static
round-robin) and a Python thread pool pulling small chunks of combos (dynamic);
`benchmarks/bench_backtest.py --compare-parallel` measures both. On the shared 2-core
machine prange was the fastest when a core was free (about 7 ms vs 9 ms threads and
11 ms serial for the 324-combo grid); with both cores busy every mode degrades and
serial degrades least. numba's own dynamic chunking (parallel_chunksize) gained nothing.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np

from core.backtest.fast.combos import Combos, as_combos
from core.backtest.fast.envelope_kernel import N_STATS, sweep_prange, sweep_worker
from core.backtest.fast.sma import Indicators, compute_indicators
from core.backtest.metrics import DAY_MS
from core.errors import UsageError
from core.model.account import Account
from core.model.candles import Candles

#: strategy name → side sign
SIDES = {"envelope_dca": 1.0, "envelope_dca_short": -1.0}


def side_sign(strategy: str) -> float:
    try:
        return SIDES[strategy]
    except KeyError:
        raise UsageError(f"fast engine: unknown strategy {strategy!r} (known: {', '.join(SIDES)})") from None


@dataclass
class SweepResult:
    """Per-combo results of a sweep, aligned with `combos` (arrays of shape (n_combos,)).

    profit_factor is NaN where no cycle lost (the spec's null).
    """

    strategy: str
    combos: Combos
    final_equity: np.ndarray
    n_cycles: np.ndarray
    max_drawdown: np.ndarray
    sharpe: np.ndarray
    total_return: np.ndarray
    win_rate: np.ndarray
    profit_factor: np.ndarray

    @classmethod
    def from_stats(cls, strategy: str, combos: Combos, out: np.ndarray, account: Account) -> "SweepResult":
        """From a kernel's (n_combos, N_STATS) stats array: columns final equity, cycles, max
        drawdown, Sharpe, winning cycles, gross profit, gross loss (USDT where money)."""
        final = out[:, 0].copy()
        n_cyc = out[:, 1].astype(np.int64)
        gl = out[:, 6]
        with np.errstate(divide="ignore", invalid="ignore"):
            win = np.where(n_cyc > 0, out[:, 4] / np.maximum(n_cyc, 1), 0.0)
            pf = np.where(gl > 0.0, out[:, 5] / np.where(gl > 0.0, gl, 1.0), np.nan)
        return cls(
            strategy=strategy, combos=combos, final_equity=final, n_cycles=n_cyc,
            max_drawdown=out[:, 2].copy(), sharpe=out[:, 3].copy(),
            total_return=final / account.initial_capital - 1.0, win_rate=win, profit_factor=pf,
        )

    def __len__(self) -> int:
        return len(self.combos)

    def row(self, i: int) -> dict:
        """Combo i: its params and metrics (profit_factor None when no losing cycle)."""
        pf = float(self.profit_factor[i])
        return {
            "params": self.combos.params(i),
            "n_cycles": int(self.n_cycles[i]),
            "final_equity": float(self.final_equity[i]),
            "total_return": float(self.total_return[i]),
            "max_drawdown": float(self.max_drawdown[i]),
            "sharpe": float(self.sharpe[i]),
            "win_rate": float(self.win_rate[i]),
            "profit_factor": None if np.isnan(pf) else pf,
        }


def candle_arrays(candles: Candles):
    """(day, open, high, low, close, n_days) as contiguous arrays for the kernels."""
    f = np.ascontiguousarray
    ts = np.asarray(candles.ts, dtype=np.int64)
    day = f(ts // DAY_MS)
    n_days = int(1 + np.count_nonzero(np.diff(day))) if day.size else 0
    return (day, f(candles.open, dtype=np.float64), f(candles.high, dtype=np.float64),
            f(candles.low, dtype=np.float64), f(candles.close, dtype=np.float64), n_days)


_POOL: ThreadPoolExecutor | None = None


def default_workers() -> int:
    return max(1, int(numba.config.NUMBA_NUM_THREADS))


def _pool(n: int) -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None or _POOL._max_workers < n:  # noqa: SLF001
        _POOL = ThreadPoolExecutor(max_workers=n, thread_name_prefix="radar-fast")
    return _POOL


#: combos per work item of the "threads" back-end
THREAD_CHUNK = 6


def _run_threads(args, n_workers: int, out: np.ndarray) -> None:
    """The calling thread and n_workers−1 pool threads pull chunks of combos from a shared
    counter and run them in the nogil kernel: a busy core simply takes fewer chunks."""
    order = args[-1]
    head = args[:-1]
    n_chunks = (order.shape[0] + THREAD_CHUNK - 1) // THREAD_CHUNK
    counter = itertools.count()  # next() is atomic under the GIL

    def work() -> None:
        while True:
            k = next(counter)
            if k >= n_chunks:
                return
            sweep_worker(*head, order[k * THREAD_CHUNK:(k + 1) * THREAD_CHUNK], 0, 1, out)

    futs = [_pool(n_workers - 1).submit(work) for _ in range(n_workers - 1)]
    work()
    for fu in futs:
        fu.result()


def sweep(candles: Candles, strategy: str, combos, account: Account = Account(), *,
          skip: bool = True, parallel: str = "prange", workers: int | None = None,
          indicators: Indicators | None = None, funding=None) -> SweepResult:
    """Backtest every combo (Combos, a grid dict or a list of params dicts) on `candles`.

    skip=False scans every candle (the reference variant; identical results, slower).
    parallel: "prange" (numba threads, the default: measured the fastest on 2 cores),
    "threads" (the caller plus a Python thread pool pulling chunks of combos for the
    nogil kernel) or "serial". workers: number
    of workers (default NUMBA_NUM_THREADS). indicators: precomputed tables (must cover every ma_period, same
    side); by default built here, once per distinct ma_period.

    Single-position strategies go to `core.backtest.fast.single_kernels.sweep_single`
    (combos: a grid dict or params dicts of that strategy; skip/indicators ignored;
    funding=(ts, rate) required by `funding`).
    """
    from core.backtest.fast.single_kernels import is_single, sweep_single

    if is_single(strategy):
        return sweep_single(candles, strategy, combos, account, parallel=parallel, workers=workers,
                            funding=funding)
    sgn = side_sign(strategy)
    cmb = as_combos(combos)
    nc = len(cmb)
    day, o, h, l, c, n_days = candle_arrays(candles)
    out = np.zeros((nc, N_STATS))
    if nc and o.shape[0]:
        ind = indicators if indicators is not None else compute_indicators(o, h, l, c, cmb.ma_period, sgn)
        if ind.sgn != sgn:
            raise UsageError("sweep: indicators were built for the other side")
        krow = np.searchsorted(ind.periods, cmb.ma_period).astype(np.int64)
        if np.any(krow >= ind.periods.shape[0]) or np.any(ind.periods[np.minimum(krow, len(ind.periods) - 1)] != cmb.ma_period):
            raise UsageError("sweep: indicators do not cover every ma_period")
        # dear combos first-ish, dealt round-robin: similar mixes per worker
        order = np.lexsort((cmb.num_levels, cmb.ma_period)).astype(np.int64)
        nw = min(workers or default_workers(), nc)
        args = (day, o, h, l, c, ind.sma, ind.rr, ind.bmin, ind.smin, n_days,
                krow, cmb.ma_period, cmb.num_levels, cmb.envelope_start, cmb.envelope_step, cmb.sl_percent, sgn,
                float(account.initial_capital), float(account.leverage),
                float(account.maker_fee), float(account.taker_fee), bool(skip), order)
        if parallel == "serial" or nw == 1:
            sweep_worker(*args, 0, 1, out)
        elif parallel == "prange":
            sweep_prange(*args, nw, out)
        elif parallel == "threads":
            _run_threads(args, nw, out)
        else:
            raise UsageError(f"sweep: parallel must be prange, threads or serial, not {parallel!r}")
    else:
        out[:, 0] = account.initial_capital
    return SweepResult.from_stats(strategy, cmb, out, account)
