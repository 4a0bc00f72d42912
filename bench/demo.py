"""The demo's `dvc repro` from a fresh clone, with the wall time of every stage.

    python bench/demo.py [--keep DIR]

Copies the repository's tracked files to a new directory (as a fresh clone has them), runs
`dvc repro` there and timestamps each "Running stage" line DVC prints, so each stage's time is
the gap to the next one (DVC's own bookkeeping included). Prints the total, the time per stage
family (fetch, sft, eval_nlp, ...) and the slowest stages. Numbers: bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STAGE = re.compile(r"Running stage '([^']+)'")


def fresh_clone(target: Path) -> None:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in filter(None, listed.split("\n")):
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)
    subprocess.run(["git", "add", "-A"], cwd=target, check=True)
    subprocess.run([*git, "commit", "-qm", "clone"], cwd=target, check=True)  # DVCLive needs a commit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="run in this (new) directory and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="instmix-demo."))
    root.mkdir(parents=True, exist_ok=True)
    fresh_clone(root)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    start = time.perf_counter()
    marks: list[tuple[str, float]] = []
    with subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    ) as process:  # fmt: skip
        assert process.stdout is not None
        for line in process.stdout:
            if match := STAGE.search(line):
                marks.append((match.group(1), time.perf_counter() - start))
    total = time.perf_counter() - start
    if process.returncode:
        sys.exit(f"dvc repro failed with exit code {process.returncode} in {root}")
    times = {name: (marks[i + 1][1] if i + 1 < len(marks) else total) - t for i, (name, t) in enumerate(marks)}
    families: dict[str, list[float]] = defaultdict(list)
    for name, seconds in times.items():
        families[name.split("@")[0]].append(seconds)
    print(f"dvc repro: {len(times)} stages in {total:.0f} s ({total / 60:.1f} min), first after {marks[0][1]:.1f} s")
    for family, values in sorted(families.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {family:18s} {len(values):3d} stages {sum(values):7.1f} s  mean {sum(values) / len(values):5.1f} s")
    print("slowest:", ", ".join(f"{n} {s:.1f} s" for n, s in sorted(times.items(), key=lambda kv: -kv[1])[:5]))
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
