"""An A–F research grade of a strategy from weighted criteria, by a named profile of `config/grading.yaml`.

    sub_score_c = piecewise-linear band of criterion c (clamped outside the band), in [0, 1]
    score       = 100 · Σ_c weight_c · sub_score_c                      (0–100)
    grade       = best grade whose threshold <= score, then lowered to the `max_grade` of
                  every cap that applies (a profile may have no caps)

`grading.yaml` holds several profiles and names the default one:

* `roadmap` (the default): the product roadmap's scheme — OOS Sharpe 25 points (0→2
  linear to 15, 2→5 linear to 25), consistency 25 (50 → 100 % positive OOS windows),
  OOS/IS ratio 20 (0.3 → 1.0), DSR 15 (0.5 → 1.0), stability 15 (variance of the OOS
  Sharpe under the ±10/20 % perturbations: < 0.1 full, 0.1 → 1.0 from 15 to 5 points,
  > 1.0 none); A >= 90, B >= 80, C >= 70, D >= 60, else F; no caps.
* `strict`: the earlier scheme (weights 30/20/15/20/15, bands 85/70/55/40, caps
  "OOS Sharpe <= 0 -> F" and "DSR < 0.5 -> at most D", stability as a fraction).

A file without `profiles:` (the earlier one-profile layout: weights, bands, grades,
caps at the top) still loads, as the profile "custom".

Criteria (see `Criteria`): annualised OOS Sharpe, consistency, OOS/IS Sharpe ratio,
Deflated Sharpe Ratio (`core.optimize.sharpe_stats.selection_dsr`), parameter
stability as a fraction (`param_stability`) and as a variance (`stability_variance`).
A profile weighs any subset of them. `docs/grading.md` explains what each is computed on.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal, Mapping

from pydantic import Field, ValidationError, field_validator, model_validator

from core.config.base import ConfigModel
from core.config.translate import to_config_error
from core.config.yaml_doc import read_yaml
from core.errors import ConfigError
from core.paths import DEFAULT_CONFIG_DIR

#: Every criterion a profile may weigh, in the order of `Criteria`.
CRITERIA = ("oos_sharpe", "consistency", "oos_is_ratio", "dsr", "param_stability", "stability_variance")

#: Grades from best to worst.
GRADES = ("A", "B", "C", "D", "F")

#: The packaged grading config.
DEFAULT_GRADING_FILE = DEFAULT_CONFIG_DIR / "grading.yaml"

#: Name given to a grading file in the one-profile layout (no `profiles:` key).
CUSTOM_PROFILE = "custom"

CriterionName = Literal["oos_sharpe", "consistency", "oos_is_ratio", "dsr", "param_stability",
                        "stability_variance"]
GradeLetter = Literal["A", "B", "C", "D", "F"]


class Weights(ConfigModel):
    """`weights:` a positive weight per graded criterion (criteria left out are not graded), summing to 1."""

    oos_sharpe: float | None = Field(default=None, gt=0)
    consistency: float | None = Field(default=None, gt=0)
    oos_is_ratio: float | None = Field(default=None, gt=0)
    dsr: float | None = Field(default=None, gt=0)
    param_stability: float | None = Field(default=None, gt=0)
    stability_variance: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _sum_to_one(self) -> "Weights":
        given = self.items()
        if not given:
            raise ValueError("expected at least one weighted criterion")
        total = sum(w for _, w in given)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"expected weights summing to 1, got {total:.12g}")
        return self

    def items(self) -> list[tuple[str, float]]:
        """(criterion, weight) of the weighted criteria, in `CRITERIA` order."""
        return [(c, float(getattr(self, c))) for c in CRITERIA if getattr(self, c) is not None]


class BandPoint(ConfigModel):
    """One point of a band: criterion value `at` maps to sub-score `score` in [0, 1]."""

    at: float
    score: float = Field(ge=0, le=1)


def _ordered(points: list[BandPoint]) -> list[BandPoint]:
    """`at` increasing; two equal consecutive `at` make a step, three are refused."""
    for i, (prev, cur) in enumerate(zip(points, points[1:])):
        if cur.at < prev.at:
            raise ValueError(f"expected 'at' increasing, got {prev.at:g} then {cur.at:g}")
        if cur.at == prev.at and i > 0 and points[i - 1].at == prev.at:
            raise ValueError(f"expected at most two points at {cur.at:g} (one step)")
    if points[0].at == points[-1].at:
        raise ValueError("expected the last 'at' above the first")
    return points


class Bands(ConfigModel):
    """`bands:` per criterion, >= 2 points with `at` increasing (two equal `at` make a step).

    Between points the sub-score is linear; below the first point it is the first score,
    above the last the last score. At a step (two points with the same `at`) the value
    exactly at it takes the first point's score, values above it the second's. Scores
    may rise or fall (a variance scores best when small).
    """

    oos_sharpe: list[BandPoint] | None = Field(default=None, min_length=2)
    consistency: list[BandPoint] | None = Field(default=None, min_length=2)
    oos_is_ratio: list[BandPoint] | None = Field(default=None, min_length=2)
    dsr: list[BandPoint] | None = Field(default=None, min_length=2)
    param_stability: list[BandPoint] | None = Field(default=None, min_length=2)
    stability_variance: list[BandPoint] | None = Field(default=None, min_length=2)

    @field_validator(*CRITERIA)
    @classmethod
    def _band_ordered(cls, points: list[BandPoint] | None) -> list[BandPoint] | None:
        return None if points is None else _ordered(points)


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
    """One grading profile: weights, bands, grade thresholds and caps (a list, may be empty).

    `name` is the profile's name (set by `load_grading_config`, not read from the YAML's
    profile body). Every weighted criterion needs a band.
    """

    weights: Weights
    bands: Bands
    grades: GradeThresholds
    caps: list[Cap]
    name: str = CUSTOM_PROFILE

    @model_validator(mode="after")
    def _bands_for_weights(self) -> "GradingConfig":
        missing = [c for c, _ in self.weights.items() if getattr(self.bands, c) is None]
        if missing:
            raise ValueError(f"expected a band for each weighted criterion; missing: {', '.join(missing)}")
        return self


class GradingFile(ConfigModel):
    """The whole `grading.yaml`: the default profile's name and the profiles."""

    default_profile: str
    profiles: dict[str, GradingConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _default_exists(self) -> "GradingFile":
        if self.default_profile not in self.profiles:
            raise ValueError(f"expected default_profile to name a profile ({', '.join(self.profiles)}), "
                             f"got {self.default_profile!r}")
        return self


def load_grading_file(path: Path | str | None = None) -> GradingFile:
    """Every profile of a grading YAML (default: the packaged `config/grading.yaml`).

    A file in the one-profile layout becomes a `GradingFile` with the profile "custom".

    Raises:
        ConfigError: missing file, invalid YAML, or an invalid value (the message names
            the file and the dotted key path, e.g. "profiles.strict.weights").
    """
    doc = read_yaml(Path(path) if path is not None else DEFAULT_GRADING_FILE)
    data = doc.data
    try:
        if isinstance(data, dict) and ("profiles" in data or "default_profile" in data):
            out = GradingFile.model_validate(data, strict=True)
            return out.model_copy(update={"profiles": {k: v.model_copy(update={"name": k})
                                                       for k, v in out.profiles.items()}})
        one = GradingConfig.model_validate(data, strict=True)
        return GradingFile(default_profile=CUSTOM_PROFILE, profiles={CUSTOM_PROFILE: one})
    except ValidationError as err:
        root = GradingFile if isinstance(data, dict) and ("profiles" in data or "default_profile" in data) \
            else GradingConfig
        raise to_config_error(err, doc, root) from None


def load_grading_config(path: Path | str | None = None, profile: str | None = None) -> GradingConfig:
    """One validated grading profile: `profile`, or the file's `default_profile`.

    Raises:
        ConfigError (core.errors, exit code 2): the file is missing, not valid YAML, a
            value is invalid (the message names the file and dotted key path), or
            `profile` is not one of the file's profiles.
    """
    gf = load_grading_file(path)
    name = gf.default_profile if profile is None else profile
    if name not in gf.profiles:
        where = Path(path) if path is not None else DEFAULT_GRADING_FILE
        raise ConfigError(str(where), "default_profile" if profile is None else "",
                          f"no grading profile {name!r}; expected one of {', '.join(gf.profiles)}")
    return gf.profiles[name]


def _real(name: str, value: object, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out!r}")
    if (lo is not None and out < lo) or (hi is not None and out > hi):
        hi_text = "inf" if hi is None else f"{hi:g}"
        raise ValueError(f"{name} must be in [{lo:g}, {hi_text}], got {out:g}")
    return out


@dataclass(frozen=True)
class Criteria:
    """The graded measurements of one strategy's walk-forward research (docs/grading.md).

    Attributes:
        oos_sharpe: ANNUALISED Sharpe of the stitched out-of-sample record (each window's
            chosen combo on that window's OOS days; daily returns × √365). Any finite number.
        consistency: share of OOS windows whose chosen combo had a positive return, in [0, 1].
        oos_is_ratio: oos_sharpe / IS Sharpe of the chosen combos' stitched in-sample
            returns; 0 when the IS Sharpe is <= 0. Any finite number.
        dsr: Deflated Sharpe Ratio where the choice is made: per window the IS-best combo
            against that window's IS trials (N_eff, V), averaged over the windows
            (`core.optimize.sharpe_stats.selection_dsr`), a probability in [0, 1].
        param_stability: fraction in [0, 1]: max(0, 1 − RMS(M_k − M0) / max(|M0|, 0.1))
            over the ±10/20 % perturbations of the applied combo (`core.optimize.stability`).
        stability_variance: (1/K)·Σ(M_k − M0)², the variance of the perturbations'
            annualised OOS Sharpe around the applied combo's (>= 0), or None when not
            measured (results stored before it existed).

    Raises:
        ValueError: a value is not a finite real, or a fraction is outside [0, 1].
    """

    oos_sharpe: float
    consistency: float
    oos_is_ratio: float
    dsr: float
    param_stability: float
    stability_variance: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "oos_sharpe", _real("oos_sharpe", self.oos_sharpe))
        object.__setattr__(self, "consistency", _real("consistency", self.consistency, 0.0, 1.0))
        object.__setattr__(self, "oos_is_ratio", _real("oos_is_ratio", self.oos_is_ratio))
        object.__setattr__(self, "dsr", _real("dsr", self.dsr, 0.0, 1.0))
        object.__setattr__(self, "param_stability", _real("param_stability", self.param_stability, 0.0, 1.0))
        if self.stability_variance is not None:
            object.__setattr__(self, "stability_variance",
                               _real("stability_variance", self.stability_variance, 0.0, None))

    def as_dict(self) -> dict[str, float | None]:
        """{criterion: value} of every criterion, in `CRITERIA` order."""
        return {c: getattr(self, c) for c in CRITERIA}


