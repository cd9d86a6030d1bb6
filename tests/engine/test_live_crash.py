"""Crash test of the LIVE engine: a live engine process (tests/support/live_crash_worker.py) trading the
Bitget stand-in (served by this test process) is killed with SIGKILL at random moments and
restarted on the same database each time. At the end: the store agrees with the exchange (no
client id sent twice, no order the store does not know, the same position, the ledger's cash =
the balance), the stand-in never saw a candle start with a position lacking its stop, and the
result equals an uninterrupted run's."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
from pathlib import Path

from core.executor.client_ids import parse_client_id
from tests.engine.test_live_engine import assert_consistent, sent_client_ids
from tests.support.bitget_private_stub import BitgetPrivateStub
from tests.support.live_harness import PREFIX, STUB_SYM, futures_candles
from tests.support.shared_data import shared_file

PROJECT = Path(__file__).resolve().parents[2]
N = 600
KILLS = 10


async def _worker(url: str, db: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.support.live_crash_worker", url, str(db),
                                                str(N), cwd=PROJECT, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)


async def _run_to_end(url: str, db: Path) -> dict:
    p = await _worker(url, db)
    out, _ = await asyncio.wait_for(p.communicate(), 300)
    assert p.returncode == 0, p.returncode
    return json.loads(out.decode().strip().splitlines()[-1])


async def _uninterrupted(tmp_path: Path, mark: float) -> tuple[dict, float]:
    async with BitgetPrivateStub(mark=mark) as stub:
        res = await _run_to_end(stub.base_url, tmp_path / "ref.db")
        assert stub.unprotected == []
        return res, stub.balance


async def test_live_engine_killed_at_random_moments(tmp_path: Path) -> None:
    candles = futures_candles(shared_file("binance-spot/BTC_USDT-1h.json.gz"), N)
    mark = float(candles.open[0])
    ref, ref_balance = await _uninterrupted(tmp_path, mark)
    assert ref["finished"] and ref["cycles"] >= 3
    rng = random.Random(20261123)
    db = tmp_path / "crash.db"
    async with BitgetPrivateStub(mark=mark) as stub:
        kills = 0
        while kills < KILLS:
            p = await _worker(stub.base_url, db)
            await asyncio.sleep(rng.uniform(1.0, 3.0))           # start-up ~1 s, then trading
            if p.returncode is not None:
                break                                            # reached the end before the kill
            p.send_signal(signal.SIGKILL)
            await p.wait()
            kills += 1
        res = await _run_to_end(stub.base_url, db)
        assert kills >= 5, "the run ended before enough kills: make N larger"
        assert res["finished"]
        assert stub.unprotected == []
        assert_consistent(stub, db)
        sent = sent_client_ids(stub)
        accepted = [o.client_oid for o in stub.orders.values() if parse_client_id(o.client_oid, PREFIX)]
        assert len(accepted) == len(set(accepted)) and set(accepted) <= set(sent)
        # the same trading as without the crashes
        assert res["cycles"] == ref["cycles"]
        assert abs(res["cash"] - ref["cash"]) < 0.01 and abs(stub.balance - ref_balance) < 0.01
        assert abs(stub.position(STUB_SYM).qty) == res["qty"] or abs(abs(stub.position(STUB_SYM).qty) - res["qty"]) < 1e-9
