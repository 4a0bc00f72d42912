"""eval_nlp@<model id>: zero-shot NLP benchmarks through lm-evaluation-harness (instmix.nlp.harness).

    python -m stages.eval_nlp <model dir> <benchmarks dir> <out dir>

Reads `eval.nlp`. Writes <out dir>/metrics.json (scores: acc and the continuous p_gold and bpb_gold,
the lm-eval version, the hub commit of each pinned task, the params used) and <out dir>/samples.jsonl
(one row per scored document).
"""

from __future__ import annotations

import sys
from pathlib import Path

from instmix.core import hub
from instmix.core.files import write_json, write_jsonl
from instmix.core.params import StageError, cli, load
from instmix.core.stack import check_stack
from instmix.nlp.harness import NLPParams, evaluate, resolve_device, source_of


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        raise StageError("usage: python -m stages.eval_nlp <model dir> <benchmarks dir> <out dir>")
    model_dir, benchmarks, out = map(Path, argv)
    params = load(NLPParams, "eval.nlp")
    check_stack()
    if not (model_dir / "config.json").exists():
        raise StageError(f"{model_dir} is not a model directory (no config.json); run the base or sft stage first")
    pins = {task: pin for task in params.tasks if (pin := source_of(benchmarks, task))}
    if not pins:
        hub.go_offline()  # every row is local and so is the model
    metrics, samples = evaluate(params, model_dir, benchmarks, resolve_device(params.device))
    metrics["hub"] = pins  # the repo and commit each hub task read
    write_jsonl(out / "samples.jsonl", samples)
    write_json(out / "metrics.json", metrics)
    scores = ", ".join(f"{t} {metrics['nlp'][t]['acc']:.3f}" for t in params.tasks)
    nlp = metrics["nlp"]
    print(f"eval_nlp: {scores}; avg {nlp['avg']:.3f}, p_gold {nlp['p_gold_avg']:.3f}, bpb {nlp['bpb_gold_avg']:.3f}")


if __name__ == "__main__":
    if "--help" in sys.argv:
        print(__doc__)
    else:
        cli(main)