@dataclass(frozen=True)
class GradeResult:
    """Outcome of `grade`.

    Attributes:
        grade: "A", "B", "C", "D" or "F", after caps.
        score: 100 · Σ weight · sub-score, in [0, 100] (caps do not change it).
        sub_scores: weighted criterion -> sub-score in [0, 1] (read-only mapping).
        uncapped_grade: the grade the score alone gives.
        caps_applied: one line per cap whose rule applied, e.g. "dsr 0.42 < 0.5: at most D".
        profile: name of the grading profile used.
        caps_binding: the lines of `caps_applied` whose max_grade is below the uncapped
            grade, i.e. the caps that changed the grade (what the CLI prints).
    """

    grade: str
    score: float
    sub_scores: Mapping[str, float]
    uncapped_grade: str = ""
    caps_applied: tuple[str, ...] = field(default_factory=tuple)
    profile: str = ""
    caps_binding: tuple[str, ...] = field(default_factory=tuple)


def sub_score(value: float, band: list[BandPoint]) -> float:
    """Piecewise-linear sub-score of `value` on `band`, in [0, 1].

    Clamped to the end scores outside the band; at a step (two points with the same
    `at`) the value exactly there takes the first point's score.
    """
    x = float(value)
    if x <= band[0].at:
        return float(band[0].score)
    for prev, cur in zip(band, band[1:]):
        if x <= cur.at:
            if cur.at == prev.at:
                return float(prev.score)
            frac = (x - prev.at) / (cur.at - prev.at)
            return float(prev.score + frac * (cur.score - prev.score))
    return float(band[-1].score)


