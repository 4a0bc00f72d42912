"""Hugging Face Hub access: pinned snapshots, and offline mode for runs that need no hub.

A hub source is described by a small pin file (`*.hub.yaml`) holding the repo, the revision
and the file patterns. The pin file is the stage's DVC dependency, so changing the revision
reruns the fetch, and the snapshot's commit sha is recorded in the stage's metrics.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from instmix.core.params import StageError, parse

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
PIN_SUFFIX = ".hub.yaml"
SHA = re.compile(r"^[0-9a-f]{40}$")


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


def hub_error(repo: str, revision: str | None, err: Exception) -> StageError:
    """One line for any hub failure: the repo, the revision, what happened and what to do."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    at = f"{repo}@{revision or 'main'}"
    if isinstance(err, GatedRepoError):
        todo = "a gated repo: accept its license on the hub page, then log in (HF_TOKEN or `hf auth login`)"
    elif isinstance(err, RevisionNotFoundError):
        todo = "no such revision: fix the pin (a branch, a tag or a 40-hex commit sha)"
    elif isinstance(err, RepositoryNotFoundError):
        todo = "repo or revision not found (or private: log in with HF_TOKEN); check the pin's repo and revision"
    else:
        endpoint = os.environ.get("HF_ENDPOINT", "the hub")
        todo = f"{type(err).__name__}; check the connection to {endpoint} (HF_ENDPOINT) and retry"
    return StageError(f"cannot read {at} from the hub: {todo}")


def resolve_commit(repo: str, revision: str | None, repo_type: str = "dataset") -> str:
    """The 40-hex commit sha the endpoint serves for `revision` (a branch, tag or sha)."""
    from huggingface_hub import HfApi

    try:
        return HfApi().repo_info(repo, repo_type=repo_type, revision=revision).sha
    except Exception as err:  # the hub client raises many types; the user needs one line
        raise hub_error(repo, revision, err) from err


def pinned_commit(pin: HubPin) -> str:
    """The commit a pin reads: its sha, or its branch resolved by the endpoint. Offline, the branch
    is kept as named (the local cache's refs resolve it)."""
    from huggingface_hub import constants

    if SHA.match(pin.revision) or constants.HF_HUB_OFFLINE:
        return pin.revision
    return resolve_commit(pin.repo, pin.revision, pin.repo_type)


def snapshot(pin: HubPin, patterns: list[str] | None = None, ignore: list[str] | None = None) -> Path:
    """Download (or reuse from the HF cache) the pinned files; returns the snapshot directory,
    whose name is the commit read. A branch is resolved to its commit first, so what is read is
    exactly that commit."""
    from huggingface_hub import snapshot_download

    commit = pinned_commit(pin)
    try:
        folder = snapshot_download(
            pin.repo,
            repo_type=pin.repo_type,
            revision=commit,
            allow_patterns=patterns or pin.files or None,
            ignore_patterns=ignore,
        )
    except Exception as err:
        raise hub_error(pin.repo, pin.revision, err) from err
    return Path(folder)
