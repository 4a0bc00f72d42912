"""report.effect_plots: the claims forest plot and the factorial plot, drawn or skipped with a reason."""

from __future__ import annotations

from pathlib import Path

import matplotlib

from instmix.core.vocab import BASE_ROW, TABLE_SETTINGS
from instmix.report.claims import ClaimResult
from instmix.report.effect_plots import paper_value, plot_factorial, plot_forest
from instmix.report.stats import Stat

matplotlib.use("Agg")


def test_paper_cells_give_their_number_or_none() -> None:
    assert paper_value("+0.60 (holds)") == 0.6 and paper_value("-1.2 (does not hold)") == -1.2
    assert paper_value("holds (Figure 2)") is None and paper_value("—") is None


def test_the_forest_plot_draws_evaluable_claims_only(tmp_path: Path) -> None:
    missing = ClaimResult("x", "a claim", "m", "not evaluable")
    assert plot_forest([missing], ["7b"], tmp_path / "f.png") == "no claim could be evaluated"
    lowers = ClaimResult("y", "P lowers", "m", "holds", delta=-2.0, interval=(-3.0, -1.0), sign=-1,
                         paper={"7b": "-2.4 (holds)"})  # fmt: skip
    assert plot_forest([missing, lowers], ["7b"], tmp_path / "f.png") is None
    assert (tmp_path / "f.png").stat().st_size > 5_000


def test_the_factorial_plot_needs_all_eight_settings(tmp_path: Path) -> None:
    stats = {s: {"nlp_avg": Stat(50.0 + i, None, 1)} for i, s in enumerate((BASE_ROW, *TABLE_SETTINGS))}
    assert plot_factorial(stats, None, 0.95, tmp_path / "a.png") is None
    del stats["CP"]
    assert plot_factorial(stats, None, 0.95, tmp_path / "b.png").startswith("not all of none, A, C, P")
    assert not (tmp_path / "b.png").exists()
