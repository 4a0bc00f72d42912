"""The DVC pipeline end to end: real `dvc repro` and `dvc exp run` on the demo data with the tiny model."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, set_params, stage_env

SETTINGS = ["A", "C", "P", "AC", "AP", "CP", "ACP", "ratio", "count"]
MODELS = ["none", *SETTINGS]
EVALS = ["eval_nlp", "eval_code", "eval_align", "judge"]
# fetch, subsample, mix, base, sft, benchmarks, the evaluations, decontam, report
STAGES = 3 + 3 + 9 + 1 + 9 + 6 + len(EVALS) * len(MODELS) + 1 + 1
TINY = {  # the tiny model, and evaluations cut to what shows each stage works
    "model.base": "tiny",
    "sft.lr": 3e-3,
    "sft.max_length": 128,
    "eval.nlp.tasks": ["arc_challenge", "winogrande"],
    "eval.nlp.limit": 2,
    "eval.code.limit": 1,
    "eval.code.n_samples": 1,
    "eval.code.max_new_tokens": 16,
    "eval.align.limit": 1,
    "eval.align.max_new_tokens": 8,
}


def run(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=stage_env(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result


def test_sweep_and_seed_stages_mirror_the_table_stages() -> None:
    """The *_sweep and *_seed groups repeat their table group's block for other model ids: no drift."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for family in ("sft", *EVALS):
        table = json.dumps(stages[family]["do"])
        if family != "sft":  # the table groups map a model id (key) to its directory (item)
            table = table.replace("${item}", "models/sft/${key}").replace("${key}", "${item}")
        assert json.dumps(stages[f"{family}_sweep"]["do"]) == table, family
        for group in (f"{family}_seed", f"{family}_sweep_seed"):
            block = {k: v for k, v in stages[group].items() if k != "matrix"}
            seeded = json.dumps(block).replace(" --seed ${item.seed}", "").replace("-s${item.seed}", "")
            assert seeded.replace("${item.setting}", "${item}") == table, group
        assert stages[f"{family}_seed"]["matrix"]["setting"] == stages["sft"]["foreach"]


def sh(*args: str, cwd: Path, timeout: int = 600) -> str:
    result = run(*args, cwd=cwd, timeout=timeout)
    return result.stdout + result.stderr


def dvc(*args: str, cwd: Path, timeout: int = 600) -> str:
    return sh(sys.executable, "-m", "dvc", *args, cwd=cwd, timeout=timeout)


def dvc_json(*args: str, cwd: Path) -> Any:
    return json.loads(run(sys.executable, "-m", "dvc", *args, "--json", cwd=cwd).stdout)


def commit(project: Path, message: str) -> None:
    sh("git", "add", "-A", cwd=project)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message, cwd=project)


