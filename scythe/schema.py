"""Compile spec classes into table schemas.

From an input spec class (whose fields become the index) and an output spec
class, :func:`compile_experiment` builds one :class:`TableSchema` per result
table. Each table schema gives the same columns three ways: a polars schema,
an Arrow schema (for Delta) and a pandera ``DataFrameSchema`` that enforces the
constraints declared on the pydantic fields. :func:`to_pandas` and
:func:`from_pandas` move a results frame to and from a pandas frame indexed by
the input ``MultiIndex``.

Type map (annotation -> polars dtype):

=====================================  =================================
``int``                                ``Int64``
``float``                              ``Float64``
``bool``                               ``Boolean``
``str``                                ``String``
``Literal["a", "b"]``                  ``String`` + ``isin`` check
``Literal[1, 2]``                      ``Int64`` + ``isin`` check
``Enum`` (str values)                  ``String`` + ``isin`` on the values
``Enum`` (int values)                  ``Int64`` + ``isin`` on the values
``datetime``                           ``Datetime("us", "UTC")``
``date``                               ``Date``
``FileReference``                      ``String`` (a URI)
``X | None``                           ``X``, nullable
=====================================  =================================
"""

from __future__ import annotations

import enum
import functools
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Any, Literal

import annotated_types
import numpy as np
import pandas as pd
import pandera.polars as pa
import polars as pl
import pyarrow
import pyarrow.ipc
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from scythe.base import (
    ExperimentInputSpec,
    ExperimentOutputSpec,
    FileReferenceMarker,
    is_file_reference_field,
)
from scythe.errors import IndexCollisionError, SchemaCompileError, SchemaMismatchError

SORT_SUBINDEX = "sort_subindex"
SCALARS = "scalars"
FILE_REFS = "result_file_refs"
FAILURES = "failures"
SPECS = "specs"
BUILTIN_TABLES = (SCALARS, FILE_REFS, FAILURES, SPECS)
FAILURE_COLUMNS = ("error_type", "message", "traceback", "attempts")
EXTRA_JSON = "extra_json"

_CONTAINER_ORIGINS = (list, tuple, set, frozenset, dict)


# --------------------------------------------------------------------------- columns


@dataclass(frozen=True)
class Constraint:
    """One constraint read from a pydantic field, kept as data so it can be shown and compiled."""

    kind: Literal[
        "ge", "gt", "le", "lt", "multiple_of", "isin", "min_length", "max_length", "pattern"
    ]
    value: Any

    def to_check(self) -> pa.Check:
        """The pandera check that enforces this constraint on a polars column."""
        if self.kind == "ge":
            return pa.Check.ge(self.value)
        if self.kind == "gt":
            return pa.Check.gt(self.value)
        if self.kind == "le":
            return pa.Check.le(self.value)
        if self.kind == "lt":
            return pa.Check.lt(self.value)
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
        return pyarrow.field(self.name, _arrow_type(self.dtype), nullable=self.nullable)

    def pandas_dtype(self) -> Any:
        """The pandas dtype this column takes in :func:`to_pandas` (decided by the schema, not the data)."""
        dtype = self.dtype
        if dtype == pl.Int64:
            return pd.Int64Dtype()
        if dtype == pl.Float64:
            return pd.Float64Dtype() if self.nullable else np.dtype("float64")
        if dtype == pl.Boolean:
            return pd.BooleanDtype() if self.nullable else np.dtype("bool")
        if dtype == pl.String:
            return pd.StringDtype("python")
        if isinstance(dtype, pl.Datetime) and dtype.time_zone:
            return pd.DatetimeTZDtype(unit=dtype.time_unit, tz=dtype.time_zone)
        return pd.ArrowDtype(_arrow_type(dtype))


