"""Cost of eval_lik beside eval_nlp: both stages on the demo, in one process, on SmolLM2-135M-Instruct.

Builds the demo's inputs once under --cache (fetch, subsample, heldout, flask and benchmarks, run as
DVC runs them, with the committed demo params.yaml), then runs `stages.eval_nlp` and
`stages.eval_lik` on models/base (SmolLM2, built by the base stage) in this process, alternated
--repeats times (the best run of each counts; other jobs may share the cores). Measured per stage:
- wall: the whole stage (params, model load, scoring, writing), as DVC would run it;
- tokens fed: context + continuation tokens of every scored sequence (eval_nlp: lm-eval's
  loglikelihood requests, counted where HFLM receives them; eval_lik: its items), and the scored
  (continuation) tokens; tokens/s = tokens fed / wall.
Then the projection for the paper profile (LLaMA-2-7B): eval_lik's token count at paper scale from
the demo's mean tokens per item (held-out: 1,000 records per source as the paper profile's heldout.n;
HumanEval: all 164 problems, measured; FLASK: the 1,180 instances of the real eval set when
../shared/data/flask is here, measured, else the demo's mean) against eval_nlp's at paper scale
(every document of the six benchmarks: ~12M tokens fed, instmix/grid/plan.py's estimate). Both are
forward passes of the same model over tokens, so their cost ratio is their tokens-fed ratio (the
assumption: cost per token is the same for both, which padding and sequence length move by a little).

    python bench/eval_lik.py [--repeats 2] [--threads 2] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script
sys.path.insert(0, str(REPO / "bench"))

from likelihood import smollm2_base  # noqa: E402

from instmix.core.vocab import SOURCES, TASKS  # noqa: E402

NLP_PAPER_TOKENS = 12e6  # instmix/grid/plan.py's EVAL_COST note: the six benchmarks' log-likelihood tokens
HELDOUT_PAPER = 1000  # the paper profile's heldout.n
FLASK_SHARED = REPO.parent / "shared" / "data" / "flask"


def stage(project: Path, *args: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", *args], cwd=project, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(args)}: {done.stderr.strip()}")


def demo_project(cache: Path, base: Path) -> Path:
    """The demo's data/heldout, data/flask and data/benchmarks, as the pipeline builds them."""
    project = cache / "eval_lik"
    if (project / "data" / "done").exists():
        return project
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for source in SOURCES:
        params["fetch"][source]["path"] = str(REPO / params["fetch"][source]["path"])
    params["eval"]["flask"]["path"] = str(REPO / params["eval"]["flask"]["path"])
    params["eval"]["benchmarks"] = {t: str(REPO / p) for t, p in params["eval"]["benchmarks"].items()}
    params["eval"]["judge"]["hf_model"] = str(base)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for source in SOURCES:
        stage(project, "stages.fetch", source, f"data/fetched/{source}.jsonl")
        stage(project, "stages.subsample", source, f"data/fetched/{source}.jsonl", f"data/subsample/{source}.jsonl")
        stage(project, "stages.heldout", source, f"data/fetched/{source}.jsonl", f"data/subsample/{source}.jsonl",
              f"data/heldout/{source}.jsonl")  # fmt: skip
    stage(project, "stages.flask", "data/flask")
    for task in TASKS:
        stage(project, "stages.benchmarks", task, f"data/benchmarks/{task}")
    (project / "data" / "done").write_text("")
    return project


class Counted:
    """Tokens of lm-eval's loglikelihood requests, counted where HFLM receives them."""

    def __init__(self) -> None:
        from lm_eval.models.huggingface import HFLM

        self.fed = self.scored = 0
        original = HFLM._loglikelihood_tokens

        def counting(lm: Any, requests: Any, *args: Any, **kwargs: Any) -> Any:
            for _, context, continuation in requests:
                self.fed += len(context) + len(continuation)
                self.scored += len(continuation)
            return original(lm, requests, *args, **kwargs)

        HFLM._loglikelihood_tokens = counting  # type: ignore[method-assign]


