"""Zero-shot NLP benchmarks through lm-evaluation-harness (stage eval_nlp@<model id>).

Runs `lm_eval.simple_evaluate` with `HFLM` over the model on the tasks of `eval.nlp.tasks`
(default: ARC-Challenge, Winogrande, PIQA, MMLU, RACE, HellaSwag), zero-shot, no chat
template. The tasks are lm-eval's own (configs/lm_eval/ includes each built-in YAML and
only says where the rows are: data/benchmarks/<task>/, or the hub for a pinned source).

Metrics: {"nlp": {"arc_challenge": {"acc": .., "acc_norm": .., "p_gold": .., "bpb_gold": .., "n": ..},
..., "mmlu": {"acc": .., "p_gold": .., "bpb_gold": .., "n": ..}, "avg": <mean acc>, "p_gold_avg": ..,
"bpb_gold_avg": ..}, "lm_eval_version": "0.4.13", "params": {...}}; samples: one row per scored doc
(task, doc_id, target, gold (the gold choice's index), the loglikelihood and the UTF-8 byte length
of each choice's continuation, acc and acc_norm, p_gold, bpb_gold), sorted by task and doc id.

Continuous metrics, from the same loglikelihoods (no second pass; DataDecide, arXiv 2504.11393):
- p_gold: the gold choice's probability normalised over the choices, softmax(lls)[gold];
- bpb_gold: the gold continuation's negative loglikelihood in bits per UTF-8 byte of that
  continuation, -ll[gold] / ln 2 / bytes[gold]. The bytes are those of exactly the text lm-eval
  scored: the request's continuation (which starts with the task's target delimiter, a space)
  plus any whitespace closing the context, which lm-eval's `_encode_pair` moves onto it.
Per task both are means over its documents (MMLU: over all its subjects' documents, as lm-eval's
group weights acc); `p_gold_avg` and `bpb_gold_avg` are means over the tasks, as `avg` is of acc.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from instmix.core.params import ParamsError, StageError
from instmix.core.vocab import TASKS
from instmix.nlp.benchmarks import HUB_FILE, SPLIT, builtin_subjects, lm_eval_tasks_dir

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "lm_eval"
NUM_FEWSHOT = 0  # the paper's setting (zero-shot); not a param
DATASET_KEYS = ("dataset_path", "dataset_name", "dataset_kwargs", "training_split", "validation_split")
DATASET_KEYS += ("test_split", "fewshot_split")  # what a hub source leaves to the built-in task
METRICS = ("acc", "acc_norm")
CONTINUOUS = ("p_gold", "bpb_gold")


@dataclass(frozen=True)
class NLPParams:
    """lm-eval settings. Defaults are the paper's: all six tasks, every doc, zero-shot."""

    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    """Tasks to run; `nlp.avg` is the mean acc over them (the paper's Avg. with all six)."""
    limit: int | None = None
    """Docs per task, the first ones (lm-eval's `limit`); MMLU: per subject. null = all."""
    batch_size: int = 8
    """Pinned: lm-eval's loglikelihoods (and so the scores) move slightly with batch size."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: cuda when a GPU is visible, else cpu."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """auto: the dtype the model was saved in."""
    max_length: int | None = None
    """Context window lm-eval truncates prompts to; null = the model config's."""

    def __post_init__(self) -> None:
        for i, task in enumerate(self.tasks):
            if task not in TASKS:
                raise ParamsError(f"tasks[{i}]", task, "one of " + ", ".join(TASKS))
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ParamsError("tasks", self.tasks, f"a non-empty list of distinct tasks from {', '.join(TASKS)}")
        if self.limit is not None and self.limit < 1:
            raise ParamsError("limit", self.limit, "a positive integer or null (all docs)")
        if self.batch_size < 1:
            raise ParamsError("batch_size", self.batch_size, "a positive integer")
        if self.max_length is not None and self.max_length < 16:
            raise ParamsError("max_length", self.max_length, "an integer >= 16 or null")


# ---------------------------------------------------------------------------- task configs


