"""The Ray back-end of research campaigns (`core.optimize.campaign`); Ray is imported only here, lazily.

    pip install 'radar[ray]'
    radar optimize --strategy envelope_dca,envelope_dca_short --symbols BTC/USDT,ETH/USDT --timeframe 1h --ray auto

* Connecting: `ray.init(address=...)` unless Ray is already initialised in this process
  (then that Ray is used and left running). "auto" = RAY_ADDRESS, else the cluster `ray start`
  runs on this machine, else a new local Ray; any other value is a cluster address
  ("ray://head:10001" through the Ray client, or "head:6379" from a node of the cluster).
  A Ray this call started or connected to is shut down (disconnected) at the end. A Ray
  started here runs its workers at this process's niceness, like the local pool (Ray's own
  default is 15); `RAY_worker_niceness` in the environment overrides that.
  Ray's daemons die with the THREAD that started them (Linux PR_SET_PDEATHSIG): call
  `connect` from a thread that outlives the campaign (the campaign does).
* Tasks: one per (strategy, symbol, timeframe, window batch) and phase
  (`core.optimize.campaign_batches`: search, dense, final), 1 CPU each, `max_retries=0` (a
  task whose worker dies is an error naming the run, never a silent retry or a missing row).
  Each task has two returns, its result and its seconds: the driver waits on the seconds and
  fetches a result only when it needs it (search: the visited combos; final: the run's
  result); a dense part stays in the object store and goes to the run's final task by
  reference.
* Data: the candles of each series are `ray.put` ONCE and every task on that series gets
  the reference (so a series crosses to a node once, whatever the number of strategies);
  each strategy's setup (grid, params, account, grading) likewise. A task copies the
  read-only arrays it receives, so the kernels see the same writable float64 arrays as
  in the local pool.
* Progress: per finished task (the run, its windows done), reported by the driver while it
  waits (`ray.wait`, 0.25 s) to the CLI bar / the job's progress. No actor: an actor would
  need one more worker process, which on 2 CPUs costs the tasks a second of start-up.
* Start-up (measured on the 2-core machine, `benchmarks/bench_optimize.py --campaign`): a
  local `ray.init` takes about 5–8 s, most of it the raylet waiting for its two Python agents
  (dashboard / metrics and runtime-env agents) to import; the campaign loads its candles
  meanwhile. Usage-stats reporting is switched off for a Ray started here
  (`RAY_USAGE_STATS_ENABLED=0` unless set): Radar never reaches out to the internet.
* Failure: an address where nothing listens is refused after a 5 s TCP probe (Ray's own
  connect would retry for minutes); Ray missing → UsageError naming the extra; Ray that cannot start or be reached
  → CampaignError naming the address; a task error or dead worker → CampaignError naming
  the run; the other tasks are cancelled. Nothing is stored then (the caller stores only
  complete campaigns).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from core.errors import UsageError
from core.optimize.campaign import (
    CampaignCancelled,
    CampaignError,
    ProgressBook,
    RunSpec,
    StrategySetup,
    _run_error,
)

#: The raylet's environment variable for the niceness of the workers it starts.
_NICENESS_ENV = "RAY_worker_niceness"


def import_ray():
    """The `ray` module, or UsageError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise UsageError(f"--ray needs Ray: pip install 'radar[ray]' ({exc})") from None
    return ray


def _writable(candles):
    import numpy as np

    from core.model.candles import Candles

    return Candles(candles.symbol, candles.market, candles.timeframe, np.array(candles.ts), np.array(candles.open),
                   np.array(candles.high), np.array(candles.low), np.array(candles.close), np.array(candles.volume))


def _task(spec: RunSpec, phase: str, data: tuple, setup: StrategySetup, settings, windows: tuple, extra,
          *parts) -> tuple[Any, float]:
    """The body of a Ray task (module-level so workers import it by name): `run_task` on writable
    copies of the candles (and funding). Two returns: the result, and the seconds it took."""
    import numpy as np

    from core.optimize.campaign_batches import run_task

    candles, funding = data
    if funding is not None:
        funding = tuple(np.array(a) for a in funding)
    return run_task(spec, phase, (_writable(candles), funding), setup, settings, windows, extra, parts)


