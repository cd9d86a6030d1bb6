"""Benchmark of the envelope_dca backtest engines.

    .venv/bin/python benchmarks/bench_backtest.py [--data PATH] [--strategy envelope_dca]
                                                  [--repeat 5] [--compare-parallel] [--cold-jit]

Loads the candles (a freqtrade `.json.gz`: a list of [ts_ms, o, h, l, c, v]) and measures
* compile_s: the first `sweep` + `run_fast` call in this process (JIT compile, or loading
  the on-disk cache when it is warm; `--cold-jit` compiles into a throw-away cache dir);
* fast_sweep_s: median of `--repeat` runs of the full default 324-combo grid
  (`core.backtest.fast.sweep`, indicators included);
* event_candles_per_s: `core.backtest.event_engine.run_event_backtest` at the default
  params (median of `--repeat`; null when the event engine is not there);
* fast_vs_event: event time per combo / fast time per combo.
Prints human lines, then exactly one JSON line (the last line).
"""

from __future__ import annotations

import argparse
import atexit
import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "candles" / "binance-spot" / "BTC_USDT-1h.json.gz"


def load(path: Path):
    import numpy as np

    from core.model.candles import Candles

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        rows = np.asarray(json.load(f), dtype=np.float64)
    name = path.name.split("-")[0].replace("_", "/")
    tf = path.name.split("-")[-1].split(".")[0]
    return Candles.from_rows(name, "spot", tf, rows)


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--strategy", default="envelope_dca", choices=["envelope_dca", "envelope_dca_short"])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--compare-parallel", action="store_true",
                    help="also time the thread-pool and serial back-ends and the scan-everything variant")
    ap.add_argument("--cold-jit", action="store_true", help="compile into a fresh cache dir (true JIT time)")
    args = ap.parse_args(argv)

    if args.cold_jit:
        cache_dir = tempfile.mkdtemp(prefix="radar-bench-numba-")
        atexit.register(shutil.rmtree, cache_dir, True)
        os.environ["NUMBA_CACHE_DIR"] = cache_dir
    sys.path.insert(0, str(ROOT))
    t_imp = time.perf_counter()
    from core.backtest.fast import DEFAULT_GRID, DEFAULT_PARAMS, grid_combos, run_fast, sweep
    t_imp = time.perf_counter() - t_imp

    candles = load(args.data)
    n = len(candles)
    n_combos = len(grid_combos(DEFAULT_GRID))
    print(f"data: {args.data} ({n} candles), strategy {args.strategy}, {n_combos} combos; import {t_imp:.3f} s")

    t0 = time.perf_counter()
    sweep(candles, args.strategy, DEFAULT_GRID)
    run_fast(candles, args.strategy, DEFAULT_PARAMS)
    compile_s = time.perf_counter() - t0
    print(f"compile (first calls{', cold cache' if args.cold_jit else ''}): {compile_s:.3f} s")

    sweep(candles, args.strategy, DEFAULT_GRID)  # warm-up
    ts = timed(lambda: sweep(candles, args.strategy, DEFAULT_GRID), args.repeat)
    fast_s = statistics.median(ts)
    rate = n * n_combos / fast_s
    print(f"fast sweep (prange): median {fast_s * 1e3:.2f} ms, min {min(ts) * 1e3:.2f} ms over {args.repeat} "
          f"-> {rate:.3e} candle-combos/s")

    if args.compare_parallel:
        for label, kw, rep in (("threads", {"parallel": "threads"}, args.repeat),
                               ("serial", {"parallel": "serial"}, args.repeat),
                               ("scan-everything (prange)", {"skip": False}, 1)):
            sweep(candles, args.strategy, DEFAULT_GRID, **kw)
            t = statistics.median(timed(lambda: sweep(candles, args.strategy, DEFAULT_GRID, **kw), rep))
            print(f"fast sweep ({label}): median {t * 1e3:.2f} ms -> {n * n_combos / t:.3e} candle-combos/s")

    r = run_fast(candles, args.strategy, DEFAULT_PARAMS)
    t_single = statistics.median(timed(lambda: run_fast(candles, args.strategy, DEFAULT_PARAMS), args.repeat))
    print(f"run_fast at the default params: {t_single * 1e3:.2f} ms ({r.n_cycles} cycles, "
          f"final equity {r.final_equity:.2f})")

    event_rate = None
    ratio = None
    try:
        from core.backtest.event_engine import run_event_backtest
    except ImportError as err:
        print(f"event engine: not available ({err})")
    else:
        run_event_backtest(candles, args.strategy, dict(DEFAULT_PARAMS))
        te = statistics.median(timed(lambda: run_event_backtest(candles, args.strategy, dict(DEFAULT_PARAMS)),
                                     args.repeat))
        event_rate = n / te
        ratio = te / (fast_s / n_combos)
        print(f"event engine at the default params: median {te:.3f} s -> {event_rate:.3e} candles/s; "
              f"fast/event speed-up per combo: {ratio:.0f}x")

    print(json.dumps({"candles": n, "combos": n_combos, "compile_s": round(compile_s, 4),
                      "fast_sweep_s": round(fast_s, 6), "fast_candle_combos_per_s": round(rate),
                      "event_candles_per_s": None if event_rate is None else round(event_rate),
                      "fast_vs_event": None if ratio is None else round(ratio, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
