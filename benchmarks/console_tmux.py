"""The console in a real terminal: `radar run --replay FILE --speed 3600` inside tmux at 80x24,
keys sent to visit every screen, the pane text captured after each and checked for the
screen's markers.

    .venv/bin/python benchmarks/console_tmux.py [--data FILE] [--speed 3600] [--size 80x24]
                                                [--keep] [--show]

* tmux runs on a private socket (`tmux -L radar-tmux-<pid>-<rand>`, no user config), the
  command with a fresh database in a temporary folder, TERM=xterm-256color.
* Routine: wait for the Scanner (first screen), then 2 Grid, 3 Positions, 4 Alerts, 5 Jobs,
  6 Health, 1 Scanner; after each key the pane is captured (`capture-pane -p`) until every
  marker of the screen is there (or a timeout), and must not show a traceback.
* End: `q` (and `enter` on the "stop the engine?" confirmation when positions are open);
  the process must exit; the tmux server is killed in any case.
Prints one line per screen (OK/FAIL, time to show), with `--show` the captured panes, then
exactly one JSON line: {"ok": ..., "screens": {name: {"ok", "seconds", "missing"}}, "exit": ...}.
Exit status 0 when every screen was seen. `run_routine()` is what tests/tui/test_console_tmux.py calls.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "candles" / "binance-spot" / "BTC_USDT-1h.json.gz"
TMUX = shutil.which("tmux") or "/usr/bin/tmux"

#: (key, screen name, markers that must all be in the captured pane)
SCREENS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("", "scanner", ("radar@", "Symbol", "Signal")),
    ("2", "grid", ("radar@", "TP", "price", "envelope_dca")),
    ("3", "positions", ("radar@", "Avg entry", "uPnL")),
    ("4", "alerts", ("radar@", "Severity", "First seen")),
    ("5", "jobs", ("radar@", "n new job")),
    ("6", "health", ("radar@", "subsystem", "status")),
    ("1", "scanner-again", ("radar@", "Symbol", "Signal")),
)
BAD = ("Traceback (most recent call last)", "Error:")


@dataclass
class ScreenCheck:
    name: str
    ok: bool
    seconds: float
    missing: list[str]
    pane: str = field(repr=False, default="")


@dataclass
class RoutineResult:
    screens: list[ScreenCheck]
    exit_code: int | None
    first_screen_s: float | None
    pane_at_failure: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.screens) and all(s.ok for s in self.screens) and len(self.screens) == len(SCREENS)

    def as_json(self) -> dict:
        return {"ok": self.ok, "first_screen_s": self.first_screen_s, "exit": self.exit_code,
                "screens": {s.name: {"ok": s.ok, "seconds": round(s.seconds, 2), "missing": s.missing}
                            for s in self.screens}}


class Tmux:
    """One private tmux server (its own socket), one session."""

    def __init__(self, workdir: Path, size: tuple[int, int]) -> None:
        self.socket = f"radar-tmux-{os.getpid()}-{secrets.token_hex(4)}"
        self.size = size
        self.conf = workdir / "tmux.conf"
        self.conf.write_text("set -g remain-on-exit on\nset -g status off\nset -g history-limit 2000\n")
        self.session = "radar"
        self.status_file = workdir / "exit_status"

    def cmd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([TMUX, "-L", self.socket, "-f", str(self.conf), *args], capture_output=True,
                              text=True, check=check, timeout=30)

    def start(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        envs = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
        # the shell also writes the exit status to a file: tmux does not always report it
        line = " ".join(_quote(a) for a in command) + f"; echo $? > {_quote(str(self.status_file))}"
        self.cmd("new-session", "-d", "-s", self.session, "-x", str(self.size[0]), "-y", str(self.size[1]),
                 "-c", str(cwd), *envs, line)

    def capture(self) -> str:
        r = self.cmd("capture-pane", "-p", "-t", self.session, check=False)
        return r.stdout

    def send(self, *keys: str) -> None:
        self.cmd("send-keys", "-t", self.session, *keys)

    def pane(self, fmt: str) -> str:
        r = self.cmd("display-message", "-p", "-t", self.session, fmt, check=False)
        return r.stdout.strip()

    def pid(self) -> int | None:
        v = self.pane("#{pane_pid}")
        return int(v) if v.isdigit() else None

    def dead(self) -> tuple[bool, int | None]:
        """(the pane's process ended, its exit status). tmux marks a pane dead a moment before it
        knows the status: a dead pane without a status yet counts as not dead (polled again)."""
        v = self.pane("#{pane_dead} #{pane_dead_status}").split()
        if not v:
            return True, self._status_from_file()
        status = int(v[1]) if len(v) > 1 and v[1].lstrip("-").isdigit() else None
        if status is None:
            status = self._status_from_file()
        return v[0] == "1" and status is not None, status

    def _status_from_file(self) -> int | None:
        try:
            text = self.status_file.read_text().strip()
        except OSError:
            return None
        return int(text) if text.lstrip("-").isdigit() else None

    def kill(self) -> None:
        self.cmd("kill-server", check=False)


def _quote(a: str) -> str:
    import shlex

    return shlex.quote(a)


def _wait_for(tmux: Tmux, markers: tuple[str, ...], timeout: float) -> tuple[bool, float, list[str], str]:
    t0 = time.monotonic()
    pane = ""
    missing = list(markers)
    while time.monotonic() - t0 < timeout:
        pane = tmux.capture()
        missing = [m for m in markers if m not in pane]
        if any(b in pane for b in BAD):
            return False, time.monotonic() - t0, missing or ["(traceback on screen)"], pane
        if not missing:
            return True, time.monotonic() - t0, [], pane
        if tmux.dead()[0]:
            break
        time.sleep(0.1)
    return False, time.monotonic() - t0, missing, pane


def radar_command(data: Path, workdir: Path, speed: str, extra: list[str] | None = None) -> list[str]:
    return [sys.executable, "-m", "tui.cli", "--db", str(workdir / "console.db"), "run",
            "--replay", str(data), "--speed", str(speed), "--status-interval", "0",
            "--log-file", str(workdir / "console-log.jsonl"), *(extra or [])]


def run_routine(data: Path = DEFAULT_DATA, *, workdir: Path | None = None, speed: str = "3600",
                size: tuple[int, int] = (80, 24), first_timeout: float = 60.0, screen_timeout: float = 10.0,
                extra_args: list[str] | None = None) -> RoutineResult:
    """Start the console in tmux, visit every screen, check each, quit. See the module docstring."""
    own = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="radar-console-tmux-")) if own else Path(workdir)
    tmux = Tmux(workdir, size)
    env = {"PYTHONPATH": str(ROOT), "TERM": "xterm-256color", "COLORTERM": "truecolor", "LANG": "C.UTF-8",
           "LC_ALL": "C.UTF-8"}
    checks: list[ScreenCheck] = []
    exit_code = None
    first_s = None
    failure_pane = ""
    pid = None
    try:
        t0 = time.monotonic()
        tmux.start(radar_command(Path(data), workdir, speed, extra_args), env, ROOT)
        pid = tmux.pid()
        for i, (key, name, markers) in enumerate(SCREENS):
            if key:
                tmux.send(key)
            ok, secs, missing, pane = _wait_for(tmux, markers, first_timeout if i == 0 else screen_timeout)
            if i == 0:
                first_s = round(time.monotonic() - t0, 2) if ok else None
            checks.append(ScreenCheck(name, ok, secs, missing, pane))
            if not ok:
                failure_pane = pane
                break
        # quit: q, then confirm when the console asks (positions open)
        tmux.send("q")
        deadline = time.monotonic() + 20
        confirmed = False
        while time.monotonic() < deadline:
            dead, status = tmux.dead()
            if dead:
                exit_code = status
                break
            pane = tmux.capture()
            if not confirmed and "stop the engine?" in pane:
                tmux.send("Enter")
                confirmed = True
            time.sleep(0.2)
    finally:
        tmux.kill()
        if pid is not None and exit_code is None:
            _terminate(pid)
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    return RoutineResult(checks, exit_code, first_s, failure_pane)


def _terminate(pid: int) -> None:
    import signal

    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 2.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        t = time.monotonic()
        while time.monotonic() - t < wait:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--speed", default="3600")
    ap.add_argument("--size", default="80x24")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (database, log)")
    ap.add_argument("--show", action="store_true", help="print every captured pane")
    args = ap.parse_args(argv)
    w, h = (int(x) for x in args.size.lower().split("x"))
    workdir = Path(tempfile.mkdtemp(prefix="radar-console-tmux-"))
    try:
        res = run_routine(args.data, workdir=workdir, speed=args.speed, size=(w, h))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}")
    for s in res.screens:
        print(f"{'OK  ' if s.ok else 'FAIL'} {s.name:14s} {s.seconds:5.2f} s"
              + (f"  missing {s.missing}" if s.missing else ""))
        if args.show or not s.ok:
            print(s.pane)
    print(f"process exit: {res.exit_code}")
    print(json.dumps(res.as_json()))
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
