"""Operator durations such as "30m", "2h", "1d" (snooze lengths), in ms."""

from __future__ import annotations

import re

from core.errors import UsageError

_UNITS_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PATTERN = re.compile(r"([0-9]+)([mhd])")

#: The longest duration accepted (365 days), to catch typos such as "3000d".
MAX_DURATION_MS = 365 * 86_400_000

#: How the accepted forms are described in error messages.
ACCEPTED_FORMS = "a whole number followed by m (minutes), h (hours) or d (days), e.g. 30m, 2h, 1d"


def parse_duration_ms(text: str) -> int:
    """Milliseconds of a duration such as "30m", "2h" or "1d" (surrounding spaces ignored).

    Raises:
        UsageError: not `<whole number><m|h|d>`, zero, or longer than 365 days;
            the message names the accepted forms.
    """
    if not isinstance(text, str):
        raise UsageError(f"invalid duration {text!r}: expected {ACCEPTED_FORMS}")
    m = _PATTERN.fullmatch(text.strip())
    if m is None:
        raise UsageError(f"invalid duration {text!r}: expected {ACCEPTED_FORMS}")
    ms = int(m.group(1)) * _UNITS_MS[m.group(2)]
    if ms <= 0:
        raise UsageError(f"invalid duration {text!r}: must be longer than zero ({ACCEPTED_FORMS})")
    if ms > MAX_DURATION_MS:
        raise UsageError(f"invalid duration {text!r}: at most 365d")
    return ms


def format_duration_ms(ms: int) -> str:
    """A short form of `ms` in the largest whole unit: 1800000 -> "30m", 7200000 -> "2h"; else seconds."""
    for unit in ("d", "h", "m"):
        size = _UNITS_MS[unit]
        if ms > 0 and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms / 1000:g}s"
