"""The ``scythe`` command."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="scythe",
    help="Run simulations from typed specs and inspect their validated results.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print the installed Scythe version."""
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
    """Run the building-energy example on the embedded local engine and summarise its results."""
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


if __name__ == "__main__":
    app()
