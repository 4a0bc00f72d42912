"""The software stack a stage's results depend on (env.yaml), checked against what is installed.

DVC's run-cache restores a stage from any machine that ran it with the same command, deps and
params; the software is none of those. env.yaml, a dependency of the training and evaluation
stages, names the stack, and those stages refuse to run under another one, so a cached result
is always this stack's.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import yaml

from instmix.core.params import StageError

STACK_FILE = Path("env.yaml")


def installed(names: list[str]) -> dict[str, str | None]:
    """The installed release of each package (local build tags cut), and torch's CUDA runtime as `cuda`."""
    found: dict[str, str | None] = {}
    for name in names:
        if name == "cuda":
            import torch

            found[name] = torch.version.cuda
            continue
        try:
            found[name] = importlib.metadata.version(name).split("+")[0]
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def read_stack(path: Path = STACK_FILE) -> dict[str, Any]:
    try:
        stack = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise StageError(f"cannot read {path}: {err}".replace("\n", " ")) from err
    if not isinstance(stack, dict):
        raise StageError(f"{path}: expected `package: version` lines")
    return {str(k): None if v is None else str(v) for k, v in stack.items()}


def mismatches(path: Path = STACK_FILE) -> dict[str, tuple[str, str | None]]:
    """package -> (env.yaml's version, the installed one), for every pinned entry that differs."""
    stack = {k: v for k, v in read_stack(path).items() if v is not None}
    have = installed(sorted(stack))
    return {name: (want, have[name]) for name, want in stack.items() if have[name] != want}


def check_stack(path: Path = STACK_FILE) -> None:
    """Refuse, in one line, to compute under a stack other than env.yaml's. No env.yaml (a bare
    working directory, not the project): nothing to check."""
    if not path.is_file():
        return
    wrong = mismatches(path)
    if wrong:
        listed = ", ".join(f"{k} {want} (installed: {got or 'none'})" for k, (want, got) in sorted(wrong.items()))
        raise StageError(
            f"{path} names another stack: {listed}; install requirements.txt, or change {path} "
            "(which reruns every training and evaluation stage)"
        )
