"""`radar attach [--readonly]`: open the console on the engine already running on `--db`.

The engine (`radar run --no-ui`, e.g. under systemd, or another console's `radar run`) serves
its API on `<db>.sock` (`core.api`); `radar attach` connects there and shows the same console
as `radar run`. Closing it (`q`, `d`, a lost terminal) never stops the engine. `--readonly`
opens a read-only connection: the engine refuses every command on it.

The console itself lives in `tui/` (`tui.attach.run_attached`), registered by the `radar`
console script (`tui.cli`) through `set_attach_runner`: `core/` never imports `tui/`.

Exit codes: 0 the console was closed; 1 no engine listens on the socket (one line naming
it), or it cannot be reached; 2 another protocol major version, or no console in this entry point.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from core.api.protocol import socket_path_for
from core.errors import UsageError

#: `async (socket_path, *, readonly) -> outcome`, registered by `tui.cli`
_attach_runner = None


def set_attach_runner(runner) -> None:
    """Register the coroutine function that runs the attached console (see `tui.attach`)."""
    global _attach_runner
    _attach_runner = runner


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `attach` to the top-level parser."""
    p = sub.add_parser("attach", help="open the console on the running engine (through its API socket); "
                                      "closing it leaves the engine running",
                       description="Open the console on the engine running on --db (its <db>.sock). q closes "
                                   "the console only: the engine keeps running.")
    p.add_argument("--readonly", action="store_true",
                   help="read-only connection: the engine refuses every command from this console")
    p.add_argument("--db", type=Path, default=argparse.SUPPRESS,
                   help="the engine's database (same as the global --db)")
    p.set_defaults(func=cmd_attach)


def cmd_attach(args: argparse.Namespace) -> int:
    """`radar attach`: run the attached console; exit code per the module docstring."""
    if _attach_runner is None:
        raise UsageError("the console is not available from this entry point: use the `radar` console script")
    sock = socket_path_for(args.db)
    asyncio.run(_attach_runner(sock, readonly=args.readonly))
    print(f"radar attach: console closed; the engine on {sock} was not touched", file=sys.stderr)
    return 0
