"""Optimizer steps per epoch at paper scale (20,000 examples per source, global batch 64,
max_length 512) for A, C, P and ACP: with examples as batch items (padded or padding-free, the
default) and with best-fit-decreasing packing (a batch item is a packed row).

Token lengths come from the real samples in ../shared/data (Alpaca, CodeAlpaca, the P3 T0-train
sample, read with the pipeline's readers and T0 task filter), tokenised as sft@<setting> does
(prompt + " " + response + EOS) with the SmolLM2 tokenizer, a stand-in for LLaMA-2's (gated).
The packed row count of each source is measured with TRL's own `pack_dataset(strategy="bfd")`
on its sample and scaled to 20,000 examples.

    python bench/steps_per_epoch.py [--base DIR] [--cache DIR]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from sft_packing import SHARED_DATA, SHARED_SOURCES, smollm2_base  # noqa: E402

PER_SOURCE, GLOBAL_BATCH, MAX_LENGTH = 20_000, 64, 512


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, help="a model directory for the tokenizer (default: SmolLM2)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "instmix-bench")
    args = parser.parse_args()
    if not SHARED_DATA.is_dir():
        sys.exit(f"{SHARED_DATA} is missing: this benchmark needs the shared samples")
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl.data_utils import pack_dataset

    from instmix.data.fetch import P3Params, select_tasks
    from instmix.data.sources import Drops, p3_task_files, read_instructions, read_p3_task

    tokenizer = AutoTokenizer.from_pretrained(args.base or smollm2_base(args.cache))
    drops = Drops()
    records = {s: list(read_instructions(s, SHARED_DATA / SHARED_SOURCES[s], drops)) for s in ("alpaca", "codealpaca")}
    files = p3_task_files(SHARED_DATA / SHARED_SOURCES["p3"])
    tasks = select_tasks(list(files), P3Params(path="", datasets="t0_train"))
    records["p3"] = [r for t in tasks for r in read_p3_task(t, files[t], drops)]
    rows_per_example = {}
    print(f"{'source':10s} {'sample':>7s} {'mean tokens':>11s} {'cut at 512':>10s} {'rows/example (bfd)':>18s}")
    for source, rs in records.items():
        texts = [r["prompt"] + " " + r["response"] for r in rs]
        lengths = [min(len(ids) + 1, MAX_LENGTH) for ids in tokenizer(texts)["input_ids"]]  # + EOS
        packed = pack_dataset(Dataset.from_dict({"input_ids": [[1] * n for n in lengths]}), MAX_LENGTH, "bfd")
        rows_per_example[source] = len(packed) / len(lengths)
        cut = sum(n == MAX_LENGTH for n in lengths) / len(lengths)
        mean = sum(lengths) / len(lengths)
        print(f"{source:10s} {len(rs):7,d} {mean:11.1f} {cut:10.2%} {rows_per_example[source]:18.3f}")
    mixes = {"A": ["alpaca"], "C": ["codealpaca"], "P": ["p3"], "ACP": ["alpaca", "codealpaca", "p3"]}
    print(f"\nsteps per epoch, {PER_SOURCE:,} examples per source, global batch {GLOBAL_BATCH}:")
    print(f"{'setting':8s} {'examples':>9s} {'examples per step':>18s} {'bfd packing':>12s} {'paper':>6s}")
    for name, sources in mixes.items():
        examples = PER_SOURCE * len(sources)
        per_step = math.ceil(examples / GLOBAL_BATCH)
        rows = sum(PER_SOURCE * rows_per_example[s] for s in sources)
        print(f"{name:8s} {examples:9,d} {per_step:18,d} {math.ceil(rows / GLOBAL_BATCH):12,d} {per_step:6,d}")


if __name__ == "__main__":
    main()
