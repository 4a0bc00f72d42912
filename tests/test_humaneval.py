"""eval_code@<model>: the canaries (164 canonical solutions pass, wrong and empty ones fail),
post-processing, the --samples mode, the stage end to end on the tiny model, bad params."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from instmix.code.humaneval import (
    FENCE_STOP,
    STOP,
    CodeParams,
    extract_code,
    pass_at_k,
    program,
    read_problems,
    render,
    score,
    to_completion,
)
from instmix.code.sandbox import Limits, Sandbox
from instmix.core.files import read_jsonl, write_jsonl
from instmix.core.params import ParamsError, parse
from tests.conftest import run_stage, set_params

PROBLEMS = read_problems()
FAST_STAGE = {"limit": 2, "n_samples": 2, "max_new_tokens": 16, "batch_size": 4, "execute": True, "timeout": 3.0}


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(Limits(timeout=5.0))


# ---------------------------------------------------------------------------- canaries


def test_all_164_canonical_solutions_pass(sandbox: Sandbox) -> None:
    assert len(PROBLEMS) == 164
    samples = [{"task_id": t, "completion": p["canonical_solution"]} for t, p in PROBLEMS.items()]
    start = time.perf_counter()
    rows, metrics = score(PROBLEMS, samples, sandbox)
    failed = [(r["task_id"], r["result"]) for r in rows if not r["passed"]]
    assert failed == []
    assert metrics == {"code": {"pass@1": 1.0, "n": 1, "problems": 164, "sandboxed": sandbox.sandboxed}}
    print(f"164 canonical programs in {time.perf_counter() - start:.1f} s, {sandbox.workers} workers")


def test_wrong_and_empty_completions_fail(sandbox: Sandbox) -> None:
    tasks = list(PROBLEMS)[:6]
    samples = [{"task_id": t, "completion": c} for t in tasks for c in ("", "    return None\n", "    pass\n")]
    samples += [{"task_id": t, "completion": PROBLEMS[t]["canonical_solution"]} for t in tasks[:3]]
    rows, metrics = score(PROBLEMS, samples, sandbox)
    assert [r["passed"] for r in rows] == [False] * 18 + [True] * 3
    assert metrics["code"]["pass@1"] == pytest.approx((0 * 3 + 3 * 1 / 4) / 6)
    assert metrics["code"]["n"] == 3  # the smallest per-task count


def test_pass_at_k_is_the_unbiased_estimator() -> None:
    assert pass_at_k([10, 10], [1, 0]) == {"pass@1": pytest.approx(0.05), "pass@10": 0.5}
    assert pass_at_k([2, 2], [1, 2]) == {"pass@1": 0.75}  # pass@10 needs n >= 10
    assert pass_at_k([20], [2])["pass@10"] == pytest.approx(1 - math.comb(18, 10) / math.comb(20, 10))


# ---------------------------------------------------------------------------- post-processing


def body(task: str) -> str:
    return PROBLEMS[task]["canonical_solution"]


def whole_function(task: str) -> str:
    """The entry point written out again, as an instruction-tuned model often answers."""
    problem = PROBLEMS[task]
    header = next(line for line in problem["prompt"].split("\n") if line.startswith(f"def {problem['entry_point']}("))
    return f"{header}\n{body(task)}"


@pytest.mark.parametrize(
    ("name", "generation"),
    [
        ("continuation of the body", body),  # the prompt ends on a fresh line: "    return ..."
        ("continuation without the body's indentation", lambda t: body(t).lstrip()),
        ("continuation after a blank line", lambda t: "\n" + body(t)),
        ("continuation then a closing fence", lambda t: body(t).lstrip() + "\n```\n\nThis function works by"),
        ("whole function", lambda t: whole_function(t) + "\n"),
        ("whole function in a fence", lambda t: "Here you go:\n```python\n" + whole_function(t) + "\n```\nDone."),
        ("whole function after a space", lambda t: " " + whole_function(t)),
    ],
)  # fmt: skip
def test_lenient_turns_generations_in_the_usual_shapes_into_passing_completions(
    sandbox: Sandbox, name: str, generation
) -> None:
    tasks = ["HumanEval/0", "HumanEval/2", "HumanEval/12", "HumanEval/53"]
    samples = []
    for task in tasks:
        model_input = render(CodeParams().prompt_template, PROBLEMS[task]["prompt"])
        assert model_input == PROBLEMS[task]["prompt"]  # the HumanEval prompt exactly, nothing added
        completion = to_completion(PROBLEMS[task], model_input, generation(task), "lenient")
        samples.append({"task_id": task, "completion": completion})
    rows, _ = score(PROBLEMS, samples, sandbox)
    assert [(r["task_id"], r["result"]) for r in rows] == [(t, "passed") for t in tasks], name


def test_the_standard_protocol_scores_the_generation_exactly(sandbox: Sandbox) -> None:
    """postprocess none: the completion is the generation as cut at the first Codex stop, so only a
    continuation of the body passes; the shapes lenient repairs fail."""
    task = "HumanEval/2"
    prompt = PROBLEMS[task]["prompt"]
    shapes = {
        "continuation": body(task),
        "unindented": body(task).lstrip(),
        "fenced": "```python\n" + whole_function(task) + "\n",  # cut at the closing fence by lenient's stop
        "indented whole function": "    " + whole_function(task).replace("\n", "\n    "),
    }
    for generation in shapes.values():
        assert to_completion(PROBLEMS[task], prompt, generation, "none") == generation
        assert to_completion(PROBLEMS[task], prompt, generation) == generation  # the default
    samples = [
        {"task_id": task, "completion": to_completion(PROBLEMS[task], prompt, g, "none")} for g in shapes.values()
    ]
    lenient = [
        {"task_id": task, "completion": to_completion(PROBLEMS[task], prompt, g, "lenient")} for g in shapes.values()
    ]
    assert [r["passed"] for r in score(PROBLEMS, samples, sandbox)[0]] == [True, False, False, False]
    assert [r["passed"] for r in score(PROBLEMS, lenient, sandbox)[0]] == [True, True, True, True]
    # a template's text after the prompt is part of the program under both
    assert to_completion(PROBLEMS[task], prompt + "    ", "return 1", "none") == "    return 1"


def test_extract_code_and_render() -> None:
    assert extract_code("x = 1\n```\nprose") == "x = 1\n"
    assert extract_code("```python\nx = 1\n```\nmore ```y```") == "x = 1\n"
    assert extract_code("no fence") == "no fence"
    assert extract_code("Sure:\n```py\ndef f(x):\n    return x\n```", "f") == "def f(x):\n    return x\n"
    assert render("Q: {prompt} A:", "{x}") == "Q: {x} A:"  # braces in code are not format fields
    assert to_completion(PROBLEMS["HumanEval/0"], "{prompt}", "   \n", "lenient") == ""


# ---------------------------------------------------------------------------- the --samples mode


def test_samples_mode_scores_a_file_and_writes_per_sample_results(workdir: Path) -> None:
    set_params(workdir, **{"eval.code": {"timeout": 5.0}})
    task = "HumanEval/4"
    samples = [{"task_id": task, "completion": body(task)}, {"task_id": task, "completion": "    return 0\n"}]
    write_jsonl(workdir / "s.jsonl", samples)
    result = run_stage("eval_code", "--samples", "s.jsonl", cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.splitlines()[0]) == {"pass@1": 0.5}
    rows = read_jsonl(workdir / "s.jsonl_results.jsonl")
    assert [(r["passed"], r["result"]) for r in rows] == [(True, "passed"), (False, "failed: AssertionError")]

    result = run_stage("eval_code", "--samples", "s.jsonl", "--out", "scored", cwd=workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((workdir / "scored/metrics.json").read_text())["code"]["pass@1"] == 0.5
    assert read_jsonl(workdir / "scored/samples.jsonl") == rows


def test_samples_mode_takes_another_problem_file(tmp_path: Path) -> None:
    problem = {"task_id": "T/0", "prompt": "def inc(x):\n", "entry_point": "inc"}
    problem["test"] = "def check(f):\n    assert f(1) == 2\n"
    write_jsonl(tmp_path / "problems.jsonl", [problem])
    write_jsonl(tmp_path / "s.jsonl", [{"task_id": "T/0", "completion": "    return x + 1\n"}] * 10)
    result = run_stage("eval_code", "--samples", "s.jsonl", "--problems", "problems.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.splitlines()[0]) == {"pass@1": 1.0, "pass@10": 1.0}


@pytest.mark.parametrize(
    ("content", "message"),
    [('{"task_id": "HumanEval/999", "completion": ""}\n', "s.jsonl:1: unknown task_id 'HumanEval/999'"),
     ('{"task_id": "HumanEval/0"}\n', "s.jsonl:1: needs a string 'completion'"),
     ('{"task_id": "HumanEval/0", "completion": ""}\n{oops\n', "s.jsonl:2: not JSON"),
     ("", "s.jsonl: no samples")],
)  # fmt: skip
def test_a_bad_samples_file_is_named_with_its_line(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "s.jsonl").write_text(content)
    result = run_stage("eval_code", "--samples", "s.jsonl", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


# ---------------------------------------------------------------------------- the stage


def test_stage_end_to_end_on_the_tiny_model(workdir: Path, tiny_base: Path) -> None:
    set_params(workdir, **{"eval.code": FAST_STAGE})
    outputs = []
    for out in ("out1", "out2"):
        result = run_stage("eval_code", tiny_base, out, cwd=workdir)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs.append(((workdir / out / "metrics.json").read_bytes(), (workdir / out / "samples.jsonl").read_bytes()))
    assert outputs[0] == outputs[1], "two runs with the same seed differ"
    metrics = json.loads(outputs[0][0])
    assert set(metrics) == {"code", "params"} and set(metrics["code"]) == {"pass@1", "n", "problems", "sandboxed"}
    assert metrics["params"]["n_samples"] == FAST_STAGE["n_samples"]  # the params it used
    assert metrics["code"]["n"] == 2 and metrics["code"]["problems"] == 2 and 0 <= metrics["code"]["pass@1"] <= 1
    rows = read_jsonl(workdir / "out1" / "samples.jsonl")
    assert [(r["task_id"], r["sample"]) for r in rows] == [(f"HumanEval/{i}", j) for i in (0, 1) for j in (0, 1)]
    assert all(set(r) == {"task_id", "sample", "completion", "generation", "passed", "result"} for r in rows)
    assert all(r["result"] == "passed" or r["result"].startswith(("failed: ", "timed out")) for r in rows)
    assert "pass@1=" in result.stdout


def test_the_stage_records_its_protocol_and_none_keeps_generations(workdir: Path, tiny_base: Path) -> None:
    set_params(workdir, **{"eval.code": {**FAST_STAGE, "postprocess": "none", "stop": STOP}})
    result = run_stage("eval_code", tiny_base, "out", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    params = json.loads((workdir / "out/metrics.json").read_text())["params"]
    assert params["postprocess"] == "none" and params["stop"] == STOP and params["top_p"] == 0.95
    rows = read_jsonl(workdir / "out/samples.jsonl")
    assert len(rows) == 4 and all(r["completion"] == r["generation"] for r in rows)


def test_execution_is_gated(workdir: Path, tiny_base: Path) -> None:
    set_params(workdir, **{"eval.code": {**FAST_STAGE, "execute": False}})
    start = time.perf_counter()
    result = run_stage("eval_code", tiny_base, "out", cwd=workdir)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "eval.code.execute=false is not allowed: true" in result.stderr
    assert time.perf_counter() - start < 15 and not (workdir / "out").exists()  # refused before loading


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("n_samples", 0, "eval.code.n_samples=0"), ("top_p", 1.5, "eval.code.top_p=1.5"),
     ("temperature", -0.1, "eval.code.temperature=-0.1"), ("limit", 0, "eval.code.limit=0"),
     ("prompt_template", "no placeholder", "containing {prompt}"), ("sandbox", "docker", "one of auto, bwrap, none"),
     ("timeout", 0, "eval.code.timeout=0"), ("stop", [""], "eval.code.stop[0]='' is not allowed"),
     ("postprocess", "strict", "one of none, lenient"),
     ("nsamples", 3, "unknown key")],
)  # fmt: skip
def test_bad_params_stop_before_any_work(workdir: Path, key: str, value: object, message: str) -> None:
    set_params(workdir, **{"eval.code": {"execute": True, key: value}})
    result = run_stage("eval_code", "no-model", "out", cwd=workdir)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_defaults_are_the_papers() -> None:
    params = parse(CodeParams, {}, "eval.code")
    assert (params.n_samples, params.temperature, params.top_p, params.limit) == (10, 0.2, 0.95, None)
    assert params.prompt_template == "{prompt}" and not params.execute
    assert params.stop == ["\nclass", "\ndef", "\n#", "\nif", "\nprint"] and params.postprocess == "none"  # Codex's
    assert FENCE_STOP not in STOP
    with pytest.raises(ParamsError, match=r"eval\.code\.batch_size=0"):
        parse(CodeParams, {"batch_size": 0}, "eval.code")


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    result = run_stage("eval_code", "only-one-path", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "usage:" in result.stderr
    assert program(PROBLEMS["HumanEval/0"], "X").startswith(PROBLEMS["HumanEval/0"]["prompt"] + "X\n")
