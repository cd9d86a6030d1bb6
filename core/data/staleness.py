"""Stale-feed detection per symbol.

A symbol is STALE when no good message (candle or ticker push) has arrived for
`stale_after_s` seconds; the monitor then reports one `FeedStale` (with the age)
and, when messages arrive again, one `FeedFresh` (with how long it was silent).
Pure bookkeeping on an injected clock: the caller reports activity with `seen`
and polls `check` (the engine does both on a timer).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from core.data.feed import FeedFresh, FeedStale


@dataclass
class _State:
    last: float  # clock time of the last message (or of `watch` before the first one)
    stale: bool = False
    last_before_stale: float = 0.0


class StalenessMonitor:
    """Tracks the last message time per symbol and turns silences into stale/fresh events.

    Args:
        stale_after_s: silence (seconds) after which a symbol is stale; > 0.
        clock: seconds, monotonic (default `time.monotonic`); the same clock the
            feeds use for `last_message_at`.

    Raises:
        ValueError: `stale_after_s` is not a positive number.
    """

    def __init__(self, stale_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not stale_after_s > 0:
            raise ValueError(f"stale_after_s must be > 0 seconds, got {stale_after_s!r}")
        self.stale_after_s = float(stale_after_s)
        self._clock = clock
        self._states: dict[str, _State] = {}

    def watch(self, symbol: str, now: float | None = None) -> None:
        """Start watching `symbol`; its silence is counted from `now` (default: the clock)."""
        if symbol not in self._states:
            self._states[symbol] = _State(self._clock() if now is None else now)

    def seen(self, symbol: str, at: float) -> None:
        """Record a message for `symbol` at clock time `at` (older times than already seen are ignored)."""
        state = self._states.get(symbol)
        if state is None:
            self._states[symbol] = _State(at)
        elif at > state.last:
            state.last = at

    def is_stale(self, symbol: str) -> bool:
        """Whether `symbol` is currently reported stale."""
        state = self._states.get(symbol)
        return bool(state and state.stale)

    def check(self, now: float | None = None) -> list[FeedStale | FeedFresh]:
        """Events for symbols whose state changed since the last check, in symbol order."""
        now = self._clock() if now is None else now
        events: list[FeedStale | FeedFresh] = []
        for symbol in sorted(self._states):
            state = self._states[symbol]
            age = now - state.last
            if not state.stale and age >= self.stale_after_s:
                state.stale = True
                state.last_before_stale = state.last
                events.append(FeedStale(symbol, round(age, 3)))
            elif state.stale and state.last > state.last_before_stale and age < self.stale_after_s:
                state.stale = False
                events.append(FeedFresh(symbol, round(state.last - state.last_before_stale, 3)))
        return events
