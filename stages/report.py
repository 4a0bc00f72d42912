"""report: every model's metrics beside the paper's published numbers (instmix.report).

    python -m stages.report <data dir> <reports dir> <base metrics> <paper results> <out dir> --profile NAME

Reads `report` and the study's `seeds` (refused when empty: it would train no model; the report
does not read the seeds' values otherwise); everything else comes from the artifacts, whose
metrics files record the params each stage used. Writes <out dir>/results.md, results.csv,
claims.json and plots/*.png.
"""

from __future__ import annotations

from pathlib import Path

from instmix.core.params import ParamsError, StageError, cli, load, parse, read_section
from instmix.report.build import build_report
from instmix.report.params import ReportParams

USAGE = (
    "usage: python -m stages.report <data dir> <reports dir> <base metrics> <paper results> <out dir> --profile NAME"
)


def main(argv: list[str]) -> None:
    if len(argv) != 7 or argv[5] != "--profile":
        raise StageError(USAGE)
    data_dir, reports, base_metrics, paper_file, out = map(Path, argv[:5])
    params = load(ReportParams, "report")
    if not parse(list[int], read_section("seeds"), "seeds"):
        raise ParamsError("seeds", [], "at least one training seed, e.g. [42] (an empty list trains no model)")
    if not paper_file.is_file():
        raise StageError(f"{paper_file}: no such file (the paper's published numbers)")
    summary = build_report(data_dir, reports, base_metrics, paper_file, out, params, argv[6])
    marks = ", ".join(f"{k} {v}" for k, v in summary["claims"].items())
    print(f"report: {summary['models']} models, {len(summary['plots'])} plots -> {out / 'results.md'}; {marks}")


if __name__ == "__main__":
    cli(main)
