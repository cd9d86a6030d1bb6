"""Per-strategy in-sample and out-of-sample evaluation for the walk-forward, on the fast kernels.

The walk-forward (`core.optimize.walk_forward`) is strategy-agnostic: it asks an
`Evaluator` for (1) the search grid of a strategy, (2) the in-sample score of many combos
in one window (`is_stats`, one parallel kernel call) and (3) one combo's backtest of one
window with its per-candle equity and trades (`window`). Two families:

* `EnvelopeEvaluator` — envelope_dca (long) and envelope_dca_short (short), the grid
  engine of `core.backtest.fast.envelope_kernel`. Warm-up: the `ma_period` candles just
  before the window (`windows.window_slice`); the engine does not trade while t < N, so
  the SMA is complete at the window's first candle and every trade happens inside it.
  In-sample: `core.backtest.fast.sweep` over warm-up + window, one call per ma_period.

* `GridFamilyEvaluator` — grid_atr, grid_rsi, grid_funding, grid_mtf (+ short sides,
  docs/grid_family.md), the generic grid kernel of `core.backtest.fast.grid_kernel`, with the
  envelope's scheme: a warm-up chosen so that the first quote falls on the window's first candle.

* `SingleEvaluator` — the six single-position strategies of `docs/single_position.md`
  (vwap_rsi, momentum, bollinger_mr, donchian_breakout, supertrend, funding; each trades
  both sides, long and short), the kernel of `core.backtest.fast.single_kernels`.
  Window backtest, the same for IS and OOS:

  1. warm-up W = `warmup_candles(strategy, params)`: the longest lookback among the
     combo's indicator periods + 2 (the signal for candle t reads the indicators at t−1
     and, for crossovers, flips and the previous channel, at t−2; every indicator of
     `core.indicators` has its first value at index n−1 or n), 0 for `funding` (its
     signal is the latest funding rate, no candle history);
  2. the strategy's own `signal_arrays` are computed on the W candles before the window
     plus the window (`window_slice`, as many warm-up candles as exist);
  3. no entry before the window's first candle (the signals of the warm-up candles are
     masked), so the account is flat with C0 at the window's start and every trade opens
     inside the window; a trade still open at the window's last candle closes at its
     close ("end"). Funding rates come from the whole funding series (the latest rate
     whose time is <= the candle's open, `core.strategies.funding.rate_at_open`).

  The kernel runs on the window's candles preceded by one masked warm-up candle (when the
  data has one): that candle lies in the UTC day before the window (whole-day windows,
  timeframes <= 1d), so the kernel's daily Sharpe (`stats_kernel`: last equity point per
  UTC day, consecutive-day returns) is exactly the Sharpe of the window's daily returns
  measured from C0 (`walk_forward.window_daily_returns`). In-sample: every combo of the
  window in one parallel call of the nogil `sweep_worker` (Python threads, as the
  envelope's "threads" back-end), the signal arrays built once per distinct indicator key
  (`cls.indicator_key`) and cached per window.

Both engines' terms: `event_window_backtest` runs the same window through the event-driven
engine (`core.backtest.event_engine.run_event_backtest` on warm-up + window; single-position
strategies with the warm-up entries masked); `tests/optimize/test_wfo_every_strategy.py`
checks that it gives the same trades and equity as `Evaluator.window` for every strategy,
as `tests/backtest/test_single_position_engines_agree.py` does for whole series.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from core.backtest.fast import run_fast, sweep
from core.backtest.fast import grid_family as gf
from core.backtest.fast import single_kernels as sk
from core.backtest.fast.combos import DEFAULT_PARAMS as ENVELOPE_DEFAULTS
from core.backtest.fast.sweep import _pool, default_workers
from core.backtest.result import BacktestResult
from core.errors import UsageError
from core.model.account import Account
from core.model.candles import Candles
from core.optimize.search import GridSpace
from core.optimize.windows import window_slice
from core.strategies import registry
from core.strategies.array_signal import ArraySignalStrategy
from core.strategies.params import STRATEGY_PARAMS, StrategyParams

#: Indicator lookback parameters (candles) of each single-position strategy; W = max + 2.
LOOKBACK_PARAMS: dict[str, tuple[str, ...]] = {
    "vwap_rsi": ("vwap_period", "rsi_period"),
    "momentum": ("fast_ema", "slow_ema", "atr_period"),
    "bollinger_mr": ("bb_period",),
    "donchian_breakout": ("channel_period", "atr_period"),
    "supertrend": ("atr_period",),
    "funding": (),
    "liquidation": ("atr_period", "oi_period"),
}

#: Extra warm-up candles beyond the longest lookback (signals read indicators at t−1 and t−2).
WARMUP_MARGIN = 2

#: Signal-array sets kept per evaluator (per window and indicator key).
_CACHE_SIZE = 64


def lookback_params(strategy: str) -> tuple[str, ...]:
    """The lookback parameters of `strategy`: the table above, else its integer parameters
    named `*_period` or `*_ema` (a strategy added later)."""
    if strategy in LOOKBACK_PARAMS:
        return LOOKBACK_PARAMS[strategy]
    model = STRATEGY_PARAMS[strategy]
    return tuple(n for n, f in model.model_fields.items()
                 if f.annotation is int and (n.endswith("_period") or n.endswith("_ema")))


def warmup_candles(strategy: str, params: Mapping[str, object], timeframe: str | None = None) -> int:
    """Candles of history a window's backtest needs before its first candle (module docstring):
    envelope: ma_period; single-position: max(lookback params) + 2, 0 without lookback; the
    grid family: `core.backtest.fast.grid_family.warmup_candles` (grid_mtf needs `timeframe`)."""
    if strategy in ("envelope_dca", "envelope_dca_short"):
        return int(params["ma_period"])
    if gf.is_grid_family(strategy):
        return gf.warmup_candles(strategy, params, timeframe)
    names = lookback_params(strategy)
    return max(int(params[n]) for n in names) + WARMUP_MARGIN if names else 0


@dataclass(frozen=True)
class WindowRun:
    """One combo backtested on one window (fresh C0): the window's candles only.

    Attributes:
        ts: open times of the window's candles (int64 ms UTC), shape (n,).
        equity: equity at each of their closes (USDT), shape (n,).
        pnls: net P&L of each closed trade / cycle (USDT), in order.
        final_equity: cash after the last exit (USDT).
    """

    ts: np.ndarray
    equity: np.ndarray
    pnls: np.ndarray
    final_equity: float


def _coerce(model: type[StrategyParams], raw: Mapping[str, object]) -> dict:
    """Grid values as the model's types (int fields int, float fields float), model field order."""
    out = {}
    for n, f in model.model_fields.items():
        if n in raw:
            out[n] = int(raw[n]) if f.annotation is int else float(raw[n])
    return out


