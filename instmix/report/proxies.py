"""Continuous twins of the paper's claims, the positive controls, and how often a continuous metric
orders two runs as its accuracy does (instmix.report.continuous has the keys).

- A *twin* is a paper claim measured on its benchmark's continuous proxy (NLP accuracy -> p(gold),
  HumanEval -> the canonical solution's bits per byte, FLASK -> the reference answer's bits per
  byte). On a lower-is-better proxy the claim's maxima become minima and its sign flips.
- A *control* must hold if training works at all: each single-source model lowers the held-out
  loss of its own source below the base model's, and on each source's held-out set the model trained
  on that source alone is the best of the three ("diagonal dominance").
- *Agreement* (DataDecide, arXiv 2504.11393): over every pair of trained runs, the share of pairs
  that a continuous metric orders as the accuracy does, and Kendall's tau-b.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from instmix.core.vocab import BASE_ROW, LETTERS, TASKS
from instmix.report.claims import ClaimResult, DeltaClaim
from instmix.report.continuous import HELDOUT, LABELS, TWIN, lower_is_better
from instmix.report.layout import DASH, METRIC_NAMES, TABLE1_ROWS
from instmix.report.params import ReportParams
from instmix.report.stats import pairwise_agreement
from instmix.report.tables import Stats, fmt, fmt_interval, markdown_table, table_section


def metrics_of(claim: DeltaClaim) -> set[str]:
    """The metric keys a claim's delta reads."""
    seen: set[str] = set()

    def record(setting: str, key: str) -> float:
        seen.add(key)
        return 0.0

    claim.delta(record)
    return seen


def twin(claim: DeltaClaim) -> DeltaClaim | None:
    """The claim on its metric's continuous proxy, or None when it reads no single benchmark."""
    keys = metrics_of(claim)
    proxies = {TWIN.get(k) for k in keys}
    if len(proxies) != 1 or None in proxies:
        return None
    proxy = proxies.pop()
    assert proxy is not None
    if lower_is_better(proxy):  # negate the values so max stays "best", then negate the delta back

        def delta(v: Callable[[str, str], Any]) -> Any:
            return -claim.delta(lambda s, k: -v(s, TWIN.get(k, k)))

        sign, flipped = -claim.sign, "; lower is better, so the claimed sign flips"
    else:

        def delta(v: Callable[[str, str], Any]) -> Any:
            return claim.delta(lambda s, k: v(s, TWIN.get(k, k)))

        sign, flipped = claim.sign, ""
    return replace(
        claim, id=f"{claim.id}_proxy", text=f"{claim.text} (proxy)", sign=sign, delta=delta,
        measure=f"the claim's delta on {LABELS[proxy]}{flipped}", decimals=3 if proxy.startswith("bpb") else 2,
    )  # fmt: skip


def twins(claims: Sequence[DeltaClaim]) -> list[DeltaClaim]:
    """One twin per distinct delta: pass@1's and pass@10's claims share the solution's bits per byte,
    so the second twin, computing the same thing, is left out."""
    out: dict[float, DeltaClaim] = {}
    for claim in claims:
        if (t := twin(claim)) is not None:
            fingerprint = float(t.delta(lambda s, k: float(zlib.crc32(f"{s}|{k}".encode()) % 100003)))
            out.setdefault(fingerprint, t)
    return list(out.values())


def controls() -> list[DeltaClaim]:
    """Per source: its own model beats the base model, and beats the other single sources, on its held-out set."""
    out = []
    for letter, source in LETTERS.items():
        key, (a, b) = HELDOUT[source], (o for o in LETTERS if o != letter)
        own = f"{letter} - {BASE_ROW}, {LABELS[key]}"
        out.append(DeltaClaim(
            f"control_{letter}_beats_base", f"{letter} lowers the held-out loss of its own source ({source})", own,
            -1, lambda v, s=letter, k=key: v(s, k) - v(BASE_ROW, k), 3,
        ))  # fmt: skip
        out.append(DeltaClaim(
            f"control_{letter}_diagonal", f"On {source}'s held-out set, {letter} is the best single source",
            f"{letter} - min({a}, {b}), {LABELS[key]}", -1,
            lambda v, s=letter, k=key, o=(a, b): v(s, k) - np.minimum(v(o[0], k), v(o[1], k)), 3, True,
        ))  # fmt: skip
    return out


AGREEMENT = {
    **{t: (f"p_gold:{t}", f"bpb_gold:{t}") for t in TASKS},
    "nlp_avg": ("p_gold:avg", "bpb_gold:avg"),
    "pass@1": ("bpb:code",),
    "flask_avg": ("bpb:align",),
}
"""Each accuracy-like metric, and the continuous metrics compared with it."""


