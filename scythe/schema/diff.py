"""What changed between two schemas, and whether it breaks what was stored.

:func:`diff_entries` compares two lock entries (:mod:`scythe.schema.lock`) of
one experiment and classifies every change:

- **breaking**: a removed or renamed column or table, a changed dtype, a
  tighter check (a higher lower bound, fewer allowed values, a new pattern,
  nulls no longer allowed, a new uniqueness), a new required input, an input
  that lost its default, a frame output that changed between one row and many;
- **additive**: a new optional input (with a default), a new output column or
  table, a looser check, an input that gained or changed its default, a new
  column order;
- **cosmetic**: descriptions, titles, where the classes live.

A breaking change needs a new major version, an additive one at least a new
minor version (:func:`required_bump`). :func:`unify_tables` applies the same
rule to reading one table across versions.

>>> from scythe import ExperimentInputSpec, ExperimentOutputSpec
>>> from scythe.schema.lock import experiment_entry
>>> from pydantic import Field
>>> class In(ExperimentInputSpec):
...     r_value: float = Field(..., ge=0)
>>> class Out(ExperimentOutputSpec):
...     heating: float
>>> class Out2(ExperimentOutputSpec):
...     heating: float
...     cooling: float | None = None
>>> changes = diff_entries(experiment_entry(In, Out), experiment_entry(In, Out2), experiment="e")
>>> [str(c) for c in changes if c.severity != "cosmetic"]
["additive: experiment 'e', table 'scalars', column 'cooling': new output column (Float64, nullable)"]
>>> required_bump(changes)
'bumpminor'
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import polars as pl

from scythe.errors import ColumnNotFoundError, SchemaChangeError, SchemaMismatchError
from scythe.schema.columns import SORT_SUBINDEX, TableSchema
from scythe.schema.lock import column_entry
from scythe.versions import SemVer, VersionBump

Severity = Literal["breaking", "additive", "cosmetic"]
BUMP_RANK: dict[str, int] = {"keep": 0, "bumppatch": 1, "bumpminor": 2, "bumpmajor": 3}
_INDEX = "(index)"  # the table name of index columns in a change


@dataclass(frozen=True)
class SchemaChange:
    """One change between two schemas of an experiment, and how severe it is."""

    severity: Severity
    experiment: str
    what: str
    table: str | None = None
    """The result table, ``"(index)"`` for an index column, None for an input or the experiment."""
    column: str | None = None
    input: str | None = None

    @property
    def where(self) -> str:
        parts = [f"experiment {self.experiment!r}"]
        if self.input is not None:
            parts.append(f"input {self.input!r}")
        elif self.table == _INDEX:
            parts.append(f"index column {self.column!r}")
        elif self.table is not None:
            parts.append(f"table {self.table!r}")
            if self.column is not None:
                parts.append(f"column {self.column!r}")
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.what}"


# --------------------------------------------------------------------------- checks


def _bound(checks: list[dict[str, Any]], kinds: tuple[str, str], upper: bool) -> Any:
    """The tightest bound of ``kinds`` (inclusive, strict) as ``(value, strict)``, or None."""
    found = [(c["value"], c["kind"] == kinds[1]) for c in checks if c["kind"] in kinds]
    if not found:
        return None
    try:
        if upper:  # the smallest value; strict is tighter at equal values
            return min(found, key=lambda b: (b[0], not b[1]))
        return max(found, key=lambda b: (b[0], b[1]))
    except TypeError:
        return found[0]


def _compare_bounds(old: Any, new: Any, upper: bool) -> str | None:
    """``"tighter"``, ``"looser"`` or None (the same) for two ``(value, strict)`` bounds."""
    if old == new:
        return None
    if old is None:
        return "tighter"
    if new is None:
        return "looser"
    try:
        if old[0] == new[0]:
            return "tighter" if new[1] else "looser"
        return "tighter" if (new[0] < old[0]) == upper else "looser"
    except TypeError:
        return "tighter"  # values that do not compare: take it as breaking


def _bound_text(bound: Any, kinds: tuple[str, str]) -> str:
    return "none" if bound is None else f"{kinds[1] if bound[1] else kinds[0]} {bound[0]!r}"


def _set_change(old: Any, new: Any, *, more_is_tighter: bool) -> str | None:
    """How a set check changed; None stands for no such check (every value passes it)."""
    if old == new:
        return None
    if old is None or new is None:
        return "tighter" if old is None else "looser"
    old_set, new_set = {json.dumps(v) for v in old}, {json.dumps(v) for v in new}
    if old_set == new_set:
        return None
    if new_set < old_set:
        return "looser" if more_is_tighter else "tighter"
    if new_set > old_set:
        return "tighter" if more_is_tighter else "looser"
    return "tighter"  # values both added and removed: some old value may fail


def _values(checks: list[dict[str, Any]], kind: str) -> list[Any] | None:
    found = [c["value"] for c in checks if c["kind"] == kind]
    if not found:
        return None
    return [v for values in found for v in (values if isinstance(values, list) else [values])]


def _multiple_change(old: Any, new: Any) -> str | None:
    if old == new:
        return None
    if old is None or new is None:
        return "tighter" if old is None else "looser"
    try:
        if new[0] % old[0] == 0:
            return "tighter"
        if old[0] % new[0] == 0:
            return "looser"
    except (TypeError, ZeroDivisionError):
        pass
    return "tighter"


def _check_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(tighter|looser, description)`` for each way the checks of a column changed."""
    out: list[tuple[str, str]] = []
    for kinds, upper in ((("ge", "gt"), False), (("le", "lt"), True)):
        a, b = _bound(old, kinds, upper), _bound(new, kinds, upper)
        verdict = _compare_bounds(a, b, upper)
        if verdict:
            out.append((verdict, f"{_bound_text(a, kinds)} -> {_bound_text(b, kinds)}"))
    for kind, upper in (("min_length", False), ("max_length", True)):
        a, b = _bound(old, (kind, "-"), upper), _bound(new, (kind, "-"), upper)
        verdict = _compare_bounds(a, b, upper)
        if verdict:
            out.append((verdict, f"{kind} {a and a[0]!r} -> {b and b[0]!r}"))
    for kind, more_is_tighter in (("isin", False), ("notin", True), ("pattern", True)):
        a, b = _values(old, kind), _values(new, kind)
        verdict = _set_change(a, b, more_is_tighter=more_is_tighter)
        if verdict:
            out.append((verdict, f"{kind} {a!r} -> {b!r}"))
    a, b = _bound(old, ("multiple_of", "-"), False), _bound(new, ("multiple_of", "-"), False)
    verdict = _multiple_change(a, b)
    if verdict:
        out.append((verdict, f"multiple_of {a and a[0]!r} -> {b and b[0]!r}"))
    others_old = {c["name"]: c["statistics"] for c in old if c["kind"] == "check"}
    others_new = {c["name"]: c["statistics"] for c in new if c["kind"] == "check"}
    for name in sorted(others_old.keys() | others_new.keys()):
        a, b = others_old.get(name), others_new.get(name)
        if a != b:
            verdict = "looser" if b is None else "tighter"
            out.append((verdict, f"check {name} {a!r} -> {b!r}"))
    return out


