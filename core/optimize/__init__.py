"""Research statistics: is a backtested edge real, and how good is it?

* `sharpe_stats`: Probabilistic and Deflated Sharpe Ratio, expected maximum
  Sharpe of N trials, Sharpe moments of a return series.
* `bootstrap`: Monte Carlo stationary block bootstrap p-value of a Sharpe ratio.
* `pbo`: Probability of Backtest Overfitting by combinatorially symmetric
  cross-validation (CSCV).
* `grade`: an A–F grade from five weighted criteria (`config/grading.yaml`).
* `windows`, `search`, `stability`, `walk_forward`: rolling IS/OOS windows, the
  two-pass (Latin hypercube + fine) search, parameter stability, the whole run.
* `results_store`, `apply`: SQLite results, writing best params into config.

Import from the submodules (e.g. `from core.optimize.sharpe_stats import dsr`).
"""
