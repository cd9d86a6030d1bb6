"""Incremental (step-by-step) copies of `core.indicators`: one candle at a time, in plain
Python floats, bit-identical to the array functions.

Each class reproduces one `core.indicators` function value by value: the same operations
in the same order (Python floats are IEEE doubles, as numba's), and the same missing-data
rule (a row with a missing input gives nan and restarts the indicator: each finite run
is an independent series). `update(...)` takes candle j and returns the value at j.
`state()` / `load()` carry the state through JSON (floats round-trip exactly).

| class | copies |
|---|---|
| Ema(n) | ema(x, n) |
| Rsi(n) | rsi(close, n) |
| Atr(n) | atr(high, low, close, n) |
| Bollinger(n, k) | bollinger(close, n, k) -> (upper, middle, lower) |
| Donchian(n) | donchian(high, low, n) -> (upper, lower) |
| Vwap(n) | rolling_vwap(high, low, close, volume, n) |
| Supertrend(p, mult) | supertrend(high, low, close, p, mult) -> (line, direction) |

Used by the per-strategy signal streams (`core.indicators.signal_streams`), which give a
live runner O(1) signals per candle.
"""

from __future__ import annotations

import math
from collections import deque

_NAN = math.nan
_isfinite = math.isfinite


def _tr(h: float, lo: float, pc: float) -> float:
    """`core.indicators.volatility.tr_value`, in its evaluation order."""
    g = h - lo
    v = abs(pc - h)
    if v > g:
        g = v
    v = abs(pc - lo)
    if v > g:
        g = v
    return g


class Ema:
    """`ema(x, n)` (TA-Lib seeding: the sequential sum of the first n values / n)."""

    __slots__ = ("n", "k", "i", "total", "prev")

    def __init__(self, n: int) -> None:
        self.n = n
        self.k = 2.0 / (n + 1)
        self.i = 0
        self.total = 0.0
        self.prev = _NAN

    def update(self, x: float) -> float:
        if not _isfinite(x):
            self.i = 0
            self.total = 0.0
            return _NAN
        i = self.i
        n = self.n
        if i < n:
            self.i = i + 1
            self.total += x
            if i == n - 1:
                self.prev = self.total / n
                return self.prev
            return _NAN
        self.prev = (x - self.prev) * self.k + self.prev
        return self.prev

    def state(self) -> list:
        return [self.i, self.total, self.prev]

    def load(self, s: list) -> None:
        self.i, self.total, self.prev = s


class Rsi:
    """`rsi(close, n)` (Wilder smoothing, TA-Lib seeding; 50 when nothing moved)."""

    __slots__ = ("n", "i", "prev", "gain", "loss")

    def __init__(self, n: int) -> None:
        self.n = n
        self.i = 0
        self.prev = _NAN
        self.gain = 0.0
        self.loss = 0.0

    def update(self, x: float) -> float:
        if not _isfinite(x):
            self.i = 0
            self.gain = 0.0
            self.loss = 0.0
            return _NAN
        i = self.i
        if i == 0:
            self.i = 1
            self.prev = x
            return _NAN
        n = self.n
        d = x - self.prev
        self.prev = x
        if i <= n:
            self.i = i + 1
            if d < 0:
                self.loss -= d
            else:
                self.gain += d
            if i < n:
                return _NAN
            self.loss /= n
            self.gain /= n
        else:
            loss = self.loss * (n - 1)
            gain = self.gain * (n - 1)
            if d < 0:
                loss -= d
            else:
                gain += d
            self.loss = loss / n
            self.gain = gain / n
        total = self.gain + self.loss
        if total == 0.0:
            return 50.0
        return 100.0 * (self.gain / total)

    def state(self) -> list:
        return [self.i, self.prev, self.gain, self.loss]

    def load(self, s: list) -> None:
        self.i, self.prev, self.gain, self.loss = s


class Atr:
    """`atr(high, low, close, n)` (Wilder smoothing, TA-Lib seeding at j = n)."""

    __slots__ = ("n", "i", "pc", "total", "prev")

    def __init__(self, n: int) -> None:
        self.n = n
        self.i = 0
        self.pc = _NAN
        self.total = 0.0
        self.prev = _NAN

    def update(self, h: float, lo: float, c: float) -> float:
        if not (_isfinite(h) and _isfinite(lo) and _isfinite(c)):
            self.i = 0
            self.total = 0.0
            return _NAN
        i = self.i
        if i == 0:
            self.i = 1
            self.pc = c
            return _NAN
        tr = _tr(h, lo, self.pc)
        self.pc = c
        n = self.n
        if i <= n:
            self.i = i + 1
            self.total += tr
            if i < n:
                return _NAN
            self.prev = self.total / n
            return self.prev
        prev = self.prev * (n - 1)
        prev += tr
        self.prev = prev / n
        return self.prev

    def state(self) -> list:
        return [self.i, self.pc, self.total, self.prev]

    def load(self, s: list) -> None:
        self.i, self.pc, self.total, self.prev = s


