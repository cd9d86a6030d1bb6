"""`radar optimize`: --json on a real slice, stored results listing, --apply into strategies.yaml."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from core.cli.main import main
from core.cli.optimize_cmd import resolve_series
from core.config import load_config, strategy_params
from core.errors import UsageError
from core.paths import DEFAULT_CONFIG_DIR
from tests.support.shared_data import shared_file

DATA = "binance-spot/BTC_USDT-1h.json.gz"
CRITERIA = {"oos_sharpe", "consistency", "oos_is_ratio", "dsr", "param_stability"}
PARAMS = {"ma_period", "num_levels", "envelope_start", "envelope_step", "sl_percent"}


def _ms(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp() * 1000)


def _radar(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _run(db: Path, config_dir: Path, data: Path, start: str, end: str) -> dict:
    code, out, err = _radar("--config-dir", str(config_dir), "--db", str(db), "optimize", "--strategy",
                            "envelope_dca", "--symbols", "BTC/USDT", "--timeframe", "1h", "--data", str(data),
                            "--from", start, "--to", end, "--is-days", "60", "--oos-days", "20", "--step-days", "20",
                            "--json")
    assert code == 0, err
    return json.loads(out)                      # stdout is exactly one JSON document


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two runs on real BTC/USDT 1h slices (the second one newer), in one database."""
    data = shared_file(DATA)
    root = tmp_path_factory.mktemp("optimize_cli")
    db = root / "radar.db"
    first = _run(db, DEFAULT_CONFIG_DIR, data, "2019-01-01", "2019-07-01")
    second = _run(db, DEFAULT_CONFIG_DIR, data, "2019-03-01", "2019-08-30")
    return {"db": db, "first": first, "second": second, "data": data}


@pytest.fixture
def config_with_btc(tmp_path: Path) -> Path:
    """The packaged config plus a BTC/USDT spot asset (overrides must name an asset)."""
    cfg = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, cfg)
    assets = cfg / "assets.yaml"
    assets.write_text(assets.read_text() + "  - symbol: BTC/USDT\n    market: spot\n    timeframes: [\"1h\"]\n")
    return cfg


def test_json_output_shape(runs: dict) -> None:
    out = runs["first"]
    assert out["strategy"] == "envelope_dca" and out["timeframe"] == "1h" and isinstance(out["job_id"], int)
    (r,) = out["results"]
    assert r["symbol"] == "BTC/USDT" and r["market"] == "spot" and r["complete"] is True
    assert r["grade"] in ("A", "B", "C", "D", "F") and 0.0 <= r["score"] <= 100.0
    assert set(r["criteria"]) == CRITERIA | {"stability_variance"}
    assert r["grading_profile"] == "roadmap" and r["selection"]["applied"]["params"] == r["best_params"]
    assert r["dsr_detail"]["windows_used"] >= 1 and r["dsr_detail"]["n_eff_mean"] >= 1
    assert 0.0 <= r["criteria"]["consistency"] <= 1.0 and 0.0 <= r["criteria"]["param_stability"] <= 1.0
    assert r["dsr"] == r["criteria"]["dsr"] and 0.0 <= r["dsr"] <= 1.0
    assert set(r["best_params"]) == PARAMS
    assert r["windows"] == (181 - 80) // 20 + 1          # 2019-01-01 .. 2019-07-01: 181 days
    assert r["combos_evaluated"] == 324                  # the packaged 324-combo grid, all tested
    assert r["evaluations"] > r["windows"] * r["combos_evaluated"]
    assert 0.0 <= r["pbo"] <= 1.0
    assert r["p_value"] is None or 0.0 < r["p_value"] <= 1.0
    assert r["data_first_ts"] == _ms("2019-01-01") and r["data_last_ts"] < _ms("2019-07-01")
    assert isinstance(r["result_id"], int)


def test_results_listing_marks_only_the_newest_run_latest(runs: dict) -> None:
    db = str(runs["db"])
    code, out, _ = _radar("--db", db, "optimize", "results", "--json")
    assert code == 0
    rows = json.loads(out)["results"]
    ids = [runs["second"]["results"][0]["result_id"], runs["first"]["results"][0]["result_id"]]
    assert [r["id"] for r in rows] == ids                 # newest first
    assert [r["is_latest"] for r in rows] == [True, False]
    assert rows[0]["grade"] == runs["second"]["results"][0]["grade"]
    assert rows[0]["best_params"] == runs["second"]["results"][0]["best_params"]
    assert set(rows[0]["criteria"]) == CRITERIA and rows[0]["git_rev"]
    code, out, _ = _radar("--db", db, "optimize", "results", "--latest", "--json")
    assert [r["id"] for r in json.loads(out)["results"]] == ids[:1]
    code, out, _ = _radar("--db", db, "optimize", "results", "--strategy", "envelope_dca_short", "--json")
    assert json.loads(out)["results"] == []
    code, out, _ = _radar("--db", db, "optimize", "results")
    assert code == 0 and "BTC/USDT" in out and f"{ids[0]}*" in out


def _copy_db(runs: dict, tmp_path: Path) -> Path:
    db = tmp_path / "radar.db"
    src = sqlite3.connect(runs["db"])
    dst = sqlite3.connect(db)
    src.backup(dst)
    src.close()
    dst.close()
    return db


