"""Research campaigns: walk-forward runs over strategies × symbols × timeframes, ranked by grade.

    plan = CampaignPlan.build(["envelope_dca", "envelope_dca_short"], series, ["1h"], settings=...)
    report = run_campaign(plan, db_path=db, backend="local")          # or backend="ray", ray_address="auto"
    report.to_json()                                                   # every run ranked by grade

A campaign is a list of runs, one per (strategy, symbol, timeframe), each the plain
`core.optimize.walk_forward.walk_forward` of one strategy on one candle series with the
strategy's grid (`param_grids.yaml`), configured params, the account of `risk.yaml` and the
grading of the config folder: exactly what `radar optimize --strategy S --symbols X` runs.

Unit of work: ONE TASK PER (strategy, symbol, timeframe, window batch)
(`core.optimize.campaign_batches`): each run's windows are cut into batches of a few windows
(`window_batch`, default 4); a "search" task per batch, then (once the run's searches are in
and its universe of combos is known) a "dense" task per batch, then one "final" task that
aggregates the run with the walk-forward's own code. The result equals `walk_forward` on the
run to the last bit (tested), whatever the batch size, back-end or finishing order; small
tasks keep both CPUs busy to the end instead of leaving a long run alone at the tail.

Back-ends (same tasks, same inputs, so the same numbers to the last bit):

* "local" (default): a pool of `workers` processes (multiprocessing "spawn"; default: the
  CPU count, at most the number of tasks); every worker gets the candles and setups once,
  at its start, and each task only its windows. In a daemonic process (e.g. a JobManager
  worker process), which may not have children, the runs execute one after another
  in-process instead.
* "ray": `core.optimize.ray_backend` — Ray imported only then (`pip install 'radar[ray]'`);
  the candles of each series are put into Ray's object store once and passed by
  reference to every task on that series; a run's dense parts stay in the object store
  and go to its final task by reference.

Candles are loaded once per (symbol, market, timeframe, file) in the calling process, the
progress (per finished task: the run, its windows done) streams back to `progress`, and the
results are stored in
`optimization_results` (`core.optimize.results_store.save_result`, the same table as
`radar optimize`) in plan order, AFTER every run has finished.

Fail closed: a back-end that cannot start, a task that raises or a worker that dies raises
`CampaignError` naming the run(s) and NOTHING of the campaign is stored or reported; a
cancel (`should_stop`) raises `CampaignCancelled`, also storing nothing.

Ranking (`CampaignReport.ranking`): grade A → F, then score (descending), then OOS Sharpe
(descending), then plan order.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import copyreg
import math
import multiprocessing
import os
import queue
import threading
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import RadarError, UsageError

#: Back-ends of `run_campaign`.
BACKENDS = ("local", "ray")

#: Grades best first (the ranking's first key).
_GRADE_ORDER = {g: i for i, g in enumerate("ABCDF")}

#: progress(fraction of the campaign 0..1, phase, runs finished, runs in all, detail)
CampaignProgress = Callable[[float, str, int, int, str], None]


def _mappingproxy(d: dict) -> types.MappingProxyType:
    return types.MappingProxyType(d)


# `GradeResult.sub_scores` is a read-only mappingproxy, which pickle refuses: results cross
# process boundaries (pool workers, Ray workers) as a copy that unpickles to a mappingproxy again.
copyreg.pickle(types.MappingProxyType, lambda m: (_mappingproxy, (dict(m),)))


class CampaignError(RadarError):
    """A campaign failed (back-end or a run); nothing of it was stored. `runs` names the failed run(s)."""

    def __init__(self, message: str, runs: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.runs = list(runs)


class CampaignCancelled(RadarError):
    """`should_stop` asked the campaign to stop; nothing of it was stored."""


@dataclass(frozen=True)
class RunSpec:
    """One run of a campaign: a strategy on one series.

    Attributes:
        index: position in the plan (0-based).
        strategy, symbol, market, timeframe: what is walked forward.
        file: freqtrade candle file, or None (the candle store of the database).
    """

    index: int
    strategy: str
    symbol: str
    market: str
    timeframe: str
    file: str | None = None
    data_timeframe: str | None = None

    @property
    def name(self) -> str:
        """e.g. "envelope_dca BTC/USDT 1h" (how errors and progress name the run)."""
        return f"{self.strategy} {self.symbol} {self.timeframe}"

    @property
    def series_key(self) -> tuple:
        """The candle series it reads: runs with the same key share one copy of the candles."""
        return (self.symbol, self.market, self.timeframe, self.file, self.data_timeframe)


@dataclass(frozen=True)
class CampaignPlan:
    """Strategies × series × timeframes, and the walk-forward settings shared by every run.

    Attributes:
        strategies, timeframes: in the order given.
        series: per timeframe, the series [{"symbol", "market", "file"}] (a file holds one timeframe).
        start_ms, end_ms: candle range [start, end), ms UTC (None: unbounded).
        is_days .. n_boot: `WalkForwardSettings` of every run.
        config_dir: the config folder (grids, params, account, grading).
    """

    strategies: tuple[str, ...]
    timeframes: tuple[str, ...]
    series: dict[str, tuple[dict, ...]]
    start_ms: int | None = None
    end_ms: int | None = None
    is_days: int = 180
    oos_days: int = 60
    step_days: int = 60
    max_points: int = 500
    seed: int = 0
    n_boot: int = 1000
    config_dir: str = ""

    @classmethod
    def build(cls, strategies: Sequence[str], series: Sequence[dict] | dict[str, Sequence[dict]],
              timeframes: Sequence[str], **kw: Any) -> CampaignPlan:
        """A checked plan. `series`: one list for every timeframe, or {timeframe: list}.

        Raises:
            UsageError: no strategy / timeframe / series, a duplicate, a strategy the
                walk-forward does not support, or bad settings.
        """
        from core.jobs.optimize_job import check_strategy
        from core.paths import DEFAULT_CONFIG_DIR

        strategies, timeframes = tuple(strategies), tuple(timeframes)
        if not strategies or not timeframes:
            raise UsageError("campaign: give at least one strategy and one timeframe")
        for what, vals in (("strategy", strategies), ("timeframe", timeframes)):
            if len(set(vals)) != len(vals):
                raise UsageError(f"campaign: a {what} is given twice: {', '.join(vals)}")
        per_tf = dict(series) if isinstance(series, dict) else {tf: list(series) for tf in timeframes}
        rows: dict[str, tuple[dict, ...]] = {}
        for tf in timeframes:
            ss = per_tf.get(tf) or []
            if not ss:
                raise UsageError(f"campaign: no series for timeframe {tf}")
            checked = []
            for s in ss:
                if not s.get("symbol") or s.get("market") not in ("spot", "futures"):
                    raise UsageError(f"campaign: a series needs a symbol and a market (spot or futures), got {s!r}")
                row = {"symbol": s["symbol"], "market": s["market"],
                       "file": None if s.get("file") is None else str(s["file"])}
                if s.get("timeframe") not in (None, tf):                  # finer data, resampled into tf
                    row["timeframe"] = s["timeframe"]
                checked.append(row)
            if len({(s["symbol"], s["market"]) for s in checked}) != len(checked):
                raise UsageError(f"campaign: a symbol is given twice for timeframe {tf}")
            rows[tf] = tuple(checked)
        for strategy in strategies:                 # the walk-forward supports it (funding: perpetuals only)
            check_strategy(strategy, [s for ss in rows.values() for s in ss])
        kw.setdefault("config_dir", str(DEFAULT_CONFIG_DIR))
        kw["config_dir"] = str(kw["config_dir"])
        plan = cls(strategies=strategies, timeframes=timeframes, series=rows, **kw)
        plan.settings()                                           # raises UsageError on bad settings
        if plan.start_ms is not None and plan.end_ms is not None and plan.end_ms <= plan.start_ms:
            raise UsageError(f"campaign: the end of the range ({plan.end_ms}) must be after its start ({plan.start_ms})")
        return plan

    def settings(self):
        """The `WalkForwardSettings` of every run."""
        from core.optimize.walk_forward import WalkForwardSettings

        return WalkForwardSettings(is_days=self.is_days, oos_days=self.oos_days, step_days=self.step_days,
                                   max_points=self.max_points, seed=self.seed, n_boot=self.n_boot)

    def runs(self) -> list[RunSpec]:
        """Every run, in plan order: strategy, then timeframe, then series (as given)."""
        out: list[RunSpec] = []
        for strategy in self.strategies:
            for tf in self.timeframes:
                for s in self.series[tf]:
                    out.append(RunSpec(len(out), strategy, s["symbol"], s["market"], tf, s["file"],
                                       s.get("timeframe")))
        return out

    def to_json(self) -> dict:
        """JSON-able form (the params of a "campaign" job); `from_json` reads it back."""
        return {"strategies": list(self.strategies), "timeframes": list(self.timeframes),
                "series": {tf: [dict(s) for s in ss] for tf, ss in self.series.items()},
                "start_ms": self.start_ms, "end_ms": self.end_ms, "is_days": self.is_days,
                "oos_days": self.oos_days, "step_days": self.step_days, "max_points": self.max_points,
                "seed": self.seed, "n_boot": self.n_boot, "config_dir": self.config_dir}

    @classmethod
    def from_json(cls, d: dict) -> CampaignPlan:
        """The plan of `to_json` (checked again)."""
        kw = {k: d[k] for k in ("start_ms", "end_ms", "is_days", "oos_days", "step_days", "max_points", "seed",
                                "n_boot", "config_dir") if k in d}
        return cls.build(d["strategies"], d["series"], d["timeframes"], **kw)


@dataclass(frozen=True)
class StrategySetup:
    """What a task needs besides the candles: the grid, base params, account and grading."""

    strategy: str
    grid: dict
    base_params: dict
    account: Any
    grading: Any


def strategy_setups(plan: CampaignPlan) -> dict[str, StrategySetup]:
    """One `StrategySetup` per strategy of the plan, from its config folder (as the optimize job).

    Raises:
        ConfigError / UsageError: the config is invalid or has no grid for a strategy.
    """
    from core.config import load_config, param_grid, strategy_params
    from core.engine.assembly import account_from_config
    from core.optimize.grade import load_grading_config

    config_dir = Path(plan.config_dir)
    cfg = load_config(config_dir)
    grading_file = config_dir / "grading.yaml"
    grading = load_grading_config(grading_file if grading_file.is_file() else None)
    account = account_from_config(cfg)
    return {s: StrategySetup(s, param_grid(cfg, s), strategy_params(cfg, s).model_dump(), account, grading)
            for s in plan.strategies}


def load_series(spec: RunSpec, start_ms: int | None, end_ms: int | None, db_path: str | Path | None):
    """The candles of a run's series, as the optimize job loads them: its file or the store, in the
    data's own timeframe (`spec.data_timeframe`, when finer) resampled into `spec.timeframe`.

    Raises:
        DataError: no such data, or no candle in range.
    """
    from core.backtest import loading

    base = spec.data_timeframe or spec.timeframe
    resample = spec.timeframe if base != spec.timeframe else None
    if spec.file is not None:
        return loading.load_from_file(spec.file, spec.symbol, spec.market, base, start_ms, end_ms, resample=resample)
    if db_path is None:
        raise UsageError(f"campaign run {spec.name}: no --data file and no database to read candles from")
    return loading.load_from_store(db_path, spec.symbol, spec.market, base, start_ms, end_ms, resample=resample)


def load_funding(spec: RunSpec, db_path: str | Path | None):
    """(ts, rate) funding history when the run's strategy needs it (`funding`), else None
    (`core.jobs.optimize_job.load_funding`: beside the --data file, or stored).

    Raises:
        UsageError: the strategy needs funding rates and none were found.
    """
    from core.jobs.optimize_job import load_funding as job_funding

    return job_funding({"strategy": spec.strategy}, {"symbol": spec.symbol, "file": spec.file}, Path(db_path or ""))


def execute_run(spec: RunSpec, candles, setup: StrategySetup, settings,
                progress: Callable[[float, str, int, int], None] | None = None,
                should_stop: Callable[[], bool] | None = None, funding=None) -> tuple[Any, float]:
    """One run in one call: `walk_forward` of `setup.strategy` on `candles`; returns (WalkForwardResult,
    seconds). The campaign's back-ends run the same walk-forward as window-batch tasks instead
    (`core.optimize.campaign_batches`), with results equal to this.
    """
    from core.optimize.evaluators import needs_side_series
    from core.optimize.walk_forward import walk_forward

    funding = funding if needs_side_series(setup.strategy) else None     # funding rates, or liquidation's OI
    t0 = time.perf_counter()
    res = walk_forward(candles, setup.strategy, setup.grid, base_params=setup.base_params, account=setup.account,
                       settings=settings, grading=setup.grading, progress=progress, should_stop=should_stop,
                       **({"funding": funding} if funding is not None else {}))
    return res, time.perf_counter() - t0


# -- the local pool -----------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(q, stop, candles: dict, setups: dict) -> None:
    """Pool worker start-up: the progress queue, the stop event, and every series' candles and
    every strategy's setup ONCE per worker (tasks then carry only their windows)."""
    _WORKER.update(q=q, stop=stop, candles=candles, setups=setups)