def _arrow_type(dtype: pl.DataType) -> pyarrow.DataType:
    # Plain (not large) strings: the type Delta tables store and return.
    if dtype == pl.String:
        return pyarrow.string()
    if dtype == pl.Int64:
        return pyarrow.int64()
    if dtype == pl.Int32:
        return pyarrow.int32()
    if dtype == pl.Float64:
        return pyarrow.float64()
    if dtype == pl.Float32:
        return pyarrow.float32()
    if dtype == pl.Boolean:
        return pyarrow.bool_()
    if dtype == pl.Date:
        return pyarrow.date32()
    if isinstance(dtype, pl.Datetime):
        return pyarrow.timestamp(dtype.time_unit or "us", tz=dtype.time_zone)
    return pl.DataFrame(schema={"c": dtype}).to_arrow().schema.field("c").type


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
        raise KeyError(f"table {self.name!r} has no column {name!r}; columns: {self.names}")

    def polars_schema(self) -> pl.Schema:
        return self._polars_schema

    def arrow_schema(self) -> pyarrow.Schema:
        return self._arrow_schema

    def pandera_schema(self) -> pa.DataFrameSchema:
        """A pandera schema that checks dtypes, nulls, constraints and unique sort keys."""
        return self._pandera_schema

    def outputs_pandera_schema(self) -> pa.DataFrameSchema:
        """The checks of the output columns and of unique sort keys; index columns unchecked."""
        return self._outputs_pandera_schema

    @functools.cached_property
    def _outputs_pandera_schema(self) -> pa.DataFrameSchema:
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
    def _arrow_schema(self) -> pyarrow.Schema:
        return pyarrow.schema([c.arrow_field() for c in self.columns])

    @functools.cached_property
    def _pandera_schema(self) -> pa.DataFrameSchema:
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
            raise KeyError(f"no table {name!r}; tables: {sorted(tables)}") from None


# --------------------------------------------------------------------------- annotations


@dataclass
class _Resolved:
    base: Any
    nullable: bool
    metadata: list[Any]
    file_reference: bool


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _resolve(annotation: Any, metadata: Iterable[Any]) -> _Resolved:
    """Strip ``Annotated`` and ``| None`` layers, collecting constraints on the way."""
    meta = list(metadata)
    nullable = False
    file_ref = any(isinstance(m, FileReferenceMarker) for m in meta)
    tp = annotation
    while True:
        if typing.get_origin(tp) is Annotated:
            args = typing.get_args(tp)
            for m in args[1:]:
                if isinstance(m, FieldInfo):
                    meta.extend(m.metadata)
                else:
                    meta.append(m)
                file_ref = file_ref or isinstance(m, FileReferenceMarker)
            tp = args[0]
            continue
        if _is_union(tp):
            args = typing.get_args(tp)
            non_none = [a for a in args if a is not type(None)]
            if len(non_none) < len(args):
                nullable = True
            if len(non_none) == 1:
                tp = non_none[0]
                continue
            if not file_ref and any(_marked(a) for a in non_none):
                file_ref = True
            if len(non_none) < len(args):
                tp = typing.Union[tuple(non_none)]  # noqa: UP007
        break
    return _Resolved(base=tp, nullable=nullable, metadata=meta, file_reference=file_ref)


def _marked(tp: Any) -> bool:
    return typing.get_origin(tp) is Annotated and any(
        isinstance(m, FileReferenceMarker) for m in tp.__metadata__
    )


def _is_container(tp: Any) -> bool:
    origin = typing.get_origin(tp) or tp
    if isinstance(origin, type) and issubclass(origin, _CONTAINER_ORIGINS):
        return True
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _is_dataframe_model_type(tp: Any) -> bool:
    from pandera.typing.polars import DataFrame as PanderaPolarsFrame

    return typing.get_origin(tp) is PanderaPolarsFrame


def _constraints(meta: Iterable[Any]) -> tuple[Constraint, ...]:
    out: list[Constraint] = []
    for m in meta:
        for kind in ("gt", "ge", "lt", "le"):
            value = getattr(m, kind, None)
            if (
                isinstance(m, annotated_types.BaseMetadata | annotated_types.Interval)
                and value is not None
            ):
                out.append(Constraint(kind, value))  # type: ignore[arg-type]
        if isinstance(m, annotated_types.MultipleOf):
            out.append(Constraint("multiple_of", m.multiple_of))
        if isinstance(m, annotated_types.MinLen) and m.min_length:
            out.append(Constraint("min_length", m.min_length))
        if isinstance(m, annotated_types.MaxLen):
            out.append(Constraint("max_length", m.max_length))
        if isinstance(m, annotated_types.Len):
            if m.min_length:
                out.append(Constraint("min_length", m.min_length))
            if m.max_length is not None:
                out.append(Constraint("max_length", m.max_length))
        pattern = getattr(m, "pattern", None)
        if pattern is not None:
            out.append(
                Constraint("pattern", pattern if isinstance(pattern, str) else pattern.pattern)
            )
    return tuple(dict.fromkeys(out))


