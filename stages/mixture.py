"""mixture@<name>: one of your own mixtures (params `mixtures`): a budget split over the sources by
weights (instmix.data.mixtures).

    python -m stages.mixture <name> <subsample dir> <out.jsonl> <base model dir>

Reads `mix.seed` (the shuffle, as every mixture) and `mixtures.<name>`; the base model's tokenizer
counts a token budget's supervised tokens (a records budget does not read it). Writes <out.jsonl>
and <out>.metrics.json (records, epochs and tokens per source, the budget, the params used).
"""

from __future__ import annotations

from pathlib import Path

from instmix.core.files import metrics_path, write_json, write_jsonl
from instmix.core.params import StageError, cli, load
from instmix.core.records import read_record_file
from instmix.data.mix import MixParams
from instmix.data.mixtures import Mixture, build, check_name, token_counter

USAGE = "usage: python -m stages.mixture <name> <subsample dir> <out.jsonl> <base model dir>"


def main(argv: list[str]) -> None:
    if len(argv) != 4:
        raise StageError(USAGE)
    name, sample_dir, out, base = argv
    check_name(name)
    seed, spec = load(MixParams, "mix").seed, load(Mixture, f"mixtures.{name}")
    samples = {s: read_record_file(Path(sample_dir) / f"{s}.jsonl") for s in spec.weights}
    tokens = token_counter(base) if spec.budget_tokens is not None else None
    records, metrics = build(name, spec, samples, seed, tokens)
    write_jsonl(out, records)
    write_json(metrics_path(out), metrics)
    print(f"mixture@{name}: {len(records)} records {metrics['records_per_source']} -> {out}")


if __name__ == "__main__":
    cli(main)
