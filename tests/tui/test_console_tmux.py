"""The console in a real terminal: `radar run --replay <BTC 1h> --speed 3600` inside tmux at
80x24; every screen is visited by its number key and the captured pane text checked for the
screen's markers (the routine of benchmarks/console_tmux.py); `q` then ends the process."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.support.shared_data import shared_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import console_tmux  # noqa: E402

BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"


@pytest.mark.skipif(shutil.which("tmux") is None and not Path("/usr/bin/tmux").exists(), reason="tmux not installed")
def test_console_visits_every_screen_in_tmux(tmp_path: Path) -> None:
    data = shared_file(BTC_1H)
    # generous timeouts: CI shares 2 cores with the replay and the first mount of each screen
    res = console_tmux.run_routine(data, workdir=tmp_path, speed="3600", size=(80, 24),
                                   first_timeout=120.0, screen_timeout=30.0)
    report = "\n".join(f"{s.name}: {'ok' if s.ok else 'FAIL'} {s.seconds:.2f}s missing={s.missing}"
                       for s in res.screens)
    assert res.ok, f"{report}\n--- pane at the failure ---\n{res.pane_at_failure}"
    assert [s.name for s in res.screens] == [name for _, name, _ in console_tmux.SCREENS]
    assert res.exit_code == 0, f"the process did not end cleanly after q: exit {res.exit_code}"
    # the terminal got the app's screens, not log lines: the header is on the first row of each
    for s in res.screens:
        assert s.pane.lstrip().startswith("radar@"), f"{s.name}: first row is not the header:\n{s.pane}"
