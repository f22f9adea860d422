"""Specs as rows: the ``specs`` table and the per-node batches terminal nodes read.

A spec is stored as its index columns (typed, one column per input field and
computed feature) plus ``extra_json``, the JSON of the fields that cannot be
index values (lists, dicts, nested models; null when there are none). Rows are
built column by column, validated in one pandera call, and turned back into
specs without a JSON round trip: per-spec Python work is what bounds a run of a
million specs.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import pandera.polars as pa
import polars as pl
import pyarrow.parquet as pq

from scythe.base import ExperimentInputSpec
from scythe.errors import SpecValidationError
from scythe.leaf import PLAIN_TYPES, cell
from scythe.schema import EXTRA_JSON, ExperimentSchema
from scythe.storage import Store

PENDING_RUN_ID = "pending"
_PLAIN = frozenset(PLAIN_TYPES)


def specs_frame(
    specs: Sequence[ExperimentInputSpec],
    schema: ExperimentSchema,
    sort_index: Sequence[int],
    features: Sequence[dict[str, Any]] | None,
) -> pl.DataFrame:
    """The ``specs`` table rows of ``specs`` (in the given order), with ``sort_index`` set.

    ``features`` are the specs' computed features (``schema.computed_features_of``),
    computed once by the caller. ``experiment_id`` is a placeholder until the run
    has an id. The specs themselves are only read.
    """
    values: dict[str, list[Any]] = {}
    for col in schema.index:
        name = col.name
        if name == "sort_index":
            column = list(sort_index)
        elif name == "experiment_id":
            column = [PENDING_RUN_ID] * len(specs)
        elif name in schema.input_spec.model_fields:
            column = [s.__dict__[name] for s in specs]
        else:
            column = [f[name] for f in features or []]
        if not set(map(type, column)) <= _PLAIN:  # set/map run in C: cheap on 1M specs
            column = [cell(v) for v in column]
        values[name] = column
    extra = schema.extra_fields
    values[EXTRA_JSON] = (
        [s.model_dump_json(include=set(extra)) for s in specs] if extra else [None] * len(specs)
    )
    return pl.DataFrame(values, schema=schema.specs.polars_schema(), strict=True)


def check_specs_frame(frame: pl.DataFrame, schema: ExperimentSchema) -> None:
    """Check the rows against the compiled input constraints; report every bad spec at once.

    Row ``i`` is spec ``i`` of the caller's list. This also catches specs that
    were valid when built and changed afterwards.
    """
    try:
        schema.specs.pandera_schema().validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        problems = []
        for case in err.failure_cases.iter_rows(named=True):
            row = case.get("index")
            problems.append(
                (
                    None if row is None else int(row),
                    str(case["column"]),
                    case["failure_case"],
                    f"fails {case['check']}",
                )
            )
        name = schema.input_spec.__name__
        raise SpecValidationError.from_problems(
            f"{SpecValidationError.count_specs(problems)} invalid spec(s) of {name}",
            problems,
            spec_name=name,
        ) from err


def write_batch(store: Store, key: str, frame: pl.DataFrame) -> None:
    """Write a terminal node's rows of the ``specs`` table for it to read."""
    buffer = io.BytesIO()
    pq.write_table(frame.to_arrow(), buffer, compression="zstd")
    store.put_bytes(key, buffer.getvalue())


def read_batch(
    store: Store, key: str, schema: ExperimentSchema
) -> tuple[list[ExperimentInputSpec], list[dict[str, Any]]]:
    """A terminal node's specs, and each one's index row, from its batch file."""
    frame = pl.read_parquet(io.BytesIO(store.get_bytes(key)))
    index_rows = frame.select(schema.index_names).to_dicts()
    fields = [n for n in schema.index_names if n in schema.input_spec.model_fields]
    records = frame.select(fields).to_dicts()
    for record, extra in zip(records, frame.get_column(EXTRA_JSON).to_list(), strict=True):
        if extra is not None:
            record.update(json.loads(extra))
    validate = schema.input_spec.model_validate  # per item: faster than a list adapter here
    return [validate(r) for r in records], index_rows
