"""Coalescing of engine events into widget refreshes.

The engine publishes many events per second (a replay at max speed: thousands). The console
never repaints per event: an event only marks the console *dirty*; a timer ticking at
`max_hz` (10 per second) repaints the header and the *visible* screen when something
changed since the last paint. Hidden screens are never refreshed: they are marked stale and
repainted once when they are shown again (`RadarScreen.on_screen_resume`).

`Coalescer` holds the pure logic (testable without Textual):

    c = Coalescer(max_hz=10, clock=time.monotonic)
    c.mark()                 # an event arrived (cheap, any number of times)
    if c.due():              # called from the timer: True at most max_hz times a second
        repaint()

A `heartbeat_s` forces a repaint now and then even without events (ages and clocks move).
"""

from __future__ import annotations

import time
from typing import Callable


class Coalescer:
    """Dirty flag + rate limit (see the module docstring).

    Args:
        max_hz: at most this many `due()` == True per second.
        heartbeat_s: also due when nothing was painted for this long (0 = never).
        clock: monotonic seconds (injectable for tests).

    Attributes:
        marks: events marked since creation. paints: times `due()` returned True.
    """

    def __init__(self, max_hz: float = 10.0, heartbeat_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_hz <= 0:
            raise ValueError(f"max_hz must be > 0, got {max_hz}")
        self.min_interval = 1.0 / max_hz
        self.heartbeat_s = heartbeat_s
        self.clock = clock
        self.dirty = True
        self.marks = 0
        self.paints = 0
        self._last: float | None = None

    def mark(self) -> None:
        """Something changed: repaint at the next allowed tick."""
        self.dirty = True
        self.marks += 1

    def due(self) -> bool:
        """True when a repaint should happen now (then the dirty flag is cleared)."""
        now = self.clock()
        last = self._last
        if last is not None and now - last < self.min_interval - 1e-9:
            return False
        if not self.dirty and not (self.heartbeat_s and (last is None or now - last >= self.heartbeat_s)):
            return False
        self.dirty = False
        self._last = now
        self.paints += 1
        return True


class RateLimiter:
    """Per-key limiter: `allow(key)` is True at most `max_hz` times a second per key."""

    def __init__(self, max_hz: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_interval = 1.0 / max_hz
        self.clock = clock
        self._last: dict[object, float] = {}

    def allow(self, key: object) -> bool:
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.min_interval - 1e-9:
            return False
        self._last[key] = now
        return True
