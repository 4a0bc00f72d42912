"""The report's header: what this run is (from the artifacts every stage wrote) and what differs
from the paper. It reads no params section: each stage records the params it used in its metrics
file, so the header shows what was run, not what params.yaml says now."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from instmix.core.vocab import SOURCES, TASKS
from instmix.report import fidelity
from instmix.report.fidelity import shown, text
from instmix.report.layout import DASH, MARK_BENCHMARK_PROMPTS, setting_order
from instmix.report.params import ReportParams
from instmix.report.runs import Run, params_of, read_optional
from instmix.report.tables import markdown_table

KNOWN_BASES = {"smollm2": "SmolLM2-135M-Instruct (`smollm2`)", "tiny": "tiny random-init Llama (`tiny`, for tests)"}


@dataclass(frozen=True)
class Setup:
    """The data and base-model artifacts, each None where its file is missing."""

    profile: str
    base: dict[str, Any] | None
    base_path: Path
    fetched: dict[str, dict[str, Any] | None]
    subsampled: dict[str, dict[str, Any] | None]
    benchmarks: dict[str, dict[str, Any] | None]
    items: list[fidelity.Item]
    """The paper's setup items (the fidelity table)."""


def read_setup(data_dir: Path, base_metrics: Path, profile: str, setup_file: Path = fidelity.SETUP_FILE) -> Setup:
    def of_stage(stage: str) -> dict[str, dict[str, Any] | None]:
        return {s: read_optional(data_dir / stage / f"{s}.metrics.json") for s in SOURCES}

    benchmarks = {t: read_optional(data_dir / "benchmarks" / f"{t}.metrics.json") for t in TASKS}
    base = read_optional(base_metrics)
    items = fidelity.read_items(setup_file)
    return Setup(profile, base, base_metrics, of_stage("fetched"), of_stage("subsample"), benchmarks, items)


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
        ["profile", setup.profile],
        ["base model", base_model_text(setup.base)],
        ["records per source", per_source(setup.subsampled, "records")],
        ["fetched records", per_source(setup.fetched, "records")],
        ["mixture sizes (records)", sizes or DASH],
        ["training", training_text(values)],
        [
            "NLP benchmarks",
            f"lm-eval {shown(info(values, 'lm_eval_version'))}, zero-shot `{params.nlp_metric}`, "
            f"limit {shown(used(values, 'nlp', 'limit'))} items per task",
        ],
        [
            "HumanEval",
            f"{shown(info(values, 'code_n'))} samples per problem, {shown(info(values, 'code_problems'))} problems, "
            f"temperature {shown(used(values, 'code', 'temperature'))}, "
            f"sandboxed: {shown(info(values, 'code_sandboxed'))}",
        ],
        [
            "FLASK judge",
            f"{shown(info(values, 'align_judge'))}, {shown(info(values, 'align_instances'))} instances, "
            f"{failures} unparsed judge replies (all models)",
        ],
        ["seeds", seeds_text],
    ]
    return [
        "# Results: instruction mixing (arXiv 2312.10793) on this run",
        "",
        "Generated by `python -m stages.report` from the evaluation metrics; do not edit by hand.",
        "",
        *markdown_table(["", "this run"], rows),
        "",
        *fidelity_section(values, setup, params),
        "**What differs from the paper**",
        "",
        *[f"- {d}" for d in differences(values, setup, params, most, mix)],
        "",
    ]


def count_replicate_note(mix: Mapping[str, Mapping[str, Any]], setup: Setup) -> list[str]:
    """`count` at the full per-source size holds exactly ACP's records: a data-order replicate."""
    count, acp = mix.get("count", {}), mix.get("ACP", {})
    n = {params_of(m).get("n") for m in setup.subsampled.values() if m}
    if count and acp and count.get("records") == acp.get("records") and n == {params_of(count).get("per_type")}:
        return [
            f"`count` at mix.per_type = {text(params_of(count).get('per_type'))} (every subsampled record) is "
            "ACP's records in another order: a data-order replicate of ACP, not a new point"
        ]
    return []


def benchmark_tasks_note(setup: Setup) -> list[str]:
    tasks = (setup.fetched.get("p3") or {}).get("benchmark_tasks") or []
    if not tasks:
        return []
    return [
        f"P3 pool includes {len(tasks)} tasks built from evaluated benchmarks ({', '.join(tasks[:3])}"
        f"{', ...' if len(tasks) > 3 else ''}): every setting with P ({MARK_BENCHMARK_PROMPTS} in the tables) "
        "was trained on benchmark-derived prompts; reports/decontam measures the overlap"
    ]


def differences(
    runs: Sequence[Run], setup: Setup, params: ReportParams, most_seeds: int, mix: Mapping[str, Any] | None = None
) -> list[str]:
    """What the fidelity table cannot show: missing inputs, unsandboxed code, replicates, notes."""
    out = []
    if setup.base is None:
        out.append(f"base model unknown ({setup.base_path} is missing): scores cannot be placed beside the paper's")
    out += fidelity.deviations(setup.items, observed(runs, setup, params))
    if any(v is False for v in info(runs, "code_sandboxed")):
        out.append("HumanEval completions ran without a sandbox")
    if most_seeds > 1:
        out.append(f"up to {most_seeds} seeds per setting (the paper ran each setting once)")
    out += benchmark_tasks_note(setup) + count_replicate_note(mix or {}, setup)
    return out or ["nothing detected: this run uses the paper's setup"]


def observed(runs: Sequence[Run], setup: Setup, params: ReportParams) -> dict[str, list[Any]]:
    return fidelity.observed_in_artifacts(runs, setup, asdict(params))


def fidelity_section(runs: Sequence[Run], setup: Setup, params: ReportParams) -> list[str]:
    rows = fidelity.rows(setup.items, observed(runs, setup, params))
    return [
        "**Fidelity to the paper** (assets/paper_setup.yaml; this run's values as its stages recorded them)",
        "",
        *markdown_table(["setup item", "paper", "this run", "deviation"], rows),
        "",
    ]