def connect(address: str | None, init_kwargs: dict | None = None) -> tuple[Any, bool, str]:
    """(ray, started_here, description): Ray initialised for this process; the one `prestart`
    is starting when there is one (waited for; started_here False).

    Raises:
        UsageError: Ray is not installed.
        CampaignError: Ray cannot start or the cluster cannot be reached.
    """
    pre = _PRESTART.get("future")
    if pre is not None:                                   # `prestart` is connecting: wait for it, never start twice
        ray, _started, desc = pre.result()
        return ray, False, desc
    return _connect_now(address, init_kwargs)


def _connect_now(address: str | None, init_kwargs: dict | None) -> tuple[Any, bool, str]:
    ray = import_ray()
    if ray.is_initialized():
        return ray, False, "ray (already initialised)"
    kw = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    kw.update(init_kwargs or {})
    addr = None if address in (None, "", "auto") else address
    probe = addr or os.environ.get("RAY_ADDRESS") or None
    if probe and probe != "auto" and probe != "local":
        _probe(probe, address)
    # A Ray started here runs its workers at the local pool's priority (Ray's default is nice 15:
    # on a busy machine its tasks would starve behind everything else). RAY_worker_niceness in
    # the environment wins; a cluster started with `ray start` keeps its own setting.
    saved = os.environ.get(_NICENESS_ENV)
    if saved is None:
        os.environ[_NICENESS_ENV] = str(os.nice(0))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")          # no reporting to the internet
    try:
        ctx = ray.init(address=addr, **kw)
    except Exception as exc:
        where = "a local Ray (or the one of RAY_ADDRESS / `ray start` on this machine)" if addr is None \
            else f"the Ray cluster at {addr}"
        raise CampaignError(f"--ray {address or 'auto'}: cannot start or reach {where}: {type(exc).__name__}: {exc}; "
                            "nothing was run") from exc
    finally:
        if saved is None:
            os.environ.pop(_NICENESS_ENV, None)
    desc = getattr(ctx, "address_info", {}).get("address") or getattr(ctx, "gcs_address", None) or addr or "local"
    return ray, True, f"ray {desc} ({int(ray.cluster_resources().get('CPU', 0))} CPUs)"


#: The connection `prestart` is making: {"future", "release", "thread"} (empty when none).
_PRESTART: dict[str, Any] = {}


def prestart(address: str | None, init_kwargs: dict | None = None) -> None:
    """Start `connect(address, init_kwargs)` now, in a holder thread that keeps Ray up (its daemons
    die with the thread that started them) until `release_prestarted`; meanwhile the caller
    prepares the campaign (the CLI: options, config, data files, the job manager), and a later
    `connect` in this process waits for this one (then it is not "started" by that call: the
    campaign leaves it running and `release_prestarted` shuts it down). Its errors surface from
    that `connect`. A no-op when a prestart is already pending.
    """
    if _PRESTART:
        return
    fut: cf.Future = cf.Future()
    release = threading.Event()

    def hold() -> None:
        try:
            conn = _connect_now(address, init_kwargs)
        except BaseException as exc:                               # noqa: BLE001 -- handed to the waiting connect
            fut.set_exception(exc)
            return
        fut.set_result(conn)
        release.wait()
        if conn[1]:
            conn[0].shutdown()

    thread = threading.Thread(target=hold, name="radar-ray-holder", daemon=True)
    _PRESTART.update(future=fut, release=release, thread=thread)
    thread.start()


def release_prestarted(timeout_s: float = 60.0) -> None:
    """Shut down (disconnect) the Ray of `prestart`, if any, and wait for its holder thread."""
    pre = dict(_PRESTART)
    _PRESTART.clear()
    if pre:
        pre["release"].set()
        pre["thread"].join(timeout_s)


def _probe(addr: str, given: str | None, timeout_s: float = 5.0) -> None:
    """Fail fast when nothing listens at `addr` ("host:port" or "ray://host:port"): Ray's own
    connect retries for minutes before it gives up."""
    hostport = addr.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return                                                             # let ray.init judge it
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise CampaignError(f"--ray {given or 'auto'}: cannot reach the Ray cluster at {addr} "
                            f"({type(exc).__name__}: {exc}); nothing was run") from None


