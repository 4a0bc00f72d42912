"""Typed, validated params: each stage reads its own section of params.yaml into a dataclass.

A bad value stops the stage before any work with one line naming the key, the value and
what is allowed. Numbers are parsed defensively: `dvc exp run -S lr=1e-6` can be written
back to params.yaml as a YAML exponent that PyYAML reads as a string.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from instmix.core.vocab import MIXTURE_NAME, SETTINGS

T = TypeVar("T")
PARAMS_FILE = "params.yaml"


class StageError(Exception):
    """An error the user can fix; printed as one line, never as a traceback."""


class ParamsError(StageError):
    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{PARAMS_FILE}: {key}={shown(value)} is not allowed: {allowed}")

    def under(self, prefix: str) -> ParamsError:
        return ParamsError(f"{prefix}.{self.key}", self.value, self.allowed)


def shown(value: Any) -> str:
    """A value as params.yaml spells it (false, null, '1.5', [1, 2]), on one line."""
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    except yaml.YAMLError:
        return repr(value)
    return text.removesuffix("\n...").removesuffix("...").strip()


def read_section(section: str, path: str | Path = PARAMS_FILE) -> Any:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise StageError(f"cannot read {path}: {err}".replace("\n", " ")) from err
    return section_of(data, section, path)


def section_of(data: Any, section: str, path: str | Path = PARAMS_FILE) -> Any:
    """`section` of a params tree already read: "eval.code" is data["eval"]["code"]."""
    for depth, part in enumerate(parts := section.split(".")):
        if not isinstance(data, dict) or part not in data:
            name = ".".join(parts[: depth + 1])
            raise ParamsError(name, None, f"section '{name}' is missing from {path}")
        data = data[part]
    return data


def load(cls: type[T], section: str, path: str | Path = PARAMS_FILE) -> T:
    """Read `section` of the params file into `cls`, validating every key."""
    return parse(cls, read_section(section, path), section)


def parse(tp: Any, value: Any, key: str) -> Any:
    """Convert plain YAML data to `tp` (dataclass, Optional, list, dict, Literal, scalars)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _parse_dataclass(tp, value, key)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return parse(option, value, key)
            except ParamsError as err:
                errors.append(err.allowed)
        raise ParamsError(key, value, " or ".join(errors))
    if origin is Literal:
        if value in args:
            return value
        raise ParamsError(key, value, "one of " + ", ".join(map(str, args)))
    if origin is list:
        if not isinstance(value, list):
            raise ParamsError(key, value, "a list")
        return [parse(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(key, value, "a mapping")
        return {str(k): parse(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ParamsError(key, value, "true or false")
    if tp is int:
        number = _number(value)
        if number is None or not float(number).is_integer():
            raise ParamsError(key, value, "an integer")
        return int(number)
    if tp is float:
        number = _number(value)
        if number is None or not math.isfinite(number):
            raise ParamsError(key, value, "a finite number")
        return float(number) + 0.0  # -0.0 becomes 0.0, so that it is written as 0.0
    if tp is str:
        if isinstance(value, str) and value:
            return value
        raise ParamsError(key, value, "a non-empty string")
    raise TypeError(f"unsupported params type {tp!r} for {key}")


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def check_seeds(value: Any) -> list[int]:
    """The top-level `seeds`: each is a model id suffix and a DVC matrix entry."""
    seeds = parse(list[int], value, "seeds")
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) < len(seeds):
        raise ParamsError("seeds", value, "a non-empty list of distinct non-negative integers, e.g. [42]")
    return seeds


def check_settings(value: Any, mixtures: Any = None) -> list[str]:
    """The top-level `settings`: those trained, each a paper setting or a name of `mixtures` once (without
    `mixtures`, as the report reads them: any name a mixture may have; stages.check checks it is declared)."""
    settings = parse(list[str], value, "settings")
    if mixtures is None:
        known, unknown = SETTINGS, [s for s in settings if s not in SETTINGS and not MIXTURE_NAME.fullmatch(s)]
    else:
        known = (*SETTINGS, *mixtures)
        unknown = [s for s in settings if s not in known]
    if not settings or len(set(settings)) < len(settings) or unknown:
        allowed = f"a non-empty list of distinct settings from {', '.join(known)}"
        raise ParamsError("settings", value, allowed + (", or names of mixtures" if mixtures is None else ""))
    return settings


def _parse_dataclass(cls: Any, value: Any, key: str) -> Any:
    if not isinstance(value, dict):
        raise ParamsError(key, value, f"a mapping with keys {', '.join(_field_names(cls))}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        name = unknown[0]
        raise ParamsError(f"{key}.{name}", value[name], f"unknown key; known keys: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, field in fields.items():
        if name in value:
            kwargs[name] = parse(hints[name], value[name], f"{key}.{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ParamsError(f"{key}.{name}", None, "required key is missing")
    try:
        return cls(**kwargs)
    except ParamsError as err:  # raised by __post_init__ with a key relative to the dataclass
        raise err.under(key) from None


def _field_names(cls: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def cli(main: Callable[[list[str]], None]) -> None:
    """Run a stage's main; a StageError ends it with one line on stderr and exit code 2."""
    try:
        main(sys.argv[1:])
    except StageError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
