"""Check params.yaml before a run: every section as its stage reads it, and the rules across them.

    python -m stages.check [PARAMS] [-S key=value ...]    (default: params.yaml)

Not a DVC stage (`dvc repro --dry` runs no stage code, so it cannot see a bad value). `-S` sets
a key on top, as `dvc exp run -S` will (the file is not changed). Prints every problem at once,
one line each, and exits 2 if there is any; prints `params.yaml: ok` otherwise. Relative paths
are checked from the current directory, as the stages resolve them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from instmix.check import problems
from instmix.core.params import PARAMS_FILE, StageError, cli


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("params", nargs="?", default=PARAMS_FILE, help="the params file (default: params.yaml)")
    parser.add_argument("-S", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="set a key on top")
    args = parser.parse_args(argv)
    path, sets = Path(args.params), args.sets
    if bad := [s for s in sets if "=" not in s]:
        raise StageError(f"-S {bad[0]}: expected key=value")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
        for assignment in sets:  # as `dvc exp run -S` reads a value: YAML
            key, _, value = assignment.partition("=")
            *parents, leaf = key.split(".")
            node = params
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = yaml.safe_load(value)
    except (OSError, yaml.YAMLError, AttributeError, TypeError) as err:
        raise StageError(f"cannot read {path}: {err}".replace("\n", " ")) from err
    found = problems(params)
    for line in found:
        print(f"error: {line}", file=sys.stderr)
    if found:
        raise SystemExit(2)
    print(f"{path}: ok")


if __name__ == "__main__":
    if "--help" in sys.argv:
        print(__doc__)
    else:
        cli(main)
