"""Hugging Face Hub access: pinned snapshots, and offline mode for runs that need no hub.

A hub source is described by a small pin file (`*.hub.yaml`) holding the repo, the revision
and the file patterns. The pin file is the stage's DVC dependency, so changing the revision
reruns the fetch, and the snapshot's commit sha is recorded in the stage's metrics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from instmix.core.params import StageError, parse

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
PIN_SUFFIX = ".hub.yaml"


def go_offline() -> None:
    """Without these, every hub call here waits ~23 s before failing. Must run before HF imports."""
    for name in OFFLINE_VARIABLES:
        os.environ.setdefault(name, "1")


def is_pin(path: str | Path) -> bool:
    return str(path).endswith(PIN_SUFFIX)


@dataclass(frozen=True)
class HubPin:
    repo: str  # e.g. tatsu-lab/alpaca
    revision: str  # a 40-hex commit sha pins it; a branch name is resolved and recorded
    files: list[str] = field(default_factory=list)  # glob patterns to download; empty = all
    repo_type: str = "dataset"


def read_pin(path: str | Path) -> HubPin:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise StageError(f"cannot read hub pin {path}: {err}".replace("\n", " ")) from err
    return parse(HubPin, data, str(path))


def snapshot(pin: HubPin, patterns: list[str] | None = None, ignore: list[str] | None = None) -> Path:
    """Download (or reuse from the HF cache) the pinned files; returns the snapshot directory."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(
            pin.repo,
            repo_type=pin.repo_type,
            revision=pin.revision,
            allow_patterns=patterns or pin.files or None,
            ignore_patterns=ignore,
        )
    except Exception as err:  # the hub client raises many types; the user needs one line
        raise StageError(
            f"cannot download {pin.repo}@{pin.revision}: {type(err).__name__}: {err}".replace("\n", " ")
        ) from err
    return Path(folder)
