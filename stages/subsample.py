"""subsample@<source>: a seeded random sample of `subsample.n` records after exact deduplication.

    python -m stages.subsample <source> <fetched.jsonl> <out.jsonl>

Writes <out.jsonl>, <out>.ids (one id per line, in sample order) and <out>.metrics.json.
"""

from __future__ import annotations

from pathlib import Path

from instmix.core.files import metrics_path, write_json, write_jsonl, write_lines
from instmix.core.params import StageError, cli, load
from instmix.core.records import read_record_file
from instmix.core.vocab import SOURCES
from instmix.data.subsample import SubsampleParams, subsample


def main(argv: list[str]) -> None:
    if len(argv) != 3 or argv[0] not in SOURCES:
        raise StageError(f"usage: python -m stages.subsample <{'|'.join(SOURCES)}> <fetched.jsonl> <out.jsonl>")
    source, fetched, out = argv
    params = load(SubsampleParams, "subsample")
    sample, metrics = subsample(source, read_record_file(fetched), params)
    write_jsonl(out, sample)
    write_lines(Path(out).with_suffix(".ids"), (r["id"] for r in sample))
    write_json(metrics_path(out), metrics)
    print(f"subsample@{source}: {len(sample)} of {metrics['available']} records -> {out}")


if __name__ == "__main__":
    cli(main)
