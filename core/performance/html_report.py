"""The standalone HTML performance report: quantstats' tearsheet plus Radar's own sections.

    write_html("out.html", from_result(result))            # radar backtest ... --report-html out.html
    write_html("out.html", from_db("replay.db"))           # radar report --html out.html --db replay.db

The tearsheet is `quantstats.reports.html` on the book's daily returns (the last equity of each
UTC day with candles, the first day measured from the starting equity, 365 periods a year, no
benchmark, risk-free 0); its figures are inline SVG, so the file opens offline. Added before
`</body>` (the only HTML written here besides a minimal page when quantstats cannot run, e.g.
fewer than two days of data), in `<div id="radar-report">`:

* `#radar-curves`: the per-candle equity, drawdown and rolling Sharpe (matplotlib SVG): the
  curves the console's Performance screen draws;
* `#radar-summary`: start / final equity, total return, max drawdown, Sharpe (`metrics`);
* `#radar-monthly`: the year x month returns table (`core.performance.monthly`), in percent
  with 2 decimals;
* `#radar-cycles`: cycle statistics per asset; `#radar-winloss`: the win/loss distribution.

Tables are `pandas.DataFrame.to_html`.
"""

from __future__ import annotations

import html
import io
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np

from core.performance.rolling import daily_points
from core.performance.sources import PerfInput
from core.performance.summary import WINDOW_DAYS, performance

log = logging.getLogger(__name__)

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
HOUR_MS = 3_600_000


def pct(value: float | None) -> str:
    """A fraction as percent with 2 decimals ("1.23%"), "" for None."""
    return "" if value is None else f"{value * 100:.2f}%"


def daily_returns_series(inp: PerfInput):
    """pandas Series of daily simple returns indexed by the UTC day (tz-naive DatetimeIndex): the
    last equity of each day with candles over the previous one, the first day over
    `inp.start_equity` (so they compound to the total return)."""
    import pandas as pd

    days, eq = daily_points(inp.ts, inp.equity)
    prev = np.concatenate([[inp.start_equity], eq[:-1]])
    return pd.Series(eq / prev - 1.0, index=pd.to_datetime(days, unit="ms"), name="Strategy")


def monthly_frame(perf: dict):
    """The year x month table of `perf["monthly"]` as a DataFrame of percent strings (index year,
    columns Jan .. Dec then Year, the year's compounded return)."""
    import pandas as pd

    from core.performance.monthly import MonthReturn, year_table

    table = year_table([MonthReturn(**m) for m in perf["monthly"]])
    rows = {y: [pct(t.get(i + 1)) for i in range(12)] + [pct(t["year"])] for y, t in table.items()}
    df = pd.DataFrame.from_dict(rows, orient="index", columns=[*MONTHS, "Year"])
    return df


