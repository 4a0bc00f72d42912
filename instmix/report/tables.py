"""Markdown tables and the report's sections (claims, Tables 1 and 2, sweeps, training), and the CSV."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from instmix.core.vocab import BASE_ROW
from instmix.report import factorial, seeds
from instmix.report.claims import ClaimResult
from instmix.report.items import Resampler, units_of
from instmix.report.layout import (
    DASH,
    MARK_BENCHMARK_PROMPTS,
    SIZE_LABEL,
    TABLE1_COLUMNS,
    TABLE1_ROWS,
    TABLE2_COLUMNS,
    TABLE2_ROWS,
)
from instmix.report.params import ReportParams
from instmix.report.runs import Run
from instmix.report.stats import Stat
from instmix.report.sweeps import Point

Stats = Mapping[str, Mapping[str, Stat]]


def fmt(value: float | None, decimals: int, signed: bool = False) -> str:
    if value is None:
        return DASH
    if round(value, decimals) == 0:
        value = 0.0  # no "-0.00"
    return f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"


def fmt_interval(low: float, high: float, decimals: int) -> str:
    return f"[{fmt(low, decimals, True)}, {fmt(high, decimals, True)}]"


def too_few_items(draws: Any, keys: Iterable[str], min_items: int) -> int | None:
    """The fewest items shared behind `keys`' paired draws, when fewer than `min_items` (report.min_items):
    a percentile interval over a handful of items is too narrow to print (4 FLASK instances gave
    `-0.2 [-0.2, -0.2]`)."""
    if not isinstance(draws, Resampler):
        return None
    n = min((len(draws.common[u]) for k in keys for u in units_of(k) if u in draws.common), default=None)
    return n if n is not None and n < min_items else None


def fmt_stat(s: Stat | None, decimals: int, signed: bool = False) -> str:
    if s is None:
        return DASH
    text = fmt(s.mean, decimals, signed)
    return text if s.std is None else f"{text} ± {s.std:.{decimals}f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def value_table(
    rows: Sequence[str], columns: Mapping[str, str], stats: Stats, decimals: int, marked: Collection[str] = ()
) -> list[str]:
    """`marked` rows get the benchmark-prompts mark (trained on P3 tasks built from a benchmark)."""
    body = [
        [
            row + (f" {MARK_BENCHMARK_PROMPTS}" if row in marked else ""),
            *(fmt_stat(stats.get(row, {}).get(k), decimals) for k in columns),
        ]
        for row in rows
    ]
    return markdown_table(["setting", *columns.values()], body)


def paper_table(
    rows: Sequence[str], columns: Mapping[str, str], paper: Mapping[str, Mapping[str, float]], decimals: int
) -> list[str]:
    body = [[row, *(fmt(paper.get(row, {}).get(k), decimals) for k in columns)] for row in rows]
    return markdown_table(["setting", *columns.values()], body)


def difference(row: float | None, reference: float | None, decimals: int) -> str:
    return fmt(row - reference, decimals, True) if row is not None and reference is not None else DASH


def delta_table(
    rows: Sequence[str], columns: Mapping[str, str], stats: Stats,
    paper: Mapping[str, Mapping[str, Mapping[str, float]]], sizes: Sequence[str], reference: str, decimals: int,
    draws: Draws | None = None, confidence: float = 0.95, min_items: int = 0,
) -> list[str]:  # fmt: skip
    """Cells `ours [interval] (paper)`: differences of means with their paired bootstrap interval
    (`draws`: per-item draws per setting and metric), ours vs the paper's published rows."""
    body = []
    for row in (r for r in rows if r != reference):
        cells = [row]
        for key in columns:
            ours = delta_cell(stats, row, reference, key, decimals, draws, confidence, min_items, mcnemar=True)
            published = [paper.get(size, {}) for size in sizes]
            theirs = [difference(p.get(row, {}).get(key), p.get(reference, {}).get(key), decimals) for p in published]
            cells.append(f"{ours} ({' / '.join(theirs)})" if sizes else ours)
        body.append(cells)
    return markdown_table(["setting", *columns.values()], body)


Draws = Callable[[str, str], Any]  # (setting, metric) -> bootstrap draws, or None


def delta_cell(
    stats: Stats, row: str, reference: str, key: str, decimals: int, draws: Draws | None = None,
    confidence: float = 0.95, min_items: int = 0, mcnemar: bool = False,
) -> str:  # fmt: skip
    """`row - reference` on `key`: the difference of means, then its paired bootstrap interval, or
    *too few items* below `min_items` shared items (and, with `mcnemar`, the exact McNemar p)."""
    ours_row, ours_ref = stats.get(row, {}).get(key), stats.get(reference, {}).get(key)
    cell = difference(ours_row.mean if ours_row else None, ours_ref.mean if ours_ref else None, decimals)
    if cell == DASH or draws is None:
        return cell
    if (few := too_few_items(draws, [key], min_items)) is not None:
        return f"{cell} [too few items: {few}]"
    cell += interval_text(draws, row, reference, key, decimals, confidence)
    if mcnemar and isinstance(draws, Resampler) and (p := draws.mcnemar(row, reference, key)) is not None:
        cell += f" p={p:.2g}"
    return cell


