"""The README's stage table says what dvc.yaml runs and writes."""

from __future__ import annotations

import re

import yaml

from tests.conftest import REPO

PLACEHOLDER = re.compile(r"\$\{[^}]+\}|<[^>]+>")  # dvc.yaml's ${key}, the README's <id>


def normalise(text: str) -> str:
    return " ".join(PLACEHOLDER.sub("*", text.replace("`", "")).split())


def stage_table() -> dict[str, tuple[str, str]]:
    """Stage family (the first name in a row) -> (command, the whole row)."""
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index("| stage | command | writes |")
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        family = re.match(r"`([a-z_]+)", cells[0]).group(1)  # type: ignore[union-attr]
        rows[family] = (normalise(cells[1]), normalise(line))
    return rows


def paths(entries: list) -> list[str]:
    return [e if isinstance(e, str) else next(iter(e)) for e in entries]


def test_the_stage_table_matches_dvc_yaml() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    table = stage_table()
    for name, stage in stages.items():
        block = stage.get("do", stage)
        family = re.sub(r"_(sweep|base)$", "", name)
        assert family in table, f"{name}: no row in the README's stage table"
        command, row = table[family]
        assert command == normalise(block["cmd"]), name
        for path in paths(block.get("outs", [])) + paths(block.get("metrics", [])):
            assert normalise(path) in row, f"{name}: {path} is not in the README's row"
    assert set(table) == {re.sub(r"_(sweep|base)$", "", name) for name in stages}