def _pool_task(spec: RunSpec, phase: str, windows: tuple, settings, extra, parts) -> tuple[Any, float]:
    from core.optimize.campaign_batches import run_task

    w = _WORKER
    w["q"].put(("start", spec.index, os.getpid()))
    return run_task(spec, phase, w["candles"][spec.series_key], w["setups"][spec.strategy], settings, windows,
                    extra, parts, w["stop"].is_set)


class ProgressBook:
    """Per-run fractions → the campaign's fraction (the mean), and the callback."""

    def __init__(self, runs: list[RunSpec], callback: CampaignProgress | None) -> None:
        self.runs, self.cb = runs, callback
        self.frac = [0.0] * len(runs)
        self.finished = 0

    def update(self, index: int, frac: float, phase: str, w: int = 0, nw: int = 0) -> None:
        self.frac[index] = max(self.frac[index], min(1.0, float(frac)))
        if self.cb is not None:
            win = f" window {w}/{nw}" if nw else ""
            self.cb(sum(self.frac) / len(self.frac), phase, self.finished, len(self.runs),
                    f"{self.runs[index].name}{win}")

    def done(self, index: int) -> None:
        self.finished += 1
        self.update(index, 1.0, "run done")


def count_all_windows(runs: list[RunSpec], candles: dict, settings) -> dict[int, int]:
    """{run index: its walk-forward window count}, computed where the candles are (the driver).

    Raises:
        CampaignError: naming the first run (plan order) whose data is shorter than one window.
    """
    from core.optimize.campaign_batches import count_windows

    out = {}
    for spec in runs:
        try:
            out[spec.index] = count_windows(candles[spec.series_key][0], settings)
        except Exception as exc:
            raise _run_error(spec, exc) from exc
    return out


