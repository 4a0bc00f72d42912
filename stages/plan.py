"""Split the pipeline into jobs for many machines (instmix.grid.plan); not a DVC stage.

    python -m stages.plan --workers N [--dry]

Reads the stage instances from dvc.yaml (DVC's own index), each model's training cost (its
mixture's records from data/mix/<setting>.metrics.json when built, else from the mix and
subsample params) and sft.epochs. Writes data/plan/<job>.txt (one DVC target per line: what
`python -m stages.job <job>` runs) and data/plan/plan.json; --dry only prints the plan.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from instmix.core.files import write_json, write_lines
from instmix.core.params import StageError, cli, load
from instmix.core.vocab import SETTINGS, SOURCES
from instmix.data.mix import MixParams, draw_counts, parse_sweep_id, sweep_point
from instmix.data.mixtures import Mixture
from instmix.data.subsample import SubsampleParams
from instmix.grid.plan import EVAL_COST, balance, model_of, plan
from instmix.train.config import SFTParams

PLAN_DIR = Path("data/plan")


def stage_names() -> list[str]:
    from dvc.repo import Repo

    with Repo() as repo:
        return sorted(stage.addressing for stage in repo.index.stages)


def mixture_records(setting: str, mix: MixParams, subsample: SubsampleParams) -> int:
    built = Path("data/mix") / f"{setting}.metrics.json"
    if built.is_file():
        return int(json.loads(built.read_text())["records"])
    if setting in SETTINGS or parse_sweep_id(setting) is not None:
        return sum(draw_counts(setting, sweep_point(setting, mix), dict.fromkeys(SOURCES, subsample.n)).values())
    spec = load(Mixture, f"mixtures.{setting}")
    if spec.budget == "additive":
        return subsample.n * len(spec.weights)
    if spec.budget_records is not None:
        return spec.budget_records
    raise StageError(f"mixtures.{setting} has a token budget: build it first (dvc repro mix_named@{setting})")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, required=True, help="machines that train and evaluate")
    parser.add_argument("--dry", action="store_true", help="print the plan, write nothing")
    args = parser.parse_args(argv)
    if args.workers < 1:
        raise StageError(f"--workers {args.workers}: expected an integer >= 1")
    mix, subsample, sft = load(MixParams, "mix"), load(SubsampleParams, "subsample"), load(SFTParams, "sft")
    stages = stage_names()
    models = sorted({m for s in stages if (m := model_of(s)) is not None and s.startswith(("sft@", "sft_sweep@"))})
    cost = {m: mixture_records(m.rsplit("-", 1)[0], mix, subsample) * sft.epochs for m in models}
    jobs = plan(stages, cost, args.workers)
    summary = {
        "workers": args.workers,
        "balance": round(balance(jobs), 4),
        "eval_cost": EVAL_COST,
        "jobs": [{"name": j.name, "cost": j.cost, "models": j.models, "targets": j.targets} for j in jobs],
    }
    for job in jobs:
        models_text = f" models {', '.join(job.models)};" if job.models else ""
        print(f"{job.name}: {len(job.targets)} stages;{models_text} cost {job.cost:,.0f} example-epochs")
    print(f"balance (max / mean train-job cost): {summary['balance']:.3f}")
    if args.dry:
        return
    for job in jobs:
        write_lines(PLAN_DIR / f"{job.name}.txt", job.targets)
    write_json(PLAN_DIR / "plan.json", summary)
    print(f"plan: {PLAN_DIR}/<job>.txt for {len(jobs)} jobs")


if __name__ == "__main__":
    if "--help" in sys.argv:
        print(__doc__)
    else:
        cli(main)
