"""The paper profile end to end over HTTP: `dvc repro` of a scaled-down `paper` (the same code
paths: hub pins, a hub model id, lm-eval's built-in tasks, FLASK from a pinned commit URL) against
olah on 127.0.0.1 (tests/local_hub.py) and a loopback raw-file host for FLASK.

Every hub-reading stage must show that it read the hub: the commit it records is the fixture's, and
the HF cache, empty before, holds each repo afterwards. The other stages take no hub variables and go
offline themselves (instmix.core.hub.go_offline)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from instmix.core.hub import OFFLINE_VARIABLES
from instmix.core.vocab import TASKS
from tests.conftest import run_stage, set_params, stage_env
from tests.local_hub import BENCHMARK_REPOS, DEMO, TINY_MODEL, LocalHub, serve_files
from tests.test_pipeline import clean_clone, commit, ran_stages

FLASK_REVISION = "3b4e22bc34aa9dc15ea0c51be3cbf5f3c8b1b5e5"  # the committed pin's commit
FLASK_FILES = ("evaluation_set/flask_evaluation.jsonl", "metadata_annotation/skillset/src/skillset_description.json",
               "gpt_review/src/prompt.jsonl", "gpt_review/src/reviewer.jsonl")  # fmt: skip
SOURCES = {"alpaca": "tatsu-lab/alpaca", "codealpaca": "sahil2801/CodeAlpaca-20k", "p3": "bigscience/P3"}
SCALED = {  # the paper profile cut to what shows every stage works, on this CPU with the tiny model
    "settings": ["A"],
    "mixtures": {},
    "subsample.n": 16,
    "mix.per_type": 8,
    "mix.sweep": [],
    "model.base": TINY_MODEL,
    "sft.epochs": 1.0,
    "sft.lr": 3e-3,
    "sft.global_batch": 8,
    "sft.per_device_batch": 4,
    "sft.max_length": 128,
    "sft.launcher": "single",
    "sft.num_processes": 1,
    "eval.nlp.tasks": list(TASKS),
    "eval.nlp.limit": 1,
    "eval.code.n_samples": 1,
    "eval.code.limit": 1,
    "eval.code.max_new_tokens": 16,
    "eval.code.sandbox": "auto",
    "eval.align.limit": 1,
    "eval.align.max_new_tokens": 8,
    "eval.judge.backend": "hf",
}


@pytest.fixture(scope="module")
def flask_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """FLASK's four files at <root>/kaistAI/FLASK/<commit>/..., as the raw-file host serves them."""
    root = tmp_path_factory.mktemp("raw")
    for name in FLASK_FILES:
        (root / "kaistAI/FLASK" / FLASK_REVISION / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DEMO / "flask" / name, root / "kaistAI/FLASK" / FLASK_REVISION / name)
    seen: list[str] = []
    server = serve_files(root, seen)
    yield f"http://127.0.0.1:{server.server_address[1]}/kaistAI/FLASK", seen
    server.shutdown()


def unpin(pin: Path) -> None:
    """A pin as a user without hub access would find it: tracking `main`."""
    pin.write_text(re.sub(r"^revision: .*$", "revision: main", pin.read_text(), flags=re.M))


