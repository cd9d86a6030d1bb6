"""Injectable time source of the alert engine: a callable returning int ms UTC."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable

#: A clock: no arguments, returns the current time as int ms UTC.
Clock = Callable[[], int]


def system_clock() -> int:
    """The wall-clock time, int ms UTC."""
    return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that only moves when told to (tests, replays).

    Args:
        start_ms: the initial time, int ms UTC.
    """

    def __init__(self, start_ms: int) -> None:
        self.now_ms = int(start_ms)

    def __call__(self) -> int:
        """The current time, int ms UTC."""
        return self.now_ms

    def advance(self, ms: int) -> int:
        """Move forward by `ms` (>= 0) milliseconds; returns the new time.

        Raises:
            ValueError: `ms` is negative.
        """
        if ms < 0:
            raise ValueError(f"ManualClock.advance: ms must be >= 0, got {ms}")
        self.now_ms += int(ms)
        return self.now_ms


def format_ms(ms: int | None) -> str:
    """`YYYY-MM-DD HH:MM:SS UTC` of a ms timestamp; "-" for None."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
