"""The report's header: what this run is (from the artifacts every stage wrote) and what differs
from the paper. It reads no params section: each stage records the params it used in its metrics
file, so the header shows what was run, not what params.yaml says now."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instmix.core.vocab import SOURCES
from instmix.report.layout import DASH, setting_order
from instmix.report.params import ReportParams
from instmix.report.runs import Run, params_of, read_optional
from instmix.report.tables import markdown_table

PAPER = {  # the paper's setup (docs/paper.md section 1), for the "differs from the paper" list
    "records_per_source": 20000, "epochs": 2.0, "global_batch": 64, "max_length": 512, "lr": 5e-5,
    "template": "paper", "p3_max_per_task": 1000, "humaneval_n": 10, "humaneval_problems": 164,
    "flask_instances": 1180, "judge": "gpt-4-0613",
}  # fmt: skip
KNOWN_BASES = {"smollm2": "SmolLM2-135M-Instruct (`smollm2`)", "tiny": "tiny random-init Llama (`tiny`, for tests)"}
TRAINING_KEYS = {"epochs": "epochs", "global_batch": "global batch", "max_length": "max length", "lr": "learning rate"}
TRAINING_KEYS |= {"template": "template"}


@dataclass(frozen=True)
class Setup:
    """The data and base-model artifacts, each None where its file is missing."""

    profile: str
    base: dict[str, Any] | None
    base_path: Path
    fetched: dict[str, dict[str, Any] | None]
    subsampled: dict[str, dict[str, Any] | None]


def read_setup(data_dir: Path, base_metrics: Path, profile: str) -> Setup:
    def of_stage(stage: str) -> dict[str, dict[str, Any] | None]:
        return {s: read_optional(data_dir / stage / f"{s}.metrics.json") for s in SOURCES}

    return Setup(profile, read_optional(base_metrics), base_metrics, of_stage("fetched"), of_stage("subsample"))


def text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "none" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def shown(values: Iterable[Any]) -> str:
    """The distinct values of one setting across models or sources, ' / '-joined, and whether they differ."""
    seen = sorted({text(v) for v in values})
    return DASH if not seen else seen[0] if len(seen) == 1 else " / ".join(seen) + " (differs across runs)"


def info(runs: Sequence[Run], key: str) -> list[Any]:
    return [r.info[key] for r in runs if key in r.info]


def used(runs: Sequence[Run], stage: str, key: str) -> list[Any]:
    """The value of one param each model's `stage` recorded (models without that stage's metrics skipped)."""
    return [r.params[stage].get(key) for r in runs if stage in r.params]


def per_source(metrics: Mapping[str, Mapping[str, Any] | None], key: str) -> str:
    if not any(metrics.values()):
        return DASH
    return ", ".join(f"{s} {text(m.get(key)) if m else DASH}" for s, m in metrics.items())


def base_model_text(base: Mapping[str, Any] | None) -> str:
    model = params_of(base)
    if not model.get("base"):
        return DASH
    out = KNOWN_BASES.get(model["base"], f"`{model['base']}`")
    out += f" @ {str(model['revision'])[:12]}" if model.get("revision") else ""
    return out + (f", {base['architecture']}" if base and base.get("architecture") else "")


def training_text(runs: Sequence[Run]) -> str:
    if not any("sft" in r.params for r in runs):
        return DASH
    lora = used(runs, "sft", "lora")
    method = shown("LoRA" if v else "full fine-tuning" for v in lora)
    return (
        f"{shown(used(runs, 'sft', 'epochs'))} epochs, lr {shown(used(runs, 'sft', 'lr'))}, "
        f"batch {shown(used(runs, 'sft', 'global_batch'))}, {shown(used(runs, 'sft', 'max_length'))} tokens, "
        f"template {shown(used(runs, 'sft', 'template'))}, {method}"
    )


def seed_counts(runs: Sequence[Run]) -> tuple[int, list[int]]:
    """(most seeds any trained setting has, every seed used)."""
    trained = [r for r in runs if r.seed is not None]
    counts = [len({r.seed for r in trained if r.setting == s}) for s in {r.setting for r in trained}]
    return max(counts, default=0), sorted({r.seed for r in trained if r.seed is not None})


def header(
    runs: Mapping[str, Run], setup: Setup, mix: Mapping[str, Mapping[str, Any]], params: ReportParams
) -> list[str]:
    values = list(runs.values())
    sizes = ", ".join(
        f"{s} {text(m.get('records', '?'))}" for s, m in sorted(mix.items(), key=lambda i: setting_order(i[0]))
    )
    failures = sum(int(v or 0) for v in info(values, "align_parse_failures"))
    most, seeds = seed_counts(values)
    seeds_text = DASH if not most else "one run per setting" if most == 1 else f"up to {most} per setting"
    seeds_text += f" (seeds {', '.join(map(str, seeds))})" if seeds else ""
    rows = [
        ["profile", setup.profile, DASH],
        ["base model", base_model_text(setup.base), "LLaMA-2-7B and -13B (pretrained)"],
        ["records per source", per_source(setup.subsampled, "records"), "20,000"],
        ["fetched records", per_source(setup.fetched, "records"), "full datasets (P3: 1,000 per task)"],
        ["mixture sizes (records)", sizes or DASH, "20K (single), 40K (pairs), 60K (ACP)"],
        [
            "training",
            training_text(values),
            "2 epochs, lr 5e-5, batch 64, 512 tokens, prompt + ' ' + response, full fine-tuning",
        ],
        [
            "NLP benchmarks",
            f"lm-eval {shown(info(values, 'lm_eval_version'))}, zero-shot `{params.nlp_metric}`, "
            f"limit {shown(used(values, 'nlp', 'limit'))} items per task",
            "zero-shot accuracy, full test sets (harness inferred)",
        ],
        [
            "HumanEval",
            f"{shown(info(values, 'code_n'))} samples per problem, {shown(info(values, 'code_problems'))} problems, "
            f"temperature {shown(used(values, 'code', 'temperature'))}, "
            f"sandboxed: {shown(info(values, 'code_sandboxed'))}",
            "pass@1, pass@10 (n = 10 inferred), 164 problems",
        ],
        [
            "FLASK judge",
            f"{shown(info(values, 'align_judge'))}, {shown(info(values, 'align_instances'))} instances, "
            f"{failures} unparsed judge replies (all models)",
            "GPT-4-0613, 1,180 instances, 8 skills, 1-5 x 20",
        ],
        ["seeds", seeds_text, "one run per setting"],
    ]
    return [
        "# Results: instruction mixing (arXiv 2312.10793) on this run",
        "",
        "Generated by `python -m stages.report` from the evaluation metrics; do not edit by hand.",
        "",
        *markdown_table(["", "this run", "paper"], rows),
        "",
        "**What differs from the paper**",
        "",
        *[f"- {d}" for d in differences(values, setup, params, most)],
        "",
    ]


def departure(label: str, values: Iterable[Any], paper: Any, paper_text: str | None = None) -> list[str]:
    """'<label> <ours> (paper: <theirs>)' when any recorded value is not the paper's; [] otherwise."""
    seen = {v for v in values if v is not None}
    if not seen or seen == {paper}:
        return []
    return [f"{label} {shown(seen)} (paper: {paper_text or text(paper)})"]