def test_apply_refuses_a_low_grade_then_forces_with_a_backup(runs: dict, tmp_path: Path,
                                                             config_with_btc: Path) -> None:
    db = _copy_db(runs, tmp_path)
    rid = runs["second"]["results"][0]["result_id"]
    best = runs["second"]["results"][0]["best_params"]
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE optimization_results SET grade = 'D' WHERE id = ?", (rid,))
    before = (config_with_btc / "strategies.yaml").read_text()

    code, _, err = _radar("--config-dir", str(config_with_btc), "--db", str(db), "optimize", "--apply", str(rid))
    assert code == 2 and "graded D, below the minimum C" in err and "--force" in err
    assert (config_with_btc / "strategies.yaml").read_text() == before
    assert not list(config_with_btc.glob("strategies.yaml.bak-*"))

    code, out, err = _radar("--config-dir", str(config_with_btc), "--db", str(db), "optimize", "--apply", str(rid),
                            "--min-grade", "D", "--json")
    assert code == 0, err
    done = json.loads(out)
    (backup,) = config_with_btc.glob("strategies.yaml.bak-*")
    assert Path(done["backup"]) == backup and backup.read_text() == before
    after = (config_with_btc / "strategies.yaml").read_text()
    assert after.startswith("# Strategies: names are fixed") and done["comments_kept"] is True
    cfg = load_config(config_with_btc)
    assert strategy_params(cfg, "envelope_dca", "BTC/USDT").model_dump() == best
    assert strategy_params(cfg, "envelope_dca", "DOGE/USDT").model_dump()["ma_period"] == 7   # others untouched
    assert yaml.safe_load(after)["strategies"]["envelope_dca"]["overrides"] == {"BTC/USDT": best}

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE optimization_results SET grade = 'F' WHERE id = ?", (rid,))
    code, _, err = _radar("--config-dir", str(config_with_btc), "--db", str(db), "optimize", "--apply", str(rid),
                          "--force")
    assert code == 0, err
    assert len(list(config_with_btc.glob("strategies.yaml.bak-*"))) == 2


def test_apply_refuses_a_symbol_outside_assets_and_unknown_ids(runs: dict, tmp_path: Path) -> None:
    db = _copy_db(runs, tmp_path)
    cfg = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, cfg)
    rid = runs["first"]["results"][0]["result_id"]
    code, _, err = _radar("--config-dir", str(cfg), "--db", str(db), "optimize", "--apply", str(rid), "--force")
    assert code == 2 and "BTC/USDT is not in" in err and "assets.yaml" in err
    code, _, err = _radar("--config-dir", str(cfg), "--db", str(db), "optimize", "--apply", "999", "--force")
    assert code == 2 and "no optimization result with id 999" in err


def test_run_errors_are_named(tmp_path: Path) -> None:
    db = str(tmp_path / "radar.db")
    code, _, err = _radar("--db", db, "optimize", "--strategy", "nope", "--symbols", "BTC/USDT",
                          "--timeframe", "1h")
    assert code == 2 and "supports envelope_dca, envelope_dca_short" in err
    code, _, err = _radar("--db", db, "optimize", "--strategy", "envelope_dca", "--timeframe", "1h")
    assert code == 2 and "give --symbols and --timeframe" in err
    code, _, err = _radar("--db", db, "optimize", "--strategy", "envelope_dca", "--symbols", "BTC/USDT",
                          "--timeframe", "1h", "--is-days", "0")
    assert code == 2 and "is_days must be an integer >= 1" in err


def test_resolve_series_matches_files_to_symbols(tmp_path: Path) -> None:
    btc = tmp_path / "BTC_USDT-1h.json.gz"
    eth = tmp_path / "ETH_USDT-1h.json.gz"
    eth4 = tmp_path / "ETH_USDT-4h.json.gz"
    for p in (btc, eth, eth4):
        p.write_bytes(b"")
    tf, series = resolve_series(["ETH/USDT", "BTC/USDT"], None, None, [btc, eth])
    assert tf == "1h" and [(s["symbol"], Path(s["file"]).name) for s in series] == [
        ("ETH/USDT", eth.name), ("BTC/USDT", btc.name)]
    assert resolve_series([], None, None, [btc])[1][0]["symbol"] == "BTC/USDT"
    with pytest.raises(UsageError, match="no --data file for SOL/USDT"):
        resolve_series(["SOL/USDT", "BTC/USDT"], None, None, [btc, eth])
    with pytest.raises(UsageError, match="several timeframes"):
        resolve_series([], None, None, [btc, eth4])
    with pytest.raises(UsageError, match="--timeframe 15m: the data holds 1h candles, which cannot be resampled"):
        resolve_series(["BTC/USDT"], "15m", None, [btc])          # 4h would be resampled (issue 13)
    tf, series = resolve_series(["BTC/USDT", "ETH/USDT"], "1h", None, [])
    assert series == [{"symbol": "BTC/USDT", "market": "spot", "file": None},
                      {"symbol": "ETH/USDT", "market": "spot", "file": None}]
