"""The polars-expression checks (scythe.schema.checks) reach pandera's verdict, row for row.

pandera validates a table's compiled ``pandera_schema()``; ``failure_cases``
runs the same checks as one polars select. These property tests give both the
same frames and compare which (row, column, check) fail.
"""

from __future__ import annotations

import math

import pandera.polars as pa
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scythe.schema import Column, Constraint, TableSchema, failure_cases

SORT_INDEX = Column("sort_index", pl.Int64(), constraints=(Constraint("ge", 0),))

NUMBER_CONSTRAINTS = st.lists(
    st.tuples(st.sampled_from(["ge", "gt", "le", "lt"]), st.integers(-5, 5)), max_size=3
)
STRING_CONSTRAINTS = st.lists(
    st.one_of(
        st.tuples(st.just("isin"), st.just(("a", "bb", "ccc"))),
        st.tuples(st.sampled_from(["min_length", "max_length"]), st.integers(0, 3)),
        st.tuples(st.just("pattern"), st.sampled_from(["^a", "b+", "c$"])),
    ),
    max_size=3,
)


def _pandera_cases(frame: pl.DataFrame, table: TableSchema) -> set[tuple]:
    try:
        table.pandera_schema().validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases
        return {
            (row["index"], row["column"] if row["index"] is not None else None, row["check"])
            for row in cases.iter_rows(named=True)
            if row["check"] != "multiple_fields_uniqueness"
        } | _pandera_unique_rows(cases)
    return set()


def _pandera_unique_rows(cases: pl.DataFrame) -> set[tuple]:
    rows = cases.filter(pl.col("check") == "multiple_fields_uniqueness")
    return {(r, "sort_index", "multiple_fields_uniqueness") for r in rows["index"].to_list()}


def _our_cases(frame: pl.DataFrame, table: TableSchema) -> set[tuple]:
    return {
        (c.row, c.column if c.row is not None else None, c.check)
        for c in failure_cases(frame, table)
    }


@st.composite
def float_tables(draw):
    nullable = draw(st.booleans())
    constraints = tuple(Constraint(k, v) for k, v in draw(NUMBER_CONSTRAINTS))
    value = st.one_of(st.none(), st.just(math.nan), st.floats(-8, 8, allow_nan=False))
    values = draw(st.lists(value, min_size=1, max_size=12))
    return nullable, constraints, values


@st.composite
def string_tables(draw):
    nullable = draw(st.booleans())
    constraints = tuple(Constraint(k, v) for k, v in draw(STRING_CONSTRAINTS))
    value = st.one_of(st.none(), st.sampled_from(["", "a", "bb", "ccc", "abc", "cab", "b"]))
    values = draw(st.lists(value, min_size=1, max_size=12))
    return nullable, constraints, values


@pytest.mark.parametrize(
    ("dtype", "strategy"), [(pl.Float64(), float_tables()), (pl.String(), string_tables())]
)
def test_column_checks_fail_the_rows_pandera_fails(dtype, strategy):
    @settings(max_examples=120, deadline=None)
    @given(strategy, st.lists(st.integers(0, 5), min_size=12, max_size=12))
    def check(drawn, sort_index):
        nullable, constraints, values = drawn
        table = TableSchema(
            "t", (SORT_INDEX,), (Column("v", dtype, nullable=nullable, constraints=constraints),)
        )
        frame = pl.DataFrame(
            {"sort_index": sort_index[: len(values)], "v": values},
            schema={"sort_index": pl.Int64, "v": dtype},
        )
        assert _our_cases(frame, table) == _pandera_cases(frame, table)

    check()


def test_checks_of_a_dataframe_model_run_as_expressions_and_match_pandera():
    class Model(pa.DataFrameModel):
        hour: int = pa.Field(in_range={"min_value": 0, "max_value": 23})
        label: str = pa.Field(isin=["day", "night"], str_length={"min_value": 3})
        load: float = pa.Field(ge=0, lt=100)

    schema = Model.to_schema()
    values = tuple(
        Column(name, col.dtype.type, nullable=col.nullable, extra_checks=tuple(col.checks))
        for name, col in schema.columns.items()
    )
    table = TableSchema("t", (SORT_INDEX,), values)
    frame = pl.DataFrame(
        {
            "sort_index": [0, 1, 2, 3],
            "hour": [0, 24, 5, -1],
            "label": ["day", "dusk", "night", "day"],
            "load": [1.0, 2.0, 100.0, None],
        }
    )
    ours = _our_cases(frame, table)
    assert ours == _pandera_cases(frame, table)
    assert (1, "hour", "in_range(0, 23)") in ours
    assert (2, "load", "less_than(100)") in ours


def test_wrong_dtype_and_missing_column_fail_the_whole_frame():
    table = TableSchema("t", (SORT_INDEX,), (Column("v", pl.Int64()), Column("w", pl.String())))
    frame = pl.DataFrame({"sort_index": [0], "v": [1.5]})
    cases = failure_cases(frame, table)
    assert {(c.row, c.column, c.check) for c in cases} == {
        (None, "v", "dtype('Int64')"),
        (None, "w", "column_in_dataframe"),
    }


def test_a_naive_datetime_bound_is_utc_as_the_cells_are():
    from datetime import UTC, datetime

    bound = Constraint("ge", datetime(2000, 1, 1))
    column = Column("when", pl.Datetime("us", "UTC"), constraints=(bound,))
    table = TableSchema("t", (SORT_INDEX,), (column,))
    frame = pl.DataFrame(
        {
            "sort_index": [0, 1],
            "when": [datetime(1999, 12, 31, 23, tzinfo=UTC), datetime(2000, 1, 1, tzinfo=UTC)],
        },
        schema={"sort_index": pl.Int64, "when": pl.Datetime("us", "UTC")},
    )
    ours = _our_cases(frame, table)
    assert {row for row, _, _ in ours} == {0}
    assert ours == _pandera_cases(frame, table)


KEY_VALUES = st.one_of(st.none(), st.integers(-(2**40), 2**40), st.integers(-3, 3))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(KEY_VALUES, KEY_VALUES), max_size=30))
def test_sorting_by_one_combined_key_orders_rows_as_sorting_by_both(rows):
    from scythe.tables import sort_by_keys

    keys = ["sort_index", "sort_subindex"]
    frame = pl.DataFrame(rows, schema={k: pl.Int64 for k in keys}, orient="row")
    frame = frame.with_row_index("row")
    assert sort_by_keys(frame, keys).select(keys).equals(frame.sort(keys).select(keys))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3)), max_size=20))
def test_repeated_sort_keys_are_found_in_a_sorted_frame_as_in_any_order(rows):
    keys = ["sort_index", "sort_subindex"]
    table = TableSchema("t", (SORT_INDEX,), (), multi_row=True)
    frame = pl.DataFrame(rows, schema={k: pl.Int64 for k in keys}, orient="row")
    repeated = frame.height > frame.unique().height
    unsorted = failure_cases(frame, table)
    ordered = frame.sort(keys)
    in_order = failure_cases(ordered, table, sorted_by_keys=True)
    assert any(c.check == "multiple_fields_uniqueness" for c in unsorted) == repeated
    assert any(c.check == "multiple_fields_uniqueness" for c in in_order) == repeated
