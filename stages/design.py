"""Write a mixture design into params.yaml (not a DVC stage): every subset of the sources at one budget.

    python -m stages.design fixed (--records N | --tokens N) [--max-repeat R] [--no-train]

Adds `fixed_a`, `fixed_c`, `fixed_p`, `fixed_ac`, …, `fixed_acp` to `mixtures` (each subset's
sources weighted equally: fixed_ac is N/2 Alpaca + N/2 CodeAlpaca records) and to `settings`
(unless --no-train), keeping params.yaml's comments and your other mixtures. With the paper's
additive A … ACP beside them, the report's "Fixed budget vs additive" table reads composition
(same size) apart from size (AC has twice A's records and steps; fixed_ac has A's).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from instmix.core.params import PARAMS_FILE, StageError, cli, read_section
from instmix.core.profile import edit
from instmix.core.vocab import SOURCES
from instmix.data.mixtures import Budget, subset_design


def flow(mapping: dict[str, Any]) -> Any:
    """A mapping written on one line (flow style) in params.yaml."""
    from ruamel.yaml.comments import CommentedMap

    out = CommentedMap(mapping)
    out.fa.set_flow_style()
    return out


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.design", description=__doc__.split("\n\n")[0])
    parser.add_argument("design", choices=["fixed"], help="fixed: every subset of the sources at one budget")
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--records", type=int, help="records per mixture")
    size.add_argument("--tokens", type=int, help="supervised tokens per mixture")
    parser.add_argument("--max-repeat", type=float, default=1.0, help="epochs of a source's sample a share may take")
    parser.add_argument("--no-train", action="store_true", help="declare the mixtures, leave settings as they are")
    parser.add_argument("--params", type=Path, default=Path(PARAMS_FILE))
    args = parser.parse_args(argv)
    from ruamel.yaml.comments import CommentedMap

    try:
        design = subset_design(SOURCES, Budget(args.records, args.tokens), args.max_repeat)
    except StageError as err:
        raise StageError(f"stages.design: {err}") from None
    mixtures = CommentedMap(read_section("mixtures", args.params) or {})
    budget = {"records": args.records} if args.records is not None else {"tokens": args.tokens}
    for name, spec in design.items():
        mixtures[name] = flow({"weights": flow(spec.weights), "budget": flow(budget), "max_repeat": spec.max_repeat})
    settings = list(read_section("settings", args.params))
    if not args.no_train:
        settings += [name for name in design if name not in settings]
    edit(args.params, {"mixtures": mixtures, "settings": settings}, whole=("mixtures",))
    trained = "" if args.no_train else " and settings"
    print(f"{args.params}: {len(design)} mixtures in mixtures{trained}: {', '.join(design)}")


if __name__ == "__main__":
    cli(main)
