"""judge: FLASK's judge prompt from the flask stage's folder, the judge's params and labels,
reading the answers, and the judge stage's command line and refusals (no backend needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from instmix.align.flask import FlaskParams, build_messages, copy_files, read_judge_prompt, read_rubrics, skills_block
from instmix.align.judge import judge_label, read_answers
from instmix.align.judge_params import JudgeParams
from instmix.core.files import write_jsonl
from instmix.core.params import ParamsError, StageError, parse
from tests.conftest import run_stage, set_params


def demo_answers() -> list[dict[str, Any]]:
    """Two answers in the eval_align stage's format, written by hand (no model needed)."""
    return [
        {
            "idx": 3, "instruction": "How much do 7 muffins at 3 dollars cost with 10% off?",
            "reference": "18.90 dollars.", "skills": ["Logical Correctness", "Conciseness", "Readability"],
            "domain": ["Math"], "difficulty": "simple lifestyle knowledge", "task": "demo",
            "response": "7 x 3 = 21 dollars, minus 10% is 18.90 dollars.",
        },
        {
            "idx": 17, "instruction": "Why does a metal bench feel colder than a wooden one?",
            "reference": "Metal conducts heat away from the skin faster.",
            "skills": ["Factuality", "Comprehension", "Completeness"],
            "domain": ["Natural Science", "Math"], "difficulty": "formal education knowledge", "task": "demo",
            "response": "Because metal is colder.",
        },
    ]  # fmt: skip


# ---------------------------------------------------------------------------- FLASK's prompt


def test_the_demo_prompt_holds_rubrics_reference_and_response(demo_flask: Path) -> None:
    rubrics, prompt = read_rubrics(demo_flask), read_judge_prompt(demo_flask, 2)
    item = demo_answers()[0]
    system, user = build_messages(item, prompt, rubrics)
    assert system == {"role": "system", "content": prompt.system}
    text = user["content"]
    assert "[Ground truth Answer]\n18.90 dollars.\n\n[Assistant's Response]\n7 x 3 = 21" in text
    positions = [text.index(f"\n{skill}: {rubrics[skill]['Criteria']}\nScore 1: ") for skill in item["skills"]]
    assert positions == sorted(positions)  # in the instance's order, as FLASK lists them
    assert text.count("\nScore 5: ") == 3 and "{" not in text.replace("{'", "")
    assert "[Ground truth Answer]" not in build_messages(item, read_judge_prompt(demo_flask, 1), rubrics)[1]["content"]
    other = build_messages(item, prompt, rubrics, "Another response.")[1]["content"]
    assert "[Assistant's Response]\nAnother response.\n" in other and "7 x 3" not in other


def test_the_skills_block_is_laid_out_as_flask_does(demo_flask: Path) -> None:
    rubrics = read_rubrics(demo_flask)
    block = skills_block(["Readability"], rubrics)
    scoring = rubrics["Readability"]["Scoring"]
    expected = f"\nReadability: {rubrics['Readability']['Criteria']}" + "".join(
        f"\nScore {level}: {scoring[level]}" for level in "12345"
    )
    assert block == expected + "\n\n"
    with pytest.raises(StageError, match="FLASK skill 'Telepathy' has no rubric"):
        skills_block(["Readability", "Telepathy"], rubrics)


def test_flask_own_prompt_2_is_the_reference_answer_variant(shared_data: Path, tmp_path: Path) -> None:
    flask = FlaskParams(
        path=str(shared_data / "flask"),
        eval_set="flask_evaluation.jsonl",
        skills="skillset_description.json",
        prompts="judge_prompt.jsonl",
        reviewers="judge_reviewer.jsonl",
    )
    folder = tmp_path / "flask"
    copy_files(flask, folder)
    rubrics, prompt = read_rubrics(folder), read_judge_prompt(folder, 2)
    assert prompt.reviewer["reviewer_id"] == "gpt-4-0613-default" and len(rubrics) == 12
    item = {**demo_answers()[1], "skills": ["Commonsense Understanding", "Readability", "Comprehension"]}
    user = build_messages(item, prompt, rubrics)[1]["content"]
    assert "[Ground truth Answer]\nMetal conducts heat away from the skin faster." in user
    assert user.startswith("We would like to request your feedback") and user.endswith("[System]\n\n\n")
    for skill in item["skills"]:
        assert f"\n{skill}: {rubrics[skill]['Criteria']}\nScore 1: {rubrics[skill]['Scoring']['1']}" in user
    assert "return a Python dictionary" in user and "{prompt" not in user and "{skills}" not in user


# ---------------------------------------------------------------------------- params, labels, answers


