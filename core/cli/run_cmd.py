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
    p.add_argument("--adopt-history", action="store_true",
                   help="with --live: record orders of this installation that the database does not know (a "
                        "lost or replaced database) as its own and adopt the open position; only on purpose")
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
    from core.data.live_feed import LiveFeed, TickerFeed

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
            from core.errors import DataError
            from core.storage.candle_store import load_candles
            from core.storage.db import open_sync

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
                                replay=False, store_db=db_path, aclose=exchange.close if not out else None,
                                make_ticker_feed=lambda s=symbol: TickerFeed(exchange, s)))
    return out


# ------------------------------------------------------------------------------ the command
def _enabled_strategies(cfg, grid_only: bool = False) -> list[str]:
    """The enabled, implemented strategies of strategies.yaml (grid ones only with `grid_only`)."""
    from core.strategies import registry
    from core.strategies.base import GridStrategy

    out = []
    for name in cfg.enabled_strategies():
        if name not in registry.STRATEGIES:
            log.warning("strategy %s is enabled but not implemented yet: skipped", name)
            continue
        if grid_only and not isinstance(registry.create(name, {}), GridStrategy):
            log.warning("strategy %s is a single-position strategy: it trades on paper only so far: skipped", name)
            continue
        out.append(name)
    return out


def _needs_funding(name: str) -> bool:
    from core.strategies import registry

    return bool(getattr(registry.create(name, {}), "NEEDS_FUNDING", False))


def funding_beside(path: Path):
    """(ts, rate) of the funding-rate file beside a futures candle file (freqtrade layout:
    BTC_USDT_USDT-5m-futures.json.gz -> BTC_USDT_USDT-8h-funding_rate.json.gz), or None."""
    from core.data.freqtrade import read_data_file

    stem = path.name.split("-", 1)[0]
    for cand in sorted(path.parent.glob(f"{stem}-*-funding_rate.json*")):
        spec, series = read_data_file(cand)
        if spec.kind == "funding":
            return series.ts, series.rate
    return None


def stored_funding(db_path: Path, symbol: str):
    """(ts, rate) of the funding rates stored for `symbol`, or None."""
    if not db_path.exists():
        return None
    from core.storage.candle_store import load_funding_rates
    from core.storage.db import open_sync

    conn = open_sync(db_path)
    try:
        ts, rate = load_funding_rates(conn, symbol)
    finally:
        conn.close()
    return (ts, rate) if len(ts) else None


LIVE_KEYS = ("BITGET_API_KEY", "BITGET_API_SECRET", "BITGET_API_PASSPHRASE")


def live_plan(cfg, secrets) -> dict:
    """What `--live` would trade: {exchange, strategies, symbols, missing_keys}. The strategies
    are the enabled grid strategies with live_eligible: true; the symbols the USDT-M
    perpetuals of assets.yaml (spot assets are not traded live); `secrets` a
    `core.config.secrets.Secrets` (environment and .env)."""
    have = (secrets.bitget_api_key, secrets.bitget_api_secret, secrets.bitget_api_passphrase)
    missing = [k for k, v in zip(LIVE_KEYS, have) if v is None or not v.get_secret_value()]
    grid = set(_enabled_strategies(cfg, grid_only=True))
    strategies = [n for n, s in cfg.strategies.items() if n in grid and getattr(s, "live_eligible", False)]
    symbols = [a.symbol for a in cfg.assets if a.symbol.endswith(":USDT")]
    acc = next(iter(cfg.exchanges.values()), None)
    return {"exchange": acc, "strategies": strategies, "symbols": symbols, "missing_keys": missing}


def _live_banner(plan: dict, capital: float) -> None:
    acc = plan["exchange"]
    lines = ["LIVE TRADING (--live): REAL ORDERS ON THE EXCHANGE",
             f"  account: {acc.id} {'DEMO/SANDBOX' if acc.sandbox else 'MAINNET - REAL MONEY'}, uta {acc.uta}, "
             f"{acc.margin_mode} margin, one-way, client id prefix {acc.client_order_prefix}",
             f"  strategies (live_eligible): {', '.join(plan['strategies'])}",
             f"  symbols: {', '.join(plan['symbols'])}",
             f"  capital: {capital:,.2f} USDT split over the runners (capped by the balance)"]
    width = max(len(x) for x in lines) + 4
    print("!" * width, file=sys.stderr)
    for x in lines:
        print(f"! {x.ljust(width - 4)} !", file=sys.stderr)
    print("!" * width, file=sys.stderr)
    for x in lines:
        log.warning(x)


def _live_setup(cfg, secrets, plan: dict, leverage: int, adopt_history: bool = False):
    """The LiveSetup of a live run: one ccxt bitget client (keys from the environment) shared
    by the gateways of every symbol, behind one circuit breaker."""
    from core.engine.engine import LiveSetup
    from core.health.breaker import CircuitBreaker
    from core.venues.bitget.gateway import CcxtGateway, exchange_from_secrets

    acc = plan["exchange"]
    exchange = exchange_from_secrets(acc, secrets)
    breaker = CircuitBreaker(f"{acc.id}-private", failure_threshold=5, cooldown_s=30.0, max_cooldown_s=300.0)
    stops = cfg.risk.stops

    def gateway(symbol: str):
        return CcxtGateway(acc, symbol, exchange, leverage=leverage, breaker=breaker)

    return LiveSetup(gateway, acc.client_order_prefix, stop_retries=int(stops.placement_retries),
                     recheck_interval_s=float(stops.recheck_interval_s),
                     unprotected_grace_s=float(stops.unprotected_grace_s), adopt_history=adopt_history)


