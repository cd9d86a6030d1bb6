"""A `radar` command whose output reader goes away (`radar status --json | head -c 10`) ends
quietly with 141 (128 + SIGPIPE), not a BrokenPipeError traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: `radar status` made to print 10 MB to stdout (the module's command is replaced before the
#: parser binds it), through the real `core.cli.main.main`
SCRIPT = """
import sys
import core.cli.status_cmd as m
def loud(args):
    for _ in range(100_000):
        print("x" * 100)
m.cmd_status = loud
from core.cli.main import main
sys.exit(main(["--db", sys.argv[1], "status"]))
"""


def test_a_closed_stdout_ends_quietly(tmp_path: Path) -> None:
    cmd = f"{sys.executable} -c '{SCRIPT}' {tmp_path / 'r.db'} | head -c 10 > /dev/null; echo ${{PIPESTATUS[0]}}"
    proc = subprocess.run(cmd, shell=True, executable="/bin/bash", cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stdout.strip() == "141", (proc.stdout, proc.stderr[-500:])
