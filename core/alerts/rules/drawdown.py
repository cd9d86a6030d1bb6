"""Rule: drawdown past a warning level, before risk.yaml `limits.max_drawdown` trips the kill switch.

Exact rule (fractions; equity in USDT at each candle's close, cash + unrealised P&L):

* per runner: dd = (peak - equity) / peak, peak = the highest equity point of the runner
  (its stored equity curve, `trading_equity`, read once when the rule first sees it, then
  raised with every candle). Alert "rule.drawdown:<strategy>:<symbol>:<timeframe>";
* account: with a `RiskManager` (risk on), its `drawdown` (the persisted peak the kill switch
  uses); without one, the account equity (the runners' plus an allocator's unallocated cash)
  against its peak since the rule started.
  Alert "rule.drawdown:account".

Raised (warning) when dd >= warn, warn = `DrawdownRule.warn_at(limits.max_drawdown)` (default
0.75 x 0.20 = 15 %); resolved, and re-armed, once dd < warn - `rearm_band`.
"""

from __future__ import annotations

import math
from typing import Any

from core.alerts.rules.base import Latch, RuleAlert, runner_key
from core.data.feed import iso_ms

ACCOUNT_KEY = "rule.drawdown:account"


def stored_peak(r: Any) -> float | None:
    """The highest stored equity point of runner `r` (USDT), or None (no store / no point)."""
    store = getattr(r, "store", None)
    rid = getattr(r, "runner_id", None)
    if store is None or rid is None:
        return None
    row = store.conn.execute("SELECT MAX(equity) FROM trading_equity WHERE runner_id = ?", (rid,)).fetchone()
    return float(row[0]) if row and row[0] is not None else None


class DrawdownWarnRule:
    """See the module docstring. `cfg`: `core.config.alert_rules.DrawdownRule`; `max_drawdown`:
    risk.yaml `limits.max_drawdown` (fraction) or None."""

    def __init__(self, cfg: Any, max_drawdown: float | None) -> None:
        self.cfg = cfg
        self.max_drawdown = max_drawdown
        self.warn = cfg.warn_at(max_drawdown)
        self._peaks: dict[int, float] = {}
        self._latches: dict[Any, Latch] = {}
        self._account_peak = -math.inf

    def _check(self, key: Any, alert_key: str, what: str, dd: float, equity: float, peak: float,
               ts: int) -> list[RuleAlert]:
        latch = self._latches.setdefault(key, Latch())
        ev = latch.update(dd, self.warn, self.warn - self.cfg.rearm_band)
        if ev == "fire":
            hard = (f"; limits.max_drawdown {self.max_drawdown:.2%} trips the kill switch"
                    if self.max_drawdown is not None else "")
            return [RuleAlert(alert_key, "warning", f"{what}: drawdown {dd:.2%} (warning at {self.warn:.2%})",
                              f"equity {equity:,.2f} USDT is {dd:.2%} below its peak {peak:,.2f} USDT at "
                              f"{iso_ms(ts)}{hard}; resolved below {self.warn - self.cfg.rearm_band:.2%}")]
        if ev == "clear":
            return [RuleAlert(alert_key, None)]
        return []

    def evaluate(self, r: Any, ts: int, engine: Any = None) -> list[RuleAlert]:
        """The alert actions after runner `r` processed the candle at `ts` (ms UTC); `engine` (its
        `runners` and `risk`) for the account check."""
        out: list[RuleAlert] = []
        if self.cfg.per_runner:
            eq = float(r.equity_last)
            peak = self._peaks.get(id(r))
            if peak is None:
                peak = stored_peak(r) or eq
            peak = max(peak, eq)
            self._peaks[id(r)] = peak
            if peak > 0 and math.isfinite(eq):
                out += self._check(id(r), runner_key("drawdown", r), f"{r.name} {r.symbol}", (peak - eq) / peak,
                                   eq, peak, ts)
        if self.cfg.account and engine is not None:
            out += self._account(ts, engine)
        return out

    def _account(self, ts: int, engine: Any) -> list[RuleAlert]:
        account_equity = getattr(engine, "_account_equity", None)     # runners + unallocated cash
        eq = float(account_equity() if callable(account_equity)
                   else sum(x.equity_last for x in getattr(engine, "runners", ()) or ()))
        risk = getattr(engine, "risk", None)
        dd = risk.drawdown() if risk is not None and callable(getattr(risk, "drawdown", None)) else None
        if dd is not None:
            eq = float(risk.last_equity)
            peak = float(getattr(risk.state, "peak_equity", eq) or eq)
        else:
            self._account_peak = max(self._account_peak, eq)
            peak = self._account_peak
            dd = (peak - eq) / peak if peak > 0 else math.nan
        return self._check("account", ACCOUNT_KEY, "account", float(dd), eq, peak, ts)
