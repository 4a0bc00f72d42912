"""base: the base model as a plain Hugging Face model directory (instmix.train.base).

    python -m stages.base <out dir>

Reads `model`. Writes <out dir> and <out dir>.metrics.json (architecture, the params used).
"""

from __future__ import annotations

from pathlib import Path

from instmix.core.files import metrics_path, write_json
from instmix.core.params import StageError, cli, load
from instmix.train.base import ModelParams, build


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise StageError("usage: python -m stages.base <out dir>")
    params = load(ModelParams, "model")
    out = Path(argv[0])
    write_json(metrics_path(out), build(params, out))
    print(f"base: {params.base} -> {out}")


if __name__ == "__main__":
    cli(main)
