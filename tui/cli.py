"""The `radar` console script: the engine's command line with the console registered.

`core/` never imports `tui/`; this entry point is the one place that joins them. It
registers the console launcher with `core.cli.run_cmd` (so `radar run` without
`--no-ui` opens the console) and the attached console with `core.cli.attach_cmd` (`radar
attach`), and hands over to `core.cli.main.main`. Textual is only
imported when the console actually starts.
"""

from __future__ import annotations

import sys


async def _run_console(engine, **kwargs):
    """Host `engine` in the console (`tui.hosting.run_console`), importing Textual lazily."""
    from tui.hosting import run_console

    return await run_console(engine, **kwargs)


async def _run_attached(socket_path, **kwargs):
    """Attach the console to the engine on `socket_path` (`tui.attach.run_attached`), importing
    Textual lazily."""
    from tui.attach import run_attached

    return await run_attached(socket_path, **kwargs)


def main(argv: list[str] | None = None) -> int:
    """Run `radar` with the console available; returns the exit code."""
    from core.cli import attach_cmd, run_cmd
    from core.cli.main import main as core_main

    run_cmd.set_console_runner(_run_console)
    attach_cmd.set_attach_runner(_run_attached)
    return core_main(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