def run_on_ray(runs: list[RunSpec], candles: dict, setups: dict[str, StrategySetup], settings, book: ProgressBook,
               *, should_stop: Callable[[], bool] | None = None, address: str | None = "auto",
               init_kwargs: dict | None = None, connection: tuple | None = None,
               n_windows: dict[int, int] | None = None, window_batch: int | None = None,
               ) -> tuple[list[tuple[Any, float]], str]:
    """Run `runs` as Ray tasks (window batches: `core.optimize.campaign_batches`); returns
    ([(WalkForwardResult, task seconds)] in plan order, description).

    `connection`: what `connect` returned when the caller connected already (then `address`
    and `init_kwargs` are not used); a Ray started by `connect` is shut down at the end either way.
    `n_windows`: {run index: windows} (default: counted here).

    Raises:
        UsageError, CampaignError, CampaignCancelled: see the module docstring.
    """
    from core.optimize.campaign import count_all_windows
    from core.optimize.campaign_batches import DEFAULT_WINDOW_BATCH, DENSE, FINAL, RunSchedule

    ray, started, where = connection if connection is not None else connect(address, init_kwargs)
    refs: dict[Any, tuple] = {}                                    # seconds ref -> (task, result ref)
    try:
        if n_windows is None:
            n_windows = count_all_windows(runs, candles, settings)
        sched = RunSchedule(runs, n_windows, window_batch or DEFAULT_WINDOW_BATCH, on_progress=book.update)
        task = ray.remote(num_cpus=1, max_retries=0, num_returns=2)(_task)
        data_refs = {key: ray.put(d) for key, d in candles.items()}                # once per series
        setup_refs = {s: ray.put(v) for s, v in setups.items()}                    # once per strategy
        begun: set[int] = set()

        def submit(t) -> None:
            spec = runs[t.run]
            parts = sched.dense_handles[t.run] if t.phase == FINAL else []
            out_ref, secs_ref = task.remote(spec, t.phase, data_refs[spec.series_key], setup_refs[spec.strategy],
                                            settings, t.windows, sched.extra(t), *parts)
            refs[secs_ref] = (t, out_ref)
            if t.run not in begun:
                begun.add(t.run)
                book.update(t.run, 0.0, "started")

        for t in sched.initial():
            submit(t)
        while refs:
            if should_stop is not None and should_stop():
                raise CampaignCancelled("campaign cancelled: nothing stored")
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=0.25, fetch_local=False)
            if ready:                                              # every task finished by now, not just one
                ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0, fetch_local=False)
            for secs_ref in sorted(ready, key=lambda r: (refs[r][0].run, refs[r][0].windows)):
                t, out_ref = refs.pop(secs_ref)
                spec = runs[t.run]
                try:
                    secs = ray.get(secs_ref)
                    # a dense part stays in the object store: the run's final task gets it by reference
                    out = None if t.phase == DENSE else ray.get(out_ref)
                except Exception as exc:
                    raise _ray_error(ray, spec, exc) from exc
                for nt in sched.done(t, out, secs, handle=out_ref if t.phase == DENSE else None):
                    submit(nt)
                if t.phase == FINAL:
                    book.done(t.run)
        return [(sched.results[s.index], sched.seconds[s.index]) for s in runs], where
    except BaseException:
        for _t, out_ref in list(refs.values()):
            try:
                ray.cancel(out_ref, force=True)
            except Exception:                                          # noqa: BLE001, S110 -- already finished or gone
                pass
        raise
    finally:
        if started:
            ray.shutdown()


def _ray_error(ray, spec: RunSpec, exc: BaseException) -> Exception:
    crashed = tuple(getattr(ray.exceptions, n) for n in ("WorkerCrashedError", "NodeDiedError",
                                                         "RaySystemError", "ObjectLostError")
                    if hasattr(ray.exceptions, n))
    if isinstance(exc, crashed):
        return CampaignError(f"campaign run {spec.name}: its Ray worker died ({type(exc).__name__}: {exc}); "
                             "nothing of the campaign was stored", [spec.name])
    cause = getattr(exc, "cause", None)
    if isinstance(exc, ray.exceptions.RayTaskError) and cause is not None:
        return _run_error(spec, cause)
    return _run_error(spec, exc)
