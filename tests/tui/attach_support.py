"""A real headless engine in a subprocess (`radar run --no-ui --replay <BTC 1h> --speed 3600`:
one candle a second) for the `radar attach` tests, and helpers around it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.api.protocol import socket_path_for
from tests.support.shared_data import shared_file

ROOT = Path(__file__).resolve().parents[2]
BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"


def env() -> dict[str, str]:
    """The subprocesses' environment: this checkout importable, no Telegram, an 80x24 terminal."""
    e = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
         "COLUMNS": "80", "LINES": "24"}
    for var in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_ALLOWED_CHAT_IDS"):
        e.pop(var, None)
    return e


def radar_cmd(db: Path, *args: str) -> list[str]:
    """`radar --db DB ARGS` through the console script's module."""
    return [sys.executable, "-m", "tui.cli", "--db", str(db), *args]


class EngineProcess:
    """`radar run --no-ui` on `db` replaying the shared BTC 1h file at one candle a second."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.socket = socket_path_for(db)
        self.stderr_path = db.parent / f"{db.name}.engine.stderr"
        with open(self.stderr_path, "w") as err:    # a file, not a pipe: a full pipe would block the engine
            self.proc = subprocess.Popen(radar_cmd(db, "run", "--no-ui", "--replay", str(shared_file(BTC_1H)),
                                                   "--speed", "3600", "--status-interval", "0"),
                                         cwd=ROOT, env=env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_for_socket(self, timeout: float = 60.0) -> EngineProcess:
        """Wait until the engine answers on its socket (`radar status`)."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"the engine ended (exit {self.proc.returncode}):\n{self.stderr()[-3000:]}"
            if self.socket.exists() and status(self.db).get("engine_running"):
                return self
            assert time.monotonic() < deadline, f"no engine API after {timeout:g} s:\n{self.stderr()[-3000:]}"
            time.sleep(0.2)

    def stop(self, timeout: float = 10.0) -> float:
        """SIGTERM; the seconds the engine took to exit (the test fails past `timeout`)."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            pytest.fail(f"the engine did not stop within {timeout:g} s of SIGTERM:\n{self.stderr()[-3000:]}")
        return time.monotonic() - t0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def status(db: Path) -> dict:
    """`radar status --json` of the engine on `db` (a subprocess)."""
    run = subprocess.run(radar_cmd(db, "status", "--json"), cwd=ROOT, env=env(), capture_output=True, text=True,
                         timeout=60, check=False)
    return json.loads(run.stdout)


async def eventually(pred: Callable[[], Any], timeout: float, what: str, pilot: Any = None) -> Any:
    """Wait (letting the app run) until `pred()` is truthy; its value."""
    deadline = time.monotonic() + timeout
    while not (got := pred()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        if pilot is not None:
            await pilot.pause()
        await asyncio.sleep(0.05)
    return got