class Bollinger:
    """`bollinger(close, n, k)`: TA-Lib's rolling-sum SMA middle, two-pass population sigma."""

    __slots__ = ("n", "k", "i", "total", "win")

    def __init__(self, n: int, k: float) -> None:
        self.n = n
        self.k = k
        self.i = 0
        self.total = 0.0
        self.win: deque = deque(maxlen=n)

    def update(self, x: float) -> tuple[float, float, float]:
        if not _isfinite(x):
            self.i = 0
            self.total = 0.0
            self.win.clear()
            return _NAN, _NAN, _NAN
        n = self.n
        win = self.win
        win.append(x)
        if self.i < n - 1:
            self.i += 1
            self.total += x
            return _NAN, _NAN, _NAN
        total = self.total + x
        middle = total / n
        self.total = total - win[0]
        s = 0.0
        for v in win:
            s += v
        mean = s / n
        ss = 0.0
        for v in win:
            d = v - mean
            ss += d * d
        width = math.sqrt(ss / n) * self.k
        return middle + width, middle, middle - width

    def state(self) -> list:
        return [self.i, self.total, list(self.win)]

    def load(self, s: list) -> None:
        self.i, self.total, w = s
        self.win = deque(w, maxlen=self.n)


class Donchian:
    """`donchian(high, low, n)` upper and lower (window includes the current candle)."""

    __slots__ = ("n", "hs", "ls")

    def __init__(self, n: int) -> None:
        self.n = n
        self.hs: deque = deque(maxlen=n)
        self.ls: deque = deque(maxlen=n)

    def update(self, h: float, lo: float) -> tuple[float, float]:
        if not (_isfinite(h) and _isfinite(lo)):
            self.hs.clear()
            self.ls.clear()
            return _NAN, _NAN
        self.hs.append(h)
        self.ls.append(lo)
        if len(self.hs) < self.n:
            return _NAN, _NAN
        return max(self.hs), min(self.ls)

    def state(self) -> list:
        return [list(self.hs), list(self.ls)]

    def load(self, s: list) -> None:
        self.hs = deque(s[0], maxlen=self.n)
        self.ls = deque(s[1], maxlen=self.n)


class Vwap:
    """`rolling_vwap(high, low, close, volume, n)` (fresh sums per window)."""

    __slots__ = ("n", "win")

    def __init__(self, n: int) -> None:
        self.n = n
        self.win: deque = deque(maxlen=n)

    def update(self, h: float, lo: float, c: float, v: float) -> float:
        if not (_isfinite(h) and _isfinite(lo) and _isfinite(c) and _isfinite(v) and v >= 0.0):
            self.win.clear()
            return _NAN
        self.win.append(((h + lo + c) / 3.0, v))
        if len(self.win) < self.n:
            return _NAN
        pv = 0.0
        vol = 0.0
        for tp, w in self.win:
            pv += tp * w
            vol += w
        return pv / vol if vol > 0.0 else _NAN

    def state(self) -> list:
        return [list(t) for t in self.win]

    def load(self, s: list) -> None:
        self.win = deque((tuple(t) for t in s), maxlen=self.n)


class Supertrend:
    """`supertrend(high, low, close, atr_period, multiplier)` -> (line, direction)."""

    __slots__ = ("p", "mult", "atr", "j", "pc", "fu", "fl", "d")

    def __init__(self, p: int, mult: float) -> None:
        self.p = p
        self.mult = mult
        self.atr = Atr(p)
        self.j = 0
        self.pc = _NAN
        self.fu = 0.0
        self.fl = 0.0
        self.d = -1.0

    def update(self, h: float, lo: float, c: float) -> tuple[float, float]:
        if not (_isfinite(h) and _isfinite(lo) and _isfinite(c)):
            self.atr.update(h, lo, c)
            self.j = 0
            return _NAN, _NAN
        a = self.atr.update(h, lo, c)
        j = self.j
        p = self.p
        if j < p:
            self.j = j + 1
            self.pc = c
            return _NAN, _NAN
        hl2 = (h + lo) / 2.0
        bu = hl2 + self.mult * a
        bl = hl2 - self.mult * a
        if j == p:
            self.j = j + 1
            fu = bu
            fl = bl
            d = -1.0
        else:
            fu = self.fu
            fl = self.fl
            pc = self.pc
            if not (bu < fu or pc > fu):
                bu = fu
            if not (bl > fl or pc < fl):
                bl = fl
            fu = bu
            fl = bl
            d = self.d
            if d < 0.0:
                d = 1.0 if c > fu else -1.0
            else:
                d = -1.0 if c < fl else 1.0
        self.fu = fu
        self.fl = fl
        self.d = d
        self.pc = c
        return (fl if d > 0.0 else fu), d

    def state(self) -> list:
        return [self.atr.state(), self.j, self.pc, self.fu, self.fl, self.d]

    def load(self, s: list) -> None:
        a, self.j, self.pc, self.fu, self.fl, self.d = s
        self.atr.load(a)
