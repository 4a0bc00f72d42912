"""The data stages through real `dvc repro` in two fresh clones: byte-identical outputs.

A file of its own, so it runs on another test worker than the long end-to-end pipeline test.
"""

from __future__ import annotations

from pathlib import Path

from tests.test_pipeline import clean_clone, data_digests, dvc


def test_two_clean_runs_give_byte_identical_data(tmp_path: Path) -> None:
    digests = []
    for name in ("one", "two"):
        clone = clean_clone(tmp_path / name)
        dvc("repro", "mix", cwd=clone)  # the data stages: what `data/` holds
        digests.append(data_digests(clone))
    assert len(digests[0]) == 3 * 2 + 3 * 3 + 9 * 2
    assert digests[0] == digests[1]
