"""Switch params.yaml between profiles: demo (as committed), local, paper (7B) and paper-13b.

    python -m stages.profile <demo|local|paper|paper-13b> [--data DIR]

Not a DVC stage: it edits params.yaml (keeping its comments) and sets its `profile` key;
`dvc exp run -S key=value` and `dvc repro` then work on top as usual. `{data}` in a profile
stands for --data (default ../shared/data), written as an absolute path.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from instmix.core.params import PARAMS_FILE, cli
from instmix.core.profile import DEFAULT_DATA, apply, profile_names


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="profile: " + ", ".join(profile_names()))
    parser.add_argument("--data", default=DEFAULT_DATA, help="directory of real files for the local profile")
    parser.add_argument("--params", type=Path, default=Path(PARAMS_FILE))
    args = parser.parse_args(argv)
    # Absolute: `dvc exp run --queue/--temp` runs in a copy under .dvc/tmp/exps, where ../shared/data is elsewhere.
    apply(args.name, args.params, str(Path(args.data).resolve()))
    print(f"{args.params}: profile {args.name}")


if __name__ == "__main__":
    cli(main)
