"""`radar data download`: closed candles (and funding rates) from an exchange into the store.

    radar data download --exchange bitget --symbols BTC/USDT:USDT,ETH/USDT:USDT \\
        --timeframe 1h --since 2024-01-01 [--until DATE] [--funding] [--open-interest] [--quiet]

Per symbol: candles resume after the newest stored candle (else from --since),
then, with --funding, funding rates the same way, and with --open-interest the
open interest (`core.data.open_interest_download`: the history where ccxt offers
it, else, as on bitget, the current snapshot). One line per series is
printed; a failed symbol is reported on stderr and the others still download
(exit code: the highest of the failures, 0 when none failed). A Rich progress
bar per series is shown on a terminal (not with --quiet or when piped).

The exchange is built from `exchanges.yaml` only as far as public market data
needs: the account whose `id` is --exchange gives the request timeout and the
minimum spacing of requests (never below ccxt's own rate limit for the
exchange). No API keys are used, and `sandbox` is not applied: demo-trading
markets are not the market's history.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from core.data.download import RetryPolicy, download_candles, fmt_utc, market_of, override_api_urls, with_retry
from core.data.funding_download import download_funding, offers_funding
from core.data.open_interest_download import download_open_interest, open_interest_mode
from core.data.timeframes import timeframe_ms
from core.errors import DataError, RadarError, UsageError
from core.storage.db import open_sync

EXCHANGES_FILE = "exchanges.yaml"


def register(dsub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `download` to the `data` subcommand group."""
    p = dsub.add_parser(
        "download", help="download closed candles (and funding rates) from an exchange",
        description="Download closed candles through ccxt into the store, resuming after the newest stored "
                    "candle of each series; each page is validated and stored in its own transaction.")
    p.add_argument("--exchange", default="bitget", help="ccxt exchange id (default %(default)s)")
    p.add_argument("--symbols", required=True,
                   help="comma-separated ccxt symbols, e.g. BTC/USDT:USDT,ETH/USDT:USDT (':' = futures, else spot)")
    p.add_argument("--timeframe", required=True, help="candle timeframe, e.g. 1m, 5m, 1h, 4h, 1d")
    p.add_argument("--since", help="first open time when nothing is stored yet: YYYY-MM-DD[THH:MM[:SS]] (UTC)")
    p.add_argument("--until", help="stop before this open time: YYYY-MM-DD[THH:MM[:SS]] (UTC; default: now)")
    p.add_argument("--funding", action="store_true", help="also download funding-rate history (contracts only)")
    p.add_argument("--open-interest", action="store_true",
                   help="also download open interest (contracts only): the history, period --timeframe, where "
                        "ccxt offers it (bybit, binance, okx, ...); bitget offers only the current snapshot")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--retries", type=int, default=5,
                   help="attempts per request on network errors/rate limits (default %(default)s)")
    p.add_argument("--retry-delay", type=float, default=1.0,
                   help="seconds before the first retry, doubling each time (default %(default)s)")
    p.add_argument("--api-url", help=argparse.SUPPRESS)  # tests: send every REST request to a local stub
    p.set_defaults(func=cmd_download)


