"""The "optimize" job: walk-forward optimisation of one strategy on one or more series, results stored.

Params (JSON, built by `optimize_params`):

    {"strategy": "envelope_dca", "timeframe": "1h",
     "series": [{"symbol": "BTC/USDT", "market": "spot", "file": null | "path/BTC_USDT-1h.json.gz",
                 ["timeframe": "5m"]}, ...],   # the data's own timeframe when finer: resampled
                                                # into the job's (core.data.aggregate.resample_candles)
     "start_ms": null | int, "end_ms": null | int,        # candle range, ms UTC, [start, end)
     "is_days": 180, "oos_days": 60, "step_days": 60, "max_points": 500, "seed": 0, "n_boot": 1000,
     "config_dir": "config", ["fixed": {"ma_period": 10}]}   # parameters not searched

Per series: candles from the file (freqtrade layout) or the store (the job's database),
for `funding` also the perpetual's funding rates (`load_funding`: the file beside the candle
file, or the store),
the grid of `param_grids.yaml`, the strategy's configured params for parameters outside the
grid, the account of `risk.yaml`, the grading of `<config_dir>/grading.yaml` (the packaged
one when that folder has none); `core.optimize.walk_forward.walk_forward`; the result is
saved (`core.optimize.results_store.save_result`) as the latest of its series. Progress:
each series is an equal share of the job. On cancel (checked between windows) the
windows completed so far are saved as a partial result (complete = 0, never latest) and
the job ends `cancelled`.

Result (stored in the job row): {"strategy", "timeframe", "results": [summary + "result_id", ...]}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from core.errors import UsageError
from core.jobs.manager import JobContext
from core.jobs.model import JobCancelled
from core.paths import DEFAULT_CONFIG_DIR

KIND = "optimize"


def optimize_params(strategy: str, timeframe: str, series: Sequence[dict], *, start_ms: int | None = None,
                    end_ms: int | None = None, is_days: int = 180, oos_days: int = 60, step_days: int = 60,
                    max_points: int = 500, seed: int = 0, n_boot: int = 1000,
                    config_dir: str | Path = DEFAULT_CONFIG_DIR, fixed: dict | None = None) -> dict[str, Any]:
    """The JSON params of an "optimize" job (module docstring), checked.

    Args:
        series: one {"symbol", "market", "file"} per series ("file" None: the store).
        fixed: parameters not searched, {name: value} (`core.optimize.fixed_params`: that
            parameter's grid becomes the one value); stored as "fixed" when given.

    Raises:
        UsageError: no series, a strategy the walk-forward does not support (`check_strategy`;
            `funding` needs perpetual series), a series without symbol/market, a window length
            < 1 day, max_points or n_boot < 1, seed < 0, or end_ms <= start_ms.
    """
    if not series:
        raise UsageError("optimize: give at least one symbol")
    check_strategy(strategy, series)
    rows = []
    for s in series:
        if not s.get("symbol") or s.get("market") not in ("spot", "futures"):
            raise UsageError(f"optimize: a series needs a symbol and a market (spot or futures), got {s!r}")
        row = {"symbol": s["symbol"], "market": s["market"], "file": None if s.get("file") is None else str(s["file"])}
        if s.get("timeframe") not in (None, timeframe):         # finer candles resampled into `timeframe`
            from core.data.aggregate import check_resample

            check_resample(s["timeframe"], timeframe)
            row["timeframe"] = s["timeframe"]
        rows.append(row)
    for name, v in (("is_days", is_days), ("oos_days", oos_days), ("step_days", step_days),
                    ("max_points", max_points), ("n_boot", n_boot)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UsageError(f"optimize: {name} must be an integer >= 1, got {v!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(f"optimize: seed must be an integer >= 0, got {seed!r}")
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        raise UsageError(f"optimize: the end of the range ({end_ms}) must be after its start ({start_ms})")
    from core.optimize.fixed_params import check_fixed

    fixed = check_fixed(strategy, fixed)
    return {"strategy": strategy, "timeframe": timeframe, "series": rows, "start_ms": start_ms, "end_ms": end_ms,
            "is_days": is_days, "oos_days": oos_days, "step_days": step_days, "max_points": max_points,
            "seed": seed, "n_boot": n_boot, "config_dir": str(config_dir), **({"fixed": fixed} if fixed else {})}


def check_strategy(strategy: str, series: Sequence[dict] = ()) -> None:
    """Refuse a strategy the walk-forward cannot run (`core.optimize.walk_forward.STRATEGIES`: all
    eight), and `funding` on a series that is not a perpetual (market "futures"): it walk-forwards
    on the perpetual's funding-rate history (stored, or the file beside a --data futures file).

    Raises:
        UsageError: naming the strategies supported, or the series.
    """
    from core.optimize.evaluators import STRATEGIES, needs_funding, needs_side_series

    if strategy not in STRATEGIES:
        raise UsageError(f"optimize: strategy {strategy!r}: the walk-forward supports {', '.join(STRATEGIES)}")
    if needs_side_series(strategy):
        what = "funding rates" if needs_funding(strategy) else "open interest"
        spot = [s.get("symbol") for s in series if s.get("market") != "futures"]
        if spot:
            raise UsageError(f"optimize: {strategy} trades a perpetual's {what}; {', '.join(map(str, spot))} "
                             "is not a perpetual (give e.g. BTC/USDT:USDT, market futures)")


def load_funding(params: dict, series: dict, db_path: Path):
    """(ts, rate) of the funding-rate history a `funding` walk-forward needs, else None: the
    funding-rate file beside the series' --data file (freqtrade layout,
    BTC_USDT_USDT-8h-funding_rate.json.gz), or the rates stored for the symbol in the database
    (`radar data import` / `radar data download --funding`).

    Raises:
        UsageError: the strategy needs funding rates and none were found.
    """
    from core.engine.assembly import funding_beside, stored_funding
    from core.optimize.evaluators import needs_funding

    if not needs_funding(params["strategy"]):
        return _load_open_interest(params["strategy"], series, db_path)
    found = funding_beside(Path(series["file"])) if series["file"] is not None else stored_funding(
        db_path, series["symbol"])
    if found is None or len(found[0]) == 0:
        where = (f"beside {series['file']} (a *-8h-funding_rate.json.gz file)" if series["file"] is not None
                 else f"stored for {series['symbol']} in {db_path}")
        raise UsageError(f"optimize: {params['strategy']} needs the funding-rate history of {series['symbol']}: "
                         f"none {where}; import or download it first (radar data import FILE, "
                         "radar data download --funding)")
    return found


def _load_open_interest(strategy: str, series: dict, db_path: Path):
    """(ts, oi) of the open interest stored for the series' symbol when `strategy` needs it
    (`liquidation`), else None (no file layout holds open interest: the database only).

    Raises:
        UsageError: the strategy needs open interest and none is stored.
    """
    from core.engine.assembly import stored_open_interest
    from core.optimize.evaluators import needs_side_series

    if not needs_side_series(strategy):
        return None
    found = stored_open_interest(db_path, series["symbol"])
    if found is None or len(found[0]) == 0:
        raise UsageError(f"optimize: {strategy} needs the open-interest history of {series['symbol']}: none stored "
                         f"in {db_path}; download it first (radar data download --open-interest)")
    return found


def _setup(params: dict):
    """(grid, base params, account, grading config) from the job's config folder."""
    from core.config import load_config, param_grid, strategy_params
    from core.engine.assembly import account_from_config
    from core.optimize.grade import load_grading_config

    config_dir = Path(params["config_dir"])
    cfg = load_config(config_dir)
    strategy = params["strategy"]
    grid = param_grid(cfg, strategy)
    base = strategy_params(cfg, strategy).model_dump()
    account = account_from_config(cfg)
    grading_file = config_dir / "grading.yaml"
    grading = load_grading_config(grading_file if grading_file.is_file() else None)
    return grid, base, account, grading


