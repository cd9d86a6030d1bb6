"""Issue 12 defect 1: `d` (detach), then the terminal goes away (tmux kill-session, a dropped SSH
session). The kernel hangs the terminal up and sends SIGHUP and SIGCONT; Textual's driver had left
its SIGCONT handler installed, which restarted the console's input thread on the dead terminal: it
spun at 100 % of a core and, being a non-daemon thread, kept the process alive after SIGTERM.

Checked on a real pseudo-terminal: after `d` and the hang-up the engine carries on, the process
uses under 5 % of a core, and SIGTERM ends it (exit 0) within 10 s."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.support.shared_data import shared_file
from tests.tui.test_console_sighup import BTC_1H, PtyConsole, _radar

#: 1h candles at 3,600x: one a second, so the replay outlasts the test
SPEED = 3600


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_detach_then_hang_up_leaves_an_idle_engine_that_stops_on_sigterm(tmp_path: Path) -> None:
    data = shared_file(BTC_1H)
    log_file = tmp_path / "run.jsonl"
    con = PtyConsole(_radar(tmp_path / "console.db", "--replay", str(data), "--speed", str(SPEED),
                            "--log-file", str(log_file)))
    try:
        t0 = time.monotonic()
        while "radar@" not in con.text():
            assert con.proc.poll() is None, f"the process ended before the console showed:\n{con.text()[-3000:]}"
            assert time.monotonic() - t0 < 60, f"no console after 60 s:\n{con.text()[-3000:]}"
            time.sleep(0.05)
        time.sleep(1.0)
        os.write(con.master, b"d")
        t1 = time.monotonic()
        while "console detached" not in con.text():
            assert time.monotonic() - t1 < 20, f"no detach after 20 s:\n{con.text()[-2000:]}"
            time.sleep(0.05)
        con.hang_up()                                   # the terminal goes away after the detach
        time.sleep(2.0)
        assert con.proc.poll() is None, "the engine must carry on after the detach and the hang-up"
        pid = con.proc.pid
        c0, w0 = _cpu_s(pid), time.monotonic()
        time.sleep(3.0)
        share = (_cpu_s(pid) - c0) / (time.monotonic() - w0)
        assert share < 0.05, f"the detached engine uses {share:.0%} of a core"
        con.proc.send_signal(signal.SIGTERM)
        rc = con.proc.wait(10)
        tail = log_file.read_text().splitlines()[-40:] if log_file.exists() else []
        assert rc == 0, f"exit {rc}; log tail:\n" + "\n".join(tail)
    finally:
        con.kill()