# --------------------------------------------------------------------------- columns


def _severity(tighter: bool) -> Severity:
    return "breaking" if tighter else "additive"


def diff_column(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[Severity, str]]:
    """How one column (lock data, same name) changed: ``(severity, description)`` pairs.

    >>> a = {"dtype": "Float64", "nullable": False, "unique": False, "checks": [{"kind": "ge", "value": 0}]}
    >>> diff_column(a, {**a, "checks": [{"kind": "ge", "value": 1}]})
    [('breaking', 'tighter check: ge 0 -> ge 1')]
    >>> diff_column(a, {**a, "nullable": True})
    [('additive', 'now nullable')]
    """
    out: list[tuple[Severity, str]] = []
    if old["dtype"] != new["dtype"]:
        out.append(("breaking", f"dtype {old['dtype']} -> {new['dtype']}"))
    if old["nullable"] != new["nullable"]:
        out.append(
            ("additive", "now nullable")
            if new["nullable"]
            else ("breaking", "nulls no longer allowed")
        )
    if old["unique"] != new["unique"]:
        out.append(
            ("breaking", "now unique") if new["unique"] else ("additive", "no longer unique")
        )
    for verdict, text in _check_changes(old["checks"], new["checks"]):
        out.append((_severity(verdict == "tighter"), f"{verdict} check: {text}"))
    if old.get("description") != new.get("description"):
        out.append(
            ("cosmetic", f"description {old.get('description')!r} -> {new.get('description')!r}")
        )
    return out


