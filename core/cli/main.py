"""`radar` entry point: global options and subcommand dispatch.

Each subcommand lives in its own module under `core/cli/` exposing
`register(subparsers)`, which adds its parser and sets `func(args) -> int`
on it. `main()` maps RadarError to its exit code and a one-line message.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from core.errors import RadarError
from core.paths import DEFAULT_CONFIG_DIR, default_db_path

#: Modules that register subcommands, in the order shown by `--help`.
SUBCOMMAND_MODULES = [
    "core.cli.config_cmd",
    "core.cli.data_cmd",
    "core.cli.backtest_cmd",
    "core.cli.alerts_cmd",
    "core.cli.optimize_cmd",
    "core.cli.run_cmd",
    "core.cli.health_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="radar",
        description="Radar: terminal console and trading engine for crypto-trading operators.",
    )
    parser.add_argument("--config-dir", type=Path, default=DEFAULT_CONFIG_DIR,
                        help="folder of the YAML config (default: the packaged config/)")
    parser.add_argument("--db", type=Path, default=None,
                        help="SQLite database (default: $XDG_DATA_HOME/radar/radar.db)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `radar` command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.db is None:
        args.db = default_db_path()
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except RadarError as err:
        print(f"radar: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("radar: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
