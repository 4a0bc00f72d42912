"""The report stage at paper scale: 20 models with per-item files of the full benchmark sizes.

    python bench/report_scale.py [--samples 10000]

Synthesises, for 20 model ids (base; A ... ACP, ratio, count and 5 sweep points at seed 42; a
second seed of A, C, P, AC and ACP), the files the evaluation stages write: NLP samples for
ARC-Challenge (1,172), Winogrande (1,267), PIQA (1,838), MMLU (14,042 over 57 subjects), RACE
(1,045) and HellaSwag (10,042 documents), HumanEval (164 problems x 10 samples) and FLASK
judgments (1,180 instances x 3 skills), with their metrics.json; then runs `python -m
stages.report` on them as DVC does (one process, `report.bootstrap_samples` resamples) and
prints its wall time. Numbers: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from instmix.core.files import write_json, write_jsonl  # noqa: E402
from instmix.core.vocab import SETTINGS as TRAINED  # noqa: E402  (the `settings` param: the 9 trained)

SIZES = {"arc_challenge": 1172, "winogrande": 1267, "piqa": 1838, "mmlu": 14042, "race": 1045, "hellaswag": 10042}
SKILL_NAMES = ["Logical Correctness", "Factuality", "Commonsense Understanding", "Comprehension", "Completeness",
               "Insightfulness", "Readability", "Conciseness"]  # fmt: skip
SETTINGS = ["A", "C", "P", "AC", "AP", "CP", "ACP", "ratio", "count", "ratio-0.5", "ratio-1.5", "count-5000",
            "count-10000", "count-15000"]  # fmt: skip
MODELS = ["base", *(f"{s}-42" for s in SETTINGS), *(f"{s}-7" for s in ("A", "C", "P", "AC", "ACP"))]


def write_model(reports: Path, model: str, rng: np.random.Generator) -> None:
    skill = float(rng.uniform(-0.05, 0.05))
    nlp_rows, nlp = [], {}
    for task, n in SIZES.items():
        acc = (rng.random(n) < 0.5 + skill).astype(float)
        subjects = [f"mmlu_s{i % 57}" for i in range(n)] if task == "mmlu" else [task] * n
        pairs = enumerate(zip(subjects, acc.tolist(), strict=True))
        nlp_rows += [{"task": t, "doc_id": i, "acc": a} for i, (t, a) in pairs]
        nlp[task] = {"acc": float(acc.mean()), "n": n}
    nlp["avg"] = float(np.mean([nlp[t]["acc"] for t in SIZES]))
    write_jsonl(reports / "eval/nlp" / model / "samples.jsonl", nlp_rows)
    write_json(reports / "eval/nlp" / model / "metrics.json", {"nlp": nlp, "lm_eval_version": "0.4.13", "params": {}})
    passed = rng.random((164, 10)) < 0.15 + skill
    code_rows = [{"task_id": f"HumanEval/{p}", "sample": s, "passed": bool(passed[p, s])} for p in range(164)
                 for s in range(10)]  # fmt: skip
    write_jsonl(reports / "eval/code" / model / "samples.jsonl", code_rows)
    code = {"pass@1": float(passed.mean()), "pass@10": float(passed.any(axis=1).mean()), "n": 10, "problems": 164}
    write_json(reports / "eval/code" / model / "metrics.json", {"code": code | {"sandboxed": True}, "params": {}})
    judgments = []
    for idx in range(1180):
        names = rng.choice(SKILL_NAMES, size=3, replace=False)
        judgments.append({"idx": idx, "scores": {str(k): float(rng.integers(1, 6)) for k in names}})
    write_jsonl(reports / "eval/align" / model / "judgments.jsonl", judgments)
    align = {"avg": 60.0, "instances": 1180, "parse_failures": 0, "judge": "gpt-4-0613"}
    write_json(reports / "eval/align" / model / "metrics.json", {"align": align, "params": {}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="instmix-report-scale."))
    rng = np.random.default_rng(0)
    for model in MODELS:
        write_model(root / "reports", model, rng)
    (root / "params.yaml").write_text(
        json.dumps({"report": {"bootstrap_samples": args.samples}, "seeds": [42, 7], "settings": list(TRAINED)})
    )
    command = [sys.executable, "-m", "stages.report", str(root / "data"), str(root / "reports"),
               str(root / "models/base.metrics.json"), str(REPO / "assets/paper_results.yaml"),
               str(REPO / "assets/paper_setup.yaml"), str(root / "out"), "--profile", "paper"]  # fmt: skip
    env = {"PYTHONPATH": str(REPO), "PATH": str(Path(sys.executable).parent)}
    start = time.perf_counter()
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode:
        sys.exit(result.stderr[-2000:])
    print(result.stdout.strip())
    print(f"report stage: {len(MODELS)} models, {args.samples:,} resamples: {wall:.1f} s wall ({root})")


if __name__ == "__main__":
    main()
