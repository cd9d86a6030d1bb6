"""`radar attach`: the console (`RadarApp`, the same screens and keys) on an engine running in
another process, through its API socket (`tui.remote.RemoteEngine`).

    outcome = await run_attached(socket_path_for(db), readonly=False)

What differs from the in-process console (`AttachedRadarApp`):

* `q` (and `d`, ctrl+q) closes this console only: the engine keeps running, nothing is asked
  and nothing is sent to it. Losing the terminal (SIGHUP), SIGINT and SIGTERM close the console
  the same way. The engine stops only by its own signals (`systemctl stop`, SIGTERM).
* `--readonly` opens a read-only connection: the ENGINE refuses every command on it (HTTP
  403, shown as "refused by the engine: read-only console"); the console also greys the keys.
* When the engine goes away the header says "engine gone: r re-attaches" and the console
  stays on the last state; `r` tries the socket again.
* Several consoles may be attached at once (each is one connection to the engine).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

from textual.binding import Binding

from core.api.protocol import ApiClientError
from tui.actions import Action
from tui.app import APP_ACTIONS, RadarApp
from tui.hosting import _stdio_to_devnull, terminal_logging_muted
from tui.job_control import release_job_control_signals
from tui.remote import RemoteEngine

log = logging.getLogger(__name__)

#: repaints and snapshot reads of an attached console at most this often (it has its own process;
#: each read costs the engine ~1-3 ms, and it reads only when engine events say something changed)
ATTACHED_HZ = 20.0

_CLOSE = "Close this console; the engine keeps running"
#: the app actions of an attached console: `q` / `d` close it, `r` re-attaches
ATTACHED_ACTIONS: tuple[Action, ...] = tuple(
    a for a in APP_ACTIONS if a.name not in ("detach", "quit")) + (
    Action("reattach", "r", "Re-attach to the engine after it went away (tries the socket again)", "reattach",
           readonly_ok=True),
    Action("detach", "d", _CLOSE, "detach", readonly_ok=True),
    Action("quit", "q", f"{_CLOSE} (never stops it)", "quit_radar", readonly_ok=True),
)

class AttachedRadarApp(RadarApp):
    """`RadarApp` on a `RemoteEngine` (see the module docstring); returns "close" (q, d, a
    signal) when it ends."""

    APP_ACTIONS = ATTACHED_ACTIONS
    #: the console has its own process: repaints may take a larger share of its loop
    REPAINT_DUTY = 0.3
    BINDINGS = [Binding("q", "radar('quit')", "Close (engine keeps running)"),
                Binding("d", "radar('detach')", "Close", show=False),
                Binding("r", "radar('reattach')", "Re-attach")]

    def __init__(self, remote: RemoteEngine, **kwargs: Any) -> None:
        kwargs.setdefault("max_hz", ATTACHED_HZ)
        super().__init__(remote, **kwargs)
        self.remote = remote

    # Textual runs the on_mount / on_unmount of every class of the MRO: RadarApp's run too
    def on_mount(self) -> None:
        self.remote.on_link_change = self._link_changed

    def on_unmount(self) -> None:
        self.remote.on_link_change = None

    def _link_changed(self, connected: bool, detail: str) -> None:
        if connected:
            self.clear_notifications()               # the "engine gone" toasts are stale now
            self.notify(f"re-attached: {detail}", timeout=6)
        else:
            self.notify(f"engine gone: {detail}. The console shows the last state; r re-attaches, q closes.",
                        severity="error", timeout=20)
        self.coalescer.mark()

    def action_quit_radar(self) -> None:
        self.exit("close")

    def action_detach(self) -> None:
        self.exit("close")

    def detach(self, reason: str = "detach") -> None:
        """Close the console (a signal or the terminal went away); the engine is not told."""
        self.exit("close")

    async def action_reattach(self) -> None:
        if not self.remote.gone:
            self.notify(f"attached: {self.remote.pid_text()} answers on {self.remote.socket_path}", timeout=4)
            return
        try:
            await self.remote.reattach()
        except ApiClientError as exc:
            self.notify(f"still no engine: {exc}", severity="error", timeout=8)
        self.coalescer.mark()
        self.refresh_now()


async def run_attached(socket_path: str | Path, *, readonly: bool = False, headless: bool = False,
                       install_signals: bool = True, app_kwargs: dict | None = None) -> str:
    """Attach the console to the engine on `socket_path` until it is closed; returns "close".

    Raises:
        EngineNotRunning: nobody listens on the socket (the message names it). EngineUnreachable,
            ProtocolMismatch: see `core.api.client`.
    """
    remote = await RemoteEngine(socket_path, readonly=readonly, max_hz=ATTACHED_HZ).connect()
    app = AttachedRadarApp(remote, readonly=readonly, **(app_kwargs or {}))
    loop = asyncio.get_running_loop()
    installed: list[int] = []

    def hung_up() -> None:
        _stdio_to_devnull()                  # the terminal is gone: a later write must not fail
        app.detach("sighup")

    if install_signals:
        for sig, fn in ((signal.SIGHUP, hung_up), (signal.SIGINT, app.detach), (signal.SIGTERM, app.detach)):
            try:
                loop.add_signal_handler(sig, fn)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover
                pass
    try:
        with terminal_logging_muted():
            try:
                result = await app.run_async(headless=headless)
            finally:
                release_job_control_signals()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await remote.close()
    return result or "close"
