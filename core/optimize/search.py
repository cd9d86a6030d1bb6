"""Two-pass search of a parameter grid: a Latin-hypercube sample, then ±1 grid step around the best.

Grid points are addressed by their flat index in the C-order cross product of the
axes (`GridSpace`); every axis is sorted ascending so "±1 grid step" means the next
smaller / larger value of that parameter.

Pass 1 (`lhs_sample`): a discrete Latin hypercube (McKay, Beckman & Conover 1979,
"A Comparison of Three Methods for Selecting Values of Input Variables in the Analysis
of Output from a Computer Code", Technometrics 21(2)) of M points: for each parameter
with n_j values, the column `(0, 1, …, M−1)·n_j // M` (every value M/n_j times, rounded
down or up) is shuffled independently; row k of the columns is point k. Hence every
value of every parameter appears in the sample whenever M >= n_j. Repeated points are
dropped and the sample is topped up with uniformly drawn unsampled points until it holds
M distinct valid points; when the grid has at most M valid points, the sample is the
whole grid. Default M = 500.

Pass 2 (`two_pass_search`): the points of the ±1-step hypercube around the pass-1 best
(up to 3^k − 1 for k parameters, clipped at the axis ends, valid ones only) that pass 1
did not score. The result is the best of both passes.

Best = highest score; NaN scores as −inf; ties go to the lowest flat index (deterministic).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from core.errors import UsageError

#: Default size of the Latin-hypercube sample (pass 1).
DEFAULT_POINTS = 500


@dataclass(frozen=True)
class GridSpace:
    """A parameter grid: names and, per name, its values sorted ascending.

    Attributes:
        names: parameter names, in the order of the cross product.
        axes: per parameter, a tuple of its distinct values, ascending.
    """

    names: tuple[str, ...]
    axes: tuple[tuple, ...]

    @classmethod
    def from_grid(cls, grid: Mapping[str, Iterable]) -> "GridSpace":
        """Build from {name: values}; values are de-duplicated and sorted ascending.

        Raises:
            UsageError: an empty grid, a parameter without values, or a value that is
                not a real number.
        """
        if not grid:
            raise UsageError("parameter grid is empty: expected {name: [values, ...]}")
        names, axes = [], []
        for name, values in grid.items():
            vals = list(values)
            if not vals:
                raise UsageError(f"parameter grid: {name!r} has no values")
            for v in vals:
                if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                        or not math.isfinite(float(v)):
                    raise UsageError(f"parameter grid: {name}={v!r} is not a finite number")
            names.append(str(name))
            axes.append(tuple(sorted(set(vals))))
        return cls(tuple(names), tuple(axes))

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of values per parameter."""
        return tuple(len(a) for a in self.axes)

    @property
    def size(self) -> int:
        """Points in the full cross product."""
        return math.prod(self.shape)

    def index(self, flat: int) -> tuple[int, ...]:
        """Per-parameter value positions of grid point `flat`."""
        return tuple(int(i) for i in np.unravel_index(int(flat), self.shape))

    def flat(self, index: Sequence[int]) -> int:
        """Flat index of the point with per-parameter value positions `index`."""
        return int(np.ravel_multi_index(tuple(int(i) for i in index), self.shape))

    def params(self, flat: int) -> dict:
        """Grid point `flat` as {name: value}."""
        return {n: a[i] for n, a, i in zip(self.names, self.axes, self.index(flat))}

    def locate(self, params: Mapping) -> int | None:
        """Flat index of `params` (every name must match a grid value exactly), else None."""
        try:
            return self.flat([self.axes[k].index(params[n]) for k, n in enumerate(self.names)])
        except (KeyError, ValueError):
            return None


def _accept(is_valid: Callable[[int], bool] | None, flat: int) -> bool:
    return True if is_valid is None else bool(is_valid(flat))