def _schedule(runs: list[RunSpec], n_windows: dict[int, int], window_batch: int, book: ProgressBook):
    from core.optimize.campaign_batches import RunSchedule

    return RunSchedule(runs, n_windows, window_batch, on_progress=book.update)


def _run_local(runs: list[RunSpec], candles: dict, setups: dict, settings, workers: int | None,
               book: ProgressBook, should_stop: Callable[[], bool] | None, n_windows: dict[int, int],
               window_batch: int) -> list[tuple[Any, float]]:
    from core.optimize.campaign_batches import FINAL, run_task

    sched = _schedule(runs, n_windows, window_batch, book)
    n_workers = max(1, min(int(workers or os.cpu_count() or 1), sum(len(b) for b in sched.batches.values())))
    if multiprocessing.current_process().daemon:              # no children allowed: run in-process
        n_workers = 0
    if n_workers == 0:
        todo = collections.deque(sched.initial())
        started: set[int] = set()
        while todo:
            t = todo.popleft()
            spec = runs[t.run]
            if should_stop is not None and should_stop():
                raise CampaignCancelled(f"campaign cancelled before {spec.name}")
            if t.run not in started:
                started.add(t.run)
                book.update(t.run, 0.0, "started")
            try:
                out, secs = run_task(spec, t.phase, candles[spec.series_key], setups[spec.strategy], settings,
                                     t.windows, sched.extra(t), sched.dense_handles[t.run], should_stop)
            except Exception as exc:
                raise _run_error(spec, exc) from exc
            todo.extend(sched.done(t, out, secs))
            if t.phase == FINAL:
                book.done(t.run)
        return [(sched.results[s.index], sched.seconds[s.index]) for s in runs]
    ctx = multiprocessing.get_context("spawn")
    q, stop = ctx.Queue(), ctx.Event()
    started: dict[int, int] = {}
    pool = cf.ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx, initializer=_init_worker,
                                  initargs=(q, stop, candles, setups))
    futs: dict[cf.Future, Any] = {}
    ok = False

    def submit(t) -> None:
        spec = runs[t.run]
        parts = list(sched.dense_handles[t.run]) if t.phase == FINAL else []
        futs[pool.submit(_pool_task, spec, t.phase, t.windows, settings, sched.extra(t), parts)] = t

    def drain() -> None:
        while True:
            try:
                msg = q.get_nowait()
            except queue.Empty:
                return
            if msg[0] == "start" and msg[1] not in started:
                started[msg[1]] = msg[2]
                book.update(msg[1], 0.0, "started")

    try:
        for t in sched.initial():
            submit(t)
        while futs:
            if should_stop is not None and should_stop():
                stop.set()
                raise CampaignCancelled("campaign cancelled: nothing stored")
            done, _ = cf.wait(set(futs), timeout=0.2, return_when=cf.FIRST_COMPLETED)
            drain()
            for fut in sorted(done, key=lambda f: (futs[f].run, futs[f].windows)):
                t = futs.pop(fut)
                spec = runs[t.run]
                exc = fut.exception()
                if isinstance(exc, cf.process.BrokenProcessPool):
                    dying = [runs[i].name for i in sorted(started) if i not in sched.results] or [spec.name]
                    raise CampaignError(f"campaign: a worker process died while running {', '.join(dying)} "
                                        f"({exc}); nothing of the campaign was stored", dying)
                if exc is not None:
                    raise _run_error(spec, exc)
                out, secs = fut.result()
                for nt in sched.done(t, out, secs):
                    submit(nt)
                if t.phase == FINAL:
                    book.done(t.run)
        ok = True
    finally:
        if not ok:
            stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        q.close()
        q.join_thread()
    return [(sched.results[s.index], sched.seconds[s.index]) for s in runs]