def parse_date_ms(text: str, flag: str) -> int:
    """ms UTC of `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS]` or with an offset (naive = UTC).

    Raises:
        UsageError: not such a date (`flag` names the option).
    """
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{flag}: expected a date like 2024-01-01 or 2024-01-01T12:00 (UTC), got {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def parse_symbols(text: str) -> list[str]:
    """The comma-separated symbols, stripped, without repeats.

    Raises:
        UsageError: none given, or one is not a ccxt symbol like BASE/QUOTE[:SETTLE].
    """
    out: list[str] = []
    for s in (part.strip() for part in text.split(",")):
        if s and s not in out:
            if "/" not in s:
                raise UsageError(f"--symbols: expected ccxt symbols like BTC/USDT:USDT, got {s!r}")
            out.append(s)
    if not out:
        raise UsageError("--symbols: no symbol given")
    return out


def exchange_settings(config_dir: Path, exchange_id: str) -> Any:
    """The `exchanges.yaml` account whose `id` is `exchange_id` (an `ExchangeConfig`), or None.

    Only `exchanges.yaml` is read (None when the file is missing).

    Raises:
        ConfigError: the file is invalid.
    """
    from core.config.exchanges import ExchangesFile
    from core.config.secret_keys import refuse_secret_keys
    from core.config.translate import to_config_error
    from core.config.yaml_doc import read_yaml

    path = Path(config_dir) / EXCHANGES_FILE
    if not path.is_file():
        return None
    doc = read_yaml(path)
    refuse_secret_keys(doc)
    try:
        accounts = ExchangesFile.model_validate(doc.data, strict=True).exchanges
    except ValidationError as err:
        raise to_config_error(err, doc, ExchangesFile) from None
    return next((acc for acc in accounts.values() if acc.id == exchange_id), None)


def make_exchange(exchange_id: str, settings: Any, symbols: list[str], api_url: str | None = None) -> Any:
    """A public (key-less) ccxt async exchange for downloading market data of `symbols`.

    `settings` (an `ExchangeConfig` or None) gives `timeout` and `rateLimit`
    (never below ccxt's default for the exchange). For bitget, only the market
    types of `symbols` are loaded (swap and/or spot) and the classic v2 API is used.

    Raises:
        UsageError: ccxt has no such exchange.
    """
    if exchange_id not in ccxt_async.exchanges:
        raise UsageError(f"--exchange: ccxt has no exchange {exchange_id!r}")
    cls = getattr(ccxt_async, exchange_id)
    config: dict[str, Any] = {"enableRateLimit": True}
    if settings is not None:
        config["timeout"] = settings.timeouts.request_ms
        config["rateLimit"] = max(settings.rate_limit_ms, cls().rateLimit)
    if exchange_id == "bitget":
        types = sorted({"swap" if market_of(s) == "futures" else "spot" for s in symbols})
        config["options"] = {"fetchMarkets": {"types": types}, "defaultType": types[-1], "uta": False}
    exchange = cls(config)
    if api_url:
        override_api_urls(exchange, api_url)
    return exchange


def cmd_download(args: argparse.Namespace) -> int:
    """`radar data download`: returns 0, or the highest exit code of a failed series.

    Raises:
        UsageError: bad arguments. ConfigError: invalid exchanges.yaml.
        RadarError: the database cannot be opened; the exchange's markets cannot be loaded.
    """
    symbols = parse_symbols(args.symbols)
    try:
        timeframe_ms(args.timeframe)
    except DataError as exc:
        raise UsageError(f"--timeframe: {exc}") from None
    since = None if args.since is None else parse_date_ms(args.since, "--since")
    until = None if args.until is None else parse_date_ms(args.until, "--until")
    if since is not None and until is not None and until <= since:
        raise UsageError(f"--until ({args.until}) must be after --since ({args.since})")
    if args.retries < 1 or args.retry_delay < 0:
        raise UsageError("--retries must be >= 1 and --retry-delay >= 0")
    retry = RetryPolicy(attempts=args.retries, base_delay_s=args.retry_delay)
    settings = exchange_settings(args.config_dir, args.exchange)
    try:
        conn = open_sync(args.db)
    except (OSError, sqlite3.Error) as exc:
        raise RadarError(f"cannot open database {args.db}: {exc}") from exc
    try:
        exchange = make_exchange(args.exchange, settings, symbols, args.api_url)
        return asyncio.run(run_downloads(exchange, conn, symbols, args.timeframe, since, until,
                                         funding=args.funding, retry=retry, quiet=args.quiet,
                                         open_interest=args.open_interest))
    finally:
        conn.close()


async def run_downloads(exchange: Any, conn: sqlite3.Connection, symbols: list[str], timeframe: str,
                        since: int | None, until: int | None, *, funding: bool = False,
                        retry: RetryPolicy = RetryPolicy(), quiet: bool = False,
                        open_interest: bool = False) -> int:
    """Download every symbol's candles (and, with `funding`, funding rates) one after the other.

    Prints one line per series on stdout and each failure on stderr; a failed
    series does not stop the others. `exchange` is closed however this ends
    (also when cancelled). Times ms UTC.

    Returns:
        0, or the highest exit code of the failed series.

    Raises:
        RadarError: the exchange's markets could not be loaded (nothing downloaded).
    """
    out = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160, highlight=False)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                        console=out, disable=quiet or not sys.stdout.isatty())
    exit_code, done, failed = 0, 0, 0
    try:
        await with_retry(lambda: exchange.load_markets(), f"{exchange.id} load markets", retry)
        with_funding = funding and offers_funding(exchange)
        if funding and not with_funding:
            print(f"radar: note: {exchange.id} offers no funding-rate history through ccxt; skipped",
                  file=sys.stderr)
        oi_mode = open_interest_mode(exchange) if open_interest else None
        if open_interest and oi_mode is None:
            print(f"radar: note: {exchange.id} offers no open interest through ccxt; skipped", file=sys.stderr)
        elif oi_mode == "snapshot":
            print(f"radar: note: {exchange.id} offers no open-interest history through ccxt: storing the current "
                  "snapshot only (the engine records one per candle while it runs)", file=sys.stderr)
        with progress:
            for symbol in symbols:
                jobs = [("candles", _candles)]
                if with_funding and market_of(symbol) == "futures":
                    jobs.append(("funding", _funding))
                if oi_mode is not None and market_of(symbol) == "futures":
                    jobs.append(("open interest", _open_interest))
                for kind, job in jobs:
                    task = progress.add_task(f"{symbol} {timeframe if kind == 'candles' else kind}", total=None)

                    def report(n: int, total: int, task: Any = task) -> None:
                        progress.update(task, completed=n, total=max(total, 1))

                    try:
                        line = await job(exchange, conn, symbol, timeframe, since, until, retry, report)
                    except RadarError as err:
                        exit_code, failed = max(exit_code, err.exit_code), failed + 1
                        progress.remove_task(task)
                        print(f"radar: error: {err}", file=sys.stderr, flush=True)
                        if isinstance(err, UsageError):
                            break  # e.g. an unknown symbol: its other series would fail the same way
                        continue
                    progress.update(task, completed=1, total=1)
                    done += 1
                    out.print(line, markup=False, soft_wrap=True)
    finally:
        await exchange.close()
    out.print(f"{done} downloaded, {failed} failed", markup=False, soft_wrap=True)
    return exit_code


