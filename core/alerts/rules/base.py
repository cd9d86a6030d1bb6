"""What a rule returns (`RuleAlert`) and the hysteresis latch the rules share."""

from __future__ import annotations

from dataclasses import dataclass

#: The `source` of every rule alert (the console's and `radar alerts list`'s source column).
SOURCE = "rules"


@dataclass(frozen=True, slots=True)
class RuleAlert:
    """One alert action of a rule.

    Attributes:
        key: dedup key ("rule.<rule>:<strategy>:<symbol>:<timeframe>" or "rule.<rule>:account").
        severity: "info" | "warning" | ... to raise; None to resolve the key's open alert.
        title, detail: the operator's text (raise only).
    """

    key: str
    severity: str | None
    title: str = ""
    detail: str = ""

    @property
    def resolves(self) -> bool:
        """True for a resolve action."""
        return self.severity is None


def runner_key(rule: str, r: object) -> str:
    """The dedup key of `rule` for runner `r`: "rule.<rule>:<strategy>:<symbol>:<timeframe>"."""
    return f"rule.{rule}:{r.name}:{r.symbol}:{r.timeframe}"  # type: ignore[attr-defined]


class Latch:
    """Hysteresis on a "badness" value: fires once when it reaches `on`, re-arms only once it
    falls below `off` (< `on`), so a value hovering around the threshold fires once per episode.

    `update(value)` returns "fire" (just crossed `on` while armed), "clear" (just fell below
    `off` after firing) or None (no change). NaN values change nothing.
    """

    __slots__ = ("fired",)

    def __init__(self) -> None:
        self.fired = False

    def update(self, value: float, on: float, off: float) -> str | None:
        """See the class docstring (`off` <= `on`)."""
        if value != value:                      # NaN
            return None
        if not self.fired and value >= on:
            self.fired = True
            return "fire"
        if self.fired and value < off:
            self.fired = False
            return "clear"
        return None