def _run_error(spec: RunSpec, exc: BaseException) -> RadarError:
    from core.optimize.campaign_batches import BatchCancelled
    from core.optimize.walk_forward import WalkForwardCancelled

    if isinstance(exc, (WalkForwardCancelled, BatchCancelled)):
        return CampaignCancelled(f"campaign cancelled during {spec.name}: nothing stored")
    text = str(exc) if isinstance(exc, RadarError) else f"{type(exc).__name__}: {exc}"
    return CampaignError(f"campaign run {spec.name} failed: {text}; nothing of the campaign was stored",
                         [spec.name])


# -- the campaign -------------------------------------------------------------------------------
def rank_runs(rows: Sequence[dict], order_key: str | None = None) -> list[dict]:
    """`rows` (walk-forward summaries: "grade", "score", "criteria") best first: grade A → F,
    score ↓, OOS Sharpe ↓ (a missing or non-finite one last), then `order_key` (e.g. "run",
    the plan order; default the given order). The ranking of a campaign report and of the
    console's results view."""
    def key(ir: tuple[int, dict]):
        i, r = ir
        sharpe = (r.get("criteria") or {}).get("oos_sharpe")
        sharpe = -math.inf if sharpe is None or not math.isfinite(sharpe) else sharpe
        return (_GRADE_ORDER.get(r.get("grade"), 99), -float(r.get("score") or 0.0), -sharpe,
                r[order_key] if order_key else i)
    return [r for _, r in sorted(enumerate(rows), key=key)]


