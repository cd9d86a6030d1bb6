"""Walk-forward optimisation of every strategy: search in-sample, judge out-of-sample.

Strategies (`STRATEGIES`): envelope_dca (long), envelope_dca_short (short) and the six
single-position strategies of `docs/single_position.md` (vwap_rsi, momentum,
bollinger_mr, donchian_breakout, supertrend, funding; each trades long and short). The
per-strategy backtests (grid, in-sample sweep, window backtest, warm-up) are
`core.optimize.evaluators`, on the fast kernels (which agree with the event engine); the
run itself and its statistics are the same for all. `funding` needs the perpetual's
funding-rate history (`walk_forward(..., funding=(ts, rate))`).

The run (`walk_forward`), per rolling window (`core.optimize.windows`, default IS 180 d,
OOS 60 d, step 60 d):

1. Search on IS (`core.optimize.search`): a Latin-hypercube sample of the grid (default
   500 points, or the whole grid when smaller; one sample, seeded, shared by every
   window), then ±1 grid step around the best. The score is the in-sample annualised
   daily Sharpe of `core.backtest.fast.sweep`. The window's chosen combo is the best.
2. Dense evaluation: every combo scored in any window so far (the "universe", N combos)
   is evaluated IS and OOS in every window (a combo first scored in a later window is
   back-filled into the earlier ones), giving complete window × combo matrices.

Conventions (decided here, and why):

* Fresh capital per window: every IS and OOS backtest starts flat with C0 (the account's
  initial capital); a cycle still open at a window's end is closed at its last close
  (spec rule 4). Windows are therefore independent, the honest choice: no OOS result
  depends on how an earlier window ended.
* SMA warm-up: a window's backtest gets the `ma_period` candles just before the window
  as history (`windows.window_slice`); the engine does not trade while t < N, so the SMA
  is complete at the window's first candle and every trade happens inside the window.
* Indicator warm-up (single-position strategies): the longest lookback among the combo's
  indicator periods + 2 candles before the window (`evaluators.warmup_candles`; none for
  `funding`, whose signal is the latest funding rate), with no entry before the window's
  first candle: the indicators are ready there and every trade happens inside the window.
* Window returns: the equity at each candle close of the window, its last point per UTC
  day, preceded by C0 (the equity at the window's start): D days give D daily returns,
  the first one measured from C0. (The IS search's `sweep` Sharpe uses the spec's
  daily Sharpe over the warm-up plus window candles, which is the same series whenever
  the warm-up fits in the day before the window, e.g. 1h candles with ma_period <= 24.)
* Sharpe: mean / std (ddof 1) of daily simple returns × √365 (annualised, as
  `core.backtest.metrics.daily_sharpe`); 0 with fewer than 2 returns or std 0.

Aggregation (the criteria of `core.optimize.grade`, docs/grading.md):

* oos_sharpe: Sharpe of the daily OOS returns of each window's chosen combo, all OOS
  windows concatenated (the walk-forward strategy's own OOS record).
* consistency: share of OOS windows whose chosen combo ended above C0 (return > 0).
* oos_is_ratio: oos_sharpe / is_sharpe, is_sharpe being the Sharpe of the chosen combos'
  concatenated IS daily returns (same construction); 0 when is_sharpe <= 0.
* dsr: the Deflated Sharpe Ratio where the choice is made (Bailey & López de Prado 2014,
  `core.optimize.sharpe_stats.selection_dsr`). Per window: SR̂ = the per-day (not
  annualised) Sharpe of the chosen combo's IS daily returns, T = their count, skew / raw
  kurtosis from them; V = sample variance (ddof 1) of the per-day IS Sharpes of the N
  combos of the universe in that window (the sweep's annualised Sharpe / √365);
  N = N_eff = ρ̄ + (1 − ρ̄)·N (`core.optimize.trials`, the DSR paper's estimate), ρ̄ the
  mean pairwise correlation of the combos' IS daily returns in that window (all combos
  up to 400, else a seeded random subset of 400). The universe is a superset of the
  combos the window's search scored when the grid is larger than the sample (combos
  first met later are back-filled): slightly conservative. Combined: the mean of the
  windows' DSRs (`combine_selection_dsr`: each window is one selection; overlapping IS
  periods forbid pooling T). 0 when no window has usable IS returns. The OOS record is
  not deflated again — the choice was made in-sample and OOS testing already removes
  that bias — it is judged by its PSR against 0, its Sharpe, consistency and OOS/IS.
* param_stability / stability_variance: `core.optimize.stability` — the applied combo's
  params perturbed by ±10 % and ±20 % one parameter at a time, each evaluated OOS in
  every window; 1 − RMS deviation of their OOS Sharpe from the applied combo's, relative
  to it, and the mean squared deviation (1/K)·Σ(M_k − M0)² (the roadmap's variance).

Selection (what `apply` writes into strategies.yaml, `selection` in the result):

* the applied combo is the one chosen in the most windows; a tie is broken by the best
  (lowest) mean OOS rank across all windows (per window, rank 1 = the highest OOS Sharpe
  among the N combos, ties within 1e-12 relative sharing their average rank), then by
  grid order. Every chosen combo is listed with its count, first window and mean rank;
  the tied ones are listed.
* it is judged only on the windows from the one where it was first chosen on: the OOS
  Sharpe, consistency and PSR of its own OOS days there (each of those OOS periods lies
  after the in-sample period of that first choice). Its OOS Sharpe on all windows (the
  stability's M0) includes OOS days that earlier windows' choices did not see.

Also reported: PSR against 0 of the OOS returns; the stationary block bootstrap p-value
and 95 % percentile confidence interval of the per-cycle Sharpe (`core.optimize.bootstrap`,
1,000 sims, seeded) of the chosen combos' OOS cycle returns (cycle return = pnl / cash
before the cycle, cash restarting at C0 each window); the grade and its profile
(`core.optimize.grade`); PBO by CSCV (`core.optimize.pbo`, Bailey, Borwein, López de Prado
& Zhu 2017, ties compared with a 1e-12 relative tolerance) over the OOS matrix of every
combo: rows = the OOS days of all windows in time order (each window's daily returns
from its fresh C0), columns = the N combos, S = 16 contiguous blocks (fewer for short
data), performance of a half = the Sharpe of its rows (metric "sharpe", the paper's own
setting). A mean of per-window Sharpes is not used: for the skewed returns of a grid
strategy (many small wins, rare large losses) a short window's Sharpe is biased by the
skew, which ranks combos consistently even on a random walk and would understate the PBO.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from core.backtest.metrics import daily_equity
from core.data.timeframes import timeframe_ms as tf_ms
from core.errors import RadarError, UsageError
from core.model.account import Account
from core.model.candles import Candles
from core.optimize.bootstrap import bootstrap_sharpe
from core.optimize.evaluators import STRATEGIES, Evaluator, evaluator_for, grid_space
from core.optimize.grade import Criteria, GradeResult, GradingConfig, grade, load_grading_config
from core.optimize.pbo import pbo as cscv_pbo
from core.optimize.search import DEFAULT_POINTS, GridSpace, lhs_sample, two_pass_search
from core.optimize.sharpe_stats import SelectionDSR, combine_selection_dsr, selection_dsr, sharpe_moments
from core.optimize.sharpe_stats import psr as probabilistic_sharpe
from core.optimize.stability import FRACTIONS, perturbation_variance, perturbations, stability_score
from core.optimize.windows import Window, windows_for
from core.strategies.params import STRATEGY_PARAMS

# STRATEGIES (imported from core.optimize.evaluators): every strategy the walk-forward can run.

#: Share of the progress bar given to the windows; the statistics take the rest.
_WINDOWS_SHARE = 0.9

#: progress(fraction in [0, 1], phase, window (1-based, 0 before the first), n_windows)
ProgressFn = Callable[[float, str, int, int], None]


@dataclass(frozen=True)
class WalkForwardSettings:
    """Knobs of a walk-forward run.

    Raises:
        UsageError: a length, max_points or n_boot is not an integer >= 1, or seed < 0.

    Attributes:
        is_days, oos_days, step_days: window lengths and step, whole days (180/60/60).
        max_points: size of the Latin-hypercube sample (pass 1), default 500.
        seed: seeds the sample and the bootstrap (non-negative integer).
        n_boot: bootstrap simulations (default 1,000).
        fractions: the stability perturbations (default ±10 %, ±20 %).
    """

    is_days: int = 180
    oos_days: int = 60
    step_days: int = 60
    max_points: int = DEFAULT_POINTS
    seed: int = 0
    n_boot: int = 1000
    fractions: tuple[float, ...] = FRACTIONS

    def __post_init__(self) -> None:
        """Raises UsageError naming the first field that is not an integer >= 1 (seed: >= 0)."""
        for name in ("is_days", "oos_days", "step_days", "max_points", "n_boot", "seed"):
            v = getattr(self, name)
            lo = 0 if name == "seed" else 1
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise UsageError(f"walk-forward setting {name} must be an integer >= {lo}, got {v!r}")


@dataclass(frozen=True)
class WindowRecord:
    """One completed window.

    Attributes:
        window: its IS / OOS ranges (ms UTC).
        chosen: the params of its IS-best combo.
        searched: combos scored by its two-pass search.
        is_sharpe: the chosen combo's IS Sharpe (annualised, from `sweep`).
        oos_return: its OOS return, a fraction (final equity / C0 − 1).
        oos_sharpe: its OOS Sharpe (annualised).
        oos_cycles: its OOS cycles.
    """

    window: Window
    chosen: dict
    searched: int
    is_sharpe: float
    oos_return: float
    oos_sharpe: float
    oos_cycles: int


@dataclass
class WalkForwardResult:
    """What `walk_forward` produced. Arrays named `combo_*` have shape (N,), aligned with `combos`.

    Attributes:
        strategy, symbol, market, timeframe: the series and strategy.
        settings: the `WalkForwardSettings` used.
        complete: False when cancelled: the figures cover the completed windows only.
        windows: one `WindowRecord` per completed window, in time order.
        n_windows_planned: windows the data allowed.
        combos: the N combos tested (params dicts), ascending grid order.
        combo_is_sharpe: mean over windows of each combo's IS Sharpe (annualised).
        combo_is_return: mean over windows of its IS return (fraction).
        combo_oos_sharpe: Sharpe of its daily OOS returns, all windows together (annualised).
        combo_oos_return: mean over windows of its OOS return (fraction).
        combo_oos_consistency: share of windows with an OOS return > 0.
        combo_oos_cycles: OOS cycles, all windows (int64).
        combo_times_selected: windows where it was chosen (int64).
        best_index, best_params: the applied combo: chosen most often, ties broken by the best mean
            OOS rank (module docstring, "Selection").
        criteria, grade: the criteria (`Criteria`) and the `GradeResult` (with its profile).
        is_sharpe: Sharpe of the chosen combos' IS daily returns, windows concatenated.
        psr: PSR(0) of the OOS daily returns (None when they are constant).
        p_value: bootstrap p-value of the OOS cycle returns (None with < 2 cycles or constant).
        bootstrap_underpowered: fewer than 30 OOS cycles.
        n_oos_cycles: OOS cycles of the chosen combos.
        pbo: CSCV PBO over the OOS days × combos matrix (None with < 2 combos or < 4 OOS days).
        stability: (params, OOS Sharpe) of every perturbation, and the best's OOS Sharpe first.
        evaluations: backtests run in total (IS sweeps count one per combo).
        data_first_ts, data_last_ts: open times (ms UTC) of the first and last candle used.
        dsr_windows: per window, the DSR of its in-sample choice with its inputs (sr, t,
            skew, kurt, n_trials, n_eff, mean_correlation, var_sharpes, sr0; per day), or
            None when its IS returns were unusable.
        dsr_combined: the combined DSR (mean over windows) with the mean N_eff, V and SR0.
        selection: how often each combo was chosen, the tie rule, the applied combo and its
            OOS record on the windows from its first choice on (module docstring).
        bootstrap: the bootstrap's per-cycle Sharpe, its 95 % CI and the p-value (None
            when it could not run).
    """

    strategy: str
    symbol: str
    market: str
    timeframe: str
    settings: WalkForwardSettings
    complete: bool
    windows: list[WindowRecord]
    n_windows_planned: int
    combos: list[dict]
    combo_is_sharpe: np.ndarray
    combo_is_return: np.ndarray
    combo_oos_sharpe: np.ndarray
    combo_oos_return: np.ndarray
    combo_oos_consistency: np.ndarray
    combo_oos_cycles: np.ndarray
    combo_times_selected: np.ndarray
    best_index: int
    best_params: dict
    criteria: Criteria
    grade: GradeResult
    is_sharpe: float
    psr: float | None
    p_value: float | None
    bootstrap_underpowered: bool
    n_oos_cycles: int
    pbo: float | None
    stability: list[tuple[dict, float]] = field(default_factory=list)
    evaluations: int = 0
    data_first_ts: int | None = None
    data_last_ts: int | None = None
    dsr_windows: list[dict | None] = field(default_factory=list)
    dsr_combined: dict = field(default_factory=dict)
    selection: dict = field(default_factory=dict)
    bootstrap: dict | None = None

    @property
    def n_combos(self) -> int:
        """N, the combos actually tested."""
        return len(self.combos)

    def summary(self) -> dict:
        """The JSON-able summary (what `radar optimize --json` prints per symbol)."""
        return {
            "symbol": self.symbol, "market": self.market, "timeframe": self.timeframe,
            "strategy": self.strategy, "complete": self.complete,
            "grade": self.grade.grade, "score": self.grade.score,
            "grading_profile": self.grade.profile, "sub_scores": dict(self.grade.sub_scores),
            "uncapped_grade": self.grade.uncapped_grade, "caps_binding": list(self.grade.caps_binding),
            "criteria": self.criteria.as_dict(),
            "best_params": dict(self.best_params),
            "windows": len(self.windows), "combos_evaluated": self.n_combos, "evaluations": self.evaluations,
            "pbo": self.pbo, "dsr": self.criteria.dsr, "psr": self.psr, "p_value": self.p_value,
            "bootstrap_underpowered": self.bootstrap_underpowered, "oos_cycles": self.n_oos_cycles,
            "is_sharpe": self.is_sharpe, "caps_applied": list(self.grade.caps_applied),
            "data_first_ts": self.data_first_ts, "data_last_ts": self.data_last_ts,
            "dsr_detail": {**self.dsr_combined, "windows": self.dsr_windows},
            "selection": self.selection, "bootstrap": self.bootstrap,
        }


class WalkForwardCancelled(RadarError):
    """`should_stop` asked to stop between windows. `partial` holds the completed windows'
    result (`complete=False`), or None when no window had completed."""

    def __init__(self, partial: WalkForwardResult | None) -> None:
        done = 0 if partial is None else len(partial.windows)
        super().__init__(f"walk-forward cancelled after {done} window(s)")
        self.partial = partial


def annualised_sharpe(returns: np.ndarray) -> float:
    """mean / std (ddof 1) × √365 of daily returns; 0.0 with fewer than 2 returns or std 0."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 2:
        return 0.0
    sd = float(np.std(r, ddof=1))
    if not (sd > 0.0 and math.isfinite(sd)):
        return 0.0
    return float(np.mean(r) / sd * math.sqrt(365.0))


