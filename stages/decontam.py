"""decontam: 13-gram overlap of each training sample with each evaluation set; reported, nothing dropped.

    python -m stages.decontam <subsample dir> <benchmarks dir> <flask dir> <out dir>

Reads `eval.decontam`. The eval sets are the converted benchmarks (data/benchmarks) and
FLASK's eval set (data/flask) unless `eval.decontam` names other files. Writes
<out>/overlaps.jsonl and <out>/metrics.json (instmix.data.decontam).
"""

from __future__ import annotations

from pathlib import Path

from instmix.core.files import write_json, write_jsonl
from instmix.core.params import StageError, cli, load
from instmix.core.records import read_record_file
from instmix.core.vocab import SOURCES
from instmix.data.decontam import DecontamParams, check_paths, decontaminate, with_eval_files


def main(argv: list[str]) -> None:
    if len(argv) != 4:
        raise StageError("usage: python -m stages.decontam <subsample dir> <benchmarks dir> <flask dir> <out dir>")
    subsample_dir, benchmarks, flask, out = map(Path, argv)
    params = with_eval_files(load(DecontamParams, "eval.decontam"), benchmarks, flask)
    check_paths(params)
    samples = {source: read_record_file(subsample_dir / f"{source}.jsonl") for source in SOURCES}
    summary, rows = decontaminate(params, samples)
    write_jsonl(out / "overlaps.jsonl", rows)
    write_json(out / "metrics.json", summary)
    flagged = {
        f"{source}/{eval_set}": pair["overlapping"]
        for source, sets in summary["decontam"].items()
        for eval_set, pair in sets.items()
        if pair.get("overlapping")
    }
    print(f"decontam: {len(rows)} (record, eval item) overlaps; eval items overlapping per pair: {flagged or 'none'}")


if __name__ == "__main__":
    cli(main)
