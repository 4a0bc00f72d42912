"""flask: FLASK's eval set, skill rubrics, judge prompts and reviewers, copied to one local folder.

    python -m stages.flask <out dir>

Reads `eval.flask` (a folder, or a `*.github.yaml` pin to a commit checked against sha256).
Writes <out dir>/{eval_set.jsonl, skills.json, prompts.jsonl, reviewers.jsonl} and
<out dir>.metrics.json (instances, skills, source, sha256, the params used).
"""

from __future__ import annotations

from pathlib import Path

from instmix.align.flask import FlaskParams, copy_files
from instmix.core.files import metrics_path, write_json
from instmix.core.params import StageError, cli, load


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise StageError("usage: python -m stages.flask <out dir>")
    out = Path(argv[0])
    metrics = copy_files(load(FlaskParams, "eval.flask"), out)
    write_json(metrics_path(out), metrics)
    print(f"flask: {metrics['instances']} instances, {metrics['skills']} skills from {metrics['source']} -> {out}")


if __name__ == "__main__":
    cli(main)
