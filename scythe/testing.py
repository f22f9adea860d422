"""Property tests for experiments: generated input specs, run through the real leaf.

:func:`specs_strategy` is a hypothesis strategy of valid specs of an input
spec class, read from its fields and their constraints; :func:`check_experiment`
runs a registered experiment through the leaf middleware a run uses on such
specs and fails, with the smallest failing spec hypothesis finds, when the
function raises, returns the wrong type, or returns an output that breaks the
compiled schema of its tables. One line in a pytest file::

    def test_simulate():
        check_experiment(simulate, max_examples=50, files=["weather/boston.parquet"])

This module imports hypothesis (a test dependency); ``import scythe`` never does.

>>> from typing import Literal
>>> from pydantic import Field
>>> from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry
>>> class Wall(ExperimentInputSpec):
...     r_value: float = Field(..., gt=0, le=15)
...     side: Literal["north", "south"]
>>> class Loss(ExperimentOutputSpec):
...     u_value: float = Field(..., ge=0)
>>> @ExperimentRegistry.Register(name="doctest_check")
... def conduct(spec: Wall) -> Loss:
...     return Loss(u_value=1 / spec.r_value)
>>> check_experiment(conduct, max_examples=10, seed=0)
10
>>> ExperimentRegistry.unregister("doctest_check")
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import tempfile
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import hypothesis
import polars as pl
from hypothesis import HealthCheck
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from scythe.base import ExperimentInputSpec, is_file_reference_field
from scythe.errors import ExperimentCheckError, FileReferenceError, SchemaCompileError
from scythe.layout import RunLayout
from scythe.leaf import LeafContext, LeafResult, index_values, run_leaf
from scythe.registry import ExperimentRunnable
from scythe.schema import (
    SORT_SUBINDEX,
    Constraint,
    ExperimentSchema,
    TableSchema,
    compile_experiment,
    computed_feature_types,
)
from scythe.schema.compile import resolve_annotation
from scythe.storage import LocalStore

__all__ = ["check_experiment", "output_problems", "specs_strategy"]

SpecT = TypeVar("SpecT", bound=BaseModel)
Files = Sequence[str | Path] | Mapping[str, Sequence[str | Path]] | None

INT64 = (-(2**63), 2**63 - 1)  # what an Int64 column holds
FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(2200, 12, 31)
MAX_ITEMS = 3  # list, set and dict inputs without a length bound hold up to this many items


# --------------------------------------------------------------------------- strategies


def _bounds(constraints: Sequence[Constraint]) -> tuple[Any, bool, Any, bool]:
    """The tightest ``(low, low_strict, high, high_strict)`` of ge/gt/le/lt constraints."""
    low, low_strict, high, high_strict = None, False, None, False
    for c in constraints:
        if c.kind in ("ge", "gt") and (low is None or c.value > low or c.value == low):
            low, low_strict = c.value, c.kind == "gt" or (c.value == low and low_strict)
        if c.kind in ("le", "lt") and (high is None or c.value < high or c.value == high):
            high, high_strict = c.value, c.kind == "lt" or (c.value == high and high_strict)
    return low, low_strict, high, high_strict


def _value(constraints: Sequence[Constraint], kind: str) -> Any:
    return next((c.value for c in constraints if c.kind == kind), None)


def _integers(constraints: Sequence[Constraint]) -> st.SearchStrategy[int]:
    low, low_strict, high, high_strict = _bounds(constraints)
    lo = INT64[0] if low is None else math.floor(low) + 1 if low_strict else math.ceil(low)
    hi = INT64[1] if high is None else math.ceil(high) - 1 if high_strict else math.floor(high)
    step = _value(constraints, "multiple_of")
    if step:
        return st.integers(math.ceil(lo / step), math.floor(hi / step)).map(lambda k: k * step)
    return st.integers(lo, hi)


def _floats(constraints: Sequence[Constraint]) -> st.SearchStrategy[float]:
    low, low_strict, high, high_strict = _bounds(constraints)
    step = _value(constraints, "multiple_of")
    if step:
        lo = -1e6 if low is None else math.floor(low / step) + (1 if low_strict else 0)
        hi = 1e6 if high is None else math.ceil(high / step) - (1 if high_strict else 0)
        multiples = st.integers(math.ceil(lo), math.floor(hi)).map(lambda k: k * step)
        return multiples.filter(lambda v: _within(v, low, low_strict, high, high_strict))
    return st.floats(
        min_value=low,
        max_value=high,
        exclude_min=low_strict and low is not None,
        exclude_max=high_strict and high is not None,
        allow_nan=False,
        allow_infinity=False,
    )


def _within(v: Any, low: Any, low_strict: bool, high: Any, high_strict: bool) -> bool:
    above = low is None or (v > low if low_strict else v >= low)
    below = high is None or (v < high if high_strict else v <= high)
    return above and below


def _text(constraints: Sequence[Constraint]) -> st.SearchStrategy[str]:
    shortest = _value(constraints, "min_length") or 0
    longest = _value(constraints, "max_length")
    pattern = _value(constraints, "pattern")
    if pattern is None:
        return st.text(min_size=shortest, max_size=longest)
    # pydantic searches for the pattern; a full match fits a length bound more often.
    found = st.from_regex(pattern, fullmatch=longest is not None)
    return found.filter(lambda s: shortest <= len(s) and (longest is None or len(s) <= longest))


def _ordered(
    base: Callable[..., st.SearchStrategy[Any]],
    constraints: Sequence[Constraint],
    first: Any,
    last: Any,
) -> st.SearchStrategy[Any]:
    """Dates or datetimes (``base``) within the constraints' bounds, else ``first..last``."""
    low, low_strict, high, high_strict = _bounds(constraints)
    strategy = base(
        min_value=first if low is None else low, max_value=last if high is None else high
    )
    return strategy.filter(lambda v: _within(v, low, low_strict, high, high_strict))


