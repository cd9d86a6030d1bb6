"""Benchmark of the console under load: RadarApp headless (App.run_test) over a real engine
replaying the five 1h series while a walk-forward job runs.

    .venv/bin/python benchmarks/bench_console.py [--rate 1000] [--seconds 30] [--size 160x48]
                                                 [--profile OUT.prof]

* Engine: the packaged config's enabled grid strategies on BTC, ETH, SOL, DOGE and LINK
  USDT 1h (`core.engine.assembly.build_engine`, as `radar run`), paper, persistence on (a fresh database), paced
  at `--rate` candles/s in all (each series at rate/5 candles/s: --speed rate/5*3600).
* Jobs: a JobManager on its own database with one "optimize" (walk-forward) job on BTC 1h
  (is 180 d, oos 60 d, step 60 d) submitted at the start; it runs in its worker process
  (JobManager process mode: its CPU and memory are not in the console process).
* Console: RadarApp(EngineAPI(engine), jobs=manager) in `run_test(size=...)`, on the Scanner,
  switching screens every 2 s (1 2 3 5 6 1 ...) as an operator would.
* Measured: first_frame_s (from creating the app to its first repaint done, engine already
  started), loop lag (a task sleeping 10 ms; lag = how late it wakes; p99 and max over the
  run after the first frame), rss_mb (peak RSS of this process, getrusage), candles_per_s (engine
  candles / seconds of the run), the job's progress at the end.
Prints human lines, then exactly one JSON line: {"first_frame_s", "loop_lag_p99_ms",
"loop_lag_max_ms", "rss_mb", "candles_per_s", ...}. Targets: first frame < 1.5 s, p99 < 25 ms,
RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA_DIR = ROOT.parent / "shared" / "data" / "candles" / "binance-spot"
SYMBOLS = ("BTC", "ETH", "SOL", "DOGE", "LINK")
KEYS = ("2", "3", "5", "6", "1")


def build_engine(workdir: Path, rate: float):
    """The engine `radar run --replay ... --speed S` would build (`core.engine.assembly.build_engine`:
    the packaged config's enabled grid strategies on the five series, the whole capital per
    runner, risk off as on every replay), on a fresh database in `workdir`, no status lines."""
    from core.config import load_config
    from core.engine.assembly import RunOptions
    from core.engine.assembly import build_engine as assemble
    from core.paths import DEFAULT_CONFIG_DIR

    speed = rate / len(SYMBOLS) * 3600.0
    options = RunOptions(db=workdir / "engine.db", replay=tuple(DATA_DIR / f"{s}_USDT-1h.json.gz" for s in SYMBOLS),
                         speed=speed, status_interval=0, grid_only=True)
    return assemble(load_config(DEFAULT_CONFIG_DIR), options)


async def bench(args, workdir: Path) -> dict:
    from core.engine.api import EngineAPI
    from core.jobs import JobManager
    from core.jobs.optimize_job import optimize_params
    from tui.app import RadarApp

    w, h = (int(x) for x in args.size.lower().split("x"))
    engine = build_engine(workdir, args.rate)
    jobs = JobManager(workdir / "jobs.db")
    await jobs.start()
    job_id = None if args.no_job else jobs.submit("optimize", optimize_params(
        "envelope_dca", "1h", [{"symbol": "BTC/USDT", "market": "spot", "file": str(DATA_DIR / "BTC_USDT-1h.json.gz")}],
        is_days=180, oos_days=60, step_days=60, max_points=200))
    await engine.start()
    run = asyncio.get_running_loop().create_task(engine.run(), name="engine")
    lags: list[float] = []
    measuring = asyncio.Event()

    async def sampler() -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.01)
            if measuring.is_set():
                lags.append(max(0.0, loop.time() - t - 0.01))

    samp = asyncio.get_running_loop().create_task(sampler())
    t0 = time.perf_counter()
    app = RadarApp(EngineAPI(engine), jobs=jobs, host_name="bench", actor="console:bench")
    first_frame = None
    try:
        async with app.run_test(size=(w, h)) as pilot:
            while app.paints < 1:
                await asyncio.sleep(0.005)
            await pilot.pause()
            first_frame = time.perf_counter() - t0
            c0, m0 = engine.stats.candles, time.perf_counter()
            measuring.set()
            end = m0 + args.seconds
            i = 0
            while time.perf_counter() < end and not run.done():
                await asyncio.sleep(2.0)
                await pilot.press(KEYS[i % len(KEYS)])
                i += 1
            elapsed = time.perf_counter() - m0
            candles = engine.stats.candles - c0
            measuring.clear()
            paints = app.paints
    finally:
        samp.cancel()
        engine.request_stop()
        await asyncio.gather(run, samp, return_exceptions=True)
        rec = jobs.get(job_id) if job_id is not None else None
        await jobs.close()
    lags.sort()
    p = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))] * 1000 if lags else None  # noqa: E731
    return {"first_frame_s": round(first_frame, 3) if first_frame is not None else None,
            "loop_lag_p99_ms": round(p(0.99), 2), "loop_lag_p50_ms": round(p(0.50), 2),
            "loop_lag_max_ms": round(lags[-1] * 1000, 2) if lags else None,
            "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "candles_per_s": round(candles / elapsed, 1), "seconds": round(elapsed, 1), "paints": paints,
            "job_state": rec.state if rec else None, "job_progress": round(rec.progress, 1) if rec else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=1000.0, help="candles/s over the five series (default 1000)")
    ap.add_argument("--seconds", type=float, default=30.0, help="measured seconds (default 30)")
    ap.add_argument("--size", default="160x48")
    ap.add_argument("--no-job", action="store_true", help="no walk-forward job (to isolate its cost)")
    ap.add_argument("--profile", type=Path, help="write a cProfile of the run here")
    args = ap.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="radar-bench-console-"))
    try:
        if args.profile:
            import cProfile

            prof = cProfile.Profile()
            res = prof.runcall(asyncio.run, bench(args, workdir))
            prof.dump_stats(str(args.profile))
        else:
            res = asyncio.run(bench(args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ok = {"first frame < 1.5 s": (res["first_frame_s"] or 99) < 1.5,
          "loop lag p99 < 25 ms": (res["loop_lag_p99_ms"] or 1e9) < 25,
          "RSS < 300 MB": res["rss_mb"] < 300}
    for k, v in ok.items():
        print(f"{'met   ' if v else 'MISSED'} {k}")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
