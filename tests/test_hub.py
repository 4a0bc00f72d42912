"""core.hub over real HTTP: the hub clients against olah on 127.0.0.1 (tests/local_hub.py), serving
look-alike repos in the hub's layouts. Fetch, the base model, failures and `stages.pin`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import DEMO, run_stage, set_params
from tests.local_hub import TINY_MODEL, LocalHub, free_port

TOKEN = "hf_instmixTestTokenNeverWritten"  # sent to the server; must reach no output, metric or log


def assert_no_token(root: Path, *outputs: str) -> None:
    assert not any(TOKEN in out for out in outputs)
    for path in root.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def write_pin(path: Path, repo: str, revision: str, files: list[str] | None = None) -> str:
    path.write_text(f"# a test pin\nrepo: {repo}\nrevision: {revision}\nfiles: {json.dumps(files or [])}\n")
    return str(path)


def test_fetch_reads_each_source_over_http(local_hub: LocalHub, workdir: Path, tmp_path: Path) -> None:
    alpaca_sha = local_hub.shas["datasets/tatsu-lab/alpaca"]
    set_params(workdir, **{
        "fetch.alpaca.path": write_pin(workdir / "a.hub.yaml", "tatsu-lab/alpaca", alpaca_sha, ["data/*.parquet"]),
        "fetch.codealpaca.path": write_pin(workdir / "c.hub.yaml", "sahil2801/CodeAlpaca-20k", "main"),
        "fetch.p3.path": write_pin(workdir / "p.hub.yaml", "bigscience/P3", "main"),
    })  # fmt: skip
    env = local_hub.env(tmp_path / "hf") | {"HF_TOKEN": TOKEN}  # a fresh cache: everything comes over HTTP
    for source, repo in (("alpaca", "tatsu-lab/alpaca"), ("codealpaca", "sahil2801/CodeAlpaca-20k"),
                         ("p3", "bigscience/P3")):  # fmt: skip
        result = run_stage("fetch", source, f"hub/{source}.jsonl", cwd=workdir, **env)
        assert result.returncode == 0, result.stderr[-2000:]
        metrics = json.loads((workdir / f"hub/{source}.metrics.json").read_text())
        assert metrics["commit"] == local_hub.shas[f"datasets/{repo}"]  # the commit the server holds
        assert metrics["revision"] == (alpaca_sha if source == "alpaca" else "main")  # as pinned
        assert_no_token(workdir, result.stdout, result.stderr)
    local = workdir / "local"
    local.mkdir()
    shutil.copy(workdir / "params.yaml", local / "params.yaml")
    for source, name in (("alpaca", "alpaca.json"), ("codealpaca", "codealpaca.json")):
        set_params(local, **{f"fetch.{source}.path": str(DEMO / name)})
        assert run_stage("fetch", source, f"{source}.jsonl", cwd=local).returncode == 0
        assert (workdir / f"hub/{source}.jsonl").read_bytes() == (local / f"{source}.jsonl").read_bytes()
    p3 = json.loads((workdir / "hub/p3.metrics.json").read_text())
    assert p3["records_per_task"] == {"ag_news_classify": 14, "imdb_Sentiment_with_choices_": 14}  # train splits only
    assert (tmp_path / "hf" / "hub" / "datasets--bigscience--P3").is_dir()  # read through the hub cache


def test_the_base_model_loads_from_the_hub_and_records_its_commit(
    local_hub: LocalHub, workdir: Path, tmp_path: Path
) -> None:
    set_params(workdir, **{"model.base": TINY_MODEL, "model.revision": "main"})
    result = run_stage("base", "models/base", cwd=workdir, **local_hub.env(tmp_path / "hf"), HF_TOKEN=TOKEN)
    assert result.returncode == 0, result.stderr[-2000:]
    assert_no_token(workdir, result.stdout, result.stderr)
    metrics = json.loads((workdir / "models/base.metrics.json").read_text())
    assert metrics["commit"] == local_hub.shas[f"models/{TINY_MODEL}"] and metrics["architecture"] == "LlamaForCausalLM"
    assert (workdir / "models/base/config.json").is_file()


@pytest.mark.parametrize(
    ("revision", "down", "message"),
    [("main", True, "cannot read bigscience/P3@main from the hub: "),
     ("no-such-branch", False, "cannot read bigscience/P3@no-such-branch from the hub: ")],
)  # fmt: skip
def test_hub_failures_are_one_line_and_write_nothing(
    local_hub: LocalHub, workdir: Path, tmp_path: Path, revision: str, down: bool, message: str
) -> None:
    set_params(workdir, **{"fetch.p3.path": write_pin(workdir / "p.hub.yaml", "bigscience/P3", revision)})
    env = local_hub.env(tmp_path / "hf")
    if down:
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = run_stage("fetch", "p3", "out/p3.jsonl", cwd=workdir, **env)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr[-2000:]
    assert result.stderr.startswith(f"error: {message}")
    assert ("HF_ENDPOINT" in result.stderr) if down else ("the pin" in result.stderr)
    assert not (workdir / "out").exists()


def test_pin_rewrites_branches_to_the_served_commit(local_hub: LocalHub, tmp_path: Path) -> None:
    branch = tmp_path / "p3.hub.yaml"
    write_pin(branch, "bigscience/P3", "main")
    sha = local_hub.shas["datasets/tatsu-lab/alpaca"]
    fixed = tmp_path / "alpaca.hub.yaml"
    write_pin(fixed, "tatsu-lab/alpaca", sha)
    before = fixed.read_bytes()
    result = run_stage("pin", branch, fixed, cwd=tmp_path, **local_hub.env(tmp_path / "hf"))
    assert result.returncode == 0, result.stderr[-2000:]
    text = branch.read_text()
    assert f"revision: {local_hub.shas['datasets/bigscience/P3']}  # was `main`" in text
    assert text.startswith("# a test pin\n") and fixed.read_bytes() == before  # comments kept; a sha untouched
    assert "already a commit" in result.stdout


def test_a_gated_repo_says_to_accept_the_license_and_log_in() -> None:
    import httpx2 as httpx  # what huggingface_hub speaks
    from huggingface_hub.errors import GatedRepoError

    from instmix.core.hub import hub_error

    response = httpx.Response(401, request=httpx.Request("GET", "http://127.0.0.1/api/models/meta-llama"))
    error = GatedRepoError("401 Client Error: access to this repo is restricted", response=response)
    message = str(hub_error("meta-llama/Llama-2-7b-hf", None, error))
    assert message.startswith("cannot read meta-llama/Llama-2-7b-hf@main from the hub: a gated repo")
    assert "accept its license" in message and "HF_TOKEN" in message
