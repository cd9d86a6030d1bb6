"""Benchmark: import one freqtrade candle file into a fresh database.

Times `core.data.importer.import_file` (read + gunzip + JSON + validation +
one-transaction upsert) into a new temporary database, several times, and
prints a human line per run, then one JSON line with the medians:

    {"rows": 45024, "import_s": 0.21, "rows_per_s": 214000.0, ...}

Usage: .venv/bin/python benchmarks/bench_data.py [--data FILE] [--repeat N]
Target: BTC/USDT 1h (45,024 rows) under 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.data.importer import import_file  # noqa: E402
from core.storage.db import open_sync  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "candles" / "binance-spot" / "BTC_USDT-1h.json.gz"


def run_once(data: Path) -> tuple[int, float, float]:
    """(rows, import seconds, re-import seconds) of one run into a fresh temporary database."""
    with tempfile.TemporaryDirectory() as tmp:
        conn = open_sync(Path(tmp) / "bench.db")
        try:
            t0 = time.perf_counter()
            res = import_file(conn, data)
            t1 = time.perf_counter()
            again = import_file(conn, data)
            t2 = time.perf_counter()
        finally:
            conn.close()
    if again.counts.new or again.counts.updated:
        raise SystemExit(f"re-import was not idempotent: {again.counts}")
    return res.counts.given, t1 - t0, t2 - t1


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="freqtrade file (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=5, help="runs, each into a fresh database (default 5)")
    args = ap.parse_args(argv)
    if not args.data.is_file():
        print(f"bench_data: no such file {args.data}", file=sys.stderr)
        return 2
    imports, reimports, rows = [], [], 0
    for i in range(max(args.repeat, 1)):
        rows, t_import, t_reimport = run_once(args.data)
        imports.append(t_import)
        reimports.append(t_reimport)
        print(f"run {i + 1}: {rows} rows imported in {t_import:.3f} s ({rows / t_import:,.0f} rows/s), "
              f"re-import {t_reimport:.3f} s")
    med, med_re = statistics.median(imports), statistics.median(reimports)
    print(f"{args.data.name}: median import {med:.3f} s = {rows / med:,.0f} rows/s over {len(imports)} runs "
          f"(target < 1 s: {'ok' if med < 1.0 else 'MISSED'})")
    print(json.dumps({"rows": rows, "import_s": round(med, 4), "rows_per_s": round(rows / med, 1),
                      "reimport_s": round(med_re, 4), "runs": len(imports)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
