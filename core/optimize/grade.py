"""An A–F research grade of a strategy from five weighted criteria (`config/grading.yaml`).

    sub_score_c = piecewise-linear band of criterion c (clamped outside the band), in [0, 1]
    score       = 100 · Σ_c weight_c · sub_score_c                      (0–100)
    grade       = best grade whose threshold <= score (A >= 85, B >= 70, C >= 55, D >= 40, else F),
                  then lowered to the `max_grade` of every cap that applies
                  (shipped caps: OOS Sharpe <= 0 -> F; DSR < 0.5 -> at most D)

Criteria (see `Criteria`): annualised OOS Sharpe, consistency (share of
positive OOS windows), OOS/IS Sharpe ratio, Deflated Sharpe Ratio (Bailey &
López de Prado 2014, `core.optimize.sharpe_stats.dsr`) and parameter
stability. Weights, bands, grade thresholds and caps all come from the YAML,
validated with pydantic; `docs/grading.md` explains each criterion and how to
read a grade.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal, Mapping

import numpy as np
from pydantic import Field, ValidationError, field_validator, model_validator

from core.config.base import ConfigModel
from core.config.translate import to_config_error
from core.config.yaml_doc import read_yaml
from core.paths import DEFAULT_CONFIG_DIR

#: The five criteria, in the order of `Criteria` and of the YAML sections.
CRITERIA = ("oos_sharpe", "consistency", "oos_is_ratio", "dsr", "param_stability")

#: Grades from best to worst.
GRADES = ("A", "B", "C", "D", "F")

#: The packaged grading config.
DEFAULT_GRADING_FILE = DEFAULT_CONFIG_DIR / "grading.yaml"

CriterionName = Literal["oos_sharpe", "consistency", "oos_is_ratio", "dsr", "param_stability"]
GradeLetter = Literal["A", "B", "C", "D", "F"]


class Weights(ConfigModel):
    """`weights:` one positive weight per criterion, summing to 1 (within 1e-9)."""

    oos_sharpe: float = Field(gt=0)
    consistency: float = Field(gt=0)
    oos_is_ratio: float = Field(gt=0)
    dsr: float = Field(gt=0)
    param_stability: float = Field(gt=0)

    @model_validator(mode="after")
    def _sum_to_one(self) -> "Weights":
        total = sum(getattr(self, c) for c in CRITERIA)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"expected weights summing to 1, got {total:.12g}")
        return self


class BandPoint(ConfigModel):
    """One point of a band: criterion value `at` maps to sub-score `score` in [0, 1]."""

    at: float
    score: float = Field(ge=0, le=1)


def _monotone(points: list[BandPoint]) -> list[BandPoint]:
    for prev, cur in zip(points, points[1:]):
        if not cur.at > prev.at:
            raise ValueError(f"expected 'at' strictly increasing, got {prev.at:g} then {cur.at:g}")
        if cur.score < prev.score:
            raise ValueError(f"expected 'score' non-decreasing, got {prev.score:g} then {cur.score:g} "
                             f"(at {prev.at:g} and {cur.at:g})")
    return points


class Bands(ConfigModel):
    """`bands:` per criterion, >= 2 points, `at` strictly increasing, `score` non-decreasing.

    Between points the sub-score is linear; below the first point it is the
    first score, above the last the last score.
    """

    oos_sharpe: list[BandPoint] = Field(min_length=2)
    consistency: list[BandPoint] = Field(min_length=2)
    oos_is_ratio: list[BandPoint] = Field(min_length=2)
    dsr: list[BandPoint] = Field(min_length=2)
    param_stability: list[BandPoint] = Field(min_length=2)

    @field_validator(*CRITERIA)
    @classmethod
    def _band_monotone(cls, points: list[BandPoint]) -> list[BandPoint]:
        return _monotone(points)


class GradeThresholds(ConfigModel):
    """`grades:` lowest score (0–100) of A, B, C and D, strictly decreasing; below D's is F."""

    A: float = Field(gt=0, le=100)
    B: float = Field(gt=0, le=100)
    C: float = Field(gt=0, le=100)
    D: float = Field(gt=0, le=100)

    @model_validator(mode="after")
    def _decreasing(self) -> "GradeThresholds":
        if not self.A > self.B > self.C > self.D:
            raise ValueError(f"expected A > B > C > D, got A={self.A:g}, B={self.B:g}, C={self.C:g}, D={self.D:g}")
        return self


class Cap(ConfigModel):
    """One hard rule: when `criterion` is below `below` (or at/below `at_or_below`),
    the grade is at most `max_grade`. Exactly one of `below` / `at_or_below`."""

    criterion: CriterionName
    below: float | None = None
    at_or_below: float | None = None
    max_grade: GradeLetter

    @model_validator(mode="after")
    def _one_bound(self) -> "Cap":
        if (self.below is None) == (self.at_or_below is None):
            raise ValueError("expected exactly one of 'below' or 'at_or_below'")
        return self

    def applies(self, value: float) -> bool:
        """True when `value` of the criterion triggers this cap."""
        return value < self.below if self.below is not None else value <= self.at_or_below  # type: ignore[operator]

    def describe(self, value: float) -> str:
        """e.g. "dsr 0.42 < 0.5: at most D"."""
        bound = f"< {self.below:g}" if self.below is not None else f"<= {self.at_or_below:g}"
        return f"{self.criterion} {value:.4g} {bound}: at most {self.max_grade}"


class GradingConfig(ConfigModel):
    """The whole `grading.yaml`: weights, bands, grade thresholds and caps (a list, may be empty)."""

    weights: Weights
    bands: Bands
    grades: GradeThresholds
    caps: list[Cap]


