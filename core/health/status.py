"""What a health check says: HealthStatus, the Check result, and SubsystemHealth (a check with its history).

All timestamps are int ms UTC; durations in reasons and metrics are seconds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Mapping


class HealthStatus(StrEnum):
    """How a subsystem is doing, best to worst.

    * ok: working as expected.
    * degraded: working, but late, slow or failing some of the time (warning alert).
    * down: not working (error alert; critical for the executor and the gateway).
    """

    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"

    @property
    def rank(self) -> int:
        """0 (ok), 1 (degraded), 2 (down)."""
        return _ORDER.index(self)


_ORDER = (HealthStatus.OK, HealthStatus.DEGRADED, HealthStatus.DOWN)


def worst(statuses: "Any") -> HealthStatus:
    """The worst of an iterable of statuses (ok when empty)."""
    return max(statuses, key=lambda s: s.rank, default=HealthStatus.OK)


def _clean_metrics(metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """`metrics` as a JSON-safe dict: non-finite floats become None, other values their str()."""
    out: dict[str, Any] = {}
    for k, v in (metrics or {}).items():
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        elif v is not None and not isinstance(v, (bool, int, float, str)):
            v = str(v)
        out[str(k)] = v
    return out


def format_seconds(seconds: float) -> str:
    """Seconds as a short text: "0.25s", "4.2s", "42s", "1m", "3m 5s", "2h 1m", "3d 4h"."""
    if seconds < 10:
        return f"{seconds:.2g}s" if seconds < 1 else f"{seconds:.1f}s"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s" if s % 60 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m" if s % 3600 // 60 else f"{s // 3600}h"
    return f"{s // 86400}d {s % 86400 // 3600}h"


@dataclass(frozen=True)
class Check:
    """The result of one health check.

    Attributes:
        status: ok, degraded or down.
        reason: one line saying why, for the operator, e.g. "no message for 42.0s (stale after 30s)";
            usually "" when ok.
        metrics: the figures the verdict was based on (JSON-able scalars), e.g. {"age_s": 42.0}.
    """

    status: HealthStatus
    reason: str = ""
    metrics: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", HealthStatus(self.status))
        object.__setattr__(self, "metrics", _clean_metrics(self.metrics))

    @classmethod
    def ok(cls, reason: str = "", **metrics: Any) -> "Check":
        """An ok result with optional metrics as keyword arguments."""
        return cls(HealthStatus.OK, reason, metrics)

    @classmethod
    def degraded(cls, reason: str, **metrics: Any) -> "Check":
        """A degraded result: `reason` says what is wrong."""
        return cls(HealthStatus.DEGRADED, reason, metrics)

    @classmethod
    def down(cls, reason: str, **metrics: Any) -> "Check":
        """A down result: `reason` says what is wrong."""
        return cls(HealthStatus.DOWN, reason, metrics)


@dataclass(frozen=True)
class SubsystemHealth:
    """The latest check of one subsystem, with when it entered its status.

    Attributes:
        subsystem: the registered name, e.g. "feed:BTC/USDT:USDT", "executor", "loop".
        status, reason, metrics: from the latest `Check`.
        since_ms: when the subsystem entered `status` (ms UTC).
        checked_ms: when the latest check ran (ms UTC).
    """

    subsystem: str
    status: HealthStatus
    reason: str
    since_ms: int
    checked_ms: int
    metrics: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (status as its string value, times ms UTC)."""
        return {"subsystem": self.subsystem, "status": self.status.value, "reason": self.reason,
                "since_ms": self.since_ms, "checked_ms": self.checked_ms, "metrics": dict(self.metrics)}

    def metrics_json(self) -> str:
        """`metrics` as a JSON object string."""
        return json.dumps(dict(self.metrics), sort_keys=True)
