"""sample(): designs drawn from an input spec's own field constraints are always valid specs."""

from __future__ import annotations

import enum
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field, create_model

from analysis.design import design_factors, sample
from analysis.errors import DesignError, UnboundedFieldError
from analysis.sensitivity_analysis import saltelli_blocks
from scythe import ExperimentInputSpec, FileReference


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 5


class Everything(ExperimentInputSpec):
    """One field of every kind sample() varies, with open and closed bounds."""

    closed: float = Field(..., ge=-2.5, le=4.0)
    open_: float = Field(0.5, gt=0, lt=1)
    count: int = Field(3, ge=1, le=6)
    stepped: int = Field(10, gt=0, lt=50, multiple_of=10)
    tenths: float = Field(0.5, ge=0.05, le=0.9, multiple_of=0.1)
    annotated: Annotated[float, Field(ge=100, le=200)] = 150.0
    mode: Literal["a", "b", "c"] = "a"
    level: Literal[1, 2, 3, 4] = 1
    colour: Colour = Colour.RED
    size: Size = Size.SMALL
    flag: bool = False
    floors: int | None = Field(None, ge=1, le=40)
    label: str = "x"
    weather: FileReference = Path("/data/a.parquet")


LEVELS = {"mode": {"a", "b", "c"}, "level": {1, 2, 3, 4}, "colour": set(Colour), "size": set(Size)}
VARY = [n for n in Everything.model_fields if n not in ExperimentInputSpec.BASE_FIELDS][:-2]


def _check_everything(specs: list[Everything]) -> None:
    for s in specs:
        assert isinstance(s, Everything)
        Everything.model_validate(s.model_dump())  # round-trips as a valid spec
        assert -2.5 <= s.closed <= 4.0 and 0 < s.open_ < 1 and 100 <= s.annotated <= 200
        assert type(s.count) is int and 1 <= s.count <= 6
        assert s.stepped in (10, 20, 30, 40)
        assert 0.05 <= s.tenths <= 0.9 and abs(s.tenths * 10 - round(s.tenths * 10)) < 1e-9
        assert s.floors is not None and 1 <= s.floors <= 40 and type(s.floors) is int
        assert isinstance(s.colour, Colour) and isinstance(s.size, Size)
        assert (s.label, s.weather) == ("x", Path("/data/a.parquet"))  # not varied: defaults


@pytest.mark.parametrize("method", ["sobol", "lhs", "random", "saltelli"])
def test_every_kind_of_field_is_sampled_within_its_constraints(method):
    n = 64
    specs = sample(Everything, n, method=method, seed=3, vary=VARY)
    assert len(specs) == (n * (len(VARY) + 2) if method == "saltelli" else n)
    assert [s.sort_index for s in specs] == list(range(len(specs)))
    _check_everything(specs)
    for name, levels in LEVELS.items():
        assert {getattr(s, name) for s in specs} == levels, name
    assert {s.flag for s in specs} == {False, True}
    assert {s.count for s in specs} == set(range(1, 7))
    assert {round(s.tenths, 9) for s in specs} == {round(k / 10, 9) for k in range(1, 10)}
    closed = [s.closed for s in specs]
    assert max(closed) - min(closed) > 0.9 * 6.5  # spread over the range, not bunched


def test_grid_is_every_combination_with_the_ends_of_each_range():
    vary = ["closed", "count", "mode", "flag"]
    specs = sample(Everything, 3, method="grid", vary=vary)
    assert len(specs) == 3 * 3 * 3 * 2
    combos = {(s.closed, s.count, s.mode, s.flag) for s in specs}
    assert len(combos) == len(specs)
    assert {s.closed for s in specs} == {-2.5, 0.75, 4.0}
    counts = {s.count for s in specs}
    assert len(counts) == 3 and {1, 6} <= counts  # three integers of 1..6, the ends included


