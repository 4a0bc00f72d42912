"""Run one job of the plan (stages.plan) against the shared DVC remote; not a DVC stage.

    python -m stages.job prepare | train-<k> | aggregate

The remote is the repo's default one, set per machine and never committed: `dvc remote add
--local -d grid s3://BUCKET/instmix` (credentials from the environment, as DVC reads them).

prepare and train-<k>: `dvc repro --pull <its targets>` (every stage already run anywhere is
restored from the remote's run-cache instead of rerun), then `dvc push --run-cache <targets>`.
aggregate: `dvc repro --pull` (the run-cache first, then each stage's outputs): every finished
stage is restored and only the report runs; commit the dvc.lock it writes. Workers never commit. A job is safe to rerun
(a preempted machine, a failed push): what was pushed is restored, what is missing is pushed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from instmix.core.params import StageError, cli

PLAN_DIR = Path("data/plan")


def dvc(*args: str) -> None:
    """A dvc command, its output streamed as it comes; a failure becomes one line naming the step."""
    process = subprocess.Popen(["dvc", *args], stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    errors = ["(no message)"]
    for line in process.stderr:
        sys.stderr.write(line)
        if line.startswith("ERROR"):
            errors.append(line.strip())
    if process.wait():
        raise StageError(f"`dvc {' '.join(args[:2])} ...` failed: {errors[-1]}; rerun the job to go on")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.job", description=__doc__.split("\n\n")[0])
    parser.add_argument("job", help="prepare, train-<k> or aggregate (data/plan/<job>.txt)")
    args = parser.parse_args(argv)
    if args.job == "aggregate":
        dvc("repro", "--pull")
        print("job aggregate: done; commit dvc.lock to record the study")
        return
    targets_file = PLAN_DIR / f"{args.job}.txt"
    if not targets_file.is_file():
        raise StageError(f"{targets_file} is missing: run `python -m stages.plan --workers N` first")
    targets = targets_file.read_text().split()
    if not targets:
        print(f"job {args.job}: nothing to run")
        return
    dvc("repro", "--pull", *targets)
    print(f"job {args.job}: pushing {len(targets)} stages", flush=True)
    dvc("push", "--run-cache", *targets)
    print(f"job {args.job}: {len(targets)} stages reproduced and pushed")


if __name__ == "__main__":
    if "--help" in sys.argv:
        print(__doc__)
    else:
        cli(main)
