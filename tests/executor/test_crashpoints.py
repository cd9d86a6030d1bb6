"""Crash points: a process SIGKILLs itself at the n-th pass of a named point (log line first),
unknown names raise at parse time and at the call, unset costs nothing, passes are counted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import timeit
from pathlib import Path

import pytest

from core.executor import crashpoints as cp

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {"after_record_before_send", "after_send_before_record", "after_fill_before_stop", "during_stop_resize",
            "during_emergency_close", "during_tp_close", "during_reconcile"}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADAR_CRASHPOINT")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def run_child(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, env=clean_env(**env), capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def reconfigure():
    """configure() in this process; the environment's configuration is restored afterwards."""
    yield cp.configure
    cp.configure({k: v for k, v in os.environ.items() if k.startswith("RADAR_CRASHPOINT")})


# ---------------------------------------------------------------------------- the kill


def test_second_pass_sigkills_the_process_after_logging_the_point(tmp_path: Path) -> None:
    log = tmp_path / "crash.log"
    code = ("from core.executor.crashpoints import crashpoint\n"
            "crashpoint('after_record_before_send'); print('first pass', flush=True)\n"
            "crashpoint('during_reconcile'); print('other point', flush=True)\n"
            "crashpoint('after_record_before_send'); print('second pass survived', flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=clean_env(RADAR_CRASHPOINT="after_record_before_send:2",
                                                     RADAR_CRASHPOINT_LOG=str(log)))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, err)
    assert out.splitlines() == ["first pass", "other point"]
    lines = log.read_text().splitlines()
    assert len(lines) == 1                                   # counting is off: only the kill line
    word, name, n, pid, t = lines[0].split()
    assert (word, name, int(n), int(pid)) == ("kill", "after_record_before_send", 2, proc.pid)
    assert float(t) > 1.6e9
    parsed = cp.read_log(log)
    assert [k[:3] for k in parsed.kills] == [("after_record_before_send", 2, proc.pid)]


def test_kill_with_pass_counting_logs_every_pass_first(tmp_path: Path) -> None:
    log = tmp_path / "crash.log"
    code = ("from core.executor.crashpoints import crashpoint\n"
            "for _ in range(3): crashpoint('during_tp_close')\n"
            "for _ in range(5): crashpoint('during_stop_resize')\n"
            "print('not killed')\n")
    r = run_child(code, RADAR_CRASHPOINT=" during_stop_resize:4 , during_reconcile:1",
                  RADAR_CRASHPOINT_LOG=str(log), RADAR_CRASHPOINT_COUNT="1")
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert "not killed" not in r.stdout
    parsed = cp.read_log(log)
    assert parsed.passes == {"during_tp_close": 3, "during_stop_resize": 4}
    assert [k[:2] for k in parsed.kills] == [("during_stop_resize", 4)]
    assert log.read_text().splitlines()[-2].split()[:3] == ["pass", "during_stop_resize", "4"]


