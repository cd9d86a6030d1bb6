"""Deterministic client order ids: the same (prefix, strategy, symbol, cycle, level, purpose)
always gives the same id, so a replayed or restarted run re-derives the ids of the orders it
already placed (an exchange refuses a duplicate id: no double order after a crash).

Format: `{prefix}-{h}-{cycle}-{purpose}{level}` where `h` is 8 hex digits of a hash of
(strategy, symbol), purpose one letter (e entry, s stop, t take-profit, x market exit);
at most 36 characters for prefixes up to 8 characters (Binance/Bitget limits are >= 36).
"""

from __future__ import annotations

import hashlib

PURPOSE_CODES = {"entry": "e", "stop": "s", "take_profit": "t", "exit": "x"}


def runner_hash(strategy: str, symbol: str) -> str:
    """8 hex digits identifying (strategy, symbol)."""
    return hashlib.sha1(f"{strategy}|{symbol}".encode()).hexdigest()[:8]


def client_order_id(prefix: str, strategy: str, symbol: str, cycle: int, level: int, purpose: str) -> str:
    """The client order id of one order. `level` is ignored (-1) for exits.

    Raises:
        ValueError: unknown purpose, negative cycle, or a prefix that is not 1-8 alphanumerics.
    """
    if purpose not in PURPOSE_CODES:
        raise ValueError(f"purpose must be one of {list(PURPOSE_CODES)}, got {purpose!r}")
    if cycle < 0:
        raise ValueError(f"cycle must be >= 0, got {cycle}")
    if not (1 <= len(prefix) <= 8 and prefix.isalnum()):
        raise ValueError(f"prefix must be 1-8 letters/digits, got {prefix!r}")
    lvl = str(level) if purpose == "entry" else ""
    return f"{prefix}-{runner_hash(strategy, symbol)}-{cycle}-{PURPOSE_CODES[purpose]}{lvl}"


class ClientIds:
    """Client ids of one runner (bound prefix, strategy, symbol)."""

    __slots__ = ("prefix", "_h", "_cache")

    def __init__(self, prefix: str, strategy: str, symbol: str) -> None:
        client_order_id(prefix, strategy, symbol, 0, 0, "entry")     # validates
        self.prefix = prefix
        self._h = runner_hash(strategy, symbol)
        self._cache: dict[tuple[int, int, str], str] = {}

    def __call__(self, cycle: int, level: int, purpose: str) -> str:
        key = (cycle, level, purpose)
        cid = self._cache.get(key)
        if cid is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            lvl = str(level) if purpose == "entry" else ""
            cid = f"{self.prefix}-{self._h}-{cycle}-{PURPOSE_CODES[purpose]}{lvl}"
            self._cache[key] = cid
        return cid
