"""report: every model's evaluation metrics side by side with the paper's published numbers.

    python -m stages.report <eval dir> <sft reports dir> <mix data dir> <paper results> <out dir>

Reads reports/eval/{nlp,code,align}/<model>/metrics.json, reports/sft/<model>/ (metrics and the
loss curve), data/mix/<setting>.metrics.json (sizes, sweep x-values) and the paper's numbers
(assets/paper_results.yaml), and writes to <out dir>:
- results.md: header (profile, base model, data sizes, judge, what differs from the paper), the
  paper's claims marked holds / does not hold / within noise, Table 1 (NLP + HumanEval) and
  Table 2 (FLASK) with the paper's values and deltas vs `none` and vs `A`, the sweeps, training.
- results.csv: one row per model id with every metric, in the metrics files' own units.
- claims.json: each claim's delta, interval and verdict (DVC metrics).
- plots/*.png: bars per benchmark, the ratio and instance-count sweeps, FLASK profiles, losses.
Model ids ending in `-s<seed>` are replicates of one setting: tables show mean +- std and the
claims a bootstrap interval over seeds. Anything missing shows as "—" and is noted; nothing is
ever filled in.

What it reads (the evaluation stages' metrics contract; model ids: none, A … ACP, ratio, count,
ratio-<r>, count-<k>, each optionally with -s<seed>):
- eval/nlp/<model>/metrics.json: {"nlp": {<task>: {"acc", "acc_norm"}, ..., "avg"}, "lm_eval_version",
  "limit"}, tasks arc_challenge winogrande piqa mmlu race hellaswag, fractions in [0, 1].
- eval/code/<model>/metrics.json: {"code": {"pass@1", "pass@10" (n >= 10), "n", "problems", "sandboxed"}}.
- eval/align/<model>/metrics.json: {"align": {<8 FLASK skills>, "avg", "instances", "parse_failures",
  "judge"}}, skills on the 1-5 scale x 20.
- sft/<model>/metrics.json and sft/<model>/live/plots/metrics/{loss,epoch}.tsv.
- mix/<setting>.metrics.json: "records", "records_per_source", and the sweep x: "ratio" / "per_type".
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from stages.files import atomic_open, write_json
from stages.params import PARAMS_FILE, ParamsError, StageError, cli, load, read_section

MODEL_ID = re.compile(r"^(?P<setting>.+?)(?:-s(?P<seed>\d+))?$")
TABLE1_ROWS = ("none", "A", "C", "P", "AC", "AP", "CP", "ACP")
TABLE2_ROWS = ("A", "C", "P", "AC", "AP", "CP", "ACP")
NLP_TASKS = ("arc_challenge", "winogrande", "piqa", "mmlu", "race", "hellaswag")
SKILLS = (
    "logical_correctness", "factuality", "commonsense", "comprehension",
    "completeness", "insightfulness", "readability", "conciseness",
)  # fmt: skip
# Canonical metric keys (display units: %, FLASK 0-100) and their column labels.
TABLE1_COLUMNS = {
    "arc_challenge": "ARC", "winogrande": "Winogrande", "piqa": "PIQA", "mmlu": "MMLU", "race": "RACE",
    "hellaswag": "HellaSwag", "nlp_avg": "NLP avg", "pass@1": "HumanEval @1", "pass@10": "HumanEval @10",
}  # fmt: skip
TABLE2_COLUMNS = {
    "logical_correctness": "Corr.", "factuality": "Fact.", "commonsense": "Comm.", "comprehension": "Compr.",
    "completeness": "Compl.", "insightfulness": "Insight.", "readability": "Read.", "conciseness": "Conc.",
    "flask_avg": "Avg.",
}  # fmt: skip
PAPER = {  # the paper's setup (docs/paper.md section 1), for the "differs from the paper" list
    "records_per_source": 20000, "epochs": 2.0, "global_batch": 64, "max_length": 512, "lr": 5e-5,
    "template": "paper", "p3_max_per_task": 1000, "humaneval_n": 10, "humaneval_problems": 164,
    "flask_instances": 1180, "judge": "gpt-4-0613",
}  # fmt: skip
PAPER_RATIOS = (0.0, 0.5, 1.0, 1.5, 2.0)
PLOT_FILES = ("benchmarks.png", "ratio_sweep.png", "count_sweep.png", "flask_profile.png", "loss_curves.png")
SIZE_LABEL = {"7b": "LLaMA-2-7B", "13b": "LLaMA-2-13B"}
DASH = "—"


@dataclass(frozen=True)
class ReportParams:
    paper_size: Literal["7b", "13b", "both"] = "7b"
    """Which of the paper's models (LLaMA-2-7B, -13B or both) sits beside ours in tables and plots."""
    nlp_metric: Literal["acc", "acc_norm"] = "acc"
    """lm-eval metric per NLP task (the paper's numbers match plain acc); MMLU has acc only."""
    bootstrap_samples: int = 10000
    """Bootstrap resamples over seeds for each claim's delta interval."""
    confidence: float = 0.95
    """Coverage of the bootstrap percentile interval."""
    seed: int = 0
    """Seed of the bootstrap."""

    def __post_init__(self) -> None:
        if self.bootstrap_samples < 100:
            raise ParamsError("bootstrap_samples", self.bootstrap_samples, "an integer >= 100")
        if not 0.5 <= self.confidence < 1:
            raise ParamsError("confidence", self.confidence, "a number in [0.5, 1)")

    @property
    def sizes(self) -> tuple[str, ...]:
        return ("7b", "13b") if self.paper_size == "both" else (self.paper_size,)


# ---------------------------------------------------------------------------- reading


@dataclass
class Run:
    """One evaluated model id: a setting, optionally one seed of it."""

    model: str
    setting: str
    seed: int | None
    values: dict[str, float] = field(default_factory=dict)
    """Canonical metrics in display units (accuracies and pass@k in %, FLASK 0-100)."""
    raw: dict[str, Any] = field(default_factory=dict)
    """Every scalar of the metrics files, flattened (`nlp.piqa.acc`), in their own units."""
    info: dict[str, Any] = field(default_factory=dict)
    """Evaluation settings for the header: lm-eval version, limit, HumanEval n, judge ..."""


def split_model_id(model: str) -> tuple[str, int | None]:
    match = MODEL_ID.match(model)
    assert match is not None  # the pattern matches every non-empty string
    seed = match.group("seed")
    return match.group("setting"), None if seed is None else int(seed)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StageError(f"cannot read {path}: {err}") from err


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{prefix}{key}.")
        elif value is None or isinstance(value, bool | int | float | str):
            flat[f"{prefix}{key}"] = value
    return flat


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def nlp_values(block: Mapping[str, Any], metric: str) -> dict[str, float]:
    values = {}
    for task in NLP_TASKS:
        scores = block.get(task)
        if isinstance(scores, Mapping):
            value = number(scores.get(metric))
            if value is None and metric == "acc_norm":  # MMLU has no acc_norm
                value = number(scores.get("acc"))
            if value is not None:
                values[task] = 100 * value
    average = number(block.get("avg")) if metric == "acc" else None
    if average is not None:
        values["nlp_avg"] = 100 * average
    elif all(task in values for task in NLP_TASKS):
        values["nlp_avg"] = sum(values[t] for t in NLP_TASKS) / len(NLP_TASKS)
    return values


