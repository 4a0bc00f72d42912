"""eval_align: the paper's FLASK eval set, FLASK's files from a folder or a pinned commit, answers
from the tiny model, then the judge stage on them (the two alignment stages end to end)."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from stages.eval_align import (
    AlignParams,
    FlaskParams,
    FlaskSource,
    GitHubPin,
    load_eval_set,
    read_eval_set,
    render_prompts,
    select,
    top_skills,
)
from stages.judge import metric_key
from stages.params import ParamsError, StageError, parse
from tests.conftest import DEMO, REPO, run_stage, set_params

FLASK_DEMO = DEMO / "flask"
PAPER_SKILL_COUNTS = {  # inside the 1,180 (docs/paper.md section 3)
    "Comprehension": 905, "Commonsense Understanding": 528, "Factuality": 521, "Completeness": 388,
    "Readability": 384, "Conciseness": 280, "Logical Correctness": 272, "Insightfulness": 261,
}  # fmt: skip
REVISION = "3b4e22bc34aa9dc15ea0c51be3cbf5f3c8b1b5e5"


def shared_flask(shared_data: Path) -> FlaskParams:
    """The local profile's layout: FLASK's files, prompt and reviewer files renamed."""
    return FlaskParams(
        path=str(shared_data / "flask"),
        eval_set="flask_evaluation.jsonl",
        skills="skillset_description.json",
        prompts="judge_prompt.jsonl",
        reviewers="judge_reviewer.jsonl",
    )


def test_the_papers_eval_set_is_exactly_1180_instances(shared_data: Path) -> None:
    params = AlignParams(flask=shared_flask(shared_data))
    chosen, source = load_eval_set(params)
    assert len(chosen) == 1180
    assert Counter(skill for i in chosen for skill in i["skills"]) == PAPER_SKILL_COUNTS
    assert sorted(top_skills([i for i in read_eval_set(source) if i["idx"] <= 1700], 8)) == sorted(PAPER_SKILL_COUNTS)
    assert sum(len(i["skills"]) == 2 for i in chosen) == 1 and max(i["idx"] for i in chosen) <= 1700
    # the 40 instances added in Dec 2023 bring 3 more (why idx_max is 1700)
    assert len(load_eval_set(AlignParams(flask=shared_flask(shared_data), idx_max=1740))[0]) == 1183
    assert source.sha256["eval_set"] == "791950bf1f159b048eba8fee205eba606926c25467a9a31e6f9b6affc2e3e13d"


def test_demo_set_filters_by_idx_and_skills_and_limit_draws_a_seeded_subset() -> None:
    chosen, _ = load_eval_set(AlignParams(flask=FlaskParams(path=str(FLASK_DEMO))))
    assert [i["idx"] for i in chosen] == [3, 17, 250, 981]  # 1203/1650: a rare skill; 1701: idx > 1700
    assert {s for i in chosen for s in i["skills"]} == set(PAPER_SKILL_COUNTS)  # the demo covers all 8
    assert chosen[3]["reference"].startswith("Water boils") and chosen[3]["domain"] == ["Natural Science", "Math"]
    draws = {tuple(i["idx"] for i in select(chosen, AlignParams(limit=2, seed=seed))) for seed in range(8)}
    assert all(list(d) == sorted(d) and len(d) == 2 for d in draws) and len(draws) > 1
    assert select(chosen, AlignParams(limit=2, seed=1)) == select(chosen, AlignParams(limit=2, seed=1))
    assert select(chosen, AlignParams(limit=10)) == chosen


# ---------------------------------------------------------------------------- hub mode


@pytest.fixture
def github(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A local stand-in for the raw-file host: <root>/kaistAI/FLASK/<commit>/<FLASK's layout>."""
    root = tmp_path / "raw"
    shutil.copytree(FLASK_DEMO, root / "kaistAI" / "FLASK" / REVISION)
    seen: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            super().do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/kaistAI/FLASK", seen
    server.shutdown()