async def _candles(exchange: Any, conn: sqlite3.Connection, symbol: str, timeframe: str, since: int | None,
                   until: int | None, retry: RetryPolicy, report: Any) -> str:
    r = await download_candles(exchange, conn, symbol, timeframe, since, until, retry=retry, progress=report)
    head = f"{symbol} {r.market} {timeframe}"
    if not r.rows:
        return f"{head}: nothing new to store ({fmt_utc(r.start_ms)} .. before {fmt_utc(r.end_ms)})"
    return (f"{head}: {r.rows:,} candles stored, {fmt_utc(r.first_ms)} .. {fmt_utc(r.last_ms)} "
            f"({_pages(r.pages)})")


async def _funding(exchange: Any, conn: sqlite3.Connection, symbol: str, timeframe: str, since: int | None,
                   until: int | None, retry: RetryPolicy, report: Any) -> str:
    r = await download_funding(exchange, conn, symbol, since, until, retry=retry, progress=report)
    if not r.rows:
        return f"{symbol} funding: nothing new to store (from {fmt_utc(r.start_ms)})"
    return (f"{symbol} funding: {r.rows:,} rates stored, {fmt_utc(r.first_ms)} .. {fmt_utc(r.last_ms)} "
            f"({_pages(r.pages)})")


async def _open_interest(exchange: Any, conn: sqlite3.Connection, symbol: str, timeframe: str, since: int | None,
                         until: int | None, retry: RetryPolicy, report: Any) -> str:
    r = await download_open_interest(exchange, conn, symbol, timeframe, since, until, retry=retry, progress=report)
    if not r.rows:
        return f"{symbol} open interest ({r.mode}): nothing new to store (from {fmt_utc(r.start_ms)})"
    samples = f"{r.rows:,} sample{'' if r.rows == 1 else 's'}"
    return (f"{symbol} open interest ({r.mode}): {samples} stored, {fmt_utc(r.first_ms)} .. "
            f"{fmt_utc(r.last_ms)} ({_pages(r.pages)})")


def _pages(n: int) -> str:
    return f"{n} page" if n == 1 else f"{n} pages"
