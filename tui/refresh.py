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

Adaptive pacing: the app reports what each repaint cost (`observe(seconds)`: its own
refresh plus Textual's compositor frame). The interval between repaints grows so that
repainting takes at most `duty` of the loop's time (an EWMA of the cost / duty, between
1/max_hz and `max_interval_s`): a cheap console keeps 10 Hz, a 40 ms frame (a wide table
under a 1,000 candles/s replay) is repainted about once a second, so the event loop keeps
serving the engine and the keyboard.
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
                 clock: Callable[[], float] = time.monotonic, duty: float = 0.04,
                 max_interval_s: float = 1.0) -> None:
        if max_hz <= 0:
            raise ValueError(f"max_hz must be > 0, got {max_hz}")
        if not 0 < duty <= 1:
            raise ValueError(f"duty must be in (0, 1], got {duty}")
        self.min_interval = 1.0 / max_hz
        self.interval = self.min_interval          # the current pacing (>= min_interval)
        self.duty = duty
        self.max_interval = max(self.min_interval, max_interval_s)
        self.cost = 0.0                            # EWMA of a repaint's cost, seconds
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

    def observe(self, cost_s: float) -> None:
        """A repaint cost `cost_s` seconds: adapt the interval (module docstring)."""
        c = max(0.0, float(cost_s))
        self.cost = c if self.cost == 0.0 else 0.7 * self.cost + 0.3 * c
        self.interval = min(self.max_interval, max(self.min_interval, self.cost / self.duty))

    def wait_s(self) -> float:
        """Seconds until a repaint may happen (0: now), whether or not something is dirty."""
        if self._last is None:
            return 0.0
        return max(0.0, self._last + self.interval - self.clock())

    def due(self) -> bool:
        """True when a repaint should happen now (then the dirty flag is cleared)."""
        now = self.clock()
        last = self._last
        if last is not None and now - last < self.interval - 1e-9:
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