def window_daily_returns(ts: np.ndarray, equity: np.ndarray, c0: float) -> np.ndarray:
    """Daily returns of one window: C0, then the last equity point of each UTC day (D days -> D returns)."""
    if len(ts) == 0:
        return np.empty(0)
    pts = np.concatenate([[float(c0)], daily_equity(ts, equity)])
    return pts[1:] / pts[:-1] - 1.0


def cycle_returns(pnls: np.ndarray, c0: float) -> np.ndarray:
    """Per-cycle returns: pnl_j / (C0 + Σ_{i<j} pnl_i), the cash before the cycle (fractions)."""
    p = np.asarray(pnls, dtype=np.float64)
    before = float(c0) + np.concatenate([[0.0], np.cumsum(p)[:-1]]) if p.size else p
    return p / before if p.size else p


@dataclass
class _OOS:
    returns: np.ndarray
    ret: float
    sharpe: float
    cycles: int
    cycle_returns: np.ndarray


class _Runner:
    """The state of one run: the grid, the universe of tested combos and the per-window figures."""

    def __init__(self, candles: Candles, strategy: str, space: GridSpace, account: Account,
                 windows: list[Window], evaluator: Evaluator | None = None) -> None:
        self.candles, self.strategy, self.space, self.account, self.wins = candles, strategy, space, account, windows
        self.model = STRATEGY_PARAMS[strategy]
        self.ev = evaluator if evaluator is not None else evaluator_for(strategy, account)
        self._valid: dict[int, bool] = {}
        self._params: dict[int, dict] = {}
        self.universe: list[int] = []
        self.in_universe: set[int] = set()
        self.is_sharpe: list[dict[int, float]] = [dict() for _ in windows]
        self.is_return: list[dict[int, float]] = [dict() for _ in windows]
        self.oos: list[dict[int, _OOS]] = [dict() for _ in windows]
        self.chosen: list[int] = []
        self.searched: list[int] = []
        self.chosen_is_returns: list[np.ndarray] = []
        self.evaluations = 0

    # -- combos -------------------------------------------------------------------------
    def params(self, flat: int) -> dict:
        p = self._params.get(flat)
        if p is None:
            p = self.ev.coerce(self.space.params(flat))
            self._params[flat] = p
        return dict(p)

    def valid(self, flat: int) -> bool:
        ok = self._valid.get(flat)
        if ok is None:
            try:
                self.model.model_validate(self.params(flat), strict=False)
                ok = True
            except ValueError:
                ok = False
            self._valid[flat] = ok
        return ok

    # -- backtests ----------------------------------------------------------------------
    def is_scores(self, w: int, flats: list[int]) -> np.ndarray:
        """IS Sharpe (and return) of `flats` in window w, by the evaluator's parallel sweep
        (`core.optimize.evaluators`: envelope one call per ma_period, single-position one call)."""
        win = self.wins[w]
        if flats:
            sharpe, ret = self.ev.is_stats(self.candles, win.is_start, win.is_end, [self.params(f) for f in flats])
            for i, f in enumerate(flats):
                self.is_sharpe[w][f] = float(sharpe[i])
                self.is_return[w][f] = float(ret[i])
            self.evaluations += len(flats)
        return np.array([self.is_sharpe[w][f] for f in flats], dtype=np.float64)

    def backtest_window(self, params: dict, start: int, end: int) -> _OOS:
        """One combo on [start, end) with its warm-up (SMA or indicators); fresh C0."""
        res = self.ev.window(self.candles, params, start, end)
        self.evaluations += 1
        c0 = float(self.account.initial_capital)
        r = window_daily_returns(res.ts, res.equity, c0)
        return _OOS(r, float(res.final_equity / c0 - 1.0), annualised_sharpe(r), int(res.pnls.size),
                    cycle_returns(res.pnls, c0))

    def oos_eval(self, w: int, flats: list[int]) -> None:
        win = self.wins[w]
        for f in flats:
            if f not in self.oos[w]:
                self.oos[w][f] = self.backtest_window(self.params(f), win.oos_start, win.oos_end)

    # -- one window ---------------------------------------------------------------------
    def run_window(self, w: int, sample: list[int]) -> None:
        res = two_pass_search(self.space, lambda fl: self.is_scores(w, fl), sample, self.valid)
        new = sorted(f for f in res.visited if f not in self.in_universe)
        if new:
            for v in range(w):                                   # back-fill earlier windows
                self.is_scores(v, new)
                self.oos_eval(v, new)
            self.universe = sorted(self.universe + new)
            self.in_universe.update(new)
        missing = [f for f in self.universe if f not in self.is_sharpe[w]]
        if missing:
            self.is_scores(w, missing)
        self.oos_eval(w, self.universe)
        self.chosen.append(res.best)
        self.searched.append(len(res.visited))
        win = self.wins[w]
        self.chosen_is_returns.append(self.backtest_window(self.params(res.best), win.is_start, win.is_end).returns)


