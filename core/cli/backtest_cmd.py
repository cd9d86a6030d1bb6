"""`radar backtest`: backtest one strategy on one stored series or one freqtrade file.

    radar backtest --strategy NAME --symbol BTC/USDT --timeframe 1h [--market spot]
                   [--from DATE] [--to DATE] [--param KEY=VALUE ...] [--engine event|fast] [--json]
                   [--report-html FILE]
    radar backtest --strategy NAME --data BTC_USDT-1h.json.gz [--timeframe TF] [...]

Resampling: with --data, a --timeframe coarser than the file's (named) timeframe resamples
its candles (`core.data.aggregate.resample_candles`: 1m/5m -> 15m/1h/4h/1d, UTC-aligned
buckets, a bucket kept only when all its base candles are there, OHLCV first open / max high /
min low / last close / summed volume); --from/--to then apply to the resampled open times.
A finer or non-multiple --timeframe is refused (exit 2). From the store, when no --timeframe
series of the symbol is stored but a finer one dividing it is (e.g. 5m for 1h), the coarsest
such series is resampled the same way (`core.backtest.loading.load_from_store`). The `funding` strategy on a --data
perpetual file reads the funding-rate file beside it (`BTC_USDT_USDT-8h-funding_rate.json.gz`)
when no --funding-data is given, resampled or not.
Parameters: the config's (`strategies.yaml`, with the symbol's override) when the config
package is there, else the strategy's defaults; then each `--param` replaces one.
Account (capital, leverage, fees): `risk.yaml` when the config is there, else the spec's
defaults (10,000 USDT, 1x, 0.0002 / 0.0006).
Output: a Rich table of the metrics and the last 10 cycles; with `--json` exactly the spec's
JSON (`BacktestResult.to_spec_json()`, `../shared/specs/envelope_dca.md` "Outputs") and
nothing else on stdout. `--report-html FILE` also writes the HTML performance report
(`core.performance.html_report`: quantstats tearsheet, curves, monthly table, cycle stats).
Exit codes: 0 ok; 2 bad arguments, parameters, config or data; 1 other errors.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

from core.backtest.result import BacktestResult
from core.errors import RadarError, UsageError
from core.model.account import Account
from core.strategies import registry

_INT_RE = re.compile(r"^[+-]?[0-9]+$")
_MS_RE = re.compile(r"^[0-9]{10,}$")


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `backtest` to the top-level parser."""
    p = sub.add_parser("backtest", help="backtest a strategy on stored candles or a freqtrade file",
                       description="Backtest one strategy on one candle series (the store, or --data FILE).")
    p.add_argument("--strategy", required=True, choices=registry.names(), help="strategy name")
    p.add_argument("--symbol", help="ccxt symbol, e.g. BTC/USDT (required without --data; "
                   "with --data it overrides the file name)")
    p.add_argument("--timeframe", help="candle timeframe, e.g. 1h (required without --data); with --data, a "
                   "coarser timeframe than the file's resamples its candles (5m file, --timeframe 1h)")
    p.add_argument("--market", choices=("spot", "futures"),
                   help="market (default: futures for BASE/QUOTE:SETTLE symbols, else spot)")
    p.add_argument("--data", type=Path, metavar="FILE",
                   help="freqtrade-layout file (BTC_USDT-1h.json.gz) instead of the store")
    p.add_argument("--from", dest="start", metavar="DATE",
                   help="first candle open time, inclusive: YYYY-MM-DD[THH:MM[:SS]] (UTC) or ms")
    p.add_argument("--to", dest="end", metavar="DATE",
                   help="end of the range, exclusive (candles opening before it), same formats")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="set one strategy parameter (repeatable), e.g. --param ma_period=10")
    p.add_argument("--engine", choices=("event", "fast"), default="event",
                   help="event: the event-driven engine (default); fast: the numba engine")
    p.add_argument("--funding-data", type=Path, metavar="FILE",
                   help="funding-rate file (BTC_USDT_USDT-8h-funding_rate.json.gz) for the `funding` "
                   "strategy; default: the stored funding rates of the symbol")
    p.add_argument("--json", action="store_true", help="print only the spec's result JSON")
    p.add_argument("--report-html", type=Path, metavar="FILE",
                   help="also write a standalone HTML performance report (core.performance.html_report)")
    p.set_defaults(func=cmd_backtest)


