"""report: tables, claims, bootstrap and plots on metrics files written in the evaluation stages' contract."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pytest
import yaml

from stages.files import write_json
from stages.params import ParamsError, parse
from stages.report import (
    NLP_TASKS,
    PLOT_FILES,
    SKILLS,
    TABLE1_COLUMNS,
    TABLE1_ROWS,
    TABLE2_COLUMNS,
    TABLE2_ROWS,
    Point,
    ReportParams,
    Values,
    bootstrap_means,
    dips_then_peaks,
    evaluate_curve_claim,
    percentile_interval,
    read_paper,
    split_model_id,
    sweep_points,
)
from tests.conftest import REPO, SHARED_DATA, run_stage

PAPER_FILE = REPO / "assets" / "paper_results.yaml"
PAPER_MD = SHARED_DATA.parent / "docs" / "paper.md"
SWEEP = {"ratio-0.5": 0.5, "ratio": 1.0, "ratio-1.5": 1.5}
COUNT = {"count-4": 4, "count": 8}


# ---------------------------------------------------------------------------- contract-shaped fixtures


def nlp_block(accs: Mapping[str, float]) -> dict[str, object]:
    block: dict[str, object] = {t: {"acc": accs[t], "acc_norm": accs[t] + 0.02} for t in NLP_TASKS}
    block["mmlu"] = {"acc": accs["mmlu"]}
    block["avg"] = sum(accs[t] for t in NLP_TASKS) / len(NLP_TASKS)
    return block


def write_model(
    root: Path,
    model: str,
    nlp: Mapping[str, float] | None = None,
    code: tuple[float, float | None] | None = None,
    align: Mapping[str, float] | None = None,
    loss: Iterable[float] | None = None,
) -> None:
    """Write one model's metrics in the contract (fractions for NLP/code, 0-100 for FLASK)."""
    if nlp is not None:
        write_json(
            root / "eval/nlp" / model / "metrics.json",
            {"nlp": nlp_block(nlp), "lm_eval_version": "0.4.13", "limit": 20},
        )
    if code is not None:
        block: dict[str, object] = {
            "pass@1": code[0],
            "n": 10 if code[1] is not None else 1,
            "problems": 8,
            "sandboxed": True,
        }
        if code[1] is not None:
            block["pass@10"] = code[1]
        write_json(root / "eval/code" / model / "metrics.json", {"code": block})
    if align is not None:
        skills = {k: align[k] for k in SKILLS}
        extra = {"avg": sum(skills.values()) / 8, "instances": 12, "parse_failures": 1, "judge": "hf:tiny-judge"}
        write_json(root / "eval/align" / model / "metrics.json", {"align": {**skills, **extra}})
    if loss is not None:
        losses = list(loss)
        live = root / "sft" / model / "live/plots/metrics"
        live.mkdir(parents=True, exist_ok=True)
        (live / "loss.tsv").write_text("step\tloss\n" + "".join(f"{i}\t{v}\n" for i, v in enumerate(losses)))
        epochs = "".join(f"{i}\t{(i + 1) / len(losses)}\n" for i in range(len(losses)))
        (live / "epoch.tsv").write_text("step\tepoch\n" + epochs)
        sft = {"steps": len(losses), "examples": 16, "tokens": 500, "train_loss": float(np.mean(losses))}
        sft |= {"first_loss": losses[0], "last_loss": losses[-1], "wall_seconds": 12.5, "tokens_per_second": 40.0}
        write_json(root / "sft" / model / "metrics.json", sft)


def write_mix(root: Path, setting: str, n: int = 16, **extra: float) -> None:
    letters = {"A": "alpaca", "C": "codealpaca", "P": "p3"}
    if setting in SWEEP:
        per_source = {"alpaca": n, "codealpaca": round(extra["ratio"] * n / 2), "p3": round(extra["ratio"] * n / 2)}
    elif setting in COUNT:
        per_source = dict.fromkeys(letters.values(), int(extra["per_type"]))
    else:
        per_source = {letters[c]: n for c in setting}
    write_json(
        root / "mix" / f"{setting}.metrics.json",
        {"records": sum(per_source.values()), "records_per_source": per_source, **extra},
    )


