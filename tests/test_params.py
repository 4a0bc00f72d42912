"""The typed params loader shared by every stage."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import pytest

from instmix.core.params import ParamsError, load, parse


@dataclass(frozen=True)
class Inner:
    size: int
    rate: float = 0.5

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ParamsError("size", self.size, "a positive integer")


@dataclass(frozen=True)
class Outer:
    inner: Inner
    mode: Literal["fast", "slow"] = "fast"
    names: list[str] | Literal["all"] = "all"
    limit: int | None = None
    tags: dict[str, int] = field(default_factory=dict)


def test_parses_nested_typed_values() -> None:
    got = parse(Outer, {"inner": {"size": 3}, "names": ["a", "b"], "limit": None, "tags": {"x": 1}}, "s")
    assert got == Outer(inner=Inner(size=3), names=["a", "b"], tags={"x": 1})


@pytest.mark.parametrize(
    ("data", "key", "allowed"),
    [
        ({"inner": {"size": 3}, "extra": 1}, "s.extra", "unknown key"),
        ({"inner": {"size": "three"}}, "s.inner.size", "an integer"),
        ({"inner": {"size": 2.5}}, "s.inner.size", "an integer"),
        ({"inner": {"size": True}}, "s.inner.size", "an integer"),
        ({"inner": {"size": 0}}, "s.inner.size", "a positive integer"),
        ({"inner": {"size": 1, "rate": float("nan")}}, "s.inner.rate", "a finite number"),
        ({"inner": {"size": 1}, "mode": "medium"}, "s.mode", "one of fast, slow"),
        ({"inner": {"size": 1}, "names": "some"}, "s.names", "a list or one of all"),
        ({"inner": {}}, "s.inner.size", "required key is missing"),
        ({"inner": {"size": 1}, "limit": "x"}, "s.limit", "an integer"),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(data: dict, key: str, allowed: str) -> None:
    with pytest.raises(ParamsError) as err:
        parse(Outer, data, "s")
    assert err.value.key == key
    assert allowed in err.value.allowed
    assert "\n" not in str(err.value)
    assert key in str(err.value)


def test_numbers_written_back_as_yaml_strings_still_parse() -> None:
    # `dvc exp run -S x=1e-6` can land in params.yaml as a string.
    assert parse(Inner, {"size": "2e1", "rate": "1e-6"}, "s") == Inner(size=20, rate=1e-6)
    assert math.isclose(parse(float, "5e-5", "lr"), 5e-5)


def test_load_reads_one_section(tmp_path) -> None:
    (tmp_path / "p.yaml").write_text("other: {x: 1}\nsec:\n  size: 4\n")
    assert load(Inner, "sec", tmp_path / "p.yaml") == Inner(size=4)
    with pytest.raises(ParamsError, match="section 'missing' is missing"):
        load(Inner, "missing", tmp_path / "p.yaml")