def _literal_dtype(values: tuple[Any, ...], where: str) -> tuple[pl.DataType, tuple[Any, ...]]:
    if all(isinstance(v, str) for v in values):
        return pl.String(), values
    if all(isinstance(v, bool) for v in values):
        return pl.Boolean(), values
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return pl.Int64(), values
    raise SchemaCompileError(
        f"{where}: Literal{list(values)} mixes types; use values of one type (all str or all int)"
    )


def _base_dtype(tp: Any, where: str) -> tuple[pl.DataType, tuple[Any, ...] | None]:
    """Polars dtype of a resolved (non-optional) annotation, and its allowed values if any."""
    if typing.get_origin(tp) is Literal:
        return _literal_dtype(typing.get_args(tp), where)
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            values = tuple(m.value for m in tp)
            try:
                return _literal_dtype(values, where)
            except SchemaCompileError:
                raise SchemaCompileError(
                    f"{where}: enum {tp.__name__} has values of mixed types {list(values)}"
                ) from None
        if issubclass(tp, bool):
            return pl.Boolean(), None
        if issubclass(tp, int):
            return pl.Int64(), None
        if issubclass(tp, float):
            return pl.Float64(), None
        if issubclass(tp, str):
            return pl.String(), None
        if issubclass(tp, datetime):
            return pl.Datetime("us", "UTC"), None
        if issubclass(tp, date):
            return pl.Date(), None
    raise SchemaCompileError(
        f"{where}: annotation {_type_name(tp)} has no column type; use int, float, bool, str, "
        "Literal, Enum, date, datetime or FileReference (optionally | None)"
    )


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or repr(tp)


def compile_field(model: type[BaseModel], name: str, *, unique: bool = False) -> Column:
    """Compile one pydantic field of ``model`` into a :class:`Column`.

    >>> from pydantic import Field
    >>> class S(ExperimentInputSpec):
    ...     r_value: float = Field(..., ge=0, le=15)
    >>> col = compile_field(S, "r_value")
    >>> col.dtype, [(c.kind, c.value) for c in col.constraints]
    (Float64, [('ge', 0), ('le', 15)])
    """
    info = model.model_fields[name]
    where = f"{model.__name__}.{name}"
    resolved = _resolve(info.annotation, info.metadata)
    if resolved.file_reference or is_file_reference_field(info):
        return Column(
            name,
            pl.String(),
            nullable=resolved.nullable,
            description=info.description or "URI of a file",
        )
    dtype, allowed = _base_dtype(resolved.base, where)
    constraints = _constraints(resolved.metadata)
    if allowed is not None:
        constraints = (*constraints, Constraint("isin", tuple(allowed)))
    return Column(
        name,
        dtype,
        nullable=resolved.nullable,
        constraints=constraints,
        unique=unique,
        description=info.description,
    )


def _python_dtype(value: Any, where: str) -> pl.DataType:
    if isinstance(value, bool):
        return pl.Boolean()
    if isinstance(value, int):
        return pl.Int64()
    if isinstance(value, float):
        return pl.Float64()
    if isinstance(value, str):
        return pl.String()
    raise SchemaCompileError(
        f"{where} = {value!r} ({type(value).__name__}) is not an int, float or str"
    )


def computed_feature_columns(features: Mapping[str, Any], where: str) -> tuple[Column, ...]:
    """Index columns for computed features: a mapping of name to a sample value or a type."""
    cols = []
    for key, sample in features.items():
        if isinstance(sample, type):
            dtype, _ = _base_dtype(sample, f"{where}[{key!r}]")
        else:
            dtype = _python_dtype(sample, f"{where}[{key!r}]")
        cols.append(Column(key, dtype, nullable=True, description="computed feature"))
    return tuple(cols)


def _base_index(input_spec: type[ExperimentInputSpec]) -> list[Column]:
    cols = [
        Column("experiment_id", pl.String(), description="Run id: <experiment>/<vM.m.p>/<time>"),
        compile_field(input_spec, "sort_index"),
        Column("workflow_run_id", pl.String(), nullable=True),
        Column("root_workflow_run_id", pl.String(), nullable=True),
    ]
    return cols


