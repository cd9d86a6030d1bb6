"""Job-control signals while the console shares its process with a running engine.

Textual's Linux driver installs process-wide SIGTSTP / SIGCONT handlers when it is created (for
ctrl+z suspend) and never removes them. Radar binds no suspend, and the handlers outlive the
console: after `d` (detach), a terminal that goes away (tmux kill-session, a dropped SSH session)
makes the kernel send SIGHUP and SIGCONT, and the left-over SIGCONT handler restarted the
driver's input thread on the dead terminal — a thread spinning at 100 % of a core that also kept
the process alive after SIGTERM (issue 12, defect 1). So the console gives both signals back their
default action once it is up, and again when it ends.
"""

from __future__ import annotations

import signal

#: the signals Textual's driver takes over for its suspend / resume
JOB_CONTROL_SIGNALS = (signal.SIGTSTP, signal.SIGCONT)


def release_job_control_signals() -> None:
    """Give SIGTSTP and SIGCONT their default action (stop; continue without a handler). Call
    from the main thread (Python's `signal.signal` rule); a no-op where a signal is missing."""
    for sig in JOB_CONTROL_SIGNALS:
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (ValueError, OSError):       # pragma: no cover - not the main thread / no such signal
            pass
