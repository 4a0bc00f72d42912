"""instmix.grid.plan and stages.plan: whole models per worker, balanced by cost; the paper's plan."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from instmix.grid.plan import EVAL_COST, balance, model_of, plan
from tests.conftest import REPO, stage_env

STAGES = ["fetch@alpaca", "mix@A", "base", "decontam", "report", "sft@A-42", "eval_nlp@A-42", "judge@A-42",
          "sft@ACP-42", "eval_code@ACP-42", "sft_sweep@ratio-0.5-42", "eval_code_sweep@ratio-0.5-42",
          "eval_nlp_base@base", "judge_base@base", "eval_lik@A-42", "eval_lik_sweep@ratio-0.5-42",
          "eval_lik_base@base"]  # fmt: skip


def test_model_of_reads_the_model_id_of_model_stages_only() -> None:
    assert model_of("eval_code_sweep@ratio-0.5-42") == "ratio-0.5-42"
    assert model_of("judge_base@base") == "base"
    assert model_of("eval_lik_sweep@ratio-0.5-42") == "ratio-0.5-42" and model_of("eval_lik_base@base") == "base"
    assert model_of("mix@A") is None and model_of("base") is None and model_of("report") is None


def test_jobs_hold_whole_models_and_balance_by_cost() -> None:
    jobs = plan(STAGES, {"A-42": 40_000.0, "ACP-42": 120_000.0, "ratio-0.5-42": 60_000.0}, workers=2)
    assert [j.name for j in jobs] == ["prepare", "train-0", "train-1", "aggregate"]
    assert jobs[0].targets == ["base", "decontam", "fetch@alpaca", "mix@A"] and jobs[-1].targets == ["report"]
    assert sorted(t for j in jobs for t in j.targets) == sorted(STAGES)  # every stage exactly once
    owner = {m: j.name for j in jobs for m in j.models}
    assert owner["ACP-42"] != owner["ratio-0.5-42"]  # the two largest are split
    assert {t for t in jobs[1].targets + jobs[2].targets if t.endswith("@A-42")} == {
        "sft@A-42", "eval_nlp@A-42", "judge@A-42", "eval_lik@A-42"}  # fmt: skip
    assert sum(j.cost for j in jobs) == 220_000 + 4 * EVAL_COST
    assert balance(jobs) == pytest.approx(max(j.cost for j in jobs[1:3]) / ((220_000 + 4 * EVAL_COST) / 2))
    with pytest.raises(ValueError):
        plan(STAGES, {}, workers=0)


def test_the_paper_plan_for_4_workers_is_the_readme_one(tmp_path: Path) -> None:
    """The paper profile, from its params alone (no data built): balance <= 1.3, as the README prints."""
    for name in ("dvc.yaml", "params.yaml", "profiles", "assets", "configs", ".dvc"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, tmp_path / name)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    run = {"cwd": tmp_path, "env": stage_env(), "capture_output": True, "text": True}
    assert subprocess.run([sys.executable, "-m", "stages.profile", "paper"], **run).returncode == 0
    done = subprocess.run([sys.executable, "-m", "stages.plan", "--workers", "4", "--dry"], **run)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.strip()
    balance_line = printed.splitlines()[-1]
    assert float(balance_line.rsplit(" ", 1)[1]) <= 1.3
    assert printed in (REPO / "README.md").read_text()  # the README shows this very plan
    assert not (tmp_path / "data" / "plan").exists()  # --dry writes nothing