def lik_tokens(
    project: Path, base: Path, flask: Path | None = None, code_limit: int | None = -1
) -> dict[str, list[int]]:
    """Tokens fed per item of each set, built as the stage builds them (no model needed)."""
    from transformers import AutoTokenizer

    from instmix.core.params import load
    from instmix.score.evaluate import build_items, read_inputs
    from instmix.score.params import LikParams

    params = load(LikParams, "eval.lik", project / "params.yaml")
    if code_limit != -1:
        import dataclasses

        params = dataclasses.replace(params, code_limit=code_limit, align_limit=None)
    inputs = read_inputs(project / "data" / "heldout", flask or project / "data" / "flask", params)
    held, generated, _ = build_items(AutoTokenizer.from_pretrained(base), inputs, params)
    per: dict[str, list[int]] = {}
    for item in [*held, *generated]:
        per.setdefault(item.set.split(":")[0], []).append(len(item.context) + len(item.continuation))
    return per


def shared_flask(cache: Path) -> Path | None:
    """The real FLASK eval set in data/flask's layout (the flask stage's file names), when it is here."""
    if not FLASK_SHARED.is_dir():
        return None
    from instmix.align.flask import FILES

    out = cache / "flask-real"
    names = {"eval_set": "flask_evaluation.jsonl", "skills": "skillset_description.json",
             "prompts": "judge_prompt.jsonl", "reviewers": "judge_reviewer.jsonl"}  # fmt: skip
    for key, name in names.items():
        (out / FILES[key]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FLASK_SHARED / name, out / FILES[key])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "instmix-bench")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    base = smollm2_base(args.cache)
    project = demo_project(args.cache, base)
    os.chdir(project)  # the stages read ./params.yaml
    from stages import eval_lik, eval_nlp

    counted = Counted()
    walls: dict[str, list[float]] = {"eval_nlp": [], "eval_lik": []}
    runs = {
        "eval_nlp": lambda: eval_nlp.main([str(base), "data/benchmarks", "out/nlp"]),
        "eval_lik": lambda: eval_lik.main([str(base), "data/heldout", "data/flask", "out/lik"]),
    }
    load = Path("/proc/loadavg").read_text().split()[0]
    for i in range(args.repeats):
        for name in list(runs) if i % 2 == 0 else list(runs)[::-1]:  # AB BA
            start = time.perf_counter()
            runs[name]()
            walls[name].append(time.perf_counter() - start)
    nlp_fed, nlp_scored = counted.fed // args.repeats, counted.scored // args.repeats
    per = lik_tokens(project, base)
    lik_fed = sum(sum(v) for v in per.values())
    lik_scored = json.loads(Path("out/lik/metrics.json").read_text())["lik"]["tokens_scored"]
    print(f"SmolLM2-135M-Instruct, fp32, {args.threads} threads, load {load} at start; best of {args.repeats}")
    print("| stage | wall (best) | tokens fed | scored tokens | tokens fed/s | scored tokens/s |")
    print("|---|---|---|---|---|---|")
    for name, fed, scored in (("eval_nlp", nlp_fed, nlp_scored), ("eval_lik", lik_fed, lik_scored)):
        wall = min(walls[name])
        print(f"| {name} | {wall:.1f} s | {fed} | {scored} | {fed / wall:.0f} | {scored / wall:.0f} |")
    # Paper scale: the demo's mean per held-out item; all 164 HumanEval problems and FLASK measured.
    real = lik_tokens(project, base, flask=shared_flask(args.cache), code_limit=None)
    held = statistics.mean(per["heldout"]) * HELDOUT_PAPER * len(SOURCES)
    code, align = sum(real["code"]), sum(real["align"])
    paper = held + code + align
    print(f"paper scale, eval_lik tokens fed: held-out {held:,.0f} ({statistics.mean(per['heldout']):.0f} per record "
          f"x {HELDOUT_PAPER} x {len(SOURCES)}), HumanEval {code:,} ({len(real['code'])} problems), FLASK {align:,} "
          f"({len(real['align'])} instances); total {paper:,.0f}")  # fmt: skip
    ratio = paper / NLP_PAPER_TOKENS
    print(f"eval_nlp at paper scale: ~{NLP_PAPER_TOKENS:,.0f} tokens fed; eval_lik / eval_nlp = {ratio:.1%}")


if __name__ == "__main__":
    main()
