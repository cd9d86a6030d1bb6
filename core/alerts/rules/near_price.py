"""Rule: the price is near the next unfilled grid level or near the stop (once per approach).

Exact rule, per runner, after each candle (prices in quote currency, distances fractions of the close):

* level (grid runners): the next unfilled level is `strategy.levels[levels_filled]` (the level the
  next entry rests at; none when every level is filled or the grid quotes nothing: NaN). With
  d = |close - level| / close, the alert "rule.near_level:<strategy>:<symbol>:<timeframe>" (info)
  is raised when d <= `level_within`; it is resolved, and the rule re-armed, once
  d > `level_within + rearm_band`, or when the next level changes (filled: a new approach starts).
* stop (grid and single-position runners holding a position): d = |close - stop| / close, alert
  "rule.near_stop:..." (warning) raised when d <= `stop_within`, resolved and re-armed once
  d > `stop_within + rearm_band` or the position is closed.

So a close hovering at the threshold raises one alert per approach, not one per candle.
"""

from __future__ import annotations

import math
from typing import Any

from core.alerts.rules.base import Latch, RuleAlert, runner_key
from core.data.feed import iso_ms


def next_level(r: Any) -> tuple[int, float] | None:
    """(index, price) of runner `r`'s next unfilled grid level, or None (not a grid, all filled,
    nothing quoted)."""
    levels = getattr(r.strategy, "levels", None)
    book = getattr(r, "book", None)
    if levels is None or book is None or not hasattr(book, "levels_filled"):
        return None
    k = int(book.levels_filled)
    if k >= len(levels):
        return None
    price = float(levels[k])
    return (k, price) if math.isfinite(price) and price > 0 else None


def position_stop(r: Any) -> float | None:
    """The stop of runner `r`'s open position (quote currency), or None when flat / no stop."""
    p = r.position()
    stop = p.get("stop")
    if not p.get("qty") or stop is None or not math.isfinite(float(stop)) or float(stop) <= 0:
        return None
    return float(stop)


class NearPriceRule:
    """See the module docstring. `cfg`: `core.config.alert_rules.NearPriceRule`."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self._level: dict[int, tuple[Latch, int | None]] = {}
        self._stop: dict[int, Latch] = {}

    def evaluate(self, r: Any, ts: int, close: float) -> list[RuleAlert]:
        """The alert actions after runner `r` processed the candle at `ts` (ms UTC) closing at `close`."""
        cfg = self.cfg
        out: list[RuleAlert] = []
        if not (close > 0 and math.isfinite(close)):
            return out
        # the next level
        key = runner_key("near_level", r)
        latch, idx = self._level.get(id(r), (Latch(), None))
        lvl = next_level(r)
        new_idx = None if lvl is None else lvl[0]
        if latch.fired and new_idx != idx:               # filled or re-quoted: this approach is over
            latch.fired = False
            out.append(RuleAlert(key, None))
        if lvl is not None:
            d = abs(close - lvl[1]) / close
            ev = latch.update(-d, -cfg.level_within, -(cfg.level_within + cfg.rearm_band))
            if ev == "fire":
                out.append(RuleAlert(
                    key, "info", f"{r.name} {r.symbol}: price {d:.2%} from level {lvl[0] + 1} ({lvl[1]:.6g})",
                    f"close {close:.6g} at {iso_ms(ts)} is within {cfg.level_within:.2%} of the next unfilled "
                    f"level {lvl[0] + 1} at {lvl[1]:.8g} ({r.timeframe}); re-armed beyond "
                    f"{cfg.level_within + cfg.rearm_band:.2%}"))
            elif ev == "clear":
                out.append(RuleAlert(key, None))
        self._level[id(r)] = (latch, new_idx)
        # the stop
        key = runner_key("near_stop", r)
        latch = self._stop.setdefault(id(r), Latch())
        stop = position_stop(r)
        if stop is None:
            if latch.fired:
                latch.fired = False
                out.append(RuleAlert(key, None))
            return out
        d = abs(close - stop) / close
        ev = latch.update(-d, -cfg.stop_within, -(cfg.stop_within + cfg.rearm_band))
        if ev == "fire":
            p = r.position()
            out.append(RuleAlert(
                key, "warning", f"{r.name} {r.symbol}: price {d:.2%} from the stop ({stop:.6g})",
                f"close {close:.6g} at {iso_ms(ts)} is within {cfg.stop_within:.2%} of the stop {stop:.8g} "
                f"({r.timeframe}); position {p.get('qty', 0):.8g} at average entry {p.get('avg_entry') or 0:.8g}; "
                f"re-armed beyond {cfg.stop_within + cfg.rearm_band:.2%}"))
        elif ev == "clear":
            out.append(RuleAlert(key, None))
        return out
