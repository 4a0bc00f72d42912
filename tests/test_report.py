"""report: shared builders of contract-shaped artifact trees (used by tests/test_report_*.py), and
checks that span the report package: its params, and that it declares no vocabulary of its own."""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pytest
import yaml

from instmix.core.files import write_json, write_jsonl
from instmix.core.params import ParamsError, parse
from instmix.core.vocab import BASE, BASE_ROW, LETTERS, SETTINGS, SKILLS, SOURCES, TABLE_SETTINGS, TASKS, model_id
from instmix.report.layout import TABLE1_ROWS
from instmix.report.params import ReportParams
from tests.conftest import REPO, run_stage

PAPER_FILE = REPO / "assets" / "paper_results.yaml"
SETUP_FILE = REPO / "assets" / "paper_setup.yaml"
SWEEP = {"ratio-0.5": 0.5, "ratio": 1.0, "ratio-1.5": 1.5}
COUNT = {"count-4": 4, "count": 8}
NLP_PARAMS = {"tasks": list(TASKS), "limit": 20, "batch_size": 8, "device": "cpu", "dtype": "float32"}
CODE_PARAMS = {"n_samples": 10, "temperature": 0.8, "top_p": 0.95, "limit": 8, "execute": True, "seed": 0}
JUDGE_PARAMS = {"backend": "hf", "model": "tiny-judge", "temperature": 0.0, "max_tokens": 256}
SFT_PARAMS = {"epochs": 1, "lr": 1e-4, "global_batch": 8, "max_length": 512, "template": "paper", "lora": None}


# ---------------------------------------------------------------------------- contract-shaped artifacts


def model_of(setting: str, seed: int) -> str:
    """The model id of a setting trained with `seed` (the base row is the untuned model `base`)."""
    return BASE if setting == BASE_ROW else model_id(setting, seed)


def nlp_block(accs: Mapping[str, float]) -> dict[str, object]:
    """With p_gold (a little above the accuracy) and bpb_gold (falling as it rises), as eval_nlp writes them."""
    block: dict[str, object] = {t: {"acc": accs[t], "acc_norm": accs[t] + 0.02, "n": 20} for t in TASKS}
    block["mmlu"] = {"acc": accs["mmlu"], "n": 20}
    for t in TASKS:
        block[t] |= {"p_gold": accs[t] + 0.01, "bpb_gold": 2.0 - accs[t]}  # type: ignore[operator]
    block["avg"] = sum(accs[t] for t in TASKS) / len(TASKS)
    block["p_gold_avg"], block["bpb_gold_avg"] = block["avg"] + 0.01, 2.0 - block["avg"]  # type: ignore[operator]
    return block


def write_model(
    root: Path,
    model: str,
    nlp: Mapping[str, float] | None = None,
    code: tuple[float, float | None] | None = None,
    align: Mapping[str, float] | None = None,
    loss: Iterable[float] | None = None,
    sft: Mapping[str, object] | None = None,
) -> None:
    """One model's metrics under root/reports in the contract (fractions for NLP/code, 0-100 for FLASK)."""
    reports = root / "reports"
    if nlp is not None:
        metrics = {"nlp": nlp_block(nlp), "lm_eval_version": "0.4.13", "params": NLP_PARAMS}
        write_json(reports / "eval/nlp" / model / "metrics.json", metrics)
    if code is not None:
        block: dict[str, object] = {"pass@1": code[0], "n": 10 if code[1] is not None else 1, "problems": 8}
        block |= {"sandboxed": True} | ({"pass@10": code[1]} if code[1] is not None else {})
        write_json(reports / "eval/code" / model / "metrics.json", {"code": block, "params": CODE_PARAMS})
    if align is not None:
        skills = {k: align[k] for k in SKILLS}
        extra = {"avg": sum(skills.values()) / 8, "instances": 12, "parse_failures": 1, "judge": "hf:tiny-judge"}
        write_json(reports / "eval/align" / model / "metrics.json", {"align": skills | extra, "params": JUDGE_PARAMS})
        answers = {"instances": 12, "empty": 0, "params": {"limit": 12, "max_new_tokens": 64}}
        write_json(reports / "eval/align" / model / "answers.metrics.json", answers)
    if loss is not None:
        losses = list(loss)
        live = reports / "sft" / model / "live/plots/metrics"
        live.mkdir(parents=True, exist_ok=True)
        (live / "loss.tsv").write_text("step\tloss\n" + "".join(f"{i}\t{v}\n" for i, v in enumerate(losses)))
        epochs = "".join(f"{i}\t{(i + 1) / len(losses)}\n" for i in range(len(losses)))
        (live / "epoch.tsv").write_text("step\tepoch\n" + epochs)
        metrics = {"steps": len(losses), "examples": 16, "tokens": 500, "train_loss": float(np.mean(losses))}
        metrics |= {"first_loss": losses[0], "last_loss": losses[-1], "wall_seconds": 12.5, "tokens_per_second": 40.0}
        write_json(reports / "sft" / model / "metrics.json", metrics | {"params": {**SFT_PARAMS, **(sft or {})}})


