"""eval_nlp@<model>: lm-eval over the tiny model on the converted demo benchmarks (offline):
the metrics contract, per-sample records, determinism, hub wiring and bad params; the continuous
metrics (p_gold, bpb_gold) against hand computations."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from instmix.core.files import read_jsonl
from instmix.core.params import StageError
from instmix.core.vocab import TASKS
from instmix.nlp.harness import continuous_means, sample_records, task_configs
from tests.conftest import run_stage, set_params
from tests.test_benchmarks import DEMO_SOURCES, SHARED_SOURCES

CHOICES = {"arc_challenge": 4, "winogrande": 2, "piqa": 2, "race": 4, "hellaswag": 4}  # mmlu_*: 4
DEMO_SUBJECTS = ("astronomy", "high_school_geography", "nutrition")


def converted(root: Path, sources: dict[str, Path]) -> Path:
    (root / "params.yaml").write_text(json.dumps({"eval": {"benchmarks": {k: str(v) for k, v in sources.items()}}}))
    for task in TASKS:
        result = run_stage("benchmarks", task, f"data/benchmarks/{task}", cwd=root)
        assert result.returncode == 0, result.stderr
    return root / "data" / "benchmarks"


@pytest.fixture(scope="module")
def demo_benchmarks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return converted(tmp_path_factory.mktemp("demo"), DEMO_SOURCES)


@pytest.fixture
def nlp_dir(workdir: Path) -> Path:
    set_params(workdir, **{"eval.nlp": {"limit": 2, "batch_size": 8}})
    return workdir


def run_eval(workdir: Path, model: Path, benchmarks: Path, out: str = "out") -> tuple[dict, list[dict]]:
    result = run_stage("eval_nlp", model, benchmarks, out, cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((workdir / out / "metrics.json").read_text()), read_jsonl(workdir / out / "samples.jsonl")


def test_tiny_model_on_demo_benchmarks_is_deterministic(nlp_dir: Path, tiny_base: Path, demo_benchmarks: Path) -> None:
    start = time.perf_counter()
    metrics, samples = run_eval(nlp_dir, tiny_base, demo_benchmarks)
    assert time.perf_counter() - start < 90

    assert set(metrics) == {"nlp", "lm_eval_version", "params", "hub"}
    assert metrics["hub"] == {}  # local benchmark files: no hub commit to record
    assert metrics["lm_eval_version"] == "0.4.13" and metrics["params"]["limit"] == 2  # the params it used
    assert metrics["params"]["tasks"] == list(TASKS)
    nlp = metrics["nlp"]
    assert set(nlp) == {*TASKS, "avg", "p_gold_avg", "bpb_gold_avg"}
    for task in TASKS:  # acc_norm exactly where lm-eval's task defines it
        names = {"acc", "acc_norm"} if task in ("arc_challenge", "piqa", "hellaswag") else {"acc"}
        expected = names | {f"{m}_stderr" for m in names} | {"n", "p_gold", "bpb_gold"}  # the harness's stderr kept
        assert set(nlp[task]) == expected and 0 <= nlp[task]["acc"] <= 1
        assert 0 < nlp[task]["p_gold"] < 1 and nlp[task]["bpb_gold"] > 0
    assert nlp["avg"] == pytest.approx(sum(nlp[t]["acc"] for t in TASKS) / 6)
    for metric in ("p_gold", "bpb_gold"):
        assert nlp[f"{metric}_avg"] == pytest.approx(sum(nlp[t][metric] for t in TASKS) / 6)
    assert {t: nlp[t]["n"] for t in TASKS} == {t: 2 * 3 if t == "mmlu" else 2 for t in TASKS}  # limit: per subject

    assert len(samples) == 16 and samples == sorted(samples, key=lambda s: (s["task"], s["doc_id"]))
    tasks = {s["task"] for s in samples}
    assert tasks == {*CHOICES, *(f"mmlu_{s}" for s in DEMO_SUBJECTS)}
    for sample in samples:
        assert len(sample["loglikelihoods"]) == len(sample["choice_bytes"]) == CHOICES.get(sample["task"], 4)
        assert all(ll < 0 for ll in sample["loglikelihoods"]) and sample["acc"] in (0.0, 1.0)
        lls, gold = sample["loglikelihoods"], sample["gold"]  # p_gold: the softmax over the choices at gold
        assert sample["p_gold"] == pytest.approx(math.exp(lls[gold]) / sum(math.exp(ll) for ll in lls))
    assert {s["choice_bytes"][0] for s in samples if s["task"].startswith("mmlu_")} == {2}  # " A": the space counts
    wino = [s for s in samples if s["task"] == "winogrande"]  # one continuation after two contexts
    assert all(s["choice_bytes"][0] == s["choice_bytes"][1] == len(s["target"]) + 1 for s in wino)
    # acc is the argmax of the loglikelihoods against the target (choice index)
    arc = [s for s in samples if s["task"] == "arc_challenge"]
    assert all(s["acc"] == float(max(range(4), key=lambda i: s["loglikelihoods"][i]) == s["target"]) for s in arc)
    mmlu = [s for s in samples if s["task"].startswith("mmlu_")]
    assert nlp["mmlu"]["acc"] == pytest.approx(sum(s["acc"] for s in mmlu) / len(mmlu))  # weighted by size
    assert nlp["mmlu"]["bpb_gold"] == pytest.approx(sum(s["bpb_gold"] for s in mmlu) / len(mmlu))

    run_eval(nlp_dir, tiny_base, demo_benchmarks, out="again")
    for name in ("metrics.json", "samples.jsonl"):
        assert (nlp_dir / "out" / name).read_bytes() == (nlp_dir / "again" / name).read_bytes()


def test_the_demo_model_scores_above_chance_on_easy_items(
    nlp_dir: Path, smollm2_base: Path, demo_benchmarks: Path
) -> None:
    """SmolLM2 through the same stage: a real model, so its log-likelihoods must carry signal."""
    set_params(nlp_dir, **{"eval.nlp.tasks": ["arc_challenge", "piqa"], "eval.nlp.limit": None})
    metrics, samples = run_eval(nlp_dir, smollm2_base, demo_benchmarks)
    assert {s["task"] for s in samples} == {"arc_challenge", "piqa"}
    chance = (1 / 4 + 1 / 2) / 2
    assert metrics["nlp"]["avg"] > chance, metrics


def test_tiny_model_on_the_shared_benchmark_files(
    nlp_dir: Path, tiny_base: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    benchmarks = converted(tmp_path_factory.mktemp("shared"), {t: shared_data / p for t, p in SHARED_SOURCES.items()})
    set_params(nlp_dir, **{"eval.nlp.limit": 1, "eval.nlp.tasks": ["arc_challenge", "mmlu", "race", "hellaswag"]})
    metrics, samples = run_eval(nlp_dir, tiny_base, benchmarks)
    assert metrics["nlp"]["mmlu"]["n"] == 57 and len(samples) == 3 + 57
    assert set(metrics["nlp"]) == {"arc_challenge", "mmlu", "race", "hellaswag", "avg", "p_gold_avg", "bpb_gold_avg"}
    assert all(s["choice_bytes"][s["gold"]] > 1 and s["bpb_gold"] > 0 for s in samples)  # real files


def test_a_hub_source_runs_the_built_in_task_at_the_pinned_revision(tmp_path: Path) -> None:
    for task in ("race", "mmlu"):
        (tmp_path / task).mkdir()
        (tmp_path / task / "hub.json").write_text(json.dumps({"repo": f"org/{task}", "revision": "abc123"}))
    configs = task_configs(["race", "mmlu"], tmp_path)
    assert configs["race.yaml"] == {
        "include": configs["race.yaml"]["include"],
        "dataset_path": "org/race",
        "dataset_kwargs": {"revision": "abc123"},
    } and configs["race.yaml"]["include"].endswith("lm_eval/tasks/race/race.yaml")
    subjects = [name for name in configs if name.startswith("mmlu_")]
    assert len(subjects) == 57 and configs["mmlu_anatomy.yaml"]["tag"] == "mmlu_subjects"
    assert "fewshot_split" not in configs["mmlu_anatomy.yaml"]  # the built-in dev split stays
    assert configs["mmlu.yaml"]["group"] == "mmlu"


def test_local_configs_read_only_the_converted_files(demo_benchmarks: Path) -> None:
    configs = task_configs(list(TASKS), demo_benchmarks)
    assert sorted(configs) == sorted(
        [f"{t}.yaml" for t in CHOICES] + [f"mmlu_{s}.yaml" for s in DEMO_SUBJECTS] + ["mmlu.yaml"]
    )
    files = configs["hellaswag.yaml"]["dataset_kwargs"]["data_files"]
    assert configs["hellaswag.yaml"]["dataset_path"] == "json" and Path(files["validation"]).exists()


# ---------------------------------------------------------------------------- continuous metrics


def logged(doc_id: int, target: object, arguments: list[tuple[str, str]], lls: list[float], **extra: object) -> dict:
    """One sample as lm-eval 0.4.13's simple_evaluate logs it (the fields sample_records reads)."""
    best = max(range(len(lls)), key=lls.__getitem__)
    gold = target if isinstance(target, int) else int(extra["doc"]["answer"]) - 1  # type: ignore[index]
    sample = {"doc_id": doc_id, "doc": extra.get("doc", {}), "target": target, "arguments": arguments}
    return sample | {"filtered_resps": [[ll, False] for ll in lls], "acc": float(best == gold)}