@dataclass
class CampaignReport:
    """What `run_campaign` produced: every run's summary, stored, ranked by grade.

    Attributes:
        plan: the plan.
        backend: "local" or "ray"; `where`: the pool size or the Ray address used.
        runs: per run in plan order: the walk-forward summary + "result_id", "strategy",
            "tasks" (its window-batch tasks: search + dense + 1 final), "task_seconds" (the
            time its tasks took in their workers, summed).
        seconds: wall time of the whole campaign (loading, start-up, runs, storing).
        job_id: the job the campaign ran as, if any.
        window_batch: windows per task.
    """

    plan: CampaignPlan
    backend: str
    where: str
    runs: list[dict]
    seconds: float
    job_id: int | None = None
    results: list[Any] = field(default_factory=list, repr=False)
    window_batch: int | None = None

    @property
    def ranking(self) -> list[dict]:
        """The runs best first (`rank_runs`); "rank" added (1-based)."""
        return [{"rank": i + 1, **r} for i, r in enumerate(rank_runs(self.runs, order_key="run"))]

    def to_json(self) -> dict:
        """{"campaign": {...plan, runs, backend, where, window_batch}, "job_id", "seconds", "ranking": [...]}."""
        return {"campaign": {"strategies": list(self.plan.strategies), "timeframes": list(self.plan.timeframes),
                             "symbols": sorted({s["symbol"] for ss in self.plan.series.values() for s in ss}),
                             "runs": len(self.runs), "backend": self.backend, "where": self.where,
                             "window_batch": self.window_batch},
                "job_id": self.job_id, "seconds": round(self.seconds, 3), "ranking": self.ranking}


