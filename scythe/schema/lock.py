"""The lock form of an experiment's schema: plain, stable, reviewable JSON.

One entry per experiment holds what a run of it would store: the index
columns, every result table's value columns (dtype, nullability, uniqueness
and checks), which inputs are required or have a default, and the JSON Schema
of the specs. ``scythe schema export`` writes the entries of every experiment
of some modules to ``scythe.schema.json`` (one experiment per top-level key,
keys sorted); ``scythe schema check`` compares them with the code
(:mod:`scythe.schema.diff`), and ``allocate()`` compares the entry of a new
run with the one built from the schema stored with the latest run.

Checks are written the same way whatever declared them: a pydantic
``Field(ge=0)`` and a pandera ``Field(ge=0)`` are both ``{"kind": "ge",
"value": 0}``. Computed features depend on spec values, so an entry built
from the classes alone (:func:`experiment_entry`) has none; an entry built
from a run (:func:`stored_entry`) has the run's.

>>> from scythe import ExperimentInputSpec, ExperimentOutputSpec
>>> from pydantic import Field
>>> class In(ExperimentInputSpec):
...     r_value: float = Field(..., ge=0)
>>> class Out(ExperimentOutputSpec):
...     heating: float
>>> entry = experiment_entry(In, Out)
>>> entry["index"][-1]["checks"], entry["inputs"]["r_value"]
([{'kind': 'ge', 'value': 0}], {'required': True})
>>> dump_lock({"b": entry, "a": entry}).splitlines()[1]
'  "a": {'
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from scythe.base import ExperimentInputSpec, ExperimentOutputSpec
from scythe.errors import SchemaMismatchError
from scythe.schema.columns import BUILTIN_TABLES, SPECS, Column, TableSchema
from scythe.schema.compile import compile_experiment
from scythe.schema.json_schema import experiment_io_spec
from scythe.schema.stored import tables_from_dict

LOCK_FILE = "scythe.schema.json"

# pandera's built-in checks, as the constraints they are (statistics -> kinds).
_PANDERA_BOUNDS = {
    "greater_than_or_equal_to": ("ge", "min_value"),
    "greater_than": ("gt", "min_value"),
    "less_than_or_equal_to": ("le", "max_value"),
    "less_than": ("lt", "max_value"),
}


def _plain(value: Any) -> Any:
    """JSON data: tuples as lists, dates and other values as their string form."""
    return json.loads(json.dumps(value, default=str))


def _pandera_checks(name: str, stats: Mapping[str, Any]) -> list[dict[str, Any]]:
    if name in _PANDERA_BOUNDS:
        kind, key = _PANDERA_BOUNDS[name]
        return [{"kind": kind, "value": stats[key]}]
    if name == "in_range":
        low = "ge" if stats.get("include_min", True) else "gt"
        high = "le" if stats.get("include_max", True) else "lt"
        return [
            {"kind": low, "value": stats["min_value"]},
            {"kind": high, "value": stats["max_value"]},
        ]
    if name in ("isin", "notin"):
        values = stats["allowed_values" if name == "isin" else "forbidden_values"]
        return [{"kind": name, "value": list(values)}]
    if name == "equal_to":
        return [{"kind": "isin", "value": [stats["value"]]}]
    if name == "str_length" and stats.get("exact_value") is None:
        found = [
            {"kind": kind, "value": stats[key]}
            for kind, key in (("min_length", "min_value"), ("max_length", "max_value"))
            if stats.get(key) is not None
        ]
        return found
    if name == "str_contains":
        return [{"kind": "pattern", "value": stats["pattern"]}]
    return [{"kind": "check", "name": name, "statistics": dict(stats)}]


def column_entry(column: Column) -> dict[str, Any]:
    """One column as lock data: name, dtype, nullable, unique, checks, description.

    >>> import polars as pl
    >>> from scythe.schema import Constraint
    >>> column_entry(Column("x", pl.Int64(), constraints=(Constraint("isin", (1, 2)),)))["checks"]
    [{'kind': 'isin', 'value': [1, 2]}]
    """
    checks: list[dict[str, Any]] = [
        {"kind": c.kind, "value": list(c.value) if isinstance(c.value, tuple) else c.value}
        for c in column.constraints
    ]
    for check in column.extra_checks:
        if check.name is not None:
            checks.extend(_pandera_checks(check.name, check.statistics or {}))
    return _plain(
        {
            "name": column.name,
            "dtype": str(column.dtype),
            "nullable": column.nullable,
            "unique": column.unique,
            "checks": checks,
            "description": column.description,
        }
    )


def table_entry(table: TableSchema) -> dict[str, Any]:
    """A result table as lock data: ``multi_row`` and its value columns (the index is shared).

    >>> import polars as pl
    >>> table_entry(TableSchema("t", (), (Column("y", pl.Float64()),)))["columns"][0]["dtype"]
    'Float64'
    """
    return {"multi_row": table.multi_row, "columns": [column_entry(c) for c in table.values]}


def inputs_of(io_spec: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Each input field (base fields excluded): whether it is required, and its default if any.

    >>> from scythe import ExperimentOutputSpec
    >>> class In(ExperimentInputSpec):
    ...     a: int
    ...     b: str = "x"
    >>> inputs_of(experiment_io_spec(In, ExperimentOutputSpec))
    {'a': {'required': True}, 'b': {'required': False, 'default': 'x'}}
    """
    if io_spec is None:
        return {}
    schema = io_spec["properties"]["input"]
    required = set(schema.get("required", []))
    inputs: dict[str, dict[str, Any]] = {}
    for name, prop in schema.get("properties", {}).items():
        if name in ExperimentInputSpec.BASE_FIELDS:
            continue
        inputs[name] = {"required": name in required}
        if "default" in prop:
            inputs[name]["default"] = prop["default"]
    return _plain(inputs)