def _signature(column: Mapping[str, Any]) -> str:
    return json.dumps(
        {k: column[k] for k in ("dtype", "nullable", "unique", "checks")}, sort_keys=True
    )


def _added_text(column: Mapping[str, Any]) -> str:
    return column["dtype"] + (", nullable" if column["nullable"] else "")


def diff_columns(
    old: Sequence[Mapping[str, Any]],
    new: Sequence[Mapping[str, Any]],
    *,
    added: Any = None,
) -> list[tuple[Severity, str, str]]:
    """How a list of columns changed: ``(severity, column, description)`` triples.

    A removed column and an added one that are alike in everything but their
    name (and the only such pair) are reported as one rename. ``added(column)``
    gives the ``(severity, description)`` of a new column (default: additive).

    >>> a = {"name": "a", "dtype": "Int64", "nullable": False, "unique": False, "checks": []}
    >>> diff_columns([a], [{**a, "name": "b"}])
    [('breaking', 'a', "renamed to 'b'")]
    """
    old_by, new_by = {c["name"]: c for c in old}, {c["name"]: c for c in new}
    removed = [n for n in old_by if n not in new_by]
    fresh = [n for n in new_by if n not in old_by]
    out: list[tuple[Severity, str, str]] = []
    for name in list(removed):
        twins = [n for n in fresh if _signature(new_by[n]) == _signature(old_by[name])]
        alike = [n for n in removed if _signature(old_by[n]) == _signature(old_by[name])]
        if len(twins) == 1 and len(alike) == 1:
            out.append(("breaking", name, f"renamed to {twins[0]!r}"))
            removed.remove(name)
            fresh.remove(twins[0])
    out.extend(("breaking", n, f"removed ({_added_text(old_by[n])})") for n in removed)
    for name in fresh:
        severity, text = added(new_by[name]) if added else ("additive", "new column")
        out.append((severity, name, f"{text} ({_added_text(new_by[name])})"))
    for name in (n for n in old_by if n in new_by):
        out.extend((s, name, text) for s, text in diff_column(old_by[name], new_by[name]))
    common_old = [n for n in old_by if n in new_by]
    common_new = [n for n in new_by if n in old_by]
    if common_old != common_new:
        out.append(("additive", common_new[0], f"columns reordered: {common_old} -> {common_new}"))
    return out


# --------------------------------------------------------------------------- experiments


def _new_index_column(inputs: Mapping[str, Any]) -> Any:
    def added(column: Mapping[str, Any]) -> tuple[Severity, str]:
        found = inputs.get(column["name"])
        if found is None:
            optional = column["nullable"]  # not an input field: a computed feature
            return ("additive" if optional else "breaking"), "new computed feature"
        if found["required"]:
            return "breaking", "new required input"
        return "additive", f"new optional input (default {found.get('default')!r})"

    return added


