"""Telegram: alert notifications, trade messages and operator commands through python-telegram-bot.

* `bot`       TelegramBot: Application wiring in the engine's event loop, allow-list, sink, send methods
* `outbox`    the bounded outgoing queue with retry, backoff and severity-aware overflow
* `commands`  command parsing and replies (/status ... /help), /kill and /resume confirmations
* `confirm`   single-use expiring confirmation tokens
* `control`   EngineControl: what the bot may ask of the engine (+ an in-memory stand-in)
* `format`    message texts
* `settings`  TelegramSettings
* `logs`      keeping the token out of logs
"""

from core.telegram.bot import TelegramBot, TelegramStats
from core.telegram.control import EngineControl, InMemoryEngineControl
from core.telegram.outbox import Outbox, OutboxStats
from core.telegram.settings import TelegramSettings

__all__ = ["EngineControl", "InMemoryEngineControl", "Outbox", "OutboxStats", "TelegramBot", "TelegramSettings",
           "TelegramStats"]
