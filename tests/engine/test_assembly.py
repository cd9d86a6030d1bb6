"""`core.engine.assembly` (issue 12, part 1): the one place that builds an Engine from the config,
called by `radar run`, the tests and the benchmarks; one `account_from_config`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.config import load_config
from core.engine.assembly import (
    RunOptions,
    account_from_config,
    build_engine,
    fresh_db_path,
    parse_speed,
    parse_utc_date,
    plan_engine,
)
from core.errors import UsageError
from core.model.account import Account
from core.paths import DEFAULT_CONFIG_DIR
from tests.alerts.test_alerts_live_engine import write_slice

PROJECT = Path(__file__).resolve().parents[2]


def test_account_from_config_is_risk_yaml_and_splits_the_capital() -> None:
    cfg = load_config(DEFAULT_CONFIG_DIR)
    r = cfg.risk
    assert account_from_config(cfg) == Account(float(r.account.initial_capital), float(r.account.leverage),
                                               float(r.fees.maker), float(r.fees.taker))
    assert account_from_config(cfg, share=4).initial_capital == float(r.account.initial_capital) / 4
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="share must be an integer >= 1"):
            account_from_config(cfg, share=bad)


def test_a_replay_engine_is_built_like_the_backtest(tmp_path: Path) -> None:
    cfg = load_config(DEFAULT_CONFIG_DIR)
    data = write_slice(tmp_path, 0, 100)
    eng = build_engine(cfg, RunOptions(db=tmp_path / "r.db", replay=(data,), speed=7200.0, status_interval=0))
    assert eng.account == account_from_config(cfg)              # every runner holds the whole capital
    assert eng.risk_config is None and eng.sizing_reserve == 0.0 and eng.mode == "paper"
    assert [(s.strategy, s.symbol, s.timeframe) for s in eng.specs] == [
        (n, "BTC/USDT", "1h") for n in cfg.enabled_strategies()]
    assert [s.speed for s in eng.sources] == [7200.0]
    assert eng.health is cfg.health
    assert not (tmp_path / "r.db").exists()                     # nothing written before the run
    on = build_engine(cfg, RunOptions(db=tmp_path / "r.db", replay=(data,), risk="on"))
    assert on.risk_config is cfg.risk and on.risk_groups


def test_the_live_feed_splits_the_capital_over_the_runners(tmp_path: Path) -> None:
    pytest.importorskip("ccxt.pro")
    cfg = load_config(DEFAULT_CONFIG_DIR)
    plan = plan_engine(cfg, RunOptions(db=tmp_path / "p.db"))
    n = len(plan.specs)
    assert n == len(cfg.assets) * len(cfg.enabled_strategies())
    assert plan.account == account_from_config(cfg, share=n)
    assert plan.risk_on and plan.sizing_reserve > 0 and not plan.replay


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"adopt_history": True}, "--adopt-history"),
    ({"live": True, "replay": (Path("x.json.gz"),)}, "cannot be combined with --replay"),
    ({"fresh": True}, "--fresh starts a replay over"),
    ({"start_ms": 0}, "--from/--to limit the replayed candles"),
    ({"replay": (Path("x.json.gz"),), "start_ms": 86_400_000, "end_ms": 0}, "must be after --from"),
    ({"risk": "maybe"}, "--risk 'maybe'"),
    ({"speed": 0}, "--speed 0"),
])
def test_options_that_do_not_go_together_are_refused(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        RunOptions(db=tmp_path / "x.db", **kwargs)


def test_parsers_name_the_flag() -> None:
    assert parse_utc_date("2021-03-01", "--from") == 1_614_556_800_000
    with pytest.raises(UsageError, match=r"--to '2021-02-30': no such day"):
        parse_utc_date("2021-02-30", "--to")
    with pytest.raises(UsageError, match=r"--from '2021-3-1': expected a date YYYY-MM-DD"):
        parse_utc_date("2021-3-1", "--from")
    assert parse_speed("max") == "max" and parse_speed("3600") == 3600.0
    for bad in ("0", "-1", "fast", "nan", "inf"):
        with pytest.raises(UsageError, match="--speed"):
            parse_speed(bad)


def test_fresh_database_is_named_for_the_run_and_never_reused(tmp_path: Path) -> None:
    db = tmp_path / "radar.db"
    at = 1_714_564_800_000                                     # 2024-05-01 12:00:00 UTC
    first = fresh_db_path(db, at)
    assert first == tmp_path / "radar-replay-20240501T120000Z.db"
    first.write_bytes(b"")
    assert fresh_db_path(db, at) == tmp_path / "radar-replay-20240501T120000Z-2.db"


def test_the_cli_only_parses_and_prints_and_core_never_imports_the_console() -> None:
    run_cmd = (PROJECT / "core" / "cli" / "run_cmd.py").read_text()
    for assembled in ("Engine(", "Account(", "RunnerSpec(", "CandleSource(", "LiveSetup("):
        assert assembled not in run_cmd, assembled
    offenders = [str(p.relative_to(PROJECT)) for p in (PROJECT / "core").rglob("*.py")
                 if re.search(r"^\s*(from tui\b|import tui\b)", p.read_text(), re.M)]
    assert offenders == []
