"""`radar optimize`: walk-forward optimisation, stored results, applying the best params.

    radar optimize --strategy envelope_dca --symbols BTC/USDT,ETH/USDT --timeframe 1h [--market spot]
                   [--is-days 180 --oos-days 60 --step-days 60] [--from DATE] [--to DATE]
                   [--data FILE ...] [--max-points 500] [--seed 0] [--json]
                   [--apply-best [--min-grade C] [--force]]
    radar optimize results [--strategy NAME] [--symbol SYMBOL] [--timeframe TF] [--latest] [--json]
    radar optimize --apply RESULT_ID [--to SYMBOL] [--min-grade C] [--force] [--json]
    radar optimize --strategy S1,S2 --symbols ... --timeframe 1h[,4h] [--workers N | --ray auto|ADDRESS]
                   (a campaign: every strategy × symbol × timeframe, ranked; `core.cli.campaign_cmd`)

A run is an "optimize" job (`core.jobs`): it is recorded in `optimization_jobs` of --db,
runs in a worker thread, and stores one result per symbol (`optimization_results`, the
newest complete one per strategy/symbol/timeframe marked latest). Candles come from the
store (--db), or from freqtrade files with --data (matched to --symbols by their names;
one file and one symbol may differ in name). Progress: a Rich bar when stdout is a
terminal and --json is not given; Ctrl-C cancels the job between windows (the completed
windows are stored as a partial result).

Output: a table per run (grade, score, the five criteria, PBO, p-value, best params);
with --json only JSON: {"strategy", "timeframe", "job_id", "results": [per symbol: symbol,
result_id, grade, score, criteria{oos_sharpe, consistency, oos_is_ratio, dsr,
param_stability}, best_params, windows, combos_evaluated, evaluations, pbo, dsr, psr,
p_value, ...]}.

`--apply RESULT_ID` (or `--apply-best` on a run) writes the best params into
`<config-dir>/strategies.yaml` as the symbol's override, keeping a timestamped backup;
grades below --min-grade (default C) and partial results are refused unless --force.
`--apply RESULT_ID --to SYMBOL` writes them as SYMBOL's override instead (and tells the engine
about SYMBOL): SYMBOL must be in assets.yaml and of the result's base asset, e.g. a BTC/USDT
(spot research) result applied to BTC/USDT:USDT (the traded perpetual).
Then, when an engine listens on the socket of --db (`<db>.sock`), it is sent `apply_params`
for that symbol and strategy (audited, source "cli") and its answer is printed: "applied now"
(the runner is flat: its grid is rebuilt with them) or "pending until flat" (applied at the
runner's next flat moment); with no engine listening the file is simply read at the next
start. With --json the answer is under "engine": {"state": none | applied | pending |
unchanged | not_running_it | refused | unreachable, "message"}.
Exit codes: 0 ok; 2 bad arguments, config or data; 1 the job failed otherwise, or the file was
written but the running engine refused the params or could not be reached; 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from core.errors import DataError, RadarError, UsageError

_GRADES = ("A", "B", "C", "D", "F")


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `optimize` to the top-level parser."""
    p = sub.add_parser("optimize", help="walk-forward optimisation; stored results; apply best params",
                       description="Walk-forward optimisation of a strategy per symbol (a background job "
                                   "recorded in --db); `optimize results` lists stored runs; "
                                   "`optimize --apply ID` writes a run's best params into strategies.yaml.")
    p.add_argument("action", nargs="?", choices=("results",), help="results: list stored runs")
    p.add_argument("--strategy", help="strategy name (a run needs it): envelope_dca, envelope_dca_short, vwap_rsi, "
                   "momentum, bollinger_mr, donchian_breakout, supertrend, grid_atr, grid_atr_short, grid_rsi, "
                   "grid_rsi_short, grid_mtf, grid_mtf_short, grid_funding and grid_funding_short (these two on "
                   "a perpetual with its funding history), funding (on a perpetual, e.g. "
                   "BTC/USDT:USDT, with its funding-rate history stored or beside the --data file), or "
                   "liquidation (on a perpetual with its open interest stored: radar data download "
                   "--open-interest)")
    p.add_argument("--symbols", help="comma-separated ccxt symbols, e.g. BTC/USDT,ETH/USDT")
    p.add_argument("--symbol", help="results: only this symbol")
    p.add_argument("--timeframe", help="candle timeframe, e.g. 1h (with --data: the file name's, or a coarser "
                   "whole multiple of it to resample into, e.g. --timeframe 1h on a 5m file)")
    p.add_argument("--market", choices=("spot", "futures"),
                   help="market (default: futures for BASE/QUOTE:SETTLE symbols, else spot)")
    p.add_argument("--data", type=Path, action="append", default=[], metavar="FILE",
                   help="freqtrade-layout candle file instead of the store (repeatable)")
    p.add_argument("--from", dest="start", metavar="DATE", help="first candle open time (YYYY-MM-DD UTC or ms)")
    p.add_argument("--to", dest="end", metavar="DATE|SYMBOL",
                   help="a run: end of the candles, exclusive (same formats); with --apply: the symbol of "
                        "assets.yaml to apply the result to, of the same base asset (a spot result to its "
                        "perpetual: --to BTC/USDT:USDT)")
    p.add_argument("--is-days", type=int, default=180, help="in-sample window, days (default 180)")
    p.add_argument("--oos-days", type=int, default=60, help="out-of-sample window, days (default 60)")
    p.add_argument("--step-days", type=int, default=60, help="window step, days (default 60)")
    p.add_argument("--max-points", type=int, default=500, help="Latin-hypercube sample size (default 500)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample and the bootstrap (default 0)")
    p.add_argument("--latest", action="store_true", help="results: only the latest run per strategy/symbol/tf")
    p.add_argument("--apply", type=int, metavar="RESULT_ID",
                   help="write the best params of stored result RESULT_ID into strategies.yaml")
    p.add_argument("--apply-best", action="store_true",
                   help="after the run, apply each symbol's result whose grade is at least --min-grade")
    p.add_argument("--min-grade", choices=_GRADES, default="C", help="lowest grade --apply accepts (default C)")
    p.add_argument("--force", action="store_true", help="apply whatever the grade (and partial results)")
    p.add_argument("--json", action="store_true", help="print only JSON")
    p.add_argument("--ray", metavar="auto|ADDRESS",
                   help="run as a campaign on Ray (pip install 'radar[ray]'): auto = RAY_ADDRESS, else the "
                        "`ray start` cluster of this machine, else a local Ray; or a cluster address")
    p.add_argument("--workers", type=int, metavar="N",
                   help="run as a campaign in a local pool of N worker processes (default: the CPU count)")
    p.set_defaults(func=cmd_optimize)


