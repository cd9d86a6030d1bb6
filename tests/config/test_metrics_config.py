"""`metrics:` in health.yaml: the optional TCP listener of /metrics, off by default, loopback only."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.config import load_config
from core.config.health import is_loopback
from core.errors import ConfigError
from core.paths import DEFAULT_CONFIG_DIR


def _config(tmp: Path, health: str) -> Path:
    dst = tmp / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, dst)
    (dst / "health.yaml").write_text(health)
    return dst


def test_off_by_default_in_the_packaged_config_and_without_the_key(tmp_path: Path) -> None:
    packaged = load_config(DEFAULT_CONFIG_DIR).health.metrics
    assert (packaged.tcp_port, packaged.host) == (None, "127.0.0.1")
    absent = load_config(_config(tmp_path, "loop_lag:\n  degraded_ms: 500\n")).health.metrics
    assert absent.tcp_port is None


@pytest.mark.parametrize(("text", "port", "host"), [
    ("metrics:\n  tcp_port: 9464\n", 9464, "127.0.0.1"),
    ("metrics:\n  tcp_port: 9100\n  host: 127.0.0.2\n", 9100, "127.0.0.2"),
    ("metrics:\n  tcp_port: 9464\n  host: '::1'\n", 9464, "::1"),
])
def test_a_loopback_listener_is_accepted(tmp_path: Path, text: str, port: int, host: str) -> None:
    m = load_config(_config(tmp_path, text)).health.metrics
    assert (m.tcp_port, m.host) == (port, host)


@pytest.mark.parametrize(("text", "message"), [
    ("metrics:\n  tcp_port: 9464\n  host: 0.0.0.0\n",
     ("health.yaml: metrics.host: expected a loopback address (127.0.0.1 or ::1): the metrics are served without "
      "authentication and never on a network interface, got '0.0.0.0' (line 3)")),
    ("metrics:\n  tcp_port: 9464\n  host: 10.0.0.5\n", "metrics.host: expected a loopback address"),
    ("metrics:\n  tcp_port: 9464\n  host: '::'\n", "metrics.host: expected a loopback address"),
    ("metrics:\n  tcp_port: 9464\n  host: localhost\n", "metrics.host: expected a loopback address"),
    ("metrics:\n  tcp_port: 70000\n", "health.yaml: metrics.tcp_port: expected a value <= 65535, got 70000 (line 2)"),
    ("metrics:\n  tcp_port: -1\n", "metrics.tcp_port: expected a value >= 0, got -1"),
    ("metrics:\n  tcp_port: '9464'\n", "metrics.tcp_port: expected an integer, got '9464'"),
    ("metrics:\n  port: 9464\n", "metrics.port: unknown key; expected one of: tcp_port, host"),
])
def test_a_bad_metrics_section_is_refused_with_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, text))
    assert message in str(err.value)


def test_loopback_means_an_ip_literal() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.0.1", "localhost", "", "127.0.0.1 "))
