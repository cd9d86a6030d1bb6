"""`radar run`: the trading engine, with the console or headless.

    radar run [--no-ui] [--readonly] [--replay PATH ... [--fresh] [--from DAY] [--to DAY] [--timeframe TF]]
              [--speed N|max]
              [--report PATH] [--live] [--status-interval S] [--risk on|off|auto]

This module parses the arguments and prints; the engine is assembled by
`core.engine.assembly` (`plan_engine` / `build_engine`: sources, runners, capital, risk,
live setup), which the tests and the benchmarks call too.

* Console: without --no-ui the console (`tui.hosting.run_console`) hosts the engine in the
  same loop (q quits and stops the engine, d / SIGHUP detach and the engine carries on
  headless); `--readonly` shows it without the commands that change anything.
* Services (`core.engine.services`), built after the database lock is taken and before the
  first candle, closed after the engine stopped: alerts (engine events -> alerts, see
  `core.engine.alerting`), research jobs, the health watchdog and its heartbeat (`radar
  health` in another process), the Telegram bot when TELEGRAM_BOT_TOKEN is set.
* Capital: on the live feed (paper or --live) one account trades every runner, so each
  (strategy, symbol) runner gets an equal share of risk.yaml's initial_capital; a replay gives
  every runner the whole initial_capital, exactly like `radar backtest`, so its report
  equals the backtest's.
* Risk (`core.risk`): `--risk on` checks every entry before it is placed and trips the kill
  switch on the loss limits of risk.yaml; `auto` (default) is on for the live feed and OFF
  for a replay (logged), because a replay's report must equal the backtest (whose runners
  each hold the whole capital, beyond the per-symbol caps); pass `--risk on` to replay with
  the limits.

* Strategies: the enabled grid strategies of `strategies.yaml` with their params (per-symbol
  overrides), on every replayed series (symbol and timeframe from the freqtrade file name:
  BTC_USDT-1h.json.gz runs as BTC/USDT 1h) or, without --replay, on the assets of
  `assets.yaml` (first timeframe each) through the exchange's public live feed (ccxt.pro).
* Paper trading is the default. `--live` trades Bitget USDT-M perpetuals through
  `core.venues.bitget.gateway.CcxtGateway` (`core.engine.grid_runner`): it needs
  BITGET_API_KEY / _SECRET / _PASSPHRASE in the environment or .env, runs only the enabled
  grid strategies with `live_eligible: true` on the perpetuals of assets.yaml (one grid
  strategy per symbol), splits risk.yaml's initial_capital over the runners (capped by the
  balance), says so loudly at start (banner + log), and reconciles with the exchange before
  the first order (a second engine on the account is refused, exit 2). exchanges.yaml
  `sandbox: true` (the default) trades Bitget's demo environment.
* State: the database of `--db` (trading tables of migration 5); a run restarted on the same
  database resumes after the last candle it processed; one engine per database. A replay
  whose database had processed every candle already says so ("replay already complete at
  <ts>; use --fresh") and ends (exit 0). `--fresh` (with --replay) replays into a NEW
  database file beside --db named for the run (`<db name>-replay-<UTC time>.db`, printed at
  start): the old database is not touched and stays inspectable with `--db`.
* `--from YYYY-MM-DD` / `--to YYYY-MM-DD` (with --replay): only the candles opening in
  [from, to) (UTC days, from inclusive, to exclusive); a bad date, to <= from, or a range
  holding no candle of a file is an error (exit 2).
* `--timeframe TF` (with --replay): every replayed file is resampled into TF (5m -> 1h, ...:
  UTC-aligned buckets, a bucket only when all its candles are there; finer or non-multiple
  refused, exit 2); the runners trade TF and the funding file beside a perpetual still loads.
* `--replay`: the run ends at the end of the data (open cycles closed at the last close,
  "end"); `--report PATH` then writes a JSON list with, per (strategy, symbol), exactly the
  spec's backtest JSON.
* Logs: a Rich console handler and a JSON-lines file `<db folder>/logs/radar-run.jsonl`;
  beside it `trades.jsonl`, one JSON line per trade action (`core.engine.trade_log`);
  a status line every `--status-interval` seconds; SIGINT/SIGTERM stop gracefully (state kept).
Exit codes: 0 ok; 2 bad arguments/config/data, live refused, database locked; 1 other errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from pathlib import Path

from core.engine.assembly import (
    RunOptions,
    build_engine,
    live_banner_lines,
    parse_speed,
    parse_utc_date,
    plan_engine,
    replay_complete_at,
)
from core.errors import UsageError

log = logging.getLogger("core.cli.run")

#: The trade-action log, in the folder of the run's log (`core.engine.trade_log`).
TRADE_LOG_NAME = "trades.jsonl"


#: The console launcher `async (engine, *, readonly, alerts, jobs, health, api, commands) -> outcome`, registered
#: by the console package (`tui.cli`) through `set_console_runner`: the engine never imports the
#: console, and `radar run --no-ui` works without it.
_console_runner = None


def set_console_runner(runner) -> None:
    """Register the coroutine function that hosts the engine in the console (see `tui.hosting`)."""
    global _console_runner
    _console_runner = runner


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `run` to the top-level parser."""
    p = sub.add_parser("run", help="run the trading engine (paper by default)",
                       description="Run the trading engine: the enabled strategies, paper by default.")
    p.add_argument("--no-ui", action="store_true", help="headless: logs and a status line, no console")
    p.add_argument("--readonly", action="store_true", help="console without commands that change anything")
    p.add_argument("--risk", choices=("on", "off", "auto"), default="auto",
                   help="pre-trade risk checks and loss-limit trips (auto: on live, off on a replay)")
    p.add_argument("--replay", type=Path, action="append", default=[], metavar="PATH",
                   help="replay a freqtrade-layout candle file instead of the live feed (repeatable)")
    p.add_argument("--speed", default="max", metavar="N|max",
                   help="replay speed in market seconds per second, or max (default)")
    p.add_argument("--report", type=Path, metavar="PATH",
                   help="write the per (strategy, symbol) backtest JSON list here at the end")
    p.add_argument("--live", action="store_true", help="trade real money (needs keys and live_eligible)")
    p.add_argument("--adopt-history", action="store_true",
                   help="with --live: record orders of this installation that the database does not know (a "
                        "lost or replaced database) as its own and adopt the open position; only on purpose")
    p.add_argument("--status-interval", type=float, default=10.0, metavar="S",
                   help="seconds between status lines (0: none; default 10)")
    p.add_argument("--log-file", type=Path, metavar="PATH",
                   help="JSON-lines log file (default: <db folder>/logs/radar-run.jsonl); the trade-action "
                        "log trades.jsonl is written in the same folder")
    p.add_argument("--fresh", action="store_true",
                   help="with --replay: start the replay over in a NEW database file beside --db, named for the "
                        "run (<db name>-replay-<UTC time>.db, printed at start); the database of --db is left "
                        "untouched and can still be inspected (radar --db it ...). Without --fresh a replay "
                        "resumes after the last candle the database processed")
    p.add_argument("--from", dest="start", metavar="YYYY-MM-DD",
                   help="with --replay: replay only candles opening on or after this day (UTC, inclusive)")
    p.add_argument("--to", dest="end", metavar="YYYY-MM-DD",
                   help="with --replay: replay only candles opening before this day (UTC, exclusive)")
    p.add_argument("--timeframe", metavar="TF",
                   help="with --replay: resample the replayed files into this coarser timeframe (e.g. 1h from "
                        "5m files; whole UTC-aligned buckets only)")
    p.set_defaults(func=cmd_run)


