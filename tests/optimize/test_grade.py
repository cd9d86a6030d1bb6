"""A–F research grade (core.optimize.grade, config/grading.yaml): the "strict" profile.

These tests pin the earlier scheme, kept as the named profile "strict" of the packaged
grading.yaml (issue 13); the default "roadmap" profile is tested in
test_grading_profiles.py. `_shipped()` is the strict profile written in the one-profile
layout, which still loads (as the profile "custom").
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from core.errors import ConfigError
from core.optimize.grade import (
    CRITERIA,
    DEFAULT_GRADING_FILE,
    Criteria,
    GradingConfig,
    grade,
    load_grading_config,
    sub_score,
)

#: The five criteria of the strict profile (CRITERIA also holds stability_variance).
STRICT = ("oos_sharpe", "consistency", "oos_is_ratio", "dsr", "param_stability")

STRONG = Criteria(oos_sharpe=2.2, consistency=0.9, oos_is_ratio=0.85, dsr=0.97, param_stability=0.9)
NOISE = Criteria(oos_sharpe=0.1, consistency=0.5, oos_is_ratio=0.1, dsr=0.2, param_stability=0.3)


@pytest.fixture(scope="module")
def cfg() -> GradingConfig:
    return load_grading_config(profile="strict")


def _shipped() -> dict[str, Any]:
    """The packaged strict profile as a one-profile grading file."""
    return yaml.safe_load(DEFAULT_GRADING_FILE.read_text(encoding="utf-8"))["profiles"]["strict"]


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "grading.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _linear_cfg(tmp_path: Path) -> GradingConfig:
    """Equal weights, identity bands on [0, 1], no caps: score = 20 · Σ values."""
    data = _shipped()
    data["weights"] = {c: 0.2 for c in STRICT}
    data["bands"] = {c: [{"at": 0.0, "score": 0.0}, {"at": 1.0, "score": 1.0}] for c in STRICT}
    data["caps"] = []
    return load_grading_config(_write(tmp_path, data))


def test_shipped_config_values(cfg: GradingConfig) -> None:
    assert DEFAULT_GRADING_FILE.name == "grading.yaml"
    assert cfg.name == "strict"
    assert [c for c, _ in cfg.weights.items()] == list(STRICT)
    assert sum(getattr(cfg.weights, c) for c in STRICT) == pytest.approx(1.0, abs=1e-9)
    assert (cfg.grades.A, cfg.grades.B, cfg.grades.C, cfg.grades.D) == (85, 70, 55, 40)
    assert [(c.criterion, c.max_grade) for c in cfg.caps] == [("oos_sharpe", "F"), ("dsr", "D")]


def test_strong_criteria_grade_a(cfg: GradingConfig) -> None:
    res = grade(STRONG, cfg)
    assert res.grade == "A"
    assert res.score == pytest.approx(100.0)
    assert res.caps_applied == ()
    assert set(res.sub_scores) == set(STRICT) and set(CRITERIA) >= set(STRICT)


def test_noise_like_criteria_grade_f(cfg: GradingConfig) -> None:
    res = grade(NOISE, cfg)
    # sub-scores: 0.06, 0.3, 0.1, 0, 1/6 -> 100·(0.3·0.06 + 0.2·0.3 + 0.15·0.1 + 0 + 0.15/6) = 11.8
    assert res.score == pytest.approx(11.8)
    assert res.grade == "F"
    assert res.uncapped_grade == "F"


def test_middling_criteria_grade_c(cfg: GradingConfig) -> None:
    c = Criteria(oos_sharpe=1.0, consistency=0.6, oos_is_ratio=0.5, dsr=0.85, param_stability=0.6)
    res = grade(c, cfg)
    # 0.6, 0.55, 0.6, 2/3, 2/3 -> 100·(0.18 + 0.11 + 0.09 + 0.13333 + 0.1) = 61.33
    assert res.score == pytest.approx(61.3333, abs=1e-3)
    assert res.grade == "C"


def test_sub_score_is_piecewise_linear_and_clamped(cfg: GradingConfig) -> None:
    band = cfg.bands.oos_sharpe
    assert sub_score(-1.0, band) == 0.0
    assert sub_score(0.0, band) == 0.0
    assert sub_score(0.25, band) == pytest.approx(0.15)
    assert sub_score(0.75, band) == pytest.approx(0.45)
    assert sub_score(1.5, band) == pytest.approx(0.8)
    assert sub_score(2.0, band) == 1.0
    assert sub_score(5.0, band) == 1.0


def test_grade_thresholds_are_inclusive(tmp_path: Path) -> None:
    lin = _linear_cfg(tmp_path)
    for value, letter in [(0.85, "A"), (0.8499, "B"), (0.70, "B"), (0.55, "C"), (0.40, "D"), (0.3999, "F")]:
        res = grade(Criteria(value, value, value, value, value), lin)
        assert res.score == pytest.approx(100 * value)
        assert res.grade == letter, (value, res)


def test_cap_nonpositive_oos_sharpe_gives_f(cfg: GradingConfig) -> None:
    c = Criteria(oos_sharpe=0.0, consistency=0.9, oos_is_ratio=0.9, dsr=0.99, param_stability=0.9)
    res = grade(c, cfg)
    assert res.uncapped_grade == "B"  # 70 points from the other four criteria
    assert res.grade == "F"
    assert res.caps_applied == ("oos_sharpe 0 <= 0: at most F",)


def test_cap_low_dsr_gives_at_most_d(cfg: GradingConfig) -> None:
    c = Criteria(oos_sharpe=2.5, consistency=0.9, oos_is_ratio=0.9, dsr=0.49, param_stability=0.9)
    res = grade(c, cfg)
    assert res.score == pytest.approx(80.0)
    assert res.uncapped_grade == "B"
    assert res.grade == "D"
    at_threshold = grade(Criteria(2.5, 0.9, 0.9, 0.5, 0.9), cfg)  # DSR = 0.5 is not < 0.5
    assert at_threshold.grade == "B" and at_threshold.caps_applied == ()


def test_cap_never_raises_a_grade(cfg: GradingConfig) -> None:
    res = grade(NOISE, cfg)  # DSR 0.2 triggers the D cap; the score already gives F
    assert res.caps_applied == ("dsr 0.2 < 0.5: at most D",)
    assert res.grade == "F"


def test_weights_come_from_the_yaml(tmp_path: Path, cfg: GradingConfig) -> None:
    c = Criteria(oos_sharpe=1.0, consistency=0.6, oos_is_ratio=0.5, dsr=0.85, param_stability=0.6)
    data = _shipped()
    data["weights"]["oos_sharpe"] = 0.40
    data["weights"]["consistency"] = 0.10
    changed = load_grading_config(_write(tmp_path, data))
    before, after = grade(c, cfg), grade(c, changed)
    # Δ = 100·(0.1·sub_oos − 0.1·sub_consistency) = 100·(0.06 − 0.055) = 0.5
    assert after.score - before.score == pytest.approx(0.5)


def test_bands_and_thresholds_come_from_the_yaml(tmp_path: Path, cfg: GradingConfig) -> None:
    data = _shipped()
    data["bands"]["oos_sharpe"] = [{"at": 0.0, "score": 0.0}, {"at": 1.0, "score": 1.0}]
    data["grades"] = {"A": 60, "B": 50, "C": 45, "D": 30}
    changed = load_grading_config(_write(tmp_path, data))
    c = Criteria(oos_sharpe=1.0, consistency=0.6, oos_is_ratio=0.5, dsr=0.85, param_stability=0.6)
    assert grade(c, changed).sub_scores["oos_sharpe"] == 1.0
    assert grade(c, changed).score == pytest.approx(grade(c, cfg).score + 12.0)  # 0.3·(1 − 0.6)·100
    assert grade(c, cfg).grade == "C"
    assert grade(c, changed).grade == "A"


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(d: dict[str, Any]) -> None:
        node = d
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


def _drop(path: list[str]) -> Callable[[dict[str, Any]], None]:
    def mutate(d: dict[str, Any]) -> None:
        node = d
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return mutate


@pytest.mark.parametrize(
    ("mutate", "key_path", "words"),
    [
        (_set(["weights", "dsr"], 0.3), "weights", "summing to 1"),
        (_drop(["bands", "dsr"]), "", "a band for each weighted criterion"),
        (_set(["weights", "dsr"], 0.0), "weights.dsr", "> 0"),
        (_set(["weights", "dsr"], "0.2"), "weights.dsr", "a number"),
        (_drop(["weights", "dsr"]), "weights", "summing to 1"),
        (_set(["weights", "sharpe"], 0.1), "weights.sharpe", "unknown"),
        (_set(["bands", "dsr", 1], {"at": 0.4, "score": 0.5}), "bands.dsr", "'at' increasing"),
        (_set(["bands", "dsr"], [{"at": 0.5, "score": 0.0}, {"at": 0.5, "score": 0.5},
                                 {"at": 0.5, "score": 1.0}]), "bands.dsr", "at most two points"),
        (_set(["bands", "dsr", 1, "score"], 1.5), "bands.dsr.1.score", "<= 1"),
        (_set(["bands", "dsr"], [{"at": 0.5, "score": 0.0}]), "bands.dsr", "at least 2"),
        (_set(["grades", "B"], 90), "grades", "A > B > C > D"),
        (_set(["grades", "D"], 0), "grades.D", "> 0"),
        (_set(["caps", 0, "below"], 0.1), "caps.0", "exactly one"),
        (_set(["caps", 0, "criterion"], "sharpe"), "caps.0.criterion", "oos_sharpe"),
        (_set(["caps", 1, "max_grade"], "E"), "caps.1.max_grade", "'F'"),
        (_drop(["caps"]), "caps", "missing"),
    ],
)
def test_bad_file_names_the_key(tmp_path: Path, mutate, key_path: str, words: str) -> None:
    data = copy.deepcopy(_shipped())
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_grading_config(path)
    assert info.value.key_path == key_path
    assert words in info.value.message
    assert str(path) in str(info.value)


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_grading_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("weights: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_grading_config(broken)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"oos_sharpe": float("nan")}, "oos_sharpe"),
        ({"consistency": 1.2}, "consistency"),
        ({"consistency": -0.1}, "consistency"),
        ({"oos_is_ratio": float("inf")}, "oos_is_ratio"),
        ({"dsr": 1.01}, "dsr"),
        ({"param_stability": "high"}, "param_stability"),
        ({"dsr": True}, "dsr"),
    ],
)
def test_bad_criteria(kwargs, word) -> None:
    values = {"oos_sharpe": 1.0, "consistency": 0.5, "oos_is_ratio": 0.5, "dsr": 0.9, "param_stability": 0.5}
    values.update(kwargs)
    with pytest.raises(ValueError, match=word):
        Criteria(**values)


def test_grade_bad_arguments(cfg: GradingConfig) -> None:
    with pytest.raises(ValueError, match="criteria"):
        grade({"oos_sharpe": 1.0}, cfg)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cfg"):
        grade(STRONG, {"weights": {}})  # type: ignore[arg-type]