def _load(params: dict, series: dict, db_path: Path):
    from core.backtest import loading

    base = series.get("timeframe") or params["timeframe"]          # the data's own; resampled when finer
    resample = params["timeframe"] if base != params["timeframe"] else None
    if series["file"] is not None:
        return loading.load_from_file(series["file"], series["symbol"], series["market"], base,
                                      params["start_ms"], params["end_ms"], resample=resample)
    return loading.load_from_store(db_path, series["symbol"], series["market"], base,
                                   params["start_ms"], params["end_ms"], resample=resample)


def run_optimize_job(params: dict, ctx: JobContext) -> dict:
    """Runner of the "optimize" job kind (module docstring); called in a JobManager worker thread.

    Raises:
        JobCancelled: cancel was requested (checked between windows and between series).
        RadarError: bad config, data or parameters (the job fails with its message).
    """
    from core.optimize.results_store import git_revision, save_result
    from core.optimize.walk_forward import WalkForwardCancelled, WalkForwardSettings, walk_forward
    from core.storage.db import open_sync

    grid, base, account, grading = _setup(params)
    if params.get("fixed"):                     # fixed parameters: their grid is the one value
        from core.optimize.fixed_params import apply_fixed, check_fixed

        grid, base = apply_fixed(grid, base, check_fixed(params["strategy"], params["fixed"]))
    settings = WalkForwardSettings(is_days=params["is_days"], oos_days=params["oos_days"],
                                   step_days=params["step_days"], max_points=params["max_points"],
                                   seed=params["seed"], n_boot=params["n_boot"])
    rev = git_revision()
    series = params["series"]
    n = len(series)
    out = []
    conn = open_sync(ctx.db_path)
    try:
        for i, s in enumerate(series):
            ctx.check_cancelled()
            sym = s["symbol"]
            ctx.progress(i / n, "loading", 0, 0, sym)
            candles = _load(params, s, ctx.db_path)
            funding = load_funding(params, s, ctx.db_path)

            def report(frac: float, phase: str, w: int, nw: int, i: int = i, sym: str = sym) -> None:
                ctx.progress((i + frac) / n, phase, w, nw, sym)

            try:
                res = walk_forward(candles, params["strategy"], grid, base_params=base, account=account,
                                   settings=settings, grading=grading, progress=report,
                                   should_stop=ctx.stop_requested, funding=funding)
            except WalkForwardCancelled as exc:
                if exc.partial is not None:
                    save_result(conn, exc.partial, job_id=ctx.job_id, git_rev=rev)
                raise JobCancelled(f"job {ctx.job_id}: {exc}") from None
            rid = save_result(conn, res, job_id=ctx.job_id, git_rev=rev)
            out.append({**res.summary(), "result_id": rid})
    finally:
        conn.close()
    return {"strategy": params["strategy"], "timeframe": params["timeframe"], "results": out}
