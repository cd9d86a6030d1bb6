"""`health.yaml` (optional): thresholds of the run's health checks.

    loop_lag:
      degraded_ms: 500    # worst event-loop lag (ms) in the sampler's window that makes "loop" degraded
      down_ms: 2000       # ... that makes it down (>= degraded_ms)
    metrics:
      tcp_port: 9464      # also serve GET /metrics on TCP 127.0.0.1:9464 (default: off, Unix socket only)
      host: 127.0.0.1     # a loopback address only (127.0.0.0/8 or ::1); anything else is refused

The file may be absent (a config folder of the five required files is complete): every key
then takes the default below. Unknown keys are refused like in every config file.
"""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator, model_validator

from core.config.base import ConfigModel, RuleError

#: Default worst loop lag (ms) that makes the "loop" check degraded (a warning alert). An idle
#: engine on a 2-core machine measured at most 6.3 ms (see `core.health.loop_lag`); the old
#: 100 ms fired at 110-140 ms spikes on such machines.
DEFAULT_LOOP_LAG_DEGRADED_MS = 500.0
#: Default worst loop lag (ms) that makes the "loop" check down.
DEFAULT_LOOP_LAG_DOWN_MS = 2000.0


class LoopLagConfig(ConfigModel):
    """Event-loop lag thresholds (milliseconds).

    Attributes:
        degraded_ms: worst lag in the window that makes the loop check degraded (0 < x <= 60000).
        down_ms: worst lag that makes it down (0 < x <= 600000, >= degraded_ms).
    """

    degraded_ms: float = Field(default=DEFAULT_LOOP_LAG_DEGRADED_MS, gt=0, le=60_000)
    down_ms: float = Field(default=DEFAULT_LOOP_LAG_DOWN_MS, gt=0, le=600_000)

    @model_validator(mode="after")
    def _down_above_degraded(self) -> "LoopLagConfig":
        if self.down_ms < self.degraded_ms:
            raise RuleError(f"expected a value >= degraded_ms ({self.degraded_ms!r}), got {self.down_ms!r}",
                            at=("down_ms",))
        return self


#: Default host of the TCP metrics listener: the IPv4 loopback, never a public interface.
DEFAULT_METRICS_HOST = "127.0.0.1"


def is_loopback(host: str) -> bool:
    """True when `host` is a loopback IP address literal (127.0.0.0/8, ::1); names are not resolved."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MetricsConfig(ConfigModel):
    """The Prometheus `/metrics` endpoint on TCP (it is always served on the engine's Unix socket).

    Attributes:
        tcp_port: also serve `GET /metrics` on this TCP port of `host` (None, the default: no TCP
            listener; 0: any free port, for tests).
        host: the address to bind: a loopback IP literal only (127.0.0.0/8 or ::1). The TCP
            listener serves nothing but the metrics, without peer credentials, so it never listens
            on a network interface: put a reverse proxy or an SSH tunnel in front to scrape remotely.
    """

    tcp_port: int | None = Field(default=None, ge=0, le=65535)
    host: str = DEFAULT_METRICS_HOST

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, v: str) -> str:
        if not is_loopback(v):
            raise ValueError(f"expected a loopback address (127.0.0.1 or ::1): the metrics are served "
                             f"without authentication and never on a network interface, got {v!r}")
        return v


class HealthConfig(ConfigModel):
    """The whole `health.yaml` (every key optional).

    Attributes:
        loop_lag: event-loop lag thresholds of the "loop" health check.
        metrics: the optional TCP listener of `/metrics` (off by default).
    """

    loop_lag: LoopLagConfig = Field(default_factory=LoopLagConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