def cmd_optimize(args: argparse.Namespace) -> int:
    """Dispatch `radar optimize` (run, results, --apply); returns the exit code."""
    if args.action == "results":
        return _cmd_results(args)
    if args.apply is not None:
        return _cmd_apply(args)
    from core.cli.campaign_cmd import cmd_campaign, wants_campaign

    if wants_campaign(args):
        return cmd_campaign(args)
    return _cmd_run(args)


# -- run ------------------------------------------------------------------------------------
def _split_symbols(text: str | None) -> list[str]:
    if text is None:
        return []
    out = [s.strip() for s in text.split(",") if s.strip()]
    if not out:
        raise UsageError(f"--symbols {text!r}: expected comma-separated symbols, e.g. BTC/USDT,ETH/USDT")
    if len(set(out)) != len(out):
        raise UsageError(f"--symbols {text!r}: a symbol is given twice")
    return out


def _market_of(symbol: str, market: str | None) -> str:
    return market or ("futures" if ":" in symbol else "spot")


def resolve_series(symbols: list[str], timeframe: str | None, market: str | None,
                   data: list[Path]) -> tuple[str, list[dict]]:
    """(timeframe, [{"symbol", "market", "file"}]) from the CLI options.

    Raises:
        UsageError: missing --symbols/--timeframe without --data, a --timeframe finer than (or not a
            whole multiple of) the files' timeframe, files of several timeframes, or a symbol
            without a --data file.

    A --timeframe coarser than the --data files' is resampled into: each series then carries
    "timeframe": the file's own (`core.jobs.optimize_job` resamples when loading).
        DataError: a --data name that is not a freqtrade candle file name.
    """
    from core.data.aggregate import check_resample
    from core.data.freqtrade import parse_file_name

    if not data:
        if not symbols or not timeframe:
            raise UsageError("give --symbols and --timeframe (stored candles) or --data FILE ...")
        return timeframe, [{"symbol": s, "market": _market_of(s, market), "file": None} for s in symbols]
    for path in data:
        if not path.is_file():
            raise UsageError(f"--data {path}: no such file")
    if len(data) == 1 and len(symbols) <= 1:
        try:
            named = parse_file_name(data[0])
        except DataError:
            named = None
        if named is not None and timeframe is not None and named.timeframe != timeframe:
            check_resample(named.timeframe, timeframe)      # finer / non-multiple: UsageError
            spec = parse_file_name(data[0], symbols[0] if symbols else None, market, None)
            if spec.kind != "candles":
                raise UsageError(f"--data {data[0]}: holds {spec.kind} rates, not candles")
            return timeframe, [{"symbol": spec.symbol, "market": spec.market, "file": str(data[0]),
                                "timeframe": spec.timeframe}]        # resampled into --timeframe
        spec = parse_file_name(data[0], symbols[0] if symbols else None, market, timeframe)
        if spec.kind != "candles":
            raise UsageError(f"--data {data[0]}: holds {spec.kind} rates, not candles")
        return spec.timeframe, [{"symbol": spec.symbol, "market": spec.market, "file": str(data[0])}]
    specs = [(p, parse_file_name(p, None, market, None)) for p in data]
    tfs = {s.timeframe for _, s in specs}
    if len(tfs) > 1:
        raise UsageError(f"--data files of several timeframes ({', '.join(sorted(tfs))}); optimise one at a time")
    tf = tfs.pop()
    resample = timeframe is not None and check_resample(tf, timeframe)     # finer / non-multiple: UsageError
    by_symbol = {s.symbol: (p, s) for p, s in specs}
    wanted = symbols or list(by_symbol)
    out = []
    for sym in wanted:
        if sym not in by_symbol:
            raise UsageError(f"no --data file for {sym} (files hold: {', '.join(by_symbol)})")
        p, s = by_symbol[sym]
        if s.kind != "candles":
            raise UsageError(f"--data {p}: holds {s.kind} rates, not candles")
        out.append({"symbol": sym, "market": s.market, "file": str(p), **({"timeframe": tf} if resample else {})})
    return (timeframe if resample else tf), out


