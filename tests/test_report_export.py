"""report.export: supervised-token shares per source, and the olmix CSVs (ratios.csv, metrics.csv).

olmix is not on the package index, so its loader's rules are checked here as its source states them
(allenai/olmix olmix/fit/loaders.py `load_from_csv`, commit 9586977): a `run` id column joins the two
files; every column but run/run_id/name/index is a domain weight, each row summing to 1 within 0.01;
metric columns are numeric."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from instmix.report.export import olmix_tables, token_section, write_olmix
from instmix.report.runs import Run

SKIP = {"run", "run_id", "name", "index"}


def trained(model: str, setting: str, supervised: dict[str, int], nlp_avg: float) -> Run:
    raw = {f"sft.sources.{s}.supervised_tokens": n for s, n in supervised.items()}
    raw |= {f"sft.sources.{s}.examples": 10 if n else 0 for s, n in supervised.items()}
    return Run(model, setting, 42, values={"nlp_avg": nlp_avg, "pass@1": 12.5}, raw=raw)


RUNS = {
    "base": Run("base", "none", None, values={"nlp_avg": 50.0}),
    "A-42": trained("A-42", "A", {"alpaca": 900}, 51.0),
    "ACP-42": trained("ACP-42", "ACP", {"alpaca": 900, "codealpaca": 700, "p3": 100}, 53.25),
}


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_csvs_follow_olmix_loader_rules(tmp_path: Path) -> None:
    write_olmix(tmp_path, RUNS)
    ratios, metrics = read(tmp_path / "ratios.csv"), read(tmp_path / "metrics.csv")
    assert [r["run"] for r in ratios] == [r["run"] for r in metrics] == ["A-42", "ACP-42"]  # base has no mixture
    domains = [c for c in ratios[0] if c not in SKIP]
    assert domains == ["alpaca", "codealpaca", "p3"]
    for row in ratios:
        assert sum(float(row[d]) for d in domains) == pytest.approx(1.0, abs=1e-5)
    acp = ratios[1]
    assert float(acp["p3"]) == pytest.approx(100 / 1700, abs=1e-6) and acp["name"] == "ACP"
    assert float(ratios[0]["alpaca"]) == 1.0 and float(ratios[0]["p3"]) == 0.0
    assert [c for c in metrics[0] if c not in SKIP] == ["nlp_avg", "pass@1"]
    assert float(metrics[1]["nlp_avg"]) == 53.25


def test_the_token_table_shows_shares_and_says_what_is_missing() -> None:
    lines = token_section(RUNS)
    row = next(line for line in lines if line.startswith("| ACP-42 |"))
    assert row == "| ACP-42 | 10 | 10 | 10 | 900 | 700 | 100 | 52.9 % | 41.2 % | 5.9 % |"
    assert not any(line.startswith("| base |") for line in lines)
    assert "No token accounting" in token_section({"base": RUNS["base"]})[2]
    assert olmix_tables({"base": RUNS["base"]}) == ([["run", "name", "alpaca", "codealpaca", "p3"]],
                                                    [["run", "name", "nlp_avg"]])  # fmt: skip
