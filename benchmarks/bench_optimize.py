"""Benchmark of the full walk-forward optimisation CLI on real data.

    .venv/bin/python benchmarks/bench_optimize.py [--data PATH] [--symbol BTC/USDT] [--strategy envelope_dca]

Runs, as a separate process (cold start included: imports, numba cache load, config),

    radar --db <temp db> optimize --strategy envelope_dca --symbols BTC/USDT --timeframe 1h --json
          --data ../shared/data/candles/binance-spot/BTC_USDT-1h.json.gz

(the 2017–2022 BTC/USDT 1h candles; default windows 180/60/60 days; the packaged 324-combo
grid), times it with a wall clock, prints the grade, score, the five criteria and the best
params as human lines, then exactly one JSON line (the last line):

    {"windows": ..., "combos_evaluated": ..., "seconds": ...}

Target: under 60 s on the 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "candles" / "binance-spot" / "BTC_USDT-1h.json.gz"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="freqtrade candle file")
    ap.add_argument("--symbol", default="BTC/USDT")
    ap.add_argument("--timeframe", default="1h")
    ap.add_argument("--strategy", default="envelope_dca")
    args = ap.parse_args()
    if not args.data.is_file():
        print(f"data file not found: {args.data}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="radar-bench-optimize-") as tmp:
        cmd = [sys.executable, "-m", "core.cli.main", "--db", str(Path(tmp) / "radar.db"), "optimize",
               "--strategy", args.strategy, "--symbols", args.symbol, "--timeframe", args.timeframe, "--json",
               "--data", str(args.data)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return proc.returncode
    out = json.loads(proc.stdout)
    (r,) = out["results"]
    print(f"radar optimize {args.strategy} {r['symbol']} {r['timeframe']}: {args.data.name}")
    print(f"grade {r['grade']}  score {r['score']:.2f}  caps: {'; '.join(r['caps_applied']) or 'none'}")
    print("criteria: " + ", ".join(f"{k}={v:.4f}" for k, v in r["criteria"].items()))
    print("best params: " + ", ".join(f"{k}={v}" for k, v in r["best_params"].items()))
    pv = "null" if r["p_value"] is None else f"{r['p_value']:.4f}"
    pbo = "null" if r["pbo"] is None else f"{r['pbo']:.4f}"
    print(f"pbo {pbo}  dsr {r['dsr']:.4f}  psr {r['psr']}  p_value {pv}  oos_cycles {r['oos_cycles']}  "
          f"evaluations {r['evaluations']}")
    print(json.dumps({"windows": r["windows"], "combos_evaluated": r["combos_evaluated"],
                      "seconds": round(seconds, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
