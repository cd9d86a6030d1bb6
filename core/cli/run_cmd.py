"""`radar run`: the trading engine, with the console or headless.

    radar run [--no-ui] [--readonly] [--replay PATH ...] [--speed N|max] [--report PATH] [--live]
              [--status-interval S] [--risk on|off|auto]

* Console: without --no-ui the console (`tui.hosting.run_console`) hosts the engine in the
  same loop (q quits and stops the engine, d / SIGHUP detach and the engine carries on
  headless); `--readonly` shows it without the commands that change anything.
* Services (`core.engine.services`), built after the database lock is taken and before the
  first candle, closed after the engine stopped: alerts (engine events -> alerts, see
  `core.engine.alerting`), research jobs, the health watchdog and its heartbeat (`radar
  health` in another process), the Telegram bot when TELEGRAM_BOT_TOKEN is set.
* Risk (`core.risk`): `--risk on` checks every entry before it is placed and trips the kill
  switch on the loss limits of risk.yaml; `auto` (default) is on for the live feed and OFF
  for a replay (logged), because the default limits refuse the default grid's entries
  (3 levels of cash/3 on one symbol exceed limits.max_notional_per_symbol) and a replay's
  report must equal the backtest; pass `--risk on` to replay with the limits.

* Strategies: the enabled grid strategies of `strategies.yaml` with their params (per-symbol
  overrides), on every replayed series (symbol and timeframe from the freqtrade file name:
  BTC_USDT-1h.json.gz runs as BTC/USDT 1h) or, without --replay, on the assets of
  `assets.yaml` (first timeframe each) through the exchange's public live feed (ccxt.pro).
* Paper trading is the default and the only mode so far: `--live` checks the keys and
  `live_eligible`, then refuses (exit 2) because the live gateway is not built yet.
* State: the database of `--db` (trading tables of migration 5); a run restarted on the same
  database resumes after the last candle it processed; one engine per database.
* `--replay`: the run ends at the end of the data (open cycles closed at the last close,
  "end"); `--report PATH` then writes a JSON list with, per (strategy, symbol), exactly the
  spec's backtest JSON.
* Logs: a Rich console handler and a JSON-lines file `<db folder>/logs/radar-run.jsonl`;
  a status line every `--status-interval` seconds; SIGINT/SIGTERM stop gracefully (state kept).
Exit codes: 0 ok; 2 bad arguments/config/data, live refused, database locked; 1 other errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from core.errors import RadarError, UsageError

log = logging.getLogger("core.cli.run")


#: The console launcher `async (engine, *, readonly, alerts, jobs, health) -> outcome`, registered
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
    p.add_argument("--status-interval", type=float, default=10.0, metavar="S",
                   help="seconds between status lines (0: none; default 10)")
    p.add_argument("--log-file", type=Path, metavar="PATH",
                   help="JSON-lines log file (default: <db folder>/logs/radar-run.jsonl)")
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


def setup_logging(log_file: Path, verbose: int) -> None:
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
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fh = logging.FileHandler(log_file, encoding="utf-8")
    fh.setFormatter(JsonLinesFormatter())
    fh.setLevel(logging.INFO)
    root.addHandler(fh)
    root.setLevel(min(level, logging.INFO))


# ------------------------------------------------------------------------------ sources
def parse_speed(text: str):
    if text == "max":
        return "max"
    try:
        v = float(text)
    except ValueError:
        raise UsageError(f"--speed {text!r}: expected a positive number or max") from None
    if not v > 0:
        raise UsageError(f"--speed {text!r}: expected a positive number or max")
    return v


def replay_source(path: Path, speed):
    """A CandleSource replaying a freqtrade file (validated when loaded)."""
    import numpy as np

    from core.backtest.loading import load_from_file
    from core.data.replay import ReplayFeed
    from core.engine.engine import CandleSource

    candles = load_from_file(path)
    ts_arr = candles.ts
    cols = None

    def history(up_to: int | None, n: int):
        nonlocal cols
        if cols is None:
            cols = [a.tolist() for a in (candles.ts, candles.open, candles.high, candles.low, candles.close)]
        hi = len(cols[0]) if up_to is None else int(np.searchsorted(ts_arr, up_to, "right"))
        lo = max(0, hi - n)
        return zip(*(c[lo:hi] for c in cols))

    def make_feed(after: int | None):
        return ReplayFeed.from_candles(candles, speed=speed, start_after_ts=after)

    return CandleSource(candles.symbol, candles.timeframe, make_feed, history, replay=True), candles


def live_sources(cfg, db_path: Path) -> list:
    """CandleSources of every asset (first timeframe) on the first exchange of exchanges.yaml,
    public ccxt.pro feeds; history from the candle store."""
    from core.data.engine import market_of_symbol
    from core.engine.engine import CandleSource

    try:
        import ccxt.pro as ccxtpro
    except ImportError as exc:
        raise RadarError(f"the live feed needs ccxt.pro: {exc}") from exc
    from core.data.live_feed import LiveFeed

    if not cfg.exchanges:
        raise UsageError("exchanges.yaml has no exchange: cannot run on the live feed (use --replay PATH)")
    acc = next(iter(cfg.exchanges.values()))
    cls = getattr(ccxtpro, acc.id, None)
    if cls is None:
        raise UsageError(f"ccxt.pro has no exchange {acc.id!r}")
    exchange = cls({"enableRateLimit": True, "timeout": acc.timeouts.request_ms})
    out = []
    for asset in cfg.assets:
        symbol, tf = asset.symbol, asset.timeframes[0]

        def history(up_to, n, symbol=symbol, tf=tf):
            from core.storage.candle_store import load_candles
            from core.storage.db import open_sync
            from core.errors import DataError

            conn = open_sync(db_path)
            try:
                c = load_candles(conn, symbol, market_of_symbol(symbol), tf, None,
                                 None if up_to is None else up_to + 1)
            except DataError:
                return []
            finally:
                conn.close()
            rows = list(zip(c.ts.tolist(), c.open.tolist(), c.high.tolist(), c.low.tolist(), c.close.tolist()))
            return rows[-n:]

        out.append(CandleSource(symbol, tf, lambda after, s=symbol, t=tf: LiveFeed(exchange, s, t), history,
                                replay=False, store_db=db_path, aclose=exchange.close if not out else None))
    return out


# ------------------------------------------------------------------------------ the command
def _enabled_grid_strategies(cfg) -> list[str]:
    from core.strategies import registry
    from core.strategies.base import GridStrategy

    out = []
    for name in cfg.enabled_strategies():
        if name not in registry.STRATEGIES:
            log.warning("strategy %s is enabled but not implemented yet: skipped", name)
            continue
        if not isinstance(registry.create(name, {}), GridStrategy):
            log.warning("strategy %s is not a grid strategy: the engine cannot drive it yet: skipped", name)
            continue
        out.append(name)
    return out


def _refuse_live(cfg) -> int:
    keys = [k for k in ("BITGET_API_KEY", "BITGET_API_SECRET", "BITGET_API_PASSPHRASE") if os.environ.get(k)]
    eligible = [n for n, s in cfg.strategies.items() if s.enabled and getattr(s, "live_eligible", False)]
    print("radar: LIVE TRADING REQUESTED (--live): real money", file=sys.stderr)
    print(f"radar:   API keys in the environment: {', '.join(keys) or 'none'}", file=sys.stderr)
    print(f"radar:   enabled strategies with live_eligible: true: {', '.join(eligible) or 'none'}", file=sys.stderr)
    print("radar: error: live trading is not available yet: the exchange gateway (CcxtGateway) is not "
          "built; nothing was started. Run without --live for paper trading.", file=sys.stderr)
    return 2


def cmd_run(args: argparse.Namespace) -> int:
    from core.backtest.result import Account
    from core.config import load_config, strategy_params
    from core.engine.engine import Engine, RunnerSpec

    speed = parse_speed(args.speed)
    cfg = load_config(args.config_dir)
    if args.live:
        return _refuse_live(cfg)
    if args.report is not None and not args.replay:
        raise UsageError("--report needs --replay (the report is written at the end of the data)")
    db = Path(args.db)
    setup_logging(args.log_file or db.parent / "logs" / "radar-run.jsonl", args.verbose)
    risk = cfg.risk
    account = Account(initial_capital=float(risk.account.initial_capital), leverage=float(risk.account.leverage),
                      maker_fee=float(risk.fees.maker), taker_fee=float(risk.fees.taker))
    strategies = _enabled_grid_strategies(cfg)
    if not strategies:
        raise UsageError("no enabled grid strategy in strategies.yaml: nothing to run")
    if args.replay:
        sources = [replay_source(p, speed)[0] for p in args.replay]
        keys = [(s.symbol, s.timeframe) for s in sources]
        if len(set(keys)) != len(keys):
            raise UsageError("--replay: two files of the same symbol and timeframe")
    else:
        sources = live_sources(cfg, db)
    specs = [RunnerSpec(name, strategy_params(cfg, name, s.symbol).model_dump(), s.symbol, s.timeframe)
             for s in sources for name in strategies]
    risk_on = args.risk == "on" or (args.risk == "auto" and not args.replay)
    if not risk_on:
        log.warning("risk checks are OFF for this run (%s): entries are not checked against risk.yaml limits "
                    "and the loss limits do not trip the kill switch", "--risk off" if args.risk == "off"
                    else "a replay; --risk on to apply them")
    from core.risk import groups_from_assets

    engine = Engine(db, sources, specs, account, status_interval=args.status_interval,
                    risk_config=cfg.risk if risk_on else None,
                    risk_groups=_risk_groups(cfg, groups_from_assets) if risk_on else None)
    for src in sources:
        src.speed = speed if args.replay else None
    t0 = time.monotonic()
    asyncio.run(_main(engine, args, db))
    elapsed = time.monotonic() - t0
    n = engine.stats.candles
    rate = engine.stats.rate()
    log.info("processed %d candles in %.2f s (%.0f candles/s)", n, elapsed, rate)
    print(f"radar run: {n} candles, {rate:,.0f} candles/s, {'finished' if engine.finished else 'stopped'}",
          file=sys.stderr)
    if args.report is not None:
        from core.engine.report import build_report, write_report

        if not engine.finished:
            log.warning("the replay did not reach the end of its data: no report written")
            return 1
        write_report(args.report, build_report(db, account, [(s.strategy, s.symbol, s.timeframe) for s in specs]))
        log.info("report written to %s", args.report)
    return 0


def _risk_groups(cfg, groups_from_assets) -> dict[str, str]:
    """symbol -> assets.yaml group (`cfg.assets` is the list of assets of assets.yaml)."""
    from types import SimpleNamespace

    assets = cfg.assets
    return groups_from_assets(assets if hasattr(assets, "assets") else SimpleNamespace(assets=list(assets)))


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
        services = await RunServices.open(engine, db, secrets=_secrets(),
                                          mode="headless" if args.no_ui else "console")
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
            await _console_runner(engine, readonly=args.readonly, alerts=services.alerts, jobs=services.jobs,
                                  health=services.watchdog)
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
