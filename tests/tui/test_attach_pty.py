"""`radar attach` in real terminals (pseudo-terminals, 80x24) on a headless engine subprocess:
two consoles at once; the terminal of one goes away (what a dropped SSH session does): that
console ends, the engine keeps trading and the other console stays; the engine then stops on
SIGTERM within 10 s and the remaining console says "engine gone"; `q` closes it."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from tests.tui.attach_support import EngineProcess, radar_cmd, status
from tests.tui.test_console_sighup import PtyConsole

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


def screen_text(con: PtyConsole) -> str:
    """What the console wrote, escape sequences removed."""
    return ANSI.sub("", con.text())


def wait_text(con: PtyConsole, needle: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while needle not in screen_text(con):
        assert con.proc.poll() is None, f"the console ended (exit {con.proc.returncode}):\n{screen_text(con)[-2000:]}"
        assert time.monotonic() < deadline, f"no {needle!r} after {timeout:g} s:\n{screen_text(con)[-2000:]}"
        time.sleep(0.05)


def test_attached_terminal_hangup_leaves_the_engine_trading(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path / "radar.db").wait_for_socket()
    first = PtyConsole(radar_cmd(engine.db, "attach"))
    second = PtyConsole(radar_cmd(engine.db, "attach", "--readonly"))
    try:
        for con in (first, second):
            wait_text(con, "PAPER", 60)                      # the header is drawn
            wait_text(con, "BTC/USDT", 30)                   # the scanner shows the engine's runner
        first.hang_up()                                      # the first terminal goes away (SIGHUP)
        assert first.proc.wait(20) == 0
        before = status(engine.db)["candles"]
        time.sleep(3)
        after = status(engine.db)
        assert after["engine_running"] and after["candles"] > before, "the engine stopped trading"
        assert second.proc.poll() is None, "the other console ended too"
        assert engine.stop() < 10
        wait_text(second, "engine gone", 15)
        os.write(second.master, b"q")                        # closes the console; nothing left to stop
        assert second.proc.wait(15) == 0
    finally:
        for con in (first, second):
            con.kill()
        engine.kill()
