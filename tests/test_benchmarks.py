"""benchmarks@<task>: each source lands in the columns lm-eval's built-in task reads, so that
lm-eval's own prompts, choices and targets come out of it (checked through lm-eval itself)."""

from __future__ import annotations

import bz2
import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest

from instmix.core.files import read_jsonl
from instmix.core.profile import read_profile
from instmix.core.vocab import TASKS
from instmix.nlp.benchmarks import split_context
from tests.conftest import DEMO, REPO, SHARED_DATA, run_stage, set_params
from tests.local_hub import BENCHMARK_REPOS, LocalHub

# The files each profile points eval.benchmarks at: the demo's own, and ../shared/data's.
DEMO_SOURCES = {task: REPO / path for task, path in read_profile("demo")["eval"]["benchmarks"].items()}
SHARED_SOURCES = {
    task: Path(path) for task, path in read_profile("local", str(SHARED_DATA))["eval"]["benchmarks"].items()
}


def convert(workdir: Path, sources: dict[str, Path | str]) -> Path:
    """Run benchmarks@<task> as DVC does for each source; returns data/benchmarks."""
    set_params(workdir, **{f"eval.benchmarks.{task}": str(path) for task, path in sources.items()})
    for task in sources:
        result = run_stage("benchmarks", task, f"data/benchmarks/{task}", cwd=workdir)
        assert result.returncode == 0, result.stderr
    return workdir / "data" / "benchmarks"


@pytest.fixture
def bench_dir(workdir: Path) -> Path:
    set_params(workdir, **{"eval.benchmarks": {}})  # each test names the sources it converts
    return workdir


def lm_eval_docs(benchmarks: Path, task: str) -> dict[str, list[tuple[Any, Any, Any]]]:
    """(text, choices, target) of every doc, as lm-eval's own task renders it; per leaf task."""
    import tempfile

    from instmix.nlp.harness import task_configs, task_manager

    with tempfile.TemporaryDirectory() as folder:
        loaded = task_manager(task_configs([task], benchmarks), Path(folder)).load([task])["tasks"]
        return {
            name: [(t.doc_to_text(d), t.doc_to_choice(d), t.doc_to_target(d)) for d in t.eval_docs]
            for name, t in loaded.items()
        }


def metrics_of(benchmarks: Path, task: str) -> dict[str, Any]:
    """The stage's metrics without the params it records (checked once, in the hub test)."""
    metrics = json.loads((benchmarks / f"{task}.metrics.json").read_text())
    assert set(metrics.pop("params")) == {"path"}
    return metrics


# ---------------------------------------------------------------------------- demo files: always


