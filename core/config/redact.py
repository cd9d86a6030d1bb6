"""Keeping secret values out of log output: a logging filter and its installer."""

from __future__ import annotations

import logging
from typing import Iterable

from core.config.secrets import Secrets

#: What a secret value is replaced with in a log record.
MASK = "***"


class SecretRedactor(logging.Filter):
    """A `logging.Filter` that replaces every secret value in a record with '***'.

    It renders the message with its args (`record.getMessage()`), redacts it
    and stores it as `record.msg` with `record.args = None`; a traceback or
    stack is rendered, redacted and kept as `record.exc_text` /
    `record.stack_info` (`record.exc_info` is then cleared so no formatter
    renders the raw exception again). Never drops a record.

    Args:
        secrets: a `Secrets`, or plain secret strings. Empty strings are ignored.
    """

    def __init__(self, secrets: Secrets | Iterable[str]) -> None:
        super().__init__()
        values = secrets.secret_values() if isinstance(secrets, Secrets) else [str(s) for s in secrets]
        # Longest first, so a secret containing another is masked whole.
        self._values = sorted({v for v in values if v}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """`text` with every secret value replaced by '***'."""
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact `record` in place; always True (the record is kept)."""
        if not self._values:
            return True
        try:
            message = record.getMessage()
        except Exception:  # bad format args: keep what there is, redacted
            message = f"{record.msg!s} {record.args!r}"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install_redaction(secrets: Secrets | Iterable[str],
                      logger: logging.Logger | None = None) -> SecretRedactor:
    """Add a `SecretRedactor` to every handler of `logger` (default: the root logger).

    A handler's earlier SecretRedactor is replaced. Handlers added later are
    not covered: add the returned filter to them (`handler.addFilter(f)`).

    Returns:
        the installed filter.
    """
    target = logger if logger is not None else logging.getLogger()
    redactor = SecretRedactor(secrets)
    for handler in target.handlers:
        for old in [f for f in handler.filters if isinstance(f, SecretRedactor)]:
            handler.removeFilter(old)
        handler.addFilter(redactor)
    return redactor