# ------------------------------------------------------------------------------ logging
class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record: ts (ms UTC), level, logger, msg (+ exc)."""

    def format(self, record: logging.LogRecord) -> str:
        d = {"ts": int(record.created * 1000), "level": record.levelname, "logger": record.name,
             "msg": record.getMessage()}
        if record.exc_info:
            d["exc"] = self.formatException(record.exc_info)
        return json.dumps(d)


def setup_logging(log_file: Path, verbose: int, tighten_folder: bool = True) -> None:
    """Rich console handler (INFO, DEBUG with -vv) + JSON-lines file handler (INFO and up)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    level = logging.DEBUG if verbose >= 2 else logging.INFO
    try:
        from rich.console import Console
        from rich.logging import RichHandler

        console = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)
    except ImportError:  # pragma: no cover
        console = logging.StreamHandler(sys.stderr)
    console.setLevel(level)
    root.addHandler(console)
    from core.storage.log_files import private_log_handler

    fh = private_log_handler(log_file, tighten_folder=tighten_folder)
    fh.setFormatter(JsonLinesFormatter())
    fh.setLevel(logging.INFO)
    root.addHandler(fh)
    root.setLevel(min(level, logging.INFO))


# ------------------------------------------------------------------------------ the command
def options_from_args(args: argparse.Namespace) -> RunOptions:
    """The `RunOptions` of `radar run`'s arguments (validated: UsageError names the bad flag)."""
    start = parse_utc_date(args.start, "--from") if args.start is not None else None
    end = parse_utc_date(args.end, "--to") if args.end is not None else None
    return RunOptions(db=Path(args.db), replay=tuple(args.replay), speed=parse_speed(args.speed), live=args.live,
                      adopt_history=args.adopt_history, risk=args.risk, status_interval=args.status_interval,
                      fresh=args.fresh, start_ms=start, end_ms=end, timeframe=args.timeframe)


