"""stages.check (instmix.check): a whole params.yaml checked before any run, every problem at once."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from instmix.check import problems
from tests.conftest import REPO, set_params, stage_env


@pytest.fixture
def workdir(workdir: Path) -> Path:
    """The committed params with every input path absolute (the benchmarks too)."""
    benchmarks = yaml.safe_load((REPO / "params.yaml").read_text())["eval"]["benchmarks"]
    set_params(workdir, **{f"eval.benchmarks.{task}": str(REPO / path) for task, path in benchmarks.items()})
    return workdir


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=stage_env(), capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def check(workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stages.check"], cwd=workdir, env=stage_env(), capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_the_committed_params_and_every_profile_pass(workdir: Path) -> None:
    result = check(workdir)
    assert result.returncode == 0 and result.stdout == "params.yaml: ok\n", result.stderr
    for profile in ("demo", "paper", "paper-13b"):  # from the repo root, as a user runs it
        params = workdir / f"{profile}.yaml"
        params.write_text((REPO / "params.yaml").read_text())
        assert run("stages.profile", profile, "--params", str(params)).returncode == 0
        result = run("stages.check", str(params))
        assert result.returncode == 0, (profile, result.stderr)


def test_five_planted_errors_are_all_found_in_one_run_fast(workdir: Path) -> None:
    set_params(workdir, **{"seeds": 3, "mix.sweep": ["ratio-0.50"], "sft.lr": "fast", "eval.code.temperature": -1})
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["eval"]["foo"] = 1  # a typo'd section: no stage reads it, so none would complain
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    start = time.perf_counter()
    result = check(workdir)
    elapsed = time.perf_counter() - start
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and len(lines) == 5, result.stderr
    assert all(line.startswith("error: params.yaml: ") for line in lines)
    for expected in ("eval.foo=1 is not allowed: unknown key", "seeds=3 is not allowed: a list",
                     "mix.sweep[0]=ratio-0.50 is not allowed: the canonical id ratio-0.5",
                     "sft.lr=fast is not allowed", "eval.code.temperature=-1"):  # fmt: skip
        assert any(expected in line for line in lines), (expected, lines)
    assert elapsed <= 2.0, f"{elapsed:.2f} s"


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"seeds": [-1]}, "seeds=[-1] is not allowed: a non-empty list of distinct non-negative integers"),
     ({"seeds": [1, 1]}, "seeds=[1, 1] is not allowed"),
     ({"seeds": None}, "seeds=null is not allowed: a list"),
     ({"seed": [1, 2]}, "seed=[1, 2] is not allowed: unknown key"),
     ({"mix.sweep": ["ratio-1"]}, "a point other than ratio (mix.ratio is 1)"),
     ({"mix.sweep": ["ratio-2"]}, "a point other than ACP"),
     ({"mix.sweep": ["count-16"]}, "mix.sweep[0]=count-16 is not allowed: not ACP again (subsample.n is 16)"),
     ({"mix.sweep": ["count-8"]}, "a point other than count (mix.per_type is 8)"),
     ({"fetch.alpaca.path": "nowhere.json"}, "fetch.alpaca.path=nowhere.json is not allowed"),
     ({"settings": ["A", "Z"]}, "settings=[A, Z] is not allowed")],
)  # fmt: skip
def test_cross_section_rules(workdir: Path, changes: dict, message: str) -> None:
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    for dotted, value in changes.items():  # as set_params does, but a new key (the `seed` typo) too
        *parents, leaf = dotted.split(".")
        node = params
        for part in parents:
            node = node[part]
        node[leaf] = value
    found = problems(params)
    assert any(message in line for line in found), found


def test_a_set_on_top_is_checked_as_dvc_exp_run_would_set_it(workdir: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "stages.check", "-S", "mix.ratio=2.5", "-S", "sft.lr=1e-5"],
                            cwd=workdir, env=stage_env(), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2 and result.stderr == (
        "error: params.yaml: mix.ratio=2.5 is not allowed: a number in [0, 2]\n"
    )
    assert "ratio: 1.0" in (workdir / "params.yaml").read_text()  # the file is untouched
