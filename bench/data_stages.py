"""Time the three data stages (fetch, subsample, mix) at paper scale.

Synthesises sources in their native formats (Alpaca and CodeAlpaca JSON arrays of 22,000
rows; P3 as 110 task files of 250 rows), sets subsample.n = 20,000 and mix.per_type =
20,000, then runs every stage as DVC runs it (`python -m stages.<name> ...`, one process
each) and prints the wall time of each and in total.

    python bench/data_stages.py
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: `python bench/data_stages.py`

from instmix.core.vocab import SETTINGS, SOURCES  # noqa: E402

ROWS, TASKS, ROWS_PER_TASK, N = 22_000, 110, 250, 20_000


def text(rng: random.Random, words: list[str], low: int, high: int) -> str:
    return " ".join(rng.choices(words, k=rng.randint(low, high)))


def synthesise(root: Path) -> None:
    rng = random.Random(0)
    words = [f"w{i}" for i in range(5000)]
    for name in ("alpaca", "codealpaca"):
        rows = [
            {
                "instruction": text(rng, words, 5, 30),
                "input": text(rng, words, 0, 40),
                "output": text(rng, words, 5, 120),
            }
            for _ in range(ROWS)
        ]
        (root / f"{name}.json").write_text(json.dumps(rows, indent=4))
    (root / "p3").mkdir()
    for t in range(TASKS):
        with open(root / "p3" / f"ag_news_template_{t}.jsonl", "w") as handle:
            for _ in range(ROWS_PER_TASK):
                row = {"inputs": text(rng, words, 20, 200), "targets": text(rng, words, 1, 20)}
                handle.write(json.dumps(row) + "\n")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synthesise(root)
        params = yaml.safe_load((REPO / "params.yaml").read_text())
        for source, path in (("alpaca", "alpaca.json"), ("codealpaca", "codealpaca.json"), ("p3", "p3")):
            params["fetch"][source]["path"] = str(root / path)
        params["subsample"]["n"] = params["mix"]["per_type"] = N
        (root / "params.yaml").write_text(yaml.safe_dump(params))

        commands = [("fetch", s, f"data/fetched/{s}.jsonl") for s in SOURCES]
        commands += [("subsample", s, f"data/fetched/{s}.jsonl", f"data/subsample/{s}.jsonl") for s in SOURCES]
        commands += [("mix", s, "data/subsample", f"data/mix/{s}.jsonl") for s in SETTINGS]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        totals: dict[str, float] = {}
        for stage, *args in commands:
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", f"stages.{stage}", *args], cwd=root, env=env, check=True, capture_output=True
            )
            elapsed = time.perf_counter() - start
            totals[stage] = totals.get(stage, 0.0) + elapsed
            print(f"{stage}@{args[0]:<10} {elapsed:6.2f} s")
        for stage, seconds in totals.items():
            print(f"{stage:<10} total {seconds:6.2f} s")
        print(f"all three data stages: {sum(totals.values()):.2f} s for 3 x {N:,} records")


if __name__ == "__main__":
    main()