def index_columns(
    input_spec: type[ExperimentInputSpec],
    computed_features: Mapping[str, Any] | None = None,
) -> tuple[Column, ...]:
    """Index columns of an input spec class, in order.

    ``experiment_id``, ``sort_index``, ``workflow_run_id``, ``root_workflow_run_id``,
    then the input fields in declaration order (fields holding lists, dicts or
    nested models are left out), then the computed features.

    >>> class S(ExperimentInputSpec):
    ...     a: int
    ...     tags: list[str] = []
    >>> [c.name for c in index_columns(S, {"area": 1.0})]
    ['experiment_id', 'sort_index', 'workflow_run_id', 'root_workflow_run_id', 'a', 'area']
    """
    _require_subclass(input_spec, ExperimentInputSpec, "input spec")
    cols = _base_index(input_spec)
    for name, info in input_spec.model_fields.items():
        if name in ExperimentInputSpec.BASE_FIELDS:
            continue
        resolved = _resolve(info.annotation, info.metadata)
        if not resolved.file_reference and _is_container(resolved.base):
            continue
        cols.append(compile_field(input_spec, name))
    cols.extend(
        computed_feature_columns(
            computed_features or {}, f"{input_spec.__name__}.computed_features"
        )
    )
    _check_unique_names([c.name for c in cols], f"{input_spec.__name__} index")
    return tuple(cols)


def _check_unique_names(names: list[str], where: str) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise IndexCollisionError(f"{where}: column {n!r} appears twice")
        seen.add(n)


def _check_collisions(index: tuple[Column, ...], values: Iterable[str], where: str) -> None:
    index_names = {c.name for c in index} | {SORT_SUBINDEX}
    for v in values:
        if v in index_names:
            raise IndexCollisionError(
                f"{where}: output column {v!r} has the name of an index column; "
                f"rename the output (index columns: {sorted(index_names)})"
            )


