"""Compare two runs output by output: the regression check to run when the simulator changes.

Specs are matched on their inputs (the input fields, computed features and
``extra_json``), not on run ids or ``sort_index``, so two runs of the same
specs compare however they were ordered or split. A file input matches when
its uploaded copy has the same content (``artifacts/<field>/<digest>/...``).
A value is within tolerance when ``|b - a| <= atol + rtol * |a|`` (``a`` is
``run_a``'s value), as in ``numpy.isclose``; two nulls or two NaNs are equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from analysis.catalog import RunsLike, StorageLike, resolve_runs
from analysis.errors import CompareError, OutputNotFoundError
from scythe.base import ExperimentInputSpec
from scythe.experiments import ExperimentRun
from scythe.schema import EXTRA_JSON, FAILURES, SCALARS, SORT_SUBINDEX, SPECS, TableSchema

_OCCURRENCE = "_occurrence"  # the n-th spec with the same inputs matches the n-th in the other run
_SHOWN = 10


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare` found: per-output differences, specs outside tolerance, unmatched specs.

    ``summary`` has one row per output (``count`` of matched pairs, mean and
    max absolute and relative difference, ``outside``); ``outside`` one row
    per spec and output outside tolerance; ``only_in_a`` / ``only_in_b`` the
    specs with rows in one run only (``in_other``: ``failed`` when the other
    run has a failures row for them, else ``absent``).
    """

    run_a: str
    run_b: str
    table: str
    keys: list[str]
    outputs: list[str]
    rtol: float
    atol: float
    matched: int
    summary: pl.DataFrame
    outside: pl.DataFrame
    only_in_a: pl.DataFrame
    only_in_b: pl.DataFrame

    @property
    def ok(self) -> bool:
        """Every spec is in both runs and every output is within tolerance."""
        return not (self.outside.height or self.only_in_a.height or self.only_in_b.height)

    def to_text(self, *, limit: int = _SHOWN) -> str:
        """A plain-text report for a terminal or a CI log."""
        from analysis._render import comparison_text

        return comparison_text(self, limit=limit)

    def to_markdown(self, *, limit: int = _SHOWN) -> str:
        """A Markdown report for a pull request comment."""
        from analysis._render import comparison_markdown

        return comparison_markdown(self, limit=limit)

    def __str__(self) -> str:
        return self.to_text()

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def _one_run(runs: RunsLike, storage: StorageLike, which: str) -> ExperimentRun:
    found = resolve_runs(runs, storage=storage)
    if len(found) != 1:
        raise CompareError(
            f"{which}={runs!r} names {len(found)} runs; compare takes one run on each side"
        )
    return found[0]


def _table_schema(run: ExperimentRun, table: str) -> TableSchema:
    from scythe.errors import TableNotFoundError

    schemas = run.table_schemas()
    if table not in schemas:
        raise TableNotFoundError(
            f"run {run.run_id} has no table {table!r}; tables: {sorted(schemas)}"
        )
    return schemas[table]


def _keys(a: TableSchema, b: TableSchema, runs: tuple[str, str]) -> list[str]:
    """The input columns both runs' tables have, with the same types (else ``CompareError``)."""

    def inputs(schema: TableSchema) -> dict[str, pl.DataType]:
        skip = {*ExperimentInputSpec.BASE_FIELDS, SORT_SUBINDEX}
        return {c.name: c.dtype for c in schema.index_columns if c.name not in skip}

    ka, kb = inputs(a), inputs(b)
    if ka != kb:
        only_a = [n for n in ka if n not in kb]
        only_b = [n for n in kb if n not in ka]
        typed = [f"{n} ({ka[n]} vs {kb[n]})" for n in ka if n in kb and ka[n] != kb[n]]
        raise CompareError(
            f"runs {runs[0]} and {runs[1]} have different inputs, so their specs cannot be "
            f"matched: only in the first {only_a}, only in the second {only_b}, "
            f"of another type {typed}"
        )
    return list(ka) + ([SORT_SUBINDEX] if a.multi_row else [])