@pytest.mark.parametrize(
    ("values", "key", "allowed"),
    [
        ({"backend": "anthropic"}, "eval.judge.backend", "one of openai, hf"),
        ({"concurrency": 0}, "eval.judge.concurrency", "a positive integer"),
        ({"temperature": 3}, "eval.judge.temperature", "a number in [0, 2]"),
        ({"base_url": "localhost:8000"}, "eval.judge.base_url", "null or an http(s):// URL"),
        ({"api_key": "x"}, "eval.judge.api_key", "unknown key"),
        ({"retries": -1}, "eval.judge.retries", "an integer >= 0"),
        ({"timeout": 0}, "eval.judge.timeout", "a positive number of seconds"),
        ({"prompt_id": 0}, "eval.judge.prompt_id", "a positive integer"),
        ({"flask": {"path": "x"}}, "eval.judge.flask", "unknown key"),  # FLASK's files: eval.flask
    ],
)
def test_bad_params_name_the_key(values: dict[str, Any], key: str, allowed: str) -> None:
    with pytest.raises(ParamsError) as err:
        parse(JudgeParams, values, "eval.judge")
    assert err.value.key == key and allowed in err.value.allowed


def test_the_label_names_the_backend_and_flags_a_weak_local_judge() -> None:
    assert judge_label(JudgeParams(model="gpt-4-0613")) == "openai:gpt-4-0613"
    hf = JudgeParams(backend="hf", hf_model="models/base")
    assert judge_label(hf, 135_000_000) == "hf:models/base [weak judge]"
    assert judge_label(hf, 70_000_000_000) == "hf:models/base" == judge_label(hf)


def test_answers_must_come_from_eval_align(tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    write_jsonl(path, demo_answers())
    assert read_answers(path) == demo_answers()
    write_jsonl(path, [{k: v for k, v in demo_answers()[0].items() if k not in ("reference", "response")}])
    with pytest.raises(StageError, match=r"answers.jsonl:1: missing reference, response \(written by the eval_align"):
        read_answers(path)
    path.write_text("")
    with pytest.raises(StageError, match=r"answers\.jsonl: no answers"):
        read_answers(path)
    path.write_text('{"idx": 3,\n')
    with pytest.raises(StageError, match=r"cannot read answers .*answers\.jsonl: "):
        read_answers(path)
    with pytest.raises(StageError, match=r"cannot read answers .*nowhere\.jsonl: "):
        read_answers(tmp_path / "nowhere.jsonl")


# ---------------------------------------------------------------------------- the stage


def test_the_stage_takes_four_arguments(workdir: Path, demo_flask: Path) -> None:
    write_jsonl(workdir / "answers.jsonl", demo_answers())
    result = run_stage("judge", "answers.jsonl", "out", "cache", cwd=workdir)  # the old 3 arguments
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: usage: python -m stages.judge <answers.jsonl> <flask dir> <out dir> <cache dir>"
    )
    assert not (workdir / "out").exists() and not (workdir / "cache").exists()


def test_the_stage_refuses_a_missing_judge_model_and_writes_nothing(workdir: Path, demo_flask: Path) -> None:
    write_jsonl(workdir / "answers.jsonl", demo_answers())
    set_params(workdir, **{"eval.judge": {"backend": "hf", "hf_model": str(workdir / "no-model")}})
    result = run_stage("judge", "answers.jsonl", demo_flask, "out", "cache", cwd=workdir)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: eval.judge.hf_model={str(workdir / 'no-model')!r} is not a model directory"
    assert not (workdir / "out").exists()


def test_the_stage_needs_the_flask_folder_and_a_known_prompt(workdir: Path, demo_flask: Path) -> None:
    write_jsonl(workdir / "answers.jsonl", demo_answers())
    result = run_stage("judge", "answers.jsonl", workdir / "no-flask", "out", "cache", cwd=workdir)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("no-flask/skills.json: No such file or directory; run the flask stage first")
    set_params(workdir, **{"eval.judge.prompt_id": 9})
    result = run_stage("judge", "answers.jsonl", demo_flask, "out", "cache", cwd=workdir)
    assert result.returncode == 2
    assert "eval.judge.prompt_id=9 is not allowed: one of [1, 2]" in result.stderr
    assert not (workdir / "out").exists()


def test_the_stage_reads_its_own_section(workdir: Path, demo_flask: Path) -> None:
    write_jsonl(workdir / "answers.jsonl", demo_answers())
    set_params(workdir, **{"eval.judge.backend": "anthropic", "eval.align.temperature": -1})  # not read here
    result = run_stage("judge", "answers.jsonl", demo_flask, "out", "cache", cwd=workdir)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: params.yaml: eval.judge.backend=anthropic is not allowed: one of openai, hf"
    )
    assert not (workdir / "out").exists()
