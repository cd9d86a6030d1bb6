"""`radar optimize` campaign flags: several strategies, --workers, --ray (fail closed), ranking output."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from core.cli.main import main
from core.optimize.results_store import list_results
from core.storage.db import open_sync
from tests.support.shared_data import shared_file

BASES = ("BTC", "ETH")
SHORT = ["--from", "2021-01-01", "--to", "2021-02-20", "--is-days", "20", "--oos-days", "10", "--step-days", "10",
         "--max-points", "12"]


def _radar(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _campaign_args(db: Path, *extra: str) -> list[str]:
    args = ["--db", str(db), "optimize", "--strategy", "envelope_dca,envelope_dca_short",
            "--symbols", ",".join(f"{b}/USDT" for b in BASES), "--timeframe", "1h", *SHORT, *extra]
    for b in BASES:
        args += ["--data", str(shared_file(f"binance-spot/{b}_USDT-1h.json.gz"))]
    return args


def test_campaign_json_ranks_every_run_and_stores_them(tmp_path):
    db = tmp_path / "radar.db"
    code, out, err = _radar(*_campaign_args(db, "--workers", "2", "--json"))
    assert code == 0, err
    rep = json.loads(out)
    assert rep["campaign"]["runs"] == 4 and rep["campaign"]["backend"] == "local"
    ranked = rep["ranking"]
    assert {(r["strategy"], r["symbol"]) for r in ranked} == {(s, f"{b}/USDT") for s in
                                                              ("envelope_dca", "envelope_dca_short") for b in BASES}
    assert [r["rank"] for r in ranked] == [1, 2, 3, 4]
    assert all(set(r["criteria"]) >= {"oos_sharpe", "consistency", "oos_is_ratio", "dsr", "param_stability"}
               for r in ranked)
    conn = open_sync(db)
    try:
        rows = list_results(conn)
    finally:
        conn.close()
    assert sorted(r.id for r in rows) == sorted(r["result_id"] for r in ranked)
    assert all(r.job_id == rep["job_id"] for r in rows)


def test_campaign_text_prints_the_ranking(tmp_path):
    code, out, err = _radar(*_campaign_args(tmp_path / "radar.db", "--workers", "1"))
    assert code == 0, err
    assert "Campaign (job 1)" in out and "rank" in out and "envelope_dca_short" in out


@pytest.mark.parametrize("extra, msg", [
    (["--workers", "0"], "--workers 0"),
    (["--workers", "2", "--ray", "auto"], "give one of --workers, --ray"),
    (["--apply-best"], "--apply-best"),
])
def test_campaign_usage_errors_exit_2(tmp_path, extra, msg):
    code, _out, err = _radar(*_campaign_args(tmp_path / "radar.db", *extra))
    assert code == 2 and msg in err


def test_unreachable_ray_exits_1_naming_the_address_and_stores_nothing(tmp_path):
    pytest.importorskip("ray")
    db = tmp_path / "radar.db"
    code, _out, err = _radar(*_campaign_args(db, "--ray", "127.0.0.1:1", "--json"))
    assert code == 1
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in err and "nothing was run" in err
    conn = open_sync(db)
    try:
        assert list_results(conn) == []
    finally:
        conn.close()


def test_ray_auto_starts_its_own_ray_and_matches_the_local_pool(tmp_path):
    """--ray auto with no Ray running: the command starts a local Ray (and shuts it down); same ranking."""
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    code, out_l, err = _radar(*_campaign_args(tmp_path / "l.db", "--workers", "2", "--json"))
    assert code == 0, err
    code, out_r, err = _radar(*_campaign_args(tmp_path / "r.db", "--ray", "auto", "--json"))
    assert code == 0, err
    assert not ray.is_initialized()
    loc, ray_rep = json.loads(out_l), json.loads(out_r)
    assert ray_rep["campaign"]["backend"] == "ray" and "CPUs" in ray_rep["campaign"]["where"]
    strip = ("result_id", "task_seconds", "job_id")
    assert [{k: v for k, v in r.items() if k not in strip} for r in ray_rep["ranking"]] == \
           [{k: v for k, v in r.items() if k not in strip} for r in loc["ranking"]]