def read_runs(eval_dir: Path, sft_dir: Path, params: ReportParams) -> dict[str, Run]:
    """Every model id that has any evaluation or training metrics, keyed by model id."""
    runs: dict[str, Run] = {}

    def run(model: str) -> Run:
        if model not in runs:
            runs[model] = Run(model, *split_model_id(model))
        return runs[model]

    for family in ("nlp", "code", "align"):
        for path in sorted((eval_dir / family).glob("*/metrics.json")):
            data = read_json(path)
            block = data.get(family) if isinstance(data, dict) else None
            if not isinstance(block, dict):
                raise StageError(f"{path}: no '{family}' section (the metrics contract: stages/report.py docstring)")
            r = run(path.parent.name)
            r.raw |= flatten({family: block})
            if family == "nlp":
                r.values |= nlp_values(block, params.nlp_metric)
                r.info |= {"lm_eval_version": data.get("lm_eval_version"), "nlp_limit": data.get("limit")}
                r.raw |= {"nlp.lm_eval_version": data.get("lm_eval_version"), "nlp.limit": data.get("limit")}
            elif family == "code":
                r.values |= {k: 100 * v for k in ("pass@1", "pass@10") if (v := number(block.get(k))) is not None}
                r.info |= {f"code_{k}": block.get(k) for k in ("n", "problems", "sandboxed")}
            else:
                r.values |= {k: v for k in SKILLS if (v := number(block.get(k))) is not None}
                if (average := number(block.get("avg"))) is not None:
                    r.values["flask_avg"] = average
                r.info |= {f"align_{k}": block.get(k) for k in ("judge", "instances", "parse_failures")}
    for path in sorted(sft_dir.glob("*/metrics.json")):
        data = read_json(path)
        if isinstance(data, dict):
            run(path.parent.name).raw |= flatten({"sft": data})
    return runs


def read_loss_curve(sft_dir: Path, model: str) -> tuple[list[float], list[float], str] | None:
    """(x, loss, x label) from DVCLive's TSVs: x is the epoch when epoch.tsv is there."""
    metrics = sft_dir / model / "live" / "plots" / "metrics"
    loss = read_tsv(metrics / "loss.tsv", "loss")
    if not loss:
        return None
    epochs = read_tsv(metrics / "epoch.tsv", "epoch")
    if epochs and all(step in epochs for step in loss):
        return [epochs[s] for s in loss], list(loss.values()), "epoch"
    return [float(s) for s in loss], list(loss.values()), "logged step"


def read_tsv(path: Path, column: str) -> dict[int, float]:
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    out = {}
    for row in rows:
        try:
            out[int(row["step"])] = float(row[column])
        except (KeyError, TypeError, ValueError) as err:
            raise StageError(f"{path}: bad row {row!r}: {err}") from err
    return out


def read_mix(mix_dir: Path, settings: Iterable[str]) -> dict[str, dict[str, Any]]:
    return {s: read_json(p) for s in sorted(set(settings)) if (p := mix_dir / f"{s}.metrics.json").is_file()}


def read_paper(path: Path) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """{"table1"|"table2": {"7b"|"13b": {row: {canonical key: value}}}} plus the source lines."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise StageError(f"cannot read {path}: {err}".replace("\n", " ")) from err
    tables: dict[str, Any] = {}
    for table in ("table1", "table2"):
        columns = ["flask_avg" if c == "avg" else c for c in data[table]["columns"]]
        tables[table] = {
            size: {row: dict(zip(columns, map(float, values), strict=True)) for row, values in rows.items()}
            for size, rows in data[table].items()
            if size in SIZE_LABEL
        }
        tables[table]["source"] = data[table]["source"]
    tables["figure2"] = data.get("figure2", {})
    return tables


# ---------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float | None  # sample std (ddof 1) over seeds; None for one run
    n: int


def replicates(runs: Iterable[Run]) -> dict[str, dict[str, list[float]]]:
    """{setting: {metric: [value per seed]}}, seeds in ascending order."""
    reps: dict[str, dict[str, list[float]]] = {}
    for r in sorted(runs, key=lambda r: (r.setting, -1 if r.seed is None else r.seed)):
        for key, value in r.values.items():
            reps.setdefault(r.setting, {}).setdefault(key, []).append(value)
    return reps


def stat(values: Sequence[float]) -> Stat:
    mean = float(np.mean(values))
    return Stat(mean, float(np.std(values, ddof=1)) if len(values) > 1 else None, len(values))


def bootstrap_means(values: Sequence[float], samples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of `samples` resamples (with replacement) of the seeds' values."""
    data = np.asarray(values, dtype=float)
    if len(data) == 1:
        return np.full(samples, data[0])
    return data[rng.integers(0, len(data), size=(samples, len(data)))].mean(axis=1)


def percentile_interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


class Values:
    """Looks up per-setting values for a claim: means, or bootstrap draws of the means."""

    def __init__(self, reps: Mapping[str, Mapping[str, Sequence[float]]], draws: int = 0, seed: int = 0) -> None:
        self.reps, self.draws, self.seed = reps, draws, seed
        self.used: dict[str, int] = {}  # setting -> replicates, for "single run" and n in the report
        self.missing: list[str] = []

    def __call__(self, setting: str, key: str) -> Any:
        values = self.reps.get(setting, {}).get(key)
        if not values:
            name = {"flask_avg": "FLASK avg"}.get(key) or TABLE1_COLUMNS.get(key) or key
            if f"{setting} {name}" not in self.missing:
                self.missing.append(f"{setting} {name}")
            return math.nan  # the caller checks `missing`, so every missing value gets named
        self.used[setting] = len(values)
        if not self.draws:
            return float(np.mean(values))
        # One stream per (seed, setting, metric): a draw does not depend on which other settings exist.
        rng = np.random.default_rng([self.seed, zlib.crc32(f"{setting}\x1f{key}".encode())])
        return bootstrap_means(values, self.draws, rng)


# ---------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class DeltaClaim:
    id: str
    text: str
    measure: str
    sign: int  # +1: the claim says the delta is positive; -1: negative
    delta: Callable[[Callable[[str, str], Any]], Any]
    decimals: int


DELTA_CLAIMS = (
    DeltaClaim(
        "p_best_nlp", "P gives the best NLP average among single sources", "P - max(A, C), NLP avg (pp)", +1,
        lambda v: v("P", "nlp_avg") - np.maximum(v("A", "nlp_avg"), v("C", "nlp_avg")), 2,
    ),
    DeltaClaim(
        "c_best_code", "C gives the best HumanEval among single sources", "C - max(A, P), pass@1 (pp)", +1,
        lambda v: v("C", "pass@1") - np.maximum(v("A", "pass@1"), v("P", "pass@1")), 2,
    ),
    DeltaClaim(
        "p_lowers_alignment", "Adding P lowers alignment", "mean(AP - A, CP - C), FLASK avg", -1,
        lambda v: (v("AP", "flask_avg") - v("A", "flask_avg") + v("CP", "flask_avg") - v("C", "flask_avg")) / 2, 1,
    ),
    DeltaClaim(
        "c_raises_alignment", "Adding C to A raises alignment", "AC - A, FLASK avg", +1,
        lambda v: v("AC", "flask_avg") - v("A", "flask_avg"), 1,
    ),
)  # fmt: skip
CURVE_METRICS = {"nlp_avg": "NLP avg", "pass@1": "HumanEval pass@1"}