def interval_text(draws: Any, row: str, reference: str, key: str, decimals: int, confidence: float) -> str:
    if draws(row, key) is None or draws(reference, key) is None:
        return " [no interval]"
    bounds = seeds.widened(lambda v: v(row, key) - v(reference, key), draws, confidence)
    return " " + fmt_interval(*bounds, decimals)


def table_section(
    table: str, rows: Sequence[str], columns: Mapping[str, str], references: Sequence[str], decimals: int,
    stats: Stats, paper: Mapping[str, Any], sizes: Sequence[str], marked: Collection[str] = (),
    draws: Draws | None = None, confidence: float = 0.95, min_items: int = 0,
) -> list[str]:  # fmt: skip
    """One of the paper's tables: this run, the paper's rows per model size, then the deltas."""
    lines = ["**This run** (mean ± std over seeds where a setting has several)", ""]
    lines += [*value_table(rows, columns, stats, decimals, marked), ""]
    if marked:
        lines += [f"{MARK_BENCHMARK_PROMPTS} trained on P3 prompts built from evaluated benchmarks (fetch.p3).", ""]
    for size in sizes:
        lines += [f"**Paper, {SIZE_LABEL[size]}** ({paper[table]['source']})", ""]
        lines += [*paper_table(rows, columns, paper[table][size], decimals), ""]
    names = " / ".join(SIZE_LABEL[s] for s in sizes)
    mcnemar = " p=…" if table == "table1" else ""
    for reference in references:
        lines += [
            f"**Δ vs {reference}**: this run [{confidence:.0%} paired bootstrap interval]{mcnemar}"
            + (f" ({names})" if names else "")
            + ("; p: the exact McNemar test on per-document accuracy, where each setting has one run" * bool(mcnemar))
            + f"; *too few items: n*: fewer than report.min_items ({min_items}) shared items, no interval",
            "",
        ]
        lines += [
            *delta_table(
                rows, columns, stats, paper.get(table, {}), sizes, reference, decimals, draws, confidence, min_items
            ),
            "",
        ]
    return lines


def tables_section(
    stats: Stats, paper: Mapping[str, Any], sizes: Sequence[str], benchmark_prompts: bool = False,
    draws: Draws | None = None, confidence: float = 0.95, min_items: int = 0,
) -> list[str]:  # fmt: skip
    """`benchmark_prompts`: P3 held tasks built from evaluated benchmarks, so every setting with P is
    marked; `draws`: paired per-item bootstrap draws for the Δ cells' intervals."""
    marked = [r for r in TABLE1_ROWS if "P" in r] if benchmark_prompts else []
    common = (stats, paper, sizes, marked, draws, confidence, min_items)
    lines = ["## Table 1: NLP benchmarks (zero-shot accuracy, %) and HumanEval (pass@k, %)", ""]
    lines += table_section("table1", TABLE1_ROWS, TABLE1_COLUMNS, (BASE_ROW, "A"), 2, *common)
    lines += ["## Table 2: FLASK alignment skills (1-5 scores x 20)", ""]
    lines += table_section("table2", TABLE2_ROWS, TABLE2_COLUMNS, ("A",), 1, *common)
    if "flask_avg" in stats.get(BASE_ROW, {}):
        base = fmt_stat(stats[BASE_ROW]["flask_avg"], 1)
        lines += [f"The base model (`{BASE_ROW}`, not in the paper's Table 2) scores FLASK avg {base}.", ""]
    return lines


FACTORIAL_METRICS = {"nlp_avg": "NLP avg (pp)", "pass@1": "HumanEval pass@1 (pp)", "flask_avg": "FLASK avg"}