@pytest.fixture(scope="module")
def paper(
    local_hub: LocalHub, flask_host: tuple[str, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, str]:
    """A clean clone on the paper profile, its pins pinned by `stages.pin` against the fixture, after
    one `dvc repro`; returns the project, the HF cache and the repro output."""
    project = clean_clone(tmp_path_factory.mktemp("paper"))
    cache = tmp_path_factory.mktemp("hf-cache")
    assert run_stage("profile", "paper", cwd=project).returncode == 0
    set_params(project, **SCALED, **{"model.revision": local_hub.shas[f"models/{TINY_MODEL}"]})
    pins = sorted((project / "assets/hub").rglob("*.hub.yaml"))
    for pin in pins:
        unpin(pin)
    url, _ = flask_host
    digests = {name: hashlib.sha256((DEMO / "flask" / name).read_bytes()).hexdigest() for name in FLASK_FILES}
    flask_pin = project / "assets/hub/flask.github.yaml"
    flask_pin.write_text(yaml.safe_dump({"url": url, "revision": FLASK_REVISION, "sha256": digests}))

    hub_env = local_hub.env(cache) | {"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    result = run_stage("pin", cwd=project, **hub_env)
    assert result.returncode == 0 and result.stdout.count("pinned to") == len(pins), result.stdout + result.stderr
    commit(project, "paper profile, pinned")
    # No offline switch either way: a stage that reads no hub sets it itself.
    env = {k: v for k, v in stage_env(**hub_env).items() if k not in OFFLINE_VARIABLES}
    repro = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=project, env=env, capture_output=True,
                           text=True, timeout=1800)  # fmt: skip
    assert repro.returncode == 0, (repro.stdout + repro.stderr)[-6000:]
    return project, cache, repro.stdout


Paper = tuple[Path, Path, str]


def read(project: Path, path: str) -> Any:
    return json.loads((project / path).read_text())


def test_pin_rewrote_every_branch_to_the_served_commit(paper: Paper, local_hub: LocalHub) -> None:
    project, _, _ = paper
    repos = {**{s: f"datasets/{r}" for s, r in SOURCES.items()},
             **{f"benchmarks/{t}": f"datasets/{r}" for t, (r, _) in BENCHMARK_REPOS.items()}}  # fmt: skip
    for name, repo in repos.items():
        text = (project / f"assets/hub/{name}.hub.yaml").read_text()
        assert f"revision: {local_hub.shas[repo]}  # was `main`, pinned by python -m stages.pin" in text, name


def test_every_hub_reading_stage_records_the_commit_it_read(paper: Paper, local_hub: LocalHub) -> None:
    project, cache, output = paper
    for source, repo in SOURCES.items():
        metrics = read(project, f"data/fetched/{source}.metrics.json")
        assert metrics["revision"] == metrics["commit"] == local_hub.shas[f"datasets/{repo}"], source
    assert read(project, "models/base.metrics.json")["commit"] == local_hub.shas[f"models/{TINY_MODEL}"]
    expected = {t: {"repo": r, "revision": local_hub.shas[f"datasets/{r}"]} for t, (r, _) in BENCHMARK_REPOS.items()}
    for task in TASKS:
        metrics = read(project, f"data/benchmarks/{task}.metrics.json")
        assert (metrics["source"], metrics["commit"]) == ("hub", expected[task]["revision"])
    for model in ("base", "A-42"):  # lm-eval's built-in tasks read the hub at the commit the benchmarks stage fixed
        metrics = read(project, f"reports/eval/nlp/{model}/metrics.json")
        assert metrics["hub"] == {t: expected[t] for t in metrics["params"]["tasks"]}
        assert set(metrics["nlp"]) == {*TASKS, "avg", "p_gold_avg", "bpb_gold_avg"}
    # The HF cache was empty: every repo in it came over HTTP from the fixture.
    cached = {p.name for p in (cache / "hub").iterdir()}
    datasets = [*SOURCES.values(), *(repo for repo, _ in BENCHMARK_REPOS.values())]
    wanted = {f"datasets--{r.replace('/', '--')}" for r in datasets} | {f"models--{TINY_MODEL.replace('/', '--')}"}
    assert wanted <= cached, sorted(cached)
    assert {"fetch@p3", "base", "benchmarks@mmlu", "eval_nlp@A-42", "report"} <= set(ran_stages(output))


def test_flask_came_from_the_pinned_commit_url(paper: Paper, flask_host: tuple[str, list[str]]) -> None:
    project, _, _ = paper
    _, seen = flask_host
    assert sorted(seen) == sorted(f"/kaistAI/FLASK/{FLASK_REVISION}/{name}" for name in FLASK_FILES)
    metrics = read(project, "data/flask.metrics.json")
    assert metrics["source"].endswith(f"/kaistAI/FLASK@{FLASK_REVISION}:")


def test_decontam_checks_the_hub_benchmarks(paper: Paper) -> None:
    """The hub-pinned benchmarks are checked on the rows the built-in tasks score."""
    project, _, _ = paper
    per_source = read(project, "reports/decontam/metrics.json")["decontam"]
    for source in SOURCES:
        assert {*TASKS, "flask", "humaneval"} <= set(per_source[source]), source
        assert all(per_source[source][task]["items"] > 0 for task in TASKS)


def test_the_report_names_the_scaled_down_deviations_and_no_branch(paper: Paper) -> None:
    project, _, _ = paper
    results = (project / "reports/results.md").read_text()
    verdicts = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[3].removesuffix(" |")
                for line in results.splitlines() if line.count(" | ") >= 3}  # fmt: skip
    for item in ("base model", "records per source", "global batch (examples per step)", "NLP items per task"):
        assert verdicts[item].startswith("**yes**"), item  # scaled down, and said so
    for item in ("Alpaca revision", "CodeAlpaca revision", "P3 revision", "benchmark revisions", "base model revision"):
        assert verdicts[item] == "no", item  # every pin at the commit `stages.pin` wrote
    # each row shows the commit its stage read, not the pin that asked for it
    read = ", ".join(rf"{task}@[0-9a-f]{{12}}" for task in sorted(TASKS))
    assert re.search(
        rf"\| benchmark revisions \| not stated \(lm-eval's built-in tasks on the hub datasets\) \| commits: {read} \|",
        results,
    )
    assert re.search(r"\| Alpaca source \| [^|]+ \| tatsu-lab/alpaca \| no \|", results)
    assert re.search(r"\| Alpaca revision \| not stated \| [0-9a-f]{40} \| no \|", results)
