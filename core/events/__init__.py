"""The engine's in-process event stream (`core.events.bus`)."""

from core.events.bus import (
    CRITICAL_KINDS,
    EVENT_KINDS,
    AlertEvent,
    CandleEvent,
    EngineStatus,
    EventBus,
    FillEvent,
    HealthEvent,
    IntentEvent,
    KillSwitchEvent,
    OrderEvent,
    PositionEvent,
    RiskRejection,
    RunnerControlEvent,
    Subscription,
)

__all__ = [
    "CRITICAL_KINDS", "EVENT_KINDS", "AlertEvent", "CandleEvent", "EngineStatus", "EventBus", "FillEvent",
    "HealthEvent", "IntentEvent", "KillSwitchEvent", "OrderEvent", "PositionEvent", "RiskRejection",
    "RunnerControlEvent", "Subscription",
]