#: At most this many combos' IS returns enter a window's mean pairwise correlation (a seeded
#: random subset above it: ρ̄ is a mean, which a random subset estimates without bias).
_CORR_TRIALS = 400

#: Relative tolerance under which two OOS Sharpes of one window count as tied when ranking.
_RANK_RTOL = 1e-12


def _desc_ranks(values: np.ndarray) -> np.ndarray:
    """Rank 1 = the largest; ties (within _RANK_RTOL of the largest |value|) share their average rank."""
    v = np.asarray(values, dtype=np.float64)
    tol = _RANK_RTOL * (float(np.max(np.abs(v[np.isfinite(v)]))) if np.any(np.isfinite(v)) else 0.0)
    diff = v[None, :] - v[:, None]                       # [i, j] = v_j − v_i
    tied = (np.abs(diff) <= tol) | (v[None, :] == v[:, None])
    above = (diff > 0) & ~tied
    return 1.0 + above.sum(axis=1) + (tied.sum(axis=1) - 1) / 2.0


def _window_dsr(run: _Runner, w: int, uni: list[int], rng: np.random.Generator) -> SelectionDSR | None:
    """Step "dsr" of the module docstring for window w; None when the IS returns are unusable."""
    win = run.wins[w]
    sharpes = np.array([run.is_sharpe[w][f] for f in uni], dtype=np.float64) / math.sqrt(365.0)
    sharpes = sharpes[np.isfinite(sharpes)]
    if sharpes.size == 0:
        return None
    try:
        if len(uni) < 2:
            return selection_dsr(run.chosen_is_returns[w], sharpes, 1)
        flats = uni if len(uni) <= _CORR_TRIALS else sorted(rng.choice(uni, _CORR_TRIALS, replace=False).tolist())
        cols = [run.backtest_window(run.params(f), win.is_start, win.is_end).returns for f in flats]
        return selection_dsr(run.chosen_is_returns[w], sharpes, correlation_returns=np.column_stack(cols))
    except ValueError:
        return None                                              # constant or too few IS returns