def test_seed_makes_the_draw_reproducible():
    first = sample(Everything, 16, method="lhs", seed=7, vary=VARY)
    assert first == sample(Everything, 16, method="lhs", seed=7, vary=VARY)
    assert first != sample(Everything, 16, method="lhs", seed=8, vary=VARY)


def test_overrides_levels_bounds_and_fixed():
    specs = sample(
        Everything,
        32,
        method="lhs",
        seed=0,
        vary=["closed", "floors", "weather", "label"],
        bounds={"closed": (0.0, 1.0)},
        levels={"floors": [None, 2, 10], "weather": ["/a.parquet", "/b.parquet"], "label": ["p"]},
        fixed={"mode": "c"},
    )
    assert all(0.0 <= s.closed <= 1.0 for s in specs)
    assert {s.floors for s in specs} == {None, 2, 10}
    assert {str(s.weather) for s in specs} == {"/a.parquet", "/b.parquet"}
    assert {(s.mode, s.label) for s in specs} == {("c", "p")}


def test_a_saltelli_design_is_recognised_from_its_rows():
    specs = sample(Everything, 8, method="saltelli", seed=1, vary=["closed", "mode", "count"])
    frame = pl.DataFrame([s.model_dump(include={"closed", "mode", "count"}) for s in specs])
    assert saltelli_blocks(frame, ["closed", "count", "mode"]) == 8  # the spec's field order
    assert (
        saltelli_blocks(
            frame.sample(fraction=1.0, shuffle=True, seed=0), ["closed", "count", "mode"]
        )
        is None
    )
    lhs = sample(Everything, 40, method="lhs", seed=1, vary=["closed", "mode", "count"])
    lhs_frame = pl.DataFrame([s.model_dump(include={"closed", "mode", "count"}) for s in lhs])
    assert saltelli_blocks(lhs_frame, ["closed", "count", "mode"]) is None


class Loose(ExperimentInputSpec):
    unbounded: float
    half: float = Field(1.0, ge=0)
    name: str = "n"


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"vary": ["unbounded"]}, UnboundedFieldError, ["Loose.unbounded", "bounds={'unbounded'"]),
        (
            {"vary": ["unbounded", "half"], "bounds": {"unbounded": (0, 1)}},
            UnboundedFieldError,
            ["Loose.half", "no upper bound", "bounds={'half'"],
        ),
        (
            {"vary": ["unbounded", "name"], "bounds": {"unbounded": (0, 1)}},
            UnboundedFieldError,
            ["Loose.name (str)", "levels={'name'", "keep its default"],
        ),
        ({"vary": ["half"]}, DesignError, ["required", "'unbounded'", "fixed="]),
        ({"vary": ["nope"]}, DesignError, ["'nope'", "not fields of Loose"]),
        (
            {"fixed": {"unbounded": 1.0}, "vary": ["half"], "bounds": {"half": (-1, 2)}},
            DesignError,
            ["not inside", "Loose.half"],
        ),
        (
            {"fixed": {"unbounded": 1.0, "half": 2.0}, "levels": {"half": [1.0]}},
            DesignError,
            ["fixed and also varied"],
        ),
        (
            {"fixed": {"unbounded": 1.0, "half": 2.0, "name": "x"}, "method": "saltelli"},
            DesignError,
            ["nothing to analyse"],
        ),
    ],
)
def test_a_field_that_cannot_be_sampled_is_a_typed_error_saying_what_to_pass(options, error, words):
    with pytest.raises(error) as info:
        sample(Loose, 4, **options)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(("n", "method"), [(0, "sobol"), (2.5, "lhs"), (4, "halton")])
def test_bad_size_or_method(n, method):
    with pytest.raises(DesignError):
        sample(Everything, n, method=method, vary=["closed"])


def test_levels_outside_a_literal_are_a_spec_validation_error():
    from scythe.errors import SpecValidationError

    with pytest.raises(SpecValidationError, match="mode"):
        sample(Everything, 4, method="lhs", vary=["closed", "mode"], levels={"mode": ["a", "z"]})


