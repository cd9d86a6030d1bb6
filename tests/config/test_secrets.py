"""Secrets: read from the environment or .env (environment wins), never shown, never logged."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pytest

from core.config import SecretRedactor, Secrets, install_redaction, load_secrets
from core.config.dotenv import parse_dotenv
from core.errors import ConfigError

KEY = "bg-key-5f2a9c71d0"
SECRET = "bg-secret-8e11b3f4a7"
PASSPHRASE = "pass-phrase-77x"
TOKEN = "123456:AAH-telegram-token-zz"
ALL = (KEY, SECRET, PASSPHRASE, TOKEN)

FULL_ENV = {
    "BITGET_API_KEY": KEY,
    "BITGET_API_SECRET": SECRET,
    "BITGET_API_PASSPHRASE": PASSPHRASE,
    "TELEGRAM_BOT_TOKEN": TOKEN,
    "TELEGRAM_ALLOWED_CHAT_IDS": "123456789, -1001234567890",
}


def test_load_from_environment_only() -> None:
    s = load_secrets(FULL_ENV, dotenv_path=None)
    assert s.has_bitget() and s.has_telegram()
    assert s.bitget_api_key.get_secret_value() == KEY
    assert s.bitget_api_secret.get_secret_value() == SECRET
    assert s.bitget_api_passphrase.get_secret_value() == PASSPHRASE
    assert s.telegram_bot_token.get_secret_value() == TOKEN
    assert s.telegram_allowed_chat_ids == (123456789, -1001234567890)


def test_nothing_set_means_no_integrations(tmp_path: Path) -> None:
    s = load_secrets({}, dotenv_path=tmp_path / "missing.env")
    assert s == Secrets()
    assert not s.has_bitget() and not s.has_telegram()
    assert s.telegram_allowed_chat_ids == ()


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# Radar secrets\n"
        "\n"
        f"export BITGET_API_KEY={KEY}\n"
        f"BITGET_API_SECRET = '{SECRET}'\n"
        f'BITGET_API_PASSPHRASE="{PASSPHRASE}"   # trailing comment\n'
        "TELEGRAM_BOT_TOKEN=from-dotenv-token # comment\n"
        "TELEGRAM_ALLOWED_CHAT_IDS=1,2\n")
    env_file.chmod(0o600)
    s = load_secrets({"TELEGRAM_BOT_TOKEN": TOKEN}, dotenv_path=env_file)
    assert s.bitget_api_key.get_secret_value() == KEY
    assert s.bitget_api_secret.get_secret_value() == SECRET
    assert s.bitget_api_passphrase.get_secret_value() == PASSPHRASE
    assert s.telegram_bot_token.get_secret_value() == TOKEN  # environment over .env
    assert s.telegram_allowed_chat_ids == (1, 2)


def test_parse_dotenv_quotes_and_comments() -> None:
    text = ('A=plain\n'
            'B="with # hash and \\"quote\\"\\nnewline"\n'
            "C='single $x # kept'  # comment\n"
            'D=\n'
            'E=a#b\n'
            '  # indented comment\n'
            'A=later wins\n')
    assert parse_dotenv(text, ".env") == {
        "A": "later wins", "B": 'with # hash and "quote"\nnewline', "C": "single $x # kept", "D": "", "E": "a#b"}


def test_malformed_dotenv_line_names_the_line_not_the_value(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"BITGET_API_KEY={KEY}\n{SECRET}\n")
    with pytest.raises(ConfigError) as info:
        load_secrets({}, dotenv_path=env_file)
    assert str(info.value) == f"{env_file}: line 2: expected KEY=VALUE"
    env_file.write_text(f'BITGET_API_SECRET="{SECRET}\n')
    with pytest.raises(ConfigError) as info:
        load_secrets({}, dotenv_path=env_file)
    assert str(info.value) == (f'{env_file}: BITGET_API_SECRET: line 1: expected a closing ", followed only by '
                               'an optional # comment')


def test_partial_bitget_credentials_are_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_secrets({"BITGET_API_KEY": KEY, "BITGET_API_PASSPHRASE": PASSPHRASE}, dotenv_path=None)
    assert str(info.value) == ("environment: BITGET_API_SECRET: missing while BITGET_API_KEY is set; expected "
                               "all of BITGET_API_KEY, BITGET_API_SECRET, BITGET_API_PASSPHRASE or none")
    assert KEY not in str(info.value)


def test_bad_chat_ids_are_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigError) as info:
        load_secrets({"TELEGRAM_ALLOWED_CHAT_IDS": f"12,{TOKEN}"}, dotenv_path=None)
    assert str(info.value) == ("environment: TELEGRAM_ALLOWED_CHAT_IDS: expected a comma-separated list of "
                               "integer chat ids, e.g. 123456789,-1001234567890")


def test_a_secret_never_appears_in_repr_str_or_json() -> None:
    s = load_secrets(FULL_ENV, dotenv_path=None)
    for text in (repr(s), str(s), s.model_dump_json(), str(s.model_dump()), repr(s.bitget_api_key),
                 str(s.telegram_bot_token), f"{s}"):
        for value in ALL:
            assert value not in text
    assert "**********" in s.model_dump_json()


@pytest.fixture
def log_stream():
    """A handler on the root logger writing to a StringIO; removed afterwards."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)
    for h in root.handlers:  # install_redaction also reached pytest's own capture handlers
        for f in [f for f in h.filters if isinstance(f, SecretRedactor)]:
            h.removeFilter(f)