def _check_strategy(args: argparse.Namespace) -> None:
    from core.config import load_config, param_grid
    from core.optimize.walk_forward import STRATEGIES

    if not args.strategy:
        raise UsageError("give --strategy, e.g. --strategy envelope_dca")
    if args.strategy not in STRATEGIES:
        raise UsageError(f"--strategy {args.strategy}: the walk-forward supports {', '.join(STRATEGIES)}")
    param_grid(load_config(args.config_dir), args.strategy)        # config valid and a grid exists


def _cmd_run(args: argparse.Namespace) -> int:
    from core.cli.backtest_cmd import parse_date_ms
    from core.jobs.optimize_job import KIND, optimize_params

    _check_strategy(args)
    start = parse_date_ms(args.start, "--from") if args.start else None
    end = parse_date_ms(args.end, "--to") if args.end else None
    timeframe, series = resolve_series(_split_symbols(args.symbols), args.timeframe, args.market, args.data)
    params = optimize_params(args.strategy, timeframe, series, start_ms=start, end_ms=end, is_days=args.is_days,
                             oos_days=args.oos_days, step_days=args.step_days, max_points=args.max_points,
                             seed=args.seed, config_dir=args.config_dir)
    show = sys.stdout.isatty() and not args.json
    job_id, rec = asyncio.run(run_job(args.db, KIND, params, show))
    if rec.state != "done":
        if rec.state == "cancelled":
            raise KeyboardInterrupt
        raise RadarError(f"optimize job {job_id} failed: {rec.error}")
    out = {"strategy": args.strategy, "timeframe": timeframe, "job_id": job_id, "results": rec.result["results"]}
    if args.apply_best:
        for r in out["results"]:
            r["applied"] = _apply_quiet(args, r["result_id"])
    if args.json:
        sys.stdout.write(json.dumps(out) + "\n")
        return 0
    _print_run(out)
    return 0