def write_pin(path: Path, url: str, **sha256: str) -> Path:
    lines = [f"url: {url}", f"revision: {REVISION}", "sha256:"] + [f"  {k}: '{v}'" for k, v in sha256.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_pin_reads_the_files_at_the_pinned_commit(github: tuple[str, list[str]], tmp_path: Path) -> None:
    url, seen = github
    names = FlaskParams()
    digest = hashlib.sha256((FLASK_DEMO / names.eval_set).read_bytes()).hexdigest()
    pin = write_pin(tmp_path / "flask.github.yaml", url, **{names.eval_set: digest})
    chosen, source = load_eval_set(AlignParams(flask=FlaskParams(path=str(pin))))
    assert [i["idx"] for i in chosen] == [3, 17, 250, 981]
    assert seen == [f"/kaistAI/FLASK/{REVISION}/{names.skills}", f"/kaistAI/FLASK/{REVISION}/{names.eval_set}"]
    assert source.sha256["eval_set"] == digest

    bad = write_pin(tmp_path / "bad.github.yaml", url, **{names.eval_set: "0" * 64})
    with pytest.raises(StageError, match=f"{REVISION}:evaluation_set/flask_evaluation.jsonl: sha256 {digest} differs"):
        load_eval_set(AlignParams(flask=FlaskParams(path=str(bad))))
    with pytest.raises(StageError, match=r"cannot download .*/nowhere.jsonl: HTTP 404"):
        FlaskSource(FlaskParams(path=str(pin), eval_set="nowhere.jsonl")).read("eval_set")


def test_the_committed_pin_names_the_commit_and_all_four_files() -> None:
    pin = parse(GitHubPin, yaml.safe_load((REPO / "assets/hub/flask.github.yaml").read_text()), "pin")
    names = FlaskParams()
    assert pin.revision == REVISION and pin.url.endswith("/kaistAI/FLASK")
    assert set(pin.sha256) == {names.eval_set, names.skills, names.prompts, names.reviewers}


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("values", "key", "allowed"),
    [
        ({"limit": 0}, "eval.align.limit", "null (all instances) or a positive integer"),
        ({"top_p": 0}, "eval.align.top_p", "a number in (0, 1]"),
        ({"temperature": -0.1}, "eval.align.temperature", "a number >= 0"),
        ({"template": "alpaca"}, "eval.align.template", "one of paper, chat"),
        ({"flask": {"eval_set": "../x.jsonl"}}, "eval.align.flask.eval_set", "a path inside"),
        ({"judge": {"backend": "anthropic"}}, "eval.align.judge.backend", "one of openai, hf"),
        ({"judge": {"concurrency": 0}}, "eval.align.judge.concurrency", "a positive integer"),
        ({"judge": {"temperature": 3}}, "eval.align.judge.temperature", "a number in [0, 2]"),
        ({"judge": {"base_url": "localhost:8000"}}, "eval.align.judge.base_url", "null or an http(s):// URL"),
        ({"judge": {"api_key": "x"}}, "eval.align.judge.api_key", "unknown key"),
    ],
)
def test_bad_params_name_the_key(values: dict[str, Any], key: str, allowed: str) -> None:
    with pytest.raises(ParamsError) as err:
        parse(AlignParams, values, "eval.align")
    assert err.value.key == key and allowed in err.value.allowed


def test_broken_flask_files_name_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "flask"
    shutil.copytree(FLASK_DEMO, folder)
    eval_set = folder / FlaskParams().eval_set
    eval_set.write_text(eval_set.read_text() + '{"idx": 9, "instruction": "cut off\n')
    with pytest.raises(StageError, match=r"evaluation_set/flask_evaluation.jsonl:8: not valid JSON"):
        load_eval_set(AlignParams(flask=FlaskParams(path=str(folder))))
    eval_set.write_text('{"idx": 1, "instruction": "x", "answer": "y", "skill": ["Telepathy"]}\n')
    with pytest.raises(StageError, match="FLASK skill 'Telepathy' has no rubric"):
        load_eval_set(AlignParams(flask=FlaskParams(path=str(folder)), top_skills=1))
    with pytest.raises(ParamsError, match=r"eval.align.flask.path='nowhere' is not allowed"):
        load_eval_set(AlignParams(flask=FlaskParams(path="nowhere")))


def test_the_stage_refuses_a_missing_model_and_writes_nothing(workdir: Path) -> None:
    set_params(workdir, **{"eval.align": {"flask": {"path": str(FLASK_DEMO)}}})
    result = run_stage("eval_align", workdir / "no-model", workdir / "out", cwd=workdir)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {workdir / 'no-model'} is not a model directory (no config.json)"
    assert not (workdir / "out").exists()


# ---------------------------------------------------------------------------- end to end


def test_chat_template_renders_the_generation_prompt(tiny_base: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    assert render_prompts(tokenizer, ["Add 2 and 2."], "paper") == ["Add 2 and 2."]
    assert render_prompts(tokenizer, ["Add 2 and 2."], "chat") == ["<|user|>\nAdd 2 and 2.<eos>\n<|assistant|>\n"]


def test_answers_then_judge_on_the_tiny_model(workdir: Path, tiny_base: Path) -> None:
    align = {
        "flask": {"path": str(FLASK_DEMO)}, "limit": 2, "seed": 3, "max_new_tokens": 8, "temperature": 0.0,
        "batch_size": 2, "judge": {"backend": "hf", "hf_model": str(tiny_base)},
    }  # fmt: skip
    set_params(workdir, **{"eval.align": align})
    result = run_stage("eval_align", tiny_base, "eval", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    answers = (workdir / "eval/answers.jsonl").read_bytes()
    rows = [json.loads(line) for line in answers.decode().splitlines()]
    assert len(rows) == 2 and [r["idx"] for r in rows] == sorted(r["idx"] for r in rows)
    assert {r["idx"] for r in rows} < {3, 17, 250, 981}
    assert set(rows[0]) == {"idx", "instruction", "reference", "skills", "domain", "difficulty", "task", "response"}
    assert all(r["response"] for r in rows)  # the tiny model babbles, but it answers
    assert run_stage("eval_align", tiny_base, "again", cwd=workdir).returncode == 0
    assert (workdir / "again/answers.jsonl").read_bytes() == answers  # greedy: byte-identical

    result = run_stage("judge", "eval/answers.jsonl", "eval", "cache", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (workdir / "eval/answers.jsonl").read_bytes() == answers  # the judge never touches the answers
    metrics = json.loads((workdir / "eval/metrics.json").read_text())["align"]
    assert metrics["instances"] == 2 and metrics["parse_failures"] == 0
    scored = {k for k, v in metrics.items() if isinstance(v, float) and k != "avg"}
    assert scored == {metric_key(skill) for r in rows for skill in r["skills"]}
    assert all(20 <= metrics[k] <= 100 for k in scored)
    judgments = [json.loads(line) for line in (workdir / "eval/judgments.jsonl").read_text().splitlines()]
    assert [j["idx"] for j in judgments] == [r["idx"] for r in rows]
    assert (workdir / "cache").is_dir()  # the DVC output exists even when the hf judge does not use it