@dataclass
class ClaimResult:
    id: str
    text: str
    measure: str
    mark: str  # holds | does not hold | within noise | not evaluable | not enough points
    delta: float | None = None
    interval: tuple[float, float] | None = None
    detail: str = ""
    paper: dict[str, str] = field(default_factory=dict)
    decimals: int = 2


def mark_delta(sign: int, delta: float, interval: tuple[float, float] | None) -> str:
    if interval is not None and interval[0] <= 0 <= interval[1]:
        return "within noise"
    return "holds" if sign * delta > 0 else "does not hold"


def seeds_detail(used: Mapping[str, int]) -> str:
    counts = sorted(set(used.values()))
    if counts == [1]:
        return "single run"
    if len(counts) == 1:
        return f"{counts[0]} seeds per setting"
    return "seeds per setting: " + ", ".join(f"{s} {used[s]}" for s in sorted(used, key=setting_order))


def evaluate_delta_claim(
    claim: DeltaClaim, reps: Mapping[str, Mapping[str, Sequence[float]]], params: ReportParams
) -> ClaimResult:
    result = ClaimResult(claim.id, claim.text, claim.measure, "not evaluable", decimals=claim.decimals)
    point = Values(reps)
    delta = float(claim.delta(point))
    if point.missing:
        result.detail = "missing: " + ", ".join(point.missing)
        return result
    interval = None
    if any(n > 1 for n in point.used.values()):
        draws = claim.delta(Values(reps, params.bootstrap_samples, params.seed))
        interval = percentile_interval(draws, params.confidence)
    result.delta, result.interval = delta, interval
    result.mark = mark_delta(claim.sign, delta, interval)
    result.detail = seeds_detail(point.used)
    if result.mark == "within noise":
        result.detail += "; point estimate " + ("holds" if claim.sign * delta > 0 else "does not hold")
    return result


def dips_then_peaks(ys: Sequence[float]) -> tuple[bool, int, int]:
    """The paper's Figure 2 shape, made precise: with the points ordered by x, the curve falls
    first (y[1] < y[0]) and its highest point comes after its lowest point (so it rises again
    to a peak above where it started). Returns (holds, index of the lowest, index of the highest);
    ties resolve to the first occurrence. Needs >= 3 points."""
    if len(ys) < 3:
        raise ValueError("dips_then_peaks needs at least 3 points")
    low, high = int(np.argmin(ys)), int(np.argmax(ys))
    return ys[1] < ys[0] and low < high, low, high


@dataclass(frozen=True)
class Point:
    x: float
    setting: str
    role: str  # "sweep" or "anchor: <setting> = ..." (a table setting that is this sweep's end point)


def sweep_points(
    kind: Literal["ratio", "count"], settings: Iterable[str], mix: Mapping[str, Mapping[str, Any]]
) -> tuple[list[Point], list[str]]:
    """The sweep's points, one per x, and notes on what was left out. x comes from the mixture's
    metrics (`ratio` or `per_type`). Sweep settings (`ratio`, `ratio-<r>`; `count`, `count-<k>`)
    take precedence; table settings fill in the ends: ratio 0 = A, ratio 2 = ACP (every record of
    each source), 0 instances = none, n per type = ACP."""
    key = "ratio" if kind == "ratio" else "per_type"
    points: dict[float, Point] = {}
    notes = []
    named = sorted(s for s in settings if s == kind or s.startswith(f"{kind}-"))
    for setting in sorted(named, key=lambda s: (s == kind, s)):  # `ratio-<r>` before plain `ratio`
        x = number(mix.get(setting, {}).get(key))
        if x is None:
            notes.append(f"{setting}: no `{key}` in data/mix/{setting}.metrics.json; left out of the {kind} sweep")
        elif x in points:
            notes.append(f"{setting}: same {kind} x = {x:g} as {points[x].setting}; {points[x].setting} is plotted")
        else:
            points[x] = Point(x, setting, "sweep")
    anchors: list[tuple[float | None, str]] = []
    acp = mix.get("ACP", {}).get("records_per_source", {})
    acp_per_type = number(next(iter(set(acp.values())))) if len(set(acp.values())) == 1 and len(acp) == 3 else None
    anchors = [(0.0, "A"), (2.0, "ACP")] if kind == "ratio" else [(0.0, "none"), (acp_per_type, "ACP")]
    for x, setting in anchors:
        if x is not None and setting in settings and x not in points:
            points[x] = Point(x, setting, f"anchor: {setting}")
    return [points[x] for x in sorted(points)], notes


def evaluate_curve_claim(
    metric: str, points: Sequence[Point], reps: Mapping[str, Mapping[str, Sequence[float]]], params: ReportParams
) -> ClaimResult:
    label = CURVE_METRICS[metric]
    result = ClaimResult(
        f"ratio_dips_then_peaks_{metric.replace('@', '')}",
        f"{label} first dips, then peaks as the specialised/general ratio grows",
        f"{label} vs ratio: y[1] - y[0] < 0 and argmax after argmin",
        "not enough points",
        decimals=2,
    )
    present = [p for p in points if reps.get(p.setting, {}).get(metric)]
    result.paper = {"7b": "holds (Figure 2: peak at 1.5, dip at 2.0)", "13b": "not run"}
    if len(present) < 3:
        result.detail = f"{len(present)} point(s) with {label}; needs >= 3"
        return result
    point = Values(reps)
    ys = [point(p.setting, metric) for p in present]
    holds, low, high = dips_then_peaks(ys)
    result.delta = ys[1] - ys[0]
    shape = f"lowest at {present[low].x:g}, highest at {present[high].x:g}"
    if high < len(present) - 1:
        shape += f", then down to {ys[-1]:.2f} at {present[-1].x:g}"
    result.detail = f"{shape}; {seeds_detail(point.used)}"
    result.mark = "holds" if holds else "does not hold"
    if holds and any(n > 1 for n in point.used.values()):
        boot = Values(reps, params.bootstrap_samples, params.seed)
        ys_draws = [boot(p.setting, metric) for p in present]
        fall = percentile_interval(ys_draws[1] - ys_draws[0], params.confidence)
        rise = percentile_interval(ys_draws[high] - ys_draws[low], params.confidence)
        result.interval = fall
        result.detail += f"; rise {ys[high] - ys[low]:+.2f} [{rise[0]:+.2f}, {rise[1]:+.2f}]"
        if fall[0] <= 0 <= fall[1] or rise[0] <= 0 <= rise[1]:
            result.mark = "within noise"
            result.detail += "; point estimate holds"
    return result


