"""One run described for a terminal: what ``scythe show RUN`` prints."""

from __future__ import annotations

from typing import Any

import polars as pl

from analysis.catalog import _duration_text, _read_run_info
from scythe.base import ExperimentInputSpec
from scythe.experiments import ExperimentRun
from scythe.schema import FAILURES, SCALARS, SPECS


def _table_rows(run: ExperimentRun) -> dict[str, int]:
    """Rows committed in each of the run's tables (``specs`` first), read from Delta metadata."""
    from analysis.query import _delta_table

    names = [SPECS, *(n for n in run.table_schemas() if n != SPECS)]
    counts = {}
    for name in names:
        frame = pl.scan_delta(_delta_table(run, name, None))
        counts[name] = frame.select(pl.len()).collect().item()
    return counts


def _failure_lines(run: ExperimentRun, limit: int = 5) -> list[str]:
    from analysis.query import scan

    failed = scan(run, table=FAILURES).select("sort_index", "error_type", "message").collect()
    if not failed.height:
        return []
    kinds = failed.group_by("error_type").agg(
        pl.len().alias("specs"), pl.col("message").sort_by("sort_index").first()
    )
    return [
        f"{row['error_type']} x {row['specs']}, e.g. {row['message'][:160]!r}"
        for row in kinds.sort("specs", descending=True).head(limit).iter_rows(named=True)
    ]


def describe(run: ExperimentRun) -> Any:
    """A rich grid of the run: status, counts, times, engine, inputs, outputs, tables, failures.

    >>> import tempfile
    >>> from rich.console import Console
    >>> from scythe import (BaseExperiment, ExperimentInputSpec, ExperimentOutputSpec,
    ...                     ExperimentRegistry, LocalEngine)
    >>> class Wall(ExperimentInputSpec):
    ...     r_value: float
    >>> class Loss(ExperimentOutputSpec):
    ...     u_value: float
    >>> @ExperimentRegistry.Register(name="doctest_show")
    ... def conduct(spec: Wall) -> Loss:
    ...     return Loss(u_value=1 / spec.r_value)
    >>> run, _ = BaseExperiment(conduct, storage=tempfile.mkdtemp()).allocate(
    ...     [Wall(r_value=2.0)], engine=LocalEngine(slots=0))
    >>> console = Console(width=200, record=True, file=open("/dev/null", "w"))
    >>> console.print(describe(run))
    >>> "complete: 1 specs, 1 done, 0 failed, 0 missing" in console.export_text()
    True
    >>> ExperimentRegistry.unregister("doctest_show")
    """
    from rich.table import Table

    info = _read_run_info(run.store, run.run_id)
    manifest = run.manifest
    schemas = run.table_schemas()
    inputs = [
        c.name
        for c in schemas[SCALARS].index_columns
        if c.name not in ExperimentInputSpec.BASE_FIELDS
    ]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    status = info.status if info is not None else manifest.status
    grid.add_row("run", run.run_id)
    grid.add_row(
        "status",
        f"{status}: {manifest.spec_count} specs, {manifest.done} done, "
        f"{manifest.failed} failed, {manifest.missing} missing",
    )
    finished = manifest.finished_at.isoformat() if manifest.finished_at else "-"
    duration = _duration_text(info.duration if info is not None else None)
    grid.add_row("created", f"{manifest.created_at.isoformat()}  finished {finished} ({duration})")
    grid.add_row("engine", f"{manifest.engine}, function {manifest.function}")
    grid.add_row("storage", run.uri)
    grid.add_row("inputs", ", ".join(inputs))
    grid.add_row("outputs", ", ".join(schemas[SCALARS].value_names))
    rows = _table_rows(run)
    grid.add_row("tables", ", ".join(f"{name} ({n} rows)" for name, n in rows.items()))
    for i, line in enumerate(_failure_lines(run)):
        grid.add_row("failures" if i == 0 else "", line)
    if manifest.message:
        grid.add_row("message", manifest.message)
    return grid
