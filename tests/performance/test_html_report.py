"""The HTML report's own parts: a series too short for quantstats still gives a page with our
curves and tables; the monthly table and daily returns match pandas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.model.cycle import Cycle
from core.performance.html_report import daily_returns_series, monthly_frame, write_html
from core.performance.sources import PerfInput
from core.performance.summary import performance
from tests.performance.html_support import monthly_cells, parse_report

HOUR = 3_600_000
T0 = 1_640_995_200_000       # 2022-01-01 00:00 UTC


def _input(hours: int) -> PerfInput:
    ts = T0 + HOUR * np.arange(hours, dtype=np.int64)
    eq = 1_000.0 + np.sin(np.arange(hours) / 5.0) * 10 + np.arange(hours) * 0.1
    cyc = [Cycle(int(ts[0]), int(ts[3]), "long", 1, 1.0, 1.1, "tp", 1.0, 2.5)]
    return PerfInput("test book", ts, eq, 990.0, {"BTC/USDT": cyc}, span_ms=hours * HOUR, runners=["x BTC/USDT 1h"])


def test_one_day_gives_our_sections_without_a_tearsheet(tmp_path: Path) -> None:
    out = write_html(tmp_path / "r.html", _input(20))
    p = parse_report(out)
    assert p.figures.get("radar-curves") == 1 and "dd_plot" not in p.ids
    assert monthly_cells(p) == {(2022, 1): pytest.approx(100 * (_input(20).equity[-1] / 990.0 - 1), abs=0.005),
                                (2022, 13): pytest.approx(100 * (_input(20).equity[-1] / 990.0 - 1), abs=0.005)}
    assert p.tables["radar-cycles"][0][1][:2] == ["BTC/USDT", "1"]
    assert not (tmp_path / "r.html.tmp").exists()


def test_daily_returns_and_month_frame_match_pandas() -> None:
    inp = _input(24 * 70)
    r = daily_returns_series(inp)
    s = pd.Series(inp.equity, index=pd.to_datetime(inp.ts, unit="ms")).resample("D").last()
    want = s / s.shift(1, fill_value=990.0) - 1
    np.testing.assert_allclose(r.to_numpy(), want.to_numpy(), rtol=0, atol=1e-12)
    assert (r.index == want.index).all()
    df = monthly_frame(performance(inp))
    assert list(df.index) == [2022] and df.loc[2022, "Apr"] == "" and df.loc[2022, "Jan"].endswith("%")