def data_differences(setup: Setup) -> list[str]:
    out = []
    subsample = [params_of(m) for m in setup.subsampled.values() if m]
    out += departure("records per source", (p.get("n") for p in subsample), PAPER["records_per_source"])
    fetched = {s: params_of(m) for s, m in setup.fetched.items() if m}
    paths = [str(p.get("path", "")) for p in fetched.values()]
    if paths and not all(p.endswith(".hub.yaml") for p in paths):
        out.append(
            "sources read from local files (" + ", ".join(f"`{p}`" for p in paths) + ") rather than the hub datasets"
        )
    if "p3" in fetched and fetched["p3"].get("max_per_task") != PAPER["p3_max_per_task"]:
        cap = fetched["p3"].get("max_per_task")
        out.append(f"P3 pooled with {'no cap' if cap is None else f'at most {cap:,}'} per task (paper: 1,000 per task)")
    return out


def differences(runs: Sequence[Run], setup: Setup, params: ReportParams, most_seeds: int) -> list[str]:
    out = []
    base = str(params_of(setup.base).get("base", ""))
    if setup.base is None:
        out.append(f"base model unknown ({setup.base_path} is missing): scores cannot be placed beside the paper's")
    elif not re.search(r"llama-2-(7|13)b", base, re.IGNORECASE):
        out.append(
            f"base model {base_model_text(setup.base)} instead of LLaMA-2-7B/13B: "
            "absolute scores are not comparable with the paper's, deltas are"
        )
    out += data_differences(setup)
    for key, label in TRAINING_KEYS.items():
        out += departure(f"training {label}", used(runs, "sft", key), PAPER[key])
    lora = used(runs, "sft", "lora")
    if any(lora):
        out.append("LoRA adapters instead of full fine-tuning" + ("" if all(lora) else " (some runs)"))
    if params.nlp_metric != "acc":
        out.append(f"NLP metric `{params.nlp_metric}` (the paper's numbers match plain `acc`)")
    if limits := {v for v in used(runs, "nlp", "limit") if v is not None}:
        out.append(f"NLP benchmarks on the first {shown(limits)} items per task (paper: full test sets)")
    out += departure("HumanEval samples per problem", info(runs, "code_n"), PAPER["humaneval_n"])
    out += departure("HumanEval problems", info(runs, "code_problems"), PAPER["humaneval_problems"])
    if any(v is False for v in info(runs, "code_sandboxed")):
        out.append("HumanEval completions ran without a sandbox")
    judges = {str(j) for j in info(runs, "align_judge") if j}
    if judges and not all(PAPER["judge"] in j for j in judges):
        out.append(f"FLASK judge {', '.join(sorted(judges))} instead of GPT-4-0613")
    out += departure("FLASK instances", info(runs, "align_instances"), PAPER["flask_instances"])
    if most_seeds > 1:
        out.append(f"up to {most_seeds} seeds per setting (the paper ran each setting once)")
    return out or ["nothing detected: this run uses the paper's setup"]