def _require_subclass(cls: Any, base: type, what: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise SchemaCompileError(f"the {what} must be a subclass of {base.__name__}, got {cls!r}")
    if not cls.__pydantic_complete__:
        try:
            cls.model_rebuild(raise_errors=True)
        except Exception as exc:
            raise SchemaCompileError(
                f"{cls.__name__} has annotations that cannot be resolved ({exc}); define or "
                "import every type it names at module level"
            ) from exc


def _frame_model_columns(model: Any, where: str) -> tuple[Column, ...]:
    schema = model.to_schema()
    cols = []
    for name, col in schema.columns.items():
        dtype = getattr(col.dtype, "type", None)
        if dtype is None:
            raise SchemaCompileError(f"{where}: column {name!r} of {model.__name__} has no dtype")
        cols.append(
            Column(
                name,
                dtype if isinstance(dtype, pl.DataType) else dtype(),
                nullable=col.nullable,
                extra_checks=tuple(col.checks),
                description=col.description,
            )
        )
    return tuple(cols)


def compile_experiment(
    input_spec: type[ExperimentInputSpec],
    output_spec: type[ExperimentOutputSpec],
    *,
    computed_features: Mapping[str, Any] | None = None,
) -> ExperimentSchema:
    """Compile an input/output spec pair into every table schema of the experiment.

    ``computed_features`` maps each computed-feature key to a sample value or a
    type (see :func:`computed_feature_types`).

    >>> class In(ExperimentInputSpec):
    ...     r_value: float
    >>> class Out(ExperimentOutputSpec):
    ...     heating: float
    >>> schema = compile_experiment(In, Out)
    >>> schema.scalars.names[-2:]
    ['r_value', 'heating']
    >>> sorted(schema.result_tables)
    ['failures', 'result_file_refs', 'scalars']
    """
    _require_subclass(input_spec, ExperimentInputSpec, "input spec")
    _require_subclass(output_spec, ExperimentOutputSpec, "output spec")
    index = index_columns(input_spec, computed_features)

    scalars: list[Column] = []
    files: list[Column] = []
    frames: dict[str, TableSchema] = {}
    for name, info in output_spec.model_fields.items():
        if name in ExperimentOutputSpec.BASE_FIELDS:
            continue
        where = f"{output_spec.__name__}.{name}"
        resolved = _resolve(info.annotation, info.metadata)
        if resolved.file_reference or is_file_reference_field(info):
            files.append(compile_field(output_spec, name))
        elif _is_dataframe_model_type(resolved.base):
            if name in BUILTIN_TABLES:
                raise SchemaCompileError(
                    f"{where}: a dataframe output cannot be named {name!r}, "
                    f"which is a built-in table ({', '.join(BUILTIN_TABLES)})"
                )
            model = typing.get_args(resolved.base)[0]
            cols = _frame_model_columns(model, where)
            _check_collisions(index, [c.name for c in cols], f"{where} ({model.__name__})")
            frames[name] = TableSchema(
                name, index, cols, multi_row=True, description=info.description or ""
            )
        else:
            if _is_container(resolved.base):
                raise SchemaCompileError(
                    f"{where}: annotation {_type_name(resolved.base)} has no column type; "
                    "declare a pandera DataFrame[Model] output for tabular results"
                )
            scalars.append(compile_field(output_spec, name))

    _check_collisions(index, [c.name for c in scalars], output_spec.__name__)
    _check_collisions(index, [c.name for c in files], output_spec.__name__)
    _check_collisions(index, FAILURE_COLUMNS, f"{input_spec.__name__} (failures table)")

    failures = (
        Column("error_type", pl.String(), description="Exception class name"),
        Column("message", pl.String()),
        Column("traceback", pl.String(), nullable=True),
        Column("attempts", pl.Int64(), constraints=(Constraint("ge", 1),)),
    )
    file_uris = tuple(
        Column(c.name, pl.String(), nullable=c.nullable, description=c.description) for c in files
    )
    specs = TableSchema(
        SPECS,
        index,
        (
            Column(
                EXTRA_JSON,
                pl.String(),
                nullable=True,
                description="JSON of the input fields that are not index columns (null if none)",
            ),
        ),
        description="Every input spec of the run",
    )
    input_files = tuple(input_spec.file_reference_fields())
    return ExperimentSchema(
        input_spec=input_spec,
        output_spec=output_spec,
        index=index,
        specs=specs,
        scalars=TableSchema(SCALARS, index, tuple(scalars), description="Scalar outputs"),
        file_refs=TableSchema(FILE_REFS, index, file_uris, description="URIs of file outputs"),
        failures=TableSchema(FAILURES, index, failures, description="Specs that failed"),
        dataframes=frames,
        input_file_fields=input_files,
        output_file_fields=tuple(c.name for c in files),
    )


def computed_features_of(specs: Iterable[ExperimentInputSpec]) -> list[dict[str, Any]] | None:
    """Each spec's computed features, or None when no spec's class overrides the base property."""
    specs = list(specs)
    base = ExperimentInputSpec.computed_features
    if all(cls.computed_features is base for cls in set(map(type, specs))):
        return None  # nothing to call
    return [s.computed_features for s in specs]


def feature_types(features: Sequence[Mapping[str, Any]] | None) -> dict[str, type]:
    """Keys and types of computed features (one mapping per spec); every spec must agree."""
    from scythe.errors import SpecValidationError

    expected: dict[str, type] | None = None
    for i, row in enumerate(features or []):
        got = {k: type(v) for k, v in row.items()}
        for k, v in row.items():
            if not isinstance(v, int | float | str):
                raise SpecValidationError(
                    f"spec {i} computed feature {k!r} = {v!r} is a {type(v).__name__}, "
                    "not an int, float or str",
                    problems=[(i, k, v, "not an int, float or str")],
                )
        if expected is None:
            expected = got
        elif got != expected:
            raise SpecValidationError(
                f"spec {i} computed_features {got} differ from spec 0's {expected}; "
                "every spec must return the same keys with the same types",
                problems=[(i, "computed_features", row, "keys or types differ")],
            )
    return expected or {}


def computed_feature_types(specs: Iterable[ExperimentInputSpec]) -> dict[str, type]:
    """Keys and types of the specs' computed features; every spec must agree.

    >>> class S(ExperimentInputSpec):
    ...     w: float
    ...     @property
    ...     def computed_features(self):
    ...         return {"w2": self.w * 2}
    >>> computed_feature_types([S(w=1.0), S(w=2.0)])
    {'w2': <class 'float'>}
    """
    return feature_types(computed_features_of(specs))


# --------------------------------------------------------------------------- stored form


def _check_to_dict(check: pa.Check) -> dict[str, Any] | None:
    from pandera.api.checks import Check as BaseCheckApi

    if check.name not in getattr(BaseCheckApi, "BACKEND_REGISTRY", {}) and not check.statistics:
        return None  # a custom check function cannot be stored; the stored schema skips it
    return {"name": check.name, "statistics": check.statistics, "error": check.error}


def _column_to_dict(col: Column) -> dict[str, Any]:
    checks = [c for c in (_check_to_dict(ch) for ch in col.extra_checks) if c is not None]
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
        "checks": checks,
    }


