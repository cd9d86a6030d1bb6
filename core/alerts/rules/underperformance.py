"""Rule: a runner underperforms its backtest expectation by more than its Monte Carlo band.

The expectation is the latest complete walk-forward result stored for the runner's (strategy,
symbol, timeframe) (`core.optimize.results_store`, `is_latest`); with `same_params_only` (the
default) only when the runner trades that result's best params (normalised by the registry).
From its out-of-sample windows (detail "windows": `oos_return` r_w, a fraction, over
[`oos_start`, `oos_end`), ms UTC) the band is built by Monte Carlo:

* L_w = log(1 + r_w) per window, mu = mean(L_w), D = median window length in days;
* `n_sims` paths of window returns are drawn with the stationary block bootstrap of
  `core.optimize.bootstrap.stationary_indices` (Politis & Romano 1994; mean block length
  ceil(n^(1/3)) windows, `default_block_length`), chunks concatenated for long horizons;
* at a horizon of H days, k = floor(H / D) whole windows and the fraction f = H/D - k of the
  next: log growth G = sum of the k drawn L + f * mu + sqrt(f) * (L_next - mu) (the partial
  window scaled as a random walk: drift with time, deviation with its square root);
* the band is Q_p(exp(G) - 1), the `percentile` quantile (default 5th) of the simulated
  cumulative returns, H rounded down to whole days.

Exact rule, per runner after each candle: ret = equity / equity_0 - 1, with equity_0 and t_0 the
runner's first stored equity point (its start; resume-safe), H = (ts - t_0) / 1 day. When
H >= `min_days` and ret <= band(H), the warning "rule.underperformance:<strategy>:<symbol>:<timeframe>"
is raised; it is resolved (re-armed) once ret > band(H) + `rearm_band`. No stored result (or other
params, or fewer than 2 windows): the rule says nothing for that runner (logged once).
"""

from __future__ import annotations

import logging
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from core.alerts.rules.base import Latch, RuleAlert, runner_key
from core.data.feed import iso_ms
from core.optimize.bootstrap import default_block_length, stationary_indices

log = logging.getLogger(__name__)

DAY_MS = 86_400_000


class MonteCarloBand:
    """The lower Monte Carlo band of cumulative return by horizon (module docstring).

    Args:
        window_returns: shape (n,), n >= 2, the OOS return of each window (fractions > -1).
        window_days: the length of one window, days (> 0).
        percentile: the band's quantile in (0, 0.5). n_sims: paths. seed: numpy seed.

    Raises:
        ValueError: fewer than 2 finite returns > -1, or a non-positive window length.
    """

    def __init__(self, window_returns: Any, window_days: float, percentile: float = 0.05, n_sims: int = 2000,
                 seed: int = 0) -> None:
        r = np.asarray(window_returns, dtype=np.float64)
        r = r[np.isfinite(r) & (r > -1.0)]
        if r.size < 2:
            raise ValueError(f"the Monte Carlo band needs at least 2 windows with a finite return, got {r.size}")
        if not (window_days > 0 and math.isfinite(window_days)):
            raise ValueError(f"window length must be a positive number of days, got {window_days!r}")
        self.log_returns = np.log1p(r)
        self.mu = float(self.log_returns.mean())
        self.window_days = float(window_days)
        self.percentile = float(percentile)
        self.n_sims = int(n_sims)
        self._rng = np.random.default_rng(seed)
        self._block = float(default_block_length(r.size))
        self._draws = np.empty((self.n_sims, 0))
        self._cum = np.zeros((self.n_sims, 1))
        self._cache: dict[int, float] = {}

    def _ensure(self, k: int) -> None:
        """Drawn window log-returns for at least k + 1 windows per path."""
        n = self.log_returns.size
        while self._draws.shape[1] < k + 1:
            idx = stationary_indices(self._rng, self.n_sims, n, self._block)
            self._draws = np.concatenate([self._draws, self.log_returns[idx]], axis=1)
        if self._cum.shape[1] < self._draws.shape[1] + 1:
            self._cum = np.concatenate([np.zeros((self.n_sims, 1)), np.cumsum(self._draws, axis=1)], axis=1)

    def band(self, days: float) -> float:
        """The `percentile` quantile of the simulated cumulative return after `days`, a fraction,
        at the horizon rounded down to whole days (computed once per day of horizon: a quantile
        of `n_sims` values costs ~0.1 ms, too much for every candle)."""
        whole = max(0, int(days))
        hit = self._cache.get(whole)
        if hit is not None:
            return hit
        x = whole / self.window_days
        k = int(math.floor(x))
        f = x - k
        self._ensure(k)
        g = self._cum[:, k] + f * self.mu + math.sqrt(f) * (self._draws[:, k] - self.mu)
        q = float(np.expm1(np.quantile(g, self.percentile)))
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[whole] = q
        return q


