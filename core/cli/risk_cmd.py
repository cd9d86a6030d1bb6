"""`radar risk [--json] [--db PATH] [--data-dir DIR] [--offline]`: what the whole book risks.

The book (per runner: position qty, average entry, stop, resting entry levels) comes from the
engine running on the database when one answers on `<db>.sock` (`GET /v1/risk`), else from
the state a run left in the database (`core.risk.book.book_from_db`; a finished replay's book
is the one held before its end-of-data exit). `--offline` never asks an engine.

Printed: VaR and CVaR at 95 % and 99 % (historical and Monte Carlo, one day, USDT and
fraction of equity; `core.risk.var`), the worst case per runner and in total (every resting
level filled then the stop hit; `core.risk.worst_case`), the stress scenarios of
`scenarios.yaml` (`core.risk.scenarios`) and the exposure per correlation group
(`assets.yaml` groups). `--json` prints the report dict of `core.risk.report.risk_report`.

`--data-dir` reads the database (an engine uses its own config). Exit codes: 0 a report; 1 no
database / no trading state in it, or the engine failed;
2 bad config.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `risk` to the top-level parser."""
    p = sub.add_parser("risk", help="VaR/CVaR, worst case, stress scenarios and group exposure of the book "
                                    "(running engine, else the database)")
    p.add_argument("--json", action="store_true", help="print JSON (money USDT, fractions of equity, ms UTC)")
    p.add_argument("--db", type=Path, default=argparse.SUPPRESS,
                   help="database of the run (same as the global --db)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="candles folder of the scenarios (default: scenarios.yaml data_dir)")
    p.add_argument("--offline", action="store_true", help="read the database only; never ask a running engine")
    p.set_defaults(func=cmd_risk)


async def _from_engine(sock: Path) -> dict:
    from core.api.client import EngineClient

    async with EngineClient(sock, readonly=True, source="cli", timeout_s=120.0) as c:
        return await c.risk()


def collect(db: Path, config_dir: Path, *, data_dir: Path | None = None, offline: bool = False) -> dict:
    """The risk report (see the module docstring) of the book on `db`.

    Raises:
        RadarError: no database or state, a bad config, the engine refused.
    """
    from core.api.protocol import EngineNotRunning, socket_path_for

    if not offline and data_dir is None:
        sock = socket_path_for(db)
        if sock.exists():
            try:
                return asyncio.run(_from_engine(sock))
            except EngineNotRunning:
                pass                                   # a stale socket: the database tells
    from core.config import load_config
    from core.risk.report import report_from_db

    return report_from_db(db, load_config(config_dir), data_dir=data_dir)


def cmd_risk(args: argparse.Namespace) -> int:
    """`radar risk`: print the report; exit code per the module docstring."""
    report = collect(Path(args.db), Path(args.config_dir), data_dir=args.data_dir, offline=args.offline)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)
    return 0


def _usd(x: Any, sign: bool = False) -> str:
    return "-" if x is None else format(x, "+,.2f" if sign else ",.2f")


def _pct(x: Any) -> str:
    return "-" if x is None else f"{x * 100:.2f} %"


def _day(ms: Any) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def _print(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160, highlight=False)
    con.print(f"book from the {r['source']} as of {_day(r['as_of_ms'])} UTC: equity {_usd(r['equity'])} USDT")
    for n in r.get("notes") or []:
        con.print(f"note: {n}")
    v = r["var"]
    if v["available"]:
        t = Table(title=f"One-day VaR / CVaR ({v['days']} daily returns; Monte Carlo {v['mc']['paths']} paths, "
                        f"seed {v['mc']['seed']})")
        for col in ("method", "level", "VaR USDT", "VaR", "CVaR USDT", "CVaR"):
            t.add_column(col, no_wrap=True, justify="right" if col not in ("method",) else "left")
        for f in v["figures"]:
            t.add_row(f["method"], f"{f['level'] * 100:.0f} %", _usd(f["var"]), _pct(f["var_fraction"]),
                      _usd(f["cvar"]), _pct(f["cvar_fraction"]))
        con.print(t)
    else:
        con.print(f"VaR not available: {v['reason']}", style="bold yellow")
    w = r["worst_case"]
    t = Table(title="Worst case: every resting level filled, then the stop")
    for col in ("runner", "side", "+levels", "qty", "avg entry", "stop", "loss USDT", "from equity", "note"):
        t.add_column(col, no_wrap=True)
    for c in w["runners"]:
        t.add_row(f"{c['strategy']} {c['symbol']} {c['timeframe']}", str(c["side"] or "-"), str(c["levels_to_fill"]),
                  f"{c['qty']:.6g}", "-" if c["avg_entry"] is None else f"{c['avg_entry']:.6g}",
                  "-" if c["stop"] is None else f"{c['stop']:.6g}",
                  "UNBOUNDED" if c["unbounded"] else _usd(c["loss"]), _usd(c["loss_from_equity"]), c["note"])
    t.add_row("total", "", "", "", "", "", "UNBOUNDED" if w["total"] is None else _usd(w["total"]),
              _usd(w["total_from_equity"]), _pct(w["total_fraction"]))
    con.print(t)
    t = Table(title="Stress scenarios on today's book (positions and resting levels)")
    for col in ("scenario", "window UTC", "loss USDT", "loss", "worst USDT", "worst", "detail"):
        t.add_column(col, no_wrap=True)
    for s in r["scenarios"]:
        if not s["available"]:
            t.add_row(s["name"], f"{_day(s['start_ms'])[:10]} .. {_day(s['end_ms'])[:10]}", "-", "-", "-", "-",
                      s["reason"])
            continue
        detail = ", ".join(f"{x['symbol']} {x['move'] * 100:+.1f} %" + (f" (via {x['path_base']})" if x["proxy_used"]
                                                                         else "") + (" STOP" if x["stopped"] else "")
                           for x in s["runners"])
        t.add_row(s["name"], f"{_day(s['start_ms'])[:10]} .. {_day(s['end_ms'])[:10]}", _usd(s["loss"]),
                  _pct(s["loss_fraction"]), _usd(s["worst_loss"]), _pct(s["worst_loss_fraction"]), detail)
    con.print(t)
    t = Table(title="Exposure per correlation group")
    for col in ("group", "symbols", "net notional", "gross notional", "gross / equity", "worst case"):
        t.add_column(col, no_wrap=True)
    for g in r["groups"]:
        t.add_row(g["group"], ", ".join(g["symbols"]), _usd(g["net_notional"], sign=True), _usd(g["gross_notional"]),
                  _pct(g["gross_fraction"]), "UNBOUNDED" if g["worst_case"] is None else _usd(g["worst_case"]))
    con.print(t)
