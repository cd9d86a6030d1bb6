"""`radar` entry point: global options and subcommand dispatch.

Each subcommand lives in its own module under `core/cli/` exposing
`register(subparsers)`, which adds its parser and sets `func(args) -> int`
on it. `main()` maps RadarError to its exit code and a one-line message. A raw
`sqlite3.Error` / `OSError` escaping a command that is a storage failure (disk
full, read-only file or folder, unopenable or damaged database:
`core.storage.errors.storage_error`) is printed the same way (exit 2); any
other exception keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sqlite3
import sys
from pathlib import Path

from core.errors import RadarError
from core.paths import DEFAULT_CONFIG_DIR, default_db_path
from core.storage.errors import storage_error

#: Top-level command -> the module that registers it, in the order shown by `--help`.
COMMAND_MODULES = {
    "config": "core.cli.config_cmd",
    "data": "core.cli.data_cmd",
    "backtest": "core.cli.backtest_cmd",
    "alerts": "core.cli.alerts_cmd",
    "optimize": "core.cli.optimize_cmd",
    "run": "core.cli.run_cmd",
    "health": "core.cli.health_cmd",
    "status": "core.cli.status_cmd",
    "risk": "core.cli.risk_cmd",
    "attach": "core.cli.attach_cmd",
    "ctl": "core.cli.ctl_cmd",
    "report": "core.cli.report_cmd",
}
SUBCOMMAND_MODULES = list(COMMAND_MODULES.values())

#: Global options that take a value (skipped when looking for the command word).
_VALUE_OPTIONS = ("--config-dir", "--db")


def command_word(argv: list[str]) -> str | None:
    """The top-level command named in `argv` (the first word that is not a global option), or None."""
    skip = False
    for tok in argv:
        if skip:
            skip = False
        elif tok in _VALUE_OPTIONS:
            skip = True
        elif not tok.startswith("-"):
            return tok
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser.

    With `argv` naming a known command, only that command's module is imported and
    registered, so a command does not pay for the others' imports (ccxt, Textual, ...);
    otherwise (no argv, `--help`, an unknown command) every command is registered.
    """
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
    word = command_word(argv) if argv is not None else None
    modules = [COMMAND_MODULES[word]] if word in COMMAND_MODULES else SUBCOMMAND_MODULES
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `radar` command line; returns the process exit code."""
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.db is None:
        args.db = default_db_path()
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # the reader of stdout went away (`radar status --json | head`): quiet, as Unix tools are
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())       # no second error when Python flushes at exit
        return 141                                   # 128 + SIGPIPE, what a shell reports
    except RadarError as err:
        print(f"radar: error: {err}", file=sys.stderr)
        return err.exit_code
    except (sqlite3.Error, OSError) as exc:
        clear = storage_error(exc, args.db)
        if clear is None:
            raise
        print(f"radar: error: {clear}", file=sys.stderr)
        return clear.exit_code
    except KeyboardInterrupt:
        print("radar: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
