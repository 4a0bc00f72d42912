"""heldout@<source>: a seeded held-out set of `heldout.n` records, disjoint from the source's sample.

    python -m stages.heldout <source> <fetched.jsonl> <sample.jsonl> <out.jsonl>

Writes <out.jsonl>, <out>.ids (one id per line, in draw order) and <out>.metrics.json. When the
sample leaves fewer than `heldout.n` records, all are taken and one warning line says so.
"""

from __future__ import annotations

import sys
from pathlib import Path

from instmix.core.files import metrics_path, write_json, write_jsonl, write_lines
from instmix.core.params import StageError, cli, load
from instmix.core.records import read_record_file
from instmix.core.vocab import SOURCES
from instmix.data.heldout import HeldoutParams, heldout


def main(argv: list[str]) -> None:
    if len(argv) != 4 or argv[0] not in SOURCES:
        raise StageError(
            f"usage: python -m stages.heldout <{'|'.join(SOURCES)}> <fetched.jsonl> <sample.jsonl> <out.jsonl>"
        )
    source, fetched, sample_file, out = argv
    params = load(HeldoutParams, "heldout")
    held, metrics = heldout(source, read_record_file(fetched), read_record_file(sample_file), params)
    write_jsonl(out, held)
    write_lines(Path(out).with_suffix(".ids"), (r["id"] for r in held))
    write_json(metrics_path(out), metrics)
    if metrics["short_by"]:
        print(
            f"warning: heldout@{source}: heldout.n={params.n} but the sample leaves {len(held)} records; "
            f"holding out all {len(held)}",
            file=sys.stderr,
        )
    print(f"heldout@{source}: {len(held)} of {metrics['available_after_sample']} records left by the sample -> {out}")


if __name__ == "__main__":
    cli(main)
