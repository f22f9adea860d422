"""A table's compiled checks run as polars expressions: pandera's verdict without importing it.

:meth:`TableSchema.pandera_schema` is the declared form of a table's checks;
this module enforces the same checks (dtype, presence, nulls, constraints,
unique keys) as one polars ``select`` over the frame, and reports each failure
as pandera names it (``greater_than_or_equal_to(0)``, ``not_nullable``, ...),
with the row it is in. pandera itself is imported only for a check it
registered that has no expression here (a custom check of a ``DataFrameModel``).

Semantics follow pandera's polars backend: a null value passes every
constraint (``ignore_na``); a non-nullable float column refuses NaN as well as
null; ``unique`` keys flag every row of a duplicated key.

>>> import polars as pl
>>> from scythe.schema.columns import Column, Constraint, TableSchema
>>> table = TableSchema("t", (), (Column("x", pl.Float64(), constraints=(Constraint("ge", 0),)),))
>>> [(c.row, c.check, c.value) for c in failure_cases(pl.DataFrame({"x": [1.0, -2.0]}), table)]
[(1, 'greater_than_or_equal_to(0)', -2.0)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import polars as pl

from scythe.schema.columns import Column, Constraint, TableSchema

Rule = Callable[[pl.Expr], pl.Expr]  # a column expression -> True where the value passes


@dataclass(frozen=True)
class FailureCase:
    """One failed check: its row (None when the whole frame fails it), column, check and value."""

    row: int | None
    column: str
    check: str
    value: Any


# --------------------------------------------------------------------------- rules


def _constraint_rule(c: Constraint) -> tuple[str, Rule]:
    """The pandera name of a constraint's check, and its rule (as ``Constraint.to_check``)."""
    v = c.bound
    match c.kind:
        case "ge":
            return f"greater_than_or_equal_to({v})", lambda x: x >= v
        case "gt":
            return f"greater_than({v})", lambda x: x > v
        case "le":
            return f"less_than_or_equal_to({v})", lambda x: x <= v
        case "lt":
            return f"less_than({v})", lambda x: x < v
        case "isin":
            return f"isin({list(v)})", lambda x: x.is_in(list(v))
        case "min_length":
            return f"str_length({v}, None)", lambda x: x.str.len_chars() >= v
        case "max_length":
            return f"str_length(None, {v})", lambda x: x.str.len_chars() <= v
        case "pattern":
            return f"str_contains('{v}')", lambda x: x.str.contains(v, literal=False)
        case "multiple_of":
            return f"multiple_of({v})", _multiple_of(v)
    raise AssertionError(f"unknown constraint kind {c.kind!r}")


def _multiple_of(step: int | float) -> Rule:
    if isinstance(step, int):
        return lambda x: x % step == 0

    def rule(x: pl.Expr) -> pl.Expr:
        quotient = x / step
        return (quotient - quotient.round()).abs() <= 1e-9 * quotient.abs().clip(1)

    return rule


def _anchored(pattern: Any) -> str:
    text = getattr(pattern, "pattern", pattern)
    return text if text.startswith("^") else f"^{text}"


def _range(s: dict[str, Any]) -> Rule:
    low, high = s["min_value"], s["max_value"]
    lower = (lambda x: x >= low) if s.get("include_min", True) else (lambda x: x > low)
    upper = (lambda x: x <= high) if s.get("include_max", True) else (lambda x: x < high)
    return lambda x: lower(x) & upper(x)


def _str_length(s: dict[str, Any]) -> Rule:
    exact, low, high = s.get("exact_value"), s.get("min_value"), s.get("max_value")
    if exact is not None:
        return lambda x: x.str.len_chars() == exact
    if low is None:
        return lambda x: x.str.len_chars() <= high
    if high is None:
        return lambda x: x.str.len_chars() >= low
    return lambda x: x.str.len_chars().is_between(low, high)