def paper_delta(claim: DeltaClaim, paper: Mapping[str, Any], size: str) -> str:
    rows = {**paper["table1"].get(size, {})}
    for row, values in paper["table2"].get(size, {}).items():
        rows[row] = {**rows.get(row, {}), **values}
    reps = {row: {k: [v] for k, v in values.items()} for row, values in rows.items()}
    result = evaluate_delta_claim(claim, reps, ReportParams())
    if result.delta is None:
        return DASH
    return f"{result.delta:+.{claim.decimals}f} ({result.mark})"


def evaluate_claims(
    reps: Mapping[str, Mapping[str, Sequence[float]]], ratio_points: Sequence[Point], paper: Mapping[str, Any],
    params: ReportParams,
) -> list[ClaimResult]:  # fmt: skip
    results = []
    for claim in DELTA_CLAIMS:
        result = evaluate_delta_claim(claim, reps, params)
        result.paper = {size: paper_delta(claim, paper, size) for size in ("7b", "13b")}
        results.append(result)
    results += [evaluate_curve_claim(metric, ratio_points, reps, params) for metric in CURVE_METRICS]
    return results


# ---------------------------------------------------------------------------- formatting


def fmt(value: float | None, decimals: int, signed: bool = False) -> str:
    if value is None:
        return DASH
    return f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"


def fmt_stat(s: Stat | None, decimals: int, signed: bool = False) -> str:
    if s is None:
        return DASH
    text = fmt(s.mean, decimals, signed)
    return text if s.std is None else f"{text} ± {s.std:.{decimals}f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def setting_order(setting: str) -> tuple[int, float, str]:
    if setting in TABLE1_ROWS:
        return (0, TABLE1_ROWS.index(setting), "")
    for rank, kind in enumerate(("ratio", "count"), start=1):
        if setting == kind:
            return (rank, -1.0, "")
        if setting.startswith(f"{kind}-"):
            try:
                return (rank, float(setting[len(kind) + 1 :]), "")
            except ValueError:
                return (rank, math.inf, setting)
    return (9, 0.0, setting)


def stats_of(reps: Mapping[str, Mapping[str, Sequence[float]]]) -> dict[str, dict[str, Stat]]:
    return {s: {k: stat(v) for k, v in metrics.items() if v} for s, metrics in reps.items()}


def value_table(
    rows: Sequence[str], columns: Mapping[str, str], stats: Mapping[str, Mapping[str, Stat]], decimals: int
) -> list[str]:
    body = [[row, *(fmt_stat(stats.get(row, {}).get(k), decimals) for k in columns)] for row in rows]
    return markdown_table(["setting", *columns.values()], body)


def paper_table(
    rows: Sequence[str], columns: Mapping[str, str], paper: Mapping[str, Mapping[str, float]], decimals: int
) -> list[str]:
    body = [[row, *(fmt(paper.get(row, {}).get(k), decimals) for k in columns)] for row in rows]
    return markdown_table(["setting", *columns.values()], body)


def delta_table(
    rows: Sequence[str], columns: Mapping[str, str], stats: Mapping[str, Mapping[str, Stat]],
    paper: Mapping[str, Mapping[str, Mapping[str, float]]], sizes: Sequence[str], reference: str, decimals: int,
) -> list[str]:  # fmt: skip
    """Cells `ours (paper)`: differences of means, ours vs the paper's published rows."""
    body = []
    for row in rows:
        if row == reference:
            continue
        cells = [row]
        for key in columns:
            ours_row, ours_ref = stats.get(row, {}).get(key), stats.get(reference, {}).get(key)
            ours = fmt(ours_row.mean - ours_ref.mean, decimals, True) if ours_row and ours_ref else DASH
            theirs = []
            for size in sizes:
                p_row, p_ref = (
                    paper.get(size, {}).get(row, {}).get(key),
                    paper.get(size, {}).get(reference, {}).get(key),
                )
                theirs.append(fmt(p_row - p_ref, decimals, True) if p_row is not None and p_ref is not None else DASH)
            cells.append(f"{ours} ({' / '.join(theirs)})")
        body.append(cells)
    return markdown_table(["setting", *columns.values()], body)


# ---------------------------------------------------------------------------- header


def optional_section(name: str) -> Any:
    try:
        return read_section(name)
    except StageError:
        return None


def profile_line(params_file: Path = Path(PARAMS_FILE)) -> str:
    """The profile of params.yaml: the one its first-line comment names (stages.profile writes it),
    else the profile whose keys it matches best; plus the keys that differ from that profile."""
    from stages.profile import leaf_keys, profile_names, read_profile

    try:
        text = params_file.read_text(encoding="utf-8")
        current = yaml.safe_load(text) or {}
    except (OSError, yaml.YAMLError):
        return "unknown (params.yaml unreadable)"
    named = re.match(r"# instmix parameters, profile `([\w-]+)`", text)
    names = [named.group(1)] if named and named.group(1) in profile_names() else profile_names()
    if not names:
        return "unknown (no profiles/)"
    diffs = {}
    for name in names:
        profile, changed = read_profile(name), []
        for key in sorted(leaf_keys(profile)):
            want, have = profile, current
            for part in key.split("."):
                want = want.get(part) if isinstance(want, dict) else None
                have = have.get(part) if isinstance(have, dict) else None
            if want != have:
                changed.append(f"{key}={str(have)[:40]}")
        diffs[name] = changed
    name = min(names, key=lambda n: (len(diffs[n]), n))
    line = f"`{name}`" + ("" if named else " (closest match; params.yaml names none)")
    changed = diffs[name]
    if changed:
        more = f" and {len(changed) - 6} more" if len(changed) > 6 else ""
        line += f", changed: {', '.join(changed[:6])}{more}"
    return line


def base_model_text(model: Mapping[str, Any] | None) -> str:
    if not model:
        return DASH
    base = model.get("base")
    known = {"smollm2": "SmolLM2-135M-Instruct (`smollm2`)", "tiny": "tiny random-init Llama (`tiny`, for tests)"}
    text = known.get(base, f"`{base}`")
    return text + (f" @ {str(model['revision'])[:12]}" if model.get("revision") else "")


def unique(runs: Iterable[Run], key: str) -> str:
    """The distinct values of one evaluation setting across models, for the header."""

    def text(value: Any) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        return "none" if value is None else f"{value:,}" if isinstance(value, int) else str(value)

    return ", ".join(sorted({text(r.info[key]) for r in runs if key in r.info})) or DASH


