"""report.runs: model-id based run discovery, reading the metrics contract, and the paper's numbers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from instmix.core.params import StageError
from instmix.core.vocab import BASE, BASE_ROW, TASKS, split_model_id
from instmix.report.layout import TABLE1_ROWS, setting_order
from instmix.report.runs import read_loss_curve, read_mix, read_paper, read_runs
from tests.conftest import SHARED_DATA
from tests.test_report import PAPER_FILE, write_mix, write_model

PAPER_MD = SHARED_DATA.parent / "docs" / "paper.md"


def test_paper_numbers_spot_checks() -> None:
    paper = read_paper(PAPER_FILE)
    t1, t2 = paper["table1"], paper["table2"]
    assert t1["7b"]["none"]["arc_challenge"] == 43.09 and t1["7b"]["P"]["nlp_avg"] == 58.15
    assert t1["7b"]["AC"]["pass@10"] == 25.0 and t1["13b"]["ACP"]["pass@10"] == 32.93
    assert t1["13b"]["P"]["pass@1"] == 0.30 and t1["13b"]["CP"]["winogrande"] == 74.59
    assert t2["7b"]["C"]["conciseness"] == 78.4 and t2["13b"]["AC"]["flask_avg"] == 65.6
    assert t2["7b"]["P"]["factuality"] == 40.0 and BASE_ROW not in t2["7b"]
    assert "2312.10793" in t1["source"] and "Table 1" in t1["source"] and "Table 2" in t2["source"]
    assert list(t1["7b"]) == list(TABLE1_ROWS)  # the paper's row names are the vocab's
    for size in ("7b", "13b"):  # NLP avg = mean of the six, as published (2-decimal rounding)
        for row, values in t1[size].items():
            assert abs(np.mean([values[t] for t in TASKS]) - values["nlp_avg"]) < 0.006, (size, row)


def test_paper_numbers_match_every_cell_of_paper_md() -> None:
    if not PAPER_MD.is_file():
        pytest.skip("../shared/docs/paper.md is not present")
    text, paper, cells = PAPER_MD.read_text(), read_paper(PAPER_FILE), 0
    size = None
    for line in text.split("### Table 1")[1].split("### Table 2")[0].splitlines():
        size = "7b" if "LLaMA-2-7B" in line else "13b" if "LLaMA-2-13B" in line else size
        if match := re.match(r"\| (None|A|C|P|AC|AP|CP|ACP) \|(.*)\|$", line):
            row = BASE_ROW if match.group(1) == "None" else match.group(1)
            published = [float(re.match(r"[\d.]+", c.strip()).group()) for c in match.group(2).split("|")]
            assert published == list(paper["table1"][size][row].values()), (size, row)
            cells += len(published)
    for match in re.finditer(r"^\| (7B|13B) \| (\w+) \|(.*)\|$", text, re.MULTILINE):
        published = [float(c) for c in match.group(3).split("|")]
        assert published == list(paper["table2"][match.group(1).lower()][match.group(2)].values())
        cells += len(published)
    assert cells == 16 * 9 + 14 * 9


def test_model_ids_split_into_setting_and_seed() -> None:
    assert split_model_id("AC-1") == ("AC", 1) and split_model_id("ratio-0.5-12") == ("ratio-0.5", 12)
    assert split_model_id("count-5000-7") == ("count-5000", 7) and split_model_id(BASE) == (BASE_ROW, None)


def test_runs_are_discovered_by_model_id_with_their_params(tmp_path: Path) -> None:
    write_model(tmp_path, BASE, dict.fromkeys(TASKS, 0.3), (0.02, None))
    for seed in (7, 42):
        write_model(tmp_path, f"A-{seed}", dict.fromkeys(TASKS, 0.4), align=None, loss=[2.0, 1.5], sft={"seed": seed})
    write_model(tmp_path, "ratio-0.5-42", dict.fromkeys(TASKS, 0.35))
    write_model(tmp_path, "count-4-42", loss=[3.0, 2.0, 1.0])  # trained, not evaluated yet
    runs = read_runs(tmp_path / "reports", "acc")
    assert list(runs) == [BASE, "A-7", "A-42", "ratio-0.5-42", "count-4-42"]  # report order
    assert (runs[BASE].setting, runs[BASE].seed) == (BASE_ROW, None)
    assert (runs["A-42"].setting, runs["A-42"].seed) == ("A", 42) and runs["ratio-0.5-42"].setting == "ratio-0.5"
    assert runs["A-7"].values["nlp_avg"] == pytest.approx(40.0) and runs[BASE].values["pass@1"] == pytest.approx(2.0)
    assert runs["A-7"].params["sft"]["seed"] == 7 and runs["A-7"].params["nlp"]["limit"] == 20
    assert runs["A-7"].info["nlp_limit"] == 20 and runs["A-7"].raw["nlp.limit"] == 20
    assert not any(k.startswith("sft.params") or ".params." in k for r in runs.values() for k in r.raw)
    assert runs["count-4-42"].values == {} and runs["count-4-42"].raw["sft.steps"] == 3
    x, y, label = read_loss_curve(tmp_path / "reports/sft", "count-4-42")
    assert (y, label) == ([3.0, 2.0, 1.0], "epoch") and x[-1] == 1.0
    assert read_loss_curve(tmp_path / "reports/sft", BASE) is None


def test_acc_norm_falls_back_to_acc_for_mmlu(tmp_path: Path) -> None:
    write_model(tmp_path, "P-42", dict.fromkeys(TASKS, 0.5))
    values = read_runs(tmp_path / "reports", "acc_norm")["P-42"].values
    assert values["mmlu"] == pytest.approx(50.0) and values["piqa"] == pytest.approx(52.0)
    assert values["nlp_avg"] == pytest.approx((5 * 52.0 + 50.0) / 6)  # recomputed: `avg` is a mean of acc


def test_a_broken_or_contract_less_metrics_file_is_one_error(tmp_path: Path) -> None:
    assert read_runs(tmp_path / "reports", "acc") == {}  # nothing there: no error
    path = tmp_path / "reports/eval/code/A-42/metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"code": {"pass@1": 0.1')
    with pytest.raises(StageError, match=re.escape(str(path))):
        read_runs(tmp_path / "reports", "acc")
    path.write_text('{"nlp": {}}')
    with pytest.raises(StageError, match="no 'code' section"):
        read_runs(tmp_path / "reports", "acc")


def test_mix_metrics_are_read_for_the_settings_that_have_them(tmp_path: Path) -> None:
    write_mix(tmp_path, "ACP")
    write_mix(tmp_path, "ratio-0.5", ratio=0.5)
    mix = read_mix(tmp_path / "data/mix", {"ratio-0.5", "ACP", "C"})
    assert list(mix) == ["ACP", "ratio-0.5"] and mix["ratio-0.5"]["ratio"] == 0.5 and mix["ACP"]["records"] == 48


def test_setting_order_puts_base_tables_sweeps_then_sweep_ids() -> None:
    settings = ["count-4", "ratio-1.5", "count", "ACP", "ratio", "ratio-0.5", BASE_ROW, "A", "other"]
    ordered = sorted(settings, key=setting_order)
    assert ordered == [BASE_ROW, "A", "ACP", "ratio", "count", "ratio-0.5", "ratio-1.5", "count-4", "other"]
