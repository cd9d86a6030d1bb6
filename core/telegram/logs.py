"""Keeping the bot token out of logs.

python-telegram-bot puts the token in every request URL (`.../bot<TOKEN>/sendMessage`),
httpx logs each request URL at INFO, and the library logs its base URL at DEBUG
and the token itself when the server rejects it. `protect_token` therefore:

* attaches a `core.config.redact.SecretRedactor` for the token to every logger
  of python-telegram-bot, httpx, httpcore and `core.telegram` (a logger's own
  filter rewrites the record before any handler sees it, whatever handlers the
  application installs later, caplog included);
* raises httpx and httpcore to WARNING so request lines are not logged at all
  unless someone lowers them on purpose (they are redacted even then).

Loggers are process-wide, so the filter keeps every token it was ever given.
"""

from __future__ import annotations

import logging

from core.config.redact import SecretRedactor

#: Loggers written by python-telegram-bot, httpx, httpcore and this package.
TOKEN_LOGGERS = (
    "telegram", "telegram.Bot", "telegram.BaseRequest", "telegram.HTTPXRequest",
    "telegram.ext", "telegram.ext.Application", "telegram.ext.ExtBot", "telegram.ext.Updater",
    "telegram.ext.JobQueue", "telegram.ext.AIORateLimiter", "telegram.ext.ConversationHandler",
    "httpx", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy",
    "httpcore.socks",
    "core.telegram", "core.telegram.bot", "core.telegram.commands", "core.telegram.outbox",
    "core.telegram.confirm", "core.telegram.control", "core.telegram.format", "core.telegram.logs",
)
_PREFIXES = ("telegram", "httpx", "httpcore", "core.telegram")

_tokens: set[str] = set()


class TokenRedactor(SecretRedactor):
    """The `SecretRedactor` this module attaches (told apart from others so it can be replaced)."""


def _names() -> list[str]:
    known = [n for n in logging.root.manager.loggerDict
             if any(n == p or n.startswith(p + ".") for p in _PREFIXES)]
    return sorted(set(TOKEN_LOGGERS) | set(known))


def protect_token(token: str) -> TokenRedactor:
    """Redact `token` (and every token given before) in the bot's, the HTTP stack's and our logs.

    Call before the first request is made (building the Application logs the URL).
    Idempotent; returns the filter now attached (its `redact` also serves error texts).
    """
    if token:
        _tokens.add(token)
    redactor = TokenRedactor(sorted(_tokens))
    for name in _names():
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, TokenRedactor)]:
            logger.removeFilter(old)
        logger.addFilter(redactor)
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:  # a level set on purpose is kept (records stay redacted)
            logger.setLevel(logging.WARNING)
    return redactor
