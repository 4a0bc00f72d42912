"""answer: the paper's FLASK eval set, selected from the flask stage's folder; answers from the
tiny model through the eval_align stage, then the judge stage on them (end to end)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from instmix.align.answer import AlignParams, load_eval_set, render_prompts, select, top_skills
from instmix.align.flask import FILES, FlaskParams, copy_files, read_eval_set
from instmix.align.judge_params import JudgeParams
from instmix.align.scoring import metric_key
from instmix.core.params import ParamsError, StageError, parse
from tests.conftest import run_stage, set_params

PAPER_SKILL_COUNTS = {  # inside the 1,180 (docs/paper.md section 3)
    "Comprehension": 905, "Commonsense Understanding": 528, "Factuality": 521, "Completeness": 388,
    "Readability": 384, "Conciseness": 280, "Logical Correctness": 272, "Insightfulness": 261,
}  # fmt: skip


@pytest.fixture
def shared_flask(shared_data: Path, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """The shared copy of FLASK's files (the local profile's layout) as the flask stage copies it."""
    params = FlaskParams(
        path=str(shared_data / "flask"),
        eval_set="flask_evaluation.jsonl",
        skills="skillset_description.json",
        prompts="judge_prompt.jsonl",
        reviewers="judge_reviewer.jsonl",
    )
    return tmp_path / "flask", copy_files(params, tmp_path / "flask")


def test_the_papers_eval_set_is_exactly_1180_instances(shared_flask: tuple[Path, dict[str, Any]]) -> None:
    folder, metrics = shared_flask
    chosen = load_eval_set(folder, AlignParams())
    assert len(chosen) == 1180
    assert Counter(skill for i in chosen for skill in i["skills"]) == PAPER_SKILL_COUNTS
    assert sorted(top_skills([i for i in read_eval_set(folder) if i["idx"] <= 1700], 8)) == sorted(PAPER_SKILL_COUNTS)
    assert sum(len(i["skills"]) == 2 for i in chosen) == 1 and max(i["idx"] for i in chosen) <= 1700
    # the 40 instances added in Dec 2023 bring 3 more (why idx_max is 1700)
    assert len(load_eval_set(folder, AlignParams(idx_max=1740))) == 1183
    assert metrics["sha256"]["eval_set"] == "791950bf1f159b048eba8fee205eba606926c25467a9a31e6f9b6affc2e3e13d"


def test_demo_set_filters_by_idx_and_skills_and_limit_draws_a_seeded_subset(demo_flask: Path) -> None:
    chosen = load_eval_set(demo_flask, AlignParams())
    assert [i["idx"] for i in chosen] == [3, 17, 250, 981]  # 1203/1650: a rare skill; 1701: idx > 1700
    assert {s for i in chosen for s in i["skills"]} == set(PAPER_SKILL_COUNTS)  # the demo covers all 8
    assert chosen[3]["reference"].startswith("Water boils") and chosen[3]["domain"] == ["Natural Science", "Math"]
    draws = {tuple(i["idx"] for i in select(chosen, AlignParams(limit=2, seed=seed))) for seed in range(8)}
    assert all(list(d) == sorted(d) and len(d) == 2 for d in draws) and len(draws) > 1
    assert select(chosen, AlignParams(limit=2, seed=1)) == select(chosen, AlignParams(limit=2, seed=1))
    assert select(chosen, AlignParams(limit=10)) == chosen


def test_top_skills_breaks_ties_by_name() -> None:
    instances = [{"skills": ["b", "a"]}, {"skills": ["c", "a"]}, {"skills": ["c", "b"]}, {"skills": ["d"]}]
    assert top_skills(instances, 2) == ["a", "b"] and top_skills(instances, 9) == ["a", "b", "c", "d"]


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("values", "key", "allowed"),
    [
        ({"limit": 0}, "eval.align.limit", "null (all instances) or a positive integer"),
        ({"top_p": 0}, "eval.align.top_p", "a number in (0, 1]"),
        ({"temperature": -0.1}, "eval.align.temperature", "a number >= 0"),
        ({"template": "alpaca"}, "eval.align.template", "one of paper, chat"),
        ({"batch_size": 0}, "eval.align.batch_size", "a positive integer"),
        # FLASK's files and the judge have their own sections now: eval.flask, eval.judge
        ({"flask": {"path": "assets/demo/flask"}}, "eval.align.flask", "unknown key"),
        ({"judge": {"backend": "hf"}}, "eval.align.judge", "unknown key"),
    ],
)
def test_bad_params_name_the_key(values: dict[str, Any], key: str, allowed: str) -> None:
    with pytest.raises(ParamsError) as err:
        parse(AlignParams, values, "eval.align")
    assert err.value.key == key and allowed in err.value.allowed


def test_a_skill_without_a_rubric_and_an_empty_selection_are_refused(demo_flask: Path, tmp_path: Path) -> None:
    folder = tmp_path / "flask"
    shutil.copytree(demo_flask, folder)
    (folder / FILES["eval_set"]).write_text('{"idx": 1, "instruction": "x", "answer": "y", "skill": ["Telepathy"]}\n')
    with pytest.raises(StageError, match="FLASK skill 'Telepathy' has no rubric"):
        load_eval_set(folder, AlignParams(top_skills=1))
    with pytest.raises(StageError, match="no FLASK instance passes idx <= 2 and the top-8 skills"):
        load_eval_set(demo_flask, AlignParams(idx_max=2))
    with pytest.raises(StageError, match=r"nowhere/skills.json: No such file .*run the flask stage first"):
        load_eval_set(tmp_path / "nowhere", AlignParams())


def test_the_stage_refuses_a_missing_model_and_writes_nothing(workdir: Path, demo_flask: Path) -> None:
    result = run_stage("eval_align", workdir / "no-model", demo_flask, workdir / "out", cwd=workdir)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {workdir / 'no-model'} is not a model directory (no config.json)"
    assert not (workdir / "out").exists()
    result = run_stage("eval_align", workdir / "no-model", workdir / "out", cwd=workdir)  # the old 2 arguments
    assert result.returncode == 2
    assert result.stderr.strip() == "error: usage: python -m stages.eval_align <model dir> <flask dir> <out dir>"


def test_the_stage_refuses_the_old_params_layout(workdir: Path, tiny_base: Path, demo_flask: Path) -> None:
    set_params(workdir, **{"eval.align.flask": {"path": str(demo_flask)}})
    result = run_stage("eval_align", tiny_base, demo_flask, workdir / "out", cwd=workdir)
    assert result.returncode == 2 and "eval.align.flask=" in result.stderr and "unknown key" in result.stderr
    assert not (workdir / "out").exists()


# ---------------------------------------------------------------------------- end to end


def test_chat_template_renders_the_generation_prompt(tiny_base: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    assert render_prompts(tokenizer, ["Add 2 and 2."], "paper") == ["Add 2 and 2."]
    assert render_prompts(tokenizer, ["Add 2 and 2."], "chat") == ["<|user|>\nAdd 2 and 2.<eos>\n<|assistant|>\n"]
    tokenizer.chat_template = None
    with pytest.raises(StageError, match=r"eval\.align\.template=chat but the model's tokenizer has no chat template"):
        render_prompts(tokenizer, ["Add 2 and 2."], "chat")


def test_answers_then_judge_on_the_tiny_model(workdir: Path, tiny_base: Path, demo_flask: Path) -> None:
    align = {"limit": 2, "seed": 3, "max_new_tokens": 8, "temperature": 0.0, "batch_size": 2}
    judge = {"backend": "hf", "hf_model": str(tiny_base)}
    set_params(workdir, **{"eval.align": align, "eval.judge": judge})  # whole sections: the rest are defaults
    result = run_stage("eval_align", tiny_base, demo_flask, "eval", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    answers = (workdir / "eval/answers.jsonl").read_bytes()
    rows = [json.loads(line) for line in answers.decode().splitlines()]
    assert len(rows) == 2 and [r["idx"] for r in rows] == sorted(r["idx"] for r in rows)
    assert {r["idx"] for r in rows} < {3, 17, 250, 981}
    assert set(rows[0]) == {"idx", "instruction", "reference", "skills", "domain", "difficulty", "task", "response"}
    assert all(r["response"] for r in rows)  # the tiny model babbles, but it answers
    assert run_stage("eval_align", tiny_base, demo_flask, "again", cwd=workdir).returncode == 0
    assert (workdir / "again/answers.jsonl").read_bytes() == answers  # greedy: byte-identical

    # the answers' metrics carry the params they were made with, defaults filled in
    answer_metrics = json.loads((workdir / "eval/answers.metrics.json").read_text())
    assert answer_metrics == {"instances": 2, "empty": 0, "params": asdict(AlignParams(**align))}
    assert answer_metrics["params"]["template"] == "paper" and answer_metrics["params"]["idx_max"] == 1700

    result = run_stage("judge", "eval/answers.jsonl", demo_flask, "eval", "cache", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (workdir / "eval/answers.jsonl").read_bytes() == answers  # the judge never touches the answers
    metrics = json.loads((workdir / "eval/metrics.json").read_text())
    align = metrics["align"]
    assert align["instances"] == 2 and align["parse_failures"] == 0
    scored = {k for k, v in align.items() if isinstance(v, float) and k != "avg"}
    assert scored == {metric_key(skill) for r in rows for skill in r["skills"]}
    assert all(20 <= align[k] <= 100 for k in scored)
    assert metrics["params"] == asdict(JudgeParams(backend="hf", hf_model=str(tiny_base)))
    assert metrics["params"]["prompt_id"] == 2 and metrics["params"]["feedback_tokens"] == 0
    judgments = [json.loads(line) for line in (workdir / "eval/judgments.jsonl").read_text().splitlines()]
    assert [j["idx"] for j in judgments] == [r["idx"] for r in rows]
    assert (workdir / "cache").is_dir()  # the DVC output exists even when the hf judge does not use it