def _scalar_strategy(tp: Any, constraints: Sequence[Constraint]) -> st.SearchStrategy[Any] | None:
    """Values of a plain annotation (what becomes a column), or None if it is not one."""
    if typing.get_origin(tp) is Literal:
        return st.sampled_from(typing.get_args(tp))
    if not isinstance(tp, type):
        return None
    if issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if issubclass(tp, bool):
        return st.booleans()
    if issubclass(tp, int):
        return _integers(constraints)
    if issubclass(tp, float):
        return _floats(constraints)
    if issubclass(tp, str):
        return _text(constraints)
    if issubclass(tp, dt.datetime):
        first, last = dt.datetime.combine(FIRST_DAY, dt.time()), dt.datetime(2200, 12, 31)
        return _ordered(st.datetimes, constraints, first, last)
    if issubclass(tp, dt.date):
        return _ordered(st.dates, constraints, FIRST_DAY, LAST_DAY)
    return None


def _container_strategy(
    tp: Any, constraints: Sequence[Constraint], where: str, files: Files
) -> st.SearchStrategy[Any] | None:
    """Values of a list, tuple, set, dict or nested model annotation, or None."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return _model_strategy(tp, files, {})
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    sizes = {
        "min_size": _value(constraints, "min_length") or 0,
        "max_size": _value(constraints, "max_length") or MAX_ITEMS,
    }
    if origin in (list, set, frozenset) and len(args) == 1:
        items = _annotation_strategy(args[0], (), f"{where}[]", files)
        made = st.lists(items, **sizes, unique=origin is not list)
        return made if origin is list else made.map(origin)
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            items = _annotation_strategy(args[0], (), f"{where}[]", files)
            return st.lists(items, **sizes).map(tuple)
        return st.tuples(*(_annotation_strategy(a, (), f"{where}[]", files) for a in args))
    if origin is dict and len(args) == 2:
        keys = _annotation_strategy(args[0], (), f"{where} key", files)
        values = _annotation_strategy(args[1], (), f"{where}[]", files)
        return st.dictionaries(keys, values, **sizes)
    return None


def _annotation_strategy(
    annotation: Any, metadata: Sequence[Any], where: str, files: Files
) -> st.SearchStrategy[Any]:
    resolved = resolve_annotation(annotation, metadata)
    strategy = _scalar_strategy(resolved.base, resolved.constraints)
    if strategy is None:
        strategy = _container_strategy(resolved.base, resolved.constraints, where, files)
    if strategy is None:
        raise SchemaCompileError(
            f"{where}: no strategy for the annotation {resolved.base!r}; pass "
            f"{where.rpartition('.')[2]}=<a hypothesis strategy> to specs_strategy"
        )
    return st.one_of(st.none(), strategy) if resolved.nullable else strategy


def _file_strategy(
    model: type[BaseModel], name: str, files: Files, nullable: bool
) -> st.SearchStrategy[Any]:
    pool = files.get(name, []) if isinstance(files, Mapping) else list(files or [])
    values = [Path(f) if isinstance(f, Path) or "://" not in str(f) else str(f) for f in pool]
    if not values and not nullable:
        raise FileReferenceError(
            f"{model.__name__}.{name} is a FileReference and no file was given for it: "
            "pass files=[path, ...] (or files={'" + name + "': [...]}) with a few sample files"
        )
    choices = st.sampled_from(values) if values else st.nothing()
    return st.one_of(st.none(), choices) if nullable else choices


def _model_strategy(
    model: type[SpecT], files: Files, fields: Mapping[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[SpecT]:
    skip = ExperimentInputSpec.BASE_FIELDS if issubclass(model, ExperimentInputSpec) else ()
    values: dict[str, st.SearchStrategy[Any]] = {}
    for name, info in model.model_fields.items():
        if name in skip or name in fields:
            continue
        if is_file_reference_field(info):
            nullable = resolve_annotation(info.annotation, info.metadata).nullable
            values[name] = _file_strategy(model, name, files, nullable)
        else:
            where = f"{model.__name__}.{name}"
            values[name] = _annotation_strategy(info.annotation, info.metadata, where, files)
    values.update(fields)
    # Rules across fields (model validators) refuse some combinations: draw again.
    return st.fixed_dictionaries(values).map(_validated(model)).filter(lambda s: s is not None)


def _validated(model: type[SpecT]) -> Callable[[dict[str, Any]], SpecT | None]:
    def build(values: dict[str, Any]) -> SpecT | None:
        try:
            return model.model_validate(values)
        except ValidationError:
            return None

    return build


def specs_strategy(
    input_spec: type[SpecT], *, files: Files = None, **fields: st.SearchStrategy[Any]
) -> st.SearchStrategy[SpecT]:
    """A hypothesis strategy of valid specs of ``input_spec``, from its fields' annotations.

    Bounds (``ge``, ``gt``, ``le``, ``lt``, ``multiple_of``), ``Literal`` and
    ``Enum`` values, string lengths and patterns are honoured; optional
    fields are ``None`` or a value; lists, dicts and nested models are built
    item by item; combinations a model validator refuses are drawn again.
    ``FileReference`` fields take a file from ``files`` (a list
    for every file field, or a mapping of field name to list). A keyword
    argument named after a field replaces that field's strategy. Base fields
    (``sort_index``, ids) keep their defaults.

    >>> from typing import Literal
    >>> from pydantic import Field
    >>> from hypothesis import find
    >>> class Wall(ExperimentInputSpec):
    ...     r_value: float = Field(..., gt=0, le=15)
    ...     side: Literal["north", "south"]
    ...     floors: int | None = Field(None, ge=1, le=40)
    >>> spec = find(specs_strategy(Wall), lambda s: s.floors is not None and s.side == "south")
    >>> spec.side, spec.floors
    ('south', 1)
    """
    return _model_strategy(input_spec, files, fields)


# --------------------------------------------------------------------------- checking outputs


def _row_frame(row: Mapping[str, Any], table: TableSchema) -> pl.DataFrame:
    return pl.DataFrame(
        {name: [row[name]] for name in table.names}, schema=table.polars_schema(), strict=True
    )


def _frame_rows(values: pl.DataFrame, index: Mapping[str, Any], table: TableSchema) -> pl.DataFrame:
    n = values.height
    keys = pl.DataFrame(
        {c.name: [index[c.name]] * n for c in table.index},
        schema={c.name: c.dtype for c in table.index},
        strict=True,
    )
    sub = pl.DataFrame({SORT_SUBINDEX: list(range(n))}, schema={SORT_SUBINDEX: pl.Int64})
    return pl.concat([keys, sub, values], how="horizontal").select(table.names)


def _validation_problems(frame: pl.DataFrame, table: TableSchema, limit: int = 10) -> list[str]:
    import pandera.errors

    try:
        table.outputs_pandera_schema().validate(frame, lazy=True)
        return []
    except pandera.errors.SchemaErrors as err:
        cases = err.failure_cases.head(limit).iter_rows(named=True)
        return [
            f"table {table.name!r}, column {c['column']!r}: failed {c['check']} "
            f"(value {c['failure_case']}, row {c['index']})"
            for c in cases
        ]
    except pandera.errors.SchemaError as err:
        return [f"table {table.name!r}: {err}"]


def output_problems(
    schema: ExperimentSchema, spec: ExperimentInputSpec, result: LeafResult
) -> list[str]:
    """What in a successful leaf result breaks the compiled schemas of its tables (empty: nothing).

    The rows a node would build (the spec's index values, then the outputs)
    are checked against each table's pandera schema of its outputs: dtypes,
    nulls, every check, unique sort keys (the index values are the spec's own,
    which pydantic and the index schema checked).

    >>> from pydantic import Field
    >>> from scythe import ExperimentOutputSpec
    >>> class In(ExperimentInputSpec):
    ...     x: float
    >>> class Out(ExperimentOutputSpec):
    ...     y: float = Field(..., ge=0)
    >>> schema = compile_experiment(In, Out)
    >>> output_problems(schema, In(x=1.0), LeafResult(0, scalars={"y": 2.0}))
    []
    >>> output_problems(schema, In(x=1.0), LeafResult(0, scalars={"y": -1.0}))
    ["table 'scalars', column 'y': failed greater_than_or_equal_to(0) (value -1.0, row 0)"]
    """
    index = index_values(spec, schema)
    frames: list[tuple[TableSchema, Callable[[], pl.DataFrame]]] = [
        (schema.scalars, lambda: _row_frame({**index, **(result.scalars or {})}, schema.scalars)),
        (
            schema.file_refs,
            lambda: _row_frame({**index, **(result.file_refs or {})}, schema.file_refs),
        ),
    ]
    for name, values in result.frames.items():
        table = schema.dataframes[name]
        frames.append((table, lambda v=values, t=table: _frame_rows(v, index, t)))
    problems: list[str] = []
    for table, build in frames:
        if not table.values:
            continue  # index columns only: nothing the function returned
        try:
            frame = build()
        except Exception as exc:  # a value that does not fit its column's dtype
            problems.append(f"table {table.name!r}: the output does not fit its columns: {exc}")
            continue
        problems.extend(_validation_problems(frame, table))
    return problems


# --------------------------------------------------------------------------- check_experiment


def _runnable(experiment: Any) -> ExperimentRunnable:
    runnable = getattr(experiment, "runnable", experiment)  # a BaseExperiment too
    if not isinstance(runnable, ExperimentRunnable) or runnable.workflow is not None:
        raise ExperimentCheckError(
            f"check_experiment needs an experiment registered with "
            f"@ExperimentRegistry.Register(), got {experiment!r}"
        )
    return runnable


class _Checker:
    """Runs one spec through the leaf, in a scratch store, and raises on what is wrong."""

    def __init__(self, runnable: ExperimentRunnable, root: Path) -> None:
        self.runnable = runnable
        self.ctx = LeafContext(
            store=LocalStore(root / "store"),
            layout=RunLayout(f"{runnable.name}/v0.0.0/check_experiment"),
            cache_dir=root / "cache",
        )
        self.schemas: dict[tuple[tuple[str, str], ...], ExperimentSchema] = {}
        self.examples = 0

    def schema(self, spec: ExperimentInputSpec) -> ExperimentSchema:
        features = computed_feature_types([spec])
        key = tuple(sorted((k, v.__name__) for k, v in features.items()))
        if key not in self.schemas:
            runnable = self.runnable
            self.schemas[key] = compile_experiment(
                runnable.input_spec, runnable.output_spec, computed_features=features
            )
        return self.schemas[key]

    def __call__(self, spec: ExperimentInputSpec) -> None:
        self.examples += 1
        name = self.runnable.name
        spec = spec.model_copy(update={"experiment_id": self.ctx.layout.run_id, "sort_index": 0})
        schema = self.schema(spec)
        result = run_leaf(self.runnable, schema, spec, self.ctx, tries=1)
        if result.failure is not None:
            f = result.failure
            raise ExperimentCheckError(
                f"experiment {name!r} failed on {spec!r}: {f['error_type']}: {f['message']}\n"
                f"{f['traceback'] or ''}"
            )
        problems = output_problems(schema, spec, result)
        if problems:
            raise ExperimentCheckError(
                f"experiment {name!r} returned an output that breaks its compiled schema on "
                f"{spec!r}:\n  " + "\n  ".join(problems)
            )


def check_experiment(
    experiment: Any,
    *,
    max_examples: int = 25,
    files: Files = None,
    specs: st.SearchStrategy[Any] | None = None,
    seed: int | None = None,
    **fields: st.SearchStrategy[Any],
) -> int:
    """Run ``experiment`` through the real leaf middleware on generated specs; return how many.

    Specs come from :func:`specs_strategy` (``files`` and ``fields`` are
    passed on) unless ``specs`` is a strategy of its own. The check fails with
    ``ExperimentCheckError`` (an ``AssertionError``) naming the smallest
    failing spec hypothesis finds when the function raises, returns something
    other than its output spec, or returns an output that breaks the compiled
    schema of a table (a bound, an allowed value, a null, a dtype; frame
    outputs too, which a run checks per node). ``seed`` makes the run
    repeatable; each call otherwise explores new specs.

    >>> from pydantic import Field
    >>> from scythe import ExperimentOutputSpec, ExperimentRegistry
    >>> class In(ExperimentInputSpec):
    ...     x: int = Field(..., ge=0, le=10)
    >>> class Out(ExperimentOutputSpec):
    ...     y: float
    >>> @ExperimentRegistry.Register(name="doctest_check_crash")
    ... def invert(spec: In) -> Out:
    ...     return Out(y=1 / (spec.x - 7))
    >>> check_experiment(invert, max_examples=100, seed=0)
    Traceback (most recent call last):
    ...
    scythe.errors.ExperimentCheckError: experiment 'doctest_check_crash' failed on In(experiment_id=..., x=7): ZeroDivisionError: division by zero
    ...
    >>> ExperimentRegistry.unregister("doctest_check_crash")
    """
    runnable = _runnable(experiment)
    strategy = (
        specs if specs is not None else specs_strategy(runnable.input_spec, files=files, **fields)
    )
    with tempfile.TemporaryDirectory(prefix="scythe-check-") as root:
        checker = _Checker(runnable, Path(root))

        @hypothesis.settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            # no "explain" phase: it runs every failing spec again under a tracer
            phases=[p for p in hypothesis.Phase if p.name != "explain"],
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        @hypothesis.given(strategy)
        def check(spec: Any) -> None:
            checker(spec)

        if seed is not None:
            check = hypothesis.seed(seed)(check)
        check()
        return checker.examples
