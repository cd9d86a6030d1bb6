"""Transfer-adjusted drawdown of a group of runners (a strategy, or the whole account), for the
allocation's halts of new cycles (`core.risk.allocation_runtime`).

A capital transfer changes a runner's equity without any profit or loss, so the drawdown is
measured on a time-weighted index (NAV) instead of the raw equity:

    nav_t = nav_{t-1} * E_t / E_{t-1}        (no transfer between the two points)
    drawdown_t = 1 - nav_t / max(nav_0..nav_t)

and a transfer of D USDT into the group moves the reference E_{t-1} by D (`transfer`), so the
next ratio only holds P&L (the time-weighted return of GIPS / CFA Institute, "Global Investment
Performance Standards" 2020, 2.A.17). The account's equity includes the unallocated cash, so
its transfers cancel and it needs none.

Money USDT, fractions (0.1 = 10 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class NavTracker:
    """The index of one group. Attributes: nav (starts at 1.0), peak (highest nav), last
    (equity of the last point, USDT; None before the first)."""

    nav: float = 1.0
    peak: float = 1.0
    last: float | None = None

    def update(self, equity: float) -> bool:
        """A new equity point of the group (USDT). Returns True when the peak rose (worth saving).
        A non-finite or non-positive equity (or reference) leaves the index unchanged."""
        last = self.last
        self.last = float(equity)
        if last is None or not (last > 0 and math.isfinite(last)) or not (equity > 0 and math.isfinite(equity)):
            return False
        self.nav *= equity / last
        if self.nav > self.peak:
            self.peak = self.nav
            return True
        return False

    def transfer(self, amount: float) -> None:
        """`amount` USDT moved into the group (negative: out), without P&L."""
        if self.last is not None:
            self.last += float(amount)

    @property
    def drawdown(self) -> float:
        """1 - nav / peak, a fraction in [0, 1)."""
        return 0.0 if self.peak <= 0 else max(0.0, 1.0 - self.nav / self.peak)

    def to_json(self) -> list:
        return [self.nav, self.peak, self.last]

    @classmethod
    def from_json(cls, v: list) -> "NavTracker":
        return cls(float(v[0]), float(v[1]), None if v[2] is None else float(v[2]))
