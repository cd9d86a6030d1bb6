"""`radar data import|list|check`: local candle files into the store, and what is stored.

* `import PATH...`  one transaction per file; prints per file the series and
  rows read/new/updated/unchanged; a refused file is reported on stderr and
  the others still import; exit code 2 when any file was refused.
* `list`            stored candle and funding-rate series: first, last, rows, gaps.
* `check`           per series: gaps, zero-volume runs, price spikes and open-gap
                    spikes (an open far from the previous close while the close is
                    not: a bad print; see `core.data.quality`).

`list` and `check` take `--json` for machine-readable output (times in ms UTC).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from rich.console import Console
from rich.table import Table

from core.data import quality
from core.data.importer import import_file
from core.data.timeframes import timeframe_ms
from core.errors import DataError, RadarError, UsageError
from core.storage import candle_store
from core.storage.db import open_sync


def register(dsub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `import`, `list` and `check` to the `data` subcommand group."""
    p = dsub.add_parser("import", help="import freqtrade candle/funding files (.json, .json.gz)",
                        description="Import freqtrade-layout files; one transaction per file, a bad file "
                                    "is refused whole and the others still import (exit code 2 if any was refused).")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files named like BTC_USDT-1h.json.gz, "
                   "BTC_USDT_USDT-1m-futures.json.gz or BTC_USDT_USDT-8h-funding_rate.json.gz")
    p.add_argument("--symbol", help="ccxt symbol (BTC/USDT, BTC/USDT:USDT) when the file name does not say it; one PATH only")
    p.add_argument("--market", choices=("spot", "futures"), help="market override; one PATH only")
    p.add_argument("--timeframe", help="timeframe (1m, 1h, ...) when the file name does not say it; one PATH only")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=cmd_import)

    p = dsub.add_parser("list", help="stored candle and funding-rate series")
    p.add_argument("--json", action="store_true", help="print JSON (times in ms UTC)")
    p.set_defaults(func=cmd_list)

    p = dsub.add_parser("check", help="gaps, zero-volume runs, price spikes and open-gap spikes per stored series")
    p.add_argument("--symbol", help="only this ccxt symbol, e.g. BTC/USDT")
    p.add_argument("--market", choices=("spot", "futures"), help="only this market")
    p.add_argument("--timeframe", help="only this timeframe (funding series are then left out)")
    p.add_argument("--spike-k", type=float, default=quality.DEFAULT_SPIKE_K,
                   help="a spike is |log return| > K x rolling sigma (default %(default)s)")
    p.add_argument("--spike-window", type=int, default=quality.DEFAULT_SPIKE_WINDOW,
                   help="log returns in the rolling sigma before each candle (default %(default)s)")
    p.add_argument("--open-gap-jump", type=float, default=quality.OPEN_GAP_MIN_JUMP, metavar="FRACTION",
                   help="an open-gap spike has |open / previous close - 1| > FRACTION (0.2 = 20 %%; "
                        "default %(default)s)")
    p.add_argument("--open-gap-close", type=float, default=quality.OPEN_GAP_MAX_CLOSE_MOVE, metavar="FRACTION",
                   help="... while |close / previous close - 1| < FRACTION (below --open-gap-jump; "
                        "default %(default)s)")
    p.add_argument("--limit", type=int, default=50,
                   help="at most N gaps, N spikes and N open-gap spikes listed per series in the tables; 0: all "
                        "(default %(default)s; --json always lists all)")
    p.add_argument("--json", action="store_true", help="print JSON (gap ranges in ms UTC)")
    p.set_defaults(func=cmd_check)


