"""Pure pre-trade rule checks and the loss fractions behind the kill-switch trips.

No state, no I/O: every function takes the figures and the `risk.yaml` sections it needs.
Money is USDT, limits are fractions (0.05 = 5 %), sides are "long" | "short".

Boundaries (one convention for all caps): a cap is INCLUSIVE, a value equal to the cap is
accepted and only a value above it is refused; counts refuse a new position when the count
already equals the maximum. A trip fires when the loss fraction is AT OR ABOVE its limit.
Float sums are compared with a relative tolerance of `REL_TOL` (1e-9), so 2000 + 3000.0000000001
against a 5000 cap is not refused by rounding.

Exits and stops are never checked: only entries reach these functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from core.config.risk import FeesConfig, LimitsConfig
from core.risk.rejection import Approved, CheckResult, RejectCode, Rejection

#: relative tolerance of every comparison with a limit
REL_TOL = 1e-9
SIDES = ("long", "short")


def _above(value: float, cap: float) -> bool:
    """value > cap beyond the tolerance (a cap is inclusive)."""
    return value > cap + REL_TOL * abs(cap)


def _at_or_above(value: float, limit: float) -> bool:
    """value >= limit within the tolerance (a trip fires at the limit)."""
    return value >= limit - REL_TOL * abs(limit)


@dataclass(frozen=True, slots=True)
class EntryCheck:
    """One entry order to check, before it is placed.

    Attributes:
        symbol: ccxt unified symbol.
        side: "long" | "short" (the position's direction, not the order side).
        notional: the order's notional, USDT (> 0, finite).
        leverage: the leverage the position uses (>= 1, finite).
        is_new_position: True when the order opens a position (the first level of a grid
            cycle); later levels of the cycle are False: they skip the position-count and
            group rules but still count toward the notional caps and the margin check.
        level: grid level index (0 = first), -1 when not a grid; informational.
        strategy: the runner's strategy name, for the rejection event.

    Raises:
        ValueError: unknown side, notional not finite or <= 0, leverage not finite or < 1.
    """

    symbol: str
    side: str
    notional: float
    leverage: float
    is_new_position: bool
    level: int = -1
    strategy: str = ""

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise ValueError(f"EntryCheck.side must be 'long' or 'short', got {self.side!r}")
        if not (math.isfinite(self.notional) and self.notional > 0):
            raise ValueError(f"EntryCheck.notional must be a finite USDT amount > 0, got {self.notional!r}")
        if not (math.isfinite(self.leverage) and self.leverage >= 1):
            raise ValueError(f"EntryCheck.leverage must be finite and >= 1, got {self.leverage!r}")


@dataclass(frozen=True, slots=True)
class Exposure:
    """An open position, or a resting entry order that would add to one.

    Attributes:
        symbol: ccxt unified symbol. side: "long" | "short".
        notional: USDT (absolute value is used).
        opens_position: for a resting entry order, True when its fill would open a position
            (a first level); ignored for open positions (each counts as one).
    """

    symbol: str
    side: str
    notional: float
    opens_position: bool = False


@dataclass(frozen=True, slots=True)
class PortfolioView:
    """The account as the caller sees it just before the entry.

    Attributes:
        positions: the open positions, one entry per position.
        free_margin: USDT available for new orders, already net of the margin that resting
            orders reserve (as an exchange reports it).
        pending: resting entry orders not yet filled (excluding the one being checked); their
            notional counts toward the caps, and those with `opens_position` count as
            positions for the position-count and group rules.
    """

    positions: Sequence[Exposure]
    free_margin: float
    pending: Sequence[Exposure] = field(default_factory=tuple)


# ---------------------------------------------------------------------------- entry rules


def margin_required(notional: float, leverage: float, fees: FeesConfig) -> float:
    """Margin an entry needs, USDT: notional / leverage + notional x 2 x `fees.taker`.

    The fee is the round trip at the taker rate, the worst case: a limit entry that the
    price gaps through fills as taker, and stop exits are market orders.
    """
    return notional / leverage + notional * 2.0 * fees.taker


def check_portfolio(check: EntryCheck, pf: PortfolioView) -> Rejection | None:
    """Fail closed on a broken view: a non-finite free margin or notional (a NaN would pass
    every `>` comparison). A negative free margin is a valid figure: `check_margin` refuses it."""
    bad = [] if math.isfinite(pf.free_margin) else [f"free_margin={pf.free_margin!r}"]
    bad += [f"{e.symbol} notional={e.notional!r}" for e in (*pf.positions, *pf.pending)
            if not math.isfinite(e.notional)]
    if bad:
        return Rejection(RejectCode.PORTFOLIO_INVALID,
                         f"account figures unusable ({', '.join(bad)}); entry refused until they are known",
                         check.symbol, math.nan, 0.0)
    return None


def check_leverage(check: EntryCheck, limits: LimitsConfig) -> Rejection | None:
    """`limits.leverage_cap`: refused when leverage > cap (the cap itself is allowed)."""
    if _above(check.leverage, limits.leverage_cap):
        return Rejection(RejectCode.LEVERAGE_CAP,
                         f"leverage {check.leverage:g} is above limits.leverage_cap {limits.leverage_cap}",
                         check.symbol, check.leverage, limits.leverage_cap)
    return None


def _positions(pf: PortfolioView) -> list[Exposure]:
    """Open positions plus resting entries that would open one."""
    return [*pf.positions, *(e for e in pf.pending if e.opens_position)]


def check_open_positions(check: EntryCheck, pf: PortfolioView, limits: LimitsConfig) -> Rejection | None:
    """`limits.max_open_positions`: a new position is refused when the open positions (plus
    resting first-level entries) already number the maximum. Later levels are not checked."""
    if not check.is_new_position:
        return None
    n = len(_positions(pf))
    if n >= limits.max_open_positions:
        return Rejection(RejectCode.MAX_OPEN_POSITIONS,
                         f"{n} positions open or pending; limits.max_open_positions is {limits.max_open_positions}",
                         check.symbol, n + 1, limits.max_open_positions)
    return None


def check_group(check: EntryCheck, pf: PortfolioView, limits: LimitsConfig,
                groups: dict[str, str]) -> Rejection | None:
    """`limits.max_same_direction_per_group` over the `assets.yaml` groups (`groups`: symbol ->
    group): a new position is refused when its group already holds the maximum of positions
    (plus resting first-level entries) on the same side. A symbol without a group is not checked."""
    if not check.is_new_position:
        return None
    group = groups.get(check.symbol)
    if group is None:
        return None
    same = [e.symbol for e in _positions(pf) if e.side == check.side and groups.get(e.symbol) == group]
    cap = limits.max_same_direction_per_group
    if len(same) >= cap:
        return Rejection(RejectCode.GROUP_SAME_DIRECTION,
                         f"group {group!r} already has {len(same)} {check.side} position(s) "
                         f"({', '.join(sorted(same))}); limits.max_same_direction_per_group is {cap}",
                         check.symbol, len(same) + 1, cap)
    return None


def check_symbol_notional(check: EntryCheck, pf: PortfolioView, limits: LimitsConfig) -> Rejection | None:
    """`limits.max_notional_per_symbol`: the symbol's open + resting entry notional (both sides,
    absolute) plus this entry must be <= the cap, USDT."""
    have = sum(abs(e.notional) for e in (*pf.positions, *pf.pending) if e.symbol == check.symbol)
    after = have + check.notional
    cap = limits.max_notional_per_symbol
    if _above(after, cap):
        return Rejection(RejectCode.MAX_NOTIONAL_PER_SYMBOL,
                         f"{check.symbol} notional would be {after:.2f} USDT ({have:.2f} + {check.notional:.2f}); "
                         f"limits.max_notional_per_symbol is {cap:.2f}",
                         check.symbol, after, cap)
    return None


def check_total_notional(check: EntryCheck, pf: PortfolioView, limits: LimitsConfig) -> Rejection | None:
    """`limits.max_total_notional`: all open + resting entry notional plus this entry must be
    <= the cap, USDT."""
    have = sum(abs(e.notional) for e in (*pf.positions, *pf.pending))
    after = have + check.notional
    cap = limits.max_total_notional
    if _above(after, cap):
        return Rejection(RejectCode.MAX_TOTAL_NOTIONAL,
                         f"total notional would be {after:.2f} USDT ({have:.2f} + {check.notional:.2f}); "
                         f"limits.max_total_notional is {cap:.2f}",
                         check.symbol, after, cap)
    return None


def check_margin(check: EntryCheck, pf: PortfolioView, fees: FeesConfig) -> Rejection | None:
    """Free margin: `margin_required` (uses `fees.taker`) must be <= `pf.free_margin`, USDT."""
    need = margin_required(check.notional, check.leverage, fees)
    if _above(need, pf.free_margin):
        return Rejection(RejectCode.MARGIN,
                         f"needs {need:.2f} USDT margin ({check.notional:.2f} / {check.leverage:g} + fees); "
                         f"free margin is {pf.free_margin:.2f}",
                         check.symbol, need, pf.free_margin)
    return None


def check_entry(check: EntryCheck, pf: PortfolioView, limits: LimitsConfig, fees: FeesConfig,
                groups: dict[str, str]) -> CheckResult:
    """Every entry rule in order (portfolio sanity, leverage, open positions, group, symbol
    notional, total notional, margin); the first broken rule is returned, else `Approved`."""
    for rule in (lambda: check_portfolio(check, pf),
                 lambda: check_leverage(check, limits),
                 lambda: check_open_positions(check, pf, limits),
                 lambda: check_group(check, pf, limits, groups),
                 lambda: check_symbol_notional(check, pf, limits),
                 lambda: check_total_notional(check, pf, limits),
                 lambda: check_margin(check, pf, fees)):
        rejection = rule()
        if rejection is not None:
            return rejection
    return Approved(check.symbol, margin_required(check.notional, check.leverage, fees))


# ---------------------------------------------------------------------------- trips


def loss_fraction(reference: float, equity: float) -> float:
    """(reference - equity) / reference, a fraction (negative for a gain).

    A reference <= 0 (an account already at or below zero) gives 0.0 when equity has not
    fallen below it and +inf when it has (any further loss breaches every limit).
    """
    if reference > 0:
        return (reference - equity) / reference
    return 0.0 if equity >= reference else math.inf


def daily_loss_breached(day_start_equity: float, equity: float, limits: LimitsConfig) -> bool:
    """`limits.daily_loss_limit`: (day-start equity - equity) / day-start equity >= the limit."""
    return _at_or_above(loss_fraction(day_start_equity, equity), limits.daily_loss_limit)


def drawdown_breached(peak_equity: float, equity: float, limits: LimitsConfig) -> bool:
    """`limits.max_drawdown`: (peak - equity) / peak >= the limit."""
    return _at_or_above(loss_fraction(peak_equity, equity), limits.max_drawdown)
