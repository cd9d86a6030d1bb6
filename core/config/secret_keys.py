"""Refusing secrets written into YAML: they belong in the environment or `.env`."""

from __future__ import annotations

from typing import Any

from core.config.yaml_doc import Loc, YamlDoc

#: A key whose name, lower-cased and without "_"/"-", contains one of these looks like a secret.
SECRET_KEY_MARKERS = ("apikey", "secret", "password", "passphrase", "token")

SECRET_IN_YAML = "secrets are read only from the environment or .env, never from YAML"


def looks_like_secret(key: Any) -> bool:
    """True when the mapping key `key` names a secret (api_key, apiKey, secret, password, passphrase, token...)."""
    if not isinstance(key, str):
        return False
    norm = key.lower().replace("_", "").replace("-", "")
    return any(marker in norm for marker in SECRET_KEY_MARKERS)


def _find(value: Any, loc: Loc, stack: frozenset[int] = frozenset()) -> Loc | None:
    if id(value) in stack:  # a recursive YAML alias
        return None
    if isinstance(value, dict):
        for key, sub in value.items():
            if looks_like_secret(key):
                return loc + (key,)
            found = _find(sub, loc + (key,), stack | {id(value)})
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            found = _find(sub, loc + (i,), stack | {id(value)})
            if found is not None:
                return found
    return None


def refuse_secret_keys(doc: YamlDoc) -> None:
    """Raise if any key of `doc`, at any depth, looks like a secret. The value is never shown.

    Raises:
        ConfigError: naming the file and the key path of the first such key.
    """
    found = _find(doc.data, ())
    if found is not None:
        raise doc.error(found, SECRET_IN_YAML)