def _selection(run: _Runner, wins: list[int], uni: list[int], chosen: list[int]) -> tuple[int, dict]:
    """The applied combo and the selection report (module docstring, "Selection")."""
    pos = {f: i for i, f in enumerate(uni)}
    ranks = np.vstack([_desc_ranks(np.array([run.oos[w][f].sharpe for f in uni])) for w in wins])
    mean_rank = ranks.mean(axis=0)
    counts = Counter(chosen)
    top = max(counts.values())
    tied = sorted((f for f in counts if counts[f] == top), key=lambda f: (mean_rank[pos[f]], pos[f]))
    best = tied[0]
    first = chosen.index(best)
    after = np.concatenate([run.oos[w][best].returns for w in wins[first:]])
    psr_after = None
    try:
        mom = sharpe_moments(after)
        psr_after = probabilistic_sharpe(mom.sr, mom.t, mom.skew, mom.kurt)
    except ValueError:
        pass
    rows = sorted(counts, key=lambda f: (-counts[f], mean_rank[pos[f]], pos[f]))
    report = {
        "rule": ("the combo chosen in the most windows; a tie is broken by the best (lowest) mean OOS rank "
                 "across all windows (rank 1 = the highest OOS Sharpe of the window among the N combos), "
                 "then by grid order"),
        "distinct_chosen": len(counts),
        "chosen": [{"params": run.params(f), "times": int(counts[f]), "first_window": int(chosen.index(f)),
                    "windows": [int(w) for w in wins if chosen[w] == f],
                    "mean_oos_rank": float(mean_rank[pos[f]])} for f in rows],
        "tied": [run.params(f) for f in tied] if len(tied) > 1 else [],
        "applied": {
            "params": run.params(best), "times": int(counts[best]), "first_window": int(first),
            "judged_windows": len(wins) - first,
            "oos_sharpe": annualised_sharpe(after),
            "oos_consistency": float(np.mean([run.oos[w][best].ret > 0.0 for w in wins[first:]])),
            "oos_psr": psr_after,
            "oos_days": int(after.size),
        },
    }
    return best, report


