"""stages.design: a fixed-budget subset design written into params.yaml, comments and other mixtures kept."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from instmix.check import problems
from instmix.data.mixtures import Budget, subset_design
from tests.conftest import REPO, set_params, stage_env


def test_every_subset_at_one_budget_with_equal_weights() -> None:
    design = subset_design(("alpaca", "codealpaca", "p3"), Budget(records=12))
    assert list(design) == ["fixed_a", "fixed_c", "fixed_p", "fixed_ac", "fixed_ap", "fixed_cp", "fixed_acp"]
    assert design["fixed_cp"].weights == {"codealpaca": 0.5, "p3": 0.5}
    assert all(m.budget == Budget(records=12) for m in design.values())


def test_the_command_adds_the_design_and_keeps_the_rest(workdir: Path) -> None:
    set_params(workdir, mixtures={"mine": {"weights": {"alpaca": 1.0}, "budget": {"records": 8}}})
    args = [sys.executable, "-m", "stages.design", "fixed", "--tokens", "900", "--max-repeat", "2"]
    result = subprocess.run(args, cwd=workdir, env=stage_env(), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    text = (workdir / "params.yaml").read_text()
    params = yaml.safe_load(text)
    assert list(params["mixtures"]) == ["mine", "fixed_a", "fixed_c", "fixed_p", "fixed_ac", "fixed_ap", "fixed_cp",
                                        "fixed_acp"]  # fmt: skip
    assert params["mixtures"]["fixed_ac"] == {
        "weights": {"alpaca": 0.5, "codealpaca": 0.5}, "budget": {"tokens": 900}, "max_repeat": 2.0
    }  # fmt: skip
    assert params["settings"][-7:] == ["fixed_a", "fixed_c", "fixed_p", "fixed_ac", "fixed_ap", "fixed_cp", "fixed_acp"]
    assert "  fixed_acp: {weights: {alpaca: 0.3333333333333333," in text  # one line per mixture
    assert problems(params) == []
    again = subprocess.run(args, cwd=workdir, env=stage_env(), capture_output=True, text=True, check=False)
    assert again.returncode == 0 and yaml.safe_load((workdir / "params.yaml").read_text()) == params  # idempotent


def test_the_committed_params_keep_their_comments_through_the_command(tmp_path: Path) -> None:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    before = [line for line in (tmp_path / "params.yaml").read_text().splitlines() if line.lstrip().startswith("#")]
    args = [sys.executable, "-m", "stages.design", "fixed", "--records", "16", "--no-train"]
    result = subprocess.run(args, cwd=tmp_path, env=stage_env(), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "params.yaml").read_text()
    assert [line for line in text.splitlines() if line.lstrip().startswith("#")] == before
    assert yaml.safe_load(text)["settings"] == yaml.safe_load((REPO / "params.yaml").read_text())["settings"]
