"""Helpers for running `radar` (a headless engine, `radar attach` consoles) in real terminals and
watching its processes: a private tmux server with several 80x24 sessions, and a /proc tracker
of every Radar process (with its children) and their CPU use.

Used by tests/tui/test_attach_tmux.py (the acceptance scenario of `radar attach` in tmux) and
by benchmarks/bench_console.py (the attached console's figures).

* `radar_argv()`: the `radar` console script beside this interpreter (`.venv/bin/radar`, what
  the README runs), else `python -m tui.cli`.
* `radar_env(home, tag)`: the environment of a Radar process: XDG_DATA_HOME=`home` (so the
  default database, its socket and the logs live there and the commands need no `--db`), this
  checkout importable, no Telegram, a UTF-8 xterm, and `RADAR_PROC_TAG=tag`, which every
  process started from it (and its children) carries: `ProcessTracker` finds them by it.
* `TmuxServer`: one tmux server on its own socket (`tmux -L radar-attach-<pid>-<rand>`, no user
  config, `remain-on-exit on`, /bin/sh runs the commands): never the user's server; `kill_server()` ends it.
* `ProcessTracker`: samples /proc every 0.2 s in a thread and remembers every process that
  descends from a root pid (a pane's process, the engine) or carries the tag, by (pid, start
  time) so a reused pid is never mistaken for one of them; `alive()` lists those still running.
* `is_radar(pid)`: the process runs this environment's Python (a shell or tmux does not);
  `radar_child(pid)`: the Radar process of a pane (itself, or the child of its shell).
* `cpu_seconds(pid)`, `cpu_shares(pids, seconds)`: user + system CPU from /proc/<pid>/stat.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "candles" / "binance-spot" / "BTC_USDT-1h.json.gz"
TMUX = shutil.which("tmux") or "/usr/bin/tmux"
CLK_TCK = os.sysconf("SC_CLK_TCK")
TAG_VAR = "RADAR_PROC_TAG"
ALWAYS_PASSED = ("TERM", "COLORTERM", "LANG", "LC_ALL", "PYTHONPATH", "XDG_DATA_HOME", TAG_VAR)
NO_INHERIT = ("TELEGRAM_BOT_TOKEN", "TELEGRAM_ALLOWED_CHAT_IDS", TAG_VAR, "XDG_DATA_HOME")


def radar_argv() -> list[str]:
    """The `radar` command: the console script of this interpreter's environment when it is
    there (`.venv/bin/radar`), else `python -m tui.cli` (the same `main`)."""
    script = Path(sys.executable).parent / "radar"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "tui.cli"]


def radar_env(home: Path, tag: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the Radar processes (module docstring)."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in NO_INHERIT}
    env.update({"XDG_DATA_HOME": str(home), "PYTHONPATH": str(ROOT), "TERM": "xterm-256color",
                "COLORTERM": "truecolor", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", TAG_VAR: tag})
    return env


def short_home(preferred: Path) -> Path:
    """`preferred` when the engine's socket under it (`radar/radar.db.sock`) fits a Unix socket
    path (108 bytes), else a new short folder in /tmp (the caller removes it)."""
    if len(str(preferred / "radar" / "radar.db.sock").encode()) < 100:
        preferred.mkdir(parents=True, exist_ok=True)
        return preferred
    import tempfile

    return Path(tempfile.mkdtemp(prefix="radar-at-", dir="/tmp"))


# ---------------------------------------------------------------------------------- tmux
class TmuxServer:
    """A private tmux server (module docstring); sessions are named, one window, one pane each."""

    def __init__(self, workdir: Path, prefix: str = "radar-attach") -> None:
        self.socket = f"{prefix}-{os.getpid()}-{secrets.token_hex(4)}"
        self.conf = Path(workdir) / "tmux.conf"
        self.conf.write_text("set -g remain-on-exit on\nset -g status off\nset -g history-limit 2000\n"
                             "set -g default-size 80x24\nset -g default-shell /bin/sh\n")
        # the server's own environment: no tag (it is not a Radar process), no Telegram
        self.env = {k: v for k, v in os.environ.items() if k not in NO_INHERIT}

    def cmd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([TMUX, "-L", self.socket, "-f", str(self.conf), *args], capture_output=True,
                              text=True, check=check, timeout=30, env=self.env)

    def new_session(self, name: str, argv: list[str], env: dict[str, str], cwd: Path,
                    size: tuple[int, int] = (80, 24), redirect: Path | None = None,
                    status_file: Path | None = None) -> None:
        """Session `name` (`size` columns x rows) whose pane runs `argv` through the shell;
        `redirect`: its stdout and stderr to that file instead of the terminal; `status_file`: the
        shell writes the command's exit status there when it ends (tmux does not always report it:
        `pane_dead_status` stays empty when it sees the terminal close before it reaps the process),
        else the shell execs the command (the pane's process IS the command). The variables of
        `env` that differ from the server's are passed (-e), and always TERM (tmux would set its
        own), the locale and Radar's."""
        line = " ".join(shlex.quote(a) for a in argv)
        if redirect is not None:
            line += f" >{shlex.quote(str(redirect))} 2>&1"
        line = f"{line}; echo $? > {shlex.quote(str(status_file))}" if status_file is not None else f"exec {line}"
        envs = [a for k, v in env.items() if self.env.get(k) != v or k in ALWAYS_PASSED
                for a in ("-e", f"{k}={v}")]
        self.cmd("new-session", "-d", "-s", name, "-x", str(size[0]), "-y", str(size[1]), "-c", str(cwd),
                 *envs, line)

    def capture(self, target: str) -> str:
        return self.cmd("capture-pane", "-p", "-t", target, check=False).stdout

    def send(self, target: str, *keys: str) -> None:
        self.cmd("send-keys", "-t", target, *keys)

    def display(self, target: str, fmt: str) -> str:
        return self.cmd("display-message", "-p", "-t", target, fmt, check=False).stdout.strip()

    def pane_pid(self, target: str) -> int | None:
        v = self.display(target, "#{pane_pid}")
        return int(v) if v.isdigit() else None

    def pane_size(self, target: str) -> tuple[int, int] | None:
        v = self.display(target, "#{pane_width} #{pane_height}").split()
        return (int(v[0]), int(v[1])) if len(v) == 2 and all(x.isdigit() for x in v) else None

    def pane_dead(self, target: str) -> tuple[bool, int | None]:
        """(the pane's process ended, its exit status when tmux knows it)."""
        v = self.display(target, "#{pane_dead} #{pane_dead_status}").split()
        if not v:
            return True, None                        # no such pane any more
        status = int(v[1]) if len(v) > 1 and v[1].lstrip("-").isdigit() else None
        return v[0] == "1", status

    def kill_pane(self, target: str) -> None:
        self.cmd("kill-pane", "-t", target)

    def kill_server(self) -> None:
        try:
            self.cmd("kill-server", check=False)
        except (OSError, subprocess.SubprocessError):
            pass