def header(runs: Mapping[str, Run], mix: Mapping[str, Mapping[str, Any]], params: ReportParams) -> list[str]:
    model, subsample = optional_section("model"), optional_section("subsample")
    sft, fetch = optional_section("sft") or {}, optional_section("fetch") or {}
    values = list(runs.values())
    n = subsample.get("n") if isinstance(subsample, dict) else None
    sizes = ", ".join(
        f"{s} {m.get('records', '?'):,}" for s, m in sorted(mix.items(), key=lambda i: setting_order(i[0]))
    )
    failures = sum(int(r.info.get("align_parse_failures") or 0) for r in values)
    seeds = {
        s: sorted({r.seed for r in values if r.setting == s}, key=lambda x: -1 if x is None else x)
        for s in {r.setting for r in values}
    }
    most = max((len(v) for v in seeds.values()), default=0)
    lines = [
        "# Results: instruction mixing (arXiv 2312.10793) on this run",
        "",
        "Generated by `python -m stages.report` from the evaluation metrics; do not edit by hand.",
        "",
        *markdown_table(
            ["", "this run", "paper"],
            [
                ["profile", profile_line(), DASH],
                ["base model", base_model_text(model), "LLaMA-2-7B and -13B (pretrained)"],
                ["records per source", f"{n:,}" if isinstance(n, int) else DASH, "20,000"],
                ["mixture sizes (records)", sizes or DASH, "20K (single), 40K (pairs), 60K (ACP)"],
                [
                    "training",
                    f"{sft.get('epochs', '?')} epochs, lr {sft.get('lr', '?')}, batch {sft.get('global_batch', '?')}, "
                    f"{sft.get('max_length', '?')} tokens, template {sft.get('template', '?')}, "
                    + ("LoRA" if sft.get("lora") else "full fine-tuning"),
                    "2 epochs, lr 5e-5, batch 64, 512 tokens, prompt + ' ' + response, full fine-tuning",
                ],
                [
                    "NLP benchmarks",
                    f"lm-eval {unique(values, 'lm_eval_version')}, zero-shot `{params.nlp_metric}`, "
                    f"limit {unique(values, 'nlp_limit')} items per task",
                    "zero-shot accuracy, full test sets (harness inferred)",
                ],
                [
                    "HumanEval",
                    f"{unique(values, 'code_n')} samples per problem, {unique(values, 'code_problems')} problems, "
                    f"sandboxed: {unique(values, 'code_sandboxed')}",
                    "pass@1, pass@10 (n = 10 inferred), 164 problems",
                ],
                [
                    "FLASK judge",
                    f"{unique(values, 'align_judge')}, {unique(values, 'align_instances')} instances, "
                    f"{failures} unparsed judge replies (all models)",
                    "GPT-4-0613, 1,180 instances, 8 skills, 1-5 x 20",
                ],
                [
                    "seeds",
                    DASH if not most else "one run per setting" if most == 1 else f"up to {most} per setting",
                    "one run per setting",
                ],
            ],
        ),
        "",
        "**What differs from the paper**",
        "",
        *[f"- {d}" for d in differences(model, subsample, sft, fetch, values, params, most)],
        "",
    ]
    return lines


def differences(
    model: Any, subsample: Any, sft: Mapping[str, Any], fetch: Mapping[str, Any], runs: Sequence[Run],
    params: ReportParams, most_seeds: int,
) -> list[str]:  # fmt: skip
    out = []
    base = str((model or {}).get("base", ""))
    if not re.search(r"llama-2-(7|13)b", base, re.IGNORECASE):
        out.append(
            f"base model {base_model_text(model)} instead of LLaMA-2-7B/13B: "
            "absolute scores are not comparable with the paper's, deltas are"
        )
    n = (subsample or {}).get("n")
    if isinstance(n, int) and n != PAPER["records_per_source"]:
        out.append(f"{n:,} records per source instead of 20,000")
    paths = [str(v.get("path", "")) for v in fetch.values() if isinstance(v, dict)]
    if paths and not all(p.endswith(".hub.yaml") for p in paths):
        out.append(
            "sources read from local files (" + ", ".join(f"`{p}`" for p in paths) + ") rather than the hub datasets"
        )
    if isinstance(fetch.get("p3"), dict) and fetch["p3"].get("max_per_task") != PAPER["p3_max_per_task"]:
        cap = fetch["p3"].get("max_per_task")
        out.append(f"P3 pooled with {'no cap' if cap is None else f'at most {cap:,}'} per task (paper: 1,000 per task)")
    for key, label in (
        ("epochs", "epochs"),
        ("global_batch", "global batch"),
        ("max_length", "max length"),
        ("lr", "learning rate"),
        ("template", "template"),
    ):
        if key in sft and sft[key] != PAPER[key]:
            out.append(f"training {label} {sft[key]} (paper: {PAPER[key]})")
    if sft.get("lora"):
        out.append("LoRA adapters instead of full fine-tuning")
    if params.nlp_metric != "acc":
        out.append(f"NLP metric `{params.nlp_metric}` (the paper's numbers match plain `acc`)")
    limits = {r.info.get("nlp_limit") for r in runs if "nlp_limit" in r.info}
    if limits - {None}:
        out.append(
            f"NLP benchmarks on the first {', '.join(map(str, sorted(limits - {None})))} items per task "
            "(paper: full test sets)"
        )
    for key, want, label in (
        ("code_n", PAPER["humaneval_n"], "HumanEval samples per problem"),
        ("code_problems", PAPER["humaneval_problems"], "HumanEval problems"),
    ):
        seen = {r.info.get(key) for r in runs if r.info.get(key) is not None}
        if seen and seen != {want}:
            out.append(f"{label} {', '.join(map(str, sorted(seen)))} (paper: {want})")
    if any(r.info.get("code_sandboxed") is False for r in runs):
        out.append("HumanEval completions ran without a sandbox")
    judges = {str(r.info.get("align_judge")) for r in runs if r.info.get("align_judge")}
    if judges and not all(PAPER["judge"] in j for j in judges):
        out.append(f"FLASK judge {', '.join(sorted(judges))} instead of GPT-4-0613")
    instances = {r.info.get("align_instances") for r in runs if r.info.get("align_instances") is not None}
    if instances and instances != {PAPER["flask_instances"]}:
        out.append(f"FLASK on {', '.join(map(str, sorted(instances)))} instances (paper: 1,180)")
    if most_seeds > 1:
        out.append(f"up to {most_seeds} seeds per setting (the paper ran each setting once)")
    return out or ["nothing detected: this run uses the paper's setup"]


# ---------------------------------------------------------------------------- plots


@dataclass
class Figures:
    """What each plot needs, and the notes about skipped plots."""

    written: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


SETTING_COLORS = {
    "none": "#7f7f7f", "A": "#1f77b4", "C": "#ff7f0e", "P": "#2ca02c", "AC": "#d62728",
    "AP": "#9467bd", "CP": "#8c564b", "ACP": "#e377c2",
}  # fmt: skip
PAPER_STYLE = {"7b": {"marker": "D", "color": "black"}, "13b": {"marker": "^", "color": "#555555"}}


def palette(settings: Iterable[str]) -> dict[str, Any]:
    """Fixed colours for the table settings; sweep settings in shades of one colour per sweep,
    darker for larger x; anything else from tab10."""
    import matplotlib

    ordered = sorted(set(settings), key=setting_order)
    colors: dict[str, Any] = {s: SETTING_COLORS[s] for s in ordered if s in SETTING_COLORS}
    for kind, cmap in (("ratio", "Blues"), ("count", "Oranges")):
        members = [s for s in ordered if s == kind or s.startswith(f"{kind}-")]
        members.sort(key=lambda s: setting_order(s)[1] if s != kind else math.inf)
        for i, s in enumerate(members):
            shade = 0.8 if len(members) == 1 else 0.5 + 0.45 * i / (len(members) - 1)
            colors[s] = matplotlib.colormaps[cmap](shade)
    rest = [s for s in ordered if s not in colors]
    colors |= {s: matplotlib.colormaps["tab10"](i % 10) for i, s in enumerate(rest)}
    return colors


