"""Applying a result from the console's results view (issue 13): `a`, confirmed (the question
names the strategy, the symbol, the params and the grade), writes strategies.yaml as `radar
optimize --apply` does and sends `apply_params` through the app's port to a REAL engine
(`GatedRun`: an engine with its API server; the in-process port `LocalPort`)."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest
import yaml
from textual.app import App

from core.api.local_port import LocalPort
from core.model.candles import Candles
from core.paths import DEFAULT_CONFIG_DIR
from tests.support.control_harness import CLOSED_AT, IN_POSITION_AT, GatedRun, btc_candles
from tests.support.stored_results import ENVELOPE_BEST, insert_result
from tui.screens.jobs import ResultsScreen
from tui.widgets.job_form import ConfirmModal

PERP = "BTC/USDT:USDT"


class Host(App):
    """The app's port on the run's engine, audited like the console's (`commands`)."""

    def __init__(self, run: GatedRun, screen: ResultsScreen, readonly: bool = False) -> None:
        super().__init__()
        server = run.services.api
        self.api = LocalPort(server.api, commands=server.run_command)
        self.readonly = readonly
        self.actor = "console:tester"
        self._screen = screen

    def on_mount(self) -> None:
        self.push_screen(self._screen)


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    dst = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, dst)
    return dst


def perp_candles(n: int) -> Candles:
    c = btc_candles(n)
    return Candles(PERP, "futures", "1h", c.ts, c.open, c.high, c.low, c.close, c.volume)


def _overrides(cfg: Path, strategy: str = "envelope_dca") -> dict:
    return yaml.safe_load((cfg / "strategies.yaml").read_text())["strategies"][strategy].get("overrides") or {}


async def _until(pilot, cond, timeout: float = 30.0) -> None:
    t = time.monotonic()
    while not cond():
        assert time.monotonic() - t < timeout, "timed out"
        await pilot.pause(0.02)


async def _open(pilot, screen: ResultsScreen) -> None:
    await _until(pilot, lambda: bool(screen.results))


async def _apply(pilot, screen: ResultsScreen, answer: str = "y") -> str:
    await pilot.press("a")
    await _until(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal) or screen.apply_outcome)
    question = pilot.app.screen.question if isinstance(pilot.app.screen, ConfirmModal) else ""
    if question:
        await pilot.press(answer)
        await _until(pilot, lambda: bool(screen.apply_outcome))
    return question


async def test_apply_while_flat_applies_now_to_the_perpetual(tmp_path: Path, cfg: Path) -> None:
    db = tmp_path / "radar.db"
    rid, job = insert_result(db, symbol="BTC/USDT", grade="B")          # a spot research result
    async with GatedRun(db, perp_candles(CLOSED_AT + 10), start=CLOSED_AT + 1) as run:
        assert run.runner.position()["qty"] == 0
        screen = ResultsScreen(None, job, config_dir=cfg)
        async with Host(run, screen).run_test(size=(140, 50)) as pilot:
            await _open(pilot, screen)
            question = await _apply(pilot, screen)
            for words in ("envelope_dca", PERP, "a BTC/USDT result, to its perpetual", "ma_period=9",
                          "envelope_start=0.07", "GRADE B", f"Result {rid}"):
                assert words in question, (words, question)
            assert "engine: applied now" in screen.apply_outcome, screen.apply_outcome
        assert run.runner.strategy.params == ENVELOPE_BEST
        assert run.api.snapshot()["symbols"][PERP][0]["params"] == ENVELOPE_BEST
    assert _overrides(cfg) == {PERP: ENVELOPE_BEST}
    assert len(list(cfg.glob("strategies.yaml.bak-*"))) == 1


async def test_apply_in_position_is_pending_until_flat(tmp_path: Path, cfg: Path) -> None:
    db = tmp_path / "radar.db"
    _, job = insert_result(db, symbol=PERP, market="futures", grade="A")
    async with GatedRun(db, perp_candles(CLOSED_AT + 10), start=IN_POSITION_AT) as run:
        await run.release(1)
        assert run.runner.position()["qty"] > 0
        before = dict(run.runner.strategy.params)
        screen = ResultsScreen(None, job, config_dir=cfg)
        async with Host(run, screen).run_test(size=(140, 50)) as pilot:
            await _open(pilot, screen)
            question = await _apply(pilot, screen)
            assert f"envelope_dca on {PERP}:" in question and "GRADE A" in question
            assert "engine: pending until flat" in screen.apply_outcome, screen.apply_outcome
        assert run.runner.strategy.params == before and run.runner.pending_params == ENVELOPE_BEST
        await run.release(1)                                    # the cycle closes: applied
        assert run.runner.strategy.params == ENVELOPE_BEST
    assert _overrides(cfg) == {PERP: ENVELOPE_BEST}


async def test_engine_refusal_is_reported(tmp_path: Path, cfg: Path) -> None:
    """A single-position runner refuses runtime params: the file is written, the refusal said."""
    db = tmp_path / "radar.db"
    best = {"bb_period": 30, "bb_std": 2.5, "sl_percent": 0.04}
    _, job = insert_result(db, strategy="bollinger_mr", symbol=PERP, market="futures", best_params=best)
    async with GatedRun(db, perp_candles(CLOSED_AT + 10), start=CLOSED_AT + 1, strategy="bollinger_mr") as run:
        screen = ResultsScreen(None, job, config_dir=cfg)
        async with Host(run, screen).run_test(size=(140, 50)) as pilot:
            await _open(pilot, screen)
            await _apply(pilot, screen)
            assert "the engine REFUSED the params" in screen.apply_outcome and "bad_params" in screen.apply_outcome
        assert run.runner.strategy.params["bb_period"] != 30
    assert _overrides(cfg, "bollinger_mr") == {PERP: best}


async def test_readonly_low_grade_and_declined_change_nothing(tmp_path: Path, cfg: Path) -> None:
    db = tmp_path / "radar.db"
    _, good = insert_result(db, symbol=PERP, market="futures", grade="B")
    _, low = insert_result(db, symbol=PERP, market="futures", grade="D")
    before = (cfg / "strategies.yaml").read_text()
    async with GatedRun(db, perp_candles(CLOSED_AT + 10), start=CLOSED_AT + 1) as run:
        params = dict(run.runner.strategy.params)
        screen = ResultsScreen(None, good, config_dir=cfg)
        async with Host(run, screen, readonly=True).run_test(size=(140, 50)) as pilot:
            await _open(pilot, screen)
            assert await _apply(pilot, screen) == ""
            assert screen.apply_outcome == "read-only console: apply-result is disabled"
        screen = ResultsScreen(None, good, config_dir=cfg)
        async with Host(run, screen).run_test(size=(140, 50)) as pilot:
            await _open(pilot, screen)
            assert await _apply(pilot, screen, answer="n")
            assert screen.apply_outcome == "apply-result: cancelled, nothing done"
        screen = ResultsScreen(None, low, config_dir=cfg)
        async with Host(run, screen).run_test(size=(140, 50)) as pilot:
            await _open(pilot, screen)
            assert "GRADE D" in await _apply(pilot, screen)
            assert "not applied" in screen.apply_outcome and "graded D, below the minimum C" in screen.apply_outcome
        assert run.runner.strategy.params == params
    assert (cfg / "strategies.yaml").read_text() == before and not list(cfg.glob("strategies.yaml.bak-*"))
    await asyncio.sleep(0)