def grade(criteria: Criteria, cfg: GradingConfig) -> GradeResult:
    """Grade one strategy with one profile: sub-scores by band, weighted score 0–100, letter, caps.

        sub_c = band_c(criteria.c)                 (piecewise linear, clamped; in [0, 1])
        score = 100 · Σ_c w_c · sub_c              (over the profile's weighted criteria)
        grade = A if score >= grades.A, else B if >= grades.B, else C, D, else F;
                then the worst of that and the `max_grade` of every applying cap.

    Raises:
        ValueError: `criteria` is not a `Criteria`, `cfg` not a `GradingConfig`, or a
            criterion the profile weighs (or caps) is None in `criteria`.
    """
    if not isinstance(criteria, Criteria):
        raise ValueError(f"criteria must be a Criteria, got {type(criteria).__name__}")
    if not isinstance(cfg, GradingConfig):
        raise ValueError(f"cfg must be a GradingConfig (load_grading_config), got {type(cfg).__name__}")
    subs: dict[str, float] = {}
    total = 0.0
    for c, w in cfg.weights.items():
        value = getattr(criteria, c)
        if value is None:
            raise ValueError(f"grading profile {cfg.name!r} weighs {c}, which was not measured")
        subs[c] = sub_score(value, getattr(cfg.bands, c))
        total += w * subs[c]
    score = round(min(100.0, max(0.0, 100.0 * total)), 9)  # 85.0 stays 85.0, not 84.99999999999999
    thresholds = cfg.grades
    letter = next((g for g in GRADES[:-1] if score >= getattr(thresholds, g)), "F")
    final = letter
    applied, binding = [], []
    for cap in cfg.caps:
        value = getattr(criteria, cap.criterion)
        if value is None:
            raise ValueError(f"grading profile {cfg.name!r} caps {cap.criterion}, which was not measured")
        if cap.applies(value):
            applied.append(cap.describe(value))
            if GRADES.index(cap.max_grade) > GRADES.index(letter):
                binding.append(cap.describe(value))
            if GRADES.index(cap.max_grade) > GRADES.index(final):
                final = cap.max_grade
    return GradeResult(grade=final, score=score, sub_scores=MappingProxyType(subs), uncapped_grade=letter,
                       caps_applied=tuple(applied), profile=cfg.name, caps_binding=tuple(binding))
