"""Pending confirmations of dangerous commands (/kill, /resume, /pause, /forceexit): single-use,
per chat, expiring.

A command that needs confirming creates a `Pending` entry with an unguessable
token; the inline-keyboard buttons carry the token. Taking the token (confirm
or cancel) removes it, so a double tap executes at most once. A token is
valid only in the chat that asked, and only for `ttl_ms` after it was made.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum

from core.model.clock import Clock, system_clock

#: The most confirmations kept at once; the oldest are forgotten beyond it.
MAX_PENDING = 64


class TakeStatus(StrEnum):
    """Outcome of `Confirmations.take`."""

    OK = "ok"                  # valid: the caller may act
    EXPIRED = "expired"        # known, but older than the TTL (now forgotten)
    UNKNOWN = "unknown"        # never made, already used, or forgotten
    WRONG_CHAT = "wrong_chat"  # made in another chat (kept for that chat)


@dataclass(frozen=True)
class Pending:
    """One confirmation waiting for its button.

    Attributes:
        token: the id carried by the buttons (URL-safe, 11 characters).
        action: what is to be confirmed, e.g. "kill" or "resume".
        chat_id: the chat that asked.
        actor: who asked, e.g. "telegram:alice".
        created_ms, expires_ms: ms UTC.
        args: the command's arguments, e.g. ("BTC/USDT",) for /pause BTC/USDT.
    """

    token: str
    action: str
    chat_id: int
    actor: str
    created_ms: int
    expires_ms: int
    args: tuple[str, ...] = ()


class Confirmations:
    """The confirmations currently waiting.

    Args:
        ttl_ms: how long a confirmation is valid (ms, > 0).
        clock: ms UTC time source.

    Raises:
        ValueError: ttl_ms <= 0.
    """

    def __init__(self, ttl_ms: int, clock: Clock = system_clock) -> None:
        if ttl_ms <= 0:
            raise ValueError(f"confirmation ttl_ms must be > 0, got {ttl_ms}")
        self._ttl_ms = int(ttl_ms)
        self._clock = clock
        self._pending: dict[str, Pending] = {}

    def create(self, action: str, chat_id: int, actor: str, args: tuple[str, ...] = ()) -> Pending:
        """Make a new confirmation for `action` (with `args`) asked by `actor` in `chat_id`; returns it."""
        now = self._clock()
        self._pending = {t: p for t, p in self._pending.items() if p.expires_ms > now}
        while len(self._pending) >= MAX_PENDING:
            del self._pending[next(iter(self._pending))]
        pending = Pending(secrets.token_urlsafe(8), action, int(chat_id), actor, now, now + self._ttl_ms,
                          tuple(args))
        self._pending[pending.token] = pending
        return pending

    def take(self, token: str, chat_id: int) -> tuple[TakeStatus, Pending | None]:
        """Use up `token` pressed in `chat_id`.

        Returns:
            (OK, the entry) when valid (now removed); (EXPIRED, the entry) when too old
            (removed); (WRONG_CHAT, None) when made in another chat (kept);
            (UNKNOWN, None) otherwise.
        """
        pending = self._pending.get(token)
        if pending is None:
            return TakeStatus.UNKNOWN, None
        if pending.chat_id != int(chat_id):
            return TakeStatus.WRONG_CHAT, None
        del self._pending[token]
        if self._clock() >= pending.expires_ms:
            return TakeStatus.EXPIRED, pending
        return TakeStatus.OK, pending

    def __len__(self) -> int:
        """How many confirmations are kept (expired ones included until the next `create`)."""
        return len(self._pending)