def _load_all(plan: CampaignPlan, runs: list[RunSpec], db_path, progress) -> dict[tuple, Any]:
    """{series key: (candles, funding (ts, rate) or None)} of every series of the plan, loaded once
    each (funding only where a strategy on that series needs it).

    Raises:
        DataError / UsageError: naming the series (nothing was run).
    """
    from core.optimize.evaluators import needs_side_series

    candles: dict[tuple, Any] = {}
    for spec in runs:
        if spec.series_key not in candles:
            if progress is not None:
                progress(0.0, "loading", 0, len(runs), f"{spec.symbol} {spec.timeframe}")
            try:
                needs = any(needs_side_series(r.strategy) for r in runs if r.series_key == spec.series_key)
                candles[spec.series_key] = (load_series(spec, plan.start_ms, plan.end_ms, db_path),
                                            load_funding(spec, db_path) if needs else None)
            except RadarError as exc:
                raise type(exc)(f"campaign series {spec.symbol} {spec.market} {spec.timeframe} "
                                f"(runs of {', '.join(plan.strategies)}): {exc}; nothing was run") from exc
    return candles


def _load_while_ray_starts(plan: CampaignPlan, runs: list[RunSpec], db_path, progress, address, init_kwargs):
    """(candles, Ray connection): Ray starts in THIS thread (its daemons die with the thread that
    started them: Linux PR_SET_PDEATHSIG) while a helper thread loads the candles."""
    from core.optimize.ray_backend import connect, import_ray

    import_ray()
    loaded: dict[str, Any] = {}

    def load() -> None:
        try:
            loaded["candles"] = _load_all(plan, runs, db_path, None)
        except BaseException as exc:                               # noqa: BLE001 -- re-raised in the calling thread
            loaded["error"] = exc

    if progress is not None:
        progress(0.0, "starting Ray / loading", 0, len(runs), f"{len(runs)} runs")
    loader = threading.Thread(target=load, name="radar-campaign-load", daemon=True)
    loader.start()
    try:
        conn = connect(address, init_kwargs)
    finally:
        loader.join()
    if "error" in loaded:
        if conn[1]:
            conn[0].shutdown()                                     # the Ray this call started
        raise loaded["error"]
    return loaded["candles"], conn