def table_to_dict(table: TableSchema) -> dict[str, Any]:
    """A plain, YAML-safe description of a table schema (see :func:`table_from_dict`).

    The exact column types travel as a serialized Arrow schema; constraints and
    pandera's built-in checks travel by name.
    """
    import base64

    return {
        "name": table.name,
        "description": table.description,
        "multi_row": table.multi_row,
        "index": [_column_to_dict(c) for c in table.index],
        "values": [_column_to_dict(c) for c in table.values],
        "arrow_schema": base64.b64encode(table.arrow_schema().serialize().to_pybytes()).decode(),
    }


def table_from_dict(data: Mapping[str, Any]) -> TableSchema:
    """Rebuild a :class:`TableSchema` stored with :func:`table_to_dict`."""
    import base64

    arrow = pyarrow.ipc.read_schema(pyarrow.py_buffer(base64.b64decode(data["arrow_schema"])))
    dtypes = pl.DataFrame(arrow.empty_table()).schema

    def column(d: Mapping[str, Any]) -> Column:
        constraints = tuple(
            Constraint(kind, tuple(value) if kind == "isin" else value)
            for kind, value in d["constraints"]
        )
        checks = tuple(
            pa.Check.from_builtin_check_name(
                c["name"], c["statistics"], error=c["error"], statistics=c["statistics"]
            )
            for c in d.get("checks", [])
        )
        return Column(
            d["name"],
            dtypes[d["name"]],
            nullable=d["nullable"],
            constraints=constraints,
            extra_checks=checks,
            unique=d["unique"],
            description=d["description"],
        )

    return TableSchema(
        data["name"],
        tuple(column(d) for d in data["index"]),
        tuple(column(d) for d in data["values"]),
        multi_row=data["multi_row"],
        description=data.get("description", ""),
    )


# --------------------------------------------------------------------------- pandas


def to_pandas(frame: pl.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """A results frame as pandas, indexed by the input ``MultiIndex``.

    Index levels are the table's index columns in order (with ``sort_subindex``
    last for multi-row tables); dtypes come from the schema: ``Int64`` for
    integers (nullable or not, never float), ``Float64``/``boolean`` for
    nullable floats and booleans, ``string`` for strings, UTC datetimes.

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
    target = col.pandas_dtype()
    masked = _MASKED_ARRAYS.get(target)
    if masked is not None:
        # Built from values and mask: pandas' own casts go through float, which
        # rounds integers above 2**53 and turns NaN into NA.
        array_type, numpy_dtype, fill = masked
        values = np.array(series.fill_null(fill).to_numpy(), dtype=numpy_dtype, copy=True)
        mask = np.array(series.is_null().to_numpy(), dtype=bool, copy=True)
        return pd.Series(array_type(values, mask), name=series.name)
    return series.to_pandas(use_pyarrow_extension_array=True).astype(target)


# --------------------------------------------------------------------------- JSON Schema


def experiment_io_spec(
    input_spec: type[ExperimentInputSpec], output_spec: type[ExperimentOutputSpec]
) -> dict[str, Any]:
    """JSON Schema of the input/output pair, with field descriptions.

    >>> class In(ExperimentInputSpec):
    ...     r_value: float
    >>> class Out(ExperimentOutputSpec):
    ...     heating: float
    >>> sorted(experiment_io_spec(In, Out)["properties"])
    ['input', 'output']
    """

    def schema_of(cls: type[BaseModel]) -> dict[str, Any]:
        return cls.model_json_schema(mode="serialization")

    return {
        "title": f"{input_spec.__name__} -> {output_spec.__name__}",
        "type": "object",
        "properties": {"input": schema_of(input_spec), "output": schema_of(output_spec)},
        "required": ["input", "output"],
    }
