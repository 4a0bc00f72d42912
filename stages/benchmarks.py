"""benchmarks@<task>: lay out one NLP benchmark in the columns lm-eval's built-in task reads.

    python -m stages.benchmarks <task> <out dir>

Reads `eval.benchmarks.<task>`: a file (MMLU: a folder) in a public format, or a `*.hub.yaml`
pin. Writes <out dir>/<split>.jsonl (a pin: <out dir>/hub.json) and <out dir>.metrics.json.
"""

from __future__ import annotations

from pathlib import Path

from instmix.core.files import metrics_path, write_json
from instmix.core.params import StageError, cli, parse, read_section
from instmix.core.vocab import TASKS
from instmix.nlp.benchmarks import prepare


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[0] not in TASKS:
        raise StageError(f"usage: python -m stages.benchmarks <{'|'.join(TASKS)}> <out dir>")
    task, out = argv[0], Path(argv[1])
    key = f"eval.benchmarks.{task}"
    source = parse(str, read_section(key), key)
    metrics = prepare(task, source, out)
    write_json(metrics_path(out), metrics)
    print(f"benchmarks@{task}: {metrics.get('docs', 'hub')} docs from {source}")


if __name__ == "__main__":
    cli(main)
