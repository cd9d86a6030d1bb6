"""Job states, the progress event, the job record and the cancellation signal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import RadarError

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"

#: Every state of `optimization_jobs.state`.
STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)

#: States a job never leaves.
TERMINAL = frozenset({DONE, FAILED, CANCELLED})

#: `error` of a job found `running` (or `queued`) when a JobManager starts.
INTERRUPTED = "interrupted"


class JobCancelled(RadarError):
    """Raised by a job's runner when it stops because cancel was requested."""


class JobQueueFull(RadarError):
    """`JobManager.submit` refused a job: the bounded queue is full (exit code 2)."""

    exit_code = 2


@dataclass(frozen=True)
class JobEvent:
    """A job's state or progress change, delivered to subscribers on the event loop.

    Attributes:
        job_id, kind: the job.
        state: one of STATES.
        percent: progress 0–100; never decreases within a job; 100 on `done`.
        phase: what the job is doing, e.g. "queued", "loading", "window", "statistics".
        window, n_windows: window i of n (1-based; 0 when not in a window phase).
        eta_s: estimated seconds left (elapsed × (100 − p) / p), None before any progress.
        detail: free text, e.g. the symbol being optimised.
        error: why the job failed (state failed), else None.
        ts_ms: when the event was made, ms UTC.
    """

    job_id: int
    kind: str
    state: str
    percent: float
    phase: str
    window: int = 0
    n_windows: int = 0
    eta_s: float | None = None
    detail: str = ""
    error: str | None = None
    ts_ms: int = 0


@dataclass(frozen=True)
class JobRecord:
    """One `optimization_jobs` row. Times ms UTC; progress percent 0–100; params/result decoded JSON."""

    id: int
    kind: str
    params: dict[str, Any]
    state: str
    error: str | None
    progress: float
    phase: str | None
    result: Any
    created_ms: int
    started_ms: int | None
    finished_ms: int | None