def _print_banner(lines: list[str]) -> None:
    width = max(len(x) for x in lines) + 4
    print("!" * width, file=sys.stderr)
    for x in lines:
        print(f"! {x.ljust(width - 4)} !", file=sys.stderr)
    print("!" * width, file=sys.stderr)
    for x in lines:
        log.warning(x)


def cmd_run(args: argparse.Namespace) -> int:
    """Run `radar run`; returns the exit code (errors are raised as RadarError)."""
    from core.config import load_config
    from core.data.feed import iso_ms

    options = options_from_args(args)
    if args.report is not None and not options.replay:
        raise UsageError("--report needs --replay (the report is written at the end of the data)")
    cfg = load_config(args.config_dir)
    db = options.db
    log_file = args.log_file or db.parent / "logs" / "radar-run.jsonl"
    setup_logging(log_file, args.verbose, tighten_folder=args.log_file is None)
    args.secrets = _secrets()
    if args.secrets is not None:                    # every handler of the run masks the secrets' values
        from core.config import install_redaction

        install_redaction(args.secrets)
    args.trade_log = Path(log_file).parent / TRADE_LOG_NAME
    plan = plan_engine(cfg, options)
    if plan.live_plan:
        _print_banner(live_banner_lines(plan.live_plan, float(cfg.risk.account.initial_capital)))
    if plan.previous_db is not None:
        log.info("fresh replay: new database %s (the previous state in %s is left untouched)", plan.db,
                 plan.previous_db)
        print(f"radar run: fresh replay into a new database: {plan.db} "
              f"(the previous state stays in {plan.previous_db})", file=sys.stderr)
    engine = build_engine(cfg, options, plan=plan)
    t0 = time.monotonic()
    asyncio.run(_main(engine, args, plan.db))
    elapsed = time.monotonic() - t0
    n = engine.stats.candles
    rate = engine.stats.rate()
    log.info("processed %d candles in %.2f s (%.0f candles/s)", n, elapsed, rate)
    print(f"radar run: {n} candles, {rate:,.0f} candles/s, {'finished' if engine.finished else 'stopped'}",
          file=sys.stderr)
    done_at = replay_complete_at(engine) if plan.replay else None
    if done_at is not None:
        msg = (f"replay already complete at {iso_ms(done_at)} in {plan.db}: nothing left to replay; "
               "use --fresh to replay again into a new database")
        log.warning(msg)
        print(f"radar run: {msg}", file=sys.stderr)
    if args.report is not None:
        from core.backtest.report import build_report, write_report

        if not engine.finished:
            log.warning("the replay did not reach the end of its data: no report written")
            return 1
        write_report(args.report, build_report(plan.db, plan.account,
                                               [(s.strategy, s.symbol, s.timeframe) for s in plan.specs]))
        log.info("report written to %s", args.report)
    return 0


def _secrets():
    from core.config import load_secrets

    try:
        return load_secrets()
    except Exception as exc:
        log.warning("secrets not loaded (%s): no Telegram bot in this run", exc)
        return None


async def _main(engine, args, db: Path) -> None:
    """Lock, services, engine (headless or with the console), services closed."""
    from core.engine.services import RunServices

    engine.acquire_lock()
    try:
        secrets = args.secrets if hasattr(args, "secrets") else _secrets()
        from core.paths import DEFAULT_CONFIG_DIR

        services = await RunServices.open(engine, db, secrets=secrets,
                                          config_dir=args.config_dir or DEFAULT_CONFIG_DIR,
                                          mode="headless" if args.no_ui else "console",
                                          trade_log=getattr(args, "trade_log", None),
                                          trade_log_tighten=getattr(args, "log_file", None) is None)
    except BaseException:
        engine._lock.release()
        raise
    try:
        if args.no_ui:
            await _run(engine)
        else:
            if _console_runner is None:
                raise UsageError("the console is not available from this entry point: start it with the "
                                 "`radar` console script, or run headless with --no-ui")
            server = services.api                   # the console's commands go through its audited path
            await _console_runner(engine, readonly=args.readonly, alerts=services.alerts, jobs=services.jobs,
                                  health=services.watchdog, api=server.api if server is not None else None,
                                  commands=server.run_command if server is not None else None)
    finally:
        await services.close()
        log.info("services closed (alerts raised by the engine: %d)", services.bridge.raised if services.bridge else 0)


async def _run(engine) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, engine.request_stop)
        except (NotImplementedError, RuntimeError):  # pragma: no cover
            pass
    await engine.run()
