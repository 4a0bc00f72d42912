"""mix@<setting>: one training mixture from the per-source samples (instmix.data.mix).

    python -m stages.mix <setting> <subsample dir> <out.jsonl>

Writes <out.jsonl> and <out>.metrics.json (sizes, lengths, the sweep x, the params used).
"""

from __future__ import annotations

from pathlib import Path

from instmix.core.files import metrics_path, write_json, write_jsonl
from instmix.core.params import StageError, cli, load
from instmix.core.records import read_record_file
from instmix.data.mix import MixParams, mix, needed_sources, sweep_point


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        raise StageError("usage: python -m stages.mix <setting> <subsample dir> <out.jsonl>")
    setting, sample_dir, out = argv
    params = load(MixParams, "mix")
    sweep_point(setting, params)  # an unknown setting stops here, before any reading
    samples = {source: read_record_file(Path(sample_dir) / f"{source}.jsonl") for source in needed_sources(setting)}
    mixture, metrics = mix(setting, samples, params)
    write_jsonl(out, mixture)
    write_json(metrics_path(out), metrics)
    print(f"mix@{setting}: {len(mixture)} records {metrics['records_per_source']} -> {out}")


if __name__ == "__main__":
    cli(main)
