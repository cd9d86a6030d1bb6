"""`radar report --html FILE [--db PATH] [--mode paper|live] [--window DAYS]`: the HTML performance
report of a replay's or the running engine's book.

Reads the database (`--db`, before or after `report`; default `$XDG_DATA_HOME/radar/radar.db`):
the per-candle equity (`trading_equity`) and the closed cycles (`trading_cycles`) of every runner
of the mode (`core.performance.sources.from_db`; a running engine's database is read while it
writes), and writes `core.performance.html_report`: quantstats tearsheet of the book's daily
returns, equity / drawdown / rolling Sharpe curves, the monthly returns table, cycle statistics
per asset and the win/loss distribution. Prints one line naming the file.

Exit codes: 0 written; 2 no such database, no runner or no equity in it, both modes stored
without --mode, a bad --window; 1 other errors.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.errors import UsageError


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `report` to the top-level parser."""
    p = sub.add_parser("report", help="HTML performance report of a replay's or the engine's book (from its database)",
                       description="Write the HTML performance report of the runners recorded in a database.")
    p.add_argument("--html", type=Path, required=True, metavar="FILE", help="the report file to write")
    p.add_argument("--db", type=Path, default=argparse.SUPPRESS,
                   help="the replay's or engine's database (same as the global --db)")
    p.add_argument("--mode", choices=("paper", "live"),
                   help="which runners (default: the one mode stored in the database)")
    p.add_argument("--window", type=int, default=30, metavar="DAYS",
                   help="rolling Sharpe window in days (default 30, at least 2)")
    p.add_argument("--title", help="report title (default: the mode and the database's name)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    """Run `radar report`; returns the exit code (errors are raised as RadarError)."""
    from core.performance.html_report import write_html
    from core.performance.sources import from_db

    if args.window < 2:
        raise UsageError(f"--window must be at least 2 days, got {args.window}")
    inp = from_db(args.db, args.mode)
    path = write_html(args.html, inp, title=args.title, window_days=args.window)
    print(f"report of {len(inp.runners)} runner(s), {len(inp.ts):,} equity points, written to {path}")
    return 0
