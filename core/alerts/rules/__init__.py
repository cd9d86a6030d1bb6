"""Alert rules evaluated by the engine on every candle (issue 14), thresholds in `alert_rules.yaml`.

One rule per module, each a small state machine fed the runner's state after each candle:

* `near_price`: the close within a fraction of the next unfilled grid level or of the stop
  (once per approach, hysteresis band);
* `drawdown`: a runner's or the account's drawdown past a warning level below risk.yaml
  `limits.max_drawdown` (which trips the kill switch);
* `underperformance`: a runner's cumulative return below the Monte Carlo band of its stored
  walk-forward result (`core.optimize.results_store`);
* `divergence`: a live runner vs a paper shadow of itself on the same candles (the sim venue).

`service.AlertRules` hooks them into the engine (`Engine.candle_hooks`) and raises / resolves
their alerts through the run's `AlertEngine` (console, `radar alerts list`, Telegram).
"""

from core.alerts.rules.base import RuleAlert

__all__ = ["RuleAlert"]
