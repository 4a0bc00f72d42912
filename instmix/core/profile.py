"""Profiles: named sets of params (profiles/<name>.yaml) laid over params.yaml.

A profile sets only the keys that differ between profiles, and every profile sets the same
keys, so switching in any order gives the same params.yaml. `{data}` in a profile stands for
a directory of real files (default ../shared/data). params.yaml is edited as a round trip
(ruamel.yaml), so its comments stay, and its top-level `profile` key names the profile.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import yaml

from instmix.core.files import atomic_open
from instmix.core.params import StageError

PROFILES_DIR = Path(__file__).resolve().parents[2] / "profiles"
DEFAULT_DATA = "../shared/data"
COMMENT_GAP = re.compile(r"^(\s*[^#'\"\s][^#'\"]*?\S)\s+(# .*)$")  # lines without quotes only


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


def overlay(base: Any, changes: dict[str, Any]) -> None:
    """Set every key of `changes` in `base` (a round-trip mapping), in place: comments survive."""
    from ruamel.yaml.comments import CommentedSeq

    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            overlay(base[key], value)
        elif isinstance(value, list):  # a flow list, as written here: a block list would swallow the line's comment
            seq = CommentedSeq(value)
            seq.fa.set_flow_style()
            base[key] = seq
        else:
            base[key] = value


def represent_float(dumper: Any, value: float) -> Any:
    """ruamel writes 5e-05, which YAML 1.1 readers (PyYAML, so the stages) take for a string: 5.0e-05."""
    text = repr(value)
    if "e" in text and "." not in text.partition("e")[0]:
        text = text.replace("e", ".0e", 1)
    return dumper.represent_scalar("tag:yaml.org,2002:float", text)


def apply(name: str, params_file: Path, data: str = DEFAULT_DATA) -> dict[str, Any]:
    return edit(params_file, read_profile(name, data) | {"profile": name})


def edit(params_file: Path, changes: dict[str, Any], whole: tuple[str, ...] = ()) -> dict[str, Any]:
    """Set `changes` in params.yaml as a round trip (comments and key order kept; the top-level keys of
    `whole` replaced as they are, the others merged key by key); the new params."""
    from ruamel.yaml import YAML

    loader = YAML()  # round trip: keeps the comments and the key order of params.yaml
    loader.width = 4096
    try:
        params = loader.load(params_file.read_text(encoding="utf-8"))
    except OSError as err:
        raise StageError(f"cannot read {params_file}: {err.strerror}") from err
    loader.representer.add_representer(
        type(None), lambda dumper, _: dumper.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    loader.representer.add_representer(float, represent_float)
    overlay(params, {k: v for k, v in changes.items() if k not in whole})
    for key in whole:
        params[key] = changes[key]
    buffer = io.StringIO()
    loader.dump(params, buffer)
    # ruamel keeps each comment's old column: put it two spaces after the new value again
    text = "\n".join(COMMENT_GAP.sub(r"\1  \2", line) for line in buffer.getvalue().split("\n"))
    with atomic_open(params_file) as handle:
        handle.write(text)
    return yaml.safe_load(text)