def fmt_ms(ms: int | None) -> str:
    """`YYYY-MM-DD HH:MM` (UTC) of a ms timestamp; "-" for None."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def _console() -> Console:
    """A Rich console on the current stdout; wide when not a terminal so tables do not wrap."""
    out = sys.stdout
    return Console(file=out, width=None if out.isatty() else 160, highlight=False)


def _open(db: Any) -> sqlite3.Connection:
    """`open_sync(db)`, with OS/SQLite failures as a RadarError naming the file."""
    try:
        return open_sync(db)
    except (OSError, sqlite3.Error) as exc:
        raise RadarError(f"cannot open database {db}: {exc}") from exc


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2))


# --------------------------------------------------------------------------- import

def cmd_import(args: argparse.Namespace) -> int:
    """`radar data import`: returns 0, or the highest exit code of a refused/failed file."""
    overrides = {"symbol": args.symbol, "market": args.market, "timeframe": args.timeframe}
    if any(v is not None for v in overrides.values()) and len(args.paths) > 1:
        raise UsageError("--symbol, --market and --timeframe apply to one PATH at a time")
    conn = _open(args.db)
    imported: list[dict] = []
    refused: list[dict] = []
    exit_code = 0
    try:
        for path in args.paths:
            try:
                res = import_file(conn, path, **overrides)
            except RadarError as err:
                exit_code = max(exit_code, err.exit_code)
                refused.append({"path": path, "error": str(err)})
                print(f"radar: error: {err}", file=sys.stderr, flush=True)
                continue
            imported.append(res.to_dict())
            if not args.json:
                print(_import_line(res.to_dict()), flush=True)
    finally:
        conn.close()
    if args.json:
        _print_json({"imported": imported, "refused": refused})
    else:
        print(f"{len(imported)} imported, {len(refused)} refused")
    return exit_code


def _import_line(r: dict) -> str:
    series = (f"{r['symbol']} {r['market']} {r['timeframe']}" if r["kind"] == "candles"
              else f"{r['symbol']} funding {r['timeframe']}")
    return (f"imported {r['path']}: {series}: {r['rows_read']} rows read, {r['rows_new']} new, "
            f"{r['rows_updated']} updated, {r['rows_unchanged']} unchanged")


# --------------------------------------------------------------------------- list

def cmd_list(args: argparse.Namespace) -> int:
    """`radar data list`: stored series with first/last open time, rows and gaps."""
    conn = _open(args.db)
    try:
        candles = []
        for s in candle_store.list_series(conn):
            ts = candle_store.load_timestamps(conn, s.symbol, s.market, s.timeframe)
            gaps = quality.find_gaps(ts, timeframe_ms(s.timeframe))
            candles.append({"symbol": s.symbol, "market": s.market, "timeframe": s.timeframe,
                            "first_ms": s.first_ts, "last_ms": s.last_ts, "rows": s.rows, "gaps": len(gaps)})
        funding = []
        for symbol, first, last, rows in candle_store.list_funding(conn):
            ts, _ = candle_store.load_funding_rates(conn, symbol)
            interval = quality.infer_interval_ms(ts)
            funding.append({"symbol": symbol, "interval_ms": interval, "first_ms": first, "last_ms": last,
                            "rows": rows, "gaps": len(quality.funding_gaps(ts))})
    finally:
        conn.close()
    if args.json:
        _print_json({"candles": candles, "funding": funding})
        return 0
    console = _console()
    if not candles and not funding:
        console.print(f"no series stored in {args.db}: import some with `radar data import PATH...`")
        return 0
    if candles:
        t = Table(title="Candle series (times UTC)")
        for col, just in (("symbol", "left"), ("market", "left"), ("timeframe", "left"), ("first", "left"),
                          ("last", "left"), ("rows", "right"), ("gaps", "right")):
            t.add_column(col, justify=just, no_wrap=True)
        for c in candles:
            t.add_row(c["symbol"], c["market"], c["timeframe"], fmt_ms(c["first_ms"]), fmt_ms(c["last_ms"]),
                      f"{c['rows']:,}", str(c["gaps"]))
        console.print(t)
    if funding:
        t = Table(title="Funding-rate series (times UTC)")
        for col, just in (("symbol", "left"), ("interval", "left"), ("first", "left"), ("last", "left"),
                          ("rows", "right"), ("gaps", "right")):
            t.add_column(col, justify=just, no_wrap=True)
        for f in funding:
            t.add_row(f["symbol"], _fmt_interval(f["interval_ms"]), fmt_ms(f["first_ms"]), fmt_ms(f["last_ms"]),
                      f"{f['rows']:,}", str(f["gaps"]))
        console.print(t)
    return 0


def _fmt_interval(ms: int | None) -> str:
    if ms is None:
        return "-"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"  # pragma: no cover - infer_interval_ms rounds to minutes


# --------------------------------------------------------------------------- check

def cmd_check(args: argparse.Namespace) -> int:
    """`radar data check`: gaps, zero-volume runs, spikes and open-gap spikes of the selected series.

    Raises:
        UsageError: bad --spike-k/--spike-window/--open-gap-jump/--open-gap-close/--limit/--timeframe.
        DataError: no stored series matches the filters.
    """
    if not args.spike_k > 0:
        raise UsageError(f"--spike-k must be > 0, got {args.spike_k}")
    if args.spike_window < 2:
        raise UsageError(f"--spike-window must be >= 2, got {args.spike_window}")
    try:
        quality.check_open_gap_params(args.open_gap_jump, args.open_gap_close)
    except ValueError:
        raise UsageError(f"--open-gap-close must be > 0 and below --open-gap-jump (fractions, 0.2 = 20 %), "
                         f"got --open-gap-jump {args.open_gap_jump} --open-gap-close {args.open_gap_close}") from None
    if args.limit < 0:
        raise UsageError(f"--limit must be >= 0, got {args.limit}")
    if args.timeframe is not None:
        try:
            timeframe_ms(args.timeframe)
        except DataError as exc:
            raise UsageError(f"--timeframe: {exc}") from None
    conn = _open(args.db)
    try:
        reports = []
        for s in candle_store.list_series(conn):
            if ((args.symbol and s.symbol != args.symbol) or (args.market and s.market != args.market)
                    or (args.timeframe and s.timeframe != args.timeframe)):
                continue
            candles = candle_store.load_candles(conn, s.symbol, s.market, s.timeframe)
            reports.append(quality.check_candles(candles, args.spike_k, args.spike_window,
                                                 args.open_gap_jump, args.open_gap_close))
        funding = []
        if args.timeframe is None and args.market in (None, "futures"):
            for symbol, first, last, rows in candle_store.list_funding(conn):
                if args.symbol and symbol != args.symbol:
                    continue
                ts, _ = candle_store.load_funding_rates(conn, symbol)
                gaps = quality.funding_gaps(ts)
                funding.append({"symbol": symbol, "interval_ms": quality.infer_interval_ms(ts), "rows": rows,
                                "first_ms": first, "last_ms": last,
                                "gaps": {"count": len(gaps), "missing": sum(g.missing for g in gaps),
                                         "ranges": [asdict(g) for g in gaps]}})
    finally:
        conn.close()
    if not reports and not funding:
        wanted = " ".join(f"--{k} {v}" for k, v in (("symbol", args.symbol), ("market", args.market),
                                                    ("timeframe", args.timeframe)) if v)
        raise DataError(f"no stored series in {args.db}" + (f" matches {wanted}" if wanted else "")
                        + ": see `radar data list`")
    if args.json:
        _print_json({"spike_k": args.spike_k, "spike_window": args.spike_window,
                     "open_gap_jump": args.open_gap_jump, "open_gap_close": args.open_gap_close,
                     "candles": [r.to_dict() for r in reports], "funding": funding})
        return 0
    _print_check(reports, funding, args.spike_k, args.spike_window, args.limit)
    return 0


def _print_check(reports: list[quality.SeriesQuality], funding: list[dict], k: float, window: int,
                 limit: int) -> None:
    console = _console()
    if reports:
        first = reports[0]
        t = Table(title=f"Candle quality (spike: |log return| > {k:g} x sigma of the previous {window})",
                  caption="open gap: " + _open_gap_rule(first.open_gap_min_jump, first.open_gap_max_close_move))
        for col in ("symbol", "market", "timeframe", "rows", "gaps", "missing", "zero-vol runs",
                    "longest zero-vol", "spikes", "open gaps"):
            t.add_column(col, justify="left" if col in ("symbol", "market", "timeframe") else "right", no_wrap=True)
        for r in reports:
            t.add_row(r.symbol, r.market, r.timeframe, f"{r.rows:,}", str(len(r.gaps)), f"{r.missing:,}",
                      str(r.zero_volume.runs), str(r.zero_volume.longest), str(len(r.spikes)), str(len(r.open_gaps)))
        console.print(t)
        for r in reports:
            if r.gaps:
                g = Table(title=f"Gaps of {r.symbol} {r.market} {r.timeframe} (UTC)",
                          caption=_more_caption(len(r.gaps), limit))
                for col in ("first missing", "last missing", "candles"):
                    g.add_column(col, justify="right" if col == "candles" else "left", no_wrap=True)
                for gap in r.gaps[:limit or None]:
                    g.add_row(fmt_ms(gap.from_ms), fmt_ms(gap.to_ms), f"{gap.missing:,}")
                console.print(g)
            if r.spikes:
                s = Table(title=f"Spikes of {r.symbol} {r.market} {r.timeframe} (UTC)",
                          caption=_more_caption(len(r.spikes), limit))
                for col in ("candle", "log return", "sigma", "x sigma"):
                    s.add_column(col, justify="left" if col == "candle" else "right", no_wrap=True)
                for sp in r.spikes[:limit or None]:
                    s.add_row(fmt_ms(sp.ts_ms), f"{sp.log_return:+.4f}", f"{sp.sigma:.4f}",
                              f"{abs(sp.log_return) / sp.sigma:.1f}")
                console.print(s)
            if r.open_gaps:
                o = Table(title=f"Open-gap spikes of {r.symbol} {r.market} {r.timeframe} (UTC)",
                          caption=_more_caption(len(r.open_gaps), limit))
                for col in ("candle", "previous close", "open", "close", "open vs prev", "close vs prev"):
                    o.add_column(col, justify="left" if col == "candle" else "right", no_wrap=True)
                for og in r.open_gaps[:limit or None]:
                    o.add_row(fmt_ms(og.ts_ms), f"{og.prev_close:.8g}", f"{og.open:.8g}", f"{og.close:.8g}",
                              f"{og.jump:+.1%}", f"{og.close_move:+.1%}")
                console.print(o)
    if funding:
        t = Table(title="Funding-rate series (gap: spacing > 1.5 x the usual interval)")
        for col in ("symbol", "interval", "rows", "first", "last", "gaps", "missing"):
            t.add_column(col, justify="right" if col in ("rows", "gaps", "missing") else "left", no_wrap=True)
        for f in funding:
            t.add_row(f["symbol"], _fmt_interval(f["interval_ms"]), f"{f['rows']:,}", fmt_ms(f["first_ms"]),
                      fmt_ms(f["last_ms"]), str(f["gaps"]["count"]), str(f["gaps"]["missing"]))
        console.print(t)


def _open_gap_rule(min_jump: float, max_close_move: float) -> str:
    """The open-gap spike rule in words, thresholds as percent (a bad open print, not a market gap)."""
    return (f"|open/prev close - 1| > {min_jump * 100:.4g} % while |close/prev close - 1| < "
            f"{max_close_move * 100:.4g} % (a bad open print)")


def _more_caption(total: int, limit: int) -> str | None:
    """"... N more" under a table cut at `limit` rows (0: no cut)."""
    if limit and total > limit:
        return f"... {total - limit} more (--limit 0 or --json lists all)"
    return None
