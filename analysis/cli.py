"""The ``scythe`` command with the analysis commands: runs, show, results, sql, compare, report, resume.

The console script points here: this module adds its commands to
``scythe.cli.app`` (run, demo, worker, ...). Each command imports what it
needs when it runs, so ``scythe worker`` starts without polars queries,
matplotlib or anything else of ``analysis``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from scythe.cli import DEBUG, STORAGE, app, cli_errors, engine_for, follow

__all__ = ["app"]

Format = typer.Option("table", "--format", help="table, csv, parquet or json.")
Output = typer.Option(None, "--output", help="Write to this file instead of the terminal.")
Limit = typer.Option(20, "--limit", min=0, help="Rows shown by --format table (0: all).")
CompareOutput = typer.Option(None, "--output", help="Also write the report to this file.")
RunArgument = Annotated[
    str, typer.Argument(metavar="RUN", help="A run id, or its first characters.")
]


def _console() -> Any:
    from rich.console import Console

    # Piped or captured output: wide enough that run ids are never cut.
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def _run(selector: str, storage: str | None) -> Any:
    from analysis.catalog import Catalog

    return Catalog(storage).run(selector)


def _emit(frame: Any, *, format: str, output: Path | None, limit: int) -> None:
    """Show ``frame`` as a table, or write it as CSV, Parquet or JSON (to a file or stdout)."""
    import polars as pl

    from analysis.errors import QueryError

    if format == "table":
        shown = frame if limit == 0 else frame.head(limit)
        with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=100, tbl_width_chars=400):
            text = str(shown)
        more = f"\n{frame.height} rows, {shown.height} shown (--limit 0 shows all)"
        text += more if shown.height < frame.height else ""
        if output is None:
            typer.echo(text)
        else:
            output.write_text(text + "\n")
        return
    writers = {"csv": "write_csv", "json": "write_json", "parquet": "write_parquet"}
    if format not in writers:
        raise QueryError(f"--format {format!r}: use table, csv, parquet or json")
    if output is not None:
        getattr(frame, writers[format])(output)
        typer.echo(f"wrote {frame.height} rows to {output}", err=True)
    elif format == "parquet":
        raise QueryError("--format parquet writes a binary file: give --output FILE")
    else:
        typer.echo(getattr(frame, writers[format])(), nl=False)


@app.command()
@cli_errors("runs")
def runs(
    experiment: Annotated[
        str | None, typer.Argument(help="Only the runs of this experiment.")
    ] = None,
    version: str | None = typer.Option(None, "--version", help="Only this version (vM.m.p)."),
    status: str | None = typer.Option(None, "--status", help="Only runs with this status."),
    format: str = typer.Option("table", "--format", help="table, csv or json."),
    storage: str | None = STORAGE,
    debug: bool = DEBUG,
) -> None:
    """List the runs in the store, newest first, with status, counts, start time and duration.

    Example: scythe runs building_energy --storage s3://my-bucket/scythe
    """
    import polars as pl

    from analysis.catalog import Catalog, rich_table

    catalog = Catalog(storage)
    found = catalog.runs(experiment, version=version, status=status)
    if format != "table":
        rows = catalog.to_polars().filter(pl.col("run_id").is_in([i.run_id for i in found]))
        _emit(rows, format=format, output=None, limit=0)
        return
    what = f"{experiment or 'all experiments'}" + (f" {version}" if version else "")
    _console().print(
        rich_table(found, title=f"{len(found)} run(s) of {what} in {catalog.store.uri()}")
    )


@app.command()
@cli_errors("show")
def show(run: RunArgument, storage: str | None = STORAGE, debug: bool = DEBUG) -> None:
    """Show one run: status, counts, times, inputs, tables and their row counts, failures.

    Example: scythe show building_energy/v1.0.0/2026-11-28T12
    """
    from analysis.show import describe

    _console().print(describe(_run(run, storage)))


@app.command()
@cli_errors("results")
def results(
    run: RunArgument,
    table: str = typer.Option("scalars", "--table", help="scalars, failures, specs, ..."),
    format: str = Format,
    output: Path | None = Output,
    limit: int = Limit,
    storage: str | None = STORAGE,
    debug: bool = DEBUG,
) -> None:
    """Print or export a table of a run, validated and in sort_index order.

    Example: scythe results building_energy/v1.0.0/2026-11-28T12 --format parquet --output scalars.parquet
    """
    frame = _run(run, storage).results().table(table)
    _emit(frame, format=format, output=output, limit=limit)


@app.command()
@cli_errors("sql")
def sql(
    query: Annotated[str, typer.Argument(metavar="QUERY", help="SQL over the runs' tables.")],
    run: Annotated[
        list[str],
        typer.Option("--run", help="A run, experiment or experiment/version. Repeatable."),
    ],
    as_of: str | None = typer.Option(
        None, "--as-of", help="Read the tables as of a Delta version (1) or an ISO time."
    ),
    format: str = Format,
    output: Path | None = Output,
    limit: int = Limit,
    storage: str | None = STORAGE,
    debug: bool = DEBUG,
) -> None:
    """Run SQL over the tables of one or more runs (scalars, failures, specs, frame outputs).

    Every table has the columns experiment, version and run added.

    Example: scythe sql "SELECT run, avg(heating_kwh_m2) FROM scalars GROUP BY run" --run building_energy
    """
    from analysis.query import sql as run_sql

    when = int(as_of) if as_of is not None and as_of.isdigit() else as_of
    found = run_sql(query, run, storage=storage, as_of=when)
    _emit(found, format=format, output=output, limit=limit)


@app.command()
@cli_errors("compare")
def compare(
    run_a: Annotated[str, typer.Argument(metavar="RUN_A", help="The reference run.")],
    run_b: Annotated[str, typer.Argument(metavar="RUN_B", help="The run to check.")],
    rtol: float = typer.Option(1e-5, "--rtol", min=0, help="Relative tolerance."),
    atol: float = typer.Option(1e-8, "--atol", min=0, help="Absolute tolerance."),
    outputs: str | None = typer.Option(None, "--outputs", help="Outputs to compare: y,z."),
    table: str = typer.Option("scalars", "--table", help="scalars or a dataframe output."),
    format: str = typer.Option("text", "--format", help="text or markdown."),
    output: Path | None = CompareOutput,
    storage: str | None = STORAGE,
    debug: bool = DEBUG,
) -> None:
    """Compare two runs spec by spec, matched on inputs; exit code 1 if they differ.

    Example: scythe compare building_energy/v1.0.0 building_energy/v1.1.0 --rtol 1e-6 --format markdown
    """
    from analysis.comparison import compare as run_compare
    from analysis.errors import CompareError

    if format not in ("text", "markdown"):
        raise CompareError(f"--format {format!r}: use text or markdown")
    names = None if outputs is None else [n.strip() for n in outputs.split(",") if n.strip()]
    found = run_compare(
        _run(run_a, storage), _run(run_b, storage),
        outputs=names, rtol=rtol, atol=atol, table=table,
    )  # fmt: skip
    text = found.to_markdown() if format == "markdown" else found.to_text()
    typer.echo(text)
    if output is not None:
        output.write_text(text + "\n")
    if not found.ok:
        raise typer.Exit(1)


@app.command()
@cli_errors("report")
def report(
    run: RunArgument,
    output: Annotated[Path, typer.Option("--output", help="The HTML file to write.")],
    compare_to: str | None = typer.Option(
        None, "--compare-to", help="A run to compare with, in a section of the report."
    ),
    storage: str | None = STORAGE,
    debug: bool = DEBUG,
) -> None:
    """Write a self-contained HTML report of a run (plots, summaries, an optional comparison).

    Example: scythe report building_energy/v1.0.0/2026-11-28T12 --output report.html
    """
    make_report = _report_function()
    other = None if compare_to is None else _run(compare_to, storage)
    make_report(_run(run, storage), output, compare_to=other)
    typer.echo(f"wrote {output}")


def _report_function() -> Any:
    """``analysis.reporting.report``, or a ``ModuleNotFoundError`` naming what to install."""
    try:
        from analysis.reporting import report as make_report
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("analysis"):
            raise ModuleNotFoundError(
                f"this installation has no {err.name} module: update scythe-engine"
            ) from None
        raise ModuleNotFoundError(
            f"the report needs the analysis extra (no module {err.name!r}): "
            "pip install 'scythe-engine[analysis]'"
        ) from None
    return make_report


@app.command()
@cli_errors("resume")
def resume(
    run: RunArgument,
    engine: str = typer.Option("local", "--engine", help="local or hatchet."),
    slots: int | None = typer.Option(
        None, "--slots", min=0, help="Local worker processes (0: in this process)."
    ),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Run every failed spec once more."
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for the run to end."),
    storage: str | None = STORAGE,
    debug: bool = DEBUG,
) -> None:
    """Finish a run that was interrupted, cancelled or stopped (or retry its failed specs).

    Exit code 0 when every spec then has a result, 1 when some failed or did not run.

    Example: scythe resume building_energy/v1.0.0/2026-11-28T12 --retry-failed
    """
    from scythe.errors import RunOptionError

    if not wait and engine == "local":
        raise RunOptionError(
            "--no-wait needs --engine hatchet: the local engine runs the specs in this process"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the experiment's module, as `scythe run` found it
    target = _run(run, storage)
    ref = target.resume(
        engine=engine_for(engine, slots=slots), wait=False, retry_failed=retry_failed
    )
    follow(target.run_id, ref, wait=wait, submitted=f"resumed on {engine}")


if __name__ == "__main__":
    app()
