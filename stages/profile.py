"""Switch params.yaml between profiles: demo (as committed), local and paper.

    python -m stages.profile <demo|local|paper> [--data DIR]

A profile (profiles/<name>.yaml) sets only the keys that differ between profiles, and every
profile sets the same keys, so switching in any order gives the same params.yaml. `{data}`
in a profile stands for --data (default ../shared/data). `dvc exp run -S key=value` and
`dvc repro` then work on top as usual.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from stages.files import atomic_open
from stages.params import PARAMS_FILE, StageError, cli

PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"
DEFAULT_DATA = "../shared/data"


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def read_profile(name: str, data: str = DEFAULT_DATA) -> dict[str, Any]:
    if name not in profile_names():
        raise StageError(f"unknown profile {name!r}; available: {', '.join(profile_names())}")
    text = (PROFILES_DIR / f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text.replace("{data}", data.rstrip("/")))


def leaf_keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        path = f"{prefix}{key}"
        keys |= leaf_keys(value, path + ".") if isinstance(value, dict) else {path}
    return keys


def overlay(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = overlay(base[key], value)
        else:
            merged[key] = value
    return merged


def apply(name: str, params_file: Path, data: str = DEFAULT_DATA) -> dict[str, Any]:
    params = yaml.safe_load(params_file.read_text(encoding="utf-8"))
    result = overlay(params, read_profile(name, data))
    with atomic_open(params_file) as handle:
        handle.write(f"# instmix parameters, profile `{name}` (python -m stages.profile {name}).\n")
        yaml.safe_dump(result, handle, sort_keys=False, allow_unicode=True)
    return result


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="profile: " + ", ".join(profile_names()))
    parser.add_argument("--data", default=DEFAULT_DATA, help="directory of real files for the local profile")
    parser.add_argument("--params", type=Path, default=Path(PARAMS_FILE))
    args = parser.parse_args(argv)
    apply(args.name, args.params, args.data)
    print(f"{args.params}: profile {args.name}")


if __name__ == "__main__":
    cli(main)
