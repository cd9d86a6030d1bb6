"""`radar data ...`: import, download, list and check candle series.

The subcommands live in their own modules; this one only groups them.
"""

from __future__ import annotations

import argparse


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `data` with its subcommands to the top-level parser."""
    from core.cli import data_download, data_local

    p = sub.add_parser("data", help="import, download, list and check candle data")
    dsub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    dsub.required = True
    data_local.register(dsub)
    data_download.register(dsub)
