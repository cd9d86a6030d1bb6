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
* Tasks: one per run (strategy, symbol, timeframe), 1 CPU each, `max_retries=0` (a task
  whose worker dies is an error naming the run, never a silent retry or a missing row).
* Data: the candles of each series are `ray.put` ONCE and every task on that series gets
  the reference (so a series crosses to a node once, whatever the number of strategies);
  each strategy's setup (grid, params, account, grading) likewise. A task copies the
  read-only arrays it receives, so the kernels see the same writable float64 arrays as
  in the local pool.
* Progress: tasks report per window to a small actor (0 CPU); the driver drains it while
  waiting (`ray.wait`, 0.25 s), so progress streams to the CLI bar / the job's progress.
* Failure: an address where nothing listens is refused after a 5 s TCP probe (Ray's own
  connect would retry for minutes); Ray missing → UsageError naming the extra; Ray that cannot start or be reached
  → CampaignError naming the address; a task error or dead worker → CampaignError naming
  the run; the other tasks are cancelled. Nothing is stored then (the caller stores only
  complete campaigns).
"""

from __future__ import annotations

import logging
import os
import socket
import time
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
    execute_run,
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


def _task(spec: RunSpec, data: tuple, setup: StrategySetup, settings, sink) -> tuple[int, Any, float]:
    """The body of a Ray task (module-level so workers import it by name)."""
    sink.put.remote(("start", spec.index, 0.0, "started", 0, 0))

    def report(frac: float, phase: str, w: int, nw: int) -> None:
        sink.put.remote(("progress", spec.index, frac, phase, w, nw))

    import numpy as np

    candles, funding = data
    if funding is not None:
        funding = tuple(np.array(a) for a in funding)
    res, secs = execute_run(spec, _writable(candles), setup, settings, report, None, funding)
    return spec.index, res, secs


class _Sink:
    """Progress events of the tasks, drained by the driver (a Ray actor, 0 CPU)."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def put(self, ev: tuple) -> None:
        self.events.append(ev)

    def drain(self) -> list[tuple]:
        out, self.events = self.events, []
        return out


def connect(address: str | None, init_kwargs: dict | None = None) -> tuple[Any, bool, str]:
    """(ray, started_here, description): Ray initialised for this process.

    Raises:
        UsageError: Ray is not installed.
        CampaignError: Ray cannot start or the cluster cannot be reached.
    """
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
               ) -> tuple[list[tuple[Any, float]], str]:
    """Run `runs` as Ray tasks; returns ([(WalkForwardResult, task seconds)] in plan order, description).

    `connection`: what `connect` returned when the caller connected already (then `address`
    and `init_kwargs` are not used); a Ray started by `connect` is shut down at the end either way.

    Raises:
        UsageError, CampaignError, CampaignCancelled: see the module docstring.
    """
    ray, started, where = connection if connection is not None else connect(address, init_kwargs)
    out: list[tuple[Any, float] | None] = [None] * len(runs)
    refs: dict[Any, RunSpec] = {}
    try:
        sink = ray.remote(num_cpus=0)(_Sink).remote()
        task = ray.remote(num_cpus=1, max_retries=0)(_task)
        data_refs = {key: ray.put(d) for key, d in candles.items()}                # once per series
        setup_refs = {s: ray.put(v) for s, v in setups.items()}                    # once per strategy
        for spec in runs:
            refs[task.remote(spec, data_refs[spec.series_key], setup_refs[spec.strategy], settings, sink)] = spec
        pending = list(refs)

        def drain() -> None:
            for ev in ray.get(sink.drain.remote()):
                book.update(*ev[1:])

        last_drain = 0.0
        while pending:
            if should_stop is not None and should_stop():
                raise CampaignCancelled("campaign cancelled: nothing stored")
            ready, pending = ray.wait(pending, num_returns=1, timeout=0.25)
            if time.monotonic() - last_drain >= 0.25 or not pending:
                drain()
                last_drain = time.monotonic()
            for ref in ready:
                spec = refs[ref]
                try:
                    idx, res, secs = ray.get(ref)
                except Exception as exc:
                    raise _ray_error(ray, spec, exc) from exc
                out[idx] = (res, secs)
                book.done(idx)
        return out, where                                                  # type: ignore[return-value]
    except BaseException:
        for ref, spec in refs.items():
            if out[spec.index] is None:
                try:
                    ray.cancel(ref, force=True)
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