def cmd_run(args: argparse.Namespace) -> int:
    from core.config import load_config, strategy_params
    from core.engine.engine import Engine, RunnerSpec
    from core.executor.grid_executor import fee_reserve
    from core.model.account import Account

    speed = parse_speed(args.speed)
    cfg = load_config(args.config_dir)
    plan = None
    if args.adopt_history and not args.live:
        raise UsageError("--adopt-history adopts an exchange's orders and position: it goes with --live")
    if args.live:
        if args.replay:
            raise UsageError("--live trades the exchange's live feed: it cannot be combined with --replay")
        from core.config import load_secrets

        secrets = load_secrets()
        plan = live_plan(cfg, secrets)
        if plan["missing_keys"]:
            raise UsageError(f"--live needs the API keys in the environment or .env: {', '.join(plan['missing_keys'])} "
                             "not set; nothing was started")
        if not plan["strategies"]:
            raise UsageError("--live: no enabled grid strategy has live_eligible: true in strategies.yaml; "
                             "nothing was started")
        if not plan["symbols"] or plan["exchange"] is None:
            raise UsageError("--live: assets.yaml has no USDT-M perpetual (symbol like BTC/USDT:USDT) or "
                             "exchanges.yaml no exchange; nothing was started")
    if args.report is not None and not args.replay:
        raise UsageError("--report needs --replay (the report is written at the end of the data)")
    db = Path(args.db)
    setup_logging(args.log_file or db.parent / "logs" / "radar-run.jsonl", args.verbose,
                  tighten_folder=args.log_file is None)
    risk = cfg.risk
    account = Account(initial_capital=float(risk.account.initial_capital), leverage=float(risk.account.leverage),
                      maker_fee=float(risk.fees.maker), taker_fee=float(risk.fees.taker))
    strategies = plan["strategies"] if plan else _enabled_strategies(cfg)
    if not strategies:
        raise UsageError("no enabled strategy in strategies.yaml: nothing to run")
    if plan:
        sources = [s for s in live_sources(cfg, db) if s.symbol in plan["symbols"]]
        _live_banner(plan, float(risk.account.initial_capital))
    elif args.replay:
        sources = [replay_source(p, speed)[0] for p in args.replay]
        if any(_needs_funding(n) for n in strategies):
            for src, path in zip(sources, args.replay):
                src.funding = funding_beside(path) if src.symbol.endswith(":USDT") else None
        keys = [(s.symbol, s.timeframe) for s in sources]
        if len(set(keys)) != len(keys):
            raise UsageError("--replay: two files of the same symbol and timeframe")
    else:
        sources = live_sources(cfg, db)
    if not args.replay and any(_needs_funding(n) for n in strategies):
        for src in sources:
            src.funding = stored_funding(db, src.symbol) if src.symbol.endswith(":USDT") else None
    specs = []
    for src in sources:
        for name in strategies:
            if _needs_funding(name) and getattr(src, "funding", None) is None:
                log.warning("%s on %s skipped: it needs the perpetual's funding rates (none %s)", name, src.symbol,
                            "beside the replayed file" if args.replay else "stored: radar data download --funding")
                continue
            specs.append(RunnerSpec(name, strategy_params(cfg, name, src.symbol).model_dump(), src.symbol,
                                    src.timeframe))
    if not specs:
        raise UsageError("no strategy can run on the given data (see the warnings above)")
    if not args.replay:
        # one account trades every runner: each gets an equal share of the capital
        n = len(specs)
        account = Account(initial_capital=float(risk.account.initial_capital) / n,
                          leverage=float(risk.account.leverage), maker_fee=float(risk.fees.maker),
                          taker_fee=float(risk.fees.taker))
        log.info("capital %.2f USDT split over %d runner(s): %.2f each", risk.account.initial_capital, n,
                 account.initial_capital)
    risk_on = args.risk == "on" or (args.risk == "auto" and not args.replay)
    if not risk_on:
        log.warning("risk checks are OFF for this run (%s): entries are not checked against risk.yaml limits "
                    "and the loss limits do not trip the kill switch", "--risk off" if args.risk == "off"
                    else "a replay; --risk on to apply them")
    from core.risk import groups_from_assets

    live = None
    if plan:
        live = _live_setup(cfg, secrets, plan, int(risk.account.leverage), adopt_history=args.adopt_history)
    engine = Engine(db, sources, specs, account, status_interval=args.status_interval,
                    risk_config=cfg.risk if risk_on else None,
                    risk_groups=_risk_groups(cfg, groups_from_assets) if risk_on else None,
                    mode="live" if plan else "paper", live=live, id_prefix=plan["exchange"].client_order_prefix
                    if plan else "rd", sizing_reserve=0.0 if args.replay else fee_reserve(account))
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
        from core.backtest.report import build_report, write_report

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
