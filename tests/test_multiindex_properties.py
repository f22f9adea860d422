"""MultiIndex construction: polars -> pandas (input MultiIndex) -> polars is the identity."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any, Literal

import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from pydantic import create_model

from scythe import ExperimentInputSpec, ExperimentOutputSpec, FileReference
from scythe.errors import SchemaMismatchError
from scythe.schema import compile_experiment, from_pandas, to_pandas


class Mode(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)

# annotation -> strategy of values of that type, one entry per row of the type map
FIELD_KINDS: dict[str, tuple[Any, st.SearchStrategy]] = {
    "int": (int, st.integers(-(2**62), 2**62)),
    "float": (float, st.floats(allow_nan=True, allow_infinity=True)),
    "bool": (bool, st.booleans()),
    "str": (str, text),
    "literal": (
        Literal["none", "drybulb", "enthalpy"],
        st.sampled_from(["none", "drybulb", "enthalpy"]),
    ),
    "literal_int": (Literal[1, 2, 3], st.sampled_from([1, 2, 3])),
    "enum": (Mode, st.sampled_from(["fast", "slow"])),
    "datetime": (
        datetime,
        st.datetimes(datetime(1900, 1, 1), datetime(2200, 1, 1), timezones=st.just(UTC)),
    ),
    "date": (date, st.dates(date(1900, 1, 1), date(2200, 1, 1))),
    "file": (FileReference, st.sampled_from(["s3://b/k.csv", "https://x.org/a", "data/w.parquet"])),
}


@st.composite
def spec_classes(draw):
    kinds = draw(st.lists(st.sampled_from(sorted(FIELD_KINDS)), min_size=1, max_size=6))
    fields = {}
    strategies = {}
    for i, kind in enumerate(kinds):
        annotation, values = FIELD_KINDS[kind]
        optional = draw(st.booleans())
        name = f"{kind}_{i}"
        if optional:
            fields[name] = (annotation | None, None)
            strategies[name] = st.none() | values
        else:
            fields[name] = (annotation, ...)
            strategies[name] = values
    cls = create_model("GeneratedSpec", __base__=ExperimentInputSpec, **fields)
    return cls, strategies


class Out(ExperimentOutputSpec):
    heating: float
    count: int | None = None


@st.composite
def frames(draw, multi_row: bool = False):
    cls, strategies = draw(spec_classes())
    schema = compile_experiment(cls, Out)
    table = schema.scalars
    n_specs = draw(st.integers(0, 8))
    order = draw(st.permutations(range(n_specs)))
    rows_per_spec = draw(st.integers(1, 3)) if multi_row else 1
    columns: dict[str, list] = {name: [] for name in table.names}
    if multi_row:
        columns["sort_subindex"] = []
    for sort_index in order:
        inputs = {name: draw(strategy) for name, strategy in strategies.items()}
        for sub in range(rows_per_spec):
            columns["experiment_id"].append("exp/v1.0.0/2026-01-01T00-00-00.000000Z")
            columns["sort_index"].append(sort_index)
            columns["workflow_run_id"].append(draw(st.none() | text))
            columns["root_workflow_run_id"].append(None)
            for name, value in inputs.items():
                columns[name].append(value)
            columns["heating"].append(draw(st.floats(allow_nan=True)))
            columns["count"].append(draw(st.none() | st.integers(-5, 5)))
            if multi_row:
                columns["sort_subindex"].append(sub)
    if multi_row:
        from dataclasses import replace

        table = replace(table, multi_row=True)
    frame = pl.DataFrame({n: columns[n] for n in table.names}, schema=table.polars_schema())
    return table, frame


def expected_pandas_dtype(dtype: pl.DataType, nullable: bool) -> Any:
    if dtype == pl.Int64:
        return pd.Int64Dtype()
    if dtype == pl.String:
        return pd.StringDtype("python")
    if dtype == pl.Float64:
        return pd.Float64Dtype() if nullable else "float64"
    if dtype == pl.Boolean:
        return pd.BooleanDtype() if nullable else "bool"
    return None  # datetimes and dates: checked by the round trip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_round_trip_through_pandas_is_identity(case):
    table, frame = case
    pdf = to_pandas(frame, table)
    assert isinstance(pdf.index, pd.MultiIndex)
    assert list(pdf.index.names) == table.index_names
    assert list(pdf.columns) == table.value_names
    for col in table.index_columns:
        expected = expected_pandas_dtype(col.dtype, col.nullable)
        if expected is not None:
            assert pdf.index.get_level_values(col.name).dtype == expected, col.name
    back = from_pandas(pdf, table)
    assert back.schema == frame.schema
    assert_frame_equal(back, frame, check_exact=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(multi_row=True))
def test_multi_row_frames_get_a_trailing_sort_subindex_level(case):
    table, frame = case
    pdf = to_pandas(frame, table)
    assert pdf.index.names[-1] == "sort_subindex"
    assert_frame_equal(from_pandas(pdf, table), frame, check_exact=True)


def test_optional_int_stays_integer_with_missing_values():
    cls = create_model("S", __base__=ExperimentInputSpec, floors=(int | None, None))
    table = compile_experiment(cls, Out).scalars
    frame = pl.DataFrame(
        {
            "experiment_id": ["e"] * 3,
            "sort_index": [0, 1, 2],
            "workflow_run_id": [None] * 3,
            "root_workflow_run_id": [None] * 3,
            "floors": [3, None, 5],
            "heating": [1.0, 2.0, 3.0],
            "count": [None, 1, None],
        },
        schema=table.polars_schema(),
    )
    pdf = to_pandas(frame, table)
    floors = pdf.index.get_level_values("floors")
    assert floors.dtype == pd.Int64Dtype()
    assert floors[0] == 3 and pd.isna(floors[1]) and floors[2] == 5
    assert pdf["count"].dtype == pd.Int64Dtype()


def test_to_pandas_names_missing_columns():
    cls = create_model("S", __base__=ExperimentInputSpec, x=(int, ...))
    table = compile_experiment(cls, Out).scalars
    frame = table.empty_frame().drop("x")
    with pytest.raises(SchemaMismatchError, match=r"lacks columns \['x'\]"):
        to_pandas(frame, table)
    pdf = to_pandas(table.empty_frame(), table).drop(columns="heating")
    with pytest.raises(SchemaMismatchError, match=r"lacks columns \['heating'\]"):
        from_pandas(pdf, table)


def test_large_integers_with_missing_values_are_exact():
    cls = create_model("S", __base__=ExperimentInputSpec, big=(int | None, None))
    table = compile_experiment(cls, Out).scalars
    big = 2**53 + 1  # not representable as a float
    frame = pl.DataFrame(
        {
            "experiment_id": ["e"] * 2,
            "sort_index": [0, 1],
            "workflow_run_id": [None] * 2,
            "root_workflow_run_id": [None] * 2,
            "big": [None, big],
            "heating": [1.0, 2.0],
            "count": [None, -big],
        },
        schema=table.polars_schema(),
    )
    pdf = to_pandas(frame, table)
    assert pdf.index.get_level_values("big")[1] == big
    assert pdf["count"].iloc[1] == -big
    assert_frame_equal(from_pandas(pdf, table), frame, check_exact=True)
