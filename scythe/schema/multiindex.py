"""Results frames to and from pandas, indexed by the input ``MultiIndex``.

Loaded only when a pandas frame is asked for: ``import scythe`` does not import pandas.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow

from scythe.errors import SchemaMismatchError
from scythe.schema.columns import Column, TableSchema, arrow_type


def pandas_dtype(col: Column) -> Any:
    """The pandas dtype a column takes in :func:`to_pandas` (decided by the schema, not the data)."""
    dtype = col.dtype
    if dtype == pl.Int64:
        return pd.Int64Dtype()
    if dtype == pl.Float64:
        return pd.Float64Dtype() if col.nullable else np.dtype("float64")
    if dtype == pl.Boolean:
        return pd.BooleanDtype() if col.nullable else np.dtype("bool")
    if dtype == pl.String:
        return pd.StringDtype("python")
    if isinstance(dtype, pl.Datetime) and dtype.time_zone:
        return pd.DatetimeTZDtype(unit=dtype.time_unit, tz=dtype.time_zone)
    return pd.ArrowDtype(arrow_type(dtype))


def to_pandas(frame: pl.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """A results frame as pandas, indexed by the input ``MultiIndex``.

    Index levels are the table's index columns in order (with ``sort_subindex``
    last for multi-row tables); dtypes come from the schema: ``Int64`` for
    integers (nullable or not, never float), ``Float64``/``boolean`` for
    nullable floats and booleans, ``string`` for strings, UTC datetimes.

    >>> from scythe import ExperimentInputSpec, ExperimentOutputSpec
    >>> from scythe.schema import compile_experiment
    >>> class In(ExperimentInputSpec):
    ...     floors: int | None = None
    >>> class Out(ExperimentOutputSpec):
    ...     heating: float
    >>> t = compile_experiment(In, Out).scalars
    >>> df = pl.DataFrame({"experiment_id": ["e", "e"], "sort_index": [0, 1],
    ...     "workflow_run_id": [None, None], "root_workflow_run_id": [None, None],
    ...     "floors": [3, None], "heating": [1.5, 2.5]}, schema=t.polars_schema())
    >>> to_pandas(df, t).index.get_level_values("floors").dtype
    Int64Dtype()
    """
    missing = [n for n in schema.names if n not in frame.columns]
    if missing:
        raise SchemaMismatchError(f"frame for table {schema.name!r} lacks columns {missing}")
    data = {col.name: _pandas_series(frame.get_column(col.name), col) for col in schema.columns}
    pdf = pd.DataFrame(data, columns=schema.names)
    index_names = schema.index_names
    index = pd.MultiIndex.from_arrays([pdf[n] for n in index_names], names=index_names)
    out = pdf[schema.value_names]
    out.index = index
    return out


def from_pandas(df: pd.DataFrame, schema: TableSchema) -> pl.DataFrame:
    """The inverse of :func:`to_pandas`: a flat polars frame with the table's exact dtypes."""
    flat = df.reset_index()
    missing = [n for n in schema.names if n not in flat.columns]
    if missing:
        raise SchemaMismatchError(
            f"pandas frame for table {schema.name!r} lacks columns {missing} "
            "(as index levels or columns)"
        )
    series = [
        pl.Series(col.name, pyarrow.array(flat[col.name], from_pandas=False)).cast(col.dtype)
        for col in schema.columns
    ]
    return pl.DataFrame(series)


_MASKED_ARRAYS = {
    pd.Int64Dtype(): (pd.arrays.IntegerArray, "int64", 0),
    pd.Float64Dtype(): (pd.arrays.FloatingArray, "float64", 0.0),
    pd.BooleanDtype(): (pd.arrays.BooleanArray, "bool", False),
}


def _pandas_series(series: pl.Series, col: Column) -> pd.Series:
    target = pandas_dtype(col)
    masked = _MASKED_ARRAYS.get(target)
    if masked is not None:
        # Built from values and mask: pandas' own casts go through float, which
        # rounds integers above 2**53 and turns NaN into NA.
        array_type, numpy_dtype, fill = masked
        values = np.array(series.fill_null(fill).to_numpy(), dtype=numpy_dtype, copy=True)
        mask = np.array(series.is_null().to_numpy(), dtype=bool, copy=True)
        return pd.Series(array_type(values, mask), name=series.name)
    return series.to_pandas(use_pyarrow_extension_array=True).astype(target)
