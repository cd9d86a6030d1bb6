"""Typed errors shared across the engine.

Every error carries a message that names what was wrong and where; the CLI
prints `str(err)` and exits with `err.exit_code`.
"""

from __future__ import annotations


class RadarError(Exception):
    """Base of Radar's own errors. `exit_code` is what the CLI exits with."""

    exit_code: int = 1


class ConfigError(RadarError):
    """A config file or value is invalid; nothing starts (exit code 2).

    Args:
        file: the YAML file (or "environment"/".env") the bad value came from.
        key_path: dotted path of the bad key inside that file, e.g.
            "strategies.envelope_dca.params.ma_period" ("" for the whole file).
        message: what was expected / what was wrong.
    """

    exit_code = 2

    def __init__(self, file: str, key_path: str, message: str) -> None:
        self.file = file
        self.key_path = key_path
        self.message = message
        where = f"{file}: {key_path}" if key_path else file
        super().__init__(f"{where}: {message}")


class DataError(RadarError):
    """Market data (a candle file, a stored series, an exchange response) is invalid (exit code 2)."""

    exit_code = 2


class UsageError(RadarError):
    """A user command or argument is invalid (exit code 2)."""

    exit_code = 2