def parse_date_ms(text: str, flag: str) -> int:
    """ms UTC of `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS]` (UTC unless an offset is given) or an integer ms.

    Raises:
        UsageError: anything else.
    """
    s = text.strip()
    if _MS_RE.match(s):
        return int(s)
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] (UTC) "
                         "or a timestamp in ms") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def parse_params(items: list[str]) -> dict:
    """`KEY=VALUE` strings to a dict; VALUE an integer or a float.

    Raises:
        UsageError: no `=`, an empty key, a key given twice, or a value that is not a number.
    """
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise UsageError(f"--param {item!r}: expected KEY=VALUE, e.g. ma_period=7")
        if key in out:
            raise UsageError(f"--param {key} given twice")
        if _INT_RE.match(value):
            out[key] = int(value)
            continue
        try:
            out[key] = float(value)
        except ValueError:
            raise UsageError(f"--param {key}={value!r}: expected a number") from None
    return out


def data_timeframes(path: Path, timeframe: str | None) -> tuple[str | None, str | None]:
    """(the file's timeframe override, the timeframe to resample into) for `--data path --timeframe tf`.

    A file whose name says its timeframe (BTC_USDT_USDT-5m-futures.json.gz) keeps it, and a
    different --timeframe is the one to resample into (checked by `check_resample`: a finer or
    non-multiple one raises UsageError naming --timeframe and both timeframes). A file whose name
    does not say it takes --timeframe as its own (no resampling).

    Raises:
        UsageError: as `core.data.aggregate.check_resample`.
    """
    from core.data.aggregate import check_resample
    from core.data.freqtrade import parse_file_name
    from core.errors import DataError

    try:
        named = parse_file_name(path).timeframe
    except DataError:
        named = None
    if named is None or timeframe is None:
        return (timeframe if named is None else None), None
    return None, (timeframe if check_resample(named, timeframe) else None)


def _config_defaults(config_dir: Path, strategy: str, symbol: str | None) -> tuple[dict, Account]:
    """The configured params of `strategy` for `symbol` and the account of risk.yaml; the
    strategy defaults and `Account()` when the config package is not there."""
    try:
        from core.config import load_config, strategy_params
    except ImportError:
        return {}, Account()
    from core.engine.assembly import account_from_config

    cfg = load_config(config_dir)
    params = strategy_params(cfg, strategy, symbol).model_dump()
    return params, account_from_config(cfg)


def _funding_series(args: argparse.Namespace, symbol: str, start: int | None, end: int | None):
    """(ts, rate) of the funding strategy's funding rates: `--funding-data`, else the store.

    Raises:
        UsageError: none given and none stored for `symbol`.
        DataError: the file is not a funding-rate file or has bad rows.
    """
    from core.errors import DataError

    if args.funding_data is None and args.data is not None and symbol.endswith(":USDT"):
        from core.engine.assembly import funding_beside

        beside = funding_beside(args.data)
        if beside is not None:
            return beside
    if args.funding_data is not None:
        from core.data.freqtrade import read_data_file

        spec, series = read_data_file(args.funding_data)
        if spec.kind != "funding":
            raise DataError(f"--funding-data {args.funding_data}: not a funding-rate file "
                            "(expected a name like BTC_USDT_USDT-8h-funding_rate.json.gz)")
        return series.ts, series.rate
    if args.db.exists():
        from core.storage.candle_store import load_funding_rates
        from core.storage.db import open_sync

        conn = open_sync(args.db)
        try:
            ts, rate = load_funding_rates(conn, symbol)
        finally:
            conn.close()
        if len(ts):
            return ts, rate
    raise UsageError(f"the funding strategy needs funding rates of {symbol}: give --funding-data FILE, put "
                     "the funding-rate file beside the --data file "
                     "or import/download them first (radar data import / radar data download --funding)")


def _run(engine: str, candles, strategy: str, params: dict, account: Account,
         funding=None) -> BacktestResult:
    if engine == "fast":
        try:
            from core.backtest.fast import run_fast
        except ImportError as exc:
            raise RadarError(f"--engine fast: the fast engine (core.backtest.fast.run_fast) is not "
                             f"available: {exc}; use --engine event") from exc
        return run_fast(candles, strategy, params, account, funding=funding)
    from core.backtest.event_engine import run_event_backtest

    return run_event_backtest(candles, strategy, params, account, funding=funding)