def _tables(perf: dict) -> str:
    import pandas as pd

    summary = pd.DataFrame({"value": [
        f"{perf['start_equity']:,.2f}", f"{perf['final_equity']:,.2f}", pct(perf["total_return"]),
        pct(perf["max_drawdown"]), f"{perf['sharpe']:.3f}"]},
        index=["start equity (USDT)", "final equity (USDT)", "total return", "max drawdown",
               "Sharpe (daily, √365)"])
    cyc = pd.DataFrame([{
        "asset": s["asset"], "cycles": s["n_cycles"],
        "avg duration (h)": "" if s["avg_duration_ms"] is None else f"{s['avg_duration_ms'] / HOUR_MS:.1f}",
        "median duration (h)": "" if s["median_duration_ms"] is None else f"{s['median_duration_ms'] / HOUR_MS:.1f}",
        "cycles / week": "" if s["cycles_per_week"] is None else f"{s['cycles_per_week']:.2f}",
        "win rate": pct(s["win_rate"]), "total P&L (USDT)": f"{s['total_pnl']:,.2f}",
        "avg P&L (USDT)": f"{s['avg_pnl']:,.2f}"} for s in perf["cycles"]])
    wl = perf["win_loss"]
    money = (lambda v: "" if v is None else f"{v:,.2f}")
    figures = pd.DataFrame({"value": [
        str(wl["n_win"]), str(wl["n_loss"]), str(wl["n_flat"]), pct(wl["win_rate"]), money(wl["avg_win"]),
        money(wl["avg_loss"]), money(wl["largest_win"]), money(wl["largest_loss"]),
        "" if wl["profit_factor"] is None else f"{wl['profit_factor']:.3f}"]},
        index=["wins", "losses", "flat", "win rate", "avg win (USDT)", "avg loss (USDT)", "largest win (USDT)",
               "largest loss (USDT)", "profit factor"])
    edges = wl["edges"]
    hist = pd.DataFrame({"P&L from (USDT)": [f"{x:,.2f}" for x in edges[:-1]],
                         "to (USDT)": [f"{x:,.2f}" for x in edges[1:]], "cycles": wl["counts"]})
    return (f'<div id="radar-summary"><h3>Summary</h3>{summary.to_html(classes="radar")}</div>'
            f'<div id="radar-monthly"><h3>Monthly returns (UTC months)</h3>'
            f'{monthly_frame(perf).to_html(classes="radar")}</div>'
            f'<div id="radar-cycles"><h3>Cycles per asset</h3>{cyc.to_html(classes="radar", index=False)}</div>'
            f'<div id="radar-winloss"><h3>Win / loss</h3>{figures.to_html(classes="radar")}'
            f'{hist.to_html(classes="radar", index=False)}</div>')


def curves_svg(perf: dict) -> str:
    """Equity, drawdown and rolling Sharpe of `perf` as one inline SVG (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    c, rs = perf["curves"], perf["rolling_sharpe"]
    fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    try:
        t = pd.to_datetime(c["ts"], unit="ms")
        a1.plot(t, c["equity"], lw=1)
        a1.set_ylabel("equity (USDT)")
        a2.fill_between(t, [-100 * d for d in c["drawdown"]], 0, color="tab:red", alpha=0.5)
        a2.set_ylabel("drawdown (%)")
        a3.plot(pd.to_datetime(rs["ts"], unit="ms"), rs["values"], lw=1, color="tab:green")
        a3.set_ylabel(f"Sharpe {rs['window_days']}d")
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
    finally:
        plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def tearsheet(inp: PerfInput, title: str) -> str | None:
    """quantstats' HTML tearsheet of `inp`, or None when it cannot be made (logged)."""
    returns = daily_returns_series(inp)
    if returns.size < 2:
        log.warning("no quantstats tearsheet: fewer than 2 days of equity")
        return None
    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    try:
        import quantstats as qs

        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = Path(tmp) / "tearsheet.html"
            qs.reports.html(returns, title=title, output=str(out), periods_per_year=365, rf=0.0)
            return out.read_text(encoding="utf-8")
    except Exception as exc:            # the report still carries our sections
        log.warning("no quantstats tearsheet: %s: %s", type(exc).__name__, exc)
        return None


def render_html(inp: PerfInput, title: str | None = None, window_days: int = WINDOW_DAYS) -> str:
    """The report page (see the module docstring).

    Raises:
        ValueError: a malformed series or window (see `summary.performance`).
    """
    title = title or inp.title
    perf = performance(inp, window_days=window_days, max_points=None)
    ours = (f'<div id="radar-report"><h2>Radar: {html.escape(title)}</h2>'
            f'<p>{html.escape(", ".join(inp.runners))}</p>'
            f'<div id="radar-curves"><h3>Equity, drawdown, rolling Sharpe</h3>{curves_svg(perf)}</div>'
            f"{_tables(perf)}</div>")
    page = tearsheet(inp, title)
    if page is None or "</body>" not in page:
        page = (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
                f"<body></body></html>")
    at = page.rindex("</body>")
    return page[:at] + ours + page[at:]


def write_html(path: str | Path, inp: PerfInput, title: str | None = None, window_days: int = WINDOW_DAYS) -> Path:
    """Write the report of `inp` to `path` (atomically: a temp file, then renamed); returns the path.

    Raises:
        ValueError: see `render_html`. OSError: the file cannot be written.
    """
    p = Path(path)
    text = render_html(inp, title, window_days)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(p)
    return p