def agreement_rows(values: Mapping[str, Mapping[str, float]]) -> list[list[str]]:
    """[accuracy, continuous metric, agreement, Kendall tau-b, pairs] over the runs that have both."""
    rows = []
    for accuracy, proxies in AGREEMENT.items():
        for proxy in proxies:
            models = [m for m, v in values.items() if accuracy in v and proxy in v]
            sign = -1.0 if lower_is_better(proxy) else 1.0
            found = pairwise_agreement([values[m][accuracy] for m in models], [sign * values[m][proxy] for m in models])
            if found is None:
                continue
            share, tau, pairs = found
            shown = [DASH if share is None else f"{share:.2f}", DASH if tau is None else f"{tau:+.2f}", str(pairs)]
            rows.append([METRIC_NAMES.get(accuracy, accuracy), LABELS[proxy], *shown])
    return rows


def claims_table(results: Sequence[ClaimResult], confidence: float) -> list[str]:
    rows = []
    for r in results:
        interval = DASH if r.interval is None else fmt_interval(*r.interval, r.decimals)
        rows.append([r.text, r.measure, fmt(r.delta, r.decimals, True), interval, f"**{r.mark}**", r.detail])
    header = ["claim", "measured as", "this run", f"{confidence:.0%} interval", "mark", "notes"]
    return [*markdown_table(header, rows), ""]


def sections(
    stats: Stats, draws: Any, params: ReportParams, controls_found: Sequence[ClaimResult],
    twins_found: Sequence[ClaimResult], values: Mapping[str, Mapping[str, float]],
) -> list[str]:  # fmt: skip
    """The report's continuous part: tables with Δ intervals, held-out losses, controls, twins, agreement."""
    present = {k for s in stats.values() for k in s}
    common = (stats, {}, (), (), draws, params.confidence, params.min_items)
    lines = [
        "## Continuous metrics (proxies beside Tables 1 and 2)",
        "",
        "From the same evaluations, no second pass: p(gold) is the gold choice's probability normalised over "
        "the choices (%), gold bpb the gold continuation's bits per UTF-8 byte; HumanEval solution bpb and "
        "FLASK reference bpb are the canonical solution's and the reference answer's bits per byte after the "
        "prompt each model is evaluated with (eval_lik). Bits per byte: lower is better. Small models sit at "
        "chance on accuracy whatever they were tuned on; these move with training (DataDecide, arXiv "
        "2504.11393), so they are *proxies*: a proxy's effect is not the benchmark's.",
        "",
    ]
    p_gold = {k: LABELS[k] for k in (*(f"p_gold:{t}" for t in TASKS), "p_gold:avg") if k in present}
    bpb = {k: LABELS[k] for k in ("bpb_gold:avg", "bpb:code", "bpb:align") if k in present}
    if not p_gold and not bpb:
        lines += ["No continuous benchmark metrics (eval_nlp with p_gold, eval_lik's code and align sets).", ""]
    if p_gold:
        lines += table_section("continuous", TABLE1_ROWS, p_gold, (BASE_ROW, "A"), 2, *common)
    if bpb:
        lines += table_section("continuous", TABLE1_ROWS, bpb, (BASE_ROW, "A"), 3, *common)
    heldout = {k: LABELS[k] for k in (*HELDOUT.values(), "bpb:heldout:avg") if k in present}
    if heldout:
        lines += [
            "## Held-out loss per source",
            "",
            "Bits per byte of each source's held-out records (heldout@<source>: never in its training sample) "
            "under the training template, rows = models, columns = sources (plot: `plots/heldout_loss.png`).",
            "",
            *table_section("heldout", TABLE1_ROWS, heldout, (BASE_ROW,), 3, *common),
        ]
    lines += [
        "## Positive controls",
        "",
        "Effects that must hold if the machinery works (not claims of the paper): each single-source model "
        "predicts its own source's held-out records better than the base model, and better than the other "
        "single-source models do.",
        "",
        *claims_table(controls_found, params.confidence),
        "## Proxy claims (the paper's claims on continuous proxies)",
        "",
        *claims_table(twins_found, params.confidence),
        "## Agreement of continuous metrics with accuracy",
        "",
        "Over every pair of trained runs: the share of pairs a continuous metric orders as the accuracy does "
        "(pairs tied in either left out), Kendall's tau-b, and the pairs compared (DataDecide's decision "
        "agreement). Bits per byte are negated, so agreement means lower bpb with higher accuracy.",
        "",
    ]
    rows = agreement_rows(values)
    header = ["accuracy", "continuous metric", "agreement", "tau-b", "pairs"]
    lines += [*markdown_table(header, rows), ""] if rows else ["Fewer than two trained runs with both metrics.", ""]
    return lines
