"""A terminal node's specs come back from its batch file exactly as they were allocated,
whichever way the batch is parsed (polars' JSON for plain columns, row dicts otherwise)."""

from __future__ import annotations

import math
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from scythe import ExperimentInputSpec, ExperimentOutputSpec
from scythe.batches import read_batch, specs_frame, write_batch
from scythe.schema import compile_experiment
from scythe.storage import LocalStore


class Plain(ExperimentInputSpec):
    n: int
    x: float
    maybe: float | None = None
    label: str
    flag: bool


class Dated(ExperimentInputSpec):
    x: float
    day: date


class Out(ExperimentOutputSpec):
    y: float


def _roundtrip(tmp_path, specs):
    schema = compile_experiment(type(specs[0]), Out)
    frame = specs_frame(specs, schema, list(range(len(specs))), None)
    store = LocalStore(tmp_path)
    write_batch(store, "batch.parquet", frame)
    back, index = read_batch(store, "batch.parquet", schema)
    assert index.get_column("sort_index").to_list() == list(range(len(specs)))
    return back


def _same(a: float | None, b: float | None) -> bool:
    """Equal, and of the same sign (-0.0 is not 0.0 here)."""
    if a is None or b is None:
        return a is b
    return a == b and math.copysign(1, a) == math.copysign(1, b)


plain = st.builds(
    Plain,
    n=st.integers(-(2**63), 2**63 - 1),
    x=st.floats(allow_nan=False),
    maybe=st.none() | st.floats(allow_nan=False),
    label=st.text(),
    flag=st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(specs=st.lists(plain, min_size=1, max_size=20))
def test_plain_specs_come_back_unchanged(tmp_path_factory, specs):
    back = _roundtrip(tmp_path_factory.mktemp("batch"), specs)
    assert len(back) == len(specs)
    for mine, theirs in zip(specs, back, strict=True):
        assert type(theirs) is Plain
        assert (theirs.n, theirs.label, theirs.flag) == (mine.n, mine.label, mine.flag)
        assert _same(theirs.x, mine.x) and _same(theirs.maybe, mine.maybe)  # inf and -0.0 too


def test_dates_and_infinities_come_back_unchanged(tmp_path):
    specs = [Dated(x=math.inf, day=date(2024, 2, 29)), Dated(x=-0.0, day=date(1970, 1, 1))]
    back = _roundtrip(tmp_path, specs)
    assert [(s.x, s.day) for s in back] == [(math.inf, date(2024, 2, 29)), (-0.0, date(1970, 1, 1))]
    assert math.copysign(1, back[1].x) == -1


def test_a_table_of_other_dtypes_reads_back_as_it_was_staged(tmp_path):
    # Read through deltalake's file list and polars' Parquet scan: a nanosecond datetime
    # (an inferred frame's pandas column) and a nullable Int32 come back unchanged.
    from datetime import datetime

    import polars as pl

    from scythe import tables
    from scythe.schema.columns import Column, TableSchema

    table = TableSchema(
        "events",
        (Column("sort_index", pl.Int64()),),
        (Column("at", pl.Datetime("ns")), Column("n", pl.Int32(), nullable=True)),
    )
    store = LocalStore(tmp_path)
    tables.create_table(store, "events", table)
    frame = pl.DataFrame(
        {
            "sort_index": [0, 1],
            "at": [datetime(2024, 1, 1), datetime(2024, 6, 1, 12)],
            "n": [1, None],
        },
        schema={"sort_index": pl.Int64, "at": pl.Datetime("ns"), "n": pl.Int32},
    )
    staged = tables.stage_frame(store, "events", table, frame, name="node")
    assert staged is not None
    tables.commit_staged(store, "events", table, [staged], transaction="t")
    back = tables.read_table(store, "events", table, validate=False)
    assert back.get_column("at").to_list() == frame.get_column("at").to_list()
    assert back.get_column("n").to_list() == [1, None]


class Nested(ExperimentInputSpec):
    x: float
    weights: list[float]  # stored as extra_json: the row-dict path


@settings(max_examples=40, deadline=None)
@given(
    specs=st.lists(plain, min_size=1, max_size=25)
    | st.lists(
        st.builds(Nested, x=st.floats(allow_nan=False), weights=st.lists(st.floats(-1e9, 1e9))),
        min_size=1,
        max_size=25,
    ),
    chunk=st.integers(1, 7),
)
def test_a_batch_validated_chunk_by_chunk_gives_the_same_specs_in_order(
    tmp_path_factory, specs, chunk
):
    # Nodes validate their specs a chunk at a time (so the memory one chunk took is
    # reused by the next): whatever the chunk size, the same specs in the same order.
    from scythe.batches import open_batch

    schema = compile_experiment(type(specs[0]), Out)
    store = LocalStore(tmp_path_factory.mktemp("batch"))
    write_batch(store, "b.parquet", specs_frame(specs, schema, list(range(len(specs))), None))
    batch = open_batch(store, "b.parquet", schema)
    whole, _ = read_batch(store, "b.parquet", schema)
    chunked = list(batch.specs(chunk=chunk))
    assert len(batch) == len(specs) == len(chunked)
    assert [s.sort_index for s in chunked] == list(range(len(specs)))
    assert [s.model_dump_json() for s in chunked] == [s.model_dump_json() for s in whole]
    assert batch.index.get_column("sort_index").to_list() == list(range(len(specs)))
