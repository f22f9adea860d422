"""What a compiled schema is: columns, table schemas and the experiment's set of tables.

A :class:`TableSchema` gives the same columns several ways: a polars schema,
an Arrow schema for Delta Lake (``delta_schema``: arro3, which deltalake
brings, so writing a table needs no pyarrow), a pyarrow schema (for pandas)
and a pandera ``DataFrameSchema`` that enforces the constraints declared on the
pydantic fields. pandera (which imports pandas) is loaded only when a pandera
schema or check is first asked for, pyarrow only when a pyarrow schema is
(worker processes need neither).
"""

from __future__ import annotations

import enum
import functools
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from scythe.errors import ColumnNotFoundError, TableNotFoundError
from scythe.references import file_reference_uri
from scythe.schema.exact import accepted_types

if TYPE_CHECKING:
    import arro3.core
    import pandera.polars as pa
    import pyarrow

    from scythe.base import ExperimentInputSpec, ExperimentOutputSpec

SORT_SUBINDEX = "sort_subindex"
SCALARS = "scalars"
FILE_REFS = "result_file_refs"
FAILURES = "failures"
SPECS = "specs"
BUILTIN_TABLES = (SCALARS, FILE_REFS, FAILURES, SPECS)
FAILURE_COLUMNS = ("error_type", "message", "traceback", "attempts")
EXTRA_JSON = "extra_json"

PLAIN_TYPES = (int, float, str, bool, type(None))
"""Python types whose values go into a table cell as they are."""


