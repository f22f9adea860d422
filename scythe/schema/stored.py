"""The stored form of a compiled schema: plain, YAML-safe data kept with every run.

A run's schema is compiled once, at allocation, and written to
``table_schemas.yml``. Every node of the run and every later read checks
against what is stored there (DESIGN.md invariant 11), so a run stays readable
and resumable whatever happened to the code since. Exact column types travel as
a serialized Arrow schema; constraints and pandera checks travel by name with
their statistics.

>>> from scythe import ExperimentInputSpec, ExperimentOutputSpec
>>> from scythe.schema import compile_experiment
>>> class In(ExperimentInputSpec):
...     x: float
>>> class Out(ExperimentOutputSpec):
...     y: float
>>> stored = schema_to_dict(compile_experiment(In, Out))
>>> tables_from_dict(stored)["scalars"].value_names
['y']
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import polars as pl

from scythe.errors import ResultValidationError
from scythe.schema.columns import (
    FAILURES,
    FILE_REFS,
    SCALARS,
    SPECS,
    Column,
    Constraint,
    ExperimentSchema,
    TableSchema,
)

if TYPE_CHECKING:
    import pandera.polars as pa

    from scythe.base import ExperimentInputSpec, ExperimentOutputSpec

STORED_FORMAT = 2


# --------------------------------------------------------------------------- checks


def storable_check(check: pa.Check) -> bool:
    """Whether a pandera check can be stored by name: built in, or registered as an extension."""
    return check.name is not None and (
        type(check).is_builtin_check(check.name)
        or check.name in type(check).REGISTERED_CUSTOM_CHECKS
    )


def _check_to_dict(check: pa.Check) -> dict[str, Any]:
    return {"name": check.name, "statistics": dict(check.statistics or {}), "error": check.error}


def _check_from_dict(data: Mapping[str, Any]) -> pa.Check:
    import pandera.polars as pa

    name, statistics = data["name"], dict(data["statistics"])
    if pa.Check.is_builtin_check(name):
        return pa.Check.from_builtin_check_name(
            name, statistics, error=data["error"], statistics=statistics
        )
    if name in pa.Check.REGISTERED_CUSTOM_CHECKS:
        return getattr(pa.Check, name)(**statistics)
    raise ResultValidationError(
        f"the stored schema checks {name!r}, a custom pandera check this process has not "
        "registered: import the module that calls pandera.extensions.register_check_method "
        f"for {name!r} first"
    )


# --------------------------------------------------------------------------- columns and tables


def _column_to_dict(col: Column) -> dict[str, Any]:
    return {
        "name": col.name,
        "dtype": str(col.dtype),
        "nullable": col.nullable,
        "unique": col.unique,
        "description": col.description,
        "constraints": [
            [c.kind, list(c.value) if isinstance(c.value, tuple) else c.value]
            for c in col.constraints
        ],
        "checks": [_check_to_dict(ch) for ch in col.extra_checks if storable_check(ch)],
    }


def _column_from_dict(data: Mapping[str, Any], dtypes: Mapping[str, pl.DataType]) -> Column:
    constraints = tuple(
        Constraint(kind, tuple(value) if kind == "isin" else value)
        for kind, value in data["constraints"]
    )
    return Column(
        data["name"],
        dtypes[data["name"]],
        nullable=data["nullable"],
        constraints=constraints,
        extra_checks=tuple(_check_from_dict(c) for c in data.get("checks", [])),
        unique=data["unique"],
        description=data["description"],
    )


def table_to_dict(table: TableSchema) -> dict[str, Any]:
    """A plain, YAML-safe description of a table schema (see :func:`table_from_dict`)."""
    return {
        "name": table.name,
        "description": table.description,
        "multi_row": table.multi_row,
        "index": [_column_to_dict(c) for c in table.index],
        "values": [_column_to_dict(c) for c in table.values],
        "arrow_schema": base64.b64encode(_ipc_schema(table)).decode(),
    }


_IPC_END = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # the end-of-stream marker of Arrow IPC


def _ipc_schema(table: TableSchema) -> bytes:
    """The table's schema as an Arrow IPC schema message, written by polars (no pyarrow)."""
    buffer = io.BytesIO()
    table.empty_frame().write_ipc_stream(buffer, compat_level=pl.CompatLevel.oldest())
    stream = buffer.getvalue()
    return stream[: -len(_IPC_END)] if stream.endswith(_IPC_END) else stream


def _polars_dtypes(encoded: str) -> pl.Schema:
    """The polars dtypes of a stored Arrow schema (an IPC schema message).

    The message plus an end-of-stream marker is an IPC stream of no batches,
    which polars reads itself: no pyarrow in the processes that only read schemas.
    """
    return pl.read_ipc_stream(io.BytesIO(base64.b64decode(encoded) + _IPC_END)).schema


def table_from_dict(data: Mapping[str, Any]) -> TableSchema:
    """Rebuild a :class:`TableSchema` stored with :func:`table_to_dict`."""
    dtypes = _polars_dtypes(data["arrow_schema"])
    return TableSchema(
        data["name"],
        tuple(_column_from_dict(d, dtypes) for d in data["index"]),
        tuple(_column_from_dict(d, dtypes) for d in data["values"]),
        multi_row=data["multi_row"],
        description=data.get("description", ""),
    )


# --------------------------------------------------------------------------- experiments


def schema_to_dict(schema: ExperimentSchema) -> dict[str, Any]:
    """The stored form of every table of an experiment (what ``table_schemas.yml`` holds)."""
    tables = {SPECS: schema.specs, **schema.result_tables}
    return {
        "format": STORED_FORMAT,
        "input_file_fields": list(schema.input_file_fields),
        "tables": {name: table_to_dict(table) for name, table in tables.items()},
    }


def _stored_tables(data: Mapping[str, Any]) -> Mapping[str, Any]:
    # Format 1 (the first runs) stored the tables at the top level.
    return data["tables"] if "format" in data else data


def tables_from_dict(data: Mapping[str, Any]) -> dict[str, TableSchema]:
    """Every stored table schema by name: ``specs``, then the result tables."""
    return {name: table_from_dict(table) for name, table in _stored_tables(data).items()}


def schema_from_dict(
    data: Mapping[str, Any],
    input_spec: type[ExperimentInputSpec],
    output_spec: type[ExperimentOutputSpec],
) -> ExperimentSchema:
    """The run's :class:`ExperimentSchema`: stored tables, bound to the spec classes that run it.

    Columns, types and checks come from storage; the spec classes only build
    specs and outputs, so a change to their constraints since allocation does
    not change what the run checks. Tables inferred from undeclared frames
    (marked ``inferred``) are not among the declared ``dataframes``.
    """
    tables = tables_from_dict(data)
    inferred = {n for n, t in _stored_tables(data).items() if t.get("inferred")}
    file_fields = data.get("input_file_fields") if "format" in data else None
    if file_fields is None:
        file_fields = input_spec.file_reference_fields()
    builtin = (SPECS, SCALARS, FILE_REFS, FAILURES)
    return ExperimentSchema(
        input_spec=input_spec,
        output_spec=output_spec,
        index=tables[SPECS].index,
        specs=tables[SPECS],
        scalars=tables[SCALARS],
        file_refs=tables[FILE_REFS],
        failures=tables[FAILURES],
        dataframes={n: t for n, t in tables.items() if n not in builtin and n not in inferred},
        input_file_fields=tuple(file_fields),
        output_file_fields=tuple(tables[FILE_REFS].value_names),
    )
