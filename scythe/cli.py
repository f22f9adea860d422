"""The ``scythe`` command."""

from __future__ import annotations

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
def demo(n: int = typer.Option(1000, "--n", min=1, help="Number of specs to run.")) -> None:
    """Run the example experiment on the embedded local engine and summarise its results."""
    try:
        from examples.building_energy.run import main as run_demo  # noqa: F401
    except ImportError:
        typer.echo("no example yet: the building-energy example lands with the local engine")
        raise typer.Exit(0) from None
    run_demo(n=n)


if __name__ == "__main__":
    app()
