"""The report's own params (`report` in params.yaml): the only params section it reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from instmix.core.params import ParamsError


@dataclass(frozen=True)
class ReportParams:
    paper_size: Literal["7b", "13b", "both"] = "7b"
    """Which of the paper's models (LLaMA-2-7B, -13B or both) sits beside ours in tables and plots."""
    nlp_metric: Literal["acc", "acc_norm"] = "acc"
    """lm-eval metric per NLP task (the paper's numbers match plain acc); MMLU has acc only."""
    bootstrap_samples: int = 10000
    """Bootstrap resamples over the items every model shares (per NLP task, HumanEval problems,
    FLASK instances), for every interval of the report."""
    confidence: float = 0.95
    """Coverage of the bootstrap percentile intervals (and of the seed term's t widening)."""
    seed: int = 0
    """Seed of the bootstrap."""
    min_items: int = 30
    """Fewest shared items (documents of a task, problems, FLASK instances) on which a claim can
    be marked holds or reversed; a percentile bootstrap over fewer understates the noise."""

    def __post_init__(self) -> None:
        if self.bootstrap_samples < 100:
            raise ParamsError("bootstrap_samples", self.bootstrap_samples, "an integer >= 100")
        if self.min_items < 1:
            raise ParamsError("min_items", self.min_items, "an integer >= 1")
        if not 0.5 <= self.confidence < 1:
            raise ParamsError("confidence", self.confidence, "a number in [0.5, 1)")

    @property
    def sizes(self) -> tuple[str, ...]:
        return ("7b", "13b") if self.paper_size == "both" else (self.paper_size,)
