"""Grading profiles (issue 13, finding 4 and 8): the roadmap's scheme is the default, "strict" is kept.

roadmap: OOS Sharpe 25 points (0 -> 2 linear to 15, 2 -> 5 linear to 25), consistency 25
(50 -> 100 %), OOS/IS 20 (0.3 -> 1.0), DSR 15 (0.5 -> 1.0), stability 15 (variance of the
perturbed OOS Sharpes: < 0.1 full, 0.1 -> 1.0 from 15 to 5, > 1.0 none), A >= 90, B >= 80,
C >= 70, D >= 60, no caps.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.errors import ConfigError
from core.optimize.grade import DEFAULT_GRADING_FILE, Criteria, grade, load_grading_config, load_grading_file, sub_score
from core.optimize.grade_text import grade_lines


@pytest.fixture(scope="module")
def roadmap():
    return load_grading_config()


def _c(oos=0.0, cons=0.5, ratio=0.3, dsr=0.5, stab=0.0, var=2.0) -> Criteria:
    return Criteria(oos_sharpe=oos, consistency=cons, oos_is_ratio=ratio, dsr=dsr, param_stability=stab,
                    stability_variance=var)


def test_the_default_profile_is_the_roadmap(roadmap) -> None:
    assert roadmap.name == "roadmap"
    assert dict(roadmap.weights.items()) == {"oos_sharpe": 0.25, "consistency": 0.25, "oos_is_ratio": 0.20,
                                             "dsr": 0.15, "stability_variance": 0.15}
    assert (roadmap.grades.A, roadmap.grades.B, roadmap.grades.C, roadmap.grades.D) == (90, 80, 70, 60)
    assert roadmap.caps == []
    gf = load_grading_file()
    assert gf.default_profile == "roadmap" and set(gf.profiles) == {"roadmap", "strict"}
    assert load_grading_config(profile="strict").name == "strict"


@pytest.mark.parametrize(("oos", "points"), [(-1.0, 0.0), (0.0, 0.0), (1.0, 7.5), (2.0, 15.0), (3.5, 20.0),
                                             (5.0, 25.0), (9.0, 25.0)])
def test_oos_sharpe_points(roadmap, oos: float, points: float) -> None:
    assert grade(_c(oos=oos), roadmap).score == pytest.approx(points)


@pytest.mark.parametrize(("cons", "ratio", "dsr", "points"), [
    (0.75, 0.3, 0.5, 12.5), (1.0, 0.3, 0.5, 25.0), (0.4, 0.3, 0.5, 0.0),
    (0.5, 0.65, 0.5, 10.0), (0.5, 1.2, 0.5, 20.0),
    (0.5, 0.3, 0.75, 7.5), (0.5, 0.3, 1.0, 15.0), (0.5, 0.3, 0.2, 0.0),
])
def test_consistency_ratio_and_dsr_points(roadmap, cons, ratio, dsr, points) -> None:
    assert grade(_c(cons=cons, ratio=ratio, dsr=dsr), roadmap).score == pytest.approx(points)


@pytest.mark.parametrize(("var", "points"), [(0.0, 15.0), (0.0999, 15.0), (0.1, 15.0), (0.55, 10.0),
                                             (1.0, 5.0), (1.0001, 0.0), (3.0, 0.0)])
def test_stability_variance_points(roadmap, var: float, points: float) -> None:
    assert grade(_c(var=var), roadmap).score == pytest.approx(points)


def test_bands_and_no_caps(roadmap) -> None:
    top = grade(_c(oos=5.0, cons=1.0, ratio=1.0, dsr=1.0, var=0.0), roadmap)
    assert top.score == pytest.approx(100.0) and top.grade == "A" and top.profile == "roadmap"
    cases = [  # (consistency, OOS/IS, stability variance) with OOS Sharpe 5 and DSR 1 -> points
        ((0.8, 1.0, 0.0), 90.0, "A"), ((0.798, 1.0, 0.0), 89.9, "B"), ((0.6, 1.0, 0.0), 80.0, "B"),
        ((0.5, 0.825, 0.0), 70.0, "C"), ((0.5, 0.475, 0.0), 60.0, "D"), ((0.5, 0.475, 0.109), 59.9, "F"),
    ]
    for (cons, ratio, var), points, letter in cases:
        res = grade(_c(oos=5.0, cons=cons, ratio=ratio, dsr=1.0, var=var), roadmap)
        assert res.score == pytest.approx(points) and res.grade == letter, (points, res)
    # DSR 0.2 and OOS Sharpe <= 0 cap nothing in the roadmap profile
    weak = grade(_c(oos=-0.5, cons=1.0, ratio=1.0, dsr=0.2, var=0.0), roadmap)
    assert weak.caps_applied == () and weak.caps_binding == () and weak.score == pytest.approx(60.0)
    assert weak.grade == "D"


def test_strict_caps_only_listed_as_binding_when_they_change_the_grade() -> None:
    strict = load_grading_config(profile="strict")
    noise = Criteria(oos_sharpe=0.1, consistency=0.5, oos_is_ratio=0.1, dsr=0.2, param_stability=0.3)
    res = grade(noise, strict)                     # F by score; the DSR cap applies but changes nothing
    assert res.grade == "F" and res.caps_applied and res.caps_binding == ()
    assert not any(line.startswith("cap") for line in grade_lines(_summary(res, noise)))
    capped = Criteria(oos_sharpe=2.5, consistency=0.9, oos_is_ratio=0.9, dsr=0.49, param_stability=0.9)
    res = grade(capped, strict)
    assert res.uncapped_grade == "B" and res.grade == "D" and res.caps_binding == ("dsr 0.49 < 0.5: at most D",)
    lines = grade_lines(_summary(res, capped))
    assert "cap dsr 0.49 < 0.5: at most D (uncapped grade B)" in lines
    assert lines[0] == "grade D (80.0 points, profile strict)"


def _summary(res, criteria) -> dict:
    return {"grade": res.grade, "score": res.score, "grading_profile": res.profile,
            "sub_scores": dict(res.sub_scores), "uncapped_grade": res.uncapped_grade,
            "caps_applied": list(res.caps_applied), "caps_binding": list(res.caps_binding),
            "criteria": criteria.as_dict()}


def test_old_summaries_print_without_new_fields() -> None:
    old = {"grade": "F", "score": 39.7, "criteria": {"oos_sharpe": 0.58, "consistency": 0.68, "oos_is_ratio": 0.17,
                                                      "dsr": 0.26, "param_stability": 0.67},
           "caps_applied": ["dsr 0.2641 < 0.5: at most D"], "pbo": 0.81, "p_value": 0.2}
    assert grade_lines(old) == ["grade F (39.7 points, profile ?)"]


def test_one_profile_layout_still_loads(tmp_path: Path) -> None:
    strict = yaml.safe_load(DEFAULT_GRADING_FILE.read_text(encoding="utf-8"))["profiles"]["strict"]
    path = tmp_path / "grading.yaml"
    path.write_text(yaml.safe_dump(strict), encoding="utf-8")
    cfg = load_grading_config(path)
    assert cfg.name == "custom" and dict(cfg.weights.items())["oos_sharpe"] == 0.30
    with pytest.raises(ConfigError, match="no grading profile 'strict'"):
        load_grading_config(path, profile="strict")


def test_unknown_profile_and_missing_criterion(roadmap) -> None:
    with pytest.raises(ConfigError, match="no grading profile 'lenient'; expected one of roadmap, strict"):
        load_grading_config(profile="lenient")
    legacy = Criteria(oos_sharpe=1.0, consistency=0.6, oos_is_ratio=0.5, dsr=0.8, param_stability=0.7)
    with pytest.raises(ValueError, match="weighs stability_variance, which was not measured"):
        grade(legacy, roadmap)


def test_sub_score_step_and_falling_band(roadmap) -> None:
    band = roadmap.bands.stability_variance
    assert sub_score(1.0, band) == pytest.approx(1 / 3)
    assert sub_score(1.0 + 1e-12, band) == 0.0
    assert sub_score(-1.0, band) == 1.0
