"""Rule: a live runner diverges from a paper shadow of itself on the same candles.

Decision (issue 14): one engine process runs one mode (`Engine(mode="paper" | "live")`, one
engine per database), so a paper runner and a live runner of the same strategy and symbol are
never in the same process to compare. Instead every live grid runner gets a paper **shadow**:
a `GridRunner` of the same strategy, params, symbol and timeframe on the simulated venue
(`core.venues.sim.grid_venue.SimGridVenue`, the same executor code: by the one-path design the
shadow's result is the paper result, equal to the event backtest on those candles), with the
engine's paper account (risk.yaml capital and fees), fed the very candles the live runner
processed, in a throw-away SQLite state file of its own (a temporary folder removed at close).

* The shadow starts at the first candle after which the live runner is flat (no position: a
  position opened before the shadow existed would be a difference by construction), warmed up
  with the live runner's candle history before that candle, then processes that candle itself;
  its capital is the live runner's cash at that moment (a live runner sizes on the exchange
  balance when it is below the configured capital), its fees those of the paper account.
* After each candle: P_live = sum of the P&L of the live runner's cycles closed since the
  shadow started, P_shadow = the same for the shadow (USDT, realised, fees included);
  n_live, n_shadow = those cycle counts; C = the shadow's initial capital.
* Fires (warning, "rule.divergence:<strategy>:<symbol>:<timeframe>") when
  |P_live - P_shadow| / C > `pnl_within` or |n_live - n_shadow| > `cycles_within`;
  resolved once |P_live - P_shadow| / C <= `pnl_within` / 2 and the counts are within
  `cycles_within` (the half threshold is the hysteresis band).

Paper runners are shadowed only with `shadow_paper: true` (a self-check of the one-path
design: a paper runner and its shadow must agree exactly). Single-position runners (paper only,
no live trading yet) are not shadowed.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from core.alerts.rules.base import RuleAlert, runner_key
from core.data.feed import iso_ms

log = logging.getLogger(__name__)


class Shadow:
    """The paper shadow of one runner (see the module docstring).

    Attributes:
        runner: the shadow `GridRunner`. n0: live cycles closed before the shadow started.
        started_ts: open time (ms UTC) of the candle the shadow started with. fired: alert open.
    """

    def __init__(self, runner: Any, store: Any, n0: int, started_ts: int) -> None:
        self.runner = runner
        self.store = store
        self.n0 = n0
        self.started_ts = started_ts
        self.fired = False


class ShadowDivergenceRule:
    """See the module docstring.

    Args:
        cfg: `core.config.alert_rules.DivergenceRule`.
        engine: the Engine (its `account` and `sizing_reserve` give the shadow's).
        account: the shadow's account instead of the engine's (tests).
    """

    def __init__(self, cfg: Any, engine: Any = None, account: Any = None) -> None:
        self.cfg = cfg
        self.engine = engine
        self.account = account
        self._shadows: dict[int, Shadow | None] = {}
        self._dir: Path | None = None

    def wants(self, r: Any) -> bool:
        """True when runner `r` is shadowed: a grid runner, live (or paper with `shadow_paper`)."""
        from core.engine.grid_runner import GridRunner

        return isinstance(r, GridRunner) and (bool(getattr(r, "live", False)) or self.cfg.shadow_paper)

    def shadow_of(self, r: Any) -> Shadow | None:
        """The shadow of runner `r`, None before it started (or when `r` is not shadowed)."""
        return self._shadows.get(id(r))

    def _start(self, r: Any, ts: int) -> Shadow:
        from core.engine.grid_runner import GridRunner
        from core.executor.kill_switch import KillSwitch
        from core.executor.state_store import StateStore
        from core.model.account import Account
        from core.strategies import registry
        from core.venues.sim.grid_venue import SimGridVenue

        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="radar-shadow-"))
        account = self.account or getattr(self.engine, "account", None) or Account()
        cash = float(getattr(r.book, "cash", 0.0) or 0.0)
        if cash > 0 and self.account is None:             # the live runner's cash now (it may size on
            account = dataclasses.replace(account, initial_capital=cash)   # a balance below the config)
        reserve = float(getattr(self.engine, "sizing_reserve", 0.0) or 0.0)
        params = dict(r.strategy.params)
        store = StateStore(self._dir / f"shadow-{len(self._shadows)}.db")
        store.conn.execute("PRAGMA synchronous=OFF")      # throw-away state: no fsync per candle
        strat = registry.create(r.name, params)
        sh = GridRunner(r.name, params, r.symbol, r.timeframe, account, store, KillSwitch(store), None,
                        mode="paper", publish_candles=False, sizing_reserve=reserve,
                        venue=lambda ids: SimGridVenue(strat, r.symbol, account, ids, reserve))
        h = r.history
        rows = [(t, o, hi, lo, c) for t, o, hi, lo, c in zip(h.ts, h.open, h.high, h.low, h.close) if t < ts]
        sh.restore(rows)
        log.info("%s %s %s: paper shadow started at %s (%d candles of history) for the divergence alert rule",
                 r.name, r.symbol, r.timeframe, iso_ms(ts), len(rows))
        return Shadow(sh, store, len(r.cycles), ts)

    async def evaluate(self, r: Any, ts: int, o: float, h: float, lo: float, c: float) -> list[RuleAlert]:
        """Feed the shadow of runner `r` the candle at `ts` (ms UTC) and compare (module docstring)."""
        if id(r) not in self._shadows:
            if not self.wants(r):
                self._shadows[id(r)] = None
                return []
            if r.position().get("qty"):
                return []                                  # wait for a flat moment
            sh = self._start(r, ts)
            await sh.runner.connect()
            self._shadows[id(r)] = sh
        else:
            sh = self._shadows[id(r)]
            if sh is None or sh.store is None:           # not shadowed, or closed
                return []
        await sh.runner.on_candle(ts, o, h, lo, c)
        return self._compare(r, sh, ts)

    def _compare(self, r: Any, sh: Shadow, ts: int) -> list[RuleAlert]:
        cfg = self.cfg
        live = r.cycles[sh.n0:]
        paper = sh.runner.cycles
        p_live = float(sum(x.pnl for x in live))
        p_paper = float(sum(x.pnl for x in paper))
        capital = float(sh.runner.account.initial_capital)
        diff = abs(p_live - p_paper) / capital
        dn = abs(len(live) - len(paper))
        key = runner_key("divergence", r)
        if not sh.fired and (diff > cfg.pnl_within or dn > cfg.cycles_within):
            sh.fired = True
            return [RuleAlert(
                key, "warning",
                f"{r.name} {r.symbol}: {r.mode} vs paper shadow differ: P&L {p_live:+,.2f} vs {p_paper:+,.2f} USDT, "
                f"{len(live)} vs {len(paper)} cycles",
                f"since {iso_ms(sh.started_ts)} (to {iso_ms(ts)}): realised P&L {r.mode} {p_live:+,.2f} USDT, "
                f"paper shadow {p_paper:+,.2f} USDT (difference {diff:.2%} of {capital:,.0f} USDT, limit "
                f"{cfg.pnl_within:.2%}); closed cycles {len(live)} vs {len(paper)} (limit +-{cfg.cycles_within}). "
                "Check fills, fees and slippage on the venue.")]
        if sh.fired and diff <= cfg.pnl_within / 2 and dn <= cfg.cycles_within:
            sh.fired = False
            return [RuleAlert(key, None)]
        return []

    def close(self) -> None:
        """Close the shadows' state files and remove their folder (idempotent; the shadows' books
        stay readable in memory, e.g. `shadow_of(r).runner.cycles`, but take no more candles)."""
        for sh in self._shadows.values():
            if sh is not None and sh.store is not None:
                try:
                    sh.store.close()
                except Exception:  # noqa: BLE001 - best effort at shutdown
                    pass
                sh.store = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