def write_lik(root: Path, model: str, bpb: Mapping[str, float], records: int = 40, seed: int = 0) -> None:
    """eval_lik's files: per held-out record nll (nats) and bytes around each source's planted bits per
    byte (a shared per-record difficulty, a small independent noise), and the metrics they give."""
    rng = np.random.default_rng([seed, sum(map(ord, model))])
    rows, block = [], {}
    for source, value in bpb.items():
        difficulty = np.random.default_rng(sum(map(ord, source))).normal(0, 0.2, records)
        nbytes = 80 + np.arange(records)
        bits = (value + difficulty + rng.normal(0, 0.02, records)) * nbytes
        rows += [{"set": f"heldout:{source}", "id": f"{source}-{i}", "nll": float(bits[i] * np.log(2)),
                  "tokens": int(nbytes[i] // 4), "bytes": int(nbytes[i])} for i in range(records)]  # fmt: skip
        block[source] = {"bpb": float(bits.sum() / nbytes.sum()), "records": records}
    metrics = {"heldout": block, "heldout_bpb_avg": float(np.mean([b["bpb"] for b in block.values()]))}
    write_json(root / "reports/eval/lik" / model / "metrics.json", {"lik": metrics, "params": {"template": "paper"}})
    write_jsonl(root / "reports/eval/lik" / model / "items.jsonl", rows)


def write_mix(root: Path, setting: str, n: int = 16, **extra: float) -> None:
    if setting in SWEEP:
        per_source = {"alpaca": n, "codealpaca": round(extra["ratio"] * n / 2), "p3": round(extra["ratio"] * n / 2)}
    elif setting in COUNT:
        per_source = dict.fromkeys(SOURCES, int(extra["per_type"]))
    else:
        per_source = {LETTERS[c]: n for c in setting}
    metrics = {"records": sum(per_source.values()), "records_per_source": per_source, **extra}
    write_json(root / "data/mix" / f"{setting}.metrics.json", metrics | {"params": {"seed": 0, **extra}})


def write_setup(root: Path, n: int = 16, base: str = "smollm2", p3_cap: int | None = 50) -> None:
    """What the fetch, subsample and base stages write: records and the params they used."""
    fetched = {"alpaca": 52, "codealpaca": 20, "p3": 300}
    for source in SOURCES:
        params: dict[str, object] = {"path": f"assets/demo/{source}.json"}
        if source == "p3":
            params |= {"datasets": ["demo"], "allow_benchmarks": False, "max_per_task": p3_cap, "seed": 0}
        write_json(root / "data/fetched" / f"{source}.metrics.json", {"records": fetched[source], "params": params})
        sample = {"records": n, "available": fetched[source], "params": {"n": n, "seed": 0}}
        write_json(root / "data/subsample" / f"{source}.metrics.json", sample)
    base_metrics = {"architecture": "LlamaForCausalLM", "params": {"base": base, "revision": None}}
    write_json(root / "models/base.metrics.json", base_metrics)


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
    steps = 6 if len(setting) == 1 or setting == BASE_ROW else 12
    loss = [3.2 - 1.2 * (1 - np.exp(-i / 4)) + rng.normal(0, 0.08) for i in range(steps)]
    # held-out bits per byte: each source's own model lowest on it, every trained model below the base's
    lik = {
        s: 1.2 - (0.15 if letter in setting else 0.03 if setting != BASE_ROW else 0.0) for letter, s in LETTERS.items()
    }
    return {"nlp": nlp, "code": (code1 + rng.normal(0, 0.003), code1 * 2), "align": align, "loss": loss, "lik": lik}


def build_fixture(root: Path, seeds: Iterable[int] = (42,), sweeps: bool = True) -> Path:
    """root/reports/{eval,sft}, root/data/{fetched,subsample,mix} and root/models/base.metrics.json for
    base, A … ACP and the sweep settings; the base model is evaluated once, whatever the seeds."""
    write_setup(root)
    settings = list(TABLE1_ROWS) + (list(SWEEP) + list(COUNT) if sweeps else [])
    for setting in settings:
        for seed in [0] if setting == BASE_ROW else seeds:
            m = plausible(setting, seed)
            trained = setting != BASE_ROW
            write_model(root, model_of(setting, seed), m["nlp"], m["code"], m["align"] if trained else None,
                        m["loss"] if trained else None, {"seed": seed})  # fmt: skip
            write_lik(root, model_of(setting, seed), m["lik"], seed=seed)
        if setting != BASE_ROW:
            x = (
                {"ratio": SWEEP[setting]}
                if setting in SWEEP
                else {"per_type": COUNT[setting]}
                if setting in COUNT
                else {}
            )
            write_mix(root, setting, **x)
    return root


def report_workdir(
    workdir: Path, seeds: list[int] | None = None, settings: list[str] | None = None, **report: object
) -> Path:
    """A cwd whose params.yaml holds only `report`, `seeds` and `settings`: all the report reads."""
    params = {"report": {"bootstrap_samples": 2000, **report}, "seeds": [42] if seeds is None else seeds}
    params["settings"] = list(SETTINGS) if settings is None else settings
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    return workdir


def report_stage(root: Path, workdir: Path, profile: str = "demo") -> subprocess.CompletedProcess[str]:
    return run_stage(
        "report", root / "data", root / "reports", root / "models/base.metrics.json", PAPER_FILE, SETUP_FILE,
        root / "out", "--profile", profile, cwd=workdir,
    )  # fmt: skip


def run_report(root: Path, workdir: Path, **report: object) -> tuple[str, str]:
    result = report_stage(root, report_workdir(workdir, **report))
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


def claim_rows(markdown: str) -> dict[str, list[str]]:
    return {row[0]: row for row in md_table(markdown, "## The paper's claims")[1:]}


# ---------------------------------------------------------------------------- package-wide checks


def test_the_report_declares_no_vocabulary_of_its_own() -> None:
    """No list, tuple or set literal in the report spells three or more tasks, skills or settings."""
    files = [*sorted((REPO / "instmix/report").glob("*.py")), REPO / "stages/report.py"]
    assert len(files) >= 8 and not (REPO / "instmix/report/report.py").exists()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.List | ast.Tuple | ast.Set):
                names = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
                for vocab in (TASKS, SKILLS, TABLE_SETTINGS):
                    assert len(names & set(vocab)) < 3, f"{path.name}:{node.lineno} redeclares {vocab}"


def test_report_modules_are_short() -> None:
    for path in sorted((REPO / "instmix/report").glob("*.py")):
        assert len(path.read_text().splitlines()) <= 300, path.name
    assert len((REPO / "stages/report.py").read_text().splitlines()) <= 60


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("paper_size", "70b", "one of 7b, 13b, both"), ("bootstrap_samples", 10, "an integer >= 100"),
     ("confidence", 1.0, "a number in [0.5, 1)")],
)  # fmt: skip
def test_bad_params_are_refused(key: str, value: object, message: str) -> None:
    with pytest.raises(ParamsError, match=re.escape(message)):
        parse(ReportParams, {key: value}, "report")
    assert parse(ReportParams, {"paper_size": "both"}, "report").sizes == ("7b", "13b")