def save_png(fig: Any, path: Path) -> None:
    """Byte-identical for the same data: no software/version stamp, written atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None}, bbox_inches="tight")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(buffer.getvalue())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def top_legend(fig: Any, ax: Any, spread: bool) -> None:
    """One legend above all panels: a grey patch for our bars (coloured by setting), the paper's markers."""
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    ours = "this run (bar colour = setting" + (", error bar = std over seeds)" if spread else ")")
    handles, labels = [Patch(facecolor="#bbbbbb", edgecolor="#555555"), *handles], [ours, *labels]
    fig.legend(
        handles, labels, loc="upper center", ncol=len(labels), bbox_to_anchor=(0.5, 1.0), fontsize=9, frameon=False
    )


def plot_benchmarks(
    stats: Mapping[str, Mapping[str, Stat]], paper: Mapping[str, Any], sizes: Sequence[str], path: Path
) -> str | None:
    import matplotlib.pyplot as plt

    columns = [k for k in TABLE1_COLUMNS if any(k in stats.get(s, {}) for s in TABLE1_ROWS)]
    if not columns:
        return "no NLP or HumanEval metrics for none … ACP"
    cols = 3
    rows = math.ceil(len(columns) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    x = np.arange(len(TABLE1_ROWS))
    for ax, key in zip(axes.flat, columns, strict=False):
        means = [stats.get(s, {}).get(key) for s in TABLE1_ROWS]
        heights = [m.mean if m else 0.0 for m in means]
        errors = [m.std if m and m.std is not None else 0.0 for m in means]
        ax.bar(
            x, heights, yerr=errors if any(errors) else None, color=[SETTING_COLORS[s] for s in TABLE1_ROWS], capsize=2
        )
        for i, m in enumerate(means):
            if m is None:
                ax.text(i, 0, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
        for size in sizes:
            ys = [paper["table1"].get(size, {}).get(s, {}).get(key, np.nan) for s in TABLE1_ROWS]
            ax.plot(x, ys, linestyle="none", markersize=5, label=f"paper {SIZE_LABEL[size]}", **PAPER_STYLE[size])
        ax.set_title(TABLE1_COLUMNS[key], fontsize=10)
        ax.set_xticks(x, TABLE1_ROWS, fontsize=8)
        ax.set_ylabel("pass@k (%)" if key.startswith("pass@") else "accuracy (%)", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        top = np.nanmax(
            [*heights, *(paper["table1"].get(s, {}).get(r, {}).get(key, np.nan) for s in sizes for r in TABLE1_ROWS)]
        )
        ax.set_ylim(0, max(5.0, 1.15 * top))
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.flat[len(columns) :]:
        ax.axis("off")
    spread = any(m.std is not None for s in TABLE1_ROWS for m in stats.get(s, {}).values())
    top_legend(fig, axes.flat[0], spread)
    fig.suptitle("Table 1 benchmarks by training mixture", y=1.04, fontsize=11)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)
    return None


def plot_sweep(
    kind: Literal["ratio", "count"], points: Sequence[Point], stats: Mapping[str, Mapping[str, Stat]],
    paper: Mapping[str, Any], sizes: Sequence[str], marks: Mapping[str, str], path: Path,
) -> str | None:  # fmt: skip
    """Each metric as the change from the sweep's first point, so that a 135M model's curve and the
    paper's 7B end points (Figure 2 is 7B only; its ends are table settings) share one axis."""
    import matplotlib.pyplot as plt

    metrics = [m for m in CURVE_METRICS if sum(m in stats.get(p.setting, {}) for p in points) >= 2]
    if not metrics:
        return f"fewer than 2 {kind} sweep points with NLP avg or pass@1"
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.6 * len(metrics), 4.0), squeeze=False)
    xlabel = "specialised / general ratio  (N_C + N_P) / N_A" if kind == "ratio" else "instances per type (A = C = P)"
    for ax, metric in zip(axes.flat, metrics, strict=True):
        present = [p for p in points if metric in stats.get(p.setting, {})]
        first = present[0]
        ref = stats[first.setting][metric].mean
        ms = [stats[p.setting][metric] for p in present]
        errors = [m.std or 0.0 for m in ms]
        ax.axhline(0, color="#999999", linewidth=0.8)
        ax.errorbar(
            [p.x for p in present], [m.mean - ref for m in ms], yerr=errors if any(errors) else None,
            marker="o", color="#1f77b4", capsize=3, label="this run" + (" (± std over seeds)" if any(errors) else ""),
        )  # fmt: skip
        ticks = [f"{p.x:g}" + ("" if p.role == "sweep" else f"\n({p.setting})") for p in present]
        ax.set_xticks([p.x for p in present], ticks, fontsize=8)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel(f"{CURVE_METRICS[metric]}: change from x = {first.x:g} (pp)", fontsize=9)
        ax.grid(alpha=0.3)
        title = f"{CURVE_METRICS[metric]} (this run at x = {first.x:g}: {ref:.2f} %)"
        if kind == "ratio" and metric in marks:
            title += f"\ndips then peaks: {marks[metric]}"
        ax.set_title(title, fontsize=10)
        start = "A" if kind == "ratio" else "none"
        if "7b" in sizes and first.setting == start:
            published = paper["table1"]["7b"]
            ends = [p for p in present if p.setting in (start, "ACP") and p.role != "sweep"]
            label = f"paper {SIZE_LABEL['7b']} ({' and '.join(p.setting for p in ends)})"
            ys = [published[p.setting][metric] - published[start][metric] for p in ends]
            ax.plot([p.x for p in ends], ys, linestyle="none", markersize=7, label=label, **PAPER_STYLE["7b"])
        ax.legend(fontsize=8, loc="best")
    name = (
        "Ratio sweep (A fixed, C = P added)" if kind == "ratio" else "Instance-count sweep (same number of A, C and P)"
    )
    fig.suptitle(name, fontsize=11)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)
    return None


def plot_flask(
    stats: Mapping[str, Mapping[str, Stat]], paper: Mapping[str, Any], sizes: Sequence[str], path: Path
) -> str | None:
    import matplotlib.pyplot as plt

    rows = [s for s in TABLE2_ROWS if any(k in stats.get(s, {}) for k in SKILLS)]
    if not rows:
        return "no FLASK metrics for A … ACP"
    fig, axes = plt.subplots(2, 4, figsize=(16, 7.2), sharey=True)
    x = np.arange(len(SKILLS))
    labels = [TABLE2_COLUMNS[k].rstrip(".") for k in SKILLS]
    for ax, setting in zip(axes.flat, TABLE2_ROWS, strict=False):
        ours = [stats.get(setting, {}).get(k) for k in SKILLS]
        errors = [m.std or 0.0 if m else 0.0 for m in ours]
        ax.bar(
            x,
            [m.mean if m else 0.0 for m in ours],
            yerr=errors if any(errors) else None,
            color=SETTING_COLORS[setting],
            capsize=2,
        )
        for size in sizes:
            ys = [paper["table2"].get(size, {}).get(setting, {}).get(k, np.nan) for k in SKILLS]
            ax.plot(x, ys, linestyle="none", markersize=5, label=f"paper {SIZE_LABEL[size]}", **PAPER_STYLE[size])
        avg = stats.get(setting, {}).get("flask_avg")
        ax.set_title(
            f"{setting}  (avg {fmt_stat(avg, 1)})" if setting in rows else f"{setting}  (no FLASK metrics)", fontsize=10
        )
        ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
        ax.set_ylim(0, 105)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("FLASK score (1-5 x 20)", fontsize=9)
    last = axes.flat[7]
    for setting in rows:
        ys = [stats[setting][k].mean if k in stats[setting] else np.nan for k in SKILLS]
        last.plot(x, ys, marker="o", markersize=3, color=SETTING_COLORS[setting], label=setting)
    last.set_title("all settings, this run", fontsize=10)
    last.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    last.grid(alpha=0.3)
    last.legend(fontsize=7, ncol=2, loc="best")
    top_legend(fig, axes.flat[0], any(m.std is not None for s in rows for m in stats[s].values()))
    fig.suptitle("FLASK skill profile per training mixture (Table 2)", y=1.04, fontsize=11)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)
    return None


