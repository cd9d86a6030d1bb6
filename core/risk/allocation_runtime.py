"""Allocator: the capital-allocation policy of `risk.yaml` `allocation:` applied to the runners
of one engine, identically in replay, paper and live (issue 14).

The engine calls `await allocator.after_candle(runner, ts)` after each runner's candle (its
candle transaction committed), and nothing else:

1. Rebalance: when every runner has entered a new `rebalance_interval_h` interval (the
   slowest cursor), at the interval's start, the weights of the policy are computed
   (`core.risk.allocation.policy_weights`) from the daily returns of every runner's symbol
   closes over `lookback_days` complete UTC days (fewer than `min_history_days`, or than
   runners + 1, common returns: the equal weights, logged), and each runner's target becomes
   `weight x account equity` (account equity = the runners' equity + the unallocated cash,
   USDT). Stored (table allocation_weights) and logged.
2. Only between cycles: a runner gets its new target at its next FLAT moment (no position, no
   entry filled even in part, nothing of unknown outcome: `GridRunner.is_flat`; a
   single-position runner with no position and no order). A runner in a cycle keeps its
   capital until the cycle ends. The target is reached by moving cash between the runner's
   cash (its book and, on the simulated venue, the venue's account: both size the next cycle)
   and the unallocated pool: a runner above its target gives the excess to the pool, one below
   takes what the pool holds (it keeps asking at its next flat candles until it has its target
   or a new rebalance replaces it). Every transfer is one transaction with the runner's state
   (table allocation_transfers), so a restart resumes exactly. The account total never changes.
3. Drawdown halts of NEW cycles (`max_drawdown_strategy`, `max_drawdown_account`), on
   transfer-adjusted equity (`core.risk.allocation_drawdown.NavTracker`), level-triggered like
   `core.risk.manager`. A strategy whose drawdown reaches its limit has every runner's entry
   gate closed (`executor.paused`, the gate an operator's pause uses: no new cycle, no further
   grid level; open positions keep their stops and take-profits) and its resting entries
   cancelled at once (placed for the next candle before the halt); logged CRITICAL and alerted
   (`AlertEvent` critical). It is lifted (logged, alerted) when the drawdown is back under
   `LIFT_FRACTION` (0.8) of the limit; to trade again after a halt with no open position,
   raise the limit in risk.yaml and restart. The account's drawdown trips the kill switch
   without flattening (actor "allocation", `KillSwitchEvent` + `AlertEvent`, every runner's
   resting entries cancelled), again on every candle while the breach lasts, even after an
   operator's resume.

Modes: `shared=False` (policy equal: today's static split; a replay keeps the whole capital per
runner) records the weights 1/N at every rebalance and applies the halts, but never moves cash.
`shared=True` (any other policy) moves cash as above; the runners start with capital/N each
(`core.engine.assembly`).

State (pool, targets, pending runners, trackers, halts, interval) is one JSON row
(`core.risk.allocation_store`, migration 12), saved with every transfer and rebalance and when a
peak rises or a halt changes (the index between saves is exact: it is multiplicative).
Runners are named "strategy@symbol@timeframe". Money USDT, times ms UTC, weights fractions.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from core.config.allocation import AllocationConfig
from core.events.bus import AlertEvent, EventBus, KillSwitchEvent
from core.model.clock import format_ms
from core.risk.allocation import (DAY_MS, AllocationError, daily_closes, fixed_weights, policy_weights,
                                  returns_matrix)
from core.risk.allocation_drawdown import NavTracker
from core.risk.allocation_store import AllocationStore

log = logging.getLogger("core.risk.allocation")

#: kill switch actor of the account's drawdown halt
ACTOR = "allocation"
#: prefix of the entry-gate text of a strategy's drawdown halt
HALT_PREFIX = "allocation: "
#: a halt is lifted when the drawdown is back under this fraction of its limit (hysteresis: a
#: drawdown hovering at the limit does not halt and lift every candle)
LIFT_FRACTION = 0.8
#: USDT below which a runner's cash counts as at its target
TOLERANCE = 1e-6
ACCOUNT = "account"


def runner_label(r: Any) -> str:
    """The runner's name in the allocation tables: "strategy@symbol@timeframe"."""
    return f"{r.name}@{r.symbol}@{r.timeframe}"


