"""`radar optimize --apply ID --to SYMBOL` (issue 13): a spot research result applied to its
perpetual explicitly — the strategies.yaml override and the running engine's `apply_params`
both name the --to symbol; a --to outside assets.yaml or of another base asset is refused."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
import yaml

from core.cli.main import main
from core.config import load_config, strategy_params
from core.model.candles import Candles
from core.paths import DEFAULT_CONFIG_DIR
from tests.support.control_harness import CLOSED_AT, GatedRun, btc_candles
from tests.support.stored_results import ENVELOPE_BEST, insert_result

PERP = "BTC/USDT:USDT"


def _radar(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    dst = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, dst)            # assets: the perpetuals and DOGE/USDT spot
    return dst


def _overrides(cfg: Path) -> dict:
    return yaml.safe_load((cfg / "strategies.yaml").read_text())["strategies"]["envelope_dca"].get("overrides") or {}


def test_spot_result_without_to_names_the_perpetual_to_give(tmp_path: Path, cfg: Path) -> None:
    db = tmp_path / "radar.db"
    rid, _ = insert_result(db, symbol="BTC/USDT")
    before = (cfg / "strategies.yaml").read_text()
    code, _, err = _radar("--config-dir", str(cfg), "--db", str(db), "optimize", "--apply", str(rid))
    assert code == 2 and "BTC/USDT is not in" in err and f"--to {PERP}" in err
    assert (cfg / "strategies.yaml").read_text() == before


@pytest.mark.parametrize("to, words", [
    ("ETH/USDT:USDT", "a result of BTC/USDT (BTC) cannot be applied to another base asset (ETH)"),
    ("BTC/USDC:USDC", "--to BTC/USDC:USDC: not in"),
    ("2021-01-01", "--to 2021-01-01: not in"),
])
def test_to_outside_assets_or_of_another_base_is_refused(tmp_path: Path, cfg: Path, to: str, words: str) -> None:
    db = tmp_path / "radar.db"
    rid, _ = insert_result(db, symbol="BTC/USDT")
    before = (cfg / "strategies.yaml").read_text()
    code, _, err = _radar("--config-dir", str(cfg), "--db", str(db), "optimize", "--apply", str(rid), "--to", to)
    assert code == 2 and words in err, err
    assert (cfg / "strategies.yaml").read_text() == before and not list(cfg.glob("strategies.yaml.bak-*"))


def test_apply_to_the_perpetual_without_an_engine(tmp_path: Path, cfg: Path) -> None:
    db = tmp_path / "radar.db"
    rid, _ = insert_result(db, symbol="BTC/USDT")
    code, out, err = _radar("--config-dir", str(cfg), "--db", str(db), "optimize", "--apply", str(rid), "--to", PERP,
                            "--json")
    assert code == 0, err
    done = json.loads(out)
    assert done["symbol"] == PERP and done["params"] == ENVELOPE_BEST and done["engine"]["state"] == "none"
    assert _overrides(cfg) == {PERP: ENVELOPE_BEST}
    assert strategy_params(load_config(cfg), "envelope_dca", PERP).model_dump() == ENVELOPE_BEST


async def test_apply_to_reaches_the_engine_running_the_perpetual(tmp_path: Path, cfg: Path) -> None:
    spot = btc_candles(CLOSED_AT + 10)
    perp = Candles(PERP, "futures", "1h", spot.ts, spot.open, spot.high, spot.low, spot.close, spot.volume)
    db = tmp_path / "radar.db"
    rid, _ = insert_result(db, symbol="BTC/USDT")
    async with GatedRun(db, perp, start=CLOSED_AT + 1) as run:          # flat after the first cycle
        assert run.runner.symbol == PERP and run.runner.position()["qty"] == 0
        code, out, err = await asyncio.to_thread(
            _radar, "--config-dir", str(cfg), "--db", str(db), "optimize", "--apply", str(rid), "--to", PERP, "--json")
        assert code == 0, err
        done = json.loads(out)
        assert done["symbol"] == PERP and done["engine"]["state"] == "applied", done
        assert run.runner.strategy.params == ENVELOPE_BEST
        assert run.api.snapshot()["symbols"][PERP][0]["params"] == ENVELOPE_BEST
    assert _overrides(cfg) == {PERP: ENVELOPE_BEST}