def _outputs(
    a: TableSchema, b: TableSchema, outputs: list[str] | None, runs: tuple[str, str]
) -> list[str]:
    """The outputs to compare: those named, or every numeric output both tables have."""
    common = [c.name for c in a.values if c.name in b.value_names]
    numeric = [n for n in common if _numeric(a.column(n).dtype) and _numeric(b.column(n).dtype)]
    if outputs is None:
        if not numeric:
            raise CompareError(
                f"table {a.name!r} of run {runs[0]} has no numeric output to compare"
            )
        return numeric
    for name in outputs:
        for run, schema in zip(runs, (a, b), strict=True):
            if name not in schema.value_names:
                raise OutputNotFoundError(
                    f"run {run}: table {schema.name!r} has no output {name!r}; "
                    f"outputs: {schema.value_names}"
                )
        if name not in numeric:
            raise CompareError(
                f"output {name!r} is {a.column(name).dtype}, not a number: compare compares "
                f"numeric outputs ({numeric})"
            )
    return list(outputs)


def _numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() or dtype == pl.Boolean()


def _frame(run: ExperimentRun, table: str, keys: list[str], values: list[str]) -> pl.DataFrame:
    """The table's key and value columns, with run-specific URIs made comparable."""
    results = run.results()
    frame = results.table(table)
    specs = results.table(SPECS).select("sort_index", EXTRA_JSON)
    frame = frame.join(specs, on="sort_index", how="left")
    prefix = run.store.file_uri(run.run_id) + "/"  # file inputs: the run's own copy
    strings = [k for k in keys if frame.schema[k] == pl.String()]
    return frame.select(
        "sort_index",
        *[pl.col(k).str.strip_prefix(prefix) if k in strings else pl.col(k) for k in keys],
        pl.col(EXTRA_JSON),
        *values,
    )