def test_demo_sources_give_lm_eval_its_own_prompts(bench_dir: Path) -> None:
    out = convert(bench_dir, DEMO_SOURCES)
    demo = DEMO / "benchmarks"

    arc = read_jsonl(demo / "arc/arc_challenge.jsonl")
    docs = lm_eval_docs(out, "arc_challenge")["arc_challenge"]
    assert [d[0] for d in docs] == [r["query"] + "\nAnswer:" for r in arc]
    assert [(d[1], d[2]) for d in docs] == [(r["choices"], r["gold"]) for r in arc]

    wino = read_jsonl(demo / "winogrande/dev.jsonl")
    labels = (demo / "winogrande/dev-labels.lst").read_text().split()
    docs = lm_eval_docs(out, "winogrande")["winogrande"]
    assert [d[0] for d in docs] == [int(label) - 1 for label in labels]  # lm-eval's gold index
    blank = wino[0]["sentence"].index("_")
    assert docs[0][1] == [wino[0]["sentence"][:blank] + wino[0][o] for o in ("option1", "option2")]
    assert docs[0][2] == wino[0]["sentence"][blank + 1 :].strip()

    piqa = read_jsonl(demo / "piqa/valid.jsonl")
    labels = (demo / "piqa/valid-labels.lst").read_text().split()
    docs = lm_eval_docs(out, "piqa")["piqa"]
    pairs = zip(piqa, labels, strict=True)
    assert docs == [(f"Question: {r['goal']}\nAnswer:", [r["sol1"], r["sol2"]], int(g)) for r, g in pairs]

    docs = lm_eval_docs(out, "mmlu")
    assert sorted(docs) == ["mmlu_astronomy", "mmlu_high_school_geography", "mmlu_nutrition"]
    with open(demo / "mmlu/test/nutrition_test.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    text, choices, target = docs["mmlu_nutrition"][2]
    assert (
        text
        == f"{rows[2]['question']}\nA. {rows[2]['choice0']}\nB. {rows[2]['choice1']}"
        + "".join(f"\n{letter}. {rows[2][f'choice{i}']}" for i, letter in ((2, "C"), (3, "D")))
        + "\nAnswer:"
    )
    assert (choices, target) == (["A", "B", "C", "D"], int(rows[2]["answer"]))

    race = read_jsonl(demo / "race/test_middle.jsonl")
    docs = lm_eval_docs(out, "race")["race"]
    articles = list(dict.fromkeys(r["example_id"] for r in race))
    assert len(docs) == len(articles) == metrics_of(out, "race")["docs"]
    for (text, choices, target), article in zip(docs, articles, strict=True):
        questions = [r for r in race if r["example_id"] == article]
        last = questions[-1]
        assert text.startswith("Article: " + last["article"] + "\n\n") and text.endswith(last["question"])
        assert (choices, target) == (last["options"], "ABCD".index(last["answer"]))
        first = questions[0]  # shown before the last one, answered
        assert f"Question: {first['question']}\nAnswer: {first['options']['ABCD'.index(first['answer'])]}\n" in text
    # A cloze question shown before the last one has its blank filled with the answer.
    assert docs[1][0].endswith("\nThe beans were given to the school kitchen\nWho helped with the garden on weekends?")

    docs = lm_eval_docs(out, "hellaswag")["hellaswag"]
    hella = read_jsonl(demo / "hellaswag/hellaswag_val.jsonl")
    assert [d[2] for d in docs] == [r["label"] for r in hella]
    # lm-eval capitalises ctx_b (the unfinished ActivityNet phrase) and strips WikiHow markers.
    assert docs[0][0] == (
        "Making lemonade: A woman cuts several lemons in half on a wooden board. "
        "She squeezes the halves into a tall glass pitcher. The woman"
    )
    assert docs[2][0] == "Playing the violin: A girl stands on a small stage holding a violin under her chin. Then she"
    assert docs[5][0] == (
        "Home and Garden: How to water a houseplant. Check the soil first. "
        "Push a finger about an inch into the soil. If it feels dry, the plant needs water."
    )
    assert docs[5][1][0].startswith(" Pour water slowly")  # "[substeps] Pour ...": lm-eval keeps the space
    assert metrics_of(out, "hellaswag")["ctx_b_guessed"] == 5


def test_hellaswag_text_dump_and_context_split(bench_dir: Path) -> None:
    hella = read_jsonl(DEMO / "benchmarks/hellaswag/hellaswag_val.jsonl")
    dump = bench_dir / "hellaswag_val.txt.bz2"
    lines = [line for r in hella for line in (f"{r['activity_label']}: {r['context']}", str(r["label"]), *r["endings"])]
    dump.write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))
    out = convert(bench_dir, {"hellaswag": dump})
    docs = read_jsonl(out / "hellaswag/validation.jsonl")
    assert [(d["activity_label"], d["ctx"], d["endings"], d["label"]) for d in docs] == [
        (r["activity_label"], r["context"], r["endings"], str(r["label"])) for r in hella
    ]
    assert metrics_of(out, "hellaswag") | {"docs": 10} == {
        "source": "local", "split": "validation", "format": "text-dump", "docs": 10,
        "ctx_b_guessed": 5, "endings_whitespace_exact": False,
    }  # fmt: skip
    assert split_context("A man sits. He picks up a cup. then he") == ("A man sits. He picks up a cup.", "then he")
    assert split_context('She says "hello." the girl') == ('She says "hello."', "the girl")
    assert split_context("[title] Rinse the cup. [step] Dry it.") == ("[title] Rinse the cup. [step] Dry it.", "")
    assert split_context("a man on a bike") == ("", "a man on a bike")


