"""`AlertRules`: the alert rules of `core.alerts.rules` run by the engine, raised through the AlertEngine.

    rules = AlertRules(engine, alerts, config.alert_rules, max_drawdown=config.risk.limits.max_drawdown)
    rules.start()            # before the engine's first candle (RunServices does it)
    ...                      # the engine runs
    await rules.close()      # after the engine stopped: the paper shadows are removed

Evaluation: a hook in `Engine.candle_hooks`, called after each runner processed a candle (its
book, levels, stop and equity final for that candle, the same state a replay at any speed
sees), evaluates every enabled rule: pure arithmetic on the runner's state, a one-off read of
the runner's stored equity / research result the first time it is seen, and, for the
divergence rule, the paper shadow's own candle on the simulated venue. The raise / resolve
actions that result (a handful per thousand candles: only state changes) are written through
the AlertEngine right there, awaited inside the hook, i.e. between two candles, while no candle
transaction of the engine is open, so a rule's write never waits on (or delays) a candle's.
(A write from another thread while a candle transaction had read but not yet written used to
fail that transaction with "database is locked" — SQLITE_BUSY_SNAPSHOT — measured on a replay of
LINK/USDT 4h; `StateStore.begin` now takes the write lock up front, BEGIN IMMEDIATE.)
A rule that raises is logged (once per rule) and counted in `failures`; it never breaks the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from core.alerts.rules.base import SOURCE, RuleAlert

log = logging.getLogger(__name__)

#: Actor recorded when a rule's condition clears.
ACTOR = "rules"
#: How many recent actions `AlertRules.recent` keeps.
RECENT = 1000


class AlertRules:
    """See the module docstring.

    Args:
        engine: the Engine (its `candle_hooks`, `runners`, `risk`, `account`, `mode`).
        alerts: an opened `core.alerts.engine.AlertEngine`.
        config: `core.config.alert_rules.AlertRulesConfig` (None: the defaults).
        max_drawdown: risk.yaml `limits.max_drawdown` (fraction); None: the engine's risk config's,
            else the drawdown rule's default reference (0.20).
        results_db: the database holding the stored research results (default: the engine's database).

    Attributes:
        raised, resolved: alert writes done. failures: rule evaluations or writes that failed.
        recent: the latest actions (at most `RECENT`), as (candle open time ms UTC, `RuleAlert`).
    """

    def __init__(self, engine: Any, alerts: Any, config: Any = None, *, max_drawdown: float | None = None,
                 results_db: Any = None) -> None:
        from core.alerts.rules.divergence import ShadowDivergenceRule
        from core.alerts.rules.drawdown import DrawdownWarnRule
        from core.alerts.rules.near_price import NearPriceRule
        from core.alerts.rules.underperformance import UnderperformanceRule
        from core.config.alert_rules import AlertRulesConfig

        cfg = config if config is not None else AlertRulesConfig()
        if max_drawdown is None:
            limits = getattr(getattr(engine, "risk_config", None), "limits", None)
            max_drawdown = getattr(limits, "max_drawdown", None)
        self.engine = engine
        self.alerts = alerts
        self.config = cfg
        self.near = NearPriceRule(cfg.near_price) if cfg.near_price.enabled else None
        self.drawdown = DrawdownWarnRule(cfg.drawdown, max_drawdown) if cfg.drawdown.enabled else None
        self.underperformance = (UnderperformanceRule(cfg.underperformance, results_db)
                                 if cfg.underperformance.enabled else None)
        self.divergence = ShadowDivergenceRule(cfg.divergence, engine) if cfg.divergence.enabled else None
        self.raised = 0
        self.resolved = 0
        self.failures = 0
        self._failed_rules: set[str] = set()
        self.recent: deque[tuple[int, RuleAlert]] = deque(maxlen=RECENT)
        self._started = False
        self._closed = False

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Hook into the engine's candles (idempotent)."""
        if self._started:
            return
        self._started = True
        hooks = getattr(self.engine, "candle_hooks", None)
        if hooks is None:
            log.warning("alert rules not started: %r has no candle hooks", type(self.engine).__name__)
            return
        hooks.append(self.on_candle)

    async def close(self) -> None:
        """Unhook and remove the paper shadows (call after the engine stopped; idempotent)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(ValueError, AttributeError):
            self.engine.candle_hooks.remove(self.on_candle)
        if self.divergence is not None:
            self.divergence.close()

    # ---------------------------------------------------------------- evaluation (candle path)
    async def on_candle(self, r: Any, ts: int, o: float, h: float, lo: float, c: float) -> None:
        """`Engine.candle_hooks` entry: evaluate the rules for runner `r` after its candle at `ts`."""
        acts: list[RuleAlert] = []
        if self.near is not None:
            acts += self._safe("near_price", self.near.evaluate, r, ts, c)
        if self.drawdown is not None:
            acts += self._safe("drawdown", self.drawdown.evaluate, r, ts, self.engine)
        if self.underperformance is not None:
            acts += self._safe("underperformance", self.underperformance.evaluate, r, ts)
        if self.divergence is not None:
            try:
                acts += await self.divergence.evaluate(r, ts, o, h, lo, c)
            except Exception:
                self._failed("divergence")
        for act in acts:
            self.recent.append((ts, act))
            await self._write(act)

    def _safe(self, name: str, fn: Any, *args: Any) -> list[RuleAlert]:
        try:
            return fn(*args)
        except Exception:
            self._failed(name)
            return []

    def _failed(self, name: str) -> None:
        self.failures += 1
        if name not in self._failed_rules:        # once per rule, not every candle
            self._failed_rules.add(name)
            log.exception("alert rule %s failed (logged once; counted in failures)", name)

    # ---------------------------------------------------------------- alert writes
    async def _write(self, act: RuleAlert) -> None:
        try:
            if act.resolves:
                if await self.alerts.resolve(act.key, ACTOR) is not None:
                    self.resolved += 1
            else:
                await self.alerts.raise_alert(act.key, act.severity, SOURCE, act.title, act.detail)
                self.raised += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failures += 1
            log.error("alert rule write %s failed: %s", act.key, exc)