def _with_occurrence(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    return frame.sort("sort_index").with_columns(
        pl.int_range(pl.len()).over(keys).alias(_OCCURRENCE)
    )


def _side(
    run: ExperimentRun, side: str, table: str, keys: list[str], names: list[str]
) -> pl.DataFrame:
    """One run's rows, outputs renamed ``<output>__<side>``, with ``_in_<side>`` and its sort_index."""
    frame = _with_occurrence(_frame(run, table, keys, names), [*keys, EXTRA_JSON])
    return (
        frame.rename({n: f"{n}__{side}" for n in names})
        .with_columns(
            pl.lit(True).alias(f"_in_{side}"), pl.col("sort_index").alias(f"sort_index_{side}")
        )
        .drop("sort_index")
    )


def _join(
    first: ExperimentRun, second: ExperimentRun, table: str, keys: list[str], names: list[str]
) -> pl.DataFrame:
    """Both runs' rows side by side, matched on the inputs (a row of one run only has nulls)."""
    a, b = _side(first, "a", table, keys, names), _side(second, "b", table, keys, names)
    on = [*keys, EXTRA_JSON, _OCCURRENCE]
    return a.join(b, on=on, how="full", coalesce=True, nulls_equal=True)


def _differences(joined: pl.DataFrame, output: str, rtol: float, atol: float) -> pl.DataFrame:
    """One row per matched spec: both values, absolute and relative difference, within or not."""
    a = pl.col(f"{output}__a").cast(pl.Float64)
    b = pl.col(f"{output}__b").cast(pl.Float64)
    diff = (b - a).abs()
    both_missing = (a.is_null() & b.is_null()) | (a.is_nan() & b.is_nan())
    within = both_missing | (a == b) | (diff <= atol + rtol * a.abs())
    return joined.select(
        pl.lit(output).alias("output"),
        a.alias("value_a"),
        b.alias("value_b"),
        diff.alias("abs_diff"),
        pl.when(diff == 0).then(0.0).otherwise(diff / a.abs()).alias("rel_diff"),
        within.fill_null(False).alias("within"),
        pl.all().exclude("^.*__[ab]$"),
    )


def _summary_row(diffs: pl.DataFrame, output: str) -> dict[str, object]:
    paired = diffs.filter(pl.col("value_a").is_not_null() & pl.col("value_b").is_not_null())
    return {
        "output": output,
        "count": paired.height,
        "mean_abs_diff": paired["abs_diff"].mean(),
        "max_abs_diff": paired["abs_diff"].max(),
        "mean_rel_diff": paired["rel_diff"].mean(),
        "max_rel_diff": paired["rel_diff"].max(),
        "outside": diffs.filter(~pl.col("within")).height,
    }


_SUMMARY_SCHEMA = {
    "output": pl.String, "count": pl.Int64, "mean_abs_diff": pl.Float64,
    "max_abs_diff": pl.Float64, "mean_rel_diff": pl.Float64, "max_rel_diff": pl.Float64,
    "outside": pl.Int64,
}  # fmt: skip


def _unmatched(
    joined: pl.DataFrame, side: str, keys: list[str], other: ExperimentRun
) -> pl.DataFrame:
    """Specs with rows on ``side`` only, and whether the other run has them as failures."""
    other_side = "b" if side == "a" else "a"
    rows = joined.filter(pl.col(f"_in_{other_side}").is_null()).select(
        pl.col(f"sort_index_{side}").alias("sort_index"), *keys, EXTRA_JSON
    )
    input_keys = [k for k in keys if k != SORT_SUBINDEX]
    failed = _frame(other, FAILURES, input_keys, []).select(*input_keys, EXTRA_JSON).unique()
    failed = failed.with_columns(pl.lit("failed").alias("in_other"))
    rows = rows.join(failed, on=[*input_keys, EXTRA_JSON], how="left", nulls_equal=True)
    return rows.with_columns(pl.col("in_other").fill_null("absent")).sort("sort_index")


def compare(
    run_a: RunsLike,
    run_b: RunsLike,
    *,
    outputs: list[str] | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    table: str = SCALARS,
    storage: StorageLike = None,
) -> Comparison:
    """Compare the outputs of two runs spec by spec (matched on inputs); ``.ok`` if all agree.

    ``outputs`` defaults to every numeric output of ``table`` (``scalars``,
    or a dataframe output, whose rows match on inputs and ``sort_subindex``).

    >>> import tempfile
    >>> from scythe import (BaseExperiment, ExperimentInputSpec, ExperimentOutputSpec,
    ...                     ExperimentRegistry, LocalEngine)
    >>> class Wall(ExperimentInputSpec):
    ...     r_value: float
    >>> class Loss(ExperimentOutputSpec):
    ...     u_value: float
    >>> @ExperimentRegistry.Register(name="doctest_compare")
    ... def conduct(spec: Wall) -> Loss:
    ...     return Loss(u_value=1 / spec.r_value)
    >>> experiment = BaseExperiment(conduct, storage=tempfile.mkdtemp())
    >>> a, _ = experiment.allocate([Wall(r_value=2.0), Wall(r_value=4.0)], engine=LocalEngine(slots=0))
    >>> b, _ = experiment.allocate([Wall(r_value=4.0), Wall(r_value=2.0)], engine=LocalEngine(slots=0))
    >>> result = compare(a, b)          # the same specs in another order
    >>> result.ok, result.matched, result.summary["max_abs_diff"].to_list()
    (True, 2, [0.0])
    >>> print(result.to_text().splitlines()[-1])
    OK: 2 specs match within rtol=1e-05, atol=1e-08
    >>> ExperimentRegistry.unregister("doctest_compare")
    """
    first, second = _one_run(run_a, storage, "run_a"), _one_run(run_b, storage, "run_b")
    ids = (first.run_id, second.run_id)
    schema_a, schema_b = _table_schema(first, table), _table_schema(second, table)
    keys = _keys(schema_a, schema_b, ids)
    names = _outputs(schema_a, schema_b, outputs, ids)
    if rtol < 0 or atol < 0:
        raise CompareError(f"tolerances must be >= 0, got rtol={rtol}, atol={atol}")
    joined = _join(first, second, table, keys, names)
    matched = joined.filter(pl.col("_in_a").is_not_null() & pl.col("_in_b").is_not_null())
    diffs = [_differences(matched, name, rtol, atol) for name in names]
    columns = [*keys, "sort_index_a", "sort_index_b", "output", "value_a", "value_b"]
    outside = [d.filter(~pl.col("within")).select(*columns, "abs_diff", "rel_diff") for d in diffs]
    return Comparison(
        run_a=first.run_id, run_b=second.run_id, table=table, keys=keys, outputs=names,
        rtol=rtol, atol=atol, matched=matched.height,
        summary=pl.DataFrame([_summary_row(d, n) for d, n in zip(diffs, names, strict=True)],
                             schema=_SUMMARY_SCHEMA, orient="row"),
        outside=pl.concat(outside).sort("sort_index_a", "output"),
        only_in_a=_unmatched(joined, "a", keys, second),
        only_in_b=_unmatched(joined, "b", keys, first),
    )  # fmt: skip