def _diff_inputs(
    old: Mapping[str, Any], new: Mapping[str, Any], index: set[str], experiment: str
) -> list[SchemaChange]:
    """Required-ness and defaults of inputs; new and removed inputs that are not index columns."""
    out: list[SchemaChange] = []
    for name in [*old, *(n for n in new if n not in old)]:
        a, b = old.get(name), new.get(name)
        if a is None or b is None:
            if name in index:
                continue  # reported with its index column
            if a is None:
                sev: Severity = "breaking" if b["required"] else "additive"
                text = "new required input" if b["required"] else "new optional input"
            else:
                sev, text = "breaking", "input removed"
            out.append(SchemaChange(sev, experiment, text, input=name))
            continue
        if a["required"] != b["required"]:
            sev, text = (
                ("breaking", "now required (no default)")
                if b["required"]
                else (
                    "additive",
                    f"now optional (default {b.get('default')!r})",
                )
            )
            out.append(SchemaChange(sev, experiment, text, input=name))
        elif a.get("default") != b.get("default"):
            text = f"default {a.get('default')!r} -> {b.get('default')!r}"
            out.append(SchemaChange("additive", experiment, text, input=name))
    return out


def _strip_text(schema: Any) -> Any:
    """A JSON Schema without titles and descriptions (what changes nothing stored)."""
    if isinstance(schema, dict):
        return {k: _strip_text(v) for k, v in schema.items() if k not in ("title", "description")}
    if isinstance(schema, list):
        return [_strip_text(v) for v in schema]
    return schema


def _diff_extra_inputs(old: Any, new: Any, index: set[str], experiment: str) -> list[SchemaChange]:
    """Type changes of inputs kept out of the index (lists, dicts, nested models)."""
    if old is None or new is None:
        return []
    a = old["properties"]["input"].get("properties", {})
    b = new["properties"]["input"].get("properties", {})
    out = []
    for name in (n for n in a if n in b and n not in index):
        if _strip_text(a[name]) != _strip_text(b[name]):
            text = f"type changed: {_strip_text(a[name])} -> {_strip_text(b[name])}"
            out.append(SchemaChange("breaking", experiment, text, input=name))
    return out


def _diff_tables(
    old: Mapping[str, Any], new: Mapping[str, Any], experiment: str
) -> list[SchemaChange]:
    out: list[SchemaChange] = []
    for name in [*old, *(n for n in new if n not in old)]:
        if name not in new:
            out.append(SchemaChange("breaking", experiment, "table removed", table=name))
            continue
        if name not in old:
            out.append(SchemaChange("additive", experiment, "new output table", table=name))
            continue
        a, b = old[name], new[name]
        if a["multi_row"] != b["multi_row"]:
            rows = "many rows" if b["multi_row"] else "one row"
            out.append(SchemaChange("breaking", experiment, f"now {rows} per spec", table=name))
        for severity, column, text in diff_columns(
            a["columns"], b["columns"], added=lambda c: ("additive", "new output column")
        ):
            out.append(SchemaChange(severity, experiment, text, table=name, column=column))
    return out


def diff_entries(
    old: Mapping[str, Any], new: Mapping[str, Any], *, experiment: str
) -> list[SchemaChange]:
    """Every change from the lock entry ``old`` to ``new`` of ``experiment``, classified.

    An empty list means the entries are equal. Entries that differ in a way no
    rule names (a title in the JSON Schema) give one cosmetic change.
    """
    changes: list[SchemaChange] = []
    old_inputs, new_inputs = old.get("inputs", {}), new.get("inputs", {})
    index = {c["name"] for c in (*old["index"], *new["index"])}
    for severity, column, text in diff_columns(
        old["index"], new["index"], added=_new_index_column(new_inputs)
    ):
        changes.append(SchemaChange(severity, experiment, text, table=_INDEX, column=column))
    changes.extend(_diff_inputs(old_inputs, new_inputs, index, experiment))
    changes.extend(
        _diff_extra_inputs(old.get("json_schema"), new.get("json_schema"), index, experiment)
    )
    changes.extend(_diff_tables(old["tables"], new["tables"], experiment))
    for key in ("function", "input_spec", "output_spec"):
        if key in old and key in new and old[key] != new[key]:
            text = f"{key} {old[key]} -> {new[key]}"
            changes.append(SchemaChange("cosmetic", experiment, text))
    if not changes and _plain_equal(old, new) is False:
        changes.append(
            SchemaChange("cosmetic", experiment, "the JSON Schema of the specs changed (text only)")
        )
    return changes


