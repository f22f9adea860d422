"""Lazy scans and SQL over the Delta tables of one or many runs.

:func:`scan` gives a ``polars.LazyFrame`` with the columns ``experiment``,
``version`` and ``run`` added; filters and column selections are pushed down
to each run's Delta scan, which skips the data files whose statistics rule a
filter out (:func:`files_read` counts what a query's plan still reads).
:func:`sql` runs SQL over the same scans.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from analysis.catalog import RunsLike, StorageLike, resolve_runs
from analysis.errors import QueryError
from scythe.errors import TableMissingError, TableNotFoundError
from scythe.experiments import ExperimentRun
from scythe.schema import SCALARS

RUN_COLUMNS = ("experiment", "version", "run")
AsOf = int | datetime | date | str | None
_SCAN = re.compile(r"SCAN \[(.*)\]")
_OTHERS = re.compile(r"^\.\.\. (\d+) other sources?$")


def _delta_table(run: ExperimentRun, table: str, as_of: AsOf) -> Any:
    """The run's Delta table ``table``, at ``as_of`` (a version or a time) if given."""
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError
    from deltalake.exceptions import TableNotFoundError as DeltaMissing

    uri = run.table_uri(table)
    try:
        delta = DeltaTable(uri, storage_options=run.store.storage_options())
    except DeltaMissing:
        raise TableMissingError(
            f"run {run.run_id}: table {table!r} is missing from storage ({uri})"
        ) from None
    if as_of is None:
        return delta
    if isinstance(as_of, bool) or (isinstance(as_of, int) and as_of < 0):
        raise QueryError(f"as_of={as_of!r}: give a table version (0, 1, ...) or a time")
    when: int | datetime | str = as_of
    if isinstance(as_of, datetime) and as_of.tzinfo is None:
        when = as_of.replace(tzinfo=UTC)  # a naive time is taken as UTC
    elif isinstance(as_of, date) and not isinstance(as_of, datetime):
        when = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)
    latest = delta.version()
    problem = _before_creation(delta, when)
    try:
        delta.load_as_version(when)
    except (DeltaError, ValueError, OSError) as err:
        problem = str(err).splitlines()[0]
    if problem:
        raise QueryError(
            f"run {run.run_id}: table {table!r} has no version as of {as_of!r} "
            f"(versions 0 to {latest}): {problem}"
        )
    return delta


def _before_creation(delta: Any, when: int | datetime | str) -> str | None:
    """Why ``when`` is before the table's first commit, if it is (a time travel too far back)."""
    if isinstance(when, int):
        return None
    try:
        moment = datetime.fromisoformat(when) if isinstance(when, str) else when
    except ValueError:
        raise QueryError(
            f"as_of={when!r}: give a table version (0, 1, ...) or an ISO time (2026-01-31T12:00Z)"
        ) from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    created_ms = min(int(entry["timestamp"]) for entry in delta.history())
    created = datetime.fromtimestamp(created_ms / 1000, UTC)
    if moment < created:
        return f"the table was created at {created.isoformat()}"
    return None


def _scan_one(run: ExperimentRun, table: str, as_of: AsOf) -> pl.LazyFrame:
    schemas = run.table_schemas()
    if table not in schemas:
        raise TableNotFoundError(
            f"run {run.run_id} has no table {table!r}; tables: {sorted(schemas)}"
        )
    clash = [c for c in RUN_COLUMNS if c in schemas[table].names]
    if clash:
        raise QueryError(
            f"run {run.run_id}: table {table!r} has columns {clash} of its own, which scan() "
            "adds for every run; read it with run.results() instead"
        )
    experiment, version, _ = run.run_id.split("/")
    frame = pl.scan_delta(_delta_table(run, table, as_of))
    return frame.with_columns(
        experiment=pl.lit(experiment), version=pl.lit(version), run=pl.lit(run.run_id)
    )