def entry_of(
    index: Iterable[Column],
    tables: Mapping[str, TableSchema],
    io_spec: Mapping[str, Any] | None,
    *,
    references: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The lock entry of index columns, result tables and the specs' JSON Schema.

    >>> from scythe import ExperimentOutputSpec
    >>> class In(ExperimentInputSpec):
    ...     a: int
    >>> schema = compile_experiment(In, ExperimentOutputSpec)
    >>> sorted(entry_of(schema.index, schema.result_tables, None))
    ['index', 'inputs', 'json_schema', 'tables']
    """
    entry: dict[str, Any] = dict(references or {})
    entry["index"] = [column_entry(c) for c in index]
    entry["tables"] = {name: table_entry(t) for name, t in tables.items()}
    entry["inputs"] = inputs_of(io_spec)
    entry["json_schema"] = _plain(io_spec) if io_spec is not None else None
    return entry


def _reference(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def experiment_entry(
    input_spec: type[ExperimentInputSpec],
    output_spec: type[ExperimentOutputSpec],
    *,
    function: Any = None,
) -> dict[str, Any]:
    """The lock entry of an experiment, compiled from its spec classes (no computed features).

    ``function`` (the registered function) adds its ``module:qualname`` to the entry.
    """
    schema = compile_experiment(input_spec, output_spec)
    references = {"input_spec": _reference(input_spec), "output_spec": _reference(output_spec)}
    if function is not None:
        references["function"] = _reference(function)
    return entry_of(
        schema.index,
        schema.result_tables,
        experiment_io_spec(input_spec, output_spec),
        references=references,
    )


def stored_entry(stored: Mapping[str, Any], io_spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """The lock entry of a run, from its ``table_schemas.yml`` and ``experiment_io_spec.yml``.

    Tables inferred from undeclared frames are left out: they are not declared
    by the specs, and every run infers its own.

    >>> from scythe import ExperimentOutputSpec
    >>> from scythe.schema import schema_to_dict
    >>> class In(ExperimentInputSpec):
    ...     a: int
    >>> class Out(ExperimentOutputSpec):
    ...     y: float
    >>> schema, io_spec = compile_experiment(In, Out), experiment_io_spec(In, Out)
    >>> stored_entry(schema_to_dict(schema), io_spec) == entry_of(
    ...     schema.index, schema.result_tables, io_spec)
    True
    """
    raw = stored["tables"] if "format" in stored else stored
    declared = {n for n, t in raw.items() if not t.get("inferred")}
    tables = {n: t for n, t in tables_from_dict(stored).items() if n in declared}
    results = {n: t for n, t in tables.items() if n != SPECS}
    ordered = {n: results[n] for n in BUILTIN_TABLES if n in results}
    ordered.update({n: t for n, t in results.items() if n not in ordered})
    return entry_of(tables[SPECS].index, ordered, io_spec)


def dump_lock(entries: Mapping[str, Mapping[str, Any]]) -> str:
    """The lock file's text: one experiment per top-level key, every key sorted, 2-space indent."""
    return json.dumps(_plain(entries), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def load_lock(text: str, *, source: str = "the lock file") -> dict[str, dict[str, Any]]:
    """The entries of a lock file's text; ``SchemaMismatchError`` if it is not a lock.

    >>> load_lock('{"walls": {"tables": {}}}')
    {'walls': {'tables': {}}}
    >>> load_lock("[]", source="x.json")
    Traceback (most recent call last):
    ...
    scythe.errors.SchemaMismatchError: x.json is not a schema lock (entries ['(document)'] hold no tables): write it with `scythe schema export`
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise SchemaMismatchError(f"{source} is not JSON: {err}") from None
    bad = (
        [k for k, v in data.items() if not (isinstance(v, dict) and "tables" in v)]
        if isinstance(data, dict)
        else ["(document)"]
    )
    if bad:
        raise SchemaMismatchError(
            f"{source} is not a schema lock (entries {bad} hold no tables): "
            "write it with `scythe schema export`"
        )
    return data