async def run_job(db: Path, kind: str, params: dict, show: bool, *, runners: dict | None = None,
                  counter: str = "window"):
    """Run one job of `kind` in a JobManager on `db` (with a progress bar when `show`; `counter`
    names what its windows count: "window", "runs"); Ctrl-C cancels it. Returns (job id, record).
    `runners`: the manager's runners (default: its own)."""
    from core.jobs import JobManager

    mgr = JobManager(db, runners=runners) if runners is not None else JobManager(db)
    await mgr.start()
    progress = task = None
    if show:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                            TextColumn("{task.fields[window]}"), TextColumn("{task.fields[eta]}"))
        task = progress.add_task("queued", total=100.0, window="", eta="")
        progress.start()

    def on_event(ev) -> None:
        if progress is None or ev.job_id != job_id:
            return
        eta = "" if ev.eta_s is None else f"ETA {ev.eta_s:,.0f} s"
        win = f"{counter} {ev.window}/{ev.n_windows}" if ev.n_windows else ""
        progress.update(task, completed=ev.percent, description=f"{ev.detail} {ev.phase}".strip(), window=win, eta=eta)

    job_id = -1
    mgr.subscribe(on_event)
    try:
        job_id = mgr.submit(kind, params)
        try:
            rec = await mgr.wait(job_id)
        except asyncio.CancelledError:           # Ctrl-C: stop (a walk-forward keeps its partial result)
            mgr.cancel(job_id)
            await mgr.wait(job_id)
            raise
    finally:
        if progress is not None:
            progress.stop()
        await mgr.close()
    return job_id, rec


def fmt_or_dash(x, spec: str = ".3f") -> str:
    """`x` formatted with `spec`, or "-" when None."""
    return "-" if x is None else format(x, spec)


def _params_text(p: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in p.items())


def _print_run(out: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 200, highlight=False)
    t = Table(title=f"Walk-forward {out['strategy']} {out['timeframe']} (job {out['job_id']})")
    for col in ("symbol", "result", "grade", "score", "OOS Sharpe", "consistency", "OOS/IS", "DSR", "stability",
                "PBO", "p-value", "windows", "combos", "best params"):
        t.add_column(col, no_wrap=col != "best params")
    for r in out["results"]:
        c = r["criteria"]
        f = fmt_or_dash
        t.add_row(r["symbol"], str(r["result_id"]), r["grade"], f"{r['score']:.1f}", f(c["oos_sharpe"], ".2f"),
                  f(c["consistency"], ".0%"), f(c["oos_is_ratio"], ".2f"), f(c["dsr"]),
                  f(c["param_stability"], ".2f"), f(r["pbo"], ".2f"), f(r["p_value"]), str(r["windows"]),
                  str(r["combos_evaluated"]), _params_text(r["best_params"]))
    console.print(t)
    from core.optimize.grade_text import grade_lines

    for r in out["results"]:
        for line in grade_lines(r):
            console.print(f"{r['symbol']}: {line}")
        if "applied" in r:
            console.print(f"{r['symbol']}: {r['applied']['message']}")


# -- apply ----------------------------------------------------------------------------------
def _open_db(db: Path):
    from core.storage.db import open_sync

    if not Path(db).is_file():
        raise UsageError(f"no database at {db}: run `radar optimize` first")
    return open_sync(db)


def _apply_quiet(args: argparse.Namespace, result_id: int) -> dict:
    from core.optimize.apply import apply_result

    conn = _open_db(args.db)
    try:
        done = apply_result(conn, result_id, args.config_dir, min_grade=args.min_grade, force=args.force)
    except UsageError as err:
        return {"applied": False, "message": f"not applied: {err}"}
    finally:
        conn.close()
    engine = notify_engine(args.db, done.strategy, done.symbol, done.params)
    return {"applied": True, "path": str(done.path), "backup": str(done.backup), "params": done.params,
            "engine": engine,
            "message": f"wrote {done.strategy} override for {done.symbol} into {done.path} (backup {done.backup}); "
                       f"{engine['message']}"}