def expectation_for(conn: sqlite3.Connection, strategy: str, symbol: str, timeframe: str, params: dict | None,
                    cfg: Any) -> tuple[MonteCarloBand | None, str]:
    """(the band of the latest complete stored result of (strategy, symbol, timeframe), a note);
    the band is None with the reason in the note when there is none to use.

    `params`: the runner's normalised params, compared with the result's best params when
    `cfg.same_params_only`; None skips the comparison.
    """
    from core.optimize.results_store import list_results, result_detail

    try:
        found = list_results(conn, strategy=strategy, symbol=symbol, timeframe=timeframe, latest_only=True, limit=1)
    except sqlite3.Error as exc:
        return None, f"stored results unreadable: {exc}"
    if not found:
        return None, "no stored research result"
    res = found[0]
    if cfg.same_params_only and params is not None:
        from core.strategies import registry

        try:
            best = dict(registry.create(strategy, res.best_params).params)
        except Exception as exc:  # noqa: BLE001 - a stale result of another code version
            return None, f"result #{res.id}: best params {res.best_params} invalid now ({exc})"
        if best != dict(params):
            return None, f"result #{res.id} is for params {best}, the runner trades {dict(params)}"
    windows = result_detail(conn, res.id).get("windows") or []
    rets = [w.get("oos_return") for w in windows if isinstance(w.get("oos_return"), (int, float))]
    lengths = [(w["oos_end"] - w["oos_start"]) / DAY_MS for w in windows
               if isinstance(w.get("oos_start"), int) and isinstance(w.get("oos_end"), int)
               and w["oos_end"] > w["oos_start"]]
    days = float(np.median(lengths)) if lengths else float(res.oos_days)
    try:
        band = MonteCarloBand(rets, days, cfg.percentile, cfg.n_sims, cfg.seed)
    except ValueError as exc:
        return None, f"result #{res.id}: {exc}"
    return band, f"result #{res.id} ({len(rets)} OOS windows of {days:g} days, grade {res.grade})"


class UnderperformanceRule:
    """See the module docstring. `cfg`: `core.config.alert_rules.UnderperformanceRule`; `results_db`:
    the database of the stored results (None: each runner's state store connection)."""

    def __init__(self, cfg: Any, results_db: str | Path | None = None) -> None:
        self.cfg = cfg
        self.results_db = results_db
        self._runners: dict[int, tuple[MonteCarloBand | None, str, int, float] | None] = {}
        self._latches: dict[int, Latch] = {}

    def _setup(self, r: Any) -> tuple[MonteCarloBand | None, str, int, float] | None:
        store = getattr(r, "store", None)
        rid = getattr(r, "runner_id", None)
        if store is None or rid is None:
            return None
        row = store.conn.execute("SELECT ts, equity FROM trading_equity WHERE runner_id = ? ORDER BY ts LIMIT 1",
                                 (rid,)).fetchone()
        if row is None:
            return None                               # no equity point yet: next candle
        if self.results_db is not None:
            conn = sqlite3.connect(f"file:{Path(self.results_db)}?mode=ro", uri=True)
            try:
                band, note = expectation_for(conn, r.name, r.symbol, r.timeframe, dict(r.strategy.params), self.cfg)
            finally:
                conn.close()
        else:
            band, note = expectation_for(store.conn, r.name, r.symbol, r.timeframe, dict(r.strategy.params), self.cfg)
        if band is None:
            log.info("%s %s %s: no underperformance alert rule: %s", r.name, r.symbol, r.timeframe, note)
        return band, note, int(row[0]), float(row[1])

    def evaluate(self, r: Any, ts: int) -> list[RuleAlert]:
        """The alert actions after runner `r` processed the candle at `ts` (ms UTC)."""
        setup = self._runners.get(id(r))
        if setup is None:
            setup = self._setup(r)
            if setup is None:
                return []
            self._runners[id(r)] = setup
        band, note, t0, eq0 = setup
        if band is None or eq0 <= 0:
            return []
        days = (ts - t0) / DAY_MS
        if days < self.cfg.min_days:
            return []
        ret = float(r.equity_last) / eq0 - 1.0
        q = band.band(days)
        latch = self._latches.setdefault(id(r), Latch())
        ev = latch.update(q - ret, 0.0, -self.cfg.rearm_band)
        key = runner_key("underperformance", r)
        if ev == "fire":
            return [RuleAlert(
                key, "warning",
                f"{r.name} {r.symbol}: return {ret:+.2%} below the backtest's {self.cfg.percentile:.0%} band "
                f"({q:+.2%}) after {days:.1f} days",
                f"equity {r.equity_last:,.2f} USDT vs {eq0:,.2f} at the start ({iso_ms(t0)}): {ret:+.2%} at "
                f"{iso_ms(ts)}; the Monte Carlo {self.cfg.percentile:.0%} quantile of the cumulative return over "
                f"{days:.1f} days from {note} is {q:+.2%}; resolved above {q + self.cfg.rearm_band:+.2%}")]
        if ev == "clear":
            return [RuleAlert(key, None)]
        return []
