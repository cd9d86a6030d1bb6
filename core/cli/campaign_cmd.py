"""`radar optimize` as a research campaign: several strategies × symbols × timeframes, locally or on Ray.

    radar optimize --strategy envelope_dca,envelope_dca_short --symbols BTC/USDT,ETH/USDT,SOL/USDT \\
                   --timeframe 1h[,4h] [--workers N | --ray auto|ADDRESS] [--json] [the run options]

`core.cli.optimize_cmd` hands a run here when --strategy or --timeframe lists several
values, or --ray / --workers is given. With --ray, Ray starts first, in the background
(`core.optimize.ray_backend.prestart`), while the options, data files and config are checked. The campaign (`core.optimize.campaign`) runs as a
"campaign" job of --db in this process's job manager (a worker thread that drives the
pool or Ray; the walk-forwards themselves run in worker processes / Ray tasks), with the
job's progress on a Rich bar (a terminal and no --json); Ctrl-C cancels (nothing stored,
exit 130). Results go to the same table as `radar optimize` (`radar optimize results`).

Output: the ranking, every run best first (grade, score, the five criteria, PBO, best
params); with --json only `CampaignReport.to_json()`: {"campaign": {strategies, timeframes,
symbols, runs, backend, where}, "job_id", "seconds", "ranking": [{rank, strategy, symbol,
timeframe, result_id, grade, score, criteria, sub_scores, ...summary}]}.
Exit codes: 0 ok; 2 bad arguments, config or data, Ray not installed; 1 a run failed or Ray
cannot start / be reached (nothing stored); 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from core.errors import RadarError, UsageError


def wants_campaign(args: argparse.Namespace) -> bool:
    """True when the run is a campaign: several strategies or timeframes, or --ray / --workers."""
    return ("," in (args.strategy or "") or "," in (args.timeframe or "")
            or getattr(args, "ray", None) is not None or getattr(args, "workers", None) is not None)


def _split(text: str | None, what: str) -> list[str]:
    out = [s.strip() for s in (text or "").split(",") if s.strip()]
    if len(set(out)) != len(out):
        raise UsageError(f"--{what} {text!r}: a value is given twice")
    return out


def build_plan(args: argparse.Namespace):
    """The `CampaignPlan` of the CLI options.

    Raises:
        UsageError / DataError / ConfigError: bad options, data files or config.
    """
    from core.cli.backtest_cmd import parse_date_ms
    from core.cli.optimize_cmd import _split_symbols, resolve_series
    from core.config import load_config, param_grid
    from core.optimize.campaign import CampaignPlan

    strategies = _split(args.strategy, "strategy")
    if not strategies:
        raise UsageError("give --strategy, e.g. --strategy envelope_dca,envelope_dca_short")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers {args.workers}: expected an integer >= 1")
    if args.workers is not None and args.ray is not None:
        raise UsageError("--workers sizes the local pool; Ray sizes itself (give one of --workers, --ray)")
    if getattr(args, "apply_best", False):
        raise UsageError("--apply-best applies one strategy's results; with a campaign, apply a ranked result "
                         "with `radar optimize --apply RESULT_ID`")
    cfg = load_config(args.config_dir)
    for s in strategies:
        param_grid(cfg, s)                                         # a grid exists
    symbols = _split_symbols(args.symbols)
    timeframes = _split(args.timeframe, "timeframe") or [None]
    series: dict[str, list[dict]] = {}
    for tf in timeframes:
        got_tf, rows = resolve_series(symbols, tf, args.market, args.data)
        series[got_tf] = rows
    start = parse_date_ms(args.start, "--from") if args.start else None
    end = parse_date_ms(args.end, "--to") if args.end else None
    return CampaignPlan.build(strategies, series, list(series), start_ms=start, end_ms=end, is_days=args.is_days,
                              oos_days=args.oos_days, step_days=args.step_days, max_points=args.max_points,
                              seed=args.seed, config_dir=args.config_dir)


def cmd_campaign(args: argparse.Namespace) -> int:
    """Run the campaign of the options as a job; print the ranking; returns the exit code."""
    from core.optimize.campaign import KIND, campaign_params

    backend = "ray" if args.ray is not None else "local"
    if backend == "ray":
        from core.optimize.ray_backend import import_ray, prestart

        if args.workers is not None:
            raise UsageError("--workers sizes the local pool; Ray sizes itself (give one of --workers, --ray)")
        import_ray()                                               # UsageError (exit 2) when missing
        # Ray starts (5-8 s on 2 cores) while the options, config and data files are checked and
        # the job manager opens; the campaign's own connect waits for it (ray_backend.prestart).
        prestart(args.ray)
    try:
        plan = build_plan(args)
        params = campaign_params(plan, backend=backend, workers=args.workers, ray_address=args.ray)
        show = sys.stdout.isatty() and not args.json
        from core.cli.optimize_cmd import run_job
        from core.optimize.campaign import run_campaign_job

        job_id, rec = asyncio.run(run_job(args.db, KIND, params, show, runners={KIND: run_campaign_job},
                                          counter="runs"))
    finally:
        if backend == "ray":
            from core.optimize.ray_backend import release_prestarted

            release_prestarted()
    if rec.state != "done":
        if rec.state == "cancelled":
            raise KeyboardInterrupt
        raise RadarError(f"campaign job {job_id} failed: {rec.error}")
    out = rec.result
    if args.json:
        sys.stdout.write(json.dumps(out) + "\n")
        return 0
    print_report(out)
    return 0


def print_report(out: dict) -> None:
    """The ranking as a table (every run best first, with its criteria)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 220, highlight=False)
    c = out["campaign"]
    t = Table(title=f"Campaign (job {out['job_id']}): {len(c['strategies'])} strategies × {len(c['symbols'])} symbols "
                    f"× {', '.join(c['timeframes'])} = {c['runs']} runs on {c['where']}, {out['seconds']:.1f} s")
    for col in ("rank", "strategy", "symbol", "tf", "result", "grade", "score", "OOS Sharpe", "consistency", "OOS/IS",
                "DSR", "stability", "PBO", "profile", "best params"):
        t.add_column(col, no_wrap=col != "best params")
    from core.cli.optimize_cmd import fmt_or_dash as f

    for r in out["ranking"]:
        k = r["criteria"]
        t.add_row(str(r["rank"]), r["strategy"], r["symbol"], r["timeframe"], str(r["result_id"]), r["grade"],
                  f"{r['score']:.1f}", f(k.get("oos_sharpe"), ".2f"), f(k.get("consistency"), ".0%"),
                  f(k.get("oos_is_ratio"), ".2f"), f(k.get("dsr")), f(k.get("param_stability"), ".2f"),
                  f(r.get("pbo"), ".2f"), str(r.get("grading_profile") or r.get("profile") or "-"),
                  ", ".join(f"{a}={b}" for a, b in r["best_params"].items()))
    console.print(t)
