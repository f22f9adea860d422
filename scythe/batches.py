"""Specs as rows: the ``specs`` table and the per-node batches terminal nodes read.

A spec is stored as its index columns (typed, one column per input field and
computed feature) plus ``extra_json``, the JSON of the fields that cannot be
index values (lists, dicts, nested models; null when there are none). Rows are
built column by column, checked in one polars pass (the compiled checks), and turned back into
specs without a JSON round trip: per-spec Python work is what bounds a run of a
million specs.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import polars as pl

from scythe.base import ExperimentInputSpec, list_adapter
from scythe.errors import SpecValidationError
from scythe.schema import (
    EXTRA_JSON,
    PLAIN_TYPES,
    ExperimentSchema,
    FailureCase,
    cell,
    failure_cases,
)
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
    values: dict[str, list[Any] | pl.Series] = {}
    fields = list(map(vars, specs))  # map/itemgetter run in C: cheap on 1M specs
    n = len(specs)
    dtypes = schema.specs.polars_schema()
    for col in schema.index:
        name = col.name
        if name == "sort_index":
            values[name] = pl.Series(name, sort_index, dtype=pl.Int64)
            continue
        if name == "experiment_id":
            values[name] = pl.repeat(PENDING_RUN_ID, n, dtype=pl.String, eager=True)
            continue
        source = fields if name in schema.input_spec.model_fields else (features or [])
        column = list(map(itemgetter(name), source))
        if column.count(None) == n:  # e.g. the run ids, unset on specs being allocated
            values[name] = pl.repeat(None, n, dtype=dtypes[name], eager=True)
            continue
        if not set(map(type, column)) <= _PLAIN:
            column = [cell(v) for v in column]
        values[name] = column
    extra = schema.extra_fields
    values[EXTRA_JSON] = (
        _extra_json(specs, set(extra)) if extra else pl.repeat(None, n, dtype=pl.String, eager=True)
    )
    return pl.DataFrame(values, schema=dtypes, strict=True)


def _extra_json(specs: Sequence[ExperimentInputSpec], extra: set[str]) -> list[str]:
    """The fields stored as JSON, per spec; a ``SpecValidationError`` names every value that is not."""
    from pydantic_core import PydanticSerializationError

    try:
        return [s.model_dump_json(include=extra) for s in specs]
    except PydanticSerializationError:
        pass
    problems: list[tuple[int | None, str, object, str]] = []
    for i, spec in enumerate(specs):
        for name in sorted(extra):
            try:
                spec.model_dump_json(include={name})
            except PydanticSerializationError as err:
                problems.append((i, name, getattr(spec, name), f"cannot be stored as JSON: {err}"))
    name = type(specs[0]).__name__
    raise SpecValidationError.from_problems(
        f"{SpecValidationError.count_specs(problems)} invalid spec(s) of {name}",
        problems,
        spec_name=name,
    )


def check_specs_frame(frame: pl.DataFrame, schema: ExperimentSchema) -> None:
    """Check the rows against the compiled input constraints; report every bad spec at once.

    Row ``i`` is spec ``i`` of the caller's list. This also catches specs that
    were valid when built and changed afterwards.
    """
    cases = failure_cases(frame, schema.specs)
    if not cases:
        return
    problems = [
        (case.row, case.column, _failure_value(frame, case), _check_message(case.check, case.value))
        for case in cases
    ]
    name = schema.input_spec.__name__
    raise SpecValidationError.from_problems(
        f"{SpecValidationError.count_specs(problems)} invalid spec(s) of {name}",
        problems,
        spec_name=name,
    )


def _failure_value(frame: pl.DataFrame, case: FailureCase) -> object:
    """The failing value as the spec holds it (a whole-frame problem: what was found)."""
    if case.row is not None and case.column in frame.columns:
        return frame.get_column(case.column)[case.row]
    return case.value


def _check_message(check: str, value: object) -> str:
    if check == "not_nullable" and str(value).lower() == "nan":
        return (
            "is NaN, which is not a value an input can hold; give a number, or make the field "
            "optional (`float | None`) and pass None for a missing value"
        )
    if check == "not_nullable":
        return "is missing (null) but the field is required"
    return f"fails {check}"


def write_batch(store: Store, key: str, frame: pl.DataFrame) -> None:
    """Write a terminal node's rows of the ``specs`` table for it to read.

    Batches are read once, by their node: LZ4 and no statistics write fastest.
    """
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="lz4", statistics=False)
    store.put_bytes(key, buffer.getvalue())


# Specs a node validates at a time: a node's specs are freed a chunk at a time, so the
# memory they take is reused by the next chunk instead of being returned to the system
# and faulted in again (see docs/concepts/performance.md).
SPEC_CHUNK = 1000


@dataclass(frozen=True)
class Batch:
    """A terminal node's batch, read from its file: the index columns of its specs (one row
    each, in the batch's order) and the rows its specs are validated from, a chunk at a time."""

    index: pl.DataFrame
    values: pl.DataFrame
    extras: pl.Series
    spec_type: type[ExperimentInputSpec]

    def __len__(self) -> int:
        return self.values.height

    def specs(self, chunk: int = SPEC_CHUNK) -> Iterator[ExperimentInputSpec]:
        """The specs in the batch's order, ``chunk`` validated at a time."""
        adapter = list_adapter(self.spec_type)
        plain = self.extras.null_count() == self.extras.len() and _json_exact(self.values)
        for start in range(0, self.values.height, chunk):
            values = self.values.slice(start, chunk)
            if plain:
                # pydantic parses polars' JSON of the rows in one pass, twice as fast as row dicts
                yield from adapter.validate_json(values.write_json())
                continue
            records = values.to_dicts()
            for record, extra in zip(
                records, self.extras.slice(start, chunk).to_list(), strict=True
            ):
                if extra is not None:
                    record.update(json.loads(extra))
            yield from adapter.validate_python(records)


def open_batch(store: Store, key: str, schema: ExperimentSchema) -> Batch:
    """The batch file at ``key``, its specs not yet validated (:meth:`Batch.specs` does)."""
    frame = pl.read_parquet(io.BytesIO(store.get_bytes(key)))
    fields = [n for n in schema.index_names if n in schema.input_spec.model_fields]
    return Batch(
        index=frame.select(schema.index_names),
        values=frame.select(fields),
        extras=frame.get_column(EXTRA_JSON),
        spec_type=schema.input_spec,
    )


def read_batch(
    store: Store, key: str, schema: ExperimentSchema
) -> tuple[list[ExperimentInputSpec], pl.DataFrame]:
    """A terminal node's specs, and their index columns (one row each, in the same order)."""
    batch = open_batch(store, key, schema)
    return list(batch.specs()), batch.index


_JSON_EXACT_DTYPES = (pl.Int64, pl.Float64, pl.String, pl.Boolean)


def _json_exact(values: pl.DataFrame) -> bool:
    """Whether the rows of ``values`` survive polars' JSON unchanged: integers, strings,
    booleans and finite floats (polars writes NaN and infinity as null)."""
    for name, dtype in values.schema.items():
        if dtype not in _JSON_EXACT_DTYPES:
            return False
        if dtype == pl.Float64 and not values.get_column(name).is_finite().fill_null(True).all():
            return False
    return True