def _aggregate(run: _Runner, n_done: int, settings: WalkForwardSettings, grading: GradingConfig,
               complete: bool, progress: Callable[[float], None]) -> WalkForwardResult:
    wins = list(range(n_done))
    uni = run.universe
    n = len(uni)
    c = run.candles
    chosen = run.chosen[:n_done]

    oos_r = np.concatenate([run.oos[w][chosen[w]].returns for w in wins])
    is_r = np.concatenate(run.chosen_is_returns[:n_done])
    oos_sharpe = annualised_sharpe(oos_r)
    is_sharpe = annualised_sharpe(is_r)
    consistency = float(np.mean([run.oos[w][chosen[w]].ret > 0.0 for w in wins]))
    ratio = oos_sharpe / is_sharpe if is_sharpe > 0.0 else 0.0

    psr_value = None
    try:
        mom = sharpe_moments(oos_r)
        psr_value = probabilistic_sharpe(mom.sr, mom.t, mom.skew, mom.kurt)
    except ValueError:
        pass                                                     # constant or too few returns

    rng = np.random.default_rng(settings.seed)
    per_window = [_window_dsr(run, w, uni, rng) for w in wins]
    usable = [d for d in per_window if d is not None]
    dsr_value = combine_selection_dsr(usable) if usable else 0.0
    dsr_windows = [None if d is None else {
        "window": w, "dsr": d.dsr, "sr": d.sr, "t": d.t, "skew": d.skew, "kurt": d.kurt,
        "n_trials": d.n_trials, "n_eff": d.n_eff,
        "mean_correlation": d.mean_correlation if math.isfinite(d.mean_correlation) else None,
        "var_sharpes": d.var_sharpes, "sr0": d.sr0} for w, d in zip(wins, per_window)]
    dsr_combined = {
        "method": "mean of the per-window DSRs of the in-sample choice",
        "dsr": dsr_value, "windows_used": len(usable),
        "n_eff_mean": float(np.mean([d.n_eff for d in usable])) if usable else None,
        "var_sharpes_mean": float(np.mean([d.var_sharpes for d in usable])) if usable else None,
        "sr0_mean": float(np.mean([d.sr0 for d in usable])) if usable else None,
        "n_trials": n,
    }
    progress(0.4)

    combo_returns = [np.concatenate([run.oos[w][f].returns for w in wins]) for f in uni]
    cyc = np.concatenate([run.oos[w][chosen[w]].cycle_returns for w in wins])
    p_value, underpowered, boot_info = None, True, None
    try:
        boot = bootstrap_sharpe(cyc, n_sims=settings.n_boot, seed=settings.seed)
        p_value, underpowered = boot.p_value, boot.underpowered
        boot_info = {"sharpe_per_cycle": boot.observed_sharpe,
                     "ci_low": boot.ci_low if math.isfinite(boot.ci_low) else None,
                     "ci_high": boot.ci_high if math.isfinite(boot.ci_high) else None,
                     "ci_level": boot.ci_level, "p_value": boot.p_value, "n_cycles": boot.n_cycles,
                     "block_length": boot.block_length}
    except ValueError:
        pass                                                     # < 2 cycles or all equal

    pbo_value = None
    if n >= 2:
        daily = np.column_stack(combo_returns)                   # (OOS days of all windows, N combos)
        if daily.shape[0] >= 4:
            pbo_value = cscv_pbo(daily, metric="sharpe", seed=settings.seed).pbo
    progress(0.5)

    best, selection = _selection(run, wins, uni, chosen)
    best_params = run.params(best)
    pos = {f: i for i, f in enumerate(uni)}
    combo_oos_sharpe = np.array([annualised_sharpe(r) for r in combo_returns])
    m0 = float(combo_oos_sharpe[pos[best]])
    stab_rows: list[tuple[dict, float]] = [(best_params, m0)]
    for p in perturbations(best_params, run.model, settings.fractions):
        rets = [run.backtest_window(p, run.wins[w].oos_start, run.wins[w].oos_end).returns for w in wins]
        stab_rows.append((p, annualised_sharpe(np.concatenate(rets))))
    stab = stability_score(m0, [m for _, m in stab_rows[1:]])
    stab_var = perturbation_variance(m0, [m for _, m in stab_rows[1:]])
    progress(0.9)

    criteria = Criteria(oos_sharpe=oos_sharpe, consistency=consistency, oos_is_ratio=ratio,
                        dsr=min(1.0, max(0.0, dsr_value)), param_stability=0.0 if stab is None else stab,
                        stability_variance=stab_var)
    g = grade(criteria, grading)
    lo = int(np.searchsorted(c.ts, run.wins[0].is_start, "left"))
    hi = int(np.searchsorted(c.ts, run.wins[n_done - 1].oos_end, "left"))
    records = [WindowRecord(run.wins[w], run.params(chosen[w]), run.searched[w], run.is_sharpe[w][chosen[w]],
                            run.oos[w][chosen[w]].ret, run.oos[w][chosen[w]].sharpe, run.oos[w][chosen[w]].cycles)
               for w in wins]
    sel = Counter(chosen)
    return WalkForwardResult(
        strategy=run.strategy, symbol=c.symbol, market=c.market, timeframe=c.timeframe, settings=settings,
        complete=complete, windows=records, n_windows_planned=len(run.wins), combos=[run.params(f) for f in uni],
        combo_is_sharpe=np.array([np.mean([run.is_sharpe[w][f] for w in wins]) for f in uni]),
        combo_is_return=np.array([np.mean([run.is_return[w][f] for w in wins]) for f in uni]),
        combo_oos_sharpe=combo_oos_sharpe,
        combo_oos_return=np.array([np.mean([run.oos[w][f].ret for w in wins]) for f in uni]),
        combo_oos_consistency=np.array([np.mean([run.oos[w][f].ret > 0.0 for w in wins]) for f in uni]),
        combo_oos_cycles=np.array([sum(run.oos[w][f].cycles for w in wins) for f in uni], dtype=np.int64),
        combo_times_selected=np.array([sel.get(f, 0) for f in uni], dtype=np.int64),
        best_index=pos[best], best_params=best_params, criteria=criteria, grade=g, is_sharpe=is_sharpe,
        psr=psr_value, p_value=p_value, bootstrap_underpowered=underpowered, n_oos_cycles=int(cyc.size),
        pbo=pbo_value, stability=stab_rows, evaluations=run.evaluations,
        data_first_ts=int(c.ts[lo]) if hi > lo else None, data_last_ts=int(c.ts[hi - 1]) if hi > lo else None,
        dsr_windows=dsr_windows, dsr_combined=dsr_combined, selection=selection, bootstrap=boot_info,
    )


