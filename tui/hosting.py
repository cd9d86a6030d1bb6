"""How `radar run` hosts the engine and the console in one asyncio loop.

    exit_code = asyncio.run(run_console(engine, readonly=args.readonly, alerts=..., jobs=..., health=...))

1. the engine is started first (`await engine.start()`) and runs as its own task: its life
   never depends on the console's;
2. the console (`RadarApp`) runs with `await app.run_async()` in the same loop;
3. when the console ends:
   * `q` (the app returns "quit"): the engine stops gracefully (after the candle in progress,
     state persisted) and `run_console` returns once it has;
   * `d` (returns "detach"), or SIGHUP (the SSH session died): the console goes away, the
     engine carries on headless in the same process, and that is logged; SIGINT/SIGTERM then
     stop it gracefully;
   * the engine ended on its own (end of a replay, or an error): the console stays open on
     the final state, its header saying "replay finished" or "ENGINE STOPPED: <error>"
     (`RadarApp.engine_ended`), until the operator presses `q`; then `run_console` returns
     "engine-ended", or raises the engine's error.
4. while the console owns the terminal, log records do not go to the terminal (they would
   tear the screen): console stream handlers are muted and restored after (the file log stays).

There is no ctrl+z suspend binding (Textual reads ctrl+z as a key; the console binds nothing to it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from tui.job_control import release_job_control_signals

log = logging.getLogger("tui.hosting")


@contextmanager
def terminal_logging_muted() -> Iterator[list[logging.Handler]]:
    """Remove the root logger's terminal handlers (StreamHandler on stdout/stderr, RichHandler)
    for the duration; restore them after. File handlers are kept."""
    root = logging.getLogger()
    muted = []
    for h in list(root.handlers):
        is_file = isinstance(h, logging.FileHandler)
        stream = getattr(h, "stream", None)
        rich_console = getattr(h, "console", None)
        if not is_file and (stream in (sys.stdout, sys.stderr) or rich_console is not None):
            root.removeHandler(h)
            muted.append(h)
    try:
        yield muted
    finally:
        for h in muted:
            if h not in root.handlers:
                root.addHandler(h)


def _stdio_to_devnull() -> None:
    """After SIGHUP the terminal is gone: point fds 0-2 at /dev/null so later writes (logs) cannot fail."""
    try:
        fd = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            try:
                os.dup2(fd, target)
            except OSError:
                pass
        os.close(fd)
    except OSError:
        pass


class ConsoleHost:
    """Runs one engine and its console; see the module docstring. Returns the outcome from `run()`:
    "quit" (engine stopped by the operator), "detached" (engine ran headless until it stopped),
    "engine-ended" (the engine ended while the console was up; the console stayed open on the
    final state until `q`)."""

    def __init__(self, engine: Any, *, api: Any = None, readonly: bool = False, alerts: Any = None,
                 jobs: Any = None, health: Any = None, commands: Any = None, headless_app: bool = False,
                 install_signals: bool = True, app_kwargs: dict | None = None) -> None:
        from core.api.local_port import LocalPort
        from core.engine.api import EngineAPI
        from tui.app import RadarApp

        self.engine = engine
        self.api = api or EngineAPI(engine, alerts=alerts, jobs=jobs, watchdog=health)
        self.port = LocalPort(self.api, alerts=alerts, jobs=jobs, health=health, commands=commands)
        self.app = RadarApp(self.port, readonly=readonly, **(app_kwargs or {}))
        self.headless_app = headless_app
        self.install_signals = install_signals
        self.detached_by: str | None = None
        self.outcome: str | None = None
        self._signals: list[int] = []
        self._engine_task: asyncio.Task | None = None

    # ------------------------------------------------------------------ signals
    def _on_sighup(self) -> None:
        if not self.headless_app:
            _stdio_to_devnull()             # the terminal is gone, detached already or not: a later write
        if self.detached_by is None:        # to it (the run's summary) would fail the process
            self.detached_by = "SIGHUP"
            log.warning("SIGHUP: the terminal went away; the console detaches and the engine carries on "
                        "headless in this process (pid %d)", os.getpid())
            self.app.detach("sighup")
        else:
            log.warning("SIGHUP: the terminal of the detached console went away; the engine carries on "
                        "(pid %d), its output goes to the log file only", os.getpid())

    def _on_stop_signal(self) -> None:
        log.warning("stop signal: stopping the engine gracefully")
        if self.app.is_running:
            self.app.exit("quit")
        if self._engine_task is None or not self._engine_task.done():
            self.engine.request_stop()

    def _install(self) -> None:
        if not self.install_signals:
            return
        loop = asyncio.get_running_loop()
        for sig, fn in ((signal.SIGHUP, self._on_sighup), (signal.SIGINT, self._on_stop_signal),
                        (signal.SIGTERM, self._on_stop_signal)):
            try:
                loop.add_signal_handler(sig, fn)
                self._signals.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover
                pass

    def _uninstall(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        if signal.SIGHUP in self._signals and self.detached_by is not None:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)   # a late hang-up must not kill the final report
        self._signals.clear()

    def _engine_ended(self, engine_task: asyncio.Task) -> None:
        """The engine ended while the console is up: tell the console (it stays open on the
        final state); its error is re-raised by `run` once the console is closed."""
        error = None if engine_task.cancelled() else engine_task.exception()
        if error is None:
            error = getattr(self.engine, "error", None)
        if error is not None:
            log.error("the engine stopped on error: %s; the console stays open on the last state", error)
        else:
            log.info("the engine ended (%s); the console stays open on the final state until q",
                     "replay finished" if getattr(self.engine, "finished", False) else "stopped")
        self.app.call_later(self.app.engine_ended, error)  # run in the app's own context

    # ------------------------------------------------------------------ run
    async def run(self) -> str:
        engine = self.engine
        await engine.start()                               # 1. the engine first
        engine_task = self._engine_task = asyncio.get_running_loop().create_task(engine.run(), name="radar-engine")
        self._install()
        try:
            with terminal_logging_muted():
                app_task = asyncio.get_running_loop().create_task(
                    self.app.run_async(headless=self.headless_app), name="radar-console")
                done, _ = await asyncio.wait({app_task, engine_task}, return_when=asyncio.FIRST_COMPLETED)
                if engine_task in done and not app_task.done():
                    self._engine_ended(engine_task)
                try:
                    result = await app_task
                except Exception:                          # the console crashed: the engine must not
                    log.exception("the console failed; the engine carries on headless")
                    result = "detach"
                finally:
                    release_job_control_signals()          # Textual's SIGCONT handler must not outlive it
            if engine_task.done():
                self.outcome = "engine-ended"
            elif result == "quit":
                log.info("console: quit requested: stopping the engine gracefully")
                engine.request_stop()
                self.outcome = "quit"
            else:
                self.detached_by = self.detached_by or "d"
                log.warning("console detached (%s): the engine carries on headless (pid %d); "
                            "SIGINT/SIGTERM stop it gracefully", self.detached_by, os.getpid())
                self.outcome = "detached"
            await engine_task                              # raises the engine's error, if any
        finally:
            if not engine_task.done():
                engine.request_stop()
                await asyncio.gather(engine_task, return_exceptions=True)
            self._uninstall()
        return self.outcome


async def run_console(engine: Any, **kwargs: Any) -> str:
    """Host `engine` with the console (see the module docstring); what `radar run` (without --no-ui)
    awaits: `asyncio.run(run_console(engine, readonly=args.readonly))`."""
    return await ConsoleHost(engine, **kwargs).run()
