"""build_report: read every artifact, evaluate the claims, and write results.md, results.csv,
claims.json and plots/*.png to the out dir (deterministic, each file atomic)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from instmix.core.files import atomic_open, write_json
from instmix.core.params import StageError
from instmix.core.vocab import BASE, SKILLS, SWEEP_SETTINGS, TASKS
from instmix.report import proxies
from instmix.report.claims import DELTA_CLAIMS, evaluate_delta_claim
from instmix.report.curves import CURVE_METRICS
from instmix.report.export import csv_rows, token_section, write_csv, write_olmix
from instmix.report.header import header, read_setup
from instmix.report.items import Resampler, by_setting
from instmix.report.layout import DASH, PLOT_FILES, TABLE1_ROWS, TABLE2_ROWS
from instmix.report.named import fixed_section, mixtures_section
from instmix.report.params import ReportParams
from instmix.report.plot_style import Figures
from instmix.report.plots import Spread, make_plots
from instmix.report.runs import Run, read_loss_curve, read_mix, read_paper, read_runs
from instmix.report.stats import Stat, replicates, stats_of
from instmix.report.sweeps import sweep_points
from instmix.report.tables import (
    claims_section,
    factorial_section,
    sweep_section,
    tables_section,
    training_section,
)
from instmix.report.verdicts import claims_json, evaluate_claims, evaluate_twins

PLOT_TITLES = {
    "benchmarks.png": "Table 1 benchmarks by setting", "ratio_sweep.png": "ratio sweep",
    "count_sweep.png": "instance-count sweep", "flask_profile.png": "FLASK skill profiles",
    "loss_curves.png": "training loss curves", "claims_forest.png": "the claims: delta and interval",
    "factorial.png": "each source's Shapley value", "heldout_loss.png": "held-out bits per byte per source",
}  # fmt: skip
FAMILIES = (
    ("NLP benchmarks", (*TASKS, "nlp_avg"), TABLE1_ROWS),
    ("HumanEval", ("pass@1", "pass@10"), TABLE1_ROWS),
    ("FLASK", (*SKILLS, "flask_avg"), TABLE2_ROWS),
)


def require_trained_model(runs: Mapping[str, Run], reports: Path) -> None:
    """A report of the base model alone compares nothing: most likely `seeds` is empty."""
    if not any(model != BASE for model in runs):
        raise StageError(
            f"no trained model found (no {reports}/sft/*/metrics.json and no evaluated model id other than "
            f"`{BASE}`); the top-level `seeds` list in params.yaml must name at least one training seed, e.g. [42]"
        )


def missing_notes(stats: Mapping[str, Mapping[str, Stat]]) -> list[str]:
    notes = []
    for family, keys, rows in FAMILIES:
        missing = [s for s in rows if not any(k in stats.get(s, {}) for k in keys)]
        if missing:
            notes.append(f"{family}: no metrics for {', '.join(missing)} (cells show {DASH})")
    return notes


def plots_section(figures: Figures) -> list[str]:
    lines = ["## Plots", ""]
    for name in PLOT_FILES:
        if name in figures.written:
            lines += [f"![{PLOT_TITLES[name]}](plots/{name})", ""]
        else:
            lines += [f"- {PLOT_TITLES[name]} (`plots/{name}`): not drawn, {figures.skipped[name]}.", ""]
    return lines


def write_outputs(out: Path, lines: Sequence[str], columns: list[str], body: list[list[str]], claims: Any) -> None:
    with atomic_open(out / "results.md") as handle:
        handle.write("\n".join(lines).rstrip("\n") + "\n")
    write_csv(out / "results.csv", [columns, *body])
    write_json(out / "claims.json", claims)


def build_report(
    data_dir: Path,
    reports: Path,
    base_metrics: Path,
    paper_files: tuple[Path, Path],
    out: Path,
    params: ReportParams,
    profile: str,
) -> dict[str, Any]:
    """Write the report; `paper_files`: the paper's results and its setup (the fidelity items).
    Returns a summary for the stage's one-line message."""
    paper = read_paper(paper_files[0])
    runs = read_runs(reports, params.nlp_metric)
    require_trained_model(runs, reports)
    setup = read_setup(data_dir, base_metrics, profile, paper_files[1])
    settings = {r.setting for r in runs.values()}
    mix = read_mix(data_dir / "mix", settings | {"ACP"})  # ACP's sizes anchor the count sweep
    reps = replicates(runs.values())
    stats = stats_of(reps)
    sweeps, sweep_notes = {}, {}
    for kind in SWEEP_SETTINGS:
        sweeps[kind], sweep_notes[kind] = sweep_points(kind, settings, mix)  # type: ignore[arg-type]
    resampler = Resampler(by_setting(runs.values()), params.bootstrap_samples, params.seed)
    results = evaluate_claims(reps, sweeps, paper, params, resampler)
    controls = [evaluate_delta_claim(c, reps, params, resampler) for c in proxies.controls()]
    twins = evaluate_twins(reps, sweeps, params, resampler)
    curves = {m: c for m in runs if (c := read_loss_curve(reports / "sft", m)) is not None}
    curve_results = results[len(DELTA_CLAIMS) : len(DELTA_CLAIMS) + len(CURVE_METRICS)]
    marks = {m: r.mark for m, r in zip(CURVE_METRICS, curve_results, strict=True)}
    spread = Spread(stats, resampler if resampler.common else None, params.confidence)
    figures = make_plots(out, spread, paper, params, sweeps, marks, curves, runs, results)

    lines = header(runs, setup, mix, params) + claims_section(results, params)
    benchmark_prompts = bool((setup.fetched.get("p3") or {}).get("benchmark_tasks"))
    lines += tables_section(
        stats, paper, params.sizes, benchmark_prompts, resampler, params.confidence, params.min_items
    )
    lines += token_section(runs) + factorial_section(stats, resampler, params.confidence, params.min_items)
    values = {m: r.values for m, r in runs.items() if r.seed is not None}  # trained runs
    lines += proxies.sections(stats, resampler, params, controls, twins, values)
    lines += mixtures_section(stats, mix, resampler, params) + fixed_section(stats, mix, resampler, params)
    lines += ["## Sweeps", ""]
    for kind in SWEEP_SETTINGS:
        lines += sweep_section(kind, sweeps[kind], stats, sweep_notes[kind])
    lines += training_section(runs) + plots_section(figures)
    if notes := missing_notes(stats):
        lines += ["## Missing data", "", *[f"- {n}" for n in notes], ""]
    columns, body = csv_rows(runs, mix)
    write_olmix(out / "olmix", runs)
    found = [*results, *controls, *twins]
    write_outputs(out, lines, columns, body, claims_json(found) | {"params": asdict(params)})
    return {"models": len(runs), "plots": figures.written, "claims": {r.id: r.mark for r in found}}
