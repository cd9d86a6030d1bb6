"""Timeframe strings (ccxt/freqtrade style: `1m`, `5m`, `1h`, `4h`, `8h`, `1d`, `1w`) to milliseconds."""

from __future__ import annotations

import re

from core.errors import DataError

_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_RE = re.compile(r"^([1-9][0-9]*)([mhdw])$")


def timeframe_ms(timeframe: str) -> int:
    """Length of one candle of `timeframe` in ms.

    Raises:
        DataError: the string is not `<positive int><m|h|d|w>`.
    """
    m = _RE.match(timeframe)
    if not m:
        raise DataError(f"unknown timeframe {timeframe!r}: expected e.g. 1m, 5m, 1h, 4h, 1d, 1w")
    return int(m.group(1)) * _UNIT_MS[m.group(2)]