def test_a_hub_pin_resolves_to_a_commit_and_keeps_the_scored_rows(bench_dir: Path, local_hub: LocalHub) -> None:
    """A branch is resolved over HTTP to the commit every model is then scored on; the rows the
    built-in task scores at that commit are kept for decontam, equal to the local conversion's."""
    local = convert(bench_dir, DEMO_SOURCES)
    rows = {task: {p.name: read_jsonl(p) for p in (local / task).glob("*.jsonl")} for task in TASKS}
    for task, (repo, _) in BENCHMARK_REPOS.items():
        (bench_dir / f"{task}.hub.yaml").write_text(f"repo: {repo}\nrevision: main\n")
    env = local_hub.env(bench_dir / "hf")
    set_params(bench_dir, **{f"eval.benchmarks.{t}": str(bench_dir / f"{t}.hub.yaml") for t in TASKS})
    for task, (repo, _) in BENCHMARK_REPOS.items():
        result = run_stage("benchmarks", task, f"hub/{task}", cwd=bench_dir, **env)
        assert result.returncode == 0, result.stderr[-2000:]
        sha = local_hub.shas[f"datasets/{repo}"]
        assert json.loads((bench_dir / f"hub/{task}/hub.json").read_text()) == {"repo": repo, "revision": sha}
        metrics = json.loads((bench_dir / f"hub/{task}.metrics.json").read_text())
        assert (metrics["source"], metrics["revision"], metrics["commit"]) == ("hub", "main", sha)
        copied = {p.name: read_jsonl(p) for p in (bench_dir / "hub" / task).glob("*.jsonl")}
        if task == "mmlu":  # the hub holds all 57 subjects; the demo's keep their rows
            assert len(copied) == 57 and all(copied[name] == docs for name, docs in rows[task].items())
        else:
            assert copied == rows[task]
        assert metrics["docs"] == sum(map(len, copied.values()))


def test_dataset_names_are_the_builtin_tasks(bench_dir: Path) -> None:
    """DATASET_NAME is what lm-eval's own YAMLs say (following each one's `include:`)."""
    from instmix.nlp.benchmarks import DATASET_NAME, lm_eval_tasks_dir

    for task, name in DATASET_NAME.items():
        include = re.search(r'^include: "\{lm_eval\}/(.+)"$', (REPO / f"configs/lm_eval/{task}.yaml").read_text(), re.M)
        text = (lm_eval_tasks_dir() / include[1]).read_text()
        assert re.search(rf"^dataset_name: {name or 'null'}$", text, re.M), task


# ---------------------------------------------------------------------------- bad sources


