"""The `performance` query of a running paper engine: EngineAPI, LocalPort, the API socket and an
attached console's RemoteEngine give the same curves, equal to pandas on the recorded equity."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.api.client import EngineClient
from core.api.local_port import LocalPort
from core.api.protocol import ApiError, CommandRefused
from core.api.views import PerformanceView
from core.backtest.loading import load_from_file
from core.engine.api import EngineAPI
from core.errors import UsageError
from tests.api.conftest import Run
from tests.support.shared_data import shared_file
from tui.remote import RemoteEngine

BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"


def recorded(db: Path) -> pd.Series:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT ts, equity FROM trading_equity ORDER BY ts").fetchall()
    ts, eq = zip(*rows)
    return pd.Series(eq, index=pd.to_datetime(ts, unit="ms"))


async def test_performance_query_everywhere_equals_pandas(tmp_path: Path) -> None:
    full = load_from_file(shared_file(BTC_1H))
    candles = full.between(None, int(full.ts[1400]))
    async with Run(tmp_path / "radar.db", candles) as run:
        api = EngineAPI(run.engine)
        perf = await api.performance(window_days=7, max_points=20_000)
        s = recorded(run.db)
        np.testing.assert_array_equal(perf["curves"]["ts"], s.index.as_unit("ms").asi8)
        np.testing.assert_array_equal(perf["curves"]["equity"], s.to_numpy())
        dd = ((s.cummax() - s) / s.cummax()).to_numpy()
        np.testing.assert_allclose(perf["curves"]["drawdown"], dd, rtol=0, atol=1e-12)
        month_end = s.resample("ME").last().dropna()
        want = (month_end / month_end.shift(1, fill_value=s.iloc[0]) - 1).to_numpy()
        np.testing.assert_allclose([m["ret"] for m in perf["monthly"]], want, rtol=0, atol=1e-12)
        assert perf["cycles"][0]["asset"] == "BTC/USDT" and perf["cycles"][0]["n_cycles"] > 0

        local = await LocalPort(api).performance(7, 20_000)
        assert isinstance(local, PerformanceView)
        assert local.equity == tuple(perf["curves"]["equity"]) and local.ts == tuple(perf["curves"]["ts"])
        assert local.monthly == tuple((m["year"], m["month"], m["ret"]) for m in perf["monthly"])

        remote = await RemoteEngine(run.socket, readonly=True).connect()
        try:
            view = await remote.performance(7, 20_000)
        finally:
            await remote.close()
        assert view == local
        thin = await LocalPort(api).performance(7, 100)
        assert len(thin.ts) <= 101 and thin.max_drawdown == pytest.approx(max(thin.drawdown), abs=1e-15)

        async with EngineClient(run.socket, readonly=True, source="cli") as c:
            with pytest.raises(ApiError) as err:
                await c._request("GET", "/v1/performance", params={"window": "1"})
            assert err.value.status == 400 and "window" in err.value.message
        with pytest.raises(UsageError, match="window_days"):
            await api.performance(window_days=1)


async def test_performance_before_any_equity_is_refused_clearly(tmp_path: Path) -> None:
    class NoEquity:
        async def performance(self, *a):
            raise UsageError("performance: no equity recorded yet")

    with pytest.raises(CommandRefused, match="no equity"):
        await LocalPort(NoEquity()).performance()
