"""Settings of the Telegram bot: threshold, queue size, retry and timeout values (seconds)."""

from __future__ import annotations

from dataclasses import dataclass

from core.alerts.model import Severity
from core.errors import ConfigError

#: The public Bot API endpoint; python-telegram-bot appends the token to it.
DEFAULT_BASE_URL = "https://api.telegram.org/bot"

_WHERE = "telegram settings"


@dataclass(frozen=True)
class TelegramSettings:
    """How the bot talks to Telegram. Durations are seconds (floats) unless named `_ms`.

    Attributes:
        min_severity: alert notifications below this severity are not sent. Default warning.
        queue_size: outgoing messages waiting to be sent (>= 1); when full the oldest
            lowest-severity message is dropped (see `core.telegram.outbox`). Default 500.
        retry_base_s: first backoff after a failed send; doubles per attempt (> 0). Default 1.
        retry_max_s: backoff cap (>= retry_base_s). Default 60.
        max_attempts: give up on a message after this many failed attempts (None: retry
            until it expires). Default None.
        expire_after_s: a message still unsent this long after it was queued is given up
            (counted as failed); None: never. Default 6 hours.
        send_timeout_s: one sendMessage / reply attempt is abandoned (and retried) after this. Default 10.
        confirm_ttl_s: how long a /kill or /resume confirmation button stays valid. Default 60.
        command_timeout_s: how long a command may wait for the engine's answer. Default 10.
        poll_timeout_s: getUpdates long-poll timeout. Default 10.
        connect_retry_base_s, connect_retry_max_s: backoff between attempts to connect
            (getMe, deleteWebhook) when Telegram is unreachable at start. Defaults 2 and 120.
        stop_flush_s: on stop, how long queued messages may still be sent. Default 3.
        drop_pending_updates: ignore commands sent while the bot was not running. Default True.
        register_commands: publish the command list (setMyCommands) on connect. Default True.
        base_url: Bot API URL before the token (tests point this at a local stand-in).

    Raises:
        ConfigError: a value out of range (key path = the field name).
    """

    min_severity: Severity = Severity.WARNING
    queue_size: int = 500
    retry_base_s: float = 1.0
    retry_max_s: float = 60.0
    max_attempts: int | None = None
    expire_after_s: float | None = 6 * 3600.0
    send_timeout_s: float = 10.0
    confirm_ttl_s: float = 60.0
    command_timeout_s: float = 10.0
    poll_timeout_s: float = 10.0
    connect_retry_base_s: float = 2.0
    connect_retry_max_s: float = 120.0
    stop_flush_s: float = 3.0
    drop_pending_updates: bool = True
    register_commands: bool = True
    base_url: str = DEFAULT_BASE_URL

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "min_severity", Severity.parse(self.min_severity))
        except ValueError as err:
            raise ConfigError(_WHERE, "min_severity", str(err)) from None
        if not isinstance(self.queue_size, int) or self.queue_size < 1:
            raise ConfigError(_WHERE, "queue_size", f"must be an int >= 1, got {self.queue_size!r}")
        for name in ("retry_base_s", "send_timeout_s", "confirm_ttl_s", "command_timeout_s",
                     "connect_retry_base_s"):
            _positive(name, getattr(self, name))
        _positive("poll_timeout_s", self.poll_timeout_s, allow_zero=True)
        _positive("stop_flush_s", self.stop_flush_s, allow_zero=True)
        if self.retry_max_s < self.retry_base_s:
            raise ConfigError(_WHERE, "retry_max_s", f"must be >= retry_base_s, got {self.retry_max_s!r}")
        if self.connect_retry_max_s < self.connect_retry_base_s:
            raise ConfigError(_WHERE, "connect_retry_max_s",
                              f"must be >= connect_retry_base_s, got {self.connect_retry_max_s!r}")
        if self.max_attempts is not None and (not isinstance(self.max_attempts, int) or self.max_attempts < 1):
            raise ConfigError(_WHERE, "max_attempts", f"must be an int >= 1 or None, got {self.max_attempts!r}")
        if self.expire_after_s is not None:
            _positive("expire_after_s", self.expire_after_s)
        if not isinstance(self.base_url, str) or not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(_WHERE, "base_url", "must be an http(s) URL such as https://api.telegram.org/bot")


def _positive(name: str, value: object, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ConfigError(_WHERE, name, f"must be a number {'>= 0' if allow_zero else '> 0'}, got {value!r}")
