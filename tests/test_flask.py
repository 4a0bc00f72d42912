"""flask: FLASK's four files from a folder or a pinned commit (served on 127.0.0.1), checked
against sha256, copied to one local folder under fixed names by the flask stage; the readers."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from instmix.align.flask import (
    FILES,
    FlaskParams,
    FlaskSource,
    GitHubPin,
    copy_files,
    digests,
    read_eval_set,
    read_judge_prompt,
    read_rubrics,
    rubric_for,
)
from instmix.core.params import ParamsError, StageError, parse
from tests.conftest import DEMO, REPO, run_stage, set_params
from tests.local_hub import serve_files

FLASK_DEMO = DEMO / "flask"
REVISION = "3b4e22bc34aa9dc15ea0c51be3cbf5f3c8b1b5e5"
NAMES = {key: getattr(FlaskParams(), key) for key in FILES}  # FLASK's own layout
SHARED_NAMES = {  # the shared copy: FLASK's files in one folder, prompt and reviewer files renamed
    "eval_set": "flask_evaluation.jsonl",
    "skills": "skillset_description.json",
    "prompts": "judge_prompt.jsonl",
    "reviewers": "judge_reviewer.jsonl",
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------- the stage


def test_the_stage_copies_the_four_files_and_records_their_sha256(workdir: Path) -> None:
    result = run_stage("flask", "data/flask", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    out = workdir / "data" / "flask"
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES.values())
    metrics = json.loads((workdir / "data" / "flask.metrics.json").read_text())
    source = {key: sha256(FLASK_DEMO / NAMES[key]) for key in FILES}
    assert metrics["sha256"] == source == {key: sha256(out / name) for key, name in FILES.items()}
    assert digests(out) == source
    for key, name in FILES.items():
        assert (out / name).read_bytes() == (FLASK_DEMO / NAMES[key]).read_bytes()
    assert (metrics["instances"], metrics["skills"]) == (7, 12)
    assert metrics["source"] == str(FLASK_DEMO)
    params = yaml.safe_load((workdir / "params.yaml").read_text())["eval"]["flask"]
    assert metrics["params"] == params == NAMES | {"path": str(FLASK_DEMO)}
    assert result.stdout.strip() == f"flask: 7 instances, 12 skills from {FLASK_DEMO} -> data/flask"


def test_the_demo_fixture_is_the_stage_output(demo_flask: Path) -> None:
    assert digests(demo_flask) == {key: sha256(FLASK_DEMO / NAMES[key]) for key in FILES}
    assert [i["idx"] for i in read_eval_set(demo_flask)] == [3, 17, 250, 981, 1203, 1650, 1701]


def test_the_stage_takes_one_argument(workdir: Path) -> None:
    result = run_stage("flask", cwd=workdir)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: usage: python -m stages.flask <out dir>"


def test_the_stage_reads_its_own_section(workdir: Path) -> None:
    set_params(workdir, **{"eval.flask.skills": "../skills.json"})
    result = run_stage("flask", "data/flask", cwd=workdir)
    assert result.returncode == 2
    assert "eval.flask.skills=../skills.json is not allowed: a path inside" in result.stderr
    assert not (workdir / "data").exists()


# ---------------------------------------------------------------------------- the readers


def test_readers_turn_flask_rows_into_instances_rubrics_and_prompts(demo_flask: Path) -> None:
    instances = read_eval_set(demo_flask)
    assert instances[3]["reference"].startswith("Water boils") and instances[3]["domain"] == ["Natural Science", "Math"]
    assert set(instances[0]) == {"idx", "instruction", "reference", "skills", "domain", "difficulty", "task"}
    rubrics = read_rubrics(demo_flask)
    assert len(rubrics) == 12 and all(set(r["Scoring"]) >= set("12345") for r in rubrics.values())
    assert rubric_for("Readability", rubrics) is rubrics["Readability"]
    assert rubric_for("Logical Correct", rubrics)["Skill"] == "Logical Correctness"  # FLASK: the first containing it
    with pytest.raises(StageError, match="FLASK skill 'Telepathy' has no rubric in Logical Robustness, "):
        rubric_for("Telepathy", rubrics)
    prompt = read_judge_prompt(demo_flask, 2)
    assert prompt.prompt_id == 2 and prompt.reviewer["prompt_id"] == 2 and "{sample_answer}" in prompt.template
    with pytest.raises(ParamsError) as err:
        read_judge_prompt(demo_flask, 7)
    assert err.value.key == "eval.judge.prompt_id" and err.value.allowed.startswith("one of [1, 2]")


def test_readers_need_the_stage_output(tmp_path: Path) -> None:
    with pytest.raises(StageError, match=r"cannot read .*/eval_set.jsonl: No such file .*run the flask stage first"):
        read_eval_set(tmp_path)
    shutil.copytree(FLASK_DEMO, tmp_path / "raw")  # FLASK's layout, not the stage's
    with pytest.raises(StageError, match=r"skills\.json: No such file"):
        read_rubrics(tmp_path / "raw")


# ---------------------------------------------------------------------------- pin mode


@pytest.fixture
def github(tmp_path: Path) -> Iterator[Callable[[Path, dict[str, str]], tuple[str, list[str]]]]:
    """A local stand-in for the raw-file host: <root>/kaistAI/FLASK/<commit>/<FLASK's layout>."""
    servers: list[ThreadingHTTPServer] = []

    def start(files: Path, names: dict[str, str]) -> tuple[str, list[str]]:
        root = tmp_path / f"raw{len(servers)}"
        for key, name in names.items():
            target = root / "kaistAI" / "FLASK" / REVISION / NAMES[key]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(files / name, target)
        seen: list[str] = []
        servers.append(serve_files(root, seen))
        return f"http://127.0.0.1:{servers[-1].server_address[1]}/kaistAI/FLASK", seen

    yield start
    for server in servers:
        server.shutdown()