def build_space(grid: Mapping[str, list], base_params: Mapping[str, object] | None = None,
                strategy: str = "envelope_dca") -> GridSpace:
    """The search grid over every parameter of `strategy` (model field order): `grid` values,
    and for a parameter missing from `grid` its `base_params` value (default: envelope_dca's
    spec example params, the other strategies' model defaults).

    Raises:
        UsageError: unknown strategy, `grid` names a parameter the strategy does not have, or
            a value is not a number.
    """
    return grid_space(strategy, grid, base_params)


def walk_forward(candles: Candles, strategy: str, grid: Mapping[str, list], *,
                 base_params: Mapping[str, object] | None = None, account: Account = Account(),
                 settings: WalkForwardSettings = WalkForwardSettings(), grading: GradingConfig | None = None,
                 progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
                 funding: tuple[np.ndarray, np.ndarray] | None = None) -> WalkForwardResult:
    """Walk-forward optimisation of one strategy on one candle series (module docstring).

    Args:
        candles: the whole series (ms UTC open times), e.g. 1h BTC/USDT.
        strategy: one of `STRATEGIES` (envelope_dca, envelope_dca_short, vwap_rsi, momentum,
            bollinger_mr, donchian_breakout, supertrend, funding).
        grid: {parameter: values} (`config/param_grids.yaml`); parameters left out take
            `base_params` (the configured params) or the strategy's defaults.
        account: capital (USDT), leverage and fees of every backtest.
        settings: windows, sample size, seed, bootstrap sims, perturbations.
        grading: the grading config (default: the packaged `config/grading.yaml`).
        progress: called on the calling thread with (fraction 0..1, phase, window 1-based,
            n_windows); phases "window" (after each window) and "statistics".
        should_stop: polled before each window; when it returns True the run stops there.
        funding: (ts int64 ms UTC, rate per interval) of the perpetual's funding rates, sorted;
            required by `funding`, ignored by the other strategies.

    Returns:
        `WalkForwardResult` with `complete=True`.

    Raises:
        UsageError: unknown strategy or parameter, bad window lengths, data shorter than one
            window, a grid without one valid combo, or `funding` without funding rates.
        WalkForwardCancelled: `should_stop` returned True; `.partial` holds the result of the
            completed windows (`complete=False`), or None before the first.
    """
    if strategy not in STRATEGIES:
        raise UsageError(f"walk-forward: unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    space = build_space(grid, base_params, strategy)
    evaluator = evaluator_for(strategy, account, funding)
    wins = windows_for(candles, tf_ms(candles.timeframe), settings.is_days, settings.oos_days, settings.step_days)
    grading = grading if grading is not None else load_grading_config()
    run = _Runner(candles, strategy, space, account, wins, evaluator)
    sample = lhs_sample(space, settings.max_points, settings.seed, run.valid)
    if not sample:
        raise UsageError(f"walk-forward: no valid combo in the grid of {strategy} (every combo breaks a rule "
                         "of its parameter model, e.g. envelope_start + (num_levels - 1) * envelope_step < 1 "
                         "or fast_ema < slow_ema)")
    n = len(wins)
    report = progress or (lambda *_: None)
    report(0.0, "window", 0, n)
    for w in range(n):
        if should_stop is not None and should_stop():
            partial = None
            if w > 0:
                partial = _aggregate(run, w, settings, grading, False, lambda _f: None)
            raise WalkForwardCancelled(partial)
        run.run_window(w, sample)
        report(_WINDOWS_SHARE * (w + 1) / n, "window", w + 1, n)

    def stats_progress(f: float) -> None:
        report(_WINDOWS_SHARE + (1.0 - _WINDOWS_SHARE) * f, "statistics", n, n)

    result = _aggregate(run, n, settings, grading, True, stats_progress)
    report(1.0, "statistics", n, n)
    return result
