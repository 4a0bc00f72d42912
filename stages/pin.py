"""Pin every hub pin that names a branch to the commit the hub serves for it, once.

    python -m stages.pin [PIN ...]    (default: every assets/hub/**/*.hub.yaml)

Not a DVC stage: it rewrites each `*.hub.yaml` whose `revision` is not a 40-hex commit sha,
keeping the file's comments, and says what it did; a pin file is a stage dependency, so the
next `dvc repro` refetches what changed. Needs the hub (HF_ENDPOINT and HF_TOKEN as usual).
`model.revision` in params.yaml is pinned by hand: `dvc exp run -S model.revision=<sha>`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from instmix.core import hub
from instmix.core.files import atomic_open
from instmix.core.params import StageError, cli

PINS = Path(__file__).resolve().parent.parent / "assets" / "hub"
REVISION_LINE = re.compile(r"^revision:\s*(\S+)[^\n]*$", re.M)


def pin_file(path: Path) -> str | None:
    """Rewrite `path` at the commit its branch resolves to; the new sha, or None if already pinned."""
    pin = hub.read_pin(path)
    if hub.SHA.match(pin.revision):
        return None
    sha = hub.resolve_commit(pin.repo, pin.revision, pin.repo_type)
    text = path.read_text(encoding="utf-8")
    line = f"revision: {sha}  # was `{pin.revision}`, pinned by python -m stages.pin"
    if len(REVISION_LINE.findall(text)) != 1:
        raise StageError(f"{path}: expected one top-level `revision:` line")
    with atomic_open(path) as handle:
        handle.write(REVISION_LINE.sub(line, text))
    return sha


def main(argv: list[str]) -> None:
    if any(a.startswith("-") for a in argv):
        raise StageError("usage: python -m stages.pin [PIN.hub.yaml ...]")
    paths = [Path(a) for a in argv] or sorted(PINS.rglob(f"*{hub.PIN_SUFFIX}"))
    for path in paths:
        if not hub.is_pin(path) or not path.is_file():
            raise StageError(f"{path}: not a *{hub.PIN_SUFFIX} pin file")
    for path in paths:
        sha = pin_file(path)
        print(f"{path}: {'already a commit' if sha is None else f'pinned to {sha}'}")


if __name__ == "__main__":
    if "--help" in sys.argv:
        print(__doc__)
    else:
        cli(main)