# pandera's built-in polars checks, by name: statistics -> rule (pandera/backends/polars/builtin_checks.py)
_BUILTIN: dict[str, Callable[[dict[str, Any]], Rule]] = {
    "equal_to": lambda s: lambda x: x == s["value"],
    "not_equal_to": lambda s: lambda x: x != s["value"],
    "greater_than": lambda s: lambda x: x > s["min_value"],
    "greater_than_or_equal_to": lambda s: lambda x: x >= s["min_value"],
    "less_than": lambda s: lambda x: x < s["max_value"],
    "less_than_or_equal_to": lambda s: lambda x: x <= s["max_value"],
    "in_range": _range,
    "isin": lambda s: lambda x: x.is_in(list(s["allowed_values"])),
    "notin": lambda s: lambda x: ~x.is_in(list(s["forbidden_values"])),
    "str_matches": lambda s: lambda x: x.str.contains(_anchored(s["pattern"])),
    "str_contains": lambda s: (
        lambda x: x.str.contains(getattr(s["pattern"], "pattern", s["pattern"]), literal=False)
    ),
    "str_startswith": lambda s: lambda x: x.str.starts_with(s["string"]),
    "str_endswith": lambda s: lambda x: x.str.ends_with(s["string"]),
    "str_length": _str_length,
}


def _check_rule(check: Any) -> tuple[str, Rule, bool] | None:
    """A pandera check as (name, rule, ignore_na), or None if it has no expression here."""
    make = _BUILTIN.get(check.name)
    if make is None or check.element_wise or check.groupby is not None:
        return None
    name = check.error or check.name
    return name, make(dict(check.statistics or {})), bool(check.ignore_na)


# --------------------------------------------------------------------------- evaluation


def _column_rules(column: Column) -> tuple[list[tuple[str, pl.Expr]], list[Any]]:
    """The column's checks as (name, pass-expression); and the pandera checks left to pandera."""
    x = pl.col(column.name)
    rules: list[tuple[str, pl.Expr]] = []
    if not column.nullable:
        present = x.is_not_null()
        rules.append(
            ("not_nullable", present & x.is_not_nan() if column.dtype.is_float() else present)
        )
    if column.unique:
        rules.append(("field_uniqueness", ~x.is_duplicated()))
    for constraint in column.constraints:
        name, rule = _constraint_rule(constraint)
        rules.append((name, rule(x).fill_null(True)))
    left = []
    for check in column.extra_checks:
        compiled = _check_rule(check)
        if compiled is None:
            left.append(check)
            continue
        name, rule, ignore_na = compiled
        rules.append((name, rule(x).fill_null(ignore_na)))
    return rules, left


def _frame_problems(
    frame: pl.DataFrame, columns: Iterable[Column], strict: bool
) -> list[FailureCase]:
    """Whole-frame problems: missing or unexpected columns, wrong dtypes."""
    cases, dtypes = [], frame.schema
    names = set()
    for column in columns:
        names.add(column.name)
        if column.name not in dtypes:
            cases.append(FailureCase(None, column.name, "column_in_dataframe", column.name))
        elif dtypes[column.name] != column.dtype:
            cases.append(
                FailureCase(None, column.name, f"dtype('{column.dtype}')", str(dtypes[column.name]))
            )
    if strict:
        cases += [FailureCase(None, c, "column_in_schema", c) for c in dtypes if c not in names]
    return cases