def cell(value: Any) -> Any:
    """A spec value as it is stored in a table cell.

    >>> cell(Path("/data/a.epw")), cell(datetime(2026, 1, 1)).tzinfo
    ('/data/a.epw', datetime.timezone.utc)
    """
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path) or _is_url(value):
        return file_reference_uri(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def _is_url(value: Any) -> bool:
    """Whether ``value`` is a pydantic URL (only a loaded pydantic can have made one)."""
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(value, pydantic.AnyUrl)


# --------------------------------------------------------------------------- columns


@dataclass(frozen=True)
class Constraint:
    """One constraint read from a pydantic field, kept as data so it can be shown and compiled."""

    kind: Literal[
        "ge", "gt", "le", "lt", "multiple_of", "isin", "min_length", "max_length", "pattern"
    ]
    value: Any

    @property
    def bound(self) -> Any:
        """The value to compare cells with: a naive datetime bound is UTC, as the cells are."""
        value = self.value
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    def to_check(self) -> pa.Check:
        """The pandera check that enforces this constraint on a polars column."""
        import pandera.polars as pa

        simple = {"ge": pa.Check.ge, "gt": pa.Check.gt, "le": pa.Check.le, "lt": pa.Check.lt}
        if self.kind in simple:
            return simple[self.kind](self.bound)
        if self.kind == "isin":
            return pa.Check.isin(list(self.value))
        if self.kind == "min_length":
            return pa.Check.str_length(min_value=self.value)
        if self.kind == "max_length":
            return pa.Check.str_length(max_value=self.value)
        if self.kind == "pattern":
            # pydantic searches (unanchored), as str_contains does.
            return pa.Check.str_contains(self.value)
        if self.kind == "multiple_of":
            return _multiple_of_check(self.value)
        raise AssertionError(f"unknown constraint kind {self.kind!r}")


def _multiple_of_check(step: int | float) -> pa.Check:
    import pandera.polars as pa

    def check(data: Any) -> pl.LazyFrame:
        col = pl.col(data.key)
        if isinstance(step, int):
            return data.lazyframe.select(col % step == 0)
        quotient = col / step
        # Float steps: accept rounding error relative to the quotient, as pydantic does.
        return data.lazyframe.select(
            (quotient - quotient.round()).abs() <= 1e-9 * quotient.abs().clip(1)
        )

    return pa.Check(check, name="multiple_of", error=f"multiple_of({step})")


@dataclass(frozen=True)
class Column:
    """One column of a table: name, exact dtype, nullability and checks."""

    name: str
    dtype: pl.DataType
    nullable: bool = False
    constraints: tuple[Constraint, ...] = ()
    extra_checks: tuple[pa.Check, ...] = ()
    unique: bool = False
    description: str | None = None

    def pandera_column(self) -> pa.Column:
        import pandera.polars as pa

        checks = [c.to_check() for c in self.constraints] + list(self.extra_checks)
        return pa.Column(
            self.dtype,
            checks=checks or None,
            nullable=self.nullable,
            unique=self.unique,
            description=self.description,
            name=self.name,
        )

    def arrow_field(self) -> pyarrow.Field:
        import pyarrow

        return pyarrow.field(self.name, arrow_type(self.dtype), nullable=self.nullable)


def _simple_delta_type(dtype: pl.DataType) -> arro3.core.DataType | None:
    """The Arrow type Delta tables store for a scalar dtype (None for a nested one).

    Plain (not large) strings: the type Delta tables store and return.
    """
    from arro3.core import DataType

    simple = {
        pl.String: DataType.string,
        pl.Int64: DataType.int64,
        pl.Int32: DataType.int32,
        pl.Float64: DataType.float64,
        pl.Float32: DataType.float32,
        pl.Boolean: DataType.bool,
        pl.Date: DataType.date32,
    }
    for polars_type, make in simple.items():
        if dtype == polars_type:
            return make()
    if isinstance(dtype, pl.Datetime):
        return DataType.timestamp(dtype.time_unit or "us", tz=dtype.time_zone)
    return None


def arrow_type(dtype: pl.DataType) -> pyarrow.DataType:
    """The Arrow type of a column's polars dtype, as Delta tables store it, in pyarrow."""
    import pyarrow
    from arro3.core import Field

    simple = _simple_delta_type(dtype)
    if simple is None:  # nested: the type polars gives it
        return pl.DataFrame(schema={"c": dtype}).to_arrow().schema.field("c").type
    return pyarrow.field(Field("c", simple)).type


def delta_type(dtype: pl.DataType) -> arro3.core.DataType:
    """:func:`arrow_type` as an arro3 type: pyarrow is imported only for a nested dtype."""
    from arro3.core import DataType

    simple = _simple_delta_type(dtype)
    return simple if simple is not None else DataType.from_arrow(arrow_type(dtype))


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class TableSchema:
    """The compiled schema of one table: index columns, then value columns."""

    name: str
    index: tuple[Column, ...]
    values: tuple[Column, ...]
    multi_row: bool = False
    description: str = ""

    @property
    def index_columns(self) -> tuple[Column, ...]:
        """Index columns, with ``sort_subindex`` last for multi-row tables."""
        if not self.multi_row:
            return self.index
        sub = Column(
            SORT_SUBINDEX,
            pl.Int64(),
            constraints=(Constraint("ge", 0),),
            description="Row of this spec's frame (0..n-1).",
        )
        return (*self.index, sub)

    @property
    def columns(self) -> tuple[Column, ...]:
        return (*self.index_columns, *self.values)

    @property
    def index_names(self) -> list[str]:
        return [c.name for c in self.index_columns]

    @functools.cached_property
    def value_names(self) -> list[str]:
        return [c.name for c in self.values]

    @functools.cached_property
    def value_dtypes(self) -> list[pl.DataType]:
        return [c.dtype for c in self.values]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def sort_keys(self) -> list[str]:
        return ["sort_index", SORT_SUBINDEX] if self.multi_row else ["sort_index"]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise ColumnNotFoundError(
            f"table {self.name!r} has no column {name!r}; columns: {self.names}"
        )

    def polars_schema(self) -> pl.Schema:
        return self._polars_schema

    def arrow_schema(self) -> pyarrow.Schema:
        return self._arrow_schema

    def delta_schema(self) -> arro3.core.Schema:
        """The table's Arrow schema as Delta Lake takes it, built without pyarrow."""
        return self._delta_schema

    def pandera_schema(self) -> pa.DataFrameSchema:
        """A pandera schema that checks dtypes, nulls, constraints and unique sort keys."""
        return self._pandera_schema

    def outputs_pandera_schema(self) -> pa.DataFrameSchema:
        """The checks of the output columns and of unique sort keys; index columns unchecked."""
        return self._outputs_pandera_schema

    @functools.cached_property
    def _outputs_pandera_schema(self) -> pa.DataFrameSchema:
        import pandera.polars as pa

        keys = [c for c in self.index_columns if c.name in self.sort_keys]
        return pa.DataFrameSchema(
            {c.name: c.pandera_column() for c in (*keys, *self.values)},
            strict=False,
            unique=self.sort_keys,
            name=self.name,
        )

    # Built once per table: nodes validate many batches against the same schema.
    @functools.cached_property
    def _polars_schema(self) -> pl.Schema:
        return pl.Schema({c.name: c.dtype for c in self.columns})

    @functools.cached_property
    def _delta_schema(self) -> arro3.core.Schema:
        from arro3.core import Field, Schema

        return Schema(
            [Field(c.name, delta_type(c.dtype), nullable=c.nullable) for c in self.columns]
        )

    @functools.cached_property
    def _arrow_schema(self) -> pyarrow.Schema:
        import pyarrow

        return pyarrow.schema([c.arrow_field() for c in self.columns])

    @functools.cached_property
    def _pandera_schema(self) -> pa.DataFrameSchema:
        import pandera.polars as pa

        return pa.DataFrameSchema(
            {c.name: c.pandera_column() for c in self.columns},
            strict=True,
            unique=self.sort_keys,
            name=self.name,
            description=self.description or None,
        )

    def empty_frame(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.polars_schema())


@dataclass(frozen=True)
class ExperimentSchema:
    """Every table schema of an experiment, compiled from its input and output specs."""

    input_spec: type[ExperimentInputSpec]
    output_spec: type[ExperimentOutputSpec]
    index: tuple[Column, ...]
    specs: TableSchema
    scalars: TableSchema
    file_refs: TableSchema
    failures: TableSchema
    dataframes: Mapping[str, TableSchema] = field(default_factory=dict)
    input_file_fields: tuple[str, ...] = ()
    output_file_fields: tuple[str, ...] = ()

    @functools.cached_property
    def index_names(self) -> list[str]:
        return [c.name for c in self.index]

    @functools.cached_property
    def scalar_types(self) -> tuple[tuple[Column, tuple[type, ...]], ...]:
        """Each scalar output column with the Python types its values may have as they are
        (found once: comparing polars dtypes per value is slow)."""
        return tuple((c, accepted_types(c.dtype)) for c in self.scalars.values)

    @functools.cached_property
    def extra_fields(self) -> tuple[str, ...]:
        """Input fields that are not index columns (lists, dicts, nested models)."""
        return tuple(n for n in self.input_spec.model_fields if n not in self.index_names)

    @property
    def result_tables(self) -> dict[str, TableSchema]:
        """Result tables by name: scalars, result_file_refs, failures, then one per frame output."""
        return {
            SCALARS: self.scalars,
            FILE_REFS: self.file_refs,
            FAILURES: self.failures,
            **self.dataframes,
        }

    def table(self, name: str) -> TableSchema:
        tables = {SPECS: self.specs, **self.result_tables}
        try:
            return tables[name]
        except KeyError:
            raise TableNotFoundError(f"no table {name!r}; tables: {sorted(tables)}") from None