def test_p_gold_and_bpb_gold_equal_a_hand_computation() -> None:
    samples = sample_records({
        "arc_challenge": [logged(0, 0, [("Q?\nAnswer:", " é"), ("Q?\nAnswer:", " no"), ("Q?\nAnswer:", " x")],
                                 [-2.0, -1.0, -3.0])],
        # Winogrande: the gold comes from the doc's answer ("2" -> choice 1), the continuation is shared;
        # the context's trailing space is scored with the continuation, as lm-eval's _encode_pair moves it.
        "winogrande": [logged(7, "日本", [("He went to ", "日本"), ("She went to ", "日本")], [-4.0, -6.0],
                              doc={"answer": "2"})],
    })  # fmt: skip
    arc, wino = samples
    assert arc["gold"] == 0 and arc["choice_bytes"] == [3, 3, 2]  # " é" is 1 + 2 bytes
    # 1 / (1 + e + 1/e) and 2 nats / ln 2 / 3 bytes, worked out by hand
    assert arc["p_gold"] == pytest.approx(0.24472847, abs=1e-8)
    assert arc["bpb_gold"] == pytest.approx(0.96179669, abs=1e-8)
    assert wino["gold"] == 1 and wino["choice_bytes"] == [7, 7]  # " 日本": 1 + 2 * 3 bytes
    assert wino["p_gold"] == pytest.approx(0.11920292, abs=1e-8)  # 1 / (1 + e²)
    assert wino["bpb_gold"] == pytest.approx(1.23659575, abs=1e-8)  # 6 nats / ln 2 / 7 bytes