def factorial_section(
    stats: Stats, draws: Draws | None = None, confidence: float = 0.95, min_items: int = 0
) -> list[str]:
    """Main effects, interactions and Shapley values of the three sources (instmix.report.factorial)."""
    columns = [*factorial.TERMS, *(f"Shapley {f}" for f in factorial.FACTORS)]
    body = []
    for metric, label in FACTORIAL_METRICS.items():
        if not factorial.complete(stats, metric):
            body.append([label, *(DASH for _ in columns)])
            continue
        few = too_few_items(draws, [metric], min_items)
        point = factorial.attribution(lambda s, m=metric: stats[s][m].mean)
        bounds = factorial.intervals(metric, draws if few is None else None, confidence)
        cells = []
        for column in columns:
            interval = fmt_interval(*bounds[column], 2) if bounds else ""
            cells.append(f"{fmt(point[column], 2, True)} {interval}".strip())
        body.append([label + (f" (too few items: {few}, no intervals)" if few is not None else ""), *cells])
    return [
        "## Factorial attribution (beyond the paper)",
        "",
        "none, A, C, P, AC, AP, CP and ACP are a full 2^3 design in the sources: a main effect is the mean of "
        "the settings with the source minus the mean of those without; AxC is how much A's effect changes when C "
        "is added (A's effect with C minus without, averaged over P), AxCxP how much that change changes with P; "
        "the Shapley values (each source's average marginal gain over the orders of adding them) sum to ACP - "
        f"none. Intervals: {confidence:.0%} paired bootstrap over items. Data quantity is confounded with the "
        "design (single sources 20K examples, pairs 40K, ACP 60K at paper scale): the instance-count sweep "
        "below holds the quantity per source fixed.",
        "",
        *markdown_table(["metric", *columns], body),
        "",
    ]


def claims_section(results: Sequence[ClaimResult], params: ReportParams) -> list[str]:
    conf = f"{100 * params.confidence:g} %"
    rows = []
    for r in results:
        interval = DASH if r.interval is None else fmt_interval(*r.interval, r.decimals)
        paper = [r.paper.get("7b", DASH), r.paper.get("13b", DASH)]
        rows.append([r.text, r.measure, fmt(r.delta, r.decimals, True), interval, *paper, f"**{r.mark}**", r.detail])
    header = ["claim", "measured as", "this run", f"{conf} interval", "paper 7B", "paper 13B", "mark", "notes"]
    return [
        "## The paper's claims on this run",
        "",
        *markdown_table(header, rows),
        "",
        f"Intervals: a paired bootstrap ({params.bootstrap_samples:,} resamples, percentile {conf}) over the "
        "items every model shares (NLP documents per task, HumanEval problems, FLASK instances), each metric "
        "recomputed per resample. Where settings have several seeds, the seed-to-seed variance is pooled over "
        "the settings and added to each setting's draws as a normal term widened by t(df)/z for its few "
        "degrees of freedom (df = the sum of seeds - 1): a difference of two settings then has a pooled t "
        "interval on the seeds plus the items' noise (resampling 2-3 seeds covered 86-92 % instead of 95 %; "
        "bench/coverage.py). With one seed per setting the seed variance is unknown, so an interval speaks "
        "about these trained models, not about retraining them. Without per-item files only the seed term "
        "varies. Deltas through a max or min (*best single source*, *lowest gain*, *peaks at 1.5*) are biased "
        "(the max of noisy values reads high), so their intervals are bias-corrected: the draws are moved by "
        "twice their mean's distance from the point estimate (the basic bootstrap's centring). A claim *holds* "
        "when its interval excludes 0 on the claimed side, "
        "is *within noise* when it contains 0, *reversed* when it excludes 0 on the other side, and *too few "
        f"items* when it would hold or be reversed on fewer than {params.min_items} shared items "
        "(`report.min_items`). Without anything to resample only the point estimate speaks (*holds* / *does "
        "not hold*, no interval). *Dips then peaks*: with the ratio points in order, two differences each with "
        "its interval: the first step falls (y[1] - y[0] < 0, the interval shown) and a later point peaks above "
        "the start (max(y[2:]) - y[0] > 0, in the notes); it holds when both hold, is reversed when either is "
        "reversed, and within noise otherwise; it needs at least 3 points. *Peaks at 1.5*: y(1.5) minus the "
        "highest other ratio point (2.0 included). *Plateaus beyond 10K*: the gain per 1K instances up to 10K "
        "per type minus the gain per 1K beyond it (positive: the curve flattens). A sweep claim whose points "
        "were not run names them.",
        "",
    ]


def sweep_section(kind: str, points: Sequence[Point], stats: Stats, notes: Sequence[str]) -> list[str]:
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


TRAINING_COLUMNS = {
    "sft.examples": "examples", "sft.steps": "steps", "sft.tokens": "tokens", "sft.first_loss": "first loss",
    "sft.last_loss": "last loss", "sft.train_loss": "mean loss", "sft.wall_seconds": "wall s",
    "sft.tokens_per_second": "tokens/s",
}  # fmt: skip


def training_cell(key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return DASH
    return f"{value:.3f}" if key.endswith("loss") else f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"


def training_section(runs: Mapping[str, Run]) -> list[str]:
    models = [m for m, r in runs.items() if "sft.steps" in r.raw]  # runs come in report order
    if not models:
        return ["## Training", "", "No training metrics (reports/sft/<model>/metrics.json).", ""]
    body = [[m, *(training_cell(k, runs[m].raw.get(k)) for k in TRAINING_COLUMNS)] for m in models]
    return ["## Training", "", *markdown_table(["model", *TRAINING_COLUMNS.values()], body), ""]
