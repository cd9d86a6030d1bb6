"""Benchmark of the headless paper engine: `radar run --no-ui` replaying the five 1h series.

    .venv/bin/python benchmarks/bench_engine.py [--data-dir DIR] [--symbols BTC,ETH,...]
                                                [--timeframe 1h] [--keep]

Runs the real command in a child process, exactly as an operator would:

    radar --db <tmp>/bench.db run --no-ui --replay <BTC file> ... --replay <LINK file>
          --speed max --status-interval 0

on a fresh database (persistence on: every candle, order, fill and cycle goes through the
state store), with the packaged config (its enabled grid strategies on every series).
Measured:
* candles, candles_per_s: what the engine reports on its last stderr line
  ("radar run: N candles, R candles/s"): candles processed / time from the first to the last
  candle (the engine's own rate, start-up and report excluded);
* wall_s: the whole command, start-up (imports, loading the files, history) included;
* rss_mb: the child's peak resident set (getrusage RUSAGE_CHILDREN ru_maxrss).
Prints human lines, then exactly one JSON line (the last line):
{"candles": ..., "candles_per_s": ..., "rss_mb": ..., "wall_s": ...}. Target: >= 5,000 candles/s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT.parent / "shared" / "data" / "candles" / "binance-spot"
SYMBOLS = ("BTC", "ETH", "SOL", "DOGE", "LINK")
TARGET = 5000.0


def series_files(data_dir: Path, symbols=SYMBOLS, timeframe: str = "1h") -> list[Path]:
    files = [data_dir / f"{s}_USDT-{timeframe}.json.gz" for s in symbols]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"bench_engine: missing data files: {', '.join(missing)}")
    return files


def run_engine(files: list[Path], workdir: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "core.cli.main", "--db", str(workdir / "bench.db"), "run", "--no-ui",
           *[a for f in files for a in ("--replay", str(f))], "--speed", "max", "--status-interval", "0",
           "--log-file", str(workdir / "bench-log.jsonl")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"bench_engine: radar run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    m = re.search(r"radar run: (\d+) candles, ([\d,.]+) candles/s", proc.stderr)
    if not m:
        raise SystemExit(f"bench_engine: no rate line in the output:\n{proc.stderr[-2000:]}")
    rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"candles": int(m.group(1)), "candles_per_s": round(float(m.group(2).replace(",", "")), 1),
            "rss_mb": round(rss_kb / 1024, 1), "wall_s": round(wall, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--symbols", default=",".join(SYMBOLS))
    ap.add_argument("--timeframe", default="1h")
    ap.add_argument("--keep", action="store_true", help="keep the temporary database folder")
    args = ap.parse_args(argv)
    files = series_files(args.data_dir, [s.strip() for s in args.symbols.split(",") if s.strip()], args.timeframe)
    workdir = Path(tempfile.mkdtemp(prefix="radar-bench-engine-"))
    try:
        print(f"replaying {len(files)} series headless at --speed max, persistence on ({workdir})")
        res = run_engine(files, workdir)
        print(f"{res['candles']} candles, {res['candles_per_s']:,.0f} candles/s (engine), wall {res['wall_s']} s, "
              f"peak RSS {res['rss_mb']} MB; target >= {TARGET:,.0f} candles/s: "
              f"{'met' if res['candles_per_s'] >= TARGET else 'MISSED'}")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
