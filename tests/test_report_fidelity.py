"""report.fidelity: the paper's setup beside a run's, every flipped param a deviation, README in step."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from instmix.core.files import write_json
from instmix.core.profile import apply
from instmix.core.vocab import SOURCES, TASKS
from instmix.report.fidelity import NULL, Item, deviations, observed_in_artifacts, observed_in_params, read_items, rows
from instmix.report.header import read_setup
from instmix.report.runs import read_runs
from instmix.report.tables import markdown_table
from tests.conftest import REPO

ITEMS = read_items()
CHECKED = [item for item in ITEMS if item.key and (item.faithful is not None or item.pattern is not None)]
# The paper profile's real deviations (each has its reason in assets/paper_setup.yaml).
PAPER_PROFILE_DEVIATIONS = {
    "P3 pool",
    "CodeAlpaca revision",
    "P3 revision",
    "benchmark revisions",
    "FLASK answer template",
}


@pytest.fixture(scope="module")
def paper_observed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Any]]:
    params_file = tmp_path_factory.mktemp("paper") / "params.yaml"
    shutil.copy(REPO / "params.yaml", params_file)
    return observed_in_params(apply("paper", params_file), REPO)


def readme_table(observed: dict[str, list[Any]]) -> list[str]:
    return markdown_table(["setup item", "paper", "paper profile", "deviation"], rows(ITEMS, observed))


def flipped(item: Item) -> Any:
    """A value that is not the paper's."""
    if item.pattern is not None:
        return "main" if item.key.endswith("revision") else "elsewhere/other.json"
    if not item.faithful:
        return "other"
    good = item.faithful[0]
    if good is None:
        return {"r": 8}
    if isinstance(good, bool | str):
        return "other"
    if isinstance(good, int | float):
        return good * 2 + 1
    return []


def test_the_paper_profile_shows_only_its_real_deviations(paper_observed: dict[str, list[Any]]) -> None:
    table = rows(ITEMS, paper_observed)
    deviating = {row[0] for row in table if row[3].startswith("**yes**")}
    assert deviating == PAPER_PROFILE_DEVIATIONS
    for row in table:
        if row[0] in deviating:
            item = next(i for i in ITEMS if i.item == row[0])
            assert item.why and item.why in row[3]  # each with its reason
    lines = deviations(ITEMS, paper_observed)
    assert len(lines) == len(PAPER_PROFILE_DEVIATIONS) and any("T0's training mixture" in line for line in lines)


@pytest.mark.parametrize("item", CHECKED, ids=[i.item for i in CHECKED])
def test_flipping_any_checked_param_shows_a_deviation(paper_observed: dict[str, list[Any]], item: Item) -> None:
    observed = dict(paper_observed) | {item.key: [flipped(item)]}
    row = next(r for r in rows(ITEMS, observed) if r[0] == item.item)
    assert row[3] == f"**yes**: {item.why}"
    assert any(line.startswith(item.item) for line in deviations(ITEMS, observed))


def test_the_items_cover_the_papers_setup() -> None:
    names = {i.item for i in ITEMS}
    for needed in ("base model", "P3 pool", "P3 cap per task", "records per source", "Alpaca prompt join", "epochs",
                   "learning rate", "schedule", "warmup", "global batch (examples per step)", "batching", "precision",
                   "max length", "training template", "loss masking", "lm-eval version", "NLP metric",
                   "MMLU averaging", "RACE split", "HumanEval samples", "HumanEval temperature", "HumanEval prompt",
                   "HumanEval stops", "HumanEval post-processing", "HumanEval top-p", "FLASK subset",
                   "FLASK instances kept (idx)", "FLASK skills kept", "FLASK answer template",
                   "FLASK answer decoding", "judge model", "judge prompt", "judge temperature"):  # fmt: skip
        assert needed in names, needed
    assert all(i.key or i.fixed for i in ITEMS) and len(names) == len(ITEMS)


def test_a_mixed_run_is_a_deviation_and_unknowns_are_not() -> None:
    lr = next(i for i in ITEMS if i.key == "sft.lr")
    assert lr.deviates([5e-5, 1e-5]) and not lr.deviates([5e-5, 5e-5])
    revision = next(i for i in ITEMS if i.key == "model.revision")
    assert not revision.deviates([None])  # a local model directory has no hub revision
    version = next(i for i in ITEMS if i.key == "eval.nlp.lm_eval_version")
    row = next(r for r in rows(ITEMS, {"eval.nlp.lm_eval_version": ["0.4.13"]}) if r[0] == version.item)
    assert row[2:] == ["0.4.13", "paper does not say"]


