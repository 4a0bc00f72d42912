"""eval_lik@<model id>: teacher-forced likelihood of held-out records, HumanEval's canonical solutions
and FLASK's reference answers (instmix.score).

    python -m stages.eval_lik <model dir> <held-out dir> <flask dir> <out dir>

Reads `eval.lik`. Writes <out dir>/items.jsonl (one row per scored item: set, id, nll, tokens, bytes)
and <out dir>/metrics.json (per-source held-out bits per byte and mean token NLL, the code and align
sets', the params used). Wall time goes to stdout only: the outputs are deterministic.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from instmix.core import hub
from instmix.core.files import write_json, write_jsonl
from instmix.core.params import ParamsError, StageError, cli, load
from instmix.core.stack import check_stack
from instmix.score.evaluate import evaluate, read_inputs, summary
from instmix.score.likelihood import resolve_device
from instmix.score.params import LikParams

USAGE = "usage: python -m stages.eval_lik <model dir> <held-out dir> <flask dir> <out dir>"


def main(argv: list[str]) -> None:
    if len(argv) != 4:
        raise StageError(USAGE)
    model_dir, heldout, flask, out = map(Path, argv)
    params = load(LikParams, "eval.lik")
    try:
        resolve_device(params.device)  # a GPU asked for where none is: before any work
    except ParamsError as err:
        raise err.under("eval.lik") from None
    check_stack()
    if not (model_dir / "config.json").is_file():
        raise StageError(f"{model_dir} is not a model directory (no config.json); run the base or sft stage first")
    hub.go_offline()  # the model and every input are local
    inputs = read_inputs(heldout, flask, params)
    start = time.perf_counter()
    rows, metrics = evaluate(model_dir, inputs, params)
    wall = time.perf_counter() - start
    write_jsonl(out / "items.jsonl", rows)
    write_json(out / "metrics.json", metrics)
    tokens = metrics["lik"]["tokens_scored"]
    print(f"eval_lik: {summary(metrics)}")
    print(f"eval_lik: {len(rows)} items, {tokens} tokens scored in {wall:.1f} s ({tokens / wall:.0f} tokens/s)")


if __name__ == "__main__":
    if "--help" in sys.argv:
        print(__doc__)
    else:
        cli(main)