def plot_losses(
    curves: Mapping[str, tuple[list[float], list[float], str]], runs: Mapping[str, Run], path: Path
) -> str | None:
    import matplotlib.pyplot as plt

    if not curves:
        return "no training loss curves (reports/sft/<model>/live/plots/metrics/loss.tsv)"
    groups = {"table settings": [m for m in curves if runs[m].setting in TABLE1_ROWS]}
    groups["sweep settings"] = [m for m in curves if runs[m].setting not in TABLE1_ROWS]
    groups = {
        k: sorted(v, key=lambda m: (setting_order(runs[m].setting), runs[m].seed or 0)) for k, v in groups.items() if v
    }
    fig, axes = plt.subplots(1, len(groups), figsize=(6.4 * len(groups), 4.2), squeeze=False)
    colors = palette(runs[m].setting for m in curves)
    for ax, (title, models) in zip(axes.flat, groups.items(), strict=True):
        labelled = set()
        for model in models:
            setting = runs[model].setting
            xs, ys, xlabel = curves[model]
            label = None if setting in labelled else setting
            labelled.add(setting)
            marker = "o" if len(xs) <= 12 else None  # a short run's few logged points stay visible
            ax.plot(xs, ys, color=colors[setting], marker=marker, markersize=3, linewidth=1.3, alpha=0.85, label=label)
            ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel("training loss (nats / token)", fontsize=9)
        ax.set_title(f"Training loss, {title}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)
    return None


def make_plots(
    out: Path, stats: Mapping[str, Mapping[str, Stat]], paper: Mapping[str, Any], params: ReportParams,
    sweeps: Mapping[str, list[Point]], marks: Mapping[str, str], curves: Mapping[str, Any], runs: Mapping[str, Run],
) -> Figures:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = Figures()
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    jobs: dict[str, Callable[[Path], str | None]] = {
        "benchmarks.png": lambda p: plot_benchmarks(stats, paper, params.sizes, p),
        "ratio_sweep.png": lambda p: plot_sweep("ratio", sweeps["ratio"], stats, paper, params.sizes, marks, p),
        "count_sweep.png": lambda p: plot_sweep("count", sweeps["count"], stats, paper, params.sizes, marks, p),
        "flask_profile.png": lambda p: plot_flask(stats, paper, params.sizes, p),
        "loss_curves.png": lambda p: plot_losses(curves, runs, p),
    }
    with plt.rc_context({"font.family": "DejaVu Sans", "svg.hashsalt": "instmix"}):
        for name, job in jobs.items():
            (plots / name).unlink(missing_ok=True)  # a plot skipped this time must not stay from last time
            reason = job(plots / name)
            if reason is None:
                figures.written.append(name)
            else:
                figures.skipped[name] = reason
    return figures


# ---------------------------------------------------------------------------- results


def csv_rows(runs: Mapping[str, Run], mix: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    keyed = {}
    for model, r in runs.items():
        row = dict(r.raw)
        m = mix.get(r.setting, {})
        row |= {f"mix.{k}": m[k] for k in ("records", "ratio", "per_type") if k in m}
        row |= {f"mix.records_per_source.{k}": v for k, v in m.get("records_per_source", {}).items()}
        keyed[model] = row
    columns = sorted({k for row in keyed.values() for k in row})
    order = sorted(
        runs, key=lambda m: (setting_order(runs[m].setting), runs[m].seed if runs[m].seed is not None else -1)
    )

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    body = [[m, runs[m].setting, cell(runs[m].seed), *(cell(keyed[m].get(c)) for c in columns)] for m in order]
    return ["model", "setting", "seed", *columns], body


def claims_json(results: Sequence[ClaimResult]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in results:
        entry: dict[str, Any] = {"holds": r.mark == "holds", "evaluable": r.delta is not None}
        if r.delta is not None:
            entry["delta"] = round(r.delta, 6)
        if r.interval is not None:
            entry["ci_low"], entry["ci_high"] = round(r.interval[0], 6), round(r.interval[1], 6)
        out[r.id] = entry
    return {"claims": out}


def claims_section(results: Sequence[ClaimResult], params: ReportParams) -> list[str]:
    conf = f"{100 * params.confidence:g} %"
    rows = []
    for r in results:
        interval = DASH if r.interval is None else f"[{r.interval[0]:+.{r.decimals}f}, {r.interval[1]:+.{r.decimals}f}]"
        rows.append(
            [
                r.text,
                r.measure,
                fmt(r.delta, r.decimals, True),
                interval,
                r.paper.get("7b", DASH),
                r.paper.get("13b", DASH),
                f"**{r.mark}**",
                r.detail,
            ]
        )
    return [
        "## The paper's claims on this run",
        "",
        *markdown_table(
            ["claim", "measured as", "this run", f"{conf} interval", "paper 7B", "paper 13B", "mark", "notes"], rows
        ),
        "",
        f"A delta claim holds when its delta has the claimed sign. With several seeds the interval is a "
        f"bootstrap over seeds ({params.bootstrap_samples:,} resamples of each setting's seeds, percentile "
        f"{conf}); when it contains 0 the claim is marked *within noise*. With one run per setting there is "
        "no interval (*single run*). *Dips then peaks*: with the ratio points in order, the first step goes "
        "down (y[1] < y[0], the interval shown is for that fall) and the highest point comes after the "
        "lowest (a rise back to a peak above the start); it needs at least 3 points.",
        "",
    ]


def sweep_section(
    kind: str, points: Sequence[Point], stats: Mapping[str, Mapping[str, Stat]], notes: Sequence[str]
) -> list[str]:
    title = "Ratio sweep (paper Figure 2, left)" if kind == "ratio" else "Instance-count sweep (paper Figure 2, right)"
    xname = "ratio (N_C + N_P) / N_A" if kind == "ratio" else "instances per type"
    cols = {"nlp_avg": "NLP avg", "pass@1": "HumanEval @1", "pass@10": "HumanEval @10", "flask_avg": "FLASK avg"}
    rows = [
        [
            f"{p.x:g}",
            p.setting + ("" if p.role == "sweep" else " (table setting)"),
            *(fmt_stat(stats.get(p.setting, {}).get(k), 2) for k in cols),
        ]
        for p in points
    ]
    lines = [f"### {title}", ""]
    lines += (
        markdown_table([xname, "setting", *cols.values()], rows)
        if rows
        else ["No points: no sweep setting was evaluated."]
    )
    return [*lines, "", *[f"- {n}" for n in notes], *([""] if notes else [])]


def training_section(runs: Mapping[str, Run]) -> list[str]:
    keys = {
        "sft.examples": "examples",
        "sft.steps": "steps",
        "sft.tokens": "tokens",
        "sft.first_loss": "first loss",
        "sft.last_loss": "last loss",
        "sft.train_loss": "mean loss",
        "sft.wall_seconds": "wall s",
        "sft.tokens_per_second": "tokens/s",
    }
    models = sorted(
        (m for m, r in runs.items() if "sft.steps" in r.raw),
        key=lambda m: (setting_order(runs[m].setting), runs[m].seed or 0),
    )
    if not models:
        return ["## Training", "", "No training metrics (reports/sft/<model>/metrics.json).", ""]

    def cell(key: str, value: Any) -> str:
        if not isinstance(value, int | float):
            return DASH
        return f"{value:.3f}" if key.endswith("loss") else f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"

    return [
        "## Training",
        "",
        *markdown_table(["model", *keys.values()], [[m, *(cell(k, runs[m].raw.get(k)) for k in keys)] for m in models]),
        "",
    ]


def build_report(
    eval_dir: Path, sft_dir: Path, mix_dir: Path, paper_file: Path, out: Path, params: ReportParams
) -> dict[str, Any]:
    paper = read_paper(paper_file)
    runs = read_runs(eval_dir, sft_dir, params)
    settings = {r.setting for r in runs.values()}
    mix = read_mix(mix_dir, settings | {"ACP"})
    reps = replicates(runs.values())
    stats = stats_of(reps)
    sweeps, sweep_notes = {}, {}
    for kind in ("ratio", "count"):
        sweeps[kind], sweep_notes[kind] = sweep_points(kind, settings, mix)  # type: ignore[arg-type]
    results = evaluate_claims(reps, sweeps["ratio"], paper, params)
    curves = {m: c for m in sorted(runs) if (c := read_loss_curve(sft_dir, m)) is not None}
    marks = {m: r.mark for m, r in zip(CURVE_METRICS, results[len(DELTA_CLAIMS) :], strict=True)}
    figures = make_plots(out, stats, paper, params, sweeps, marks, curves, runs)

    sizes = params.sizes
    paper_names = " / ".join(SIZE_LABEL[s] for s in sizes)
    notes = []
    for family, keys, rows in (
        ("NLP benchmarks", (*NLP_TASKS, "nlp_avg"), TABLE1_ROWS),
        ("HumanEval", ("pass@1", "pass@10"), TABLE1_ROWS),
        ("FLASK", (*SKILLS, "flask_avg"), TABLE2_ROWS),
    ):
        missing = [s for s in rows if not any(k in stats.get(s, {}) for k in keys)]
        if missing:
            notes.append(f"{family}: no metrics for {', '.join(missing)} (cells show {DASH})")
    lines = header(runs, mix, params)
    lines += claims_section(results, params)
    lines += [
        "## Table 1: NLP benchmarks (zero-shot accuracy, %) and HumanEval (pass@k, %)",
        "",
        "**This run** (mean ± std over seeds where a setting has several)",
        "",
        *value_table(TABLE1_ROWS, TABLE1_COLUMNS, stats, 2),
        "",
    ]
    for size in sizes:
        lines += [
            f"**Paper, {SIZE_LABEL[size]}** ({paper['table1']['source']})",
            "",
            *paper_table(TABLE1_ROWS, TABLE1_COLUMNS, paper["table1"][size], 2),
            "",
        ]
    for reference in ("none", "A"):
        lines += [
            f"**Δ vs {reference}**: this run ({paper_names})",
            "",
            *delta_table(TABLE1_ROWS, TABLE1_COLUMNS, stats, paper["table1"], sizes, reference, 2),
            "",
        ]
    lines += [
        "## Table 2: FLASK alignment skills (1-5 scores x 20)",
        "",
        "**This run**",
        "",
        *value_table(TABLE2_ROWS, TABLE2_COLUMNS, stats, 1),
        "",
    ]
    for size in sizes:
        lines += [
            f"**Paper, {SIZE_LABEL[size]}** ({paper['table2']['source']})",
            "",
            *paper_table(TABLE2_ROWS, TABLE2_COLUMNS, paper["table2"][size], 1),
            "",
        ]
    lines += [
        f"**Δ vs A**: this run ({paper_names})",
        "",
        *delta_table(TABLE2_ROWS, TABLE2_COLUMNS, stats, paper["table2"], sizes, "A", 1),
        "",
    ]
    if "flask_avg" in stats.get("none", {}):
        lines += [
            "The base model (`none`, not in the paper's Table 2) scores FLASK avg "
            f"{fmt_stat(stats['none']['flask_avg'], 1)}.",
            "",
        ]
    lines += [
        "## Sweeps",
        "",
        *sweep_section("ratio", sweeps["ratio"], stats, sweep_notes["ratio"]),
        *sweep_section("count", sweeps["count"], stats, sweep_notes["count"]),
    ]
    lines += training_section(runs)
    lines += ["## Plots", ""]
    titles = {
        "benchmarks.png": "Table 1 benchmarks by setting",
        "ratio_sweep.png": "ratio sweep",
        "count_sweep.png": "instance-count sweep",
        "flask_profile.png": "FLASK skill profiles",
        "loss_curves.png": "training loss curves",
    }
    for name in PLOT_FILES:
        if name in figures.written:
            lines += [f"![{titles[name]}](plots/{name})", ""]
        else:
            lines += [f"- {titles[name]} (`plots/{name}`): not drawn, {figures.skipped[name]}.", ""]
    if notes:
        lines += ["## Missing data", "", *[f"- {n}" for n in notes], ""]
    with atomic_open(out / "results.md") as handle:
        handle.write("\n".join(lines).rstrip("\n") + "\n")
    columns, body = csv_rows(runs, mix)
    with atomic_open(out / "results.csv") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(body)
    summary = claims_json(results)
    write_json(out / "claims.json", summary)
    return {"models": len(runs), "plots": figures.written, "claims": {r.id: r.mark for r in results}}


def main(argv: list[str]) -> None:
    if len(argv) != 5:
        raise StageError("usage: python -m stages.report <eval dir> <sft dir> <mix dir> <paper results> <out dir>")
    eval_dir, sft_dir, mix_dir, paper_file, out = map(Path, argv)
    params = load(ReportParams, "report")
    if not paper_file.is_file():
        raise StageError(f"{paper_file}: no such file (the paper's published numbers)")
    summary = build_report(eval_dir, sft_dir, mix_dir, paper_file, out, params)
    marks = ", ".join(f"{k} {v}" for k, v in summary["claims"].items())
    print(f"report: {summary['models']} models, {len(summary['plots'])} plots -> {out / 'results.md'}; {marks}")


if __name__ == "__main__":
    cli(main)