# ---------------------------------------------------------------------------------- /proc
def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, utime + stime ticks, start time ticks) of `pid`, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = raw.rsplit(")", 1)[1].split()
    return f[0], int(f[1]), int(f[11]) + int(f[12]), int(f[19])


def start_time(pid: int) -> int | None:
    s = _stat(pid)
    return None if s is None else s[3]


def running(pid: int, start: int | None = None) -> bool:
    """`pid` exists, is not a zombie, and (given `start`) is the same process."""
    s = _stat(pid)
    return s is not None and s[0] not in ("Z", "X") and (start is None or s[3] == start)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of `pid` (all its threads), None when it is gone."""
    s = _stat(pid)
    return None if s is None else s[2] / CLK_TCK


def cpu_shares(pids: list[int], seconds: float) -> dict[int, float | None]:
    """Share of one core each of `pids` used over the next `seconds` (None: it ended meanwhile)."""
    c0 = {p: cpu_seconds(p) for p in pids}
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    out: dict[int, float | None] = {}
    for p in pids:
        c1 = cpu_seconds(p)
        out[p] = None if c0[p] is None or c1 is None else (c1 - c0[p]) / wall
    return out


def exe(pid: int) -> str:
    """The executable of `pid` ("" when it is gone or not readable)."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


#: Radar runs on this interpreter (the console script's shebang, multiprocessing's children)
PYTHON_EXE = os.path.realpath(sys.executable)


