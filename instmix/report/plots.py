"""The report's plots: Table 1 benchmarks, the two sweeps, FLASK profiles and training losses.

Each plot function returns None when drawn, or the reason it was not (no data for it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from instmix.core.vocab import BASE_ROW, SKILLS
from instmix.report import seeds
from instmix.report.claims import ClaimResult
from instmix.report.curves import CURVE_METRICS
from instmix.report.effect_plots import plot_factorial, plot_forest, plot_heldout
from instmix.report.layout import PLOT_FILES, SIZE_LABEL, TABLE1_COLUMNS, TABLE1_ROWS, TABLE2_COLUMNS, TABLE2_ROWS
from instmix.report.params import ReportParams
from instmix.report.plot_style import PAPER_STYLE, SETTING_COLORS, Figures, finish, palette, top_legend
from instmix.report.runs import Run
from instmix.report.stats import Stat
from instmix.report.sweeps import Point, SweepKind
from instmix.report.tables import fmt_stat

Stats = Mapping[str, Mapping[str, Stat]]
Draws = Callable[[str, str], Any]  # (setting, metric) -> bootstrap draws of its mean, or None


@dataclass(frozen=True)
class Spread:
    """Error bars: the paired bootstrap interval of each value (instmix.report.items) where there are
    per-item files, else ± std over seeds; none where neither."""

    stats: Stats
    draws: Draws | None = None
    confidence: float = 0.95

    def label(self) -> str:
        if self.draws is None:
            return "std over seeds"
        return f"{self.confidence:.0%} paired bootstrap interval (std over seeds without per-item files)"

    def errors(self, settings: Sequence[str], key: str, centre: Sequence[float], ref: str | None = None) -> Any:
        """[[below], [above]] around `centre` (values, or their change from `ref`'s), or None if all 0."""
        below, above = [], []
        for setting, value in zip(settings, centre, strict=True):
            draws = self.draws(setting, key) if self.draws is not None else None
            base = self.draws(ref, key) if self.draws is not None and ref is not None else 0.0
            if draws is not None and base is not None:
                low, high = seeds.widened(
                    lambda v, s=setting: v(s, key) - (v(ref, key) if ref is not None else 0.0),
                    self.draws,
                    self.confidence,
                )
                below.append(max(0.0, value - low))
                above.append(max(0.0, high - value))
            else:
                stat = self.stats.get(setting, {}).get(key)
                std = stat.std if stat is not None and stat.std is not None else 0.0
                below.append(std)
                above.append(std)
        return [below, above] if any(below) or any(above) else None


def plot_benchmarks(spread: Spread, paper: Mapping[str, Any], sizes: Sequence[str], path: Path) -> str | None:
    import matplotlib.pyplot as plt

    stats = spread.stats
    columns = [k for k in TABLE1_COLUMNS if any(k in stats.get(s, {}) for s in TABLE1_ROWS)]
    if not columns:
        return f"no NLP or HumanEval metrics for {TABLE1_ROWS[0]} … {TABLE1_ROWS[-1]}"
    cols = 3
    rows = math.ceil(len(columns) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    x = np.arange(len(TABLE1_ROWS))
    bars = False
    for ax, key in zip(axes.flat, columns, strict=False):
        means = [stats.get(s, {}).get(key) for s in TABLE1_ROWS]
        heights = [m.mean if m else 0.0 for m in means]
        errors = spread.errors(TABLE1_ROWS, key, heights)
        ax.bar(x, heights, yerr=errors, color=[SETTING_COLORS[s] for s in TABLE1_ROWS], capsize=2)
        bars |= errors is not None
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
        tops = [h + (errors[1][i] if errors else 0.0) for i, h in enumerate(heights)]  # interval tops shown whole
        top = np.nanmax(
            [*tops, *(paper["table1"].get(s, {}).get(r, {}).get(key, np.nan) for s in sizes for r in TABLE1_ROWS)]
        )
        ax.set_ylim(0, max(5.0, 1.15 * top))
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.flat[len(columns) :]:
        ax.axis("off")
    top_legend(fig, axes.flat[0], spread.label() if bars else "")
    fig.suptitle("Table 1 benchmarks by training mixture", y=1.04, fontsize=11)
    finish(fig, path)
    return None


def plot_sweep(
    kind: SweepKind, points: Sequence[Point], spread: Spread,
    paper: Mapping[str, Any], sizes: Sequence[str], marks: Mapping[str, str], path: Path,
) -> str | None:  # fmt: skip
    """Each metric as the change from the sweep's first point, so that a 135M model's curve and the
    paper's 7B end points (Figure 2 is 7B only; its ends are table settings) share one axis; error
    bars are each change's paired interval."""
    import matplotlib.pyplot as plt

    stats = spread.stats
    metrics = [m for m in CURVE_METRICS if sum(m in stats.get(p.setting, {}) for p in points) >= 2]
    if not metrics:
        return f"fewer than 2 {kind} sweep points with NLP avg or pass@1"
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.6 * len(metrics), 4.0), squeeze=False)
    xlabel = "specialised / general ratio  (N_C + N_P) / N_A" if kind == "ratio" else "instances per type (A = C = P)"
    for ax, metric in zip(axes.flat, metrics, strict=True):
        present = [p for p in points if metric in stats.get(p.setting, {})]
        first = present[0]
        ref = stats[first.setting][metric].mean
        changes = [stats[p.setting][metric].mean - ref for p in present]
        errors = spread.errors([p.setting for p in present], metric, changes, first.setting)
        ax.axhline(0, color="#999999", linewidth=0.8)
        ax.errorbar(
            [p.x for p in present], changes, yerr=errors, marker="o", color="#1f77b4", capsize=3,
            label="this run" + (f" ({spread.label()})" if errors is not None else ""),
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
        start = "A" if kind == "ratio" else BASE_ROW
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
    finish(fig, path)
    return None


def plot_flask(spread: Spread, paper: Mapping[str, Any], sizes: Sequence[str], path: Path) -> str | None:
    import matplotlib.pyplot as plt

    stats = spread.stats
    rows = [s for s in TABLE2_ROWS if any(k in stats.get(s, {}) for k in SKILLS)]
    if not rows:
        return "no FLASK metrics for A … ACP"
    fig, axes = plt.subplots(2, 4, figsize=(16, 7.2), sharey=True)
    x = np.arange(len(SKILLS))
    labels = [TABLE2_COLUMNS[k].rstrip(".") for k in SKILLS]
    bars = False
    for ax, setting in zip(axes.flat, TABLE2_ROWS, strict=False):
        ours = [stats.get(setting, {}).get(k) for k in SKILLS]
        heights = [m.mean if m else 0.0 for m in ours]
        errors = [spread.errors([setting], k, [h]) for k, h in zip(SKILLS, heights, strict=True)]
        yerr = [[e[0][0] if e else 0.0 for e in errors], [e[1][0] if e else 0.0 for e in errors]]
        bars |= any(e is not None for e in errors)
        ax.bar(x, heights, yerr=yerr if bars else None, color=SETTING_COLORS[setting], capsize=2)
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
    top_legend(fig, axes.flat[0], spread.label() if bars else "")
    fig.suptitle("FLASK skill profile per training mixture (Table 2)", y=1.04, fontsize=11)
    finish(fig, path)
    return None


def plot_losses(
    curves: Mapping[str, tuple[list[float], list[float], str]], runs: Mapping[str, Run], path: Path
) -> str | None:
    import matplotlib.pyplot as plt

    if not curves:
        return "no training loss curves (reports/sft/<model>/live/plots/metrics/loss.tsv)"
    groups = {"table settings": [m for m in curves if runs[m].setting in TABLE1_ROWS]}
    groups["sweep settings"] = [m for m in curves if runs[m].setting not in TABLE1_ROWS]
    groups = {k: sorted(v, key=lambda m: runs[m].order) for k, v in groups.items() if v}
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
    finish(fig, path)
    return None


def make_plots(
    out: Path, spread: Spread, paper: Mapping[str, Any], params: ReportParams, sweeps: Mapping[str, list[Point]],
    marks: Mapping[str, str], curves: Mapping[str, Any], runs: Mapping[str, Run], claims: Sequence[ClaimResult],
) -> Figures:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = Figures()
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    jobs: dict[str, Callable[[Path], str | None]] = {  # one per PLOT_FILES entry, in that order
        "benchmarks.png": lambda p: plot_benchmarks(spread, paper, params.sizes, p),
        "ratio_sweep.png": lambda p: plot_sweep("ratio", sweeps["ratio"], spread, paper, params.sizes, marks, p),
        "count_sweep.png": lambda p: plot_sweep("count", sweeps["count"], spread, paper, params.sizes, marks, p),
        "flask_profile.png": lambda p: plot_flask(spread, paper, params.sizes, p),
        "loss_curves.png": lambda p: plot_losses(curves, runs, p),
        "claims_forest.png": lambda p: plot_forest(claims, params.sizes, p),
        "factorial.png": lambda p: plot_factorial(spread.stats, spread.draws, spread.confidence, p),
        "heldout_loss.png": lambda p: plot_heldout(spread.stats, p),
    }
    assert tuple(jobs) == PLOT_FILES
    with plt.rc_context({"font.family": "DejaVu Sans", "svg.hashsalt": "instmix"}):
        for name, job in jobs.items():
            (plots / name).unlink(missing_ok=True)  # a plot skipped this time must not stay from last time
            reason = job(plots / name)
            if reason is None:
                figures.written.append(name)
            else:
                figures.skipped[name] = reason
    return figures
