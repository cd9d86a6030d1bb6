"""The "campaign" job: a research campaign (`core.optimize.campaign`) run as a background job.

Params (JSON, built by `campaign_job_params` or `core.optimize.campaign.campaign_params`):

    {"plan": CampaignPlan.to_json()          # strategies, timeframes, series per timeframe, range,
                                             # IS/OOS/step days, max_points, seed, n_boot, config_dir
     "backend": "local" | "ray", "workers": null | int, "ray_address": "auto" | "host:port" | null,
     "ray_init": null | {...}}

The runner (`run_campaign_job`) runs every (strategy, symbol, timeframe) walk-forward in window
-batch tasks, streams the progress to the job (phase, runs finished / runs, the run and window
in the detail), stores the results in `optimization_results` (the same table as `radar
optimize`) only when every run finished, and returns `CampaignReport.to_json()`: the ranking of
every run by grade with its criteria and result id (what the console's results view shows).

In the JobManager's own worker process (daemonic: it may not have children) the "local"
back-end runs the tasks one after another in that process; "ray" uses the Ray cluster (a local
one started for the job with "auto").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from core.errors import RadarError, UsageError
from core.paths import DEFAULT_CONFIG_DIR

KIND = "campaign"

#: The keys `check_campaign_params` accepts at the top level of a campaign job's params.
PARAM_KEYS = ("plan", "backend", "workers", "ray_address", "ray_init")


def campaign_job_params(strategies: Sequence[str], symbols: Sequence[str], timeframes: Sequence[str], *,
                        market: str = "spot", start_ms: int | None = None, end_ms: int | None = None,
                        is_days: int = 180, oos_days: int = 60, step_days: int = 60, max_points: int = 500,
                        seed: int = 0, n_boot: int = 1000, backend: str = "local", workers: int | None = None,
                        ray_address: str | None = "auto", config_dir: str | Path = DEFAULT_CONFIG_DIR) -> dict:
    """The params of a campaign over `strategies` × `symbols` × `timeframes`, candles from the
    store of the job's database (what the console's campaign form builds), checked.

    Raises:
        UsageError: no strategy / symbol / timeframe, a duplicate, an unknown strategy or one
            without a grid in the config, a bad timeframe or setting, or a bad back-end.
    """
    series = [{"symbol": str(s).strip(), "market": market, "file": None} for s in symbols if str(s).strip()]
    if not series:
        raise UsageError("campaign: give at least one symbol")
    from core.optimize.campaign import CampaignPlan, campaign_params

    for tf in timeframes:
        _check_timeframe(tf)
    plan = CampaignPlan.build(list(strategies), series, list(timeframes), start_ms=start_ms, end_ms=end_ms,
                              is_days=is_days, oos_days=oos_days, step_days=step_days, max_points=max_points,
                              seed=seed, n_boot=n_boot, config_dir=str(config_dir))
    _check_grids(plan.strategies, plan.config_dir)
    return campaign_params(plan, backend=backend, workers=workers, ray_address=ray_address if backend == "ray"
                           else None)


def check_campaign_params(params: Any) -> dict:
    """A campaign job's params (module docstring) checked in full, as submitted through the engine
    API (the console's form, an attached console, a script); returns them normalised.

    Raises:
        UsageError: not an object, an unknown or missing key, a bad plan (see `CampaignPlan.build`),
            a data file that does not exist, a config folder without a grid for a strategy, a
            bad back-end, workers < 1, or a Ray address that is not a string.
    """
    from core.optimize.campaign import BACKENDS, CampaignPlan, campaign_params

    if not isinstance(params, dict):
        raise UsageError(f"campaign job params must be an object, got {type(params).__name__}")
    unknown = sorted(set(params) - set(PARAM_KEYS))
    if unknown:
        raise UsageError(f"unknown campaign job argument(s) {', '.join(map(repr, unknown))}; "
                         f"expected: {', '.join(PARAM_KEYS)}")
    plan_json = params.get("plan")
    if not isinstance(plan_json, dict):
        raise UsageError("missing campaign job argument: plan (strategies, timeframes, series, ...)")
    missing = [k for k in ("strategies", "timeframes", "series") if not plan_json.get(k)]
    if missing:
        raise UsageError(f"campaign plan: missing {', '.join(missing)}")
    backend = params.get("backend", "local")
    if backend not in BACKENDS:
        raise UsageError(f"campaign: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    workers = params.get("workers")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UsageError(f"campaign: workers must be an integer >= 1 or null, got {workers!r}")
    addr = params.get("ray_address", "auto")
    if addr is not None and not isinstance(addr, str):
        raise UsageError(f"campaign: ray_address must be a string (auto or host:port), got {addr!r}")
    ray_init = params.get("ray_init")
    if ray_init is not None and not isinstance(ray_init, dict):
        raise UsageError(f"campaign: ray_init must be an object or null, got {ray_init!r}")
    for tf in plan_json["timeframes"]:
        _check_timeframe(tf)
    series = plan_json["series"]
    rows = series.values() if isinstance(series, dict) else [series]
    for ss in rows:
        if not isinstance(ss, list) or not all(isinstance(x, dict) for x in ss):
            raise UsageError("campaign plan: series must be lists of {symbol, market, file} objects")
        for x in ss:
            f = x.get("file")
            if f is not None and not (isinstance(f, str) and Path(f).is_file()):
                raise UsageError(f"campaign series {x.get('symbol')}: data file {f!r} does not exist")
    config_dir = plan_json.get("config_dir") or str(DEFAULT_CONFIG_DIR)
    if not isinstance(config_dir, str) or not Path(config_dir).is_dir():
        raise UsageError(f"campaign: config_dir {config_dir!r} is not a folder")
    try:
        plan = CampaignPlan.from_json({**plan_json, "config_dir": config_dir})
    except (TypeError, KeyError) as exc:
        raise UsageError(f"bad campaign plan: {exc}") from None
    except RadarError as exc:
        raise UsageError(str(exc)) from None
    _check_grids(plan.strategies, plan.config_dir)
    return campaign_params(plan, backend=backend, workers=workers, ray_address=addr, ray_init=ray_init)


def _check_timeframe(tf: Any) -> None:
    from core.data.timeframes import timeframe_ms

    if not isinstance(tf, str):
        raise UsageError(f"campaign: a timeframe must be a string such as 1h, got {tf!r}")
    try:
        timeframe_ms(tf)
    except RadarError as exc:
        raise UsageError(f"campaign: {exc}") from None


def _check_grids(strategies: Sequence[str], config_dir: str) -> None:
    from core.config import load_config, param_grid

    try:
        cfg = load_config(Path(config_dir))
        for s in strategies:
            param_grid(cfg, s)
    except RadarError as exc:
        raise UsageError(f"campaign: {exc}") from None


def run_campaign_job(params: dict, ctx) -> dict:
    """Runner of the "campaign" job kind (`core.jobs.manager.DEFAULT_RUNNERS`); see the module docstring.

    Raises:
        JobCancelled: cancel was requested (nothing of the campaign stored).
        RadarError: bad config or data, a run failed, or Ray cannot start (nothing stored).
    """
    from core.optimize.campaign import run_campaign_job as run

    return run(params, ctx)


def campaign_title(params: dict) -> str:
    """A short title of a campaign job: "campaign 2 strategies × 5 symbols 1h"."""
    plan = params.get("plan") or {}
    strategies = plan.get("strategies") or []
    series = plan.get("series") or {}
    symbols = {x.get("symbol") for ss in (series.values() if isinstance(series, dict) else [series])
               for x in (ss or []) if isinstance(x, dict)}
    names = strategies[0] if len(strategies) == 1 else f"{len(strategies)} strategies"
    syms = next(iter(symbols)) if len(symbols) == 1 else f"{len(symbols)} symbols"
    return f"campaign {names} × {syms} {','.join(plan.get('timeframes') or [])}".strip()