def lhs_sample(space: GridSpace, n_points: int = DEFAULT_POINTS, rng: np.random.Generator | int = 0,
               is_valid: Callable[[int], bool] | None = None) -> list[int]:
    """Pass 1: a discrete Latin-hypercube sample of distinct valid grid points (module docstring).

    Args:
        space: the grid.
        n_points: M, the number of points wanted (integer >= 1; default 500).
        rng: a numpy Generator or a non-negative integer seed (default 0: deterministic).
        is_valid: predicate on a flat index; points it refuses are never returned
            (e.g. combos whose model is invalid). None: all points are valid.

    Returns:
        Flat indices, sorted ascending: the whole valid grid when it has <= M valid points,
        else exactly M distinct valid points (fewer only if the grid has fewer).

    Raises:
        UsageError: `n_points` is not an integer >= 1.
    """
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or int(n_points) < 1:
        raise UsageError(f"n_points must be an integer >= 1, got {n_points!r}")
    m = int(n_points)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(int(rng))
    if space.size <= m:
        return [f for f in range(space.size) if _accept(is_valid, f)]
    cols = [gen.permutation((np.arange(m) * n) // m) for n in space.shape]
    flats = np.ravel_multi_index(tuple(cols), space.shape)
    chosen: list[int] = []
    seen: set[int] = set()
    for f in flats.tolist():
        if f not in seen:
            seen.add(f)
            if _accept(is_valid, f):
                chosen.append(f)
    if len(chosen) < m:
        for f in gen.permutation(space.size).tolist():
            if f not in seen:
                seen.add(f)
                if _accept(is_valid, f):
                    chosen.append(f)
                    if len(chosen) == m:
                        break
    return sorted(chosen)


def neighbours(space: GridSpace, flat: int, is_valid: Callable[[int], bool] | None = None) -> list[int]:
    """The valid points within ±1 grid step of `flat` in every parameter (itself excluded), ascending."""
    centre = space.index(flat)
    ranges = [range(max(0, c - 1), min(n, c + 2)) for c, n in zip(centre, space.shape)]
    out = []
    for idx in itertools.product(*ranges):
        if idx != centre:
            f = space.flat(idx)
            if _accept(is_valid, f):
                out.append(f)
    return sorted(out)


@dataclass(frozen=True)
class SearchResult:
    """Outcome of `two_pass_search`.

    Attributes:
        visited: flat indices scored, pass 1 then pass 2 (each ascending).
        scores: float64 score of each visited point, aligned with `visited`.
        n_first: how many of `visited` came from pass 1.
        first_best: best flat index of pass 1.
        best: best flat index of both passes.
    """

    visited: list[int]
    scores: np.ndarray
    n_first: int
    first_best: int
    best: int


def _argbest(flats: Sequence[int], scores: np.ndarray) -> int:
    s = np.where(np.isnan(scores), -np.inf, scores)
    top = np.max(s)
    return min(f for f, v in zip(flats, s) if v == top)


def two_pass_search(space: GridSpace, score: Callable[[list[int]], np.ndarray], sample: Sequence[int],
                    is_valid: Callable[[int], bool] | None = None) -> SearchResult:
    """Score `sample` (pass 1), then the unscored ±1-step neighbours of its best (pass 2).

    Args:
        space: the grid.
        score: maps a list of flat indices to a float array of their scores (higher is
            better; NaN counts as −inf), e.g. the in-sample Sharpe of each combo.
        sample: pass-1 points (e.g. `lhs_sample`), at least one.
        is_valid: predicate restricting the pass-2 neighbours.

    Returns:
        `SearchResult`; ties go to the lowest flat index.

    Raises:
        UsageError: an empty sample, or `score` returned the wrong number of values.
    """
    first = list(dict.fromkeys(int(f) for f in sample))
    if not first:
        raise UsageError("two_pass_search: the sample is empty")
    s1 = np.asarray(score(first), dtype=np.float64)
    if s1.shape != (len(first),):
        raise UsageError(f"two_pass_search: score returned shape {s1.shape} for {len(first)} points")
    best1 = _argbest(first, s1)
    done = set(first)
    fine = [f for f in neighbours(space, best1, is_valid) if f not in done]
    s2 = np.asarray(score(fine), dtype=np.float64) if fine else np.empty(0)
    if s2.shape != (len(fine),):
        raise UsageError(f"two_pass_search: score returned shape {s2.shape} for {len(fine)} points")
    visited = first + fine
    scores = np.concatenate([s1, s2])
    return SearchResult(visited, scores, len(first), best1, _argbest(visited, scores))