# --------------------------------------------------------------------------- generated spec classes


@st.composite
def spec_classes(draw: st.DrawFn) -> tuple[type[ExperimentInputSpec], dict[str, Any]]:
    """A spec class of 1-5 fields of random kinds and bounds, and what each field allows."""
    fields: dict[str, Any] = {}
    allowed: dict[str, Any] = {}
    for i in range(draw(st.integers(1, 5))):
        kind = draw(
            st.sampled_from(["float", "int", "literal", "int_literal", "enum", "bool", "optional"])
        )
        name = f"f{i}_{kind}"
        if kind in ("float", "optional"):
            low = draw(st.floats(-1e6, 1e6))
            width = draw(st.floats(1e-3, 1e6))
            strict_low, strict_high = draw(st.booleans()), draw(st.booleans())
            bounds = {"gt" if strict_low else "ge": low, "lt" if strict_high else "le": low + width}
            tp = float | None if kind == "optional" else float
            fields[name] = (tp, Field(..., **bounds))
            allowed[name] = ("range", bounds)
        elif kind == "int":
            low = draw(st.integers(-1000, 1000))
            high = low + draw(st.integers(0, 200))
            fields[name] = (int, Field(..., ge=low, le=high))
            allowed[name] = ("levels", set(range(low, high + 1)))
        elif kind in ("literal", "int_literal"):
            k = draw(st.integers(1, 6))
            values = (
                tuple(f"v{j}" for j in range(k)) if kind == "literal" else tuple(range(10, 10 + k))
            )
            fields[name] = (Literal[values], ...)
            allowed[name] = ("cover", set(values))
        elif kind == "enum":
            members = enum.Enum(f"E{i}", {f"M{j}": f"m{j}" for j in range(draw(st.integers(2, 4)))})
            fields[name] = (members, ...)
            allowed[name] = ("cover", set(members))
        else:
            fields[name] = (bool, ...)
            allowed[name] = ("cover", {False, True})
    return create_model("Generated", __base__=ExperimentInputSpec, **fields), allowed


def _within(value: Any, bounds: dict[str, float]) -> bool:
    checks = {"ge": value.__ge__, "gt": value.__gt__, "le": value.__le__, "lt": value.__lt__}
    return all(checks[k](v) for k, v in bounds.items())


@settings(max_examples=40)
@given(
    spec=spec_classes(),
    method=st.sampled_from(["sobol", "lhs", "grid", "saltelli"]),
    seed=st.integers(0, 2**16),
)
def test_generated_spec_classes_always_give_valid_specs_covering_every_level(spec, method, seed):
    spec_type, allowed = spec
    n = 16 if method != "grid" else 2
    varies = any(rule == "range" or len(detail) > 1 for rule, detail in allowed.values())
    if method == "saltelli" and not varies:
        with pytest.raises(DesignError, match="nothing to analyse"):
            sample(spec_type, n, method=method, seed=seed)
        return
    specs = sample(spec_type, n, method=method, seed=seed)
    assert specs and all(isinstance(s, spec_type) for s in specs)
    for name, (rule, detail) in allowed.items():
        values = [getattr(s, name) for s in specs]
        if rule == "range":
            assert all(isinstance(v, float) and _within(v, detail) for v in values), (name, detail)
        elif rule == "levels":
            assert all(type(v) is int and v in detail for v in values)
        else:  # every level of a Literal, Enum or bool appears
            assert set(values) == detail, name
    for s in specs:
        spec_type.model_validate(s.model_dump())


def test_factors_follow_the_field_order_and_declared_ranges():
    factors = design_factors(Everything, vary=["mode", "closed", "open_"])
    assert [f.name for f in factors] == ["closed", "open_", "mode"]
    closed, open_, mode = factors
    assert (closed.low, closed.high) == (-2.5, 4.0)
    assert 0 < open_.low < 1e-300 and open_.high == math.nextafter(1.0, 0.0)
    assert mode.levels == ("a", "b", "c")
