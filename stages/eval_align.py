"""eval_align@<model id>: the model answers the FLASK instructions (alignment, part 1; instmix.align).

    python -m stages.eval_align <model dir> <flask dir> <out dir>

Reads `eval.align`. Writes <out dir>/answers.jsonl (one row per selected FLASK instance) and
<out dir>/answers.metrics.json (instances, empty answers, the params used).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from instmix.align.answer import AlignParams, answer, load_eval_set
from instmix.core.files import write_json, write_jsonl
from instmix.core.params import StageError, cli, load
from instmix.core.stack import check_stack


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        raise StageError("usage: python -m stages.eval_align <model dir> <flask dir> <out dir>")
    model_dir, flask, out = map(Path, argv)
    params = load(AlignParams, "eval.align")
    check_stack()
    if not (model_dir / "config.json").is_file():
        raise StageError(f"{model_dir} is not a model directory (no config.json)")
    rows = answer(model_dir, load_eval_set(flask, params), params)
    write_jsonl(out / "answers.jsonl", rows)
    empty = sum(not row["response"] for row in rows)
    write_json(out / "answers.metrics.json", {"instances": len(rows), "empty": empty, "params": asdict(params)})
    print(f"eval_align: {len(rows)} FLASK answers ({empty} empty) -> {out / 'answers.jsonl'}")


if __name__ == "__main__":
    cli(main)
