"""The ``scythe`` command."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="scythe",
    help="Run simulations from typed specs and inspect their validated results.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print the installed Scythe version.

    Example: scythe version
    """
    from scythe import __version__

    typer.echo(f"scythe {__version__}")


@app.command()
def demo(
    n: int = typer.Option(1000, "--n", min=1, help="Number of specs to run."),
    seed: int = typer.Option(0, help="Seed of the spec sampler."),
    storage: str = typer.Option(
        None, help="Where to store the run (default: SCYTHE_STORAGE_URI or ./scythe-data)."
    ),
) -> None:
    """Run the building-energy example on the embedded local engine and summarise its results.

    Example: scythe demo --n 200 --storage /tmp/scythe-demo
    """
    import sys
    from pathlib import Path

    import scythe

    checkout = Path(scythe.__file__).resolve().parent.parent
    if not (checkout / "examples" / "building_energy").is_dir():
        typer.echo(
            f"the demo runs from a source checkout: no examples/ next to {checkout}", err=True
        )
        raise typer.Exit(2)
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))  # worker processes inherit sys.path
    from examples.building_energy.demo import main as run_demo

    run_demo(n, seed=seed, storage=storage)


@app.command()
def worker(
    experiments: Annotated[
        list[str] | None,
        typer.Option(
            "--experiments",
            "-e",
            metavar="MODULE:ATTR",
            help="Experiment to serve, as module:attr (or a module: every experiment in it). Repeatable.",
        ),
    ] = None,
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Print the worker's tasks, slots and "
        "labels, then exit without connecting to Hatchet's dispatcher.",
    ),
) -> None:
    """Start a Hatchet worker serving the scatter/gather task and/or the experiments' leaf tasks.

    Roles, slots, labels and name come from SCYTHE_WORKER_* (DOES_FAN, DOES_LEAF, SLOTS,
    DURABLE_SLOTS, HIGH_MEMORY, HIGH_CPU, HAS_GPU, NAME); the connection from HATCHET_CLIENT_*.

    Example: scythe worker -e my_study.experiment:simulate --dry-run
    """
    from scythe.errors import ScytheError
    from scythe.registry import ExperimentRegistry
    from scythe.worker import build_worker, load_experiments, plan_worker, worker_config

    try:
        config = worker_config()
        plan = plan_worker(
            config, load_experiments(experiments or []), ExperimentRegistry.workflows()
        )
    except ScytheError as exc:
        typer.echo(f"scythe worker: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(plan.describe())
    if not dry_run:
        build_worker(plan).start()


# --------------------------------------------------------------------------- errors and options

DEBUG = typer.Option(False, "--debug", help="On an error, show the traceback.")
STORAGE = typer.Option(
    None,
    "--storage",
    help="Store to read and write: a path, file:// or s3://bucket/prefix URI "
    "(default: SCYTHE_STORAGE_URI, else ./scythe-data).",
)


def one_line(err: BaseException) -> str:
    """An error's message on one line: its lines joined, cut at 600 characters.

    >>> one_line(ValueError("2 bad specs:\\n  spec 0 ...\\n  spec 3 ..."))
    '2 bad specs:; spec 0 ...; spec 3 ...'
    """
    text = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
    text = text or type(err).__name__
    return text if len(text) <= 600 else text[:597] + "..."


def cli_errors(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn an error of the command ``name`` into one line on stderr and exit code 2.

    The command takes ``debug: bool = DEBUG``; with ``--debug`` the traceback is shown.

    >>> @cli_errors("demo")
    ... def demo(debug: bool = False) -> None:
    ...     raise ValueError("no such thing")
    >>> try:
    ...     demo()
    ... except typer.Exit as stop:
    ...     print(stop.exit_code)
    2
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            import click

            from scythe.errors import ScytheError

            try:
                return command(*args, **kwargs)
            except (typer.Exit, click.exceptions.Exit, click.ClickException, click.Abort):
                raise
            except Exception as err:
                if kwargs.get("debug"):
                    raise
                kind = "" if isinstance(err, ScytheError) else f"{type(err).__name__}: "
                typer.echo(
                    f"scythe {name}: {kind}{one_line(err)} (--debug shows the traceback)", err=True
                )
                raise typer.Exit(2) from None

        return wrapper

    return decorate


# --------------------------------------------------------------------------- scythe run


def load_specs(path: Path) -> list[dict[str, Any]]:
    """The rows of a CSV, Parquet or JSON Lines file, as spec field dicts.

    >>> import tempfile
    >>> specs = Path(tempfile.mkdtemp()) / "specs.csv"
    >>> _ = specs.write_text("r_value,floors\\n2.0,3\\n4.0,\\n")
    >>> load_specs(specs)         # a blank cell: the field's default
    [{'r_value': 2.0, 'floors': 3}, {'r_value': 4.0}]
    """
    import polars as pl

    from scythe.errors import SpecValidationError

    suffix = path.suffix.lower()
    if not path.is_file():
        raise SpecValidationError(f"--specs {path}: no such file")
    if suffix == ".csv":
        rows = pl.read_csv(path).to_dicts()
        return [{k: v for k, v in row.items() if v is not None} for row in rows]  # blank: default
    if suffix in (".parquet", ".pq"):
        return pl.read_parquet(path).to_dicts()
    if suffix in (".jsonl", ".ndjson"):
        return pl.read_ndjson(path).to_dicts()
    raise SpecValidationError(
        f"--specs {path}: unknown file type {suffix!r}; give a .csv, .parquet or .jsonl file"
    )


def load_experiment(reference: str, *, storage: str | None = None) -> Any:
    """The ``BaseExperiment`` that ``module:attr`` names (an experiment or a registered function).

    >>> load_experiment("json:dumps")
    Traceback (most recent call last):
    ...
    scythe.errors.ExperimentNotFoundError: 'json:dumps' is a function, not a BaseExperiment or a function registered with @ExperimentRegistry.Register()
    """
    import importlib
    import os
    import sys

    from scythe.errors import ExperimentNotFoundError
    from scythe.experiments import BaseExperiment
    from scythe.registry import ExperimentRunnable

    module_name, _, attr = reference.partition(":")
    if not module_name or not attr:
        raise ExperimentNotFoundError(f"{reference!r}: give the experiment as MODULE:ATTR")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like python -m: modules of the working directory
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ExperimentNotFoundError(
            f"cannot import {module_name!r} ({err}): run from the directory that holds it"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ExperimentNotFoundError(f"{reference!r}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if isinstance(obj, BaseExperiment):
        if storage is None:
            return obj
        return BaseExperiment(obj.runnable, obj.name, storage=storage)
    if isinstance(obj, ExperimentRunnable):
        return BaseExperiment(obj, storage=storage)
    raise ExperimentNotFoundError(
        f"{reference!r} is a {type(obj).__name__}, not a BaseExperiment or a function "
        "registered with @ExperimentRegistry.Register()"
    )


def engine_for(name: str, *, slots: int | None = None) -> Any:
    """The engine ``name`` (``local`` or ``hatchet``); ``slots`` for the local engine.

    >>> engine_for("local", slots=0).parallelism
    1
    """
    from scythe.engines import get_engine
    from scythe.engines.local import LocalEngine
    from scythe.errors import EngineConfigError

    if name == "local":
        return LocalEngine(slots=slots)
    if slots is not None:
        raise EngineConfigError("--slots is an option of the local engine (--engine local)")
    return get_engine(name)


def follow(run_id: str, ref: Any, *, wait: bool, submitted: str) -> None:
    """Print the run's id; unless ``wait`` is false, wait for ``ref`` and print the summary,
    exiting 1 when the run did not complete (a partial run, a failure policy stop)."""
    typer.echo(f"run {run_id}")
    if not wait:
        typer.echo(f"{submitted}; follow it with: scythe show {run_id}")
        return
    summary = ref.result()
    typer.echo(f"{summary.status}: {summary.done} done, {summary.failed} failed of {summary.specs}")
    if summary.status != "complete":
        raise typer.Exit(1)


@app.command()
@cli_errors("run")
def run(
    experiment: Annotated[
        str, typer.Argument(metavar="MODULE:EXPERIMENT", help="The experiment to run.")
    ],
    specs: Annotated[
        Path, typer.Option("--specs", help="Specs, one per row: .csv, .parquet, .jsonl.")
    ],
    version: str = typer.Option(
        "bumpmajor", "--version", help="bumpmajor, bumpminor, bumppatch, keep or vM.m.p."
    ),
    engine: str = typer.Option("local", "--engine", help="local or hatchet."),
    slots: int | None = typer.Option(
        None, "--slots", min=0, help="Local worker processes (0: in this process)."
    ),
    factor: int | None = typer.Option(None, "--factor", min=2, help="Branching factor."),
    max_depth: int | None = typer.Option(None, "--max-depth", min=0, help="Tree depth."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for the run to end."),
    storage: str | None = STORAGE,
    debug: bool = DEBUG,
) -> None:
    """Allocate and run an experiment over the specs in a file.

    Prints the run id and, once the run ends, its status; exit code 0 when
    every spec succeeded, 1 when some failed or did not run.

    Example: scythe run my_study.experiment:simulate --specs specs.csv --version bumpminor
    """
    from scythe.errors import RunOptionError
    from scythe.scatter_gather import RecursionMap

    if not wait and engine == "local":
        raise RunOptionError(
            "--no-wait needs --engine hatchet: the local engine runs the specs in this process"
        )
    if (factor is None) != (max_depth is None):
        raise RunOptionError("give --factor and --max-depth together (or neither)")
    target = load_experiment(experiment, storage=storage)
    tree = None if factor is None else RecursionMap(factor=factor, max_depth=max_depth)
    started, ref = target.allocate(
        load_specs(specs), version=version, recursion_map=tree,
        engine=engine_for(engine, slots=slots), wait=False,
    )  # fmt: skip
    follow(started.run_id, ref, wait=wait, submitted=f"submitted to {engine}")


from scythe.schema_cli import schema_app  # noqa: E402 - `scythe schema export|check`

app.add_typer(schema_app, name="schema")


if __name__ == "__main__":
    app()