def test_a_target_not_reached_does_not_kill() -> None:
    r = run_child("from core.executor.crashpoints import crashpoint\n"
                  "for _ in range(2): crashpoint('after_fill_before_stop')\nprint('alive')",
                  RADAR_CRASHPOINT="after_fill_before_stop:3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "alive"


# ---------------------------------------------------------------------------- unknown names, bad values


def test_unknown_name_in_the_variable_fails_the_import_naming_it() -> None:
    r = run_child("import core.executor.crashpoints", RADAR_CRASHPOINT="after_record_before_send:1,after_recrod:2")
    assert r.returncode == 1
    assert "ValueError" in r.stderr and "'after_recrod'" in r.stderr
    assert "after_record_before_send" in r.stderr and "during_reconcile" in r.stderr   # the valid names


@pytest.mark.parametrize("text, words", [
    ("bogus:1", ["unknown crash point 'bogus'", "during_tp_close"]),
    ("during_tp_close", ["expected name:n"]),
    ("during_tp_close:", ["expected name:n"]),
    ("during_tp_close:0", ["n must be >= 1"]),
    ("during_tp_close:x", ["integer"]),
    ("during_tp_close:1,,during_reconcile:1", ["expected name:n"]),
    ("during_tp_close:1,during_tp_close:2", ["given twice"]),
])
def test_parse_targets_rejects(text: str, words: list[str]) -> None:
    with pytest.raises(ValueError) as ei:
        cp.parse_targets(text)
    for w in words:
        assert w in str(ei.value)


def test_parse_targets_accepts() -> None:
    assert cp.parse_targets("") == {} and cp.parse_targets("  ") == {}
    assert cp.parse_targets(" during_tp_close : 3 ,during_reconcile:1") == {"during_tp_close": 3,
                                                                           "during_reconcile": 1}


def test_bad_count_flag_raises_and_keeps_the_configuration(reconfigure) -> None:
    reconfigure({"RADAR_CRASHPOINT_COUNT": "1"})
    with pytest.raises(ValueError, match="RADAR_CRASHPOINT_COUNT"):
        reconfigure({"RADAR_CRASHPOINT_COUNT": "maybe"})
    assert cp.enabled()


def test_unknown_name_at_the_call_raises_enabled_or_not(reconfigure) -> None:
    reconfigure({})
    assert not cp.enabled()
    with pytest.raises(ValueError, match="unknown crash point 'after_record_before_sned'.*during_tp_close"):
        cp.crashpoint("after_record_before_sned")
    reconfigure({"RADAR_CRASHPOINT_COUNT": "1"})
    with pytest.raises(ValueError, match="unknown crash point 'nope'"):
        cp.crashpoint("nope")
    assert cp.passes() == {}


def test_registry_has_the_required_points() -> None:
    assert REQUIRED <= set(cp.CRASH_POINTS)
    assert all(isinstance(d, str) and d for d in cp.CRASH_POINTS.values())


# ---------------------------------------------------------------------------- unset, counting


def test_unset_has_no_effect() -> None:
    code = ("from core.executor import crashpoints as cp\n"
            "for name in cp.CRASH_POINTS:\n"
            "    for _ in range(100): cp.crashpoint(name)\n"
            "assert not cp.enabled() and cp.targets() == {}\n"
            "try:\n    cp.passes()\nexcept RuntimeError as e:\n    print('no counts:', e)\n")
    r = run_child(code, RADAR_CRASHPOINT_LOG="/nonexistent-dir/never-written.log")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("no counts:") and "RADAR_CRASHPOINT_COUNT" in r.stdout


def test_disabled_call_is_cheap(reconfigure) -> None:
    reconfigure({})
    f = cp.crashpoint
    per_call = min(timeit.repeat(lambda: f("after_record_before_send"), number=20_000, repeat=5)) / 20_000
    assert per_call < 2e-6                       # ~0.03 µs measured; a loose bound for a busy machine


def test_pass_counting_in_process(tmp_path: Path, reconfigure) -> None:
    log = tmp_path / "passes.log"
    assert reconfigure({"RADAR_CRASHPOINT_COUNT": "yes", "RADAR_CRASHPOINT_LOG": str(log)})
    for _ in range(3):
        cp.crashpoint("after_send_before_record")
    cp.crashpoint("during_emergency_close")
    assert cp.passes() == {"after_send_before_record": 3, "during_emergency_close": 1}
    pid = os.getpid()
    assert log.read_text().splitlines() == [f"pass after_send_before_record {n} {pid}" for n in (1, 2, 3)] + [
        f"pass during_emergency_close 1 {pid}"]
    assert cp.read_log(log).passes == {"after_send_before_record": 3, "during_emergency_close": 1}
    reconfigure({"RADAR_CRASHPOINT_COUNT": "1"})                 # counts restart, no log
    cp.crashpoint("during_reconcile")
    assert cp.passes() == {"during_reconcile": 1}
    assert len(log.read_text().splitlines()) == 4


def test_pass_counting_across_a_subprocess(tmp_path: Path) -> None:
    log = tmp_path / "passes.log"
    code = ("from core.executor.crashpoints import crashpoint, passes\n"
            "for _ in range(4): crashpoint('during_reconcile')\n"
            "crashpoint('after_fill_before_stop')\nprint(sorted(passes().items()))")
    for _ in range(2):                                       # two processes append to one log
        r = run_child(code, RADAR_CRASHPOINT_COUNT="1", RADAR_CRASHPOINT_LOG=str(log))
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "[('after_fill_before_stop', 1), ('during_reconcile', 4)]"
    parsed = cp.read_log(log)
    assert parsed.passes == {"during_reconcile": 8, "after_fill_before_stop": 2}
    assert len(parsed.passes_by_pid) == 2 and parsed.kills == []


def test_read_log_rejects_garbage_and_ignores_a_torn_last_line(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("pass during_reconcile 1 42\npass during_reco")
    assert cp.read_log(log).passes == {"during_reconcile": 1}
    log.write_text("pass during_reconcile 1 42\nhello\n")
    with pytest.raises(ValueError, match=":2: not a crash point log line"):
        cp.read_log(log)
    assert cp.read_log(tmp_path / "missing.log").passes == {}


# ---------------------------------------------------------------------------- static check of the calls


def test_every_crashpoint_call_in_core_uses_a_registered_name() -> None:
    assert cp.unregistered_calls([ROOT / "core"]) == []


def test_static_check_finds_a_typo(tmp_path: Path) -> None:
    src = tmp_path / "path.py"
    src.write_text("from core.executor.crashpoints import crashpoint\n"
                   "from core.executor import crashpoints\n"
                   "def place(x):\n"
                   "    crashpoint('after_record_before_send')\n"
                   "    crashpoints.crashpoint('after_record_before_sedn')\n"
                   "    crashpoint(x)\n"
                   "    crashpoint('during_tp_close' if x else 'during_tp_clse')\n")
    f = str(src)
    assert cp.crashpoint_calls([tmp_path]) == [(f, 4, "after_record_before_send"), (f, 5, "after_record_before_sedn"),
                                               (f, 6, None), (f, 7, "during_tp_close"), (f, 7, "during_tp_clse")]
    assert cp.unregistered_calls([src]) == [(f, 5, "after_record_before_sedn"), (f, 6, None),
                                            (f, 7, "during_tp_clse")]