def write_pin(path: Path, url: str, **sha256: str) -> Path:
    lines = [f"url: {url}", f"revision: {REVISION}", "sha256:"] + [f"  {k}: '{v}'" for k, v in sha256.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_pin_reads_the_files_at_the_pinned_commit(github: Any, tmp_path: Path) -> None:
    url, seen = github(FLASK_DEMO, NAMES)
    digest = sha256(FLASK_DEMO / NAMES["eval_set"])
    pin = write_pin(tmp_path / "flask.github.yaml", url, **{NAMES["eval_set"]: digest})
    metrics = copy_files(FlaskParams(path=str(pin)), tmp_path / "out")
    assert [i["idx"] for i in read_eval_set(tmp_path / "out")] == [3, 17, 250, 981, 1203, 1650, 1701]
    assert seen == [f"/kaistAI/FLASK/{REVISION}/{NAMES[key]}" for key in FILES]  # all four, once each
    assert metrics["sha256"]["eval_set"] == digest and metrics["source"] == f"{url}@{REVISION}:"
    assert digests(tmp_path / "out") == metrics["sha256"]

    bad = write_pin(tmp_path / "bad.github.yaml", url, **{NAMES["eval_set"]: "0" * 64})
    with pytest.raises(StageError, match=f"{REVISION}:evaluation_set/flask_evaluation.jsonl: sha256 {digest} differs"):
        copy_files(FlaskParams(path=str(bad)), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    with pytest.raises(StageError, match=r"cannot download .*/nowhere.jsonl: HTTP 404"):
        FlaskSource(FlaskParams(path=str(pin), eval_set="nowhere.jsonl")).read("eval_set")


def test_the_stage_reads_a_pin(github: Any, workdir: Path) -> None:
    url, seen = github(FLASK_DEMO, NAMES)
    digests_ = {NAMES[key]: sha256(FLASK_DEMO / NAMES[key]) for key in FILES}
    pin = write_pin(workdir / "flask.github.yaml", url, **digests_)
    set_params(workdir, **{"eval.flask.path": str(pin)})
    result = run_stage("flask", "data/flask", cwd=workdir, NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((workdir / "data/flask.metrics.json").read_text())
    assert metrics["sha256"] == {key: digests_[NAMES[key]] for key in FILES} == digests(workdir / "data/flask")
    assert metrics["params"]["path"] == str(pin) and len(seen) == 4


def test_the_committed_pin_names_the_commit_and_all_four_files() -> None:
    pin = parse(GitHubPin, yaml.safe_load((REPO / "assets/hub/flask.github.yaml").read_text()), "pin")
    assert pin.revision == REVISION and pin.url.endswith("/kaistAI/FLASK")
    assert set(pin.sha256) == {NAMES[key] for key in FILES}
    assert FlaskParams().path == "assets/hub/flask.github.yaml"


def test_the_committed_pin_holds_the_real_files_sha256(github: Any, shared_data: Path, tmp_path: Path) -> None:
    url, _ = github(shared_data / "flask", SHARED_NAMES)
    committed = yaml.safe_load((REPO / "assets/hub/flask.github.yaml").read_text())
    pin = write_pin(tmp_path / "flask.github.yaml", url, **committed["sha256"])
    metrics = copy_files(FlaskParams(path=str(pin)), tmp_path / "out")
    assert metrics["sha256"] == {key: committed["sha256"][NAMES[key]] for key in FILES}
    assert metrics["sha256"]["eval_set"] == "791950bf1f159b048eba8fee205eba606926c25467a9a31e6f9b6affc2e3e13d"
    assert (metrics["instances"], metrics["skills"]) == (1740, 12)


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("values", "key", "allowed"),
    [
        ({"eval_set": "../x.jsonl"}, "eval.flask.eval_set", "a path inside"),
        ({"prompts": "/etc/prompt.jsonl"}, "eval.flask.prompts", "a path inside"),
        ({"skills": ""}, "eval.flask.skills", "a non-empty string"),
        ({"judge": {}}, "eval.flask.judge", "unknown key"),
    ],
)
def test_bad_params_name_the_key(values: dict[str, Any], key: str, allowed: str) -> None:
    with pytest.raises(ParamsError) as err:
        parse(FlaskParams, values, "eval.flask")
    assert err.value.key == key and allowed in err.value.allowed


def test_broken_flask_files_name_file_and_line_and_nothing_is_written(tmp_path: Path) -> None:
    folder = tmp_path / "flask"
    shutil.copytree(FLASK_DEMO, folder)
    eval_set = folder / NAMES["eval_set"]
    eval_set.write_text(eval_set.read_text() + '{"idx": 9, "instruction": "cut off\n')
    with pytest.raises(StageError, match=r"flask/evaluation_set/flask_evaluation.jsonl:8: not valid JSON"):
        copy_files(FlaskParams(path=str(folder)), tmp_path / "out")
    eval_set.write_text('{"idx": 1, "instruction": "x", "answer": "y", "skill": "Telepathy"}\n')
    with pytest.raises(StageError, match=r"flask_evaluation.jsonl: row 1 lacks idx \(int\), instruction, answer"):
        copy_files(FlaskParams(path=str(folder)), tmp_path / "out")
    shutil.copy(FLASK_DEMO / NAMES["eval_set"], eval_set)
    (folder / NAMES["skills"]).write_text('[{"Skill": "Readability", "Scoring": {"1": "bad"}}]')
    with pytest.raises(StageError, match=r"skillset_description.json: every skill needs Skill, Criteria and Scoring"):
        copy_files(FlaskParams(path=str(folder)), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ParamsError, match=r"eval.flask.path=nowhere is not allowed"):
        copy_files(FlaskParams(path="nowhere"), tmp_path / "out")
    with pytest.raises(StageError, match=r"cannot read FLASK file .*/flask/missing.json: No such file"):
        FlaskSource(FlaskParams(path=str(folder), skills="missing.json")).read("skills")
