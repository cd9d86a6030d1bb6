"""`parse_dotenv` on python-dotenv: its syntax, no interpolation, and a ConfigError naming the line
(never the value) for every statement it would only warn about and skip."""

from __future__ import annotations

import logging

import pytest

from core.config.dotenv import parse_dotenv
from core.errors import ConfigError

SECRET = "s3cr3t-value-9f8e7d"
UNCLOSED = "expected a closing {}, followed only by an optional # comment"


def test_python_dotenv_syntax() -> None:
    text = ("export A=1\n"
            'B="two\nlines"\n'
            "C='it\\'s'  # comment\n"
            "D=${A} and $A\n"
            "E = spaced \n"
            "\r\n"
            "F=crlf\r\n")
    assert parse_dotenv(text, ".env") == {"A": "1", "B": "two\nlines", "C": "it's", "D": "${A} and $A",
                                          "E": "spaced", "F": "crlf"}


def test_an_empty_file_is_empty() -> None:
    assert parse_dotenv("", ".env") == {} and parse_dotenv("# only a comment\n\n", ".env") == {}


@pytest.mark.parametrize("text, where", [
    (f"A=1\n\n\n{SECRET}\n", ".env: line 4: expected KEY=VALUE"),
    (f"A=1\nsome.key={SECRET}\n", ".env: line 2: expected KEY=VALUE"),
    (f'A=1\n\nTOKEN="{SECRET}\nB=2\n', ".env: TOKEN: line 3: " + UNCLOSED.format('"')),
    (f"TOKEN='{SECRET}' trailing\n", ".env: TOKEN: line 1: " + UNCLOSED.format("'")),
])
def test_malformed_statements_name_the_line_never_the_value(text: str, where: str,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigError) as info:
        parse_dotenv(text, ".env")
    assert str(info.value) == where
    assert info.value.exit_code == 2
    assert SECRET not in str(info.value) and SECRET not in caplog.text
