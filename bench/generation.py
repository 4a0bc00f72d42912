"""Generation engines (instmix.gen.generate) on CPU, and the sandbox's cost per program.

Generation: the first --prompts HumanEval prompts, rendered as eval_code does ("{prompt} "),
greedy, --new-tokens each, no stop sequences, generated with padded batches of --batch-size,
one at a time, and by the continuous engine, in the same process on the same loaded model
(after a warm-up call). Reports wall time, new tokens per second (outputs re-tokenised), the
speed-ups, and how many greedy texts are identical to the padded batches'.

Sandbox: --programs HumanEval programs (canonical solutions) run one at a time as a bare
`python -I` subprocess (no limits: the floor), as a plain rlimited process, and under
bubblewrap; the difference per program is the sandbox's overhead. Then all 164 in parallel
under the default sandbox (as eval_code runs them).

    python bench/generation.py                                   # CPU, SmolLM2 (built into /tmp once)
    python bench/generation.py --device cuda --prompts 64 --batch-size 64 --new-tokens 128
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from instmix.code.humaneval import program, read_problems, render  # noqa: E402
from instmix.code.sandbox import Limits, Sandbox, interpreter  # noqa: E402

CACHE = Path(tempfile.gettempdir()) / "instmix-bench" / "smollm2"


def smollm2_dir() -> Path:
    """SmolLM2 as the base stage writes it, built once into /tmp."""
    if not (CACHE / "config.json").is_file():
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        (CACHE.parent / "params.yaml").write_text("model:\n  base: smollm2\n")
        env = dict(os.environ, PYTHONPATH=str(REPO))
        subprocess.run([sys.executable, "-m", "stages.base", str(CACHE)], cwd=CACHE.parent, env=env, check=True)
    return CACHE


def bench_generation(args: argparse.Namespace) -> dict[str, object]:
    import torch

    from instmix.gen.generate import generate, load_model

    model, tokenizer = load_model(args.model or smollm2_dir(), device=args.device)
    problems = list(read_problems().values())[: args.prompts]
    prompts = [render("{prompt} ", p["prompt"]) for p in problems]
    common = {"max_new_tokens": args.new_tokens, "temperature": 0.0, "progress": False}
    generate(model, tokenizer, prompts[:2], max_new_tokens=4, temperature=0.0, batch_size=2, progress=False)

    def timed(batch_size: int, engine: str = "padded") -> tuple[float, list[str]]:
        if args.device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        samples = generate(model, tokenizer, prompts, batch_size=batch_size, engine=engine, **common)
        texts = [s[0] for s in samples]
        if args.device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, texts

    load_before = os.getloadavg()
    batched_runs, single_runs, continuous_runs = [], [], []
    for _ in range(args.repeats):  # alternate, keep the fastest of each: other jobs share the CPU
        batched_runs.append(timed(args.batch_size))
        single_runs.append(timed(1))
        continuous_runs.append(timed(args.batch_size, "continuous"))
    (batched_s, batched), (single_s, single) = min(batched_runs), min(single_runs)
    continuous_s, continuous = min(continuous_runs)
    tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in batched)
    tokens_single = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in single)
    return {
        "device": args.device or ("cuda" if torch.cuda.is_available() else "cpu"),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "dtype": str(model.dtype),
        "torch_threads": torch.get_num_threads(),
        "prompts": len(prompts),
        "prompt_tokens": sum(len(tokenizer(p)["input_ids"]) for p in prompts),
        "new_tokens_limit": args.new_tokens,
        "batch_size": args.batch_size,
        "batched_s": round(batched_s, 2),
        "single_s": round(single_s, 2),
        "batched_runs_s": [round(r[0], 2) for r in batched_runs],
        "single_runs_s": [round(r[0], 2) for r in single_runs],
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "batched_tok_s": round(tokens / batched_s, 1),
        "single_tok_s": round(tokens_single / single_s, 1),
        "speedup": round(single_s / batched_s, 2),
        "identical_texts": sum(a == b for a, b in zip(batched, single, strict=True)),
        "continuous_s": round(continuous_s, 2),
        "continuous_runs_s": [round(r[0], 2) for r in continuous_runs],
        "continuous_vs_batched": round(batched_s / continuous_s, 2),
        "continuous_identical_texts": sum(a == b for a, b in zip(batched, continuous, strict=True)),
        "load_avg_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }


def bare_run(code: str) -> float:
    """The floor: a bare `python -I` subprocess, no limits, no sandbox."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "program.py").write_text(code)
        start = time.perf_counter()
        subprocess.run([interpreter(), "-I", "program.py"], cwd=tmp, env={}, capture_output=True, check=False)
        return time.perf_counter() - start


def bench_sandbox(args: argparse.Namespace) -> dict[str, object]:
    problems = list(read_problems().values())
    programs = [program(p, p["canonical_solution"]) for p in problems]
    sample = programs[: args.programs]
    result: dict[str, object] = {"programs": len(sample)}
    result["bare_ms"] = round(1000 * sum(map(bare_run, sample)) / len(sample), 1)
    for mode in ("none", "bwrap"):
        try:
            sandbox = Sandbox(Limits(timeout=10.0), mode, workers=1)
        except Exception as err:  # bwrap missing: say so in the numbers
            result[f"{mode}_ms"] = f"unavailable: {err}"
            continue
        start = time.perf_counter()
        outcomes = [sandbox.run(p) for p in sample]
        result[f"{mode}_ms"] = round(1000 * (time.perf_counter() - start) / len(sample), 1)
        assert all(o.passed for o in outcomes), [o.result for o in outcomes if not o.passed]
    sandbox = Sandbox(Limits(timeout=10.0), "auto")
    start = time.perf_counter()
    outcomes = sandbox.run_many(programs, progress=False)
    result["all_164_parallel_s"] = round(time.perf_counter() - start, 2)
    result["all_164_workers"] = sandbox.workers
    result["all_164_sandboxed"] = sandbox.sandboxed
    result["all_164_passed"] = sum(o.passed for o in outcomes)
    result["load_avg_after"] = round(os.getloadavg()[0], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a model directory (default: SmolLM2, built into /tmp)")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each; the fastest counts")
    parser.add_argument("--programs", type=int, default=40, help="programs for the per-program sandbox timing")
    parser.add_argument("--skip", choices=["generation", "sandbox"], action="append", default=[])
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    numbers: dict[str, object] = {
        "machine": {"nproc": os.cpu_count(), "cpu": platform.processor() or platform.machine()},
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
    }
    if "generation" not in args.skip:
        numbers["generation"] = bench_generation(args)
        print(json.dumps({"generation": numbers["generation"]}), flush=True)
    if "sandbox" not in args.skip:
        numbers["sandbox"] = bench_sandbox(args)
    print(json.dumps(numbers, indent=2))
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")


if __name__ == "__main__":
    main()
