"""Performance of a book: what an operator reads after a backtest, a replay or a day of trading.

One concept per module, all computed on the engine side (the console and Telegram only show it):

* `curves`: equity and drawdown curves from a per-candle equity series, the book's equity of
  several runners, thinning for charts;
* `monthly`: calendar-month returns (UTC) and the year x month table;
* `rolling`: rolling Sharpe over a window of days (annualised √365, `core.backtest.metrics.daily_sharpe`);
* `cycle_stats`: per asset: cycles, average duration (ms), cycles per week, win rate, P&L;
* `win_loss`: the distribution of the cycles' P&L (wins, losses, histogram);
* `sources`: the inputs: a `BacktestResult`, or a replay's / the running engine's database;
* `summary`: everything above as one JSON-able dict (the API's `performance` query);
* `html_report`: the standalone HTML report (quantstats tearsheet + our sections).

Conventions: equity and P&L in USDT (float64), returns and drawdowns as fractions
(0.1 = 10 %), timestamps int ms UTC (candle open times, as `trading_equity` and
`BacktestResult.ts`).
"""
