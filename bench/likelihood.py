"""Speed of the teacher-forced scorer (instmix.score.likelihood) on CPU: padded vs packed batches.

Scores the response of each record given its prompt (prompt + "\\n" as the context), for an
equal, seeded sample of each demo source (assets/demo: Alpaca, CodeAlpaca, P3, read as fetch
reads them) with SmolLM2-135M-Instruct (built once by the base stage into --cache), fp32, sdpa,
max_length 512, batch_size 8 (padded: 8 sequences a forward pass; packed: 8 rows of up to 512).
Measured per layout:
- tokens/s: the sequences' tokens fed (context + continuation, no padding) per wall second;
- continuation tokens/s: the scored tokens per wall second;
- padding: pad tokens / all tokens fed (0 when packed, but for the tails of the rows).
Other jobs may share the cores, so the layouts run --repeats times alternated (AB BA) and the best
run of each counts. Both layouts' mean token NLLs are compared (they must agree to ~1e-5).

    python bench/likelihood.py [--per-source 40] [--repeats 2] [--threads 2] [--base DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: `python bench/likelihood.py`

from instmix.core import hub  # noqa: E402
from instmix.score.likelihood import (  # noqa: E402
    Layout,
    Score,
    encode_pair,
    load_model,
    packed_batches,
    padded_batches,
    prepare,
    score_texts,
)

DEMO = REPO / "assets" / "demo"
MAX_LENGTH, BATCH_SIZE = 512, 8


def demo_pairs(per_source: int, seed: int) -> list[tuple[str, str]]:
    """(prompt + newline, response) for `per_source` records of each demo source, shuffled."""
    from instmix.data.sources import Drops, p3_task_files, read_instructions, read_p3_task

    drops = Drops()
    sources = {s: list(read_instructions(s, DEMO / f"{s}.json", drops)) for s in ("alpaca", "codealpaca")}
    files = p3_task_files(DEMO / "p3")
    sources["p3"] = [r for task, paths in files.items() for r in read_p3_task(task, paths, drops)]
    rng = random.Random(seed)
    records = [r for name in sorted(sources) for r in rng.sample(sources[name], min(per_source, len(sources[name])))]
    rng.shuffle(records)
    return [(r["prompt"] + "\n", r["response"]) for r in records]


def fed_tokens(tokenizer: Any, pairs: list[tuple[str, str]], layout: str) -> tuple[int, int]:
    """(sequence tokens, all tokens fed with padding) for a layout, from the scorer's own batching."""
    seqs = [prepare(*encode_pair(tokenizer, c, x)[:2], MAX_LENGTH) for c, x in pairs]
    real = sum(len(s.ids) for s in seqs)
    packed = layout == "packed"
    batches = packed_batches(seqs, BATCH_SIZE, MAX_LENGTH) if packed else padded_batches(seqs, BATCH_SIZE)
    total = sum(len(rows) * max(sum(len(seqs[i].ids) for i in row) for row in rows) for rows in batches)
    return real, total


def smollm2_base(cache: Path) -> Path:
    """models/base for model.base: smollm2, built once by the base stage as DVC runs it."""
    out = cache / "smollm2"
    if not (out / "config.json").exists():
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "params.yaml").write_text("model:\n  base: smollm2\n")
        env = dict(os.environ, PYTHONPATH=str(REPO))
        subprocess.run([sys.executable, "-m", "stages.base", out.name], cwd=cache, env=env, check=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-source", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--base", type=Path, help="a model directory (default: SmolLM2 built by the base stage)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "instmix-bench")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    hub.go_offline()
    base = args.base or smollm2_base(args.cache)
    model, tokenizer = load_model(base, device="cpu", dtype="float32")
    pairs = demo_pairs(args.per_source, seed=0)
    score_texts(model, tokenizer, pairs[:4], max_length=MAX_LENGTH, progress=False)  # warm-up
    pairs_ab: list[tuple[Layout, Layout]] = [("padded", "packed"), ("packed", "padded")]
    alternated = [layout for i in range(args.repeats) for layout in pairs_ab[i % 2]]
    best: dict[str, float] = {}
    scores: dict[str, list[Score]] = {}
    load = Path("/proc/loadavg").read_text().split()[0]
    for layout in alternated:  # AB BA ...
        start = time.perf_counter()
        scores[layout] = score_texts(
            model, tokenizer, pairs, layout=layout, batch_size=BATCH_SIZE, max_length=MAX_LENGTH, progress=False
        )
        wall = time.perf_counter() - start
        print(f"  {layout}: {wall:.2f} s", flush=True)
        best[layout] = min(best.get(layout, wall), wall)
    scored = sum(s.tokens for s in scores["padded"])
    drift = max(abs(a.mean_nll - b.mean_nll) for a, b in zip(scores["padded"], scores["packed"], strict=True))
    print(f"{len(pairs)} pairs, {scored} continuation tokens; {args.threads} threads, load {load} at start")
    print(f"max |mean NLL padded - packed| = {drift:.2e} nats/token")
    print("| layout | tokens fed (with padding) | padding | wall (best) | tokens/s | continuation tokens/s |")
    print("|---|---|---|---|---|---|")
    for layout in ("padded", "packed"):
        real, total = fed_tokens(tokenizer, pairs, layout)
        wall = best[layout]
        row = f"| {layout} | {real} ({total}) | {1 - real / total:.1%} | {wall:.2f} s | {real / wall:.0f} "
        print(row + f"| {scored / wall:.0f} |")
    print(f"packed / padded speed: {best['padded'] / best['packed']:.2f}x")


if __name__ == "__main__":
    main()