def test_mmlu_pools_its_documents_and_extreme_loglikelihoods_stay_finite() -> None:
    args = [("Q\nAnswer:", f" {c}") for c in "ABCD"]
    samples = sample_records({
        "mmlu_anatomy": [logged(0, 0, args, [-1000.0, -1001.0, -2000.0, -2000.0])],
        "mmlu_virology": [logged(i, 3, args, [-1.0, -1.0, -1.0, -1.0 + math.log(1 / 3)]) for i in range(3)],
    })  # fmt: skip
    # a naive softmax would underflow to 0/0 at -1000: log-sum-exp keeps it e/(e+1)
    assert samples[0]["p_gold"] == pytest.approx(math.e / (math.e + 1))
    assert samples[1]["p_gold"] == pytest.approx(0.1)  # (1/3) / (3 + 1/3)
    means = continuous_means(["mmlu"], samples)["mmlu"]
    assert means["p_gold"] == pytest.approx((math.e / (math.e + 1) + 3 * 0.1) / 4)  # over documents, not subjects
    bpb = (1000 / math.log(2) / 2 + 3 * (1 + math.log(3)) / math.log(2) / 2) / 4
    assert means["bpb_gold"] == pytest.approx(bpb)


def test_a_gold_that_disagrees_with_lm_evals_acc_is_refused() -> None:
    sample = logged(0, 1, [("Q:", " a"), ("Q:", " b")], [-1.0, -2.0])
    sample["acc"] = 1.0  # lm-eval says the argmax (choice 0) is gold, the target says choice 1
    with pytest.raises(StageError, match="gold choice 1 disagrees"):
        sample_records({"piqa": [sample]})


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("eval.nlp.limit", 0, "eval.nlp.limit=0"), ("eval.nlp.batch_size", 0, "eval.nlp.batch_size=0"),
     ("eval.nlp.tasks", [], "eval.nlp.tasks=[]"), ("eval.nlp.tasks", ["boolq"], "eval.nlp.tasks[0]=boolq"),
     ("eval.nlp.device", "tpu", "one of auto, cpu, cuda"), ("eval.nlp.num_fewshot", 5, "unknown key")],
)  # fmt: skip
def test_bad_params_stop_before_loading_anything(
    nlp_dir: Path, tiny_base: Path, demo_benchmarks: Path, key: str, value: object, message: str
) -> None:
    set_params(nlp_dir, **{key: value})
    start = time.perf_counter()
    result = run_stage("eval_nlp", tiny_base, demo_benchmarks, "out", cwd=nlp_dir)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (nlp_dir / "out").exists() and time.perf_counter() - start < 15


def test_missing_inputs_are_named(nlp_dir: Path, tiny_base: Path, demo_benchmarks: Path) -> None:
    result = run_stage("eval_nlp", nlp_dir / "nothing", demo_benchmarks, "out", cwd=nlp_dir)
    assert result.returncode == 2 and "is not a model directory" in result.stderr
    result = run_stage("eval_nlp", tiny_base, nlp_dir / "empty", "out", cwd=nlp_dir)
    assert result.returncode == 2 and "holds no converted arc_challenge data" in result.stderr
    assert not (nlp_dir / "out").exists()