def plausible(setting: str, seed: int = 0) -> dict[str, object]:
    """Metrics of the size a 135M model gets, shaped after the paper's table (hand-made numbers)."""
    rng = np.random.default_rng([seed, sum(map(ord, setting))])
    base = {"arc_challenge": 0.28, "winogrande": 0.52, "piqa": 0.64, "mmlu": 0.25, "race": 0.30, "hellaswag": 0.38}
    bump = {"A": 0.010, "C": 0.005, "P": 0.020, "AC": 0.008, "AP": 0.015, "CP": 0.018, "ACP": 0.014}.get(setting, 0.0)
    if setting.startswith("ratio") or setting.startswith("count"):
        bump = 0.01
    nlp = {k: v + bump + rng.normal(0, 0.004) for k, v in base.items()}
    code1 = {"none": 0.02, "A": 0.018, "C": 0.04, "P": 0.005, "AC": 0.045, "AP": 0.02, "CP": 0.035, "ACP": 0.04}.get(
        setting, 0.03
    )
    flask = {"A": 45.0, "C": 40.0, "P": 30.0, "AC": 46.0, "AP": 42.0, "CP": 36.0, "ACP": 44.0}.get(setting, 38.0)
    align = {k: flask + 8 * np.sin(i) + rng.normal(0, 0.5) for i, k in enumerate(SKILLS)}
    steps = 6 if len(setting) == 1 or setting == "none" else 12
    loss = [3.2 - 1.2 * (1 - np.exp(-i / 4)) + rng.normal(0, 0.08) for i in range(steps)]
    return {"nlp": nlp, "code": (code1 + rng.normal(0, 0.003), code1 * 2), "align": align, "loss": loss}


def build_fixture(root: Path, seeds: Iterable[int | None] = (None,), sweeps: bool = True) -> Path:
    """reports/eval, reports/sft and data/mix for none, A … ACP and the sweep settings."""
    settings = list(TABLE1_ROWS) + (list(SWEEP) + list(COUNT) if sweeps else [])
    for setting in settings:
        for seed in seeds:
            model = setting if seed is None else f"{setting}-s{seed}"
            m = plausible(setting, seed or 0)
            write_model(root, model, m["nlp"], m["code"], None if setting == "none" else m["align"],
                        None if setting == "none" else m["loss"])  # fmt: skip
        if setting != "none":
            extra = (
                {"ratio": SWEEP[setting]}
                if setting in SWEEP
                else {"per_type": COUNT[setting]}
                if setting in COUNT
                else {}
            )
            write_mix(root, setting, **extra)
    return root


