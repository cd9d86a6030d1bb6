"""The acceptance scenario of `radar attach`, in tmux, exactly as written:

    In tmux: `radar run --no-ui --replay BTC_USDT-1h.json.gz --speed 3600` in the background,
    then `radar attach` in an 80x24 pane shows the grid of that engine; `radar attach
    --readonly` in a second pane shows the same and refuses `K` with a message; `radar status
    --json` answers while both are attached; killing either pane (with and without `d` first)
    leaves the engine trading, and no Radar process uses more than 5 % of a core afterwards;
    SIGTERM ends every Radar process within 10 s.

How (helpers in benchmarks/attach_tmux.py):
* a private tmux server (`tmux -L radar-attach-<pid>-<rand>`, never the user's; killed at the
  end in any case); XDG_DATA_HOME is a temporary folder, so the commands are the README's, with
  no `--db`: the default database `$XDG_DATA_HOME/radar/radar.db` and its socket live there;
* the engine: `radar run --no-ui --replay BTC_USDT-1h.json.gz --speed 3600` (the `radar`
  console script of this environment, run in the shared data folder) in its own tmux session,
  in the background of the consoles, its output to a file; one 1h candle a second;
* pane A `radar attach`, pane B `radar attach --readonly`, each the only pane of an 80x24
  session; `2` shows the Grid: both must show the BTC/USDT envelope_dca ladder (price, TP, L0..)
  and, at some instant, the same grid (every line of it but the header, which says RO in B);
* `K` in B: a message saying the console is read-only / the engine refused must appear (were a
  confirmation asked, it is confirmed with `y`: the engine must refuse); the kill switch stays off;
* `radar status --json` while both consoles run: equity, kill switch, positions;
* A: `d` (the console closes, exit 0) then `tmux kill-pane`; B: `tmux kill-pane` with no `d`;
* the engine still runs and trades (its candle count and last candle time move on); every
  Radar process left (tracked from the start: the panes' processes, the engine, their children,
  and anything carrying this run's environment tag) uses under 5 % of a core over 3 s;
* SIGTERM to every Radar process left: all are gone within 10 s.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.shared_data import shared_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import attach_tmux as at

BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"
#: the Grid screen of BTC/USDT: its title line, the ladder's price and TP rows and its first level
GRID_MARKERS = ("BTC/USDT", "envelope_dca", "▶ price", "TP (SMA)")
LEVEL = re.compile(r"\bL0 (placed|pending|filled)\b")
REFUSAL = re.compile(r"read-only|refused", re.IGNORECASE)
BAD = ("Traceback (most recent call last)",)


def _status(radar: list[str], env: dict[str, str]) -> tuple[int, dict, float]:
    """`radar status --json`: (exit code, parsed answer, seconds it took)."""
    t0 = time.monotonic()
    run = subprocess.run([*radar, "status", "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=90, check=False)
    took = time.monotonic() - t0
    try:
        return run.returncode, json.loads(run.stdout), took
    except json.JSONDecodeError:
        pytest.fail(f"`radar status --json` printed no JSON (exit {run.returncode}):\n{run.stdout}\n{run.stderr}")


def _exit_status(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.lstrip("-").isdigit() else None


def _body(pane: str) -> list[str]:
    """The Grid screen's lines below the header row, down to the cycles table (toasts, when any,
    are drawn lower, bottom right)."""
    lines = pane.splitlines()[1:]
    for i, line in enumerate(lines):
        if line.lstrip().startswith("closed (UTC)"):
            return lines[:i]
    return lines


def _grid_missing(pane: str) -> list[str]:
    missing = [m for m in GRID_MARKERS if m not in pane]
    if not LEVEL.search(pane):
        missing.append("L0 level row")
    return missing


@pytest.mark.skipif(shutil.which("tmux") is None and not Path("/usr/bin/tmux").exists(), reason="tmux not installed")
def test_two_consoles_attached_in_tmux_leave_the_engine_trading(tmp_path: Path) -> None:
    data = shared_file(BTC_1H)
    home = at.short_home(tmp_path / "xdg")
    env = at.radar_env(home, secrets.token_hex(8))
    radar = at.radar_argv()
    engine_out = tmp_path / "engine.out"
    exit_file = {name: tmp_path / f"{name}.exit" for name in ("engine", "A", "B")}
    tmux = at.TmuxServer(tmp_path)
    tracker = at.ProcessTracker(env[at.TAG_VAR]).start()
    t_start = time.monotonic()
    steps: dict[str, float] = {}

    def step(name: str) -> None:
        steps[name] = round(time.monotonic() - t_start, 1)

    def engine_tail() -> str:
        return engine_out.read_text(errors="replace")[-3000:] if engine_out.exists() else "(no engine output)"

    def wait_pane(target: str, pred, timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while True:
            pane = tmux.capture(target)
            assert not any(b in pane for b in BAD), f"pane {target}: traceback on screen:\n{pane}"
            if pred(pane):
                return pane
            assert not tmux.pane_dead(target)[0], \
                f"pane {target}: the console ended (exit {_exit_status(exit_file[target])}) waiting for {what}:\n{pane}"
            assert time.monotonic() < deadline, f"pane {target}: no {what} after {timeout:g} s:\n{pane}"
            time.sleep(0.1)

    try:
        # ---- the engine, headless, in the background (its own tmux session)
        tmux.new_session("engine", [*radar, "run", "--no-ui", "--replay", data.name, "--speed", "3600"], env,
                         cwd=data.parent, redirect=engine_out, status_file=exit_file["engine"])
        shell = tmux.pane_pid("engine")
        assert shell is not None, "no process in the engine's pane"
        tracker.add_root(shell)
        engine_pid = at.radar_child(shell)
        assert engine_pid is not None, f"no engine process in its pane:\n{engine_tail()}"
        engine_start = at.start_time(engine_pid)
        sock = home / "radar" / "radar.db.sock"
        deadline = time.monotonic() + 120
        while not (sock.exists() and _status(radar, env)[0] == 0):
            assert at.running(engine_pid), f"the engine ended:\n{engine_tail()}"
            assert time.monotonic() < deadline, f"no engine API on {sock} after 120 s:\n{engine_tail()}"
            time.sleep(0.5)
        step("engine answers")

        # ---- pane A: radar attach; pane B: radar attach --readonly; 80x24 each
        tmux.new_session("A", [*radar, "attach"], env, cwd=ROOT, size=(80, 24), status_file=exit_file["A"])
        tmux.new_session("B", [*radar, "attach", "--readonly"], env, cwd=ROOT, size=(80, 24),
                         status_file=exit_file["B"])
        consoles = {}
        for target in ("A", "B"):
            shell = tmux.pane_pid(target)
            assert shell is not None, f"no process in pane {target}"
            tracker.add_root(shell)
            pid = at.radar_child(shell)
            assert pid is not None, f"no radar process in pane {target}:\n{tmux.capture(target)}"
            consoles[target] = at.Proc(pid, at.start_time(pid) or 0, at.cmdline(pid))
            assert tmux.pane_size(target) == (80, 24), f"pane {target} is {tmux.pane_size(target)}, not 80x24"
        for target in ("A", "B"):
            wait_pane(target, lambda p: "radar@" in p and "BTC/USDT" in p, 120, "console with the engine's runner")
        step("consoles up")

        # ---- `2`: both show the grid of BTC/USDT, and the same grid
        for target in ("A", "B"):
            tmux.send(target, "2")
        panes = {t: wait_pane(t, lambda p: not _grid_missing(p), 60, f"grid {GRID_MARKERS} + L0") for t in ("A", "B")}
        assert " RO" not in panes["A"].splitlines()[0] and " RO" in panes["B"].splitlines()[0], \
            "the header should mark B (only) read-only:\n" + panes["A"] + "\n" + panes["B"]
        deadline = time.monotonic() + 60
        while True:                                       # one candle a second: both repaint each
            a, b = tmux.capture("A"), tmux.capture("B")
            if _body(a) == _body(b) and not _grid_missing(a):
                break
            assert time.monotonic() < deadline, f"A and B never showed the same grid in 60 s:\nA:\n{a}\nB:\n{b}"
            time.sleep(0.05)
        step("both show the same grid")

        # ---- radar status --json while both are attached
        rc, st, took = _status(radar, env)
        assert rc == 0 and st["engine_running"] is True, st
        assert isinstance(st["equity"], (int, float)) and isinstance(st["positions"], list), st
        assert st["runners"] and st["runners"][0]["symbol"] == "BTC/USDT", st
        assert all(not tmux.pane_dead(t)[0] and p.running() for t, p in consoles.items()), \
            "a console ended before `radar status` answered"
        step(f"status answered in {took:.1f} s")

        # ---- `K` in the read-only console B: refused with a message, the kill switch stays off
        before = len(REFUSAL.findall("\n".join(tmux.capture("B").splitlines()[1:])))
        tmux.send("B", "K")
        deadline = time.monotonic() + 30
        confirmed = False
        while True:
            pane = tmux.capture("B")
            if not confirmed and "kill: confirm" in pane:
                tmux.send("B", "y")                       # the engine must refuse it then
                confirmed = True
            if len(REFUSAL.findall("\n".join(pane.splitlines()[1:]))) > before:
                break
            assert time.monotonic() < deadline, f"`K` in the read-only console: no refusal message in 30 s:\n{pane}"
            time.sleep(0.1)
        rc, st, _ = _status(radar, env)
        assert rc == 0 and st["kill_switch"]["active"] is False, f"the kill switch is on after K in B: {st}"
        step("K refused in B")

        # ---- A: `d` then kill the pane; B: kill the pane without `d`
        tmux.send("A", "d")
        deadline = time.monotonic() + 30
        while (rc := _exit_status(exit_file["A"])) is None:
            assert time.monotonic() < deadline, f"`d` did not close console A in 30 s:\n{tmux.capture('A')}"
            time.sleep(0.1)
        assert rc == 0, f"console A exited {rc} after `d`:\n{tmux.capture('A')}"
        assert not consoles["A"].running()
        tmux.kill_pane("A")
        tmux.kill_pane("B")
        step("panes killed")
        deadline = time.monotonic() + 20                  # let the consoles go (one left is checked below)
        while any(p.running() for p in consoles.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [f"{k} pid {p.pid}" for k, p in consoles.items() if p.running()]
        if left:
            print(f"consoles still running 20 s after their pane was killed: {left}")

        # ---- the engine still trades
        assert at.running(engine_pid, engine_start), f"the engine ended:\n{engine_tail()}"
        rc0, st0, _ = _status(radar, env)
        assert rc0 == 0, st0
        deadline = time.monotonic() + 60
        time.sleep(3)
        while True:
            rc1, st1, _ = _status(radar, env)
            assert rc1 == 0, st1
            if st1["candles"] > st0["candles"] and st1["runners"][0]["last_ts"] > st0["runners"][0]["last_ts"]:
                break
            assert time.monotonic() < deadline, f"the engine stopped trading: {st0['candles']} -> {st1['candles']} " \
                                                f"candles\n{engine_tail()}"
            time.sleep(1)
        step("engine trading")

        # ---- no Radar process above 5 % of a core
        procs = tracker.alive()
        assert any(p.pid == engine_pid for p in procs), procs
        shares = at.cpu_shares([p.pid for p in procs], 3.0)
        print("radar processes after the panes were killed: "
              + "; ".join(f"pid {p.pid} {shares[p.pid] if shares[p.pid] is None else f'{shares[p.pid]:.1%}'} "
                          f"{p.cmd[:100]}" for p in procs))
        hot = {p.cmd: f"{s:.1%}" for p in procs if (s := shares[p.pid]) is not None and s >= 0.05}
        assert not hot, f"Radar processes above 5 % of a core: {hot}"
        step("cpu measured")

        # ---- SIGTERM ends every Radar process within 10 s
        procs = tracker.alive()
        t0 = time.monotonic()
        for p in procs:
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        while (alive := [p for p in procs if p.running()]) and time.monotonic() - t0 < 10:
            time.sleep(0.05)
        took = time.monotonic() - t0
        assert not alive, f"still running {took:.1f} s after SIGTERM: {[(p.pid, p.cmd) for p in alive]}"
        assert not tracker.alive(), f"Radar processes appeared after SIGTERM: {tracker.alive()}"
        step(f"all {len(procs)} gone {took:.1f} s after SIGTERM")
        deadline = time.monotonic() + 10                  # its shell writes the status just after
        while _exit_status(exit_file["engine"]) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        print(f"engine exit status {_exit_status(exit_file['engine'])}; steps (s since start): {steps}")
    finally:
        tracker.stop()
        tmux.kill_server()
        for p in tracker.alive():                         # a failure: leave nothing behind
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if home != tmp_path / "xdg":
            shutil.rmtree(home, ignore_errors=True)
