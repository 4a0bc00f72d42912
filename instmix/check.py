"""Check a whole params.yaml before any run: every section as its stage reads it, plus the rules
across sections that no single stage sees (unknown keys, seeds, settings, sweep ids, paths).

`problems(params)` returns every problem found, one line each, so a user fixes them in one pass;
`python -m stages.check` prints them. Nothing heavy is imported (no torch): it runs in about a second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from instmix.core import hub
from instmix.core.params import (
    PARAMS_FILE,
    ParamsError,
    StageError,
    check_seeds,
    check_settings,
    parse,
    section_of,
    shown,
)
from instmix.core.vocab import SOURCES, TASKS
from instmix.data.mixtures import check_name, shares

TOP_LEVEL = (
    "profile",
    "seeds",
    "settings",
    "mixtures",
    "fetch",
    "subsample",
    "heldout",
    "mix",
    "model",
    "sft",
    "eval",
    "report",
)
EVAL = ("benchmarks", "flask", "nlp", "code", "align", "judge", "decontam", "lik")


def sections() -> dict[str, Any]:
    """Each params section -> the dataclass its stage parses it into."""
    from instmix.align.answer import AlignParams
    from instmix.align.flask import FlaskParams
    from instmix.align.judge_params import JudgeParams
    from instmix.code.humaneval import CodeParams
    from instmix.data.decontam import DecontamParams
    from instmix.data.fetch import InstructionParams, P3Params
    from instmix.data.heldout import HeldoutParams
    from instmix.data.mix import MixParams
    from instmix.data.mixtures import Mixture
    from instmix.data.subsample import SubsampleParams
    from instmix.nlp.harness import NLPParams
    from instmix.report.params import ReportParams
    from instmix.score.params import LikParams
    from instmix.train.base import ModelParams
    from instmix.train.config import SFTParams

    return {
        "fetch.alpaca": InstructionParams, "fetch.codealpaca": InstructionParams, "fetch.p3": P3Params,
        "subsample": SubsampleParams, "heldout": HeldoutParams, "mix": MixParams,
        "mixtures": dict[str, Mixture], "model": ModelParams,
        "sft": SFTParams,
        "eval.flask": FlaskParams, "eval.nlp": NLPParams, "eval.code": CodeParams, "eval.align": AlignParams,
        "eval.judge": JudgeParams, "eval.decontam": DecontamParams, "eval.lik": LikParams, "report": ReportParams,
    }  # fmt: skip


LIK_MIRRORS = {  # eval.lik key -> (section, key) it must equal
    "template": ("sft", "template"), "max_length": ("sft", "max_length"), "code_limit": ("eval.code", "limit"),
    "code_prompt_template": ("eval.code", "prompt_template"), "align_template": ("eval.align", "template"),
    "align_idx_max": ("eval.align", "idx_max"), "align_top_skills": ("eval.align", "top_skills"),
    "align_limit": ("eval.align", "limit"), "align_seed": ("eval.align", "seed"),
}  # fmt: skip


def unknown_keys(params: dict[str, Any]) -> Iterator[str]:
    for prefix, known, node in (("", TOP_LEVEL, params), ("eval.", EVAL, params.get("eval")),
                                ("fetch.", SOURCES, params.get("fetch"))):  # fmt: skip
        if isinstance(node, dict):
            for key in sorted(set(node) - set(known), key=str):
                yield str(ParamsError(f"{prefix}{key}", node[key], f"unknown key; known keys: {', '.join(known)}"))


def existing(key: str, path: Any, what: str) -> None:
    if isinstance(path, str) and not Path(path).exists():
        raise ParamsError(key, path, f"{what} (no such file or directory here)")


def cross_rules(params: dict[str, Any], parsed: dict[str, Any]) -> Iterator[Callable[[], None]]:
    """The checks that span sections, each a thunk raising ParamsError."""

    def seeds() -> None:
        check_seeds(params.get("seeds"))

    def settings() -> None:
        check_settings(params.get("settings"), params.get("mixtures") or {})

    def mixture_names() -> None:
        for name in params.get("mixtures") or {}:
            check_name(str(name))

    def mixture_shares() -> None:
        """A records budget no sample of subsample.n can fill, before any data is read."""
        subsample = parsed.get("subsample")
        for name, spec in parsed.get("mixtures", {}).items():
            if subsample is not None and spec.budget_records is not None:
                for source, count in shares(spec.weights, spec.budget_records).items():
                    if count > spec.max_repeat * subsample.n:
                        most = spec.max_repeat * subsample.n
                        allowed = f"{source}'s share ({count}) within max_repeat x subsample.n = {most:g} records"
                        raise ParamsError(f"mixtures.{name}.budget.records", spec.budget_records, allowed)

    def count_is_acp() -> None:
        mix, subsample = parsed.get("mix"), parsed.get("subsample")
        if mix is not None and subsample is not None:
            for i, sweep_id in enumerate(mix.sweep):
                if sweep_id == f"count-{subsample.n}":
                    raise ParamsError(f"mix.sweep[{i}]", sweep_id, f"not ACP again (subsample.n is {subsample.n})")

    def path(key: str, what: str) -> Callable[[], None]:
        def rule() -> None:
            value = section_of(params, key.rsplit(".", 1)[0]).get(key.rsplit(".", 1)[1])
            existing(key, value, what)
            if isinstance(value, str) and hub.is_pin(value) and Path(value).is_file():
                hub.read_pin(value)

        return rule

    def benchmark_tasks() -> None:
        for task, value in parse(dict[str, str], section_of(params, "eval.benchmarks"), "eval.benchmarks").items():
            if task not in TASKS:
                raise ParamsError(f"eval.benchmarks.{task}", value, "one of " + ", ".join(TASKS))

    def lik_mirror(key: str, section: str, name: str) -> Callable[[], None]:
        """eval.lik repeats the values it must share (a stage reads only its own section)."""

        def rule() -> None:
            lik, other = parsed.get("eval.lik"), parsed.get(section)
            if lik is not None and other is not None and getattr(lik, key) != getattr(other, name):
                allowed = f"{shown(getattr(other, name))}, as {section}.{name} (eval_lik scores what it measures)"
                raise ParamsError(f"eval.lik.{key}", getattr(lik, key), allowed)

        return rule

    yield from (seeds, settings, mixture_names, mixture_shares, count_is_acp, benchmark_tasks)
    yield from (lik_mirror(key, *mirrored) for key, mirrored in LIK_MIRRORS.items())
    yield from (path(f"fetch.{source}.path", "a file, folder or *.hub.yaml pin") for source in SOURCES)
    benchmarks = (params.get("eval") or {}).get("benchmarks")
    for task in benchmarks if isinstance(benchmarks, dict) else {}:
        yield path(f"eval.benchmarks.{task}", "a file, folder or *.hub.yaml pin")
    yield path("eval.flask.path", "a folder or *.github.yaml pin")


def problems(params: Any) -> list[str]:
    """Every problem of a params tree, one line each; [] when a run can start."""
    if not isinstance(params, dict):
        return [f"{PARAMS_FILE}: expected a mapping of sections, got {type(params).__name__}"]
    found = list(unknown_keys(params))
    parsed = {}
    for name, cls in sections().items():
        try:
            parsed[name] = parse(cls, section_of(params, name), name)
        except StageError as err:
            found.append(str(err))
    for rule in cross_rules(params, parsed):
        try:
            rule()
        except StageError as err:
            found.append(str(err))
    return found
