"""SIGHUP on a console running a replay: the process keeps trading headless and its final
report equals the report of a `--no-ui` run on the same file.

The data: the first 3,000 candles of the shared BTC 1h file, written to a freqtrade file in the
test's folder. The console run: `radar run --replay F --speed 1800000 --report R` (500 candles/s,
about 6 s of replay) with its stdin/stdout/stderr on a pseudo-terminal (80x24) that is its
controlling terminal. Mid-replay the terminal goes away, two ways:
* "signal": SIGHUP is sent to the process (the pty stays open);
* "hangup": the pty's master side is closed (what sshd does when the session dies): the
  kernel hangs the terminal up and sends SIGHUP itself.
The process must then finish the replay headless (exit 0), log the SIGHUP detach before the end
of the replay, and write a report identical to the `--no-ui` run's."""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from tests.support.shared_data import shared_file
from tests.engine.test_engine_replay import assert_same_result

ROOT = Path(__file__).resolve().parents[2]
BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"
N_CANDLES = 3000
SPEED = 3600 * 500                      # market seconds per second: 500 1h candles/s, ~6 s


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "COLUMNS": "80", "LINES": "24"}


def _radar(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tui.cli", "--db", str(db), "run", *args, "--status-interval", "0"]


@pytest.fixture(scope="module")
def replay_case(tmp_path_factory) -> tuple[Path, dict | list]:
    """(slice file, report of the --no-ui run on it)."""
    src = shared_file(BTC_1H)
    tmp = tmp_path_factory.mktemp("sighup-data")
    with gzip.open(src, "rt") as f:
        rows = json.load(f)[:N_CANDLES]
    data = tmp / "BTC_USDT-1h.json.gz"
    with gzip.open(data, "wt") as f:
        json.dump(rows, f)
    report = tmp / "headless.json"
    run = subprocess.run(_radar(tmp / "headless.db", "--no-ui", "--replay", str(data), "--speed", "max",
                                "--report", str(report)), cwd=ROOT, env=_env(), capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"radar run: {N_CANDLES} candles" in run.stderr, run.stderr[-2000:]
    return data, json.loads(report.read_text())


class PtyConsole:
    """A child process on a new pseudo-terminal (its controlling terminal), output drained."""

    def __init__(self, cmd: list[str], size: tuple[int, int] = (80, 24)) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))

        def make_controlling_tty() -> None:       # runs in the child after setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, preexec_fn=make_controlling_tty, close_fds=True)
        os.close(slave)
        self.out = bytearray()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while not self._closing.is_set():
            try:
                ready, _, _ = select.select([self.master], [], [], 0.05)
                if not ready:
                    continue
                chunk = os.read(self.master, 65536)
            except (OSError, ValueError):
                return
            if not chunk:
                return
            with self._lock:
                self.out += chunk

    def text(self) -> str:
        with self._lock:
            return self.out.decode("utf-8", "replace")

    def hang_up(self) -> None:
        """Close the master side: the terminal is gone (the kernel sends SIGHUP). The reader stops
        first: a close while it waits in read() would not release the terminal until it returned."""
        self._closing.set()
        self._reader.join(5)
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.hang_up()


def _log_records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.mark.parametrize("how", ["signal", "hangup"])
def test_sighup_mid_replay_keeps_trading_and_reports_the_same(tmp_path: Path, replay_case, how: str) -> None:
    data, want = replay_case
    report, log_file = tmp_path / "console.json", tmp_path / "run.jsonl"
    con = PtyConsole(_radar(tmp_path / "console.db", "--replay", str(data), "--speed", str(SPEED),
                            "--report", str(report), "--log-file", str(log_file)))
    try:
        t0 = time.monotonic()
        while "radar@" not in con.text():              # the console is up (its header is drawn)
            assert con.proc.poll() is None, f"the process ended before the console showed:\n{con.text()[-3000:]}"
            assert time.monotonic() - t0 < 60, f"no console after 60 s:\n{con.text()[-3000:]}"
            time.sleep(0.05)
        time.sleep(1.0)                                  # mid-replay: ~500 of the 3,000 candles
        assert con.proc.poll() is None, "the replay ended before the hang-up: lower SPEED"
        hup_at = time.time()
        if how == "signal":
            con.proc.send_signal(signal.SIGHUP)
        else:
            con.hang_up()
        rc = con.proc.wait(120)
        ended_at = time.time()
    finally:
        con.kill()
    records = _log_records(log_file)
    msgs = [r["msg"] for r in records]
    assert rc == 0, f"exit {rc}; log tail:\n" + "\n".join(msgs[-20:])
    hup = [r for r in records if "SIGHUP" in r["msg"]]
    assert hup, "no SIGHUP detach in the log:\n" + "\n".join(msgs[-20:])
    assert ended_at - hup_at > 1.0, "the process did not carry on after the hang-up (ended at once)"
    done = [r for r in records if r["msg"].startswith("processed ")]
    assert done and f"processed {N_CANDLES} candles" in done[-1]["msg"], "\n".join(msgs[-20:])
    assert hup[0]["ts"] < done[-1]["ts"] - 1000, "the hang-up did not come mid-replay"
    got = json.loads(report.read_text())
    assert isinstance(got, list) and len(got) == len(want)
    for g, w in zip(got, want):
        assert (g["strategy"], g["symbol"], g["timeframe"]) == (w["strategy"], w["symbol"], w["timeframe"])
        assert_same_result(g, w)
    assert got == want
