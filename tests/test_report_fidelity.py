"""report.fidelity: the paper's setup beside a run's, every flipped param a deviation, README in step."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from instmix.core.profile import apply
from instmix.report.fidelity import Item, deviations, observed_in_params, read_items, rows
from instmix.report.tables import markdown_table
from tests.conftest import REPO

ITEMS = read_items()
CHECKED = [item for item in ITEMS if item.key and (item.faithful is not None or item.pattern is not None)]
# The paper profile's real deviations (each has its reason in assets/paper_setup.yaml).
PAPER_PROFILE_DEVIATIONS = {"P3 pool", "CodeAlpaca revision", "P3 revision", "benchmark revisions"}


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
                   "HumanEval stops", "FLASK subset", "FLASK answer decoding", "judge model", "judge prompt",
                   "judge temperature"):  # fmt: skip
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