def test_secret_values_are_redacted_in_log_lines(log_stream: io.StringIO) -> None:
    s = load_secrets(FULL_ENV, dotenv_path=None)
    redactor = install_redaction(s)
    log = logging.getLogger("radar.test")
    log.info("connecting with key %s and secret %r", KEY, SECRET)
    log.info(f"passphrase={PASSPHRASE} token={TOKEN}")
    log.info("headers: %(h)s", {"h": {"ACCESS-KEY": KEY}})
    try:
        raise RuntimeError(f"auth failed for {KEY}")
    except RuntimeError:
        log.exception("order failed")
    log.warning("bad %d format", KEY)  # broken args must not leak through logging's error report
    out = log_stream.getvalue()
    for value in ALL:
        assert value not in out
    assert "connecting with key *** and secret '***'" in out
    assert "passphrase=*** token=***" in out
    assert "RuntimeError: auth failed for ***" in out
    assert redactor in next(h for h in logging.getLogger().handlers
                            if getattr(h, "stream", None) is log_stream).filters


def test_install_redaction_replaces_an_earlier_redactor(log_stream: io.StringIO) -> None:
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "stream", None) is log_stream)
    install_redaction(["first-secret-aaa"])
    second = install_redaction(["second-secret-bbb"])
    assert [f for f in handler.filters if isinstance(f, SecretRedactor)] == [second]
    logging.getLogger("radar.test").info("second-secret-bbb first-secret-aaa")
    assert log_stream.getvalue() == "INFO *** first-secret-aaa\n"


def test_redactor_masks_the_longest_secret_first() -> None:
    r = SecretRedactor(["abcd", "abcdefgh", ""])
    assert r.redact("x abcdefgh y abcd z") == "x *** y *** z"
    record = logging.LogRecord("n", logging.INFO, __file__, 1, "v=%s", ("abcdefgh",), None)
    assert r.filter(record) is True
    assert record.getMessage() == "v=***"


def test_load_secrets_defaults_to_os_environ_and_dotenv_in_cwd(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for var in FULL_ENV:
        monkeypatch.delenv(var, raising=False)
    (tmp_path / ".env").write_text(f"TELEGRAM_BOT_TOKEN={TOKEN}\n")
    monkeypatch.setenv("TELEGRAM_ALLOWED_CHAT_IDS", "42")
    s = load_secrets()
    assert s.telegram_bot_token.get_secret_value() == TOKEN
    assert s.telegram_allowed_chat_ids == (42,)
    assert os.environ.get("TELEGRAM_BOT_TOKEN") is None  # .env is not exported into the environment


def test_a_dotenv_readable_by_others_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"TELEGRAM_BOT_TOKEN={TOKEN}\n")
    env_file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="core.config.secrets"):
        load_secrets({}, dotenv_path=env_file)
    assert caplog.messages == [f"{env_file} is readable by other users; run: chmod 600 {env_file}"]
    caplog.clear()
    env_file.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="core.config.secrets"):
        load_secrets({}, dotenv_path=env_file)
    assert caplog.messages == []
