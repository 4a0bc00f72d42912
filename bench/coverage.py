"""Coverage of the report's intervals, by simulation through the report's own code.

Per replicate: a fresh population sample of items (per-item difficulty b ~ U(0.2, 0.8)), and for
each setting and seed a trained model whose per-item accuracy is b + the setting's effect + a seed
shift u ~ N(0, seed_sd); binary scores. The per-item files go through `Resampler` and
`evaluate_delta_claim` exactly as the report runs them; the interval is checked against the truth:
- 2 or 3 seeds: the setting-level delta (expected over items and seeds): what a researcher asks;
- 1 seed: the delta of the two trained models over the item population (the seed shifts drawn
  included): the seed variance cannot be estimated from one run, so that is what a single-seed
  interval can cover (the report says so).
The plain baseline in the same run is the previous method (each draw resamples the seeds with
replacement). Also the bias of `best_single` (P - max(A, C) with A, C, P equal): its interval's
coverage with and without the bias correction.

    python bench/coverage.py [--replicates 1000] [--items 300] [--draws 2000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from instmix.report.claims import DeltaClaim, evaluate_delta_claim
from instmix.report.items import Resampler
from instmix.report.params import ReportParams
from instmix.report.seeds import percentile_interval

TASK = "arc_challenge"


def simulate(rng: np.random.Generator, effects: dict[str, float], seeds: int, items: int, seed_sd: float) -> tuple[
    dict[str, list[dict[str, dict[Any, float]]]], dict[str, float]
]:  # fmt: skip
    """{setting: [Items per seed]}, and each setting's single-seed truth (effect + its first seed's shift)."""
    b = rng.uniform(0.2, 0.8, size=items)
    runs, conditional = {}, {}
    for setting, effect in effects.items():
        runs[setting] = []
        for s in range(seeds):
            u = rng.normal(0.0, seed_sd)
            p = np.clip(b + effect + u, 0.0, 1.0)
            scores = (rng.random(items) < p).astype(float)
            runs[setting].append({TASK: {(TASK, i): float(v) for i, v in enumerate(scores)}})
            if s == 0:
                conditional[setting] = 100 * (effect + u)
    return runs, conditional


def replicates_of(runs: dict[str, list[dict[str, dict[Any, float]]]]) -> dict[str, dict[str, list[float]]]:
    return {s: {TASK: [100 * float(np.mean(list(m[TASK].values()))) for m in models]} for s, models in runs.items()}


def old_interval(
    runs: dict[str, Any], delta: Callable[..., Any], params: ReportParams, seed: int
) -> tuple[float, float]:
    """The previous method: items resampled, then each draw resamples the seeds with replacement."""
    sampler = Resampler(runs, params.bootstrap_samples, seed)
    rng = np.random.default_rng(seed)

    def v(setting: str, key: str) -> np.ndarray:
        stacked = np.stack([sampler.per_model(setting, i, key) for i in range(len(runs[setting]))])
        pick = rng.integers(0, len(stacked), size=(len(stacked), params.bootstrap_samples))
        return stacked[pick, np.arange(params.bootstrap_samples)].mean(axis=0)

    return percentile_interval(delta(v), params.confidence)


def run(name: str, effects: dict[str, float], truth: Callable[..., float], delta: Callable[..., Any],
        seeds: int, args: argparse.Namespace, extreme: bool = False, baseline: bool = False,
        seed_sd: float | None = None) -> None:  # fmt: skip
    seed_sd = args.seed_sd if seed_sd is None else seed_sd
    rng = np.random.default_rng(12345)
    params = ReportParams(bootstrap_samples=args.draws)
    claim = DeltaClaim(name, "", "", +1, delta, 2, extreme)
    covered = {"new": 0, "plain percentile" if extreme else "old (seeds resampled)": 0}
    positives = 0
    start = time.perf_counter()
    for r in range(args.replicates):
        runs, conditional = simulate(rng, effects, seeds, args.items, seed_sd)
        values = conditional if seeds == 1 else {s: 100 * e for s, e in effects.items()}
        target = truth(lambda setting, _key, at=values: at[setting])
        sampler = Resampler(runs, args.draws, r)
        result = evaluate_delta_claim(claim, replicates_of(runs), params, sampler)
        low, high = result.interval  # type: ignore[misc]
        covered["new"] += low <= target <= high
        positives += result.mark in ("holds", "reversed")
        if extreme:
            low, high = percentile_interval(delta(sampler), params.confidence)
            covered["plain percentile"] += low <= target <= high
        elif baseline and seeds > 1:
            low, high = old_interval(runs, delta, params, r)
            covered["old (seeds resampled)"] += low <= target <= high
    n = args.replicates
    shown = {k: f"{100 * c / n:.1f} %" for k, c in covered.items() if c or k == "new"}
    print(f"{name:<30} seed sd {100 * seed_sd:g} pp, {seeds} seed(s): coverage {shown}; holds or reversed"
          f" {100 * positives / n:.1f} %  ({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip


def diff(v: Callable[[str, str], Any]) -> Any:
    return v("AC", TASK) - v("A", TASK)


def best(v: Callable[[str, str], Any]) -> Any:
    return v("P", TASK) - np.maximum(v("A", TASK), v("C", TASK))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--seed-sd", type=float, default=0.02, help="the seed-level spread (0.02 = 2 pp)")
    args = parser.parse_args(argv)
    print(f"{args.replicates} replicates, {args.items} items, {args.draws} draws")
    planted, null = {"A": 0.0, "AC": 0.03}, {"A": 0.0, "AC": 0.0}
    run("AC - A, planted +3 pp", planted, diff, diff, 1, args)
    run("AC - A, null", null, diff, diff, 1, args, seed_sd=0.0)  # the single-seed false-positive rate
    for seeds in (2, 3):
        for seed_sd in (args.seed_sd, 2 * args.seed_sd):
            run("AC - A, planted +3 pp", planted, diff, diff, seeds, args, baseline=True, seed_sd=seed_sd)
            run("AC - A, null", null, diff, diff, seeds, args, baseline=True, seed_sd=seed_sd)
    for seeds in (1, 3):
        run("P - max(A, C), A = C = P", {"A": 0.0, "C": 0.0, "P": 0.0}, best, best, seeds, args, extreme=True)


if __name__ == "__main__":
    main()
