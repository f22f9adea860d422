"""Compiled pandera schemas accept exactly what the pydantic spec accepts.

For generated constrained fields, generated values are checked both ways:
a value pydantic accepts passes the compiled schema, and a value that breaks
one constraint fails it with the column named in the error.
"""

from __future__ import annotations

from typing import Any, Literal

import pandera.polars as pa
import polars as pl
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import Field, ValidationError, create_model

from scythe import ExperimentInputSpec, ExperimentOutputSpec
from scythe.schema import TableSchema, compile_experiment


class Out(ExperimentOutputSpec):
    y: float


PATTERNS = [r"^[a-z]+$", r"\d{3}", r"^ab", r"x$", r"^[A-Z][a-z]*(_[0-9]+)?$"]


@st.composite
def int_field(draw):
    lo = draw(st.integers(-1000, 1000))
    hi = draw(st.integers(lo, lo + 2000))
    kwargs: dict[str, Any] = {
        draw(st.sampled_from(["ge", "gt"])): lo,
        draw(st.sampled_from(["le", "lt"])): hi,
    }
    if draw(st.booleans()):
        kwargs["multiple_of"] = draw(st.integers(1, 7))
    values = st.integers(lo - 50, hi + 50)
    return int, kwargs, values


@st.composite
def float_field(draw):
    lo = draw(st.floats(-1e6, 1e6))
    hi = draw(st.floats(lo, 2e6))
    kwargs = {draw(st.sampled_from(["ge", "gt"])): lo, draw(st.sampled_from(["le", "lt"])): hi}
    values = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([lo, hi])
    return float, kwargs, values


@st.composite
def str_field(draw):
    kwargs: dict[str, Any] = {}
    if draw(st.booleans()):
        kwargs["min_length"] = draw(st.integers(0, 5))
    if draw(st.booleans()):
        kwargs["max_length"] = draw(st.integers(kwargs.get("min_length", 0), 8))
    if draw(st.booleans()) or not kwargs:
        kwargs["pattern"] = draw(st.sampled_from(PATTERNS))
    values = st.text(alphabet="abcxyzAB_019 ", max_size=10)
    return str, kwargs, values


@st.composite
def literal_field(draw):
    options = tuple(
        draw(
            st.lists(
                st.sampled_from(["none", "dry", "wet", "both"]), min_size=1, max_size=4, unique=True
            )
        )
    )
    return Literal[options], {}, st.sampled_from(["none", "dry", "wet", "both", "other"])


constrained_fields = st.one_of(int_field(), float_field(), str_field(), literal_field())


def build(annotation, kwargs, optional: bool):
    ann = annotation | None if optional else annotation
    default = None if optional else ...
    spec = create_model(
        "Generated", __base__=ExperimentInputSpec, x=(ann, Field(default, **kwargs))
    )
    return spec, compile_experiment(spec, Out).scalars


def frame_for(table: TableSchema, xs: list) -> pl.DataFrame:
    n = len(xs)
    return pl.DataFrame(
        {
            "experiment_id": ["e"] * n,
            "sort_index": list(range(n)),
            "workflow_run_id": [None] * n,
            "root_workflow_run_id": [None] * n,
            "x": xs,
            "y": [0.0] * n,
        },
        schema=table.polars_schema(),
    )


def pydantic_accepts(spec, value) -> bool:
    try:
        spec(x=value)
    except ValidationError:
        return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(constrained_fields, st.booleans(), st.data())
def test_compiled_schema_agrees_with_pydantic(field, optional, data):
    annotation, kwargs, values = field
    spec, table = build(annotation, kwargs, optional)
    schema = table.pandera_schema()
    xs = data.draw(st.lists(values | st.none() if optional else values, min_size=1, max_size=12))
    accepted = [x for x in xs if pydantic_accepts(spec, x)]
    rejected = [x for x in xs if not pydantic_accepts(spec, x)]

    # Generated valid rows pass, all together.
    schema.validate(frame_for(table, accepted))

    # Each row that breaks a constraint fails, and the error names the column.
    for bad in rejected:
        try:
            schema.validate(frame_for(table, [bad]))
        except pa.errors.SchemaError as err:
            assert "'x'" in str(err) or err.schema.name == "x" or "x" in str(err.failure_cases)
        else:
            raise AssertionError(f"{bad!r} broke {kwargs} for pydantic but passed pandera")


@settings(max_examples=100, deadline=None)
@given(constrained_fields)
def test_rows_breaking_exactly_one_constraint_fail_with_the_column_named(field):
    annotation, kwargs, _values = field
    spec, table = build(annotation, kwargs, optional=False)
    # Pick a value that breaks exactly one of the declared constraints.
    broken = None
    for name, bound in kwargs.items():
        candidate = {
            "ge": lambda b: b - 1,
            "gt": lambda b: b,
            "le": lambda b: b + 1,
            "lt": lambda b: b,
        }.get(name)
        if candidate and annotation in (int, float):
            value = candidate(bound)
            if not pydantic_accepts(spec, value):
                broken = value
                break
    assume(broken is not None)
    try:
        table.pandera_schema().validate(frame_for(table, [broken]), lazy=True)
    except pa.errors.SchemaErrors as err:
        assert set(err.failure_cases["column"].to_list()) == {"x"}
    else:
        raise AssertionError(f"{broken!r} should break {kwargs}")
