"""`radar config check` validates grading.yaml too: one line (file, key, what was expected), exit 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.cli.main import main
from core.paths import DEFAULT_CONFIG_DIR


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A copy of the packaged config/*.yaml."""
    folder = tmp_path / "config"
    folder.mkdir()
    for f in DEFAULT_CONFIG_DIR.glob("*.yaml"):
        shutil.copy(f, folder / f.name)
    return folder


def _check(capsys: pytest.CaptureFixture[str], config_dir: Path) -> tuple[int, str, str]:
    code = main(["--config-dir", str(config_dir), "config", "check", "--env-file", str(config_dir / "no.env")])
    out, err = capsys.readouterr()
    return code, out, err


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_the_summary_lists_the_grading_file(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _check(capsys, config_dir)
    assert (code, err) == (0, "")
    flat = " ".join(out.split())
    assert (f"grading: {config_dir / 'grading.yaml'}: profile roadmap: weights oos_sharpe 0.25, "
            "consistency 0.25, oos_is_ratio 0.2, dsr 0.15, stability_variance 0.15" in flat)
    assert "A >= 90, B >= 80, C >= 70, D >= 60; 0 caps" in flat


@pytest.mark.parametrize("old, new, message", [
    ("      oos_sharpe: 0.30", "      oos_sharpe: 0.40",
     "grading.yaml: profiles.strict.weights: expected weights summing to 1, got 1.1 (line 45)"),
    ("        - {at: 0.95, score: 1.0}", "        - {at: 0.95, score: 2.0}",
     "grading.yaml: profiles.strict.bands.dsr.2.score: expected a value <= 1, got 2.0"),
    ("      D: 40\n", "", "grading.yaml: profiles.strict.grades.D: "),
    ("        max_grade: D", "        max_grade: E", "grading.yaml: profiles.strict.caps.1.max_grade: "),
    ("default_profile: roadmap", "default_profile: lenient", "grading.yaml: expected default_profile to name a profile (roadmap, strict)"),
])
def test_a_bad_grading_yaml_is_one_line_exit_2(config_dir: Path, capsys: pytest.CaptureFixture[str],
                                               old: str, new: str, message: str) -> None:
    _edit(config_dir / "grading.yaml", old, new)
    code, out, err = _check(capsys, config_dir)
    assert (code, out) == (2, "")
    assert err.startswith(f"radar: error: {config_dir}/{message}")
    assert err.count("\n") == 1


def test_without_grading_yaml_the_packaged_one_is_checked_and_named(config_dir: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (config_dir / "grading.yaml").unlink()
    code, out, _ = _check(capsys, config_dir)
    assert code == 0
    assert (f"grading: {DEFAULT_CONFIG_DIR / 'grading.yaml'} (packaged; {config_dir} has none)"
            in " ".join(out.split()))