def scan(
    runs: RunsLike, *, table: str = SCALARS, storage: StorageLike = None, as_of: AsOf = None
) -> pl.LazyFrame:
    """A lazy scan of the table ``table`` of one or many runs, with run columns added.

    ``runs`` is a run, a run id or id prefix, an experiment name or
    ``experiment/version`` (every run of it), or a list of these; strings are
    looked up in ``storage``. ``table`` is ``scalars``, ``failures``,
    ``result_file_refs``, ``specs`` or a dataframe output's name. ``as_of``
    reads each table as it was at a Delta version (``1`` is a run's own
    commit) or at a time. Rows come in file order: sort by ``run`` and
    ``sort_index`` for a stable order.

    >>> import tempfile
    >>> from scythe import (BaseExperiment, ExperimentInputSpec, ExperimentOutputSpec,
    ...                     ExperimentRegistry, LocalEngine)
    >>> class Wall(ExperimentInputSpec):
    ...     r_value: float
    >>> class Loss(ExperimentOutputSpec):
    ...     u_value: float
    >>> @ExperimentRegistry.Register(name="doctest_scan")
    ... def conduct(spec: Wall) -> Loss:
    ...     return Loss(u_value=1 / spec.r_value)
    >>> experiment = BaseExperiment(conduct, storage=tempfile.mkdtemp())
    >>> for _ in range(2):
    ...     run, _ = experiment.allocate([Wall(r_value=2.0), Wall(r_value=4.0)],
    ...                                  engine=LocalEngine(slots=0))
    >>> lazy = scan("doctest_scan", storage=experiment.store)   # every run of the experiment
    >>> lazy.filter(pl.col("r_value") > 3).select("version", "u_value").sort("version").collect().rows()
    [('v1.0.0', 0.25), ('v2.0.0', 0.25)]
    >>> scan(run, as_of=0).collect().height      # version 0: the empty table made at allocation
    0
    >>> ExperimentRegistry.unregister("doctest_scan")
    """
    frames = [_scan_one(run, table, as_of) for run in resolve_runs(runs, storage=storage)]
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")


def files_read(frame: pl.LazyFrame) -> int:
    """How many data files the optimised plan of ``frame`` reads (after statistics pruning).

    >>> import tempfile
    >>> pl.DataFrame({"a": [1, 2]}).write_parquet(path := tempfile.mktemp(suffix=".parquet"))
    >>> files_read(pl.scan_parquet(path)), files_read(pl.scan_parquet([path, path]))
    (1, 2)
    """
    total = 0
    for line in frame.explain().splitlines():
        match = _SCAN.search(line)
        if match is None:
            continue
        for item in filter(None, match.group(1).split(", ")):
            others = _OTHERS.match(item)
            total += int(others.group(1)) if others else 1
    return total


def _table_names(runs: list[ExperimentRun]) -> list[str]:
    """Every table name the runs have (built-in tables and dataframe outputs), sorted."""
    return sorted({name for run in runs for name in run.table_schemas()})


def sql(
    query: str,
    runs: RunsLike,
    *,
    storage: StorageLike = None,
    as_of: AsOf = None,
    lazy: bool = False,
) -> pl.DataFrame | pl.LazyFrame:
    """Run a SQL query over the runs' tables: ``scalars``, ``failures``, ``specs``...

    Each table is :func:`scan` of it over all the runs (with the columns
    ``experiment``, ``version`` and ``run``); dataframe outputs are tables
    under their own names. Returns a frame (a lazy one with ``lazy=True``).

    >>> import tempfile
    >>> from scythe import (BaseExperiment, ExperimentInputSpec, ExperimentOutputSpec,
    ...                     ExperimentRegistry, LocalEngine)
    >>> class Wall(ExperimentInputSpec):
    ...     r_value: float
    >>> class Loss(ExperimentOutputSpec):
    ...     u_value: float
    >>> @ExperimentRegistry.Register(name="doctest_sql")
    ... def conduct(spec: Wall) -> Loss:
    ...     return Loss(u_value=1 / spec.r_value)
    >>> run, _ = BaseExperiment(conduct, storage=tempfile.mkdtemp()).allocate(
    ...     [Wall(r_value=2.0), Wall(r_value=4.0)], engine=LocalEngine(slots=0))
    >>> sql("SELECT r_value, u_value FROM scalars WHERE u_value < 0.4", run).rows()
    [(4.0, 0.25)]
    >>> ExperimentRegistry.unregister("doctest_sql")
    """
    opened = resolve_runs(runs, storage=storage)
    names = _table_names(opened)
    used = [n for n in names if re.search(rf"\b{re.escape(n)}\b", query, re.IGNORECASE)]
    if not used:
        raise QueryError(f"the query names none of the runs' tables {names}: {query!r}")
    context = pl.SQLContext({name: scan(opened, table=name, as_of=as_of) for name in used})
    try:
        result = context.execute(query, eager=False)
        return result if lazy else result.collect()
    except pl.exceptions.PolarsError as err:
        reason = str(err).strip().splitlines()[0]
        raise QueryError(f"SQL query failed: {reason} (tables: {names})") from None
