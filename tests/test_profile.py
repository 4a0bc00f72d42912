"""Profiles (demo, local, paper) and the local profile on the real shared samples."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from instmix.check import sections
from instmix.core import hub
from instmix.core.files import read_jsonl
from instmix.core.params import load
from instmix.core.profile import apply, leaf_keys, profile_names, read_profile
from instmix.data.sources import benchmark_of
from instmix.data.subsample import deduplicate
from tests.conftest import REPO, run_stage, stage_env
from tests.test_pipeline import clean_clone, commit, dvc

SECTIONS = sections()  # every stage's own section and its dataclass


def test_every_profile_sets_the_same_keys() -> None:
    assert profile_names() == ["demo", "local", "paper", "paper-13b"]
    key_sets = {name: leaf_keys(read_profile(name)) for name in profile_names()}
    assert len({frozenset(keys) for keys in key_sets.values()}) == 1, key_sets


def test_committed_params_are_the_demo_profile(tmp_path: Path) -> None:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    apply("paper", tmp_path / "params.yaml")
    assert "profile: paper  #" in (tmp_path / "params.yaml").read_text()  # the key, with its comment
    apply("demo", tmp_path / "params.yaml")
    assert (tmp_path / "params.yaml").read_bytes() == (REPO / "params.yaml").read_bytes()  # comments too


@pytest.mark.parametrize("name", ["demo", "local", "paper", "paper-13b"])
def test_each_profile_validates(tmp_path: Path, name: str) -> None:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    apply(name, tmp_path / "params.yaml")
    parsed = {section: load(cls, section, tmp_path / "params.yaml") for section, cls in SECTIONS.items()}
    if name == "paper-13b":
        assert parsed["model"].base == "meta-llama/Llama-2-13b-hf" and parsed["sft"].num_processes == 8
        assert parsed["report"].paper_size == "13b"
    if name.startswith("paper"):
        assert parsed["subsample"].n == 20000 and parsed["fetch.p3"].max_per_task == 1000
        assert parsed["model"].from_hub and parsed["sft"].global_batch == 64 and parsed["sft"].launcher == "zero3"
        # a float as PyYAML (so DVC's params and the fidelity table) reads it: ruamel alone writes 5e-05, a string
        assert yaml.safe_load((tmp_path / "params.yaml").read_text())["sft"]["lr"] == 5e-05
        for source in ("alpaca", "codealpaca", "p3"):
            pin = hub.read_pin(REPO / parsed[f"fetch.{source}"].path)
            assert pin.repo and pin.revision


def test_local_profile_on_the_shared_samples(tmp_path: Path, shared_data: Path) -> None:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    result = run_stage("profile", "local", "--data", shared_data, cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    def metrics(path: str) -> dict:
        return json.loads((tmp_path / path).read_text())

    for source in ("alpaca", "codealpaca", "p3"):
        assert run_stage("fetch", source, f"f/{source}.jsonl", cwd=tmp_path).returncode == 0
        result = run_stage("subsample", source, f"f/{source}.jsonl", f"s/{source}.jsonl", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert metrics(f"s/{source}.metrics.json")["records"] == 1500
    assert metrics("f/alpaca.metrics.json")["rows_read"] == 1727
    assert metrics("f/codealpaca.metrics.json")["rows_read"] == 2017
    assert metrics("f/p3.metrics.json")["rows_read"] == 21338  # T0 mixture: no commonsense_qa

    p3 = metrics("s/p3.metrics.json")
    assert p3["tasks"] >= 30
    assert not [task for task in p3["records_per_task"] if benchmark_of(task)]
    unique = Counter(r["task"] for r in deduplicate(read_jsonl(tmp_path / "f/p3.jsonl")))
    quotas = p3["records_per_task"]
    not_exhausted = [q for task, q in quotas.items() if q < unique[task]]
    assert max(not_exhausted) - min(not_exhausted) <= 1  # even, except tasks too small for their share
    assert all(q == unique[task] for task, q in quotas.items() if q < min(not_exhausted))

    expected = {"A": 1500, "AP": 3000, "ACP": 4500, "ratio": 3000, "count": 3000}
    for setting, records in expected.items():
        assert run_stage("mix", setting, "s", f"m/{setting}.jsonl", cwd=tmp_path).returncode == 0
        assert metrics(f"m/{setting}.metrics.json")["records"] == records
    assert metrics("m/ratio.metrics.json")["records_per_source"] == {"alpaca": 1500, "codealpaca": 750, "p3": 750}


def test_the_local_profile_writes_absolute_paths_and_its_queue_recipe_runs(
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path
) -> None:
    """The README's "Ratio sweep as experiments" on the local profile: a queued experiment runs in a copy
    under .dvc/tmp/exps, where a relative ../shared/data would point elsewhere."""
    project = clean_clone(tmp_path_factory.mktemp("queue"))
    relative = os.path.relpath(shared_data, project)
    result = subprocess.run([sys.executable, "-m", "stages.profile", "local", "--data", relative], cwd=project,
                            env=stage_env(), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    path = yaml.safe_load((project / "params.yaml").read_text())["fetch"]["alpaca"]["path"]
    assert Path(path).is_absolute() and Path(path) == (shared_data / "alpaca/alpaca_data_sample.json").resolve()
    commit(project, "local profile")
    dvc("exp", "run", "--queue", "mix@ratio", "-S", "mix.ratio=1.5", cwd=project)
    dvc("queue", "start", "-j", "1", cwd=project)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = dvc("queue", "status", cwd=project)
        if "Success" in status or "Failed" in status:
            break
        time.sleep(2)
    assert "Success" in status, status + dvc("queue", "logs", status.split()[-1], cwd=project)
    shown = json.dumps(json.loads(subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"],
                       cwd=project, env=stage_env(), capture_output=True, text=True, timeout=120).stdout))  # fmt: skip
    assert '"ratio": 1.5' in shown and "data/mix/ratio.metrics.json" in shown
