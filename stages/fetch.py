"""fetch@<source>: read one instruction source and normalise it to the record schema.

    python -m stages.fetch <alpaca|codealpaca|p3> <out.jsonl>

Reads `fetch.<source>`. Writes <out.jsonl> (one record per line, in source order) and
<out>.metrics.json (counts, drops by reason, P3 tasks, the hub commit, the params used).
"""

from __future__ import annotations

from instmix.core.files import metrics_path, write_json, write_jsonl
from instmix.core.params import StageError, cli, load
from instmix.core.vocab import SOURCES
from instmix.data.fetch import fetch, params_class


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[0] not in SOURCES:
        raise StageError(f"usage: python -m stages.fetch <{'|'.join(SOURCES)}> <out.jsonl>")
    source, out = argv
    params = load(params_class(source), f"fetch.{source}")
    records, metrics = fetch(source, params)
    write_jsonl(out, records)
    write_json(metrics_path(out), metrics)
    print(f"fetch@{source}: {metrics['records']} records, {sum(metrics['dropped'].values())} dropped -> {out}")


if __name__ == "__main__":
    cli(main)