def substitute(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, str):
        for key, value in values.items():
            node = node.replace("{" + key + "}", value)
        return node
    if isinstance(node, dict):
        return {k: substitute(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute(v, values) for v in node]
    return node


def render(template: str, values: dict[str, str], pin: dict[str, str] | None) -> dict[str, Any]:
    """One task config: the template with its placeholders filled; for a hub source, the
    built-in task's own dataset settings, read from the pin's repo at the pin's revision."""
    import yaml

    config = substitute(yaml.safe_load((CONFIGS / template).read_text(encoding="utf-8")), values)
    if pin is not None and "group" not in config:
        config = {k: v for k, v in config.items() if k not in DATASET_KEYS}
        config |= {"dataset_path": pin["repo"], "dataset_kwargs": {"revision": pin["revision"]}}
    return config


def source_of(benchmarks: Path, task: str) -> dict[str, str] | None:
    """The hub pin of a task, or None when its rows are local; refuses a missing task."""
    folder = benchmarks / task
    if (folder / HUB_FILE).exists():
        return json.loads((folder / HUB_FILE).read_text(encoding="utf-8"))
    data = sorted(folder.glob("*.jsonl")) if task == "mmlu" else [folder / f"{SPLIT[task]}.jsonl"]
    if not data or not all(p.exists() for p in data):
        raise StageError(f"{folder} holds no converted {task} data; run the benchmarks stage (dvc repro) first")
    return None


def task_configs(tasks: list[str], benchmarks: Path) -> dict[str, dict[str, Any]]:
    """File name -> rendered config, for every task asked for."""
    lm_eval = str(lm_eval_tasks_dir())
    configs = {}
    for task in tasks:
        pin = source_of(benchmarks, task)
        values = {"lm_eval": lm_eval, "data": str((benchmarks / task).resolve())}
        if task != "mmlu":
            configs[f"{task}.yaml"] = render(f"{task}.yaml", values, pin)
            continue
        local = sorted(p.stem for p in (benchmarks / task).glob("*.jsonl"))
        for subject in builtin_subjects() if pin else local:
            configs[f"mmlu_{subject}.yaml"] = render("mmlu_subject.yaml", values | {"subject": subject}, pin)
        configs["mmlu.yaml"] = render("mmlu.yaml", values, pin)
    return configs


def task_manager(configs: dict[str, dict[str, Any]], folder: Path) -> Any:
    import yaml
    from lm_eval.tasks import TaskManager

    for name, config in configs.items():
        (folder / name).write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return TaskManager(include_path=str(folder), include_defaults=False)  # skips indexing ~6 s of built-ins


# ---------------------------------------------------------------------------- evaluation


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ParamsError("eval.nlp.device", device, "auto or cpu: no GPU is visible")
    return device


def evaluate(
    params: NLPParams, model_dir: Path, benchmarks: Path, device: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    configs = task_configs(list(params.tasks), benchmarks)
    model = HFLM(
        pretrained=str(model_dir),
        device=device,
        dtype=params.dtype,
        batch_size=params.batch_size,
        max_length=params.max_length,
    )
    with tempfile.TemporaryDirectory(prefix="lm_eval_tasks.") as folder:
        results = simple_evaluate(
            model=model,
            tasks=list(params.tasks),
            num_fewshot=NUM_FEWSHOT,
            limit=params.limit,
            task_manager=task_manager(configs, Path(folder)),
            apply_chat_template=False,  # the paper scores the bare prompt
            bootstrap_iters=1000,  # acc's stderr is closed-form (lm-eval bootstraps only other metrics)
            log_samples=True,
        )
    if results is None:
        raise StageError("lm-eval returned no results")
    samples = sample_records(results["samples"])
    return summarise(params, results, samples), samples


def summarise(params: NLPParams, results: dict[str, Any], samples: list[dict[str, Any]]) -> dict[str, Any]:
    nlp: dict[str, Any] = {}
    counts = {task: n["effective"] for task, n in results["n-samples"].items()}
    for task in params.tasks:
        scores = results["results"][task]
        nlp[task] = {m: scores[f"{m},none"] for m in METRICS if f"{m},none" in scores}
        # The harness's own standard error of each metric (item sampling), kept beside it.
        stderr = {m: scores.get(f"{m}_stderr,none") for m in nlp[task]}
        nlp[task] |= {f"{m}_stderr": e for m, e in stderr.items() if isinstance(e, float) and math.isfinite(e)}
        members = [t for t in counts if t == task or (task == "mmlu" and t.startswith("mmlu_"))]
        nlp[task]["n"] = sum(counts[t] for t in members)
    for task, means in continuous_means(params.tasks, samples).items():
        nlp[task] |= means
    nlp["avg"] = sum(nlp[t]["acc"] for t in params.tasks) / len(params.tasks)
    for metric in CONTINUOUS:
        nlp[f"{metric}_avg"] = sum(nlp[t][metric] for t in params.tasks) / len(params.tasks)
    return {"nlp": nlp, "lm_eval_version": importlib.metadata.version("lm_eval"), "params": asdict(params)}


def sample_records(samples: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    records = []
    for task, logged in samples.items():
        for sample in logged:
            lls = [float(ll) for ll, _greedy in sample["filtered_resps"]]
            nbytes = [len(scored_continuation(*args).encode("utf-8")) for args in sample["arguments"]]
            gold = gold_index(task, sample)
            if "acc" in sample and float(max(range(len(lls)), key=lls.__getitem__) == gold) != sample["acc"]:
                raise StageError(f"{task} doc {sample['doc_id']}: gold choice {gold} disagrees with lm-eval's acc")
            record = {
                "task": task,
                "doc_id": sample["doc_id"],
                "target": sample["target"],  # choice index; Winogrande: the words after the blank
                "gold": gold,
                "loglikelihoods": lls,
                "choice_bytes": nbytes,
            }
            record |= {m: float(sample[m]) for m in METRICS if m in sample}
            records.append(record | continuous(lls, nbytes, gold))
    return sorted(records, key=lambda r: (r["task"], r["doc_id"]))


def scored_continuation(context: str, continuation: str) -> str:
    """The text lm-eval scores for a (context, continuation) request: `_encode_pair` moves the
    context's trailing whitespace onto the continuation before tokenising."""
    return context[len(context.rstrip()) :] + continuation


def gold_index(task: str, sample: dict[str, Any]) -> int:
    """The gold choice's index, as lm-eval's multiple-choice scoring finds it: the target, except
    for Winogrande (one continuation after two contexts), whose gold is its doc_to_text."""
    if task == "winogrande":
        from lm_eval.tasks.winogrande.preprocess_winogrande import doc_to_text

        return int(doc_to_text(sample["doc"]))
    target = sample["target"]
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < len(sample["arguments"]):
        raise StageError(f"{task} doc {sample['doc_id']}: target {target!r} is not a choice index")
    return target


def continuous(lls: list[float], nbytes: list[int], gold: int) -> dict[str, float]:
    """p_gold (softmax of the choices' loglikelihoods at the gold one) and bpb_gold (bits per byte)."""
    if nbytes[gold] == 0:
        raise StageError("the gold continuation is empty: no bytes to measure bits per byte on")
    top = max(lls)
    log_total = top + math.log(sum(math.exp(ll - top) for ll in lls))  # log-sum-exp, overflow-safe
    return {"p_gold": math.exp(lls[gold] - log_total), "bpb_gold": -lls[gold] / math.log(2) / nbytes[gold]}


def continuous_means(tasks: list[str], samples: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per task, the mean p_gold and bpb_gold over its documents (MMLU: all subjects' documents pooled)."""
    means = {}
    for task in tasks:
        rows = [s for s in samples if s["task"] == task or (task == "mmlu" and s["task"].startswith("mmlu_"))]
        if not rows:
            raise StageError(f"lm-eval logged no samples for {task}")
        means[task] = {m: sum(r[m] for r in rows) / len(rows) for m in CONTINUOUS}
    return means
