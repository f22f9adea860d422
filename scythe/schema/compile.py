"""Compile spec classes into table schemas.

From an input spec class (whose fields become the index) and an output spec
class, :func:`compile_experiment` builds one :class:`TableSchema` per result
table.

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
import sys
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal

import annotated_types
import polars as pl
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from scythe.base import (
    ExperimentInputSpec,
    ExperimentOutputSpec,
    FileReferenceMarker,
    is_file_reference_field,
)
from scythe.errors import IndexCollisionError, SchemaCompileError, SpecValidationError
from scythe.schema.columns import (
    BUILTIN_TABLES,
    EXTRA_JSON,
    FAILURE_COLUMNS,
    FAILURES,
    FILE_REFS,
    SCALARS,
    SORT_SUBINDEX,
    SPECS,
    Column,
    Constraint,
    ExperimentSchema,
    TableSchema,
)
from scythe.schema.stored import storable_check

_CONTAINER_ORIGINS = (list, tuple, set, frozenset, dict)

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
    # Only a class that imported pandera's polars typing can annotate with it: no import here.
    typing_module = sys.modules.get("pandera.typing.polars")
    return typing_module is not None and typing.get_origin(tp) is typing_module.DataFrame


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


@dataclass(frozen=True)
class ResolvedAnnotation:
    """A field's annotation without its ``Annotated`` and ``| None`` layers."""

    base: Any
    nullable: bool
    constraints: tuple[Constraint, ...]
    file_reference: bool


def resolve_annotation(annotation: Any, metadata: Iterable[Any] = ()) -> ResolvedAnnotation:
    """The base type of an annotation, whether it allows None, its constraints, and whether
    it is a ``FileReference`` (what the column compiler reads, for strategies and tools).

    >>> from typing import Annotated
    >>> from pydantic import Field
    >>> r = resolve_annotation(Annotated[int, Field(ge=1)] | None)
    >>> r.base, r.nullable, [(c.kind, c.value) for c in r.constraints]
    (<class 'int'>, True, [('ge', 1)])
    """
    resolved = _resolve(annotation, metadata)
    return ResolvedAnnotation(
        resolved.base, resolved.nullable, _constraints(resolved.metadata), resolved.file_reference
    )


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
    if schema.checks:
        raise SchemaCompileError(
            f"{where}: {model.__name__} has dataframe-level checks "
            f"{[c.name for c in schema.checks]}, which a run's tables cannot store yet; "
            "express them as column checks (pandera.Field constraints)"
        )
    cols = []
    for name, col in schema.columns.items():
        dtype = getattr(col.dtype, "type", None)
        if dtype is None:
            raise SchemaCompileError(f"{where}: column {name!r} of {model.__name__} has no dtype")
        custom = [c.name for c in col.checks if not storable_check(c)]
        if custom:
            raise SchemaCompileError(
                f"{where}: column {name!r} of {model.__name__} has custom checks {custom} "
                "that cannot be stored with a run (every node and every read checks the "
                "stored schema); use pandera.Field constraints, or register the check with "
                "pandera.extensions.register_check_method"
            )
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
    outputs = _compile_outputs(output_spec, index)
    _check_collisions(index, FAILURE_COLUMNS, f"{input_spec.__name__} (failures table)")
    file_uris = tuple(
        Column(c.name, pl.String(), nullable=c.nullable, description=c.description)
        for c in outputs.files
    )
    return ExperimentSchema(
        input_spec=input_spec,
        output_spec=output_spec,
        index=index,
        specs=TableSchema(
            SPECS, index, (_EXTRA_JSON_COLUMN,), description="Every input spec of the run"
        ),
        scalars=TableSchema(SCALARS, index, outputs.scalars, description="Scalar outputs"),
        file_refs=TableSchema(FILE_REFS, index, file_uris, description="URIs of file outputs"),
        failures=TableSchema(FAILURES, index, _FAILURE_VALUES, description="Specs that failed"),
        dataframes=outputs.frames,
        input_file_fields=tuple(input_spec.file_reference_fields()),
        output_file_fields=tuple(c.name for c in outputs.files),
    )


_FAILURE_VALUES = (
    Column("error_type", pl.String(), description="Exception class name"),
    Column("message", pl.String()),
    Column("traceback", pl.String(), nullable=True),
    Column("attempts", pl.Int64(), constraints=(Constraint("ge", 1),)),
)
_EXTRA_JSON_COLUMN = Column(
    EXTRA_JSON,
    pl.String(),
    nullable=True,
    description="JSON of the input fields that are not index columns (null if none)",
)


@dataclass(frozen=True)
class _Outputs:
    scalars: tuple[Column, ...]
    files: tuple[Column, ...]
    frames: dict[str, TableSchema]


def _compile_outputs(
    output_spec: type[ExperimentOutputSpec], index: tuple[Column, ...]
) -> _Outputs:
    """The output spec's fields sorted into scalar, file and dataframe columns."""
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
            frames[name] = _frame_table(name, info, resolved.base, index, where)
        elif _is_container(resolved.base):
            raise SchemaCompileError(
                f"{where}: annotation {_type_name(resolved.base)} has no column type; "
                "declare a pandera DataFrame[Model] output for tabular results"
            )
        else:
            scalars.append(compile_field(output_spec, name))
    _check_collisions(index, [c.name for c in scalars], output_spec.__name__)
    _check_collisions(index, [c.name for c in files], output_spec.__name__)
    return _Outputs(tuple(scalars), tuple(files), frames)


def _frame_table(
    name: str, info: FieldInfo, annotation: Any, index: tuple[Column, ...], where: str
) -> TableSchema:
    """The table of a ``DataFrame[Model]`` output: the index, ``sort_subindex``, the model's columns."""
    if name in BUILTIN_TABLES:
        raise SchemaCompileError(
            f"{where}: a dataframe output cannot be named {name!r}, "
            f"which is a built-in table ({', '.join(BUILTIN_TABLES)})"
        )
    model = typing.get_args(annotation)[0]
    cols = _frame_model_columns(model, where)
    _check_collisions(index, [c.name for c in cols], f"{where} ({model.__name__})")
    return TableSchema(name, index, cols, multi_row=True, description=info.description or "")


def computed_features_of(specs: Iterable[ExperimentInputSpec]) -> list[dict[str, Any]] | None:
    """Each spec's computed features, or None when no spec's class overrides the base property."""
    specs = list(specs)
    base = ExperimentInputSpec.computed_features
    if all(cls.computed_features is base for cls in set(map(type, specs))):
        return None  # nothing to call
    return [s.computed_features for s in specs]


def feature_types(features: Sequence[Mapping[str, Any]] | None) -> dict[str, type]:
    """Keys and types of computed features (one mapping per spec); every spec must agree."""
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
