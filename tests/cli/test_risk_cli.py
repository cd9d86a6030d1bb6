"""`radar risk --json` on a real headless replay's final book (issue 14 acceptance): VaR/CVaR
(both methods, both levels), the worst case (equal to a hand computation from the book it
reports), the four scenarios and the exposure per correlation group."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config import load_config
from tests.engine.test_engine_replay import only_envelope_config, radar
from tests.support.shared_data import shared_file

def hand_worst_case(b: dict, maker: float, taker: float, p: float) -> float:
    """Every resting level filled at its price (unit / price units, maker fee), the stop
    S = A'·(1 − p) of the new average entry hit (taker fee): the loss from the cash now."""
    q, cost, fees = b["qty"], b["qty"] * (b["avg_entry"] or 0.0), 0.0
    for lv in b["resting"]:
        qty = b["unit"] / lv["price"]
        q += qty
        cost += qty * lv["price"]
        fees += qty * lv["price"] * maker
    if q == 0:
        return 0.0
    avg = cost / q
    stop = avg * (1 - p)
    return q * (avg - stop) + fees + q * stop * taker


def test_risk_json_on_a_replays_final_book(tmp_path: Path) -> None:
    btc = shared_file("binance-spot/BTC_USDT-1h.json.gz")
    eth = shared_file("binance-spot/ETH_USDT-1h.json.gz")
    cfg = only_envelope_config(tmp_path)
    db = tmp_path / "tmp.db"
    # 1-20 May 2021: both runners hold a position (and resting levels) at the last candle
    run = radar("--config-dir", str(cfg), "--db", str(db), "run", "--no-ui", "--status-interval", "0",
                "--replay", str(btc), "--replay", str(eth), "--from", "2021-05-01", "--to", "2021-05-20",
                "--speed", "max", timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = radar("--config-dir", str(cfg), "risk", "--json", "--db", str(db), timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    rep = json.loads(out.stdout)
    assert rep["source"] == "database"
    open_ = [b for b in rep["book"] if b["qty"] > 0]
    assert len(open_) == 2 and all(b["stop"] is not None and b["resting"] for b in open_)
    # VaR / CVaR: historical and Monte Carlo at 95 % and 99 %
    v = rep["var"]
    assert v["available"], v["reason"]
    got = {(f["method"], f["level"]) for f in v["figures"]}
    assert got == {("historical", 0.95), ("historical", 0.99), ("monte_carlo", 0.95), ("monte_carlo", 0.99)}
    for f in v["figures"]:
        assert f["cvar"] >= f["var"] - 1e-9 > 0
        assert f["var_fraction"] == pytest.approx(f["var"] / rep["equity"], rel=1e-12)
    # the worst case equals the hand computation, per runner and in total
    conf = load_config(cfg)                    # the run's fees (risk.yaml) and envelope_dca sl_percent
    fees, p = conf.risk.fees, conf.strategies["envelope_dca"].params.sl_percent
    by = {(c["symbol"]): c for c in rep["worst_case"]["runners"]}
    total = 0.0
    for b in rep["book"]:
        hand = hand_worst_case(b, fees.maker, fees.taker, p)
        assert by[b["symbol"]]["loss"] == pytest.approx(hand, rel=1e-9, abs=1e-9)
        total += hand
    assert rep["worst_case"]["total"] == pytest.approx(total, rel=1e-9)
    assert 0 < rep["worst_case"]["total"] < rep["equity"]
    # the four scenarios, each available, each a loss for this long book
    names = [s["name"] for s in rep["scenarios"]]
    assert names == ["covid_crash_2020", "may_2021_selloff", "luna_collapse_2022", "tariff_shock_2025"]
    for s in rep["scenarios"]:
        assert s["available"], s["reason"]
        assert s["worst_loss"] > 0 and len(s["runners"]) == 2
        # no scenario can lose more than every level filled and the stop hit
        assert s["worst_loss"] <= rep["worst_case"]["total_from_equity"] + 1e-6
    # exposure per correlation group: BTC and ETH are "majors" in assets.yaml
    assert [g["group"] for g in rep["groups"]] == ["majors"]
    assert rep["groups"][0]["gross_notional"] == pytest.approx(sum(abs(b["notional"]) for b in rep["book"]))

    text = radar("--config-dir", str(cfg), "--db", str(db), "risk", timeout=120)
    assert text.returncode == 0, text.stderr[-2000:]
    assert "Worst case" in text.stdout and "tariff_shock_2025" in text.stdout and "VaR" in text.stdout


def test_risk_without_a_database_says_so(tmp_path: Path) -> None:
    out = radar("risk", "--json", "--db", str(tmp_path / "none.db"), timeout=60)
    assert out.returncode == 1
    assert "no database at" in out.stderr