def cmd_backtest(args: argparse.Namespace) -> int:
    """Run `radar backtest`; returns the exit code (errors are raised as RadarError)."""
    from core.backtest import loading

    overrides = parse_params(args.param)
    start = parse_date_ms(args.start, "--from") if args.start else None
    end = parse_date_ms(args.end, "--to") if args.end else None
    if start is not None and end is not None and end <= start:
        raise UsageError(f"--to must be after --from, got {args.start} .. {args.end}")
    if args.data is None and (not args.symbol or not args.timeframe):
        raise UsageError("give --symbol and --timeframe (stored candles) or --data FILE")

    file_tf = resample = None
    if args.data is not None:
        from core.data.freqtrade import parse_file_name

        file_tf, resample = data_timeframes(args.data, args.timeframe)
        symbol = parse_file_name(args.data, args.symbol, args.market, file_tf).symbol
    else:
        symbol = args.symbol
    defaults, account = _config_defaults(args.config_dir, args.strategy, symbol)
    params = registry.create(args.strategy, {**defaults, **overrides}).params  # validates first
    if args.data is not None:
        candles = loading.load_from_file(args.data, args.symbol, args.market, file_tf, start, end,
                                         resample=resample)
    else:
        market = args.market or ("futures" if ":" in args.symbol else "spot")
        candles = loading.load_from_store(args.db, args.symbol, market, args.timeframe, start, end)

    funding = (_funding_series(args, symbol, start, end)
               if args.strategy in ("funding", "grid_funding", "grid_funding_short") else None)
    if args.strategy == "liquidation":         # its side series: the open interest stored in --db
        from core.engine.assembly import stored_open_interest

        funding = stored_open_interest(args.db, symbol)
        if funding is None:
            raise UsageError(f"the liquidation strategy needs the open interest of {symbol} stored in {args.db}: "
                             "download it first (radar data download --open-interest)")
    result = _run(args.engine, candles, args.strategy, params, account, funding)
    if getattr(args, "report_html", None) is not None:
        from core.performance.html_report import write_html
        from core.performance.sources import from_result

        write_html(args.report_html, from_result(result))
        print(f"HTML report written to {args.report_html}", file=sys.stderr)
    if args.json:
        sys.stdout.write(json.dumps(result.to_spec_json()) + "\n")
        return 0
    _print_report(result, candles, args.engine,
                  f"resampled from the file's {parse_file_name(args.data).timeframe} candles" if resample else "")
    return 0


def _fmt(value, kind: str = "num") -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{value * 100:.2f} %"
    if kind == "usdt":
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.3f}"


def _fmt_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def _print_report(result: BacktestResult, candles, engine: str, note: str = "") -> None:
    """The human report: run header, metrics table, last 10 cycles."""
    from rich.console import Console
    from rich.table import Table

    from core.backtest.metrics import summarize

    out = sys.stdout
    console = Console(file=out, width=None if out.isatty() else 160, highlight=False)
    n = len(candles)
    params = ", ".join(f"{k}={v}" for k, v in result.params.items())
    console.print(f"{result.strategy} on {result.symbol} {candles.market} {result.timeframe}: {n:,} candles "
                  f"{_fmt_ms(int(candles.ts[0]))} .. {_fmt_ms(int(candles.ts[-1]))} UTC, engine {engine}"
                  + (f" ({note})" if note else ""))
    console.print(f"params: {params}")
    acc = result.account
    console.print(f"account: {acc.initial_capital:,.2f} USDT, leverage {acc.leverage:g}, "
                  f"fees maker {acc.maker_fee:g} / taker {acc.taker_fee:g}")

    s = summarize(result)
    t = Table(title="Metrics")
    t.add_column("metric", no_wrap=True)
    t.add_column("value", justify="right", no_wrap=True)
    rows = (("cycles", s["n_cycles"], "num"), ("final equity (USDT)", s["final_equity"], "usdt"),
            ("total return", s["total_return"], "pct"), ("CAGR", s["cagr"], "pct"),
            ("max drawdown", s["max_drawdown"], "pct"), ("Sharpe (daily, √365)", s["sharpe"], "num"),
            ("Sortino (daily, √365)", s["sortino"], "num"), ("Calmar", s["calmar"], "num"),
            ("win rate", s["win_rate"], "pct"), ("profit factor", s["profit_factor"], "num"),
            ("expectancy (USDT/cycle)", s["expectancy"], "usdt"), ("exposure", s["exposure"], "pct"))
    for label, value, kind in rows:
        t.add_row(label, _fmt(value, kind))
    console.print(t)

    last = result.cycles[-10:]
    if not last:
        console.print("no cycle")
        return
    ct = Table(title=f"Last {len(last)} of {result.n_cycles} cycles (times UTC)")
    for col, just in (("opened", "left"), ("closed", "left"), ("side", "left"), ("levels", "right"),
                      ("avg entry", "right"), ("exit", "right"), ("reason", "left"), ("qty", "right"),
                      ("pnl (USDT)", "right")):
        ct.add_column(col, justify=just, no_wrap=True)
    for c in last:
        ct.add_row(_fmt_ms(c.open_time), _fmt_ms(c.close_time), c.side, str(c.levels_filled),
                   f"{c.avg_entry:,.6g}", f"{c.exit_price:,.6g}", c.exit_reason, f"{c.qty:.6g}", f"{c.pnl:,.2f}")
    console.print(ct)