def load_grading_config(path: Path | str | None = None) -> GradingConfig:
    """Read and validate a grading YAML file (default: the packaged `config/grading.yaml`).

    Raises:
        ConfigError (core.errors, exit code 2): the file is missing, not valid
            YAML, or a value is invalid; the message names the file, the dotted
            key path (e.g. "weights" for a bad sum, "bands.dsr.1.score") and
            what was expected.
    """
    doc = read_yaml(Path(path) if path is not None else DEFAULT_GRADING_FILE)
    try:
        return GradingConfig.model_validate(doc.data, strict=True)
    except ValidationError as err:
        raise to_config_error(err, doc, GradingConfig) from None


def _real(name: str, value: object, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out!r}")
    if (lo is not None and out < lo) or (hi is not None and out > hi):
        raise ValueError(f"{name} must be in [{lo:g}, {hi:g}], got {out:g}")
    return out


@dataclass(frozen=True)
class Criteria:
    """The five graded measurements of one strategy's walk-forward research.

    Attributes:
        oos_sharpe: ANNUALISED Sharpe of the out-of-sample returns, all OOS
            windows together (daily returns × √365, as
            `core.backtest.metrics.daily_sharpe`). Any finite number.
        consistency: share of OOS windows with a positive return, a fraction in [0, 1].
        oos_is_ratio: OOS Sharpe / IS Sharpe, both annualised the same way
            (walk-forward efficiency); any finite number. Pass 0 when the
            IS Sharpe is <= 0 (the ratio is meaningless then).
        dsr: Deflated Sharpe Ratio of the selected combo, a probability in
            [0, 1] (`core.optimize.sharpe_stats.dsr`, N = combos tested).
        param_stability: fraction in [0, 1]; how far the best combo's OOS Sharpe
            survives ±10 % and ±20 % perturbations of each numeric parameter:
            max(0, 1 − RMS(M_k − M0) / max(|M0|, 0.1)) (`core.optimize.stability`,
            docs/grading.md); 1 = unchanged under perturbation.

    Raises:
        ValueError: a value is not a finite real, or a fraction is outside [0, 1].
    """

    oos_sharpe: float
    consistency: float
    oos_is_ratio: float
    dsr: float
    param_stability: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "oos_sharpe", _real("oos_sharpe", self.oos_sharpe))
        object.__setattr__(self, "consistency", _real("consistency", self.consistency, 0.0, 1.0))
        object.__setattr__(self, "oos_is_ratio", _real("oos_is_ratio", self.oos_is_ratio))
        object.__setattr__(self, "dsr", _real("dsr", self.dsr, 0.0, 1.0))
        object.__setattr__(self, "param_stability", _real("param_stability", self.param_stability, 0.0, 1.0))


@dataclass(frozen=True)
class GradeResult:
    """Outcome of `grade`.

    Attributes:
        grade: "A", "B", "C", "D" or "F", after caps.
        score: 100 · Σ weight · sub-score, in [0, 100] (caps do not change it).
        sub_scores: criterion name -> sub-score in [0, 1] (read-only mapping).
        uncapped_grade: the grade the score alone gives.
        caps_applied: one line per cap that applied, e.g. "dsr 0.42 < 0.5: at most D".
    """

    grade: str
    score: float
    sub_scores: Mapping[str, float]
    uncapped_grade: str = ""
    caps_applied: tuple[str, ...] = field(default_factory=tuple)


def sub_score(value: float, band: list[BandPoint]) -> float:
    """Piecewise-linear sub-score of `value` on `band` (clamped to the end scores), in [0, 1]."""
    return float(np.interp(value, [p.at for p in band], [p.score for p in band]))


def grade(criteria: Criteria, cfg: GradingConfig) -> GradeResult:
    """Grade one strategy: sub-scores by band, weighted score 0–100, grade letter, caps.

        sub_c = band_c(criteria.c)                 (piecewise linear, clamped; in [0, 1])
        score = 100 · Σ_c w_c · sub_c
        grade = A if score >= grades.A, else B if >= grades.B, else C, D, else F;
                then the worst of that and the `max_grade` of every applying cap.

    Args:
        criteria: the five measurements (`Criteria`).
        cfg: a validated `GradingConfig` (`load_grading_config`).

    Returns:
        `GradeResult(grade, score, sub_scores, uncapped_grade, caps_applied)`.

    Raises:
        ValueError: `criteria` is not a `Criteria` or `cfg` not a `GradingConfig`.
    """
    if not isinstance(criteria, Criteria):
        raise ValueError(f"criteria must be a Criteria, got {type(criteria).__name__}")
    if not isinstance(cfg, GradingConfig):
        raise ValueError(f"cfg must be a GradingConfig (load_grading_config), got {type(cfg).__name__}")
    subs = {c: sub_score(getattr(criteria, c), getattr(cfg.bands, c)) for c in CRITERIA}
    score = 100.0 * sum(getattr(cfg.weights, c) * subs[c] for c in CRITERIA)
    score = round(min(100.0, max(0.0, score)), 9)  # 85.0 stays 85.0, not 84.99999999999999
    thresholds = cfg.grades
    letter = next((g for g in GRADES[:-1] if score >= getattr(thresholds, g)), "F")
    final = letter
    applied = []
    for cap in cfg.caps:
        value = getattr(criteria, cap.criterion)
        if cap.applies(value):
            applied.append(cap.describe(value))
            if GRADES.index(cap.max_grade) > GRADES.index(final):
                final = cap.max_grade
    return GradeResult(grade=final, score=score, sub_scores=MappingProxyType(subs),
                       uncapped_grade=letter, caps_applied=tuple(applied))