def clean_clone(target: Path) -> Path:
    """A fresh git repository holding the project's files, as a researcher's clone would (tiny model)."""
    listed = sh("git", "ls-files", "--cached", "--others", "--exclude-standard", cwd=REPO).split("\n")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    set_params(target, **TINY)
    sh("git", "init", "-q", cwd=target)
    commit(target, "clone")
    return target


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def data_digests(project: Path) -> dict[str, str]:
    """sha256 of every file the data stages (fetch, subsample, mix) wrote."""
    files = sorted(p for d in ("fetched", "subsample", "mix") for p in (project / "data" / d).rglob("*") if p.is_file())
    return {p.relative_to(project).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = clean_clone(tmp_path_factory.mktemp("clone"))
    assert len(ran_stages(dvc("repro", cwd=project))) == STAGES
    commit(project, "baseline results")  # dvc.lock: what `dvc metrics diff` compares against
    return project


def test_repro_after_repro_is_a_fast_no_op(project: Path) -> None:
    # The same no-op took 2.35-3.6 s within one hour on this shared 2-core VM (bench/README.md):
    # the best of three runs measures DVC's work rather than the neighbours' load.
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        output = dvc("repro", cwd=project)
        timings.append(time.perf_counter() - start)
        assert ran_stages(output) == []
    assert min(timings) <= 3.0, f"no-op repro took {', '.join(f'{t:.1f}' for t in timings)} s"


def test_two_clean_runs_give_byte_identical_data(project: Path, tmp_path: Path) -> None:
    other = clean_clone(tmp_path)
    dvc("repro", "mix", cwd=other)  # the data stages: what `data/` holds
    digests = data_digests(project)
    assert len(digests) == 3 * 2 + 3 * 3 + 9 * 2
    assert data_digests(other) == digests


def test_training_curves_are_dvc_plots(project: Path) -> None:
    plots = json.dumps(dvc_json("plots", "show", cwd=project))
    for setting in SETTINGS:
        for curve in ("loss", "learning_rate", "grad_norm", "num_input_tokens_seen"):
            assert f"reports/sft/{setting}/live/plots/metrics/{curve}.tsv" in plots


def assert_reran(output: str, required: set[str], may_follow: set[str]) -> None:
    """`required` ran, and besides them only stages of `may_follow` (skipped when their inputs come out the same)."""
    ran = set(ran_stages(output))
    assert required <= ran, sorted(required - ran)
    assert ran <= required | may_follow, sorted(ran - required - may_follow)


def evaluations(*models: str) -> set[str]:
    return {f"{family}@{model}" for family in EVALS for model in models}


def test_report_has_both_tables_and_the_plots(project: Path) -> None:
    results = (project / "reports" / "results.md").read_text()
    assert "Table 1" in results and "Table 2" in results
    for png in ("benchmarks", "flask_profile", "loss_curves"):
        assert (project / "reports" / "plots" / f"{png}.png").stat().st_size > 10_000


def test_ratio_experiment_reruns_only_the_ratio_stages(project: Path) -> None:
    output = dvc("exp", "run", "-S", "mix.ratio=1.5", cwd=project)
    assert_reran(output, {"mix@ratio", "sft@ratio"}, evaluations("ratio") | {"report"})
    assert ran_stages(dvc("exp", "run", "-S", "mix.ratio=1.5", cwd=project)) == []
    changed = dvc_json("metrics", "diff", cwd=project)
    assert "data/mix/ratio.metrics.json" in changed and "reports/sft/ratio/metrics.json" in changed
    others = [m for m in MODELS if m != "ratio"]
    touched = [name for name in changed if any(f"/{m}/" in name or f"/{m}." in name for m in others)]
    assert touched == [], touched


def test_code_temperature_experiment_reruns_only_the_code_evaluation(project: Path) -> None:
    output = dvc("exp", "run", "-S", "eval.code.temperature=0.5", cwd=project)
    assert_reran(output, {f"eval_code@{model}" for model in MODELS}, {"report"})


def test_learning_rate_experiment_reruns_only_training_and_what_follows(project: Path) -> None:
    output = dvc("exp", "run", "-S", "sft.lr=2e-3", cwd=project)
    assert_reran(output, {f"sft@{setting}" for setting in SETTINGS}, evaluations(*SETTINGS) | {"report"})


def test_a_sweep_point_and_a_seed_add_only_their_stages(project: Path) -> None:
    # 56 new stages (sweep point, a seed of every setting, their evaluations): ~10 min here
    output = dvc("exp", "run", "-S", "mix.sweep=[ratio-0.5]", "-S", "seeds=[7]", cwd=project, timeout=1800)
    point = {f"{family}_sweep@ratio-0.5" for family in ("mix", "sft", *EVALS)}
    replicas = {f"{family}_seed@{setting}-7" for family in ("sft", *EVALS) for setting in SETTINGS}
    replicas |= {f"{family}_sweep_seed@ratio-0.5-7" for family in ("sft", *EVALS)}
    assert_reran(output, point | replicas | {"report"}, set())
    with open(project / "reports" / "results.csv", newline="") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    assert float(rows["ratio-0.5"]["mix.ratio"]) == 0.5 and rows["ratio-0.5"]["nlp.avg"] != ""
    assert rows["A-s7"]["setting"] == "A" and rows["A-s7"]["seed"] == "7"
    claims = json.loads((project / "reports" / "claims.json").read_text())["claims"]
    assert all("ci_low" in claims[c] for c in ("p_best_nlp", "c_best_code", "c_raises_alignment"))
    assert " ± " in (project / "reports" / "results.md").read_text()