def _plain_equal(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def diff_locks(
    old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]]
) -> list[SchemaChange]:
    """Every change from the lock ``old`` to ``new`` (experiments by name), classified.

    An experiment in ``old`` that ``new`` lacks is breaking; a new one is additive.

    >>> [str(c) for c in diff_locks({"a": {}}, {})]
    ["breaking: experiment 'a': experiment removed from the code"]
    """
    changes: list[SchemaChange] = []
    for name in sorted(old.keys() | new.keys()):
        if name not in new:
            changes.append(SchemaChange("breaking", name, "experiment removed from the code"))
        elif name not in old:
            changes.append(SchemaChange("additive", name, "new experiment, not in the lock"))
        else:
            changes.extend(diff_entries(old[name], new[name], experiment=name))
    return changes


# --------------------------------------------------------------------------- versions


def required_bump(changes: Iterable[SchemaChange]) -> VersionBump:
    """The smallest version bump the changes need: major if breaking, minor if additive.

    >>> required_bump([SchemaChange("additive", "e", "new column")]), required_bump([])
    ('bumpminor', 'keep')
    """
    severities = {c.severity for c in changes}
    if "breaking" in severities:
        return "bumpmajor"
    return "bumpminor" if "additive" in severities else "keep"


def bump_of(latest: SemVer, version: VersionBump | SemVer | str) -> VersionBump:
    """How far ``version`` (a bump, or an explicit version) moves from the ``latest`` one.

    >>> bump_of(SemVer.parse("v1.2.0"), "v2.0.0"), bump_of(SemVer.parse("v1.2.0"), "v1.2.5")
    ('bumpmajor', 'bumppatch')
    """
    if isinstance(version, str) and version in BUMP_RANK:
        return version  # type: ignore[return-value]
    target = version if isinstance(version, SemVer) else SemVer.parse(version)
    if target.major > latest.major:
        return "bumpmajor"
    if target.major == latest.major and target.minor > latest.minor:
        return "bumpminor"
    if (target.major, target.minor) == (latest.major, latest.minor) and target.patch > latest.patch:
        return "bumppatch"
    return "keep"


def format_changes(changes: Iterable[SchemaChange]) -> str:
    """One line per change, breaking ones first.

    >>> print(format_changes([SchemaChange("additive", "e", "x"), SchemaChange("breaking", "e", "y")]))
      breaking: experiment 'e': y
      additive: experiment 'e': x
    """
    order = {"breaking": 0, "additive": 1, "cosmetic": 2}
    return "\n".join(f"  {c}" for c in sorted(changes, key=lambda c: order[c.severity]))


# --------------------------------------------------------------------------- reading across versions


def _table_columns(table: TableSchema) -> list[dict[str, Any]]:
    return [column_entry(c) for c in table.columns]


