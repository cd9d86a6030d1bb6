"""Secrets (exchange keys, Telegram token) from the environment or a `.env` file, never YAML.

Values are pydantic `SecretStr`: `repr`, `str` and `model_dump_json` show
'**********'; call `.get_secret_value()` only where the value is sent to the
exchange or Telegram. See `core.config.redact` to keep them out of logs.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Mapping

from pydantic import BaseModel, ConfigDict, SecretStr

from core.config.dotenv import parse_dotenv
from core.errors import ConfigError

log = logging.getLogger(__name__)

BITGET_VARS = ("BITGET_API_KEY", "BITGET_API_SECRET", "BITGET_API_PASSPHRASE")
TELEGRAM_TOKEN_VAR = "TELEGRAM_BOT_TOKEN"
TELEGRAM_CHATS_VAR = "TELEGRAM_ALLOWED_CHAT_IDS"
#: Every variable `load_secrets` reads.
SECRET_VARS = BITGET_VARS + (TELEGRAM_TOKEN_VAR, TELEGRAM_CHATS_VAR)


class Secrets(BaseModel):
    """Credentials; any may be absent (None) and then that integration is off.

    Attributes:
        bitget_api_key, bitget_api_secret, bitget_api_passphrase: Bitget API
            credentials (all three or none).
        telegram_bot_token: the Telegram bot token.
        telegram_allowed_chat_ids: chat ids allowed to talk to the bot (not secret).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    bitget_api_key: SecretStr | None = None
    bitget_api_secret: SecretStr | None = None
    bitget_api_passphrase: SecretStr | None = None
    telegram_bot_token: SecretStr | None = None
    telegram_allowed_chat_ids: tuple[int, ...] = ()

    def has_bitget(self) -> bool:
        """True when all three Bitget credentials are set."""
        return None not in (self.bitget_api_key, self.bitget_api_secret, self.bitget_api_passphrase)

    def has_telegram(self) -> bool:
        """True when the Telegram bot token is set."""
        return self.telegram_bot_token is not None

    def secret_values(self) -> list[str]:
        """The plain values of every set secret (for log redaction only)."""
        fields = (self.bitget_api_key, self.bitget_api_secret, self.bitget_api_passphrase,
                  self.telegram_bot_token)
        return [s.get_secret_value() for s in fields if s is not None]


def _read_dotenv(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(str(path), "", f"cannot read the file: {getattr(err, 'strerror', None) or err}") from None
    try:
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("%s is readable by other users; run: chmod 600 %s", path, path)
    except OSError:
        pass
    return parse_dotenv(text, str(path))


def _chat_ids(raw: str, source: str) -> tuple[int, ...]:
    ids = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            ids.append(int(part))
        except ValueError:
            raise ConfigError(source, TELEGRAM_CHATS_VAR, "expected a comma-separated list of integer "
                              "chat ids, e.g. 123456789,-1001234567890") from None
    return tuple(ids)


def load_secrets(environ: Mapping[str, str] | None = None,
                 dotenv_path: Path | None = Path(".env")) -> Secrets:
    """Read the secrets: the environment wins over the `.env` file.

    Args:
        environ: the environment (default `os.environ`).
        dotenv_path: the `.env` file (relative to the working folder); a
            missing file is fine; None reads no file. A file readable by other
            users is logged as a warning.

    Returns:
        Secrets; empty values count as unset.

    Raises:
        ConfigError: `.env` is malformed (file = its path), only some of the
            Bitget variables are set, or TELEGRAM_ALLOWED_CHAT_IDS is not a
            comma list of integers (file = "environment" or the `.env` path,
            key path = the variable). Messages never include a value.
    """
    env = os.environ if environ is None else environ
    dotenv = _read_dotenv(Path(dotenv_path)) if dotenv_path is not None else {}
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for var in SECRET_VARS:
        if env.get(var):
            values[var], sources[var] = env[var], "environment"
        elif dotenv.get(var):
            values[var], sources[var] = dotenv[var], str(dotenv_path)
    present = [v for v in BITGET_VARS if v in values]
    if present and len(present) < len(BITGET_VARS):
        missing = next(v for v in BITGET_VARS if v not in values)
        raise ConfigError(sources[present[0]], missing,
                          f"missing while {present[0]} is set; expected all of "
                          f"{', '.join(BITGET_VARS)} or none")
    chats = (_chat_ids(values[TELEGRAM_CHATS_VAR], sources[TELEGRAM_CHATS_VAR])
             if TELEGRAM_CHATS_VAR in values else ())

    def secret(var: str) -> SecretStr | None:
        return SecretStr(values[var]) if var in values else None

    return Secrets(bitget_api_key=secret("BITGET_API_KEY"),
                   bitget_api_secret=secret("BITGET_API_SECRET"),
                   bitget_api_passphrase=secret("BITGET_API_PASSPHRASE"),
                   telegram_bot_token=secret(TELEGRAM_TOKEN_VAR),
                   telegram_allowed_chat_ids=chats)
