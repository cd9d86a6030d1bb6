"""`.env` text to {KEY: value} with python-dotenv, refusing what it would silently skip or half-read.

python-dotenv (`dotenv_values`) does the parsing: `KEY=VALUE` lines, `export `,
single quotes (literal but for `\\'` and `\\\\`), double quotes (escapes such as
`\\n`, `\\t`, `\\"`; may span lines), `#` comments. No `${VAR}` interpolation is
done. Before that, `dotenv.parser.parse_stream` is used to refuse, with the line
number, every statement python-dotenv cannot parse (it would only log a warning
and skip it) and every line that is not `KEY=VALUE` with KEY a shell name.
"""

from __future__ import annotations

import io
import re

from dotenv import dotenv_values
from dotenv.parser import Binding, parse_stream

from core.errors import ConfigError

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: The start of a `KEY=` statement whose value opens a quote: (key, quote).
_QUOTED_START_RE = re.compile(r"""^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(['"])""")


def _start(binding: Binding) -> tuple[int, str]:
    """(1-based line, text of that line) where a statement starts (python-dotenv counts from
    the blank lines before it)."""
    text = binding.original.string
    body = text.lstrip()
    n = binding.original.line + text[:len(text) - len(body)].count("\n")
    return n, (body.splitlines() or [""])[0]


def _refuse(binding: Binding, file: str) -> ConfigError:
    """The error for a statement python-dotenv could not parse (never quoting the value)."""
    n, first_line = _start(binding)
    m = _QUOTED_START_RE.match(first_line)
    if m:
        return ConfigError(file, m.group(1), f"line {n}: expected a closing {m.group(2)}, "
                                             "followed only by an optional # comment")
    return ConfigError(file, "", f"line {n}: expected KEY=VALUE")


def _check(text: str, file: str) -> None:
    """Raise ConfigError for the first statement that is not a well-formed `KEY=VALUE`."""
    for b in parse_stream(io.StringIO(text)):
        if b.error:
            raise _refuse(b, file)
        if b.key is None:  # blank line or comment
            continue
        if b.value is None or not _KEY_RE.match(b.key):  # "WORD" alone, or "a.b=1"
            raise ConfigError(file, "", f"line {_start(b)[0]}: expected KEY=VALUE")


def parse_dotenv(text: str, file: str) -> dict[str, str]:
    """Parse `.env` text into {KEY: value} (python-dotenv's rules; a later line wins).

    Args:
        text: the file's content.
        file: its name, used in error messages.

    Returns:
        {KEY: value}; `KEY=` gives "".

    Raises:
        ConfigError: a statement python-dotenv cannot parse (e.g. an unclosed quote, text
            after a closing quote), a line without `=`, or a KEY that is not a shell name
            ([A-Za-z_][A-Za-z0-9_]*). The file is `file`, the key path the KEY when it is
            known and well-formed (else empty), the message names the line. No value (it may
            be a secret) is ever part of a message.
    """
    _check(text, file)
    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    return {k: v if v is not None else "" for k, v in values.items()}
