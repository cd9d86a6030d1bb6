"""Calendar-month returns (UTC) of an equity series, and the year x month table.

Month-end equity E_m = the equity of the last point whose timestamp (candle open time, ms UTC)
falls in month m, the same day convention as `core.backtest.metrics.daily_equity`. The return
of month m is E_m / E_prev − 1 (fraction), E_prev the month-end equity of the previous month
with points; for the first month E_prev is the starting equity (`start_equity`, e.g. the
account's initial capital; default the first point). Months without a point are absent. So the
months compound to the total return: Π(1 + r_m) = E_last / start_equity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.performance.curves import check_series


@dataclass(frozen=True)
class MonthReturn:
    """One calendar month (UTC): year, month 1..12, ret (fraction), end_equity (USDT)."""

    year: int
    month: int
    ret: float
    end_equity: float


def _month_index(ts: np.ndarray) -> np.ndarray:
    """year * 12 + (month − 1) of each ms UTC timestamp."""
    months = ts.astype("datetime64[ms]").astype("datetime64[M]").astype(np.int64)   # months since 1970-01
    return months + 1970 * 12


def monthly_returns(ts, equity, start_equity: float | None = None) -> list[MonthReturn]:
    """The return of every calendar month with points, oldest first (see the module docstring).

    ts: int ms UTC, shape (n,), increasing; equity: USDT, shape (n,).

    Raises:
        ValueError: a malformed series (`curves.check_series`) or start_equity <= 0.
    """
    t, e = check_series(ts, equity)
    if t.size == 0:
        return []
    base = float(e[0]) if start_equity is None else float(start_equity)
    if not base > 0:
        raise ValueError(f"start_equity must be > 0, got {start_equity!r}")
    m = _month_index(t)
    last = np.concatenate([np.nonzero(np.diff(m) != 0)[0], [m.size - 1]])
    out: list[MonthReturn] = []
    prev = base
    for i in last:
        end = float(e[i])
        out.append(MonthReturn(int(m[i] // 12), int(m[i] % 12) + 1, end / prev - 1.0, end))
        prev = end
    return out


def year_table(months: list[MonthReturn]) -> dict[int, dict]:
    """{year: {1..12: ret or absent, "year": compounded return of the year's months}} (fractions),
    years in order: the table the report and the console show."""
    out: dict[int, dict] = {}
    for r in months:
        out.setdefault(r.year, {})[r.month] = r.ret
    for row in out.values():
        row["year"] = float(np.prod([1.0 + v for k, v in row.items() if isinstance(k, int)]) - 1.0)
    return out