def failure_cases(
    frame: pl.DataFrame,
    table: TableSchema,
    *,
    outputs_only: bool = False,
    sorted_by_keys: bool = False,
) -> list[FailureCase]:
    """Every check of ``table`` that rows of ``frame`` fail, in one pass; [] when all pass.

    With ``outputs_only`` the index columns (checked when the specs were
    allocated) are skipped, but the sort keys must still be unique and extra
    columns are allowed. ``sorted_by_keys`` says ``frame`` is sorted by the
    table's sort keys: repeated keys are then neighbours.
    """
    keys = [c for c in table.index_columns if c.name in table.sort_keys]
    columns = [*keys, *table.values] if outputs_only else list(table.columns)
    cases = _frame_problems(frame, columns, strict=not outputs_only)
    broken = {c.column for c in cases}
    named: list[tuple[str, str, pl.Expr]] = []
    pandera_left: list[tuple[Column, list[Any]]] = []
    for column in columns:
        if column.name in broken:
            continue
        rules, left = _column_rules(column)
        named += [(column.name, name, expr) for name, expr in rules]
        if left:
            pandera_left.append((column, left))
    checked = {c.name for c in columns} - broken
    if (
        table.sort_keys
        and set(table.sort_keys) <= checked
        and _has_duplicates(frame, table.sort_keys, sorted_by_keys)
    ):
        expr = ~pl.struct(table.sort_keys).is_duplicated()
        named.append((", ".join(table.sort_keys), "multiple_fields_uniqueness", expr))
    cases += _evaluate(frame, named)
    for column, checks in pandera_left:
        cases += _pandera_cases(frame, column, checks)
    return cases


def _has_duplicates(frame: pl.DataFrame, keys: list[str], sorted_by_keys: bool) -> bool:
    """Whether two rows share their sort keys: counted first, rows found only if so.

    In a frame sorted by them, two such rows are neighbours: one comparison
    per row instead of hashing every key.
    """
    if frame.height < 2:
        return False
    if sorted_by_keys and not frame.select(pl.sum_horizontal(pl.col(keys).null_count())).item():
        same = pl.all_horizontal(pl.col(k) == pl.col(k).shift(1) for k in keys)
        return bool(frame.select(same.any()).item())
    key = pl.col(keys[0]) if len(keys) == 1 else pl.struct(keys)
    return frame.select(key.n_unique()).item() < frame.height


def _evaluate(frame: pl.DataFrame, named: list[tuple[str, str, pl.Expr]]) -> list[FailureCase]:
    """The rows failing each named rule: one aggregate pass first (does every row pass?),
    then the failing rules' rows, only when there are any."""
    if not named or frame.height == 0:
        return []
    row = frame.select(expr.all().alias(f"_{i}") for i, (_, _, expr) in enumerate(named)).row(0)
    failing = [i for i, ok in enumerate(row) if not ok]
    if not failing:
        return []
    passed = frame.select(named[i][2].alias(f"_{i}") for i in failing)
    cases = []
    for i in failing:
        column, check, _ = named[i]
        rows = passed.get_column(f"_{i}").not_().arg_true().to_list()
        values = frame.get_column(column)[rows].to_list() if column in frame.columns else rows
        cases += [FailureCase(r, column, check, v) for r, v in zip(rows, values, strict=True)]
    return cases


def _pandera_cases(frame: pl.DataFrame, column: Column, checks: list[Any]) -> list[FailureCase]:
    """The failures of checks registered with pandera that have no expression here."""
    import pandera.polars as pa

    schema = pa.DataFrameSchema(
        {column.name: pa.Column(column.dtype, checks=checks, nullable=True)}
    )
    try:
        schema.validate(frame.select(column.name), lazy=True)
    except pa.errors.SchemaErrors as err:
        return [
            FailureCase(
                None if case["index"] is None else int(case["index"]),
                column.name,
                str(case["check"]),
                case["failure_case"],
            )
            for case in err.failure_cases.iter_rows(named=True)
        ]
    return []


def describe(cases: list[FailureCase], limit: int = 10) -> str:
    """A few failure cases as text, one per line, and how many more there are."""
    lines = [
        f"column {c.column!r} failed {c.check}"
        + (f" (row {c.row}, value {c.value!r})" if c.row is not None else f" (got {c.value})")
        for c in cases[:limit]
    ]
    if len(cases) > limit:
        lines.append(f"... and {len(cases) - limit} more failure case(s)")
    return "\n".join(lines)
