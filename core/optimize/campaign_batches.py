"""Window-batch tasks of a research campaign: one walk-forward run split into tasks that reproduce it exactly.

A campaign run (`core.optimize.campaign.RunSpec`: strategy, symbol, timeframe) is the plain
`core.optimize.walk_forward.walk_forward`. Its windows are not independent as that function
runs them (a combo met in a later window is back-filled into the earlier ones), but every
number it produces is a function of per-window pieces that ARE independent, so the run is cut
into tasks of a few windows each (`batches`) in three phases:

1. "search" (one task per window batch): per window, the two-pass search of
   `core.optimize.search.two_pass_search` on the in-sample data — visited combos, the chosen
   (best) combo and the IS Sharpe / return of every visited combo.
2. "dense" (one task per window batch, once every search of the run is in): the universe is
   the sorted union of the visited combos (what the sequential back-fill ends with); per
   window, the IS scores of the universe combos its search did not visit, the OOS backtest of
   every universe combo, the chosen combo's IS daily returns and, when the window's DSR will
   use every universe combo (N <= 400 and a finite IS Sharpe: `walk_forward._window_dsr`),
   the IS backtests its mean pairwise correlation needs.
3. "final" (one task per run): a `walk_forward._Runner` filled with those pieces runs the
   walk-forward's own aggregation (`walk_forward._aggregate`: DSR, PBO, bootstrap, stability,
   selection, grade) — the same code on the same numbers, so the result equals
   `walk_forward(...)` to the last bit, including the `evaluations` count (a backtest a dense
   task prepared for the DSR is counted when the aggregation uses it, as if it ran there).

Each (window, combo) is scored once, as in the sequential run; the evaluator's sweeps score
every combo independently of the others in the call, so the split changes no value
(`tests/optimize/test_campaign_batches.py` checks the equality against `walk_forward`).

`run_task` is the body of every task, in the local pool, in-process and on Ray. Errors: what
`walk_forward` raises (UsageError: windows longer than the data, no valid combo, ...);
`BatchCancelled` when `should_stop` says so between windows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import RadarError, UsageError

SEARCH, DENSE, FINAL = "search", "dense", "final"
PHASES = (SEARCH, DENSE, FINAL)

#: Windows per batch task by default: a dense window of the 324-combo envelope grid on 1h
#: candles (180/60-day windows) is about 0.2 s, so a batch is well under a second of work —
#: small enough to balance 2 CPUs to the end, large enough that per-task costs stay small.
DEFAULT_WINDOW_BATCH = 4


class BatchCancelled(RadarError):
    """`should_stop` asked a batch task to stop between windows."""


@dataclass(frozen=True)
class Task:
    """One task of a run: `phase` on `windows` (0-based window indices; empty for "final")."""

    run: int
    phase: str
    windows: tuple[int, ...] = ()


def batches(n_windows: int, size: int = DEFAULT_WINDOW_BATCH) -> list[tuple[int, ...]]:
    """Windows 0..n-1 in consecutive batches of at most `size`, as even as possible
    (e.g. 10 windows, size 4 -> 3, 4, 3).

    Raises:
        UsageError: n_windows < 1 or size < 1.
    """
    if n_windows < 1 or size < 1:
        raise UsageError(f"window batches: need >= 1 window and a batch size >= 1, got {n_windows}, {size}")
    k = math.ceil(n_windows / size)
    bounds = [round(i * n_windows / k) for i in range(k + 1)]
    return [tuple(range(a, b)) for a, b in zip(bounds, bounds[1:])]


def count_windows(candles, settings) -> int:
    """The number of walk-forward windows of `candles` (`core.optimize.windows.windows_for`).

    Raises:
        UsageError: the data is shorter than one window (the walk-forward's own message).
    """
    from core.data.timeframes import timeframe_ms
    from core.optimize.windows import windows_for

    return len(windows_for(candles, timeframe_ms(candles.timeframe), settings.is_days, settings.oos_days,
                           settings.step_days))


def _params_key(params: dict) -> tuple:
    return tuple(params.items())


def _runner_class():
    from core.optimize.walk_forward import _Runner

    class BatchRunner(_Runner):
        """`_Runner` whose window backtests can come from `cache` ((params, start, end) -> _OOS),
        counted as evaluations when used, exactly like the backtest they stand for."""

        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            self.cache: dict[tuple, Any] = {}

        def backtest_window(self, params: dict, start: int, end: int):
            hit = self.cache.get((_params_key(params), start, end))
            if hit is None:
                return super().backtest_window(params, start, end)
            self.evaluations += 1
            return hit

    return BatchRunner


def _runner(strategy: str, candles, setup, settings, funding, with_sample: bool):
    """(runner, sample) as `walk_forward` builds them (same checks and messages)."""
    from core.data.timeframes import timeframe_ms
    from core.optimize.evaluators import STRATEGIES, evaluator_for

    try:                                             # funding rates, or another side series (open interest)
        from core.optimize.evaluators import needs_side_series as needs_side
    except ImportError:                              # pragma: no cover -- before side series other than funding
        from core.optimize.evaluators import needs_funding as needs_side
    from core.optimize.search import lhs_sample
    from core.optimize.walk_forward import build_space
    from core.optimize.windows import windows_for

    if strategy not in STRATEGIES:
        raise UsageError(f"walk-forward: unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    space = build_space(setup.grid, setup.base_params, strategy)
    evaluator = evaluator_for(strategy, setup.account, funding if needs_side(strategy) else None)
    wins = windows_for(candles, timeframe_ms(candles.timeframe), settings.is_days, settings.oos_days,
                       settings.step_days)
    run = _runner_class()(candles, strategy, space, setup.account, wins, evaluator)
    sample: list[int] = []
    if with_sample:
        sample = lhs_sample(space, settings.max_points, settings.seed, run.valid)
        if not sample:
            raise UsageError(f"walk-forward: no valid combo in the grid of {strategy} (every combo breaks a rule "
                             "of its parameter model, e.g. envelope_start + (num_levels - 1) * envelope_step < 1 "
                             "or fast_ema < slow_ema)")
    return run, sample


def pack_oos(d: dict) -> dict:
    """{combo: _OOS} as a few arrays (pickles and ships as a handful of buffers, not one object per
    combo); `unpack_oos` gives back equal _OOS values (row views of the arrays)."""
    flats = list(d)
    vals = [d[f] for f in flats]
    rets = [v.returns for v in vals]
    uniform = len({r.shape for r in rets}) <= 1
    cyc = [v.cycle_returns for v in vals]
    return {"flats": np.array(flats, dtype=np.int64),
            "returns": (np.vstack(rets) if rets else np.empty((0, 0))) if uniform else rets,
            "ret": np.array([v.ret for v in vals], dtype=np.float64),
            "sharpe": np.array([v.sharpe for v in vals], dtype=np.float64),
            "cycles": np.array([v.cycles for v in vals], dtype=np.int64),
            "cycle_returns": np.concatenate(cyc) if cyc else np.empty(0),
            "cycle_ends": np.cumsum([c.size for c in cyc], dtype=np.int64)}


def unpack_oos(p: dict) -> dict:
    """The {combo: _OOS} of `pack_oos`."""
    from core.optimize.walk_forward import _OOS

    out = {}
    start = 0
    for i, f in enumerate(p["flats"].tolist()):
        end = int(p["cycle_ends"][i])
        out[f] = _OOS(p["returns"][i], float(p["ret"][i]), float(p["sharpe"][i]), int(p["cycles"][i]),
                      p["cycle_returns"][start:end])
        start = end
    return out


def _check(should_stop: Callable[[], bool] | None, what: str) -> None:
    if should_stop is not None and should_stop():
        raise BatchCancelled(f"cancelled before {what}")


def search_batch(strategy: str, candles, setup, settings, funding, windows: Sequence[int],
                 should_stop: Callable[[], bool] | None = None) -> dict:
    """Phase "search" on `windows`: {"windows": {w: (visited, best, {combo: IS Sharpe}, {combo: IS return})},
    "evaluations": IS scores run}."""
    from core.optimize.search import two_pass_search

    run, sample = _runner(strategy, candles, setup, settings, funding, True)
    out = {}
    for w in windows:
        _check(should_stop, f"the search of window {w + 1}")
        res = two_pass_search(run.space, lambda fl, w=w: run.is_scores(w, fl), sample, run.valid)
        out[w] = ([int(f) for f in res.visited], int(res.best), dict(run.is_sharpe[w]), dict(run.is_return[w]))
    return {"windows": out, "evaluations": run.evaluations}


def dense_batch(strategy: str, candles, setup, settings, funding, windows: Sequence[int], universe: Sequence[int],
                searched: dict, should_stop: Callable[[], bool] | None = None) -> dict:
    """Phase "dense" on `windows` (module docstring). `searched`: the search results of these
    windows ({w: (visited, best, is_sharpe, is_return)}). Returns {"windows": {w: {"is_sharpe",
    "is_return" (the combos scored here), "oos" (`pack_oos` of {combo: _OOS}), "chosen_is"
    (daily returns), "cache" (`pack_oos` of the IS backtests prepared for the DSR)}}, "evaluations": backtests counted as the sequential run counts them}."""
    from core.optimize.walk_forward import _CORR_TRIALS, _Runner

    run, _ = _runner(strategy, candles, setup, settings, funding, False)
    uni = list(universe)
    out = {}
    for w in windows:
        _check(should_stop, f"the dense evaluation of window {w + 1}")
        _visited, best, iss, isr = searched[w]
        run.is_sharpe[w].update(iss)
        run.is_return[w].update(isr)
        missing = [f for f in uni if f not in run.is_sharpe[w]]
        if missing:
            run.is_scores(w, missing)
        run.oos_eval(w, uni)
        win = run.wins[w]
        cache: dict[int, Any] = {}
        finite = any(math.isfinite(run.is_sharpe[w][f]) for f in uni)
        if 2 <= len(uni) <= _CORR_TRIALS and finite:          # _window_dsr backtests every universe combo
            before = run.evaluations
            for f in uni:
                cache[f] = _Runner.backtest_window(run, run.params(f), win.is_start, win.is_end)
            run.evaluations = before + 1                           # only the chosen combo's counts now
            chosen = cache[best].returns
        else:
            chosen = run.backtest_window(run.params(best), win.is_start, win.is_end).returns
        out[w] = {"is_sharpe": {f: run.is_sharpe[w][f] for f in missing},
                  "is_return": {f: run.is_return[w][f] for f in missing},
                  "oos": pack_oos(run.oos[w]), "chosen_is": chosen, "cache": pack_oos(cache)}
    return {"windows": out, "evaluations": run.evaluations}


def final_run(strategy: str, candles, setup, settings, funding, universe: Sequence[int], searched: dict,
              search_evaluations: int, dense_parts: Sequence[dict]):
    """Phase "final": the `WalkForwardResult` of the run from its search results ({w: ...} of
    every window), their evaluation count and every dense part (module docstring)."""
    from core.optimize.walk_forward import _aggregate

    run, _ = _runner(strategy, candles, setup, settings, funding, False)
    n = len(run.wins)
    dense: dict[int, dict] = {}
    evaluations = int(search_evaluations)
    for part in dense_parts:
        dense.update(part["windows"])
        evaluations += int(part["evaluations"])
    if sorted(searched) != list(range(n)) or sorted(dense) != list(range(n)):
        raise RadarError(f"walk-forward {strategy}: batch results cover windows {sorted(dense)} of {n}")
    for w in range(n):
        visited, best, iss, isr = searched[w]
        d = dense[w]
        run.is_sharpe[w].update(iss)
        run.is_sharpe[w].update(d["is_sharpe"])
        run.is_return[w].update(isr)
        run.is_return[w].update(d["is_return"])
        run.oos[w].update(unpack_oos(d["oos"]))
        run.chosen.append(int(best))
        run.searched.append(len(visited))
        run.chosen_is_returns.append(d["chosen_is"])
        win = run.wins[w]
        for f, o in unpack_oos(d["cache"]).items():
            run.cache[(_params_key(run.params(f)), win.is_start, win.is_end)] = o
    run.universe = list(universe)
    run.in_universe = set(run.universe)
    run.evaluations = evaluations
    return _aggregate(run, n, settings, setup.grading, True, lambda _f: None)


def universe_of(searched: dict) -> list[int]:
    """The sorted union of every window's visited combos (the sequential run's final universe)."""
    return sorted({f for visited, *_ in searched.values() for f in visited})


def run_task(spec, phase: str, data: tuple, setup, settings, windows: Sequence[int], extra: dict | None,
             parts: Sequence[dict] = (), should_stop: Callable[[], bool] | None = None) -> tuple[Any, float]:
    """The body of every campaign task: (its result, seconds). `data` = (candles, funding or None);
    `extra`: "dense": {"universe", "searched"}; "final": {"universe", "searched", "search_evaluations"},
    `parts` the run's dense results.

    Raises:
        UsageError / RadarError: what the walk-forward raises; BatchCancelled.
    """
    candles, funding = data
    t0 = time.perf_counter()
    if phase == SEARCH:
        out = search_batch(spec.strategy, candles, setup, settings, funding, windows, should_stop)
    elif phase == DENSE:
        out = dense_batch(spec.strategy, candles, setup, settings, funding, windows, extra["universe"],
                          extra["searched"], should_stop)
    elif phase == FINAL:
        out = final_run(spec.strategy, candles, setup, settings, funding, extra["universe"], extra["searched"],
                        extra["search_evaluations"], parts)
    else:
        raise UsageError(f"campaign task: unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
    return out, time.perf_counter() - t0


class RunSchedule:
    """The task graph of a campaign, driven by a back-end: `initial()` tasks, then `done(task,
    result)` -> the tasks that became ready. Results of "search" tasks are kept here (small);
    "dense" results are kept as the back-end's handles (`dense_handles`: the results
    themselves locally, object references on Ray) for the run's "final" task.

    Args:
        runs: the campaign's `RunSpec`s. n_windows: per run index, its window count.
        window_batch: windows per task.
        on_progress: (run index, fraction 0..1 of the run, phase, dense windows done, windows).
    """

    #: shares of a run's progress: search, dense, final
    SHARES = (0.1, 0.8, 0.1)

    def __init__(self, runs: Sequence, n_windows: dict[int, int], window_batch: int = DEFAULT_WINDOW_BATCH,
                 on_progress: Callable[[int, float, str, int, int], None] | None = None) -> None:
        self.runs = {r.index: r for r in runs}
        self.n = dict(n_windows)
        self.batches = {i: batches(self.n[i], window_batch) for i in self.runs}
        self.searched: dict[int, dict] = {i: {} for i in self.runs}
        self.search_evals = {i: 0 for i in self.runs}
        self.universe: dict[int, list[int]] = {}
        self.dense_handles: dict[int, list] = {i: [] for i in self.runs}
        self.dense_done = {i: 0 for i in self.runs}
        self.results: dict[int, Any] = {}
        self.seconds = {i: 0.0 for i in self.runs}
        self.on_progress = on_progress

    def initial(self) -> list[Task]:
        """Every "search" task, run by run in plan order."""
        return [Task(i, SEARCH, b) for i in self.runs for b in self.batches[i]]

    def extra(self, task: Task) -> dict | None:
        """The `extra` argument of `run_task` for `task`."""
        i = task.run
        if task.phase == DENSE:
            return {"universe": self.universe[i], "searched": {w: self.searched[i][w] for w in task.windows}}
        if task.phase == FINAL:
            return {"universe": self.universe[i], "searched": self.searched[i],
                    "search_evaluations": self.search_evals[i]}
        return None

    def _progress(self, i: int, phase: str) -> None:
        if self.on_progress is None:
            return
        n = self.n[i]
        s, d, _f = self.SHARES
        frac = s * len(self.searched[i]) / n + d * self.dense_done[i] / n
        if i in self.results:
            frac = 1.0
        self.on_progress(i, min(1.0, frac), phase, self.dense_done[i], n)

    def done(self, task: Task, result: Any, seconds: float, handle: Any = None) -> list[Task]:
        """Record a finished task (`result`: its value for "search" and "final"; `handle`: what
        the final task gets for a "dense" one, default the result); returns the tasks now ready."""
        i = task.run
        self.seconds[i] += float(seconds)
        if task.phase == SEARCH:
            self.searched[i].update(result["windows"])
            self.search_evals[i] += int(result["evaluations"])
            self._progress(i, "search")
            if len(self.searched[i]) == self.n[i]:
                self.universe[i] = universe_of(self.searched[i])
                return [Task(i, DENSE, b) for b in self.batches[i]]
            return []
        if task.phase == DENSE:
            self.dense_handles[i].append(result if handle is None else handle)
            self.dense_done[i] += len(task.windows)
            self._progress(i, "window")
            if self.dense_done[i] == self.n[i]:
                return [Task(i, FINAL)]
            return []
        self.results[i] = result
        self.dense_handles[i] = []
        self._progress(i, "statistics")
        return []

    @property
    def finished(self) -> bool:
        """True when every run has its final result."""
        return len(self.results) == len(self.runs)
