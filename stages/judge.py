"""judge@<model id>: a judge scores the FLASK answers, FLASK's way (alignment, part 2; instmix.align).

    python -m stages.judge <answers.jsonl> <flask dir> <out dir> <cache dir>

Reads `eval.judge`. Re-judging never regenerates answers. Writes <out dir>/judgments.jsonl,
<out dir>/breakdown.json and <out dir>/metrics.json (skill scores, the params used); API
responses are cached in <cache dir>, kept between runs so no call is paid twice.
"""

from __future__ import annotations

from pathlib import Path

from instmix.align.judge import judge, read_answers
from instmix.align.judge_params import JudgeParams
from instmix.core.files import write_json, write_jsonl
from instmix.core.params import StageError, cli, load
from instmix.core.stack import check_stack


def main(argv: list[str]) -> None:
    if len(argv) != 4:
        raise StageError("usage: python -m stages.judge <answers.jsonl> <flask dir> <out dir> <cache dir>")
    answers, flask, out, cache = map(Path, argv)
    params = load(JudgeParams, "eval.judge")
    check_stack()
    judgments, metrics, breakdown = judge(read_answers(answers), params, flask, cache)
    write_jsonl(out / "judgments.jsonl", judgments)
    write_json(out / "breakdown.json", breakdown)
    write_json(out / "metrics.json", metrics)
    align = metrics["align"]
    print(
        f"judge: {align['instances']} instances, {align['parse_failures']} parse failures, "
        f"avg {align['avg']} ({align['judge']}) -> {out / 'metrics.json'}"
    )


if __name__ == "__main__":
    cli(main)