def test_readme_shows_the_paper_profiles_table(paper_observed: dict[str, list[Any]]) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    expected = "\n".join(readme_table(paper_observed))
    assert expected in readme, "README's fidelity table is stale; it should read:\n" + expected


def test_the_report_shows_what_auto_resolved_to() -> None:
    from instmix.report.fidelity import observed_in_artifacts
    from instmix.report.header import Setup
    from instmix.report.runs import Run

    run = Run("A-42", "A", 42, raw={"sft.runtime.batching": "packed", "sft.runtime.precision": "bf16_mixed"})
    run.params["sft"] = {"batching": "auto", "precision": "auto", "lr": 5e-5}
    setup = Setup("paper", None, REPO / "none", {}, {}, {}, ITEMS)
    observed = observed_in_artifacts([run], setup, {"nlp_metric": "acc"})
    assert observed["sft.batching"] == ["packed"] and observed["sft.precision"] == ["bf16_mixed"]
    table = {r[0]: r[2:] for r in rows(ITEMS, observed)}
    assert table["batching"][1].startswith("**yes**") and table["precision"] == ["bf16_mixed", "no"]


# ---------------------------------------------------------------------------- rows read from what ran

SHA = "0123456789abcdef0123456789abcdef01234567"
CODEX = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]
HUB = {"alpaca": "tatsu-lab/alpaca", "codealpaca": "sahil2801/CodeAlpaca-20k", "p3": "bigscience/P3"}


def faithful_artifacts() -> dict[str, Any]:
    """What the paper profile's stages record once every pin is a sha (the metrics' own layout)."""
    fetched = {
        s: {"repo": HUB[s], "revision": SHA, "commit": SHA, "params": {"path": f"assets/hub/{s}.hub.yaml"}}
        for s in SOURCES
    }
    benchmarks = {
        t: {"source": "hub", "repo": f"org/{t}", "revision": SHA, "commit": SHA, "params": {"path": f"{t}.hub.yaml"}}
        for t in TASKS
    }
    base = {
        "architecture": "LlamaForCausalLM",
        "commit": SHA,
        "params": {"base": "meta-llama/Llama-2-7b-hf", "revision": SHA},
    }
    code = {"stop": CODEX, "postprocess": "none", "top_p": 0.95, "temperature": 0.2}
    answers = {"limit": None, "idx_max": 1700, "top_skills": 8, "template": "paper"}
    return {"fetched": fetched, "benchmarks": benchmarks, "base": base, "code": code, "answers": answers}


def table_of(root: Path, artifacts: dict[str, Any]) -> dict[str, list[str]]:
    """Write the metrics files, read them back as the report does, and render the fidelity rows."""
    for source, metrics in artifacts["fetched"].items():
        write_json(root / "data/fetched" / f"{source}.metrics.json", metrics)
    for task, metrics in artifacts["benchmarks"].items():
        write_json(root / "data/benchmarks" / f"{task}.metrics.json", metrics)
    write_json(root / "models/base.metrics.json", artifacts["base"])
    code = {"code": {"pass@1": 0.1, "n": 10, "problems": 164, "sandboxed": True}, "params": artifacts["code"]}
    write_json(root / "reports/eval/code/A-42/metrics.json", code)
    write_json(root / "reports/eval/align/A-42/metrics.json", {"align": {"avg": 50.0}, "params": {}})
    answers = {"instances": 1180, "empty": 0, "params": artifacts["answers"]}
    write_json(root / "reports/eval/align/A-42/answers.metrics.json", answers)
    setup = read_setup(root / "data", root / "models/base.metrics.json", "paper")
    runs = read_runs(root / "reports", "acc").values()
    return {r[0]: r[2:] for r in rows(ITEMS, observed_in_artifacts(runs, setup, {"nlp_metric": "acc"}))}


READ_FROM_ARTIFACTS = ("Alpaca source", "Alpaca revision", "CodeAlpaca source", "CodeAlpaca revision", "P3 source",
                       "P3 revision", "base model revision", "benchmark revisions", "HumanEval stops",
                       "HumanEval post-processing", "HumanEval top-p", "FLASK subset", "FLASK instances kept (idx)",
                       "FLASK skills kept")  # fmt: skip


def test_rows_read_from_faithful_metrics_show_no_deviation(tmp_path: Path) -> None:
    table = table_of(tmp_path, faithful_artifacts())
    assert {name: table[name][1] for name in READ_FROM_ARTIFACTS} == dict.fromkeys(READ_FROM_ARTIFACTS, "no")
    assert table["Alpaca source"][0] == "tatsu-lab/alpaca" and table["P3 source"][0] == "bigscience/P3"
    assert table["Alpaca revision"][0] == SHA and table["base model revision"][0] == SHA  # the commit read
    assert table["benchmark revisions"][0] == "commits: " + ", ".join(f"{t}@{SHA[:12]}" for t in sorted(TASKS))
    assert (
        table["HumanEval stops"][0] == "`" + json.dumps(CODEX) + "`" and table["HumanEval post-processing"][0] == "none"
    )
    assert table["FLASK subset"][0] == NULL == "null (not set)"  # not "none", which reads as "none used"
    # no value here is FLASK's fastchat template: the row names the difference and its reason
    assert table["FLASK answer template"][0] == "paper" and "raw instruction" in table["FLASK answer template"][1]