def run_report(root: Path, workdir: Path, **report: object) -> tuple[str, str]:
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["report"] = {"bootstrap_samples": 2000, **report}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run_stage("report", root / "eval", root / "sft", root / "mix", PAPER_FILE, root / "out", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return (root / "out/results.md").read_text(), result.stdout


def md_table(markdown: str, title: str, after: str = "") -> list[list[str]]:
    """The rows (header first) of the markdown table that follows a line starting with `title`
    (the first such line after one starting with `after`)."""
    lines = markdown.split("\n")
    begin = next(i for i, line in enumerate(lines) if line.startswith(after))
    start = next(i for i, line in enumerate(lines) if i >= begin and line.startswith(title))
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows:
            break
    return [rows[0], *rows[2:]]


# ---------------------------------------------------------------------------- the paper's numbers


def test_paper_numbers_spot_checks() -> None:
    paper = read_paper(PAPER_FILE)
    t1, t2 = paper["table1"], paper["table2"]
    assert t1["7b"]["none"]["arc_challenge"] == 43.09 and t1["7b"]["P"]["nlp_avg"] == 58.15
    assert t1["7b"]["AC"]["pass@10"] == 25.0 and t1["13b"]["ACP"]["pass@10"] == 32.93
    assert t1["13b"]["P"]["pass@1"] == 0.30 and t1["13b"]["CP"]["winogrande"] == 74.59
    assert t2["7b"]["C"]["conciseness"] == 78.4 and t2["13b"]["AC"]["flask_avg"] == 65.6
    assert t2["7b"]["P"]["factuality"] == 40.0 and "none" not in t2["7b"]
    assert "2312.10793" in t1["source"] and "Table 1" in t1["source"] and "Table 2" in t2["source"]
    for size in ("7b", "13b"):  # NLP avg = mean of the six, as published (2-decimal rounding)
        for row, values in t1[size].items():
            assert abs(np.mean([values[t] for t in NLP_TASKS]) - values["nlp_avg"]) < 0.006, (size, row)


def test_paper_numbers_match_every_cell_of_paper_md() -> None:
    if not PAPER_MD.is_file():
        pytest.skip("../shared/docs/paper.md is not present")
    text, paper, cells = PAPER_MD.read_text(), read_paper(PAPER_FILE), 0
    size = None
    for line in text.split("### Table 1")[1].split("### Table 2")[0].splitlines():
        size = "7b" if "LLaMA-2-7B" in line else "13b" if "LLaMA-2-13B" in line else size
        if match := re.match(r"\| (None|A|C|P|AC|AP|CP|ACP) \|(.*)\|$", line):
            row = "none" if match.group(1) == "None" else match.group(1)
            published = [float(re.match(r"[\d.]+", c.strip()).group()) for c in match.group(2).split("|")]
            assert published == list(paper["table1"][size][row].values()), (size, row)
            cells += len(published)
    for match in re.finditer(r"^\| (7B|13B) \| (\w+) \|(.*)\|$", text, re.MULTILINE):
        published = [float(c) for c in match.group(3).split("|")]
        assert published == list(paper["table2"][match.group(1).lower()][match.group(2)].values())
        cells += len(published)
    assert cells == 16 * 9 + 14 * 9


def test_claims_computed_on_the_paper_tables_all_hold(tmp_path: Path, workdir: Path) -> None:
    """The paper's own numbers, written as our metrics, make every table claim hold with the paper's deltas."""
    paper = read_paper(PAPER_FILE)
    for row in TABLE1_ROWS:
        t1 = paper["table1"]["7b"][row]
        write_model(tmp_path, row, {t: t1[t] / 100 for t in NLP_TASKS}, (t1["pass@1"] / 100, t1["pass@10"] / 100),
                    paper["table2"]["7b"].get(row))  # fmt: skip
    markdown, _ = run_report(tmp_path, workdir)
    claims = {row[0]: row for row in md_table(markdown, "## The paper's claims")[1:]}
    expected = {  # from docs/paper.md: AC - A = +0.6, adding P = -2.8 (7B)
        "P gives the best NLP average among single sources": "+1.24",
        "C gives the best HumanEval among single sources": "+2.74",
        "Adding P lowers alignment": "-2.8",
        "Adding C to A raises alignment": "+0.6",
    }
    for text, delta in expected.items():
        row = claims[text]
        assert row[2] == delta and row[4] == f"{delta} (holds)" and row[6] == "**holds**" and "single run" in row[7]
    assert claims["Adding P lowers alignment"][5] == "-3.6 (holds)"  # 13B, as the paper says
    assert claims["Adding C to A raises alignment"][5] == "+1.6 (holds)"


# ---------------------------------------------------------------------------- tables and claims


def test_tables_have_the_paper_layout_and_numbers(tmp_path: Path, workdir: Path) -> None:
    build_fixture(tmp_path)
    markdown, stdout = run_report(tmp_path, workdir, paper_size="both")
    ours = md_table(markdown, "**This run** (mean")
    assert ours[0] == ["setting", *TABLE1_COLUMNS.values()]
    assert [r[0] for r in ours[1:]] == list(TABLE1_ROWS)
    a = json.loads((tmp_path / "eval/nlp/A/metrics.json").read_text())["nlp"]
    assert ours[2][1] == f"{100 * a['arc_challenge']['acc']:.2f}" and ours[2][7] == f"{100 * a['avg']:.2f}"
    p7 = md_table(markdown, "**Paper, LLaMA-2-7B** (arXiv 2312.10793, Table 1")
    assert p7[0] == ours[0] and p7[1][1:] == [
        "43.09",
        "69.53",
        "77.97",
        "40.81",
        "39.23",
        "57.20",
        "54.64",
        "13.72",
        "21.34",
    ]
    assert p7[5][9] == "25.00"  # AC pass@10, printed "25" in the paper
    p13 = md_table(markdown, "**Paper, LLaMA-2-13B** (arXiv 2312.10793, Table 1")
    assert p13[8][8:] == ["20.24", "32.93"]
    flask = md_table(markdown, "**This run**", after="## Table 2")
    assert flask[0] == ["setting", *TABLE2_COLUMNS.values()] and [r[0] for r in flask[1:]] == list(TABLE2_ROWS)
    f13 = md_table(markdown, "**Paper, LLaMA-2-13B** (arXiv 2312.10793, Table 2")
    assert f13[4][1:] == ["55.6", "61.0", "66.6", "61.2", "51.4", "54.0", "88.4", "86.6", "65.6"]  # AC
    vs_none = md_table(markdown, "**Δ vs none**")
    assert [r[0] for r in vs_none[1:]] == list(TABLE1_ROWS[1:])
    assert vs_none[1][1].endswith("(+4.69 / +5.55)")  # A - none on ARC, 7B / 13B
    vs_a = md_table(markdown, "**Δ vs A**: this run (LLaMA-2-7B / LLaMA-2-13B)")
    assert vs_a[3][7].endswith("(+1.24 / +0.16)")  # P - A, NLP avg
    header = {r[0]: r[1] for r in md_table(markdown, "Generated by")[1:]}
    assert header["profile"].startswith("`demo` (closest match") and "changed: fetch.alpaca.path=/" in header["profile"]
    assert header["records per source"] == "16"
    assert header["base model"].startswith("SmolLM2-135M") and "ACP 48" in header["mixture sizes (records)"]
    assert "hf:tiny-judge, 12 instances" in header["FLASK judge"] and "limit 20 items" in header["NLP benchmarks"]
    assert "- FLASK judge hf:tiny-judge instead of GPT-4-0613" in markdown and "report: 13 models, 5 plots" in stdout
    with open(tmp_path / "out/results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["model"] for r in rows] == [*TABLE1_ROWS, "ratio", "ratio-0.5", "ratio-1.5", "count", "count-4"]
    assert float(rows[1]["nlp.arc_challenge.acc"]) == a["arc_challenge"]["acc"]
    assert rows[0]["align.avg"] == "" and rows[9]["mix.ratio"] == "0.5" and rows[12]["mix.per_type"] == "4"
    for name in PLOT_FILES:
        assert (tmp_path / "out/plots" / name).stat().st_size > 10_000, name
    assert set(json.loads((tmp_path / "out/claims.json").read_text())["claims"]) >= {"p_best_nlp", "c_raises_alignment"}


def claim_rows(markdown: str) -> dict[str, list[str]]:
    return {row[0]: row for row in md_table(markdown, "## The paper's claims")[1:]}


def test_claim_marks_follow_the_table(tmp_path: Path, workdir: Path) -> None:
    """Hand-made metrics where every claim holds, then the same with each claim broken."""
    nlp = {s: dict.fromkeys(NLP_TASKS, 0.30) for s in TABLE1_ROWS}
    nlp["P"] = dict.fromkeys(NLP_TASKS, 0.36)
    code = {s: (0.02, None) for s in TABLE1_ROWS} | {"C": (0.05, None)}
    flask = {"A": 50.0, "C": 45.0, "P": 35.0, "AC": 52.0, "AP": 47.0, "CP": 40.0, "ACP": 49.0}
    ratio = {"A": 0.30, "ratio-0.5": 0.28, "ratio": 0.31, "ratio-1.5": 0.33, "ACP": 0.32}  # NLP avg dips, then peaks

    def write(root: Path, flask: Mapping[str, float], nlp: Mapping[str, Mapping[str, float]]) -> None:
        for s in TABLE1_ROWS:
            acc = nlp[s] if s not in ratio or s == "A" else dict.fromkeys(NLP_TASKS, ratio[s])
            write_model(root, s, acc, code[s], None if s == "none" else dict.fromkeys(SKILLS, flask[s]))
        for s, x in SWEEP.items():
            write_model(root, s, dict.fromkeys(NLP_TASKS, ratio[s]), (0.03, None))
            write_mix(root, s, ratio=x)

    write(tmp_path / "holds", flask, nlp)
    rows = claim_rows(run_report(tmp_path / "holds", workdir)[0])
    assert [r[6] for r in rows.values()] == ["**holds**"] * 5 + ["**does not hold**"], rows
    assert rows["P gives the best NLP average among single sources"][2] == "+6.00"
    assert rows["Adding P lowers alignment"][2] == "-4.0" and rows["Adding C to A raises alignment"][2] == "+2.0"
    curve = rows["NLP avg first dips, then peaks as the specialised/general ratio grows"]
    assert "lowest at 0.5, highest at 1.5, then down to 32.00 at 2" in curve[7]

    broken_nlp = {**nlp, "A": dict.fromkeys(NLP_TASKS, 0.40)}  # A now beats P
    broken_flask = {**flask, "AC": 49.0, "AP": 53.0, "CP": 46.0}  # adding C or P helps the other way
    write(tmp_path / "fails", broken_flask, broken_nlp)
    rows = claim_rows(run_report(tmp_path / "fails", workdir)[0])
    marks = {k: r[6] for k, r in rows.items()}
    assert marks["P gives the best NLP average among single sources"] == "**does not hold**"
    assert marks["C gives the best HumanEval among single sources"] == "**holds**"
    assert marks["Adding P lowers alignment"] == "**does not hold**" and rows["Adding P lowers alignment"][2] == "+2.0"
    assert marks["Adding C to A raises alignment"] == "**does not hold**"
    # A (ratio 0) at 40 is now the highest point: the curve never rises above its start.
    assert marks["NLP avg first dips, then peaks as the specialised/general ratio grows"] == "**does not hold**"


def test_missing_families_show_dashes_and_skip_plots(tmp_path: Path, workdir: Path) -> None:
    for s in ("none", "A", "P"):  # NLP only, no sweeps, no code, no FLASK, no training
        write_model(tmp_path, s, dict.fromkeys(NLP_TASKS, 0.3))
    markdown, _ = run_report(tmp_path, workdir)
    ours = md_table(markdown, "**This run** (mean")
    assert ours[2][1] == "30.00" and ours[3][1:] == ["—"] * 9  # C: nothing
    assert ours[1][8:] == ["—", "—"]  # no HumanEval
    rows = claim_rows(markdown)
    assert rows["P gives the best NLP average among single sources"][6] == "**not evaluable**"
    assert "missing: C NLP avg" in rows["P gives the best NLP average among single sources"][7]
    assert (
        rows["HumanEval pass@1 first dips, then peaks as the specialised/general ratio grows"][6]
        == "**not enough points**"
    )
    for name in ("ratio_sweep.png", "count_sweep.png", "flask_profile.png", "loss_curves.png"):
        assert f"(`plots/{name}`): not drawn" in markdown and not (tmp_path / "out/plots" / name).exists()
    assert (tmp_path / "out/plots/benchmarks.png").exists()
    assert "FLASK: no metrics for A, C, P, AC, AP, CP, ACP" in markdown


def test_nothing_evaluated_still_writes_a_report(tmp_path: Path, workdir: Path) -> None:
    markdown, _ = run_report(tmp_path, workdir)
    assert markdown.count("not drawn") == len(PLOT_FILES) and "**not evaluable**" in markdown
    assert (tmp_path / "out/results.csv").read_text() == "model,setting,seed\n"


# ---------------------------------------------------------------------------- seeds and bootstrap


def test_model_ids_split_into_setting_and_seed() -> None:
    assert split_model_id("AC-s1") == ("AC", 1) and split_model_id("ratio-0.5-s12") == ("ratio-0.5", 12)
    assert split_model_id("ratio-0.5") == ("ratio-0.5", None) and split_model_id("none") == ("none", None)


def test_bootstrap_interval_matches_a_known_spread() -> None:
    """Two settings of 40 seeds with sample std 2 each: the delta's interval is mean +- 1.96 * sqrt(2 * 4 / 40)."""
    n, sd = 40, 2.0
    z = np.random.default_rng(1).standard_normal(n)
    z = (z - z.mean()) / z.std(ddof=1)  # exactly mean 0, sample std 1
    reps = {"A": {"m": list(10 + sd * z)}, "B": {"m": list(13 + sd * z[::-1])}}
    values = Values(reps, 20000, seed=0)
    low, high = percentile_interval(values("B", "m") - values("A", "m"), 0.95)
    half = 1.96 * np.sqrt(2 * sd**2 * (n - 1) / n / n)  # bootstrap uses the plug-in (ddof 0) variance
    assert abs((low + high) / 2 - 3.0) < 0.05
    assert abs((high - low) / 2 - half) / half < 0.05, (low, high, half)
    assert bootstrap_means([4.0], 5, np.random.default_rng(0)).tolist() == [4.0] * 5


def test_seeds_give_mean_std_and_within_noise(tmp_path: Path, workdir: Path) -> None:
    # P beats A and C by ~0.3 points on average, with a seed-to-seed spread of ~2 points: noise.
    spread = {1: -2.0, 2: 0.0, 3: 2.2}
    for seed, offset in spread.items():
        for s in ("A", "C", "P"):
            acc = 0.30 + (0.002 if s == "P" else 0.0) + (offset / 100 if s == "P" else 0.0)
            write_model(tmp_path, f"{s}-s{seed}", dict.fromkeys(NLP_TASKS, acc), (0.05 if s == "C" else 0.01, None))
    markdown, _ = run_report(tmp_path, workdir)
    ours = md_table(markdown, "**This run** (mean")
    p_avg = ours[4][7]
    assert p_avg == f"{np.mean([28.2, 30.2, 32.4]):.2f} ± {np.std([28.2, 30.2, 32.4], ddof=1):.2f}", p_avg
    rows = claim_rows(markdown)
    p_best = rows["P gives the best NLP average among single sources"]
    assert p_best[6] == "**within noise**" and "point estimate holds" in p_best[7]
    low, high = (float(v) for v in p_best[3].strip("[]").split(","))
    assert low < 0 < high
    code = rows["C gives the best HumanEval among single sources"]  # identical seeds: a zero-width interval
    assert code[6] == "**holds**" and code[3] == "[+4.00, +4.00]"
    assert "up to 3 seeds per setting" in markdown


# ---------------------------------------------------------------------------- sweeps


def test_dips_then_peaks_definition() -> None:
    assert dips_then_peaks([5, 4, 6]) == (True, 1, 2)
    assert dips_then_peaks([5, 4, 3, 6, 5.5]) == (True, 2, 3)  # the paper's shape: peak at 1.5, dip at 2
    assert not dips_then_peaks([5, 6, 4, 7])[0]  # rises first
    assert not dips_then_peaks([5, 4, 3, 4, 4.5])[0]  # never back above the start
    assert not dips_then_peaks([5, 4, 6, 3])[0]  # lowest point last
    with pytest.raises(ValueError):
        dips_then_peaks([1, 2])


def test_sweep_points_use_mix_metrics_and_table_anchors(tmp_path: Path) -> None:
    mix = {"ratio": {"ratio": 1.0}, "ratio-0.5": {"ratio": 0.5}, "ratio-2.0": {"ratio": 2.0}, "ratio-x": {}}
    mix |= {"ACP": {"records_per_source": {"alpaca": 16, "codealpaca": 16, "p3": 16}}, "count-4": {"per_type": 4}}
    settings = {"A", "ACP", "none", "ratio", "ratio-0.5", "ratio-2.0", "ratio-x", "count-4"}
    points, notes = sweep_points("ratio", settings, mix)
    assert [(p.x, p.setting) for p in points] == [(0.0, "A"), (0.5, "ratio-0.5"), (1.0, "ratio"), (2.0, "ratio-2.0")]
    assert any("ratio-x: no `ratio`" in n for n in notes)
    points, _ = sweep_points("count", settings, mix)
    assert [(p.x, p.setting) for p in points] == [(0.0, "none"), (4.0, "count-4"), (16.0, "ACP")]
    two = [Point(0.0, "A", "anchor: A"), Point(1.0, "ratio", "sweep")]
    result = evaluate_curve_claim(
        "nlp_avg", two, {"A": {"nlp_avg": [1.0]}, "ratio": {"nlp_avg": [0.5]}}, ReportParams()
    )
    assert result.mark == "not enough points"


# ---------------------------------------------------------------------------- plots and params


def test_plots_are_byte_identical_for_the_same_metrics(tmp_path: Path, workdir: Path) -> None:
    build_fixture(tmp_path / "a", seeds=(1, 2))
    run_report(tmp_path / "a", workdir)
    first = {n: hashlib.sha256((tmp_path / "a/out/plots" / n).read_bytes()).hexdigest() for n in PLOT_FILES}
    other = {f: (tmp_path / "a/out" / f).read_bytes() for f in ("results.md", "results.csv", "claims.json")}
    run_report(tmp_path / "a", workdir)
    again = {n: hashlib.sha256((tmp_path / "a/out/plots" / n).read_bytes()).hexdigest() for n in PLOT_FILES}
    assert first == again
    assert other == {f: (tmp_path / "a/out" / f).read_bytes() for f in other}
    assert b"Matplotlib" not in (tmp_path / "a/out/plots/benchmarks.png").read_bytes()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("paper_size", "70b", "one of 7b, 13b, both"), ("bootstrap_samples", 10, "an integer >= 100"),
     ("confidence", 1.0, "a number in [0.5, 1)")],
)  # fmt: skip
def test_bad_params_are_refused(key: str, value: object, message: str) -> None:
    with pytest.raises(ParamsError, match=re.escape(message)):
        parse(ReportParams, {key: value}, "report")


def test_bad_params_stop_the_stage_with_one_line(tmp_path: Path, workdir: Path) -> None:
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["report"] = {"paper_size": "70b"}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_stage(
        "report", tmp_path / "eval", tmp_path / "sft", tmp_path / "mix", PAPER_FILE, tmp_path / "out", cwd=workdir
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "report.paper_size='70b'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_broken_metrics_file_is_named(tmp_path: Path, workdir: Path) -> None:
    (tmp_path / "eval/code/A").mkdir(parents=True)
    (tmp_path / "eval/code/A/metrics.json").write_text('{"code": {"pass@1": 0.1')
    params = yaml.safe_load((workdir / "params.yaml").read_text()) | {"report": {}}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_stage(
        "report", tmp_path / "eval", tmp_path / "sft", tmp_path / "mix", PAPER_FILE, tmp_path / "out", cwd=workdir
    )
    assert result.returncode == 2 and "eval/code/A/metrics.json" in result.stderr
