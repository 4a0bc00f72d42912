"""report: every model's metrics beside the paper's published numbers (instmix.report).

    python -m stages.report <data dir> <reports dir> <base metrics> <paper results> <paper setup> <out dir>
        --profile NAME

Reads `report`, and the study's `seeds` and `settings` only to refuse what would train no model
or a model no stage builds (an empty or repeated list, an unknown setting); everything else
comes from the artifacts, whose metrics files record the params each stage used; <paper setup>
is the fidelity table's items (assets/paper_setup.yaml). Writes <out dir>/results.md,
results.csv, claims.json, olmix/{ratios,metrics}.csv and plots/*.png.
"""

from __future__ import annotations

from pathlib import Path

from instmix.core.params import StageError, check_seeds, check_settings, cli, load, read_section
from instmix.report.build import build_report
from instmix.report.params import ReportParams

USAGE = (
    "usage: python -m stages.report <data dir> <reports dir> <base metrics> <paper results> <paper setup> <out dir>"
    " --profile NAME"
)


def main(argv: list[str]) -> None:
    if len(argv) != 8 or argv[6] != "--profile":
        raise StageError(USAGE)
    data_dir, reports, base_metrics, paper_file, setup_file, out = map(Path, argv[:6])
    params = load(ReportParams, "report")
    check_seeds(read_section("seeds"))
    check_settings(read_section("settings"))
    for path, what in ((paper_file, "the paper's published numbers"), (setup_file, "the paper's setup")):
        if not path.is_file():
            raise StageError(f"{path}: no such file ({what})")
    summary = build_report(data_dir, reports, base_metrics, (paper_file, setup_file), out, params, argv[7])
    marks = ", ".join(f"{k} {v}" for k, v in summary["claims"].items())
    print(f"report: {summary['models']} models, {len(summary['plots'])} plots -> {out / 'results.md'}; {marks}")


if __name__ == "__main__":
    cli(main)