def is_flat(r: Any) -> bool:
    """True when the runner is between cycles (module docstring, point 2)."""
    f = getattr(r, "is_flat", None)
    if f is not None:
        return bool(f())
    return r.book.side is None and not r.executor.orders


class Allocator:
    """See the module docstring.

    Args:
        config: the `allocation:` section.
        runners: the engine's runners (restored), in engine order.
        store: the engine's `StateStore` (transactions; its connection holds the tables).
        kill_switch: the engine's `KillSwitch`. bus: the engine's bus (or None).
        shared: move cash between runners (every policy but equal).
        scores: (strategy, symbol, timeframe) -> research score 0-100 or None, read at each
            rebalance of policy grade (default: the latest stored optimisation result).
    """

    def __init__(self, config: AllocationConfig, runners: list, store: Any, kill_switch: Any,
                 bus: EventBus | None = None, *, shared: bool, scores: Any = None) -> None:
        self.config = config
        self.runners = list(runners)
        self.store = store
        self.db = AllocationStore(store.conn)
        self.kill = kill_switch
        self.bus = bus
        self.shared = bool(shared)
        self.interval_ms = max(1, int(round(config.rebalance_interval_h * 3_600_000)))
        self.labels = [runner_label(r) for r in self.runners]
        self._scores = scores if scores is not None else self._stored_score
        self.period: int | None = None
        self.last_rebalance_ms: int | None = None
        self.pool = 0.0
        self.weights: dict[str, float] = {}
        self.targets: dict[str, float] = {}
        self.pending: set[str] = set()
        self.trackers: dict[str, NavTracker] = {}
        self.halted: dict[str, str] = {}             # group ("account" or a strategy) -> reason
        self.halted_at: dict[str, int] = {}          # group -> open time of the candle that halted it, ms UTC
        self.detail: dict = {}

    # ---------------------------------------------------------------- state
    def start(self) -> None:
        """Load the saved state (a restart) and close the entry gates of halted strategies. A policy
        solved by skfolio imports it now, before the first candle (about 2 s of CPU once per
        process), not in the middle of trading at the first rebalance, where it would stall the
        engine loop."""
        if self.config.policy in ("inverse_volatility", "risk_parity", "kelly"):
            import skfolio.optimization  # noqa: F401 - the import cost paid before trading
        st = self.db.load()
        if st is not None:
            self.period = st.get("period")
            self.last_rebalance_ms = st.get("last_rebalance_ms")
            self.pool = float(st.get("pool", 0.0))
            self.weights = dict(st.get("weights", {}))
            self.targets = dict(st.get("targets", {}))
            self.pending = set(st.get("pending", [])) & set(self.labels)
            self.trackers = {k: NavTracker.from_json(v) for k, v in st.get("trackers", {}).items()}
            self.halted = dict(st.get("halted", {}))
            self.halted_at = {k: int(v) for k, v in st.get("halted_at", {}).items()}
            self.detail = dict(st.get("detail", {}))
            if st.get("shared") != self.shared or st.get("policy") != self.config.policy:
                log.warning("allocation policy changed to %s since the last run (was %s): new targets at the "
                            "next rebalance", self.config.policy, st.get("policy"))
        for g, why in self.halted.items():
            if g != ACCOUNT:
                self._close_gates(g, why)
        log.info("allocation: policy %s (%s), rebalanced every %g h, %d runner(s), unallocated %.2f USDT",
                 self.config.policy, "cash moved between runners" if self.shared else "static split, no transfer",
                 self.config.rebalance_interval_h, len(self.runners), self.pool)

    def _state(self) -> dict:
        return {"policy": self.config.policy, "shared": self.shared, "period": self.period,
                "last_rebalance_ms": self.last_rebalance_ms, "pool": self.pool, "weights": self.weights,
                "targets": self.targets, "pending": sorted(self.pending),
                "trackers": {k: t.to_json() for k, t in self.trackers.items()}, "halted": self.halted,
                "halted_at": self.halted_at, "detail": self.detail}

    def _save(self) -> None:
        self.db.save(self._state())

    def account_equity(self) -> float:
        """The runners' equity plus the unallocated cash, USDT."""
        return sum(float(r.equity_last) for r in self.runners) + self.pool

    def snapshot(self) -> dict:
        """What the console / status / tests read: policy, shared, pool (USDT), last rebalance
        (ms UTC), weights / targets (USDT) / capital (each runner's cash, USDT) by runner,
        pending runners, halts {group: reason}, drawdowns {group: fraction}, returns detail."""
        return {"policy": self.config.policy, "shared": self.shared, "pool": self.pool,
                "last_rebalance_ms": self.last_rebalance_ms, "weights": dict(self.weights),
                "targets": dict(self.targets),
                "capital": {lb: float(r.book.cash) for lb, r in zip(self.labels, self.runners)},
                "pending": sorted(self.pending), "halted": dict(self.halted), "halted_at": dict(self.halted_at),
                "drawdowns": {k: t.drawdown for k, t in self.trackers.items()}, "detail": dict(self.detail)}

    # ---------------------------------------------------------------- per candle
    async def after_candle(self, r: Any, ts: int) -> None:
        """After runner `r` processed the candle opening at `ts` (ms UTC): rebalance when a new
        interval starts, move `r`'s cash to its target when it is flat, then the drawdown halts."""
        period = self._period()
        if period is not None and (self.period is None or period > self.period):
            self.rebalance(period * self.interval_ms, period)
        if self.shared:
            lb = runner_label(r)
            if lb in self.pending and is_flat(r):
                await self._transfer(r, lb, ts)
        await self._drawdowns(r, ts)

    # ---------------------------------------------------------------- rebalance
    def _period(self) -> int | None:
        """The interval every started runner has reached (the slowest cursor's), so the returns
        of a rebalance come from complete days every runner has (the engine hands a replay's
        candles on in time order, `core.engine.replay_order`; this also covers a lagging feed)."""
        cursors = [r.cursor for r in self.runners if r.cursor is not None]
        return min(cursors) // self.interval_ms if cursors else None

    def _stored_score(self, strategy: str, symbol: str, timeframe: str) -> float | None:
        from core.optimize.results_store import list_results

        rows = list_results(self.store.conn, strategy=strategy, symbol=symbol, timeframe=timeframe,
                            latest_only=True, limit=1)
        return float(rows[0].score) if rows else None

    def compute_weights(self, ts: int) -> tuple[np.ndarray, dict]:
        """The policy's weights at `ts` (ms UTC; returns of the complete UTC days before it), and
        what they were computed from (returns window, fallback). Raises AllocationError
        (`core.risk.allocation`)."""
        cfg = self.config
        n = len(self.runners)
        policy = cfg.policy
        detail: dict = {"policy": policy}
        returns = np.zeros((0, n))
        if policy in ("inverse_volatility", "risk_parity", "kelly"):
            closes = [daily_closes(r.history.ts, r.history.close, ts, cfg.lookback_days + 1) for r in self.runners]
            days, returns = returns_matrix(closes, cfg.lookback_days)
            detail.update(returns="daily simple returns of the symbols' closes", n_returns=len(days),
                          first_day_ms=days[0] * DAY_MS if days else None,
                          last_day_ms=days[-1] * DAY_MS if days else None)
            need = max(cfg.min_history_days, n + 1)         # a full-rank sample covariance needs n + 1
            if len(days) < need:
                detail["fallback"] = (f"{len(days)} common daily returns < {need} (min_history_days "
                                      f"{cfg.min_history_days}, runners + 1): equal weights")
                return policy_weights("equal", returns, n=n), detail
        scores = None
        if policy == "grade":
            scores = [self._scores(r.name, r.symbol, r.timeframe) for r in self.runners]
            detail["scores"] = dict(zip(self.labels, scores))
        fixed = fixed_weights([(r.name, r.symbol) for r in self.runners], cfg.weights) if policy == "fixed" else None
        w = policy_weights(policy, returns, n=n, fixed=fixed, scores=scores, kelly_fraction=cfg.kelly_fraction,
                           kelly_cap=cfg.kelly_cap)
        return w, detail

    def rebalance(self, ts: int, period: int | None = None) -> None:
        """New weights and targets at `ts` (ms UTC: the start of the interval, which every runner
        has reached; the returns end with the UTC day before it); persisted and logged.
        When the policy fails the previous targets stay (logged ERROR and alerted: fail closed,
        no capital moves on a guess)."""
        self.period = int(ts) // self.interval_ms if period is None else period
        try:
            w, detail = self.compute_weights(ts)
        except AllocationError as exc:
            log.error("allocation: rebalance at %s failed, the previous targets stay: %s", format_ms(ts), exc)
            self._alert("error", "allocation rebalance failed", f"{exc}; the previous targets stay")
            with self.store.transaction():
                self._save()
            return
        equity = self.account_equity()
        self.weights = {lb: float(x) for lb, x in zip(self.labels, w)}
        if self.shared:
            self.targets = {lb: float(x) * equity for lb, x in zip(self.labels, w)}
            self.pending = {lb for lb, r in zip(self.labels, self.runners)
                            if abs(self.targets[lb] - float(r.book.cash)) > TOLERANCE}
        else:
            self.targets = {lb: float(r.account.initial_capital) for lb, r in zip(self.labels, self.runners)}
            self.pending = set()
        self.last_rebalance_ms = int(ts)
        self.detail = detail
        rows = [(lb, self.weights[lb], self.targets[lb], float(r.book.cash))
                for lb, r in zip(self.labels, self.runners)]
        with self.store.transaction():
            self.db.add_weights(ts, self.config.policy, rows, detail)
            self._save()
        log.info("allocation rebalance (%s) at %s: account equity %.2f USDT; weights %s%s", self.config.policy,
                 format_ms(ts), equity, ", ".join(f"{lb} {x:.4f}" for lb, x in self.weights.items()),
                 f" ({detail['fallback']})" if "fallback" in detail else "")

    async def _transfer(self, r: Any, lb: str, ts: int) -> None:
        target = self.targets.get(lb)
        if target is None:
            self.pending.discard(lb)
            return
        async with r.lock:
            if not is_flat(r):
                return
            cash = float(r.book.cash)
            want = target - cash
            delta = want if want < 0 else min(want, max(self.pool, 0.0))
            reached = abs(target - cash - delta) <= TOLERANCE * max(1.0, abs(target))
            if abs(delta) <= TOLERANCE and not reached:
                return                          # the pool is empty: asked again at the next flat candle
            with self.store.transaction():
                if abs(delta) > TOLERANCE:
                    r.book.cash = cash + delta
                    venue = getattr(r, "venue", None)
                    if venue is not None and not venue.external:
                        venue.engine.cash += delta
                    r.equity_last = float(r.equity_last) + delta
                    if r.day_start_equity is not None:
                        r.day_start_equity += delta
                    self.pool -= delta
                    t = self.trackers.get(r.name)
                    if t is not None:
                        t.transfer(delta)
                    r._save()
                    self.db.add_transfer(ts, lb, delta, r.book.cash, self.pool)
                if abs(target - float(r.book.cash)) <= TOLERANCE * max(1.0, abs(target)):
                    self.pending.discard(lb)
                self._save()
        if abs(delta) > TOLERANCE:
            log.info("allocation: %s %s %.2f USDT at %s (cash %.2f, target %.2f, unallocated %.2f)", lb,
                     "receives" if delta > 0 else "releases", abs(delta), format_ms(ts), r.book.cash, target,
                     self.pool)

    # ---------------------------------------------------------------- drawdown halts
    async def _drawdowns(self, r: Any, ts: int) -> None:
        cfg = self.config
        dirty = False
        halted: list[str] = []
        if cfg.max_drawdown_strategy is not None:
            g = r.name
            eq = sum(float(x.equity_last) for x in self.runners if x.name == g)
            dirty |= self._track(g, eq)
            dirty |= self._check(g, cfg.max_drawdown_strategy, ts, halted)
        if cfg.max_drawdown_account is not None:
            dirty |= self._track(ACCOUNT, self.account_equity())
            dirty |= self._check(ACCOUNT, cfg.max_drawdown_account, ts, halted)
        if ACCOUNT in self.halted and not self.kill.active:
            self._trip_account(self.halted[ACCOUNT])
            halted.append(ACCOUNT)
        if dirty:
            with self.store.transaction():
                self._save()
        if halted:
            # the entries resting for the next candle were placed before the halt: cancel them now
            n = 0
            for x in self.runners:
                if ACCOUNT in halted or x.name in halted:
                    n += int(await x.cancel_entries() or 0)
            log.warning("allocation halt: %d resting entr%s cancelled, stops and take-profits kept", n,
                        "y" if n == 1 else "ies")

    def _track(self, group: str, equity: float) -> bool:
        t = self.trackers.get(group)
        if t is None:
            t = self.trackers[group] = NavTracker()
            t.update(equity)
            return True
        return t.update(equity)

    def _check(self, group: str, limit: float, ts: int, halted: list[str]) -> bool:
        """Halt / lift `group` on its drawdown (a new halt is appended to `halted`); True when
        the halt state changed."""
        dd = self.trackers[group].drawdown
        was = group in self.halted
        if dd >= limit and not was:
            what = "the account" if group == ACCOUNT else f"strategy {group}"
            key = "max_drawdown_account" if group == ACCOUNT else "max_drawdown_strategy"
            why = (f"{what} is {dd:.2%} below its peak (transfer-adjusted) at {format_ms(ts)}, "
                   f"allocation.{key} is {limit:.2%}: no new cycles, open positions keep their stops")
            self.halted[group] = why
            self.halted_at[group] = int(ts)
            log.critical("ALLOCATION HALT: %s", why)
            self._alert("critical", f"allocation halt: {what} drawdown {dd:.1%}", why)
            if group == ACCOUNT:
                self._trip_account(why)
            else:
                self._close_gates(group, why)
            halted.append(group)
            return True
        if dd < limit * LIFT_FRACTION and was:
            why = self.halted.pop(group)
            self.halted_at.pop(group, None)
            if group == ACCOUNT:
                msg = (f"the account's drawdown is back to {dd:.2%} (< {LIFT_FRACTION:g} x {limit:.2%}); the kill "
                       "switch set by the allocation stays until an operator resumes")
            else:
                self._open_gates(group)
                msg = (f"strategy {group}: drawdown back to {dd:.2%} (< {LIFT_FRACTION:g} x {limit:.2%}): new cycles "
                       "allowed again")
            log.warning("allocation halt lifted: %s (was: %s)", msg, why)
            self._alert("warning", "allocation halt lifted", msg)
            return True
        if was and group != ACCOUNT:
            self._close_gates(group, self.halted[group])          # re-asserted (an operator's resume cleared it)
        return False

    def _close_gates(self, strategy: str, why: str) -> None:
        for x in self.runners:
            if x.name == strategy and x.executor.paused is None:
                x.executor.paused = HALT_PREFIX + why

    def _open_gates(self, strategy: str) -> None:
        for x in self.runners:
            p = x.executor.paused
            if x.name == strategy and p is not None and p.startswith(HALT_PREFIX):
                x.executor.paused = x._pause_text() if x.pause_info is not None else None

    def _trip_account(self, why: str) -> None:
        self.kill.trip(ACTOR, flatten=False, reason=why)
        log.critical("ALLOCATION HALT: kill switch tripped (no flattening): %s", why)
        if self.bus is not None:
            self.bus.publish(KillSwitchEvent(True, False, ACTOR, why))

    def _alert(self, severity: str, title: str, detail: str) -> None:
        if self.bus is not None:
            self.bus.publish(AlertEvent(severity, title, detail, "risk"))

