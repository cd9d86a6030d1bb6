"""A tiny `.env` parser: `KEY=VALUE` lines, quotes, comments, optional `export `."""

from __future__ import annotations

import re

from core.errors import ConfigError

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"'}


def _quoted(value: str, file: str, key: str, n: int) -> str:
    """The content of a value starting with a quote; text after the closing quote must be a comment."""
    quote = value[0]
    out: list[str] = []
    i = 1
    while i < len(value):
        c = value[i]
        if quote == '"' and c == "\\" and i + 1 < len(value):
            out.append(_ESCAPES.get(value[i + 1], "\\" + value[i + 1]))
            i += 2
            continue
        if c == quote:
            rest = value[i + 1:].strip()
            if rest and not rest.startswith("#"):
                raise ConfigError(file, key, f"line {n}: expected only a comment after the closing quote")
            return "".join(out)
        out.append(c)
        i += 1
    raise ConfigError(file, key, f"line {n}: expected a closing {quote} on the same line")


def parse_dotenv(text: str, file: str) -> dict[str, str]:
    """Parse `.env` text into {KEY: value}.

    Rules: blank lines and lines starting with `#` are skipped; `export KEY=V`
    is accepted; a value in single quotes is literal; in double quotes `\\n`,
    `\\t`, `\\"` and `\\\\` are unescaped; an unquoted value ends at ` #`
    (inline comment) and is stripped. A later line wins over an earlier one.
    Error messages never include a value (it may be a secret).

    Raises:
        ConfigError: a line is not `KEY=VALUE` or has an unclosed quote; `file`
            is the given name, the key path the KEY (empty if unreadable).
    """
    out: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[len("export"):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _KEY_RE.match(key):
            raise ConfigError(file, "", f"line {n}: expected KEY=VALUE")
        value = value.strip()
        if value[:1] in ("'", '"'):
            value = _quoted(value, file, key, n)
        else:
            m = re.search(r"\s#", value)
            if m:
                value = value[:m.start()].rstrip()
        out[key] = value
    return out