def unify_tables(
    tables: Sequence[TableSchema],
    *,
    columns: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
) -> TableSchema:
    """One schema to read a table of several versions with, oldest version first.

    The newest version's schema wins; a column that an older version lacks
    (a new output, a new input) is nullable, so its rows read as nulls. A
    change from an older version to the newest that is breaking (a removed or
    renamed column, another dtype, a tighter check, another row shape) raises
    ``SchemaChangeError`` naming the table, column and versions, unless
    ``columns`` selects only columns without such a change (the sort keys are
    always kept). ``labels`` names the versions in errors (default: their
    positions). Use :func:`align_frame` to give each version's frame the
    unified columns.

    >>> from scythe import ExperimentInputSpec, ExperimentOutputSpec
    >>> from scythe.schema import compile_experiment
    >>> class In(ExperimentInputSpec):
    ...     x: float
    >>> class V1(ExperimentOutputSpec):
    ...     y: float
    >>> class V2(ExperimentOutputSpec):
    ...     y: float
    ...     z: int
    >>> old, new = compile_experiment(In, V1).scalars, compile_experiment(In, V2).scalars
    >>> unified = unify_tables([old, new], labels=["v1.0.0", "v1.1.0"])
    >>> unified.column("z").nullable, unified.value_names
    (True, ['y', 'z'])
    >>> unify_tables([new, old], labels=["v1.1.0", "v2.0.0"])
    Traceback (most recent call last):
    ...
    scythe.errors.SchemaChangeError: table 'scalars' cannot be read across versions ...
    >>> unify_tables([new, old], columns=["y"]).value_names
    ['y']
    """
    if not tables:
        raise SchemaMismatchError("unify_tables needs at least one table schema")
    labels = list(labels) if labels is not None else [f"#{i}" for i in range(len(tables))]
    newest = tables[-1]
    selected = _selected(tables, columns)
    problems: list[SchemaChange] = []
    for label, table in zip(labels[:-1], tables[:-1], strict=True):
        problems.extend(_reading_breaks(table, newest, selected, f"{label} -> {labels[-1]}"))
    if problems:
        compatible = [n for n in newest.names if n not in {p.column for p in problems}]
        raise SchemaChangeError(
            f"table {newest.name!r} cannot be read across versions {labels}: breaking "
            f"changes in the selected columns:\n{format_changes(problems)}\n"
            f"select compatible columns (columns={compatible})",
            changes=problems,
            required="bumpmajor",
        )
    present = [{c.name for c in t.columns} for t in tables]
    return _unified(newest, selected, present)


def _selected(tables: Sequence[TableSchema], columns: Sequence[str] | None) -> list[str]:
    known: list[str] = []
    for table in reversed(tables):
        known.extend(n for n in table.names if n not in known)
    if columns is None:
        return known
    missing = [c for c in columns if c not in known]
    if missing:
        raise ColumnNotFoundError(
            f"table {tables[-1].name!r} has no column {missing} in any version; columns: {known}"
        )
    keys = tables[-1].sort_keys
    return [*(k for k in keys if k not in columns), *columns]


def _reading_breaks(
    old: TableSchema, new: TableSchema, selected: list[str], versions: str
) -> list[SchemaChange]:
    """The breaking changes from ``old`` to ``new`` among the ``selected`` columns."""
    out: list[SchemaChange] = []
    if old.multi_row != new.multi_row:
        out.append(SchemaChange("breaking", versions, "another row shape", table=new.name))
    keep = set(selected)
    a = [c for c in _table_columns(old) if c["name"] in keep]
    b = [c for c in _table_columns(new) if c["name"] in keep]
    for severity, column, text in diff_columns(a, b):
        if severity == "breaking":
            out.append(SchemaChange("breaking", versions, text, table=new.name, column=column))
    return out


def _unified(newest: TableSchema, selected: list[str], present: list[set[str]]) -> TableSchema:
    def widened(column: Any) -> Any:
        everywhere = all(column.name in names for names in present)
        return column if everywhere else replace(column, nullable=True)

    keep = [n for n in selected if n != SORT_SUBINDEX]
    index = tuple(widened(c) for c in newest.index if c.name in keep)
    values = tuple(widened(c) for c in newest.values if c.name in keep)
    return TableSchema(
        newest.name, index, values, multi_row=newest.multi_row, description=newest.description
    )


def align_frame(frame: pl.DataFrame | pl.LazyFrame, table: TableSchema) -> Any:
    """``frame`` with exactly ``table``'s columns, in order: missing ones as typed nulls.

    >>> from scythe import ExperimentInputSpec, ExperimentOutputSpec
    >>> from scythe.schema import compile_experiment
    >>> class In(ExperimentInputSpec):
    ...     x: float
    >>> class Out(ExperimentOutputSpec):
    ...     y: float | None = None
    >>> table = compile_experiment(In, Out).scalars
    >>> align_frame(pl.DataFrame({"sort_index": [0], "x": [1.0]}), table).schema["y"]
    Float64
    """
    names = frame.collect_schema().names() if isinstance(frame, pl.LazyFrame) else frame.columns
    return frame.select(
        pl.col(c.name).cast(c.dtype) if c.name in names else pl.lit(None, c.dtype).alias(c.name)
        for c in table.columns
    )
