"""What a terminal node stages: a frame output's table built for the whole batch, the Delta
statistics of each staged file, and the order the node's checks rely on."""

from __future__ import annotations

import itertools
import json
import math

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from scythe.nodes import _frame_table, _rising
from scythe.schema import SORT_SUBINDEX, Column, TableSchema
from scythe.tables import _file_stats

INDEX = (Column("sort_index", pl.Int64()), Column("x", pl.Float64()))
VALUES = (Column("v", pl.Float64(), nullable=True),)
FRAME_TABLE = TableSchema("hourly", INDEX, VALUES, multi_row=True)

finite = st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False)
any_float = st.one_of(st.none(), finite, st.just(math.nan), st.just(math.inf), st.just(-math.inf))


@settings(max_examples=200, deadline=None)
@given(st.lists(any_float, min_size=1, max_size=30))
def test_float_bounds_are_given_only_when_every_value_is_finite(values):
    table = TableSchema("t", (Column("sort_index", pl.Int64()),), VALUES)
    frame = pl.DataFrame(
        {"sort_index": range(len(values)), "v": values},
        schema={"sort_index": pl.Int64, "v": pl.Float64},
    )
    stats = json.loads(_file_stats(frame, table))
    present = [v for v in values if v is not None]
    assert stats["numRecords"] == len(values)
    assert stats["nullCount"]["v"] == len(values) - len(present)
    all_finite = bool(present) and all(math.isfinite(v) for v in present)
    if all_finite:  # values this small never sum to NaN: the bounds are always given
        assert (stats["minValues"]["v"], stats["maxValues"]["v"]) == (min(present), max(present))
    else:
        assert "v" not in stats["minValues"] and "v" not in stats["maxValues"]
    assert (stats["minValues"]["sort_index"], stats["maxValues"]["sort_index"]) == (
        0,
        len(values) - 1,
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-3, 3), max_size=8))
def test_rising_means_each_value_above_the_one_before(values):
    expected = all(a < b for a, b in itertools.pairwise(values))
    assert _rising(pl.Series(values, dtype=pl.Int64)) is expected
    assert _rising(pl.Series([*values, None], dtype=pl.Int64)) is False


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(0, 5)), min_size=1, max_size=12))
def test_a_frame_table_is_each_specs_rows_after_its_index_values_in_one_chunk(heights):
    index = pl.DataFrame(
        {
            "sort_index": [10 * i for i in range(len(heights))],
            "x": [i / 2 for i in range(len(heights))],
        }
    )
    parts = [
        None
        if h is None
        else pl.DataFrame({"v": [i + r / 10 for r in range(h)]}, schema={"v": pl.Float64})
        for i, h in enumerate(heights)
    ]
    table = _frame_table(index, parts, FRAME_TABLE)
    expected = [
        {"sort_index": 10 * i, "x": i / 2, SORT_SUBINDEX: r, "v": i + r / 10}
        for i, h in enumerate(heights)
        for r in range(h or 0)
    ]
    assert table.columns == FRAME_TABLE.names
    assert table.to_dicts() == expected
    assert table.schema == FRAME_TABLE.polars_schema()
    assert set(table.n_chunks("all")) <= {1}


@settings(max_examples=150, deadline=None)
@given(
    expected=st.lists(st.integers(-(10**6), 10**6), unique=True, max_size=40),
    data=st.data(),
)
def test_completeness_finds_every_missing_and_repeated_spec(expected, data):
    # The root's check: which expected sort indices have no row, and how many rows repeat
    # one (its shortcut for one row each must agree with the set arithmetic).
    from collections import Counter

    from scythe.nodes import _missing_and_duplicated

    kept = data.draw(st.lists(st.sampled_from(expected), max_size=60)) if expected else []
    outcome = data.draw(st.permutations(kept)) if kept else []
    missing, duplicated = _missing_and_duplicated(
        pl.Series("sort_index", expected, dtype=pl.Int64),
        pl.Series("sort_index", outcome, dtype=pl.Int64),
    )
    assert missing == sorted(set(expected) - set(outcome))
    assert duplicated == sum(c - 1 for c in Counter(outcome).values())


def test_completeness_of_one_row_per_spec_in_any_order():
    from scythe.nodes import _missing_and_duplicated

    expected = pl.Series("sort_index", [0, 1, 2, 3])
    assert _missing_and_duplicated(expected, pl.Series("x", [3, 1, 0, 2])) == ([], 0)
    assert _missing_and_duplicated(expected, pl.Series("x", [3, 1, 1, 2])) == ([0], 1)