def broken(tmp: Path, task: str) -> Path:
    """A demo source with one fault; the reason must show in the error."""
    if task == "piqa":  # labels file missing
        (tmp / "valid.jsonl").write_text((DEMO / "benchmarks/piqa/valid.jsonl").read_text())
        return tmp / "valid.jsonl"
    if task == "arc_challenge":  # gold out of range on line 2
        rows = read_jsonl(DEMO / "benchmarks/arc/arc_challenge.jsonl")
        rows[1]["gold"] = 7
        (tmp / "arc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return tmp / "arc.jsonl"
    if task == "mmlu":  # a subject lm-eval does not have
        (tmp / "mmlu").mkdir()
        (tmp / "mmlu/cooking_test.csv").write_text("question,choice0,choice1,choice2,choice3,answer\nq,a,b,c,d,0\n")
        return tmp / "mmlu"
    (tmp / "race.jsonl").write_text('{"example_id": "x", "article": "a"\n')  # truncated JSON
    return tmp / "race.jsonl"


@pytest.mark.parametrize(
    ("task", "message"),
    [("piqa", "valid-labels.lst is missing"), ("arc_challenge", "arc.jsonl:2: gold 7 does not index 4 choices"),
     ("mmlu", "'cooking' is not one of lm-eval's 57 MMLU subjects"), ("race", "race.jsonl:1: not JSON")],
)  # fmt: skip
def test_bad_sources_stop_with_one_line_and_write_nothing(bench_dir: Path, task: str, message: str) -> None:
    set_params(bench_dir, **{f"eval.benchmarks.{task}": str(broken(bench_dir, task))})
    result = run_stage("benchmarks", task, f"data/benchmarks/{task}", cwd=bench_dir)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (bench_dir / "data").exists()


def test_a_missing_source_names_the_params_key(bench_dir: Path) -> None:
    set_params(bench_dir, **{"eval.benchmarks.piqa": "no/such/file.jsonl"})
    result = run_stage("benchmarks", "piqa", "data/benchmarks/piqa", cwd=bench_dir)
    assert result.returncode == 2 and "eval.benchmarks.piqa=no/such/file.jsonl" in result.stderr


# ---------------------------------------------------------------------------- ../shared/data


def test_shared_sources_convert_with_the_readme_counts(bench_dir: Path, shared_data: Path) -> None:
    out = convert(bench_dir, SHARED_SOURCES)
    docs = {task: metrics_of(out, task)["docs"] for task in TASKS}
    readme = {"arc_challenge": 1172, "winogrande": 1267, "piqa": 1838, "mmlu": 14042, "race": 362, "hellaswag": 500}
    assert docs == readme
    assert metrics_of(out, "mmlu")["subjects"] == 57 and metrics_of(out, "race")["questions"] == 1436

    arc_rows = read_jsonl(SHARED_SOURCES["arc_challenge"])
    arc = read_jsonl(out / "arc_challenge/test.jsonl")
    assert all(d["choices"]["label"].index(d["answerKey"]) == r["gold"] for d, r in zip(arc, arc_rows, strict=True))
    piqa_labels = (shared_data / "piqa/valid-labels.lst").read_text().split()
    assert [d["label"] for d in read_jsonl(out / "piqa/validation.jsonl")] == [int(g) for g in piqa_labels]
    wino_labels = (shared_data / "winogrande/dev-labels.lst").read_text().split()
    assert [d["answer"] for d in read_jsonl(out / "winogrande/validation.jsonl")] == wino_labels
    with open(shared_data / "mmlu/test/virology_test.csv", newline="") as handle:
        answers = [int(r["answer"]) for r in csv.DictReader(handle)]
    assert [d["answer"] for d in read_jsonl(out / "mmlu/virology.jsonl")] == answers

    # The 500-item HellaSwag file keeps source_id: ActivityNet contexts must get a ctx_b, WikiHow ones none.
    hella_rows = read_jsonl(SHARED_SOURCES["hellaswag"])
    hella = read_jsonl(out / "hellaswag/validation.jsonl")
    kinds = [(r["source_id"].split("~")[0], bool(d["ctx_b"])) for r, d in zip(hella_rows, hella, strict=True)]
    assert all(has_b == (kind == "activitynet") for kind, has_b in kinds)


def test_shared_hellaswag_dump_splits_contexts_like_the_original(bench_dir: Path, shared_data: Path) -> None:
    out = convert(bench_dir, {"hellaswag": shared_data / "hellaswag/hellaswag_val_full.txt.bz2"})
    docs = read_jsonl(out / "hellaswag/validation.jsonl")
    assert len(docs) == 10042 and metrics_of(out, "hellaswag")["format"] == "text-dump"
    # ctx_b of the first ten rows of the original hellaswag_val.jsonl (public; ind 24 ... 182)
    first = ["he", "the lady", "the child and a different man", "the boy", "the boy", "the boy", "he", "two men"]
    assert [d["ctx_b"] for d in docs[:10]] == [*first, "then he", "he"]
    assert docs[0]["ctx_a"] == "A man is sitting on a roof." and docs[0]["label"] == "3"


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not present")
def test_shared_race_groups_every_question_under_its_article(bench_dir: Path) -> None:
    import ast

    out = convert(bench_dir, {"race": SHARED_SOURCES["race"]})
    rows = read_jsonl(SHARED_SOURCES["race"])
    problems = [p for d in read_jsonl(out / "race/test.jsonl") for p in ast.literal_eval(d["problems"])]
    assert [(p["question"], p["options"], p["answer"]) for p in problems] == [
        (r["question"], r["options"], r["answer"]) for r in rows
    ]
