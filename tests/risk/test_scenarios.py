"""Stress scenarios (`core.risk.scenarios`) and their config (`core.config.scenarios`): a hand
walk on synthetic candles, the four built-in scenarios on real data (a symbol without data
uses the proxy), and clear errors on bad entries."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from core.config.scenarios import BUILTIN_SCENARIOS, ScenarioConfig, load_scenarios
from core.errors import ConfigError
from core.risk.book import Book, RestingLevel, RunnerBook
from core.risk.scenarios import run_scenario, walk
from core.risk.worst_case import worst_case
from tests.support.shared_data import shared_candles_dir

PARAMS = {"ma_period": 7, "num_levels": 3, "envelope_start": 0.05, "envelope_step": 0.03, "sl_percent": 0.20}
MAKER, TAKER = 0.0002, 0.0006


def long_book(last: float = 100.0, levels=((1, 95.0), (2, 92.0))) -> RunnerBook:
    return RunnerBook("envelope_dca", "BTC/USDT", "1h", "grid", "long", PARAMS, last, 10_000.0, 10.0, 100.0, 80.0,
                      1, 3, 1000.0, tuple(RestingLevel(i, p, 1000.0 / p) for i, p in levels), MAKER, TAKER)


def rows(*ohlc: tuple[float, float, float, float]) -> np.ndarray:
    return np.array([[i * 3_600_000, o, h, lo, c, 1.0] for i, (o, h, lo, c) in enumerate(ohlc)])


def test_a_crash_fills_every_level_then_stops_out_like_the_worst_case() -> None:
    r = long_book()
    _, worst, last, filled, stopped = walk(r, rows((100, 101, 94, 96), (96, 97, 60, 61), (61, 70, 60, 69)))
    assert filled == 2 and stopped
    assert last == pytest.approx(worst_case(r).loss_from_equity, abs=1e-9)     # same fills, same stop
    assert max(worst) == pytest.approx(last, abs=1e-9)


def test_a_dip_fills_one_level_and_is_held_to_the_end() -> None:
    r = long_book()
    _, worst, last, filled, stopped = walk(r, rows((100, 101, 94, 96), (96, 99, 95.5, 98)))
    assert filled == 1 and not stopped
    q = 10.0 + 1000.0 / 95.0
    fee = 1000.0 * MAKER
    assert last == pytest.approx(-(q * 98.0 - 2000.0) + fee, abs=1e-9)          # equity now is 10,000 (last = avg)
    assert max(worst) == pytest.approx(-(q * 94.0 - 2000.0) + fee, abs=1e-9)     # at the first candle's low


def test_a_gap_below_a_level_fills_at_the_open_for_more_units() -> None:
    r = long_book(levels=((1, 95.0),))
    _, _, last, filled, stopped = walk(r, rows((90, 91, 89, 90),))
    q = 10.0 + 1000.0 / 90.0                                                    # unit / the open
    assert filled == 1 and not stopped
    assert last == pytest.approx(-(q * 90.0 - 2000.0) + 1000.0 * MAKER, abs=1e-9)


def _write(path: Path, data: list[list[float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        json.dump(data, f)


def test_missing_symbol_uses_the_proxy_and_missing_proxy_says_why(tmp_path: Path) -> None:
    sc = ScenarioConfig.model_validate({"name": "x", "from": "2020-01-01", "to": "2020-01-02",
                                        "source": "s/{base}_USDT-1h.json.gz", "proxy": "BTC"})
    t0 = sc.start_ms
    _write(tmp_path / "s" / "BTC_USDT-1h.json.gz", [[t0, 10, 10, 5, 5, 1], [t0 + 3_600_000, 5, 6, 5, 6, 1]])
    book = Book((long_book(),), "engine")
    res = run_scenario(book, sc, tmp_path)
    assert res.available and res.runners[0].path_base == "BTC" and not res.runners[0].proxy_used
    sol = Book((RunnerBook(**{**long_book().__dict__, "symbol": "SOL/USDT"}),), "engine")
    res = run_scenario(sol, sc, tmp_path)
    assert res.runners[0].proxy_used and res.runners[0].move == pytest.approx(-0.4, abs=1e-12)
    gone = run_scenario(sol, sc.model_copy(update={"proxy": "XRP"}), tmp_path)
    assert not gone.available and "SOL" in gone.reason and "XRP" in gone.reason


def test_the_four_builtin_scenarios_on_real_data() -> None:
    data = shared_candles_dir()
    book = Book((long_book(),
                 RunnerBook("envelope_dca", "SOL/USDT:USDT", "1h", "grid", "long", PARAMS, 150.0, 10_000.0, 0.0,
                            None, None, 0, 3, 3000.0, (RestingLevel(0, 140.0, 3000.0 / 140.0),), MAKER, TAKER)),
                "engine")
    results = [run_scenario(book, sc, data) for sc in BUILTIN_SCENARIOS]
    assert [r.name for r in results] == ["covid_crash_2020", "may_2021_selloff", "luna_collapse_2022",
                                         "tariff_shock_2025"]
    assert all(r.available for r in results), [r.reason for r in results]
    covid = results[0]
    assert covid.runners[1].proxy_used                       # SOL has no spot data before Aug 2020: BTC's path
    assert covid.runners[0].move < -0.3                      # BTC fell over 30 % that week
    for r in results:
        assert r.worst_loss >= r.loss - 1e-9
        assert r.loss_fraction == pytest.approx(r.loss / book.equity, rel=1e-12)
        assert r.worst_loss > 0                              # every one of them hurt a long book
    assert not results[3].runners[1].proxy_used              # futures 5m data of SOL in April 2025


def test_config_file_errors_name_the_file_and_key(tmp_path: Path) -> None:
    assert len(load_scenarios(tmp_path).scenarios) == 4      # no file: the built-ins
    (tmp_path / "scenarios.yaml").write_text(
        "alert: {var_limit: 0.05}\nscenarios:\n  - name: mine\n    from: 2022-06-10\n    to: 2022-06-20\n"
        "    source: binance-spot/{base}_USDT-1h.json.gz\n")
    cfg = load_scenarios(tmp_path)
    assert cfg.alert.var_limit == 0.05 and [s.name for s in cfg.scenarios] == ["mine"]
    for body, where in (("scenarios:\n  - name: Bad Name\n    from: '2020-01-01'\n    to: '2020-01-02'\n"
                         "    source: a/{base}.json\n", "scenarios.0.name"),
                        ("scenarios:\n  - name: a\n    from: '2020-01-01'\n    to: '2020-01-02'\n"
                         "    source: a/BTC.json\n", "scenarios.0.source"),
                        ("scenarios:\n  - name: a\n    from: 'yesterday'\n    to: '2020-01-02'\n"
                         "    source: a/{base}.json\n", "scenarios.0.from"),
                        ("alert: {var_limit: 2}\n", "alert.var_limit"),
                        ("scenarios:\n  - name: a\n    from: '2020-01-01'\n    to: '2020-01-02'\n"
                         "    source: a/{base}.json\n    colour: red\n", "colour")):
        (tmp_path / "scenarios.yaml").write_text(body)
        with pytest.raises(ConfigError) as err:
            load_scenarios(tmp_path)
        assert "scenarios.yaml" in str(err.value) and where in str(err.value), str(err.value)
