"""Benchmark of the full walk-forward optimisation CLI on real data.

    .venv/bin/python benchmarks/bench_optimize.py [--data PATH] [--symbol BTC/USDT] [--strategy envelope_dca]
    .venv/bin/python benchmarks/bench_optimize.py --campaign [--repeat 2] [--from DATE] [--to DATE]

Runs, as a separate process (cold start included: imports, numba cache load, config),

    radar --db <temp db> optimize --strategy envelope_dca --symbols BTC/USDT --timeframe 1h --json
          --data ../shared/data/candles/binance-spot/BTC_USDT-1h.json.gz

(the 2017–2022 BTC/USDT 1h candles; default windows 180/60/60 days; the packaged 324-combo
grid), times it with a wall clock, prints the grade, score, the five criteria and the best
params as human lines, then exactly one JSON line (the last line):

    {"windows": ..., "combos_evaluated": ..., "seconds": ...}

Target: under 60 s on the 2-core machine.

With --campaign, the research campaign instead (`core.optimize.campaign`): 2 strategies
(envelope_dca, envelope_dca_short) × 5 symbols (BTC ETH SOL DOGE LINK /USDT spot) × 1h,
the whole 2017–2022 files (or --from/--to), run twice per repeat as separate CLI processes,

    radar --db <temp db> optimize --strategy envelope_dca,envelope_dca_short --symbols ... --timeframe 1h
          --data ... --json (--workers 2 | --ray auto)

the local pool and a Ray started by the command itself (`--ray auto`, no cluster running:
Ray start-up and shutdown included in its wall time), alternating which goes first. It
checks the two stored rankings are identical (except result ids and task times) and
prints one JSON line per repeat, then a last JSON line with the summary:

    {"campaign": "2x5x1h", "runs": 10, "local_s": [...], "ray_s": [...], "ratio_ray_over_local": [...],
     "ratio_median": ..., "identical": true, "tasks": [{"strategy", "symbol", "windows", "tasks",
     "evaluations", "local_task_s", "ray_task_s"}, ...], "window_batch": 4, "n_tasks": ...,
     "run_s_mean": ..., "task_s_mean": ..., "evaluations_per_run_mean": ..., "evaluations_per_task_mean": ...}

Each repeat line also gives the 1-minute load average before each run ("load_1m_before"):
the machine is shared, so compare the ratios of runs made under similar load (the order
alternates so neither back-end always runs first).

Acceptance: Ray within 1.5x of the local pool on the 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPOT = ROOT.parent / "shared" / "data" / "candles" / "binance-spot"
DEFAULT_DATA = SPOT / "BTC_USDT-1h.json.gz"
CAMPAIGN_STRATEGIES = "envelope_dca,envelope_dca_short"
CAMPAIGN_BASES = ("BTC", "ETH", "SOL", "DOGE", "LINK")


def _campaign_once(backend: str, extra: list[str]) -> tuple[float, dict]:
    """One campaign CLI process on `backend` ("local" | "ray"): (wall seconds, its JSON report + "load_1m",
    the 1-minute load average just before it started)."""
    with tempfile.TemporaryDirectory(prefix=f"radar-bench-campaign-{backend}-") as tmp:
        cmd = [sys.executable, "-m", "core.cli.main", "--db", str(Path(tmp) / "radar.db"), "optimize",
               "--strategy", CAMPAIGN_STRATEGIES, "--symbols", ",".join(f"{b}/USDT" for b in CAMPAIGN_BASES),
               "--timeframe", "1h", "--json", *extra]
        for b in CAMPAIGN_BASES:
            cmd += ["--data", str(SPOT / f"{b}_USDT-1h.json.gz")]
        cmd += ["--workers", "2"] if backend == "local" else ["--ray", "auto"]
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}      # a fresh local Ray, started by the run
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, check=False)
        seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{backend} campaign failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds, {**json.loads(proc.stdout), "load_1m": round(load, 2)}


def _comparable(report: dict) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("result_id", "task_seconds", "job_id", "load_1m")}
            for r in report["ranking"]]


def campaign(args: argparse.Namespace) -> int:
    missing = [b for b in CAMPAIGN_BASES if not (SPOT / f"{b}_USDT-1h.json.gz").is_file()]
    if missing:
        print(f"data files missing in {SPOT}: {', '.join(missing)}", file=sys.stderr)
        return 2
    extra = (["--from", args.start] if args.start else []) + (["--to", args.end] if args.end else [])
    local_s, ray_s, identical = [], [], True
    reports: dict[str, dict] = {}
    for i in range(args.repeat):
        order = ("local", "ray") if i % 2 == 0 else ("ray", "local")
        got = {}
        for backend in order:
            got[backend] = _campaign_once(backend, extra)
        (ls, lrep), (rs, rrep) = got["local"], got["ray"]
        same = _comparable(lrep) == _comparable(rrep)
        identical = identical and same
        local_s.append(round(ls, 2))
        ray_s.append(round(rs, 2))
        reports = {"local": lrep, "ray": rrep}
        print(json.dumps({"repeat": i + 1, "order": list(order), "local_s": round(ls, 2), "ray_s": round(rs, 2),
                          "ratio_ray_over_local": round(rs / ls, 3), "identical": same,
                          "load_1m_before": {"local": lrep["load_1m"], "ray": rrep["load_1m"]},
                          "ray_where": rrep["campaign"]["where"], "local_where": lrep["campaign"]["where"]}))
    key = lambda r: (r["strategy"], r["symbol"])
    ray_by = {key(r): r for r in reports["ray"]["ranking"]}
    tasks = [{"strategy": r["strategy"], "symbol": r["symbol"], "grade": r["grade"], "windows": r["windows"],
              "tasks": r.get("tasks", 1), "evaluations": r["evaluations"], "local_task_s": r["task_seconds"],
              "ray_task_s": ray_by[key(r)]["task_seconds"]}
             for r in sorted(reports["local"]["ranking"], key=lambda r: r["run"])]
    n_tasks = sum(t["tasks"] for t in tasks)
    ratios = [round(r / lo, 3) for r, lo in zip(ray_s, local_s)]
    print(json.dumps({"campaign": "2x5x1h", "runs": len(tasks), "range": [args.start, args.end],
                      "local_s": local_s, "ray_s": ray_s, "ratio_ray_over_local": ratios,
                      "ratio_median": statistics.median(ratios), "identical": identical, "tasks": tasks,
                      "window_batch": reports["local"]["campaign"].get("window_batch"), "n_tasks": n_tasks,
                      "run_s_mean": round(statistics.mean(t["local_task_s"] for t in tasks), 3),
                      "task_s_mean": round(sum(t["local_task_s"] for t in tasks) / n_tasks, 3),
                      "evaluations_per_run_mean": round(statistics.mean(t["evaluations"] for t in tasks), 1),
                      "evaluations_per_task_mean": round(sum(t["evaluations"] for t in tasks) / n_tasks, 1)}))
    return 0 if identical else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="freqtrade candle file")
    ap.add_argument("--symbol", default="BTC/USDT")
    ap.add_argument("--timeframe", default="1h")
    ap.add_argument("--strategy", default="envelope_dca")
    ap.add_argument("--campaign", action="store_true",
                    help="benchmark the 2 strategies x 5 symbols x 1h campaign, local pool vs Ray (needs radar[ray])")
    ap.add_argument("--repeat", type=int, default=2, help="--campaign: measurements of each back-end (default 2)")
    ap.add_argument("--from", dest="start", help="--campaign: first candle (YYYY-MM-DD); default the whole files")
    ap.add_argument("--to", dest="end", help="--campaign: end of the candles, exclusive")
    args = ap.parse_args()
    if args.campaign:
        return campaign(args)
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
