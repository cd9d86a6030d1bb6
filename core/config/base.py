"""`ConfigModel`: the base of every YAML file model (unknown keys refused, frozen)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class ConfigModel(BaseModel):
    """Base of the config file models: `extra="forbid"`, frozen.

    `key_noun` names this model's keys in an "unknown ..." error (e.g. "strategy").
    Files are validated with `model_validate(data, strict=True)`: YAML already
    types its values, so "7" (a string) is not an integer.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_noun: ClassVar[str] = "key"


class RuleError(ValueError):
    """A broken cross-field rule, raised inside a validator of a config model.

    Args:
        message: what was expected, e.g. "expected <= limits.leverage_cap (3), got 5".
        at: the key path, relative to the validated value, that the error
            names, e.g. ("account", "leverage"); the translated ConfigError
            appends it to the validator's location.
    """

    def __init__(self, message: str, at: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.at = at