def grid_space(strategy: str, grid: Mapping[str, list], base_params: Mapping[str, object] | None = None
               ) -> GridSpace:
    """The search grid over every parameter of `strategy` (its model's field order): `grid`
    values, and for a parameter missing from `grid` its `base_params` value (default: the
    spec's example params for envelope_dca / envelope_dca_short, the model defaults otherwise).

    Raises:
        UsageError: unknown strategy, `grid` names a parameter the strategy does not have, or
            a value is not a number.
    """
    if strategy not in STRATEGY_PARAMS:
        raise UsageError(f"walk-forward: unknown strategy {strategy!r}")
    fields = STRATEGY_PARAMS[strategy].model_fields
    names = tuple(fields)
    unknown = set(grid) - set(names)
    if unknown:
        raise UsageError(f"parameter grid: unknown parameters {sorted(unknown)}; expected {', '.join(names)}")
    defaults = dict(ENVELOPE_DEFAULTS) if strategy in ("envelope_dca", "envelope_dca_short") else \
        {n: f.default for n, f in fields.items()}
    base = {**defaults, **{k: v for k, v in dict(base_params or {}).items() if k in names}}
    return GridSpace.from_grid({n: list(grid[n]) if n in grid else [base[n]] for n in names})


class Evaluator:
    """The walk-forward's view of one strategy (module docstring). Subclasses implement
    `is_stats` and `window`."""

    def __init__(self, strategy: str, account: Account, funding=None) -> None:
        self.strategy = strategy
        self.model: type[StrategyParams] = STRATEGY_PARAMS[strategy]
        self.account = account
        self.funding = funding
        self.names: tuple[str, ...] = tuple(self.model.model_fields)

    # -- grid ------------------------------------------------------------------------------
    def build_space(self, grid: Mapping[str, list], base_params: Mapping[str, object] | None = None) -> GridSpace:
        """`grid_space` of this strategy."""
        return grid_space(self.strategy, grid, base_params)

    def coerce(self, raw: Mapping[str, object]) -> dict:
        """A grid point as params of the strategy (ints for integer parameters, floats otherwise)."""
        return _coerce(self.model, raw)

    def warmup(self, params: Mapping[str, object]) -> int:
        return warmup_candles(self.strategy, params)

    # -- backtests -------------------------------------------------------------------------
    def is_stats(self, candles: Candles, start: int, end: int, combos: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        """(annualised daily Sharpe, total return) of each combo on window [start, end), shape (n,) each."""
        raise NotImplementedError

    def window(self, candles: Candles, params: dict, start: int, end: int) -> WindowRun:
        """One combo on window [start, end) with its warm-up, fresh C0, equity and trades."""
        raise NotImplementedError


class EnvelopeEvaluator(Evaluator):
    """envelope_dca / envelope_dca_short (module docstring)."""

    def is_stats(self, candles: Candles, start: int, end: int, combos: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        sharpe = np.empty(len(combos))
        ret = np.empty(len(combos))
        by_period: dict[int, list[int]] = {}
        for i, p in enumerate(combos):
            by_period.setdefault(int(p["ma_period"]), []).append(i)
        for period, idx in by_period.items():
            sl, _ = window_slice(candles, start, end, period)
            res = sweep(sl, self.strategy, [combos[i] for i in idx], self.account, parallel="threads")
            sharpe[idx] = res.sharpe
            ret[idx] = res.total_return
        return sharpe, ret

    def window(self, candles: Candles, params: dict, start: int, end: int) -> WindowRun:
        sl, k = window_slice(candles, start, end, int(params["ma_period"]))
        res = run_fast(sl, self.strategy, params, self.account)
        return WindowRun(res.ts[k:], res.equity[k:], np.array([c.pnl for c in res.cycles], dtype=np.float64),
                         float(res.final_equity))


class GridFamilyEvaluator(Evaluator):
    """grid_atr, grid_rsi, grid_funding, grid_mtf and their short sides (docs/grid_family.md),
    on `core.backtest.fast.grid_family`. As `EnvelopeEvaluator`: warm-up W =
    `warmup_candles(strategy, params, timeframe)` candles before the window, chosen so that the
    strategy first quotes (and can trade) at the window's first candle and never before;
    in-sample: every combo of the window in one threaded kernel call per distinct W."""

    def __init__(self, strategy: str, account: Account, funding=None) -> None:
        super().__init__(strategy, account, funding)
        if gf.needs_funding(strategy):
            if funding is None or len(funding[0]) == 0:
                raise UsageError(f"walk-forward: {strategy} needs the perpetual's funding-rate history "
                                 "(funding=(ts, rate)): import or download it first")
            self.funding = (np.ascontiguousarray(funding[0], dtype=np.int64),
                            np.ascontiguousarray(funding[1], dtype=np.float64))
        else:
            self.funding = None

    def is_stats(self, candles: Candles, start: int, end: int, combos: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        sharpe = np.empty(len(combos))
        ret = np.empty(len(combos))
        by_w: dict[int, list[int]] = {}
        for i, p in enumerate(combos):
            by_w.setdefault(warmup_candles(self.strategy, p, candles.timeframe), []).append(i)
        c0 = float(self.account.initial_capital)
        for w, idx in by_w.items():
            sl, _ = window_slice(candles, start, end, w)
            out = gf.sweep_grid_stats(sl, self.strategy, [combos[i] for i in idx], self.account,
                                      funding=self.funding)
            sharpe[idx] = out[:, 3]
            ret[idx] = out[:, 0] / c0 - 1.0
        return sharpe, ret

    def window(self, candles: Candles, params: dict, start: int, end: int) -> WindowRun:
        sl, k = window_slice(candles, start, end, warmup_candles(self.strategy, params, candles.timeframe))
        res = gf.run_grid_fast(sl, self.strategy, params, self.account, funding=self.funding)
        return WindowRun(res.ts[k:], res.equity[k:], np.array([c.pnl for c in res.cycles], dtype=np.float64),
                         float(res.final_equity))


@dataclass(frozen=True)
class _Inputs:
    """Kernel inputs of one window: candles [j, hi) of the series (j = one masked candle before
    the window when there is one) and the signal arrays of one indicator key over them."""

    skip: int                        # leading masked candles (0 or 1) before the window's first candle
    ts: np.ndarray
    day: np.ndarray
    n_days: int
    o: np.ndarray
    h: np.ndarray
    lo: np.ndarray
    c: np.ndarray
    sig: np.ndarray
    sref: np.ndarray
    tref: np.ndarray


class SingleEvaluator(Evaluator):
    """The six single-position strategies (module docstring)."""

    def __init__(self, strategy: str, account: Account, funding=None) -> None:
        super().__init__(strategy, account, funding)
        cls = sk.strategy_class(strategy)
        if cls is None:
            raise UsageError(f"walk-forward: {strategy!r} is not a single-position strategy")
        self.cls: type[ArraySignalStrategy] = cls
        if cls.NEEDS_FUNDING:
            if funding is None or len(funding[0]) == 0:
                raise UsageError(f"walk-forward: {strategy} needs the perpetual's funding-rate history "
                                 "(funding=(ts, rate)): import or download it first "
                                 "(radar data import ..._8h-funding_rate.json.gz / radar data download --funding)")
            self.funding = (np.ascontiguousarray(funding[0], dtype=np.int64),
                            np.ascontiguousarray(funding[1], dtype=np.float64))
        elif getattr(cls, "NEEDS_OPEN_INTEREST", False):
            if funding is None or len(funding[0]) == 0:
                raise UsageError(f"walk-forward: {strategy} needs the perpetual's open-interest history "
                                 "(funding=(ts, oi)): download it first (radar data download --open-interest)")
            self.funding = (np.ascontiguousarray(funding[0], dtype=np.int64),
                            np.ascontiguousarray(funding[1], dtype=np.float64))
        self._cache: OrderedDict[tuple, _Inputs] = OrderedDict()

    def _inputs(self, candles: Candles, start: int, end: int, p: dict) -> _Inputs:
        key = (id(candles), start, end, self.cls.indicator_key(p))
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        w = self.warmup(p)
        sl, k = window_slice(candles, start, end, max(w, 1))
        f = np.ascontiguousarray
        ts = f(sl.ts, dtype=np.int64)
        o, h, lo, c, v = (f(x, dtype=np.float64) for x in (sl.open, sl.high, sl.low, sl.close, sl.volume))
        a = self.cls.signal_arrays(p, ts, o, h, lo, c, v, self.funding)
        j = max(k - 1, 0)                                   # one flat candle before the window
        sig = np.array(a.sig[j:], dtype=np.int8)
        sig[: k - j] = 0                                    # no entry before the window
        day = f(ts[j:] // 86_400_000)
        n_days = int(1 + np.count_nonzero(np.diff(day))) if day.size else 0
        inp = _Inputs(k - j, ts[j:], day, n_days, f(o[j:]), f(h[j:]), f(lo[j:]), f(c[j:]), sig,
                      f(a.sref[j:], dtype=np.float64), f(a.tref[j:], dtype=np.float64))
        self._cache[key] = inp
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return inp

    def _exits(self, p: dict) -> tuple[float, float, int]:
        return self.cls.exit_params(p)

    def is_stats(self, candles: Candles, start: int, end: int, combos: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        nc = len(combos)
        c0 = float(self.account.initial_capital)
        if nc == 0:
            return np.empty(0), np.empty(0)
        keys: dict[tuple, int] = {}
        firsts: list[_Inputs] = []
        krow = np.empty(nc, dtype=np.int64)
        for i, p in enumerate(combos):
            k = self.cls.indicator_key(p)
            if k not in keys:
                keys[k] = len(keys)
                firsts.append(self._inputs(candles, start, end, p))
            krow[i] = keys[k]
        base = firsts[0]
        if base.o.shape[0] == 0:
            return np.zeros(nc), np.zeros(nc)
        # every key's inputs cover the same candles ([window start − 1 candle, end)) unless the
        # data has no candle before the window, in which case none has the extra candle
        sig2d = np.stack([x.sig for x in firsts])
        sref2d = np.stack([x.sref for x in firsts])
        tref2d = np.stack([x.tref for x in firsts])
        ex = [self._exits(p) for p in combos]
        sp = np.asarray([e[0] for e in ex], dtype=np.float64)
        tp = np.asarray([e[1] for e in ex], dtype=np.float64)
        mh = np.asarray([e[2] for e in ex], dtype=np.int64)
        out = np.zeros((nc, sk.N_STATS))
        args = (base.day, base.n_days, base.o, base.h, base.lo, base.c, sig2d, sref2d, tref2d, krow,
                self.cls.STOP_MODE, sp, self.cls.TP_MODE, tp, mh, c0, float(self.account.leverage),
                float(self.account.taker_fee))
        nw = min(default_workers(), nc)
        if nw == 1:
            sk.sweep_worker(*args, 0, 1, out)
        else:       # Python threads over the nogil kernel (as the envelope's "threads"): no numba
            #         threading layer, so a job thread may run it beside other numba users
            futs = [_pool(nw - 1).submit(sk.sweep_worker, *args, w, nw, out) for w in range(1, nw)]
            sk.sweep_worker(*args, 0, nw, out)
            for fu in futs:
                fu.result()
        return out[:, 3].copy(), out[:, 0] / c0 - 1.0

    def window(self, candles: Candles, params: dict, start: int, end: int) -> WindowRun:
        inp = self._inputs(candles, start, end, params)
        n = inp.o.shape[0]
        c0 = float(self.account.initial_capital)
        if n == 0:
            return WindowRun(inp.ts, np.empty(0), np.empty(0), c0)
        sp, tp, mh = self._exits(params)
        eq = np.empty(n)
        cyc_i = np.empty((n, 4), dtype=np.int64)
        cyc_f = np.empty((n, 4))
        st = sk.run_single(inp.day, inp.n_days, inp.o, inp.h, inp.lo, inp.c, inp.sig, inp.sref, inp.tref,
                           self.cls.STOP_MODE, float(sp), self.cls.TP_MODE, float(tp), int(mh),
                           c0, float(self.account.leverage), float(self.account.taker_fee),
                           True, eq, cyc_i, cyc_f)
        s = inp.skip
        return WindowRun(inp.ts[s:], eq[s:], cyc_f[: st[1], 3].copy(), float(st[0]))


#: Every strategy the walk-forward can run, in registry order.
STRATEGIES: tuple[str, ...] = tuple(n for n in registry.names()
                                    if n in ("envelope_dca", "envelope_dca_short") or sk.is_single(n)
                                    or gf.is_grid_family(n))


def needs_funding(strategy: str) -> bool:
    """True when `strategy` trades on a perpetual's funding rates (needs funding=(ts, rate))."""
    cls = sk.strategy_class(strategy)
    return bool(cls is not None and cls.NEEDS_FUNDING) or gf.needs_funding(strategy)


def needs_side_series(strategy: str) -> bool:
    """True when `strategy` reads a side series through `funding=(ts, value)`: the funding
    rates (`funding`) or the open interest (`liquidation`)."""
    cls = sk.strategy_class(strategy)
    return bool(cls is not None and (cls.NEEDS_FUNDING or getattr(cls, "NEEDS_OPEN_INTEREST", False)))


def evaluator_for(strategy: str, account: Account = Account(), funding=None) -> Evaluator:
    """The evaluator of `strategy` (funding=(ts, rate) is required by `funding`, ignored otherwise).

    Raises:
        UsageError: unknown strategy, or `funding` without a funding series.
    """
    if strategy not in STRATEGIES:
        raise UsageError(f"walk-forward: unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    if strategy in ("envelope_dca", "envelope_dca_short"):
        return EnvelopeEvaluator(strategy, account)
    if gf.is_grid_family(strategy):
        return GridFamilyEvaluator(strategy, account, funding if needs_funding(strategy) else None)
    return SingleEvaluator(strategy, account, funding if needs_side_series(strategy) else None)


def event_window_backtest(candles: Candles, strategy: str, params: dict, start: int, end: int,
                          account: Account = Account(), funding=None) -> tuple[BacktestResult, int]:
    """The event-driven engine's backtest of one walk-forward window (the reference of
    `Evaluator.window`): `run_event_backtest` on the warm-up + window candles, single-position
    strategies with their entries masked before the window.

    Returns:
        (the result over warm-up + window, k): the window's own candles are `[k:]`.
    """
    from core.backtest.event_engine import run_event_backtest
    from core.backtest.single_driver import run_single_backtest

    w = warmup_candles(strategy, params, candles.timeframe)
    cls = sk.strategy_class(strategy)
    if cls is None:
        sl, k = window_slice(candles, start, end, w)
        return run_event_backtest(sl, strategy, params, account,
                                  funding=funding if gf.needs_funding(strategy) else None), k
    sl, k = window_slice(candles, start, end, max(w, 1))

    class _Masked(cls):  # type: ignore[valid-type, misc]
        def prepare(self, series: Candles) -> None:
            super().prepare(series)
            sig = self._pre[0]
            for t in range(min(k, len(sig))):
                sig[t] = 0

    _Masked.name = cls.name
    return run_single_backtest(sl, _Masked(dict(params)), account, funding=funding), k