def run_campaign(plan: CampaignPlan, *, db_path: str | Path, backend: str = "local", workers: int | None = None,
                 ray_address: str | None = "auto", ray_init: dict | None = None,
                 progress: CampaignProgress | None = None, should_stop: Callable[[], bool] | None = None,
                 job_id: int | None = None, save: bool = True, git_rev: str | None = None,
                 window_batch: int | None = None) -> CampaignReport:
    """Run every run of `plan` on `backend` and store the results (module docstring).

    Args:
        db_path: the database of the results table (and of the candle store for series without file).
        backend: "local" (a process pool of `workers`, default the CPU count) or "ray".
        ray_address: for "ray": "auto" (RAY_ADDRESS, else the cluster `ray start` runs on this
            machine, else a new local Ray) or a cluster address (e.g. "ray://head:10001");
            ignored when Ray is already initialised in this process.
        ray_init: extra `ray.init` keywords when this call starts Ray (e.g. num_cpus).
        progress: called in this thread with (fraction, phase, runs finished, runs, detail).
        should_stop: polled while waiting; True cancels (CampaignCancelled, nothing stored).
        job_id: stored with each result.
        save: False runs without storing (result_id None).
        git_rev: stored with each result (default: `results_store.git_revision()`).
        window_batch: windows per task (default `campaign_batches.DEFAULT_WINDOW_BATCH`); the
            results do not depend on it.

    Raises:
        UsageError: unknown backend, or Ray not installed.
        CampaignError: Ray cannot start / be reached, or a run failed or its worker died.
        CampaignCancelled: cancelled.
        DataError / ConfigError: data or config problems, before any run starts.
    """
    from core.optimize.results_store import git_revision, save_result
    from core.storage.db import open_sync

    if backend not in BACKENDS:
        raise UsageError(f"campaign: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    t0 = time.perf_counter()
    runs = plan.runs()
    setups = strategy_setups(plan)
    settings = plan.settings()
    book = ProgressBook(runs, progress)
    from core.optimize.campaign_batches import DEFAULT_WINDOW_BATCH, batches

    batch = DEFAULT_WINDOW_BATCH if window_batch is None else int(window_batch)
    if batch < 1:
        raise UsageError(f"campaign: window_batch must be >= 1, got {window_batch!r}")
    if backend == "local":
        candles = _load_all(plan, runs, db_path, progress)
        n_windows = count_all_windows(runs, candles, settings)
        n_tasks = sum(len(batches(k, batch)) for k in n_windows.values())
        n = max(1, min(int(workers or os.cpu_count() or 1), n_tasks))
        where = f"{n} local worker process(es)" if not multiprocessing.current_process().daemon else "in-process"
        done = _run_local(runs, candles, setups, settings, workers, book, should_stop, n_windows, batch)
    else:
        from core.optimize.ray_backend import run_on_ray

        candles, conn_ray = _load_while_ray_starts(plan, runs, db_path, progress, ray_address, ray_init)
        try:
            n_windows = count_all_windows(runs, candles, settings)
        except BaseException:
            if conn_ray[1]:
                conn_ray[0].shutdown()                             # the Ray this call started
            raise
        done, where = run_on_ray(runs, candles, setups, settings, book, should_stop=should_stop,
                                 connection=conn_ray, n_windows=n_windows, window_batch=batch)
    results = [r for r, _ in done]
    ids: list[int | None] = [None] * len(runs)
    if save:
        rev = git_revision() if git_rev is None else git_rev
        conn = open_sync(db_path)
        try:
            for spec, res in zip(runs, results):
                ids[spec.index] = save_result(conn, res, job_id=job_id, git_rev=rev)
        finally:
            conn.close()
    rows = [{**res.summary(), "strategy": spec.strategy, "run": spec.index, "result_id": ids[spec.index],
             "sub_scores": dict(res.grade.sub_scores), "task_seconds": round(secs, 3),
             "tasks": 2 * len(batches(n_windows[spec.index], batch)) + 1}
            for spec, (res, secs) in zip(runs, done)]
    return CampaignReport(plan, backend, where, rows, time.perf_counter() - t0, job_id, results, batch)


# -- as a job -----------------------------------------------------------------------------------
KIND = "campaign"


def campaign_params(plan: CampaignPlan, *, backend: str = "local", workers: int | None = None,
                    ray_address: str | None = "auto", ray_init: dict | None = None) -> dict:
    """The JSON params of a "campaign" job."""
    if backend not in BACKENDS:
        raise UsageError(f"campaign: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return {"plan": plan.to_json(), "backend": backend, "workers": workers, "ray_address": ray_address,
            "ray_init": ray_init}


def run_campaign_job(params: dict, ctx) -> dict:
    """Runner of the "campaign" job kind (`JobManager(runners={"campaign": run_campaign_job})`).

    Progress goes to the job's progress (phase, runs finished / runs as window / n_windows,
    the run's name as detail); a cancel stops the campaign (nothing stored, job cancelled).
    Returns `CampaignReport.to_json()`.
    """
    from core.jobs.model import JobCancelled

    plan = CampaignPlan.from_json(params["plan"])

    def report(frac: float, phase: str, done: int, n: int, detail: str) -> None:
        ctx.progress(frac, phase, done, n, detail)

    try:
        rep = run_campaign(plan, db_path=ctx.db_path, backend=params.get("backend", "local"),
                           workers=params.get("workers"), ray_address=params.get("ray_address", "auto"),
                           ray_init=params.get("ray_init"), progress=report, should_stop=ctx.stop_requested,
                           job_id=ctx.job_id)
    except CampaignCancelled as exc:
        raise JobCancelled(f"job {ctx.job_id}: {exc}") from None
    return rep.to_json()