def is_radar(pid: int) -> bool:
    """`pid` runs this environment's Python (not a shell or tmux around it)."""
    return os.path.realpath(exe(pid)) == PYTHON_EXE if exe(pid) else False


def children(pid: int) -> list[int]:
    """The child pids of `pid`."""
    try:
        return [int(c) for t in os.listdir(f"/proc/{pid}/task")
                for c in Path(f"/proc/{pid}/task/{t}/children").read_text().split()]
    except OSError:
        return []


def radar_child(pid: int, timeout: float = 30.0) -> int | None:
    """`pid` itself when it runs Radar, else its first child that does (a wrapping shell), waiting
    up to `timeout` for it to appear."""
    deadline = time.monotonic() + timeout
    while True:
        if is_radar(pid):
            return pid
        for c in children(pid):
            if is_radar(c):
                return c
        if time.monotonic() > deadline or not running(pid):
            return None
        time.sleep(0.05)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _has_tag(pid: int, needle: bytes) -> bool:
    try:
        return needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def tagged(tags: list[str]) -> list[Proc]:
    """The running Radar processes (this environment's Python) carrying one of the `tags`
    (`radar_env`), pid order."""
    needles = {f"{TAG_VAR}={t}".encode() for t in tags}
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            env = set(Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        st = start_time(pid)
        if env & needles and st is not None and running(pid, st) and is_radar(pid):
            out.append(Proc(pid, st, cmdline(pid)))
    return sorted(out, key=lambda p: p.pid)


@dataclass(frozen=True)
class Proc:
    pid: int
    start: int
    cmd: str
    radar: bool = True                              # runs this environment's Python (when last looked)

    def running(self) -> bool:
        return running(self.pid, self.start)


class ProcessTracker:
    """Every Radar process of a run (module docstring). `start()` the sampling thread, `stop()` it."""

    def __init__(self, tag: str | None = None, period_s: float = 0.2) -> None:
        self.needle = f"{TAG_VAR}={tag}".encode() if tag else None
        self.period_s = period_s
        self.roots: dict[int, int] = {}              # pid -> start time
        self.seen: dict[tuple[int, int], Proc] = {}
        self._tagged: dict[tuple[int, int], bool] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="radar-proc-tracker", daemon=True)

    def start(self) -> ProcessTracker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def add_root(self, pid: int) -> None:
        st = start_time(pid)
        if st is not None:
            with self._lock:
                self.roots[pid] = st
        self.scan()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            with contextlib.suppress(OSError):         # /proc read races are retried next period
                self.scan()

    def scan(self) -> None:
        """One pass over /proc: remember the new descendants of the roots and the tagged processes."""
        table: dict[int, tuple[int, int]] = {}       # pid -> (ppid, start)
        for name in os.listdir("/proc"):
            if name.isdigit():
                s = _stat(int(name))
                if s is not None:
                    table[int(name)] = (s[1], s[3])
        with self._lock:
            ours = {p for p, st in self.roots.items() if table.get(p, (0, None))[1] == st}
            ours |= {key[0] for key in self.seen if table.get(key[0], (0, None))[1] == key[1]}
            changed = True
            while changed:                           # descendants of what is ours
                changed = False
                for pid, (ppid, _) in table.items():
                    if ppid in ours and pid not in ours:
                        ours.add(pid)
                        changed = True
            if self.needle is not None:
                for pid, (_, st) in table.items():
                    key = (pid, st)
                    if key not in self._tagged:
                        self._tagged[key] = _has_tag(pid, self.needle)
                    if self._tagged[key]:
                        ours.add(pid)
            for pid in ours:
                key = (pid, table[pid][1])
                if key not in self.seen:
                    self.seen[key] = Proc(pid, key[1], cmdline(pid), is_radar(pid))

    def alive(self, radar_only: bool = True) -> list[Proc]:
        """The tracked processes still running (zombies count as ended), pid order; only those
        running Radar's Python unless `radar_only` is False (the wrapping shells too)."""
        self.scan()
        with self._lock:
            procs = list(self.seen.values())
        now = [Proc(p.pid, p.start, cmdline(p.pid) or p.cmd, is_radar(p.pid)) for p in procs if p.running()]
        return sorted((p for p in now if p.radar or not radar_only), key=lambda p: p.pid)
