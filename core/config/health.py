"""`health.yaml` (optional): thresholds of the run's health checks.

    loop_lag:
      degraded_ms: 500    # worst event-loop lag (ms) in the sampler's window that makes "loop" degraded
      down_ms: 2000       # ... that makes it down (>= degraded_ms)

The file may be absent (a config folder of the five required files is complete): every key
then takes the default below. Unknown keys are refused like in every config file.
"""

from __future__ import annotations

from pydantic import Field, model_validator

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


class HealthConfig(ConfigModel):
    """The whole `health.yaml` (every key optional).

    Attributes:
        loop_lag: event-loop lag thresholds of the "loop" health check.
    """

    loop_lag: LoopLagConfig = Field(default_factory=LoopLagConfig)