def notify_engine(db: Path, strategy: str, symbol: str, params: dict) -> dict:
    """Send `apply_params` for (`symbol`, `strategy`) to the engine listening on `<db>.sock`, if
    any: {"state": "none" (no engine) | "applied" | "pending" | "unchanged" (its answer) |
    "not_running_it" (it does not run that strategy on that symbol) | "refused" | "unreachable",
    "message": one line}. Never raises for the engine's answers."""
    from core.api.client import EngineClient
    from core.api.protocol import ApiClientError, ApiError, EngineNotRunning, socket_path_for

    sock = socket_path_for(db)

    async def send() -> dict:
        async with EngineClient(sock, source="cli") as c:
            return await c.apply_params(symbol, params, strategy=strategy)

    try:
        ans = asyncio.run(send())
    except EngineNotRunning:
        return {"state": "none", "message": f"no engine listens on {sock}: the running engine (none) reads "
                                            "strategies.yaml at its next start"}
    except ApiError as exc:
        if exc.code in ("bad_symbol", "bad_strategy"):
            return {"state": "not_running_it", "message": f"the engine on {sock} does not run {strategy} on {symbol}: "
                                                          f"nothing to apply there ({exc.message})"}
        return {"state": "refused", "message": f"the engine on {sock} REFUSED the params ({exc.status} {exc.code}): "
                                               f"{exc.message}"}
    except ApiClientError as exc:
        return {"state": "unreachable", "message": f"the engine was not told: {exc}"}
    state = ans["result"]["state"]
    said = {"applied": "applied now", "pending": "pending until flat",
            "unchanged": "unchanged (it trades these params already)"}[state]
    return {"state": state, "audit_id": ans.get("audit_id"),
            "message": f"engine on {sock}: {said} (audit #{ans.get('audit_id')})"}


def _cmd_apply(args: argparse.Namespace) -> int:
    from core.optimize.apply import apply_result

    conn = _open_db(args.db)
    try:
        done = apply_result(conn, args.apply, args.config_dir, min_grade=args.min_grade, force=args.force,
                            to_symbol=args.end)
    finally:
        conn.close()
    engine = notify_engine(args.db, done.strategy, done.symbol, done.params)
    code = 1 if engine["state"] in ("refused", "unreachable") else 0
    if args.json:
        sys.stdout.write(json.dumps({"result_id": args.apply, "strategy": done.strategy, "symbol": done.symbol,
                                     "params": done.params, "path": str(done.path), "backup": str(done.backup),
                                     "comments_kept": done.comments_kept, "engine": engine}) + "\n")
        return code
    print(f"wrote {done.strategy} override for {done.symbol}: {_params_text(done.params)}")
    print(f"  into {done.path} (previous file kept as {done.backup})")
    if not done.comments_kept:
        print("  note: the file was re-written by PyYAML; its comments are only in the backup")
    print(f"  {engine['message']}")
    return code


# -- results --------------------------------------------------------------------------------
def _cmd_results(args: argparse.Namespace) -> int:
    from core.optimize.results_store import list_results
    from core.storage.db import open_sync

    rows = []
    if Path(args.db).is_file():
        conn = open_sync(args.db)
        try:
            rows = list_results(conn, strategy=args.strategy, symbol=args.symbol, timeframe=args.timeframe,
                                latest_only=args.latest)
        finally:
            conn.close()
    if args.json:
        sys.stdout.write(json.dumps({"results": [r.to_json() for r in rows]}) + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 220, highlight=False)
    if not rows:
        console.print("no stored optimization results")
        return 0
    t = Table(title="Walk-forward results (newest first; * = latest of its strategy/symbol/timeframe)")
    for col in ("id", "created (UTC)", "strategy", "symbol", "tf", "grade", "score", "OOS Sharpe", "consist.",
                "OOS/IS", "DSR", "stab.", "PBO", "p-value", "windows", "best params"):
        t.add_column(col, no_wrap=col != "best params")
    for r in rows:
        created = datetime.fromtimestamp(r.created_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")
        mark = "*" if r.is_latest else ("partial" if not r.complete else "")
        f = fmt_or_dash
        t.add_row(f"{r.id}{mark}", created, r.strategy, r.symbol, r.timeframe, r.grade, f"{r.score:.1f}",
                  f(r.oos_sharpe, ".2f"), f(r.consistency, ".0%"), f(r.oos_is_ratio, ".2f"), f(r.dsr),
                  f(r.param_stability, ".2f"), f(r.pbo, ".2f"), f(r.p_value), str(r.n_windows),
                  _params_text(r.best_params))
    console.print(t)
    return 0
