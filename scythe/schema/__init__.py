"""Specs compiled to table schemas: index columns, Arrow, polars, pandera; the stored
form kept with every run; pandas frames with the input ``MultiIndex``; JSON Schema.

One module per concern:

- :mod:`scythe.schema.columns` — what a compiled schema is (columns, tables);
- :mod:`scythe.schema.compile` — spec classes to schemas (:func:`compile_experiment`);
- :mod:`scythe.schema.exact` — whether a value fits its column without changing;
- :mod:`scythe.schema.checks` — a table's checks run as polars expressions;
- :mod:`scythe.schema.stored` — the form stored with a run, and back;
- :mod:`scythe.schema.multiindex` — pandas interop (loaded on first use: it imports pandas);
- :mod:`scythe.schema.json_schema` — the specs' JSON Schema.

>>> from scythe import ExperimentInputSpec, ExperimentOutputSpec
>>> from scythe.schema import compile_experiment
>>> class In(ExperimentInputSpec):
...     r_value: float
>>> class Out(ExperimentOutputSpec):
...     heating: float
>>> compile_experiment(In, Out).scalars.polars_schema()["heating"]
Float64
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scythe.lazy import lazy_attributes
from scythe.schema.checks import FailureCase, describe, failure_cases
from scythe.schema.columns import (
    BUILTIN_TABLES,
    EXTRA_JSON,
    FAILURE_COLUMNS,
    FAILURES,
    FILE_REFS,
    PLAIN_TYPES,
    SCALARS,
    SORT_SUBINDEX,
    SPECS,
    Column,
    Constraint,
    ExperimentSchema,
    TableSchema,
    arrow_type,
    cell,
)
from scythe.schema.exact import accepted_types, cast_problem, scalar_problem
from scythe.schema.stored import (
    schema_from_dict,
    schema_to_dict,
    table_from_dict,
    table_to_dict,
    tables_from_dict,
)

if TYPE_CHECKING:
    from scythe.schema.compile import (
        compile_experiment,
        compile_field,
        computed_feature_columns,
        computed_feature_types,
        computed_features_of,
        feature_types,
        index_columns,
    )
    from scythe.schema.json_schema import experiment_io_spec
    from scythe.schema.multiindex import from_pandas, pandas_dtype, to_pandas

# Loaded on first use: compiling specs and their JSON Schema need pydantic (reading a
# run's stored schemas does not), pandas frames need pandas.
_LAZY = {
    **dict.fromkeys(
        (
            "compile_experiment",
            "compile_field",
            "computed_feature_columns",
            "computed_feature_types",
            "computed_features_of",
            "feature_types",
            "index_columns",
        ),
        "scythe.schema.compile",
    ),
    "experiment_io_spec": "scythe.schema.json_schema",
    **dict.fromkeys(("from_pandas", "pandas_dtype", "to_pandas"), "scythe.schema.multiindex"),
}

__getattr__ = lazy_attributes(__name__, _LAZY, globals())


__all__ = [
    "BUILTIN_TABLES",
    "EXTRA_JSON",
    "FAILURES",
    "FAILURE_COLUMNS",
    "FILE_REFS",
    "PLAIN_TYPES",
    "SCALARS",
    "SORT_SUBINDEX",
    "SPECS",
    "Column",
    "Constraint",
    "ExperimentSchema",
    "FailureCase",
    "TableSchema",
    "accepted_types",
    "arrow_type",
    "cast_problem",
    "cell",
    "compile_experiment",
    "compile_field",
    "computed_feature_columns",
    "computed_feature_types",
    "computed_features_of",
    "describe",
    "experiment_io_spec",
    "failure_cases",
    "feature_types",
    "from_pandas",
    "index_columns",
    "pandas_dtype",
    "scalar_problem",
    "schema_from_dict",
    "schema_to_dict",
    "table_from_dict",
    "table_to_dict",
    "tables_from_dict",
    "to_pandas",
]
