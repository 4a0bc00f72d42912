"""Split the study's stage instances into jobs for many machines (knows nothing of DVC).

    jobs = plan(stage_names, training_cost={"A-42": 40_000.0, ...}, workers=4)

One `prepare` job (every stage that belongs to no model: data, base model, benchmarks, FLASK,
decontamination), one `train-<k>` job per worker holding whole models (a model's sft and its
five evaluations together, so an evaluation always reads the model its own job trained), and
`aggregate` (the report). Models go to workers longest first, each to the least loaded one
(LPT: within 4/3 of the best split). Costs are in example-epochs: a model's training is its
mixture's examples x sft.epochs, and its evaluations count as EVAL_COST more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

MODEL_FAMILIES = ("sft", "eval_nlp", "eval_code", "eval_align", "judge", "eval_lik")
REPORT = "report"
EVAL_COST = 20_000.0
"""Example-epochs one model's evaluations are counted as: an estimate (not measured here) that
the six benchmarks' ~12M log-likelihood tokens, HumanEval's 164 x 10 x 512 and FLASK's
1,180 x 1,024 generated tokens take about half the compute of training on a 20K mixture. eval_lik's
scored sets add ~0.5-1.9M forward tokens (bench/eval_lik.py), 4-16 % of the benchmarks': left out."""


@dataclass
class Job:
    name: str
    targets: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    cost: float = 0.0


def model_of(stage: str) -> str | None:
    """The model id a stage instance belongs to (`eval_code_sweep@ratio-0.5-42` -> `ratio-0.5-42`), else None."""
    family, _, key = stage.partition("@")
    family = family.removesuffix("_sweep").removesuffix("_base")
    return key if family in MODEL_FAMILIES and key else None


def plan(stages: Sequence[str], training_cost: Mapping[str, float], workers: int) -> list[Job]:
    """prepare, train-0 .. train-<workers - 1>, aggregate. A model without a training cost (the
    base model: evaluations only) costs EVAL_COST."""
    if workers < 1:
        raise ValueError("workers must be >= 1")
    prepare, aggregate = Job("prepare"), Job("aggregate")
    by_model: dict[str, list[str]] = {}
    for stage in sorted(stages):
        model = model_of(stage)
        if model is not None:
            by_model.setdefault(model, []).append(stage)
        else:
            (aggregate if stage == REPORT else prepare).targets.append(stage)
    trains = [Job(f"train-{k}") for k in range(workers)]
    costs = {m: training_cost.get(m, 0.0) + EVAL_COST for m in by_model}
    for model in sorted(by_model, key=lambda m: (-costs[m], m)):
        job = min(trains, key=lambda j: (j.cost, j.name))
        job.models.append(model)
        job.targets += by_model[model]
        job.cost += costs[model]
    return [prepare, *trains, aggregate]


def balance(jobs: Sequence[Job]) -> float:
    """max / mean cost of the train jobs (1.0 = perfectly even)."""
    costs = [j.cost for j in jobs if j.name.startswith("train-")]
    mean = sum(costs) / len(costs)
    return max(costs) / mean if mean else 1.0
