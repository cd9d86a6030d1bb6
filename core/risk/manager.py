"""RiskManager: the pre-trade checks of every entry and the account trips of the kill switch.

* `check_entry(check, portfolio)` before an entry order is placed (every grid level, not only
  the first): `Approved`, or a `Rejection` that is counted per code (table `risk_rejections`)
  and published on the bus as `RiskRejection(strategy, symbol, ts, reason=code, detail=reason)`.
  Exits and stops are never checked: risk never blocks reducing a position.
* `on_equity(equity, ts_ms)` after every equity update: raises the persisted peak, rolls the
  daily baseline at 00:00 UTC, and returns a `TripDecision` while `limits.max_drawdown` or
  `limits.daily_loss_limit` is breached. The caller trips the kill switch
  (`flatten=decision.flatten`, from `kill_switch.flatten_on_trip`).

Trips are level-triggered: a decision is returned on EVERY update while a limit is breached
(`decision.new` is True only on the first), so a crash between the persisted trip and the
kill switch, or an operator clearing the switch while still in breach, trips it again on the
next update. The daily-loss breach ends with the UTC day; the drawdown breach ends when
equity recovers above the limit or the operator calls `reset_peak`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass

from core.config.assets import AssetsFile
from core.config.risk import RiskConfig
from core.events.bus import EventBus
from core.model.clock import Clock, format_ms, system_clock
from core.risk import limits as rules
from core.risk.limits import EntryCheck, PortfolioView
from core.risk.rejection import CheckResult, Rejection
from core.risk.state import RiskState, RiskStore, advance

#: trip codes (the `risk.yaml` keys they enforce)
TRIP_DRAWDOWN = "max_drawdown"
TRIP_DAILY_LOSS = "daily_loss_limit"


def groups_from_assets(assets: AssetsFile) -> dict[str, str]:
    """symbol -> correlation group of `assets.yaml` (symbols without a group are left out)."""
    return {a.symbol: a.group for a in assets.assets if a.group is not None}


@dataclass(frozen=True, slots=True)
class TripDecision:
    """A loss limit is breached: the caller must trip the kill switch.

    Attributes:
        code: TRIP_DRAWDOWN or TRIP_DAILY_LOSS (drawdown first when both are breached).
        reason: sentence(s) for the operator naming every breached limit, with figures.
        equity: the equity that breached, USDT.
        reference: the peak (drawdown) or day-start equity (daily loss), USDT.
        fraction: the loss from `reference`, a fraction (0.2 = 20 %).
        limit: the configured limit, a fraction.
        ts_ms: time of the equity update, ms UTC.
        flatten: `kill_switch.flatten_on_trip`: close every position at market.
        new: True on the first update of this breach (the stored state was not tripped).
    """

    code: str
    reason: str
    equity: float
    reference: float
    fraction: float
    limit: float
    ts_ms: int
    flatten: bool
    new: bool


class RiskManager:
    """Risk of one account (one engine per database; see the module docstring).

    Args:
        config: `risk.yaml` (`limits`, `fees.taker` for the margin, `kill_switch.flatten_on_trip`).
        groups: symbol -> correlation group (`groups_from_assets`); missing symbols have no group.
        store: the risk tables; the stored peak, baseline and counters are loaded here.
        clock: int ms UTC, used when a call gives no `ts_ms` and to stamp writes.
        bus: where rejections are published (None: not published).
    """

    def __init__(self, config: RiskConfig, groups: dict[str, str], store: RiskStore,
                 clock: Clock = system_clock, bus: EventBus | None = None) -> None:
        self.config = config
        self.groups = dict(groups)
        self.store = store
        self.clock = clock
        self.bus = bus
        self._state: RiskState | None = store.load()
        self._rejections: Counter[str] = Counter(store.rejection_counts())
        self.last_equity: float | None = None
        self.last_equity_ms: int | None = None

    # ---------------------------------------------------------------- read-only views
    @property
    def state(self) -> RiskState | None:
        """The current peak / baseline / trip state (None before the first equity update)."""
        return self._state

    @property
    def rejections(self) -> dict[str, int]:
        """code -> rejections counted so far (persisted across restarts)."""
        return dict(self._rejections)

    def drawdown(self) -> float | None:
        """Loss from the peak of the last equity seen, a fraction; None before any update."""
        if self._state is None or self.last_equity is None:
            return None
        return rules.loss_fraction(self._state.peak_equity, self.last_equity)

    def daily_loss(self) -> float | None:
        """Loss since the UTC day start of the last equity seen, a fraction; None before any update."""
        if self._state is None or self.last_equity is None:
            return None
        return rules.loss_fraction(self._state.day_start_equity, self.last_equity)

    # ---------------------------------------------------------------- entries
    def check_entry(self, check: EntryCheck, portfolio: PortfolioView, ts_ms: int | None = None) -> CheckResult:
        """Check one entry order before it is placed (see `core.risk.limits.check_entry`).

        A rejection is counted (memory and `risk_rejections`) and published as a
        `RiskRejection` event. `ts_ms`: time of the decision, ms UTC (default: the clock).
        Never call it for exits or stops: they are never blocked.
        """
        result = rules.check_entry(check, portfolio, self.config.limits, self.config.fees, self.groups)
        if isinstance(result, Rejection):
            ts = self.clock() if ts_ms is None else ts_ms
            self._rejections[str(result.code)] += 1
            self.store.add_rejection(str(result.code), result.symbol, result.reason, ts)
            if self.bus is not None:
                self.bus.publish(result.to_event(check.strategy, ts))
        return result

    # ---------------------------------------------------------------- equity
    def on_equity(self, equity: float, ts_ms: int | None = None) -> TripDecision | None:
        """Record an equity update and say whether a loss limit is breached.

        Args:
            equity: account equity, USDT (finite).
            ts_ms: time of the equity, ms UTC (default: the clock).

        Returns:
            A `TripDecision` while `limits.max_drawdown` (loss from the peak) or
            `limits.daily_loss_limit` (loss from the day-start equity) is reached or exceeded;
            None otherwise. Peak, baseline and trip state are persisted first.

        Raises:
            ValueError: equity not finite.
        """
        ts = self.clock() if ts_ms is None else ts_ms
        old = self._state
        new = advance(old, equity, ts)
        lim = self.config.limits
        breaches: list[tuple[str, float, float, float, str]] = []
        dd = rules.loss_fraction(new.peak_equity, equity)
        if rules.drawdown_breached(new.peak_equity, equity, lim):
            breaches.append((TRIP_DRAWDOWN, new.peak_equity, dd, lim.max_drawdown,
                             f"equity {equity:.2f} USDT is {dd:.2%} below the peak {new.peak_equity:.2f} "
                             f"({format_ms(new.peak_ms)}); limits.max_drawdown is {lim.max_drawdown:.2%}"))
        dl = rules.loss_fraction(new.day_start_equity, equity)
        if rules.daily_loss_breached(new.day_start_equity, equity, lim):
            breaches.append((TRIP_DAILY_LOSS, new.day_start_equity, dl, lim.daily_loss_limit,
                             f"equity {equity:.2f} USDT is {dl:.2%} below the day-start equity "
                             f"{new.day_start_equity:.2f} ({format_ms(new.day_start_ms)}); "
                             f"limits.daily_loss_limit is {lim.daily_loss_limit:.2%}"))
        decision = None
        if breaches:
            code, reference, fraction, limit, _ = breaches[0]
            reason = "; ".join(b[4] for b in breaches)
            fresh = not new.tripped
            new = dataclasses.replace(new, tripped=True, trip_code=code, trip_reason=reason,
                                      trip_ms=ts if fresh else new.trip_ms)
            decision = TripDecision(code, reason, equity, reference, fraction, limit, ts,
                                    self.config.kill_switch.flatten_on_trip, fresh)
        elif new.tripped:
            new = dataclasses.replace(new, tripped=False)
        if new != old:
            self.store.save(new, self.clock())
        self._state = new
        self.last_equity, self.last_equity_ms = equity, ts
        return decision

    def reset_peak(self, equity: float, ts_ms: int | None = None) -> RiskState:
        """Operator action, the only way the peak is lowered: the peak becomes `equity` (USDT)
        at `ts_ms` (ms UTC, default the clock), ending a drawdown breach so trading can resume.
        The daily baseline is unchanged. Persisted before returning.

        Raises:
            ValueError: equity not finite.
        """
        ts = self.clock() if ts_ms is None else ts_ms
        base = advance(self._state, equity, ts)
        new = dataclasses.replace(base, peak_equity=equity, peak_ms=ts)
        self.store.save(new, self.clock())
        self._state = new
        return new
