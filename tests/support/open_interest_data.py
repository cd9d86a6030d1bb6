"""A deterministic synthetic open-interest series for real candles (no OI history is stored
offline: `/work/shared/data` has candles and funding rates only).

`synthetic_oi(candles, seed)`: one sample per candle, stamped at the candle's open time plus
a small jitter (0 … 900 ms, as exchanges report times a little off the grid, so a sample
belongs to the NEXT candle's open), a slow seeded random walk around 100,000 contracts, and
a drop of 1.5 … 4 % on the candles whose body is among the largest 3 % (a liquidation
cascade: price moves hard and open interest falls). Shapes (n,): ts int64 ms UTC, oi float64.
"""

from __future__ import annotations

import numpy as np

from core.model.candles import Candles


def synthetic_oi(candles: Candles, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """(ts, oi) of a synthetic open-interest series aligned with `candles` (module docstring)."""
    rng = np.random.default_rng(seed)
    n = len(candles)
    body = np.abs(np.asarray(candles.close) - np.asarray(candles.open))
    big = body >= np.quantile(body, 0.97) if n else np.zeros(0, dtype=bool)
    step = rng.normal(0.0, 0.002, n)
    step[big] -= rng.uniform(0.015, 0.04, int(big.sum()))
    oi = 100_000.0 * np.exp(np.cumsum(step))
    # the sample taken at candle j's close (= the open of j + 1) reflects candle j
    ts = np.asarray(candles.ts, dtype=np.int64) + int(candles.ts[1] - candles.ts[0]) + rng.integers(0, 900, n)
    return ts.astype(np.int64), oi