def change(section: str, key: str, value: Any, sub: str | None = None) -> Callable[[dict[str, Any]], None]:
    def apply_change(artifacts: dict[str, Any]) -> None:
        target = artifacts[section] if sub is None else artifacts[section][sub]
        target[key] = value

    return apply_change


def local(source: str, path: str) -> Callable[[dict[str, Any]], None]:
    def apply_change(artifacts: dict[str, Any]) -> None:
        artifacts["fetched"][source] = {"repo": None, "revision": None, "commit": None, "params": {"path": path}}

    return apply_change


def base_at_branch(artifacts: dict[str, Any]) -> None:
    artifacts["base"]["params"]["revision"] = "main"


@pytest.mark.parametrize(
    ("item", "edit", "shows"),
    [("Alpaca source", change("fetched", "repo", "MBZUAI/LaMini-instruction", "alpaca"), "MBZUAI/LaMini-instruction"),
     ("CodeAlpaca source", local("codealpaca", "assets/demo/codealpaca.json"), "assets/demo/codealpaca.json"),
     ("P3 source", change("fetched", "repo", "someone/P3-copy", "p3"), "someone/P3-copy"),
     ("CodeAlpaca revision", change("fetched", "revision", "main", "codealpaca"), f"{SHA} (read at branch main)"),
     ("P3 revision", change("fetched", "revision", "main", "p3"), f"{SHA} (read at branch main)"),
     ("base model revision", base_at_branch, f"{SHA} (read at branch main)"),
     ("benchmark revisions", change("benchmarks", "revision", "main", "piqa"), f"piqa@main → {SHA[:12]}"),
     ("HumanEval stops", change("code", "stop", [*CODEX, "\n```"]), "```"),
     ("HumanEval post-processing", change("code", "postprocess", "lenient"), "lenient"),
     ("HumanEval top-p", change("code", "top_p", 1.0), "1.0"),
     ("FLASK subset", change("answers", "limit", 50), "50"),
     ("FLASK instances kept (idx)", change("answers", "idx_max", 1740), "1,740"),
     ("FLASK skills kept", change("answers", "top_skills", 12), "12")],
    ids=lambda v: v if isinstance(v, str) else "",
)  # fmt: skip
def test_each_row_deviates_on_what_ran(
    tmp_path: Path, item: str, edit: Callable[[dict[str, Any]], None], shows: str
) -> None:
    artifacts = faithful_artifacts()
    edit(artifacts)
    table = table_of(tmp_path, artifacts)
    why = next(i.why for i in ITEMS if i.item == item)
    assert shows in table[item][0] and table[item][1] == f"**yes**: {why}", table[item]
    others = {name: table[name][1] for name in READ_FROM_ARTIFACTS if name != item}
    assert others == dict.fromkeys(others, "no")  # only the changed row moves


def test_a_run_shows_what_it_read_not_its_params(tmp_path: Path) -> None:
    artifacts = faithful_artifacts()
    artifacts["fetched"]["alpaca"]["params"]["path"] = "elsewhere/alpaca.hub.yaml"  # any pin file name
    artifacts["fetched"]["alpaca"]["repo"] = "someone/alpaca-copy"
    table = table_of(tmp_path, artifacts)
    assert table["Alpaca source"] == [
        "someone/alpaca-copy",
        f"**yes**: {next(i.why for i in ITEMS if i.item == 'Alpaca source')}",
    ]
    del artifacts["fetched"]["p3"]["repo"]  # a hub read recorded before `repo` was: unknown, not faithful
    assert table_of(tmp_path, artifacts)["P3 source"] == ["not recorded", "no"]


def test_the_readme_table_reads_the_pins_a_profile_names(paper_observed: dict[str, list[Any]]) -> None:
    assert paper_observed["fetch.alpaca.repo"] == ["tatsu-lab/alpaca"]
    assert paper_observed["fetch.codealpaca.revision"] == ["branch main"]  # no commit before a run
    assert paper_observed["eval.benchmarks.revision"][0].startswith("branch: arc_challenge@main")
    assert paper_observed["eval.code.postprocess"] == ["none"] and paper_observed["eval.code.stop"] == [CODEX]
