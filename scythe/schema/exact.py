"""Exact types: whether a value fits its compiled column without changing.

Outputs are stored with the dtypes compiled from their specs. Widening is
exact and allowed (an integer into a float column, ``Float32`` into
``Float64``, a categorical into a string column, another datetime unit or
zone); anything that would change a value is refused: a float with a
fractional part into an integer column (polars' cast truncates it), strings
parsed into numbers, booleans into integers. A refusal is a message naming
the declared dtype and the first value that does not fit.

>>> import polars as pl
>>> cast_problem(pl.Series([1.0, 2.0]), pl.Int64) is None
True
>>> cast_problem(pl.Series([1.7, 2.2]), pl.Int64)
'declared Int64 but holds 1.7 (Float64): a float is never truncated into an integer column'
>>> scalar_problem(2.7, pl.Int64)
'declared Int64 but holds 2.7 (float)'
"""

from __future__ import annotations

from typing import Any

import polars as pl

# The Python types a plain scalar may have for each compiled scalar dtype.
_SCALAR_TYPES: dict[Any, tuple[type, ...]] = {
    pl.Int64: (int,),
    pl.Int32: (int,),
    pl.Float64: (float, int),
    pl.Float32: (float, int),
    pl.String: (str,),
    pl.Boolean: (bool,),
}

# Parametrised dtypes whose parameters (unit, zone, categories) may differ.
_SAME_KIND = (pl.Datetime, pl.Duration, pl.Decimal, pl.Categorical, pl.Enum)


def accepted_types(dtype: pl.DataType) -> tuple[type, ...]:
    """The Python types a plain scalar of ``dtype`` may have as it is (empty: judged otherwise).

    Looked up once per column, not per value: comparing polars dtypes is slow.
    """
    return _SCALAR_TYPES.get(dtype, ())


def scalar_problem(value: Any, dtype: pl.DataType) -> str | None:
    """Why a plain Python scalar (int, float, str, bool, None) does not fit ``dtype``; None if it does.

    Only plain scalars are judged here (other values are converted to cells
    and checked when their column is built).
    """
    accepted = _SCALAR_TYPES.get(dtype)
    if value is None or accepted is None:
        return None
    kind = type(value)
    if kind in accepted:  # exact types: True is a bool, not an int
        return None
    if isinstance(value, float) and dtype.is_integer() and value.is_integer():
        return None  # 2.0 for an int is exact
    return f"declared {dtype} but holds {value!r} ({kind.__name__})"


def cast_problem(series: pl.Series, dtype: pl.DataType) -> str | None:
    """Why casting ``series`` to ``dtype`` would change a value; None if the cast is exact."""
    source = series.dtype
    if source == dtype or source == pl.Null:
        return None
    if source.is_integer() and (dtype.is_integer() or dtype.is_float()):
        return None  # a strict cast refuses an overflow
    if source.is_float() and dtype.is_float():
        return None
    if source.is_float() and dtype.is_integer():
        return _fractional(series, dtype)
    if isinstance(source, pl.Categorical | pl.Enum) and dtype == pl.String:
        return None
    if isinstance(source, pl.List | pl.Array) and isinstance(dtype, pl.List | pl.Array):
        items = series.explode() if isinstance(source, pl.List) else series.arr.explode()
        return cast_problem(items, dtype.inner)  # type: ignore[arg-type]
    if isinstance(source, pl.Struct) and isinstance(dtype, pl.Struct):
        return _struct_problem(series, source, dtype)
    if source.base_type() == dtype.base_type() and source.base_type() in _SAME_KIND:
        return None
    sample = series.drop_nulls()
    example = f" (e.g. {sample[0]!r})" if sample.len() else ""
    return f"declared {dtype} but holds {source} values{example}: values are not converted"


def _fractional(series: pl.Series, dtype: pl.DataType) -> str | None:
    values = series.drop_nulls()
    bad = values.filter(~values.is_finite() | (values != values.floor()))
    if bad.len() == 0:
        return None
    return (
        f"declared {dtype} but holds {bad[0]!r} ({series.dtype}): "
        "a float is never truncated into an integer column"
    )


def _struct_problem(series: pl.Series, source: pl.Struct, dtype: pl.Struct) -> str | None:
    present = {f.name for f in source.fields}
    for field in dtype.fields:
        if field.name in present:
            problem = cast_problem(series.struct.field(field.name), field.dtype)
            if problem:
                return f"field {field.name!r} {problem}"
    return None
