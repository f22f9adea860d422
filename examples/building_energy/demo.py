"""Run the building-energy example on the local engine, summarise the results and write
the run's HTML report (``<storage>/reports/<experiment>_<version>_<time>.html`` for local
storage, the default ``scythe-data/``; ``./scythe-reports/`` for S3).

python -m examples.building_energy.demo --n 1000      (or: scythe demo --n 1000)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from examples.building_energy.experiment import sample_specs, simulate_energy
from scythe import BaseExperiment, ExperimentRun


def summarise(run: ExperimentRun, console: Console, seconds: float) -> None:
    results = run.results()
    scalars, failures = results.scalars, results.failures
    status = run.status()
    console.print(f"[bold]run[/bold]     {run.run_id}  ({status.status}, {seconds:.1f} s)")
    console.print(f"[bold]tables[/bold]  {run.uri}/final/")
    for name in ["scalars", "result_file_refs", "failures", *results.frame_outputs]:
        console.print(f"          {name:<17} {results.table(name).height:>8,} rows")
    console.print(
        f"[bold]specs[/bold]   {results.spec_count:,}: {scalars.height:,} done, "
        f"{failures.height:,} failed"
    )
    if failures.height:
        console.print(failures.select("sort_index", "error_type", "message").head(5))
    climate = pl.col("weather_file").str.extract(r"([a-z]+)\.parquet$")
    summary = (
        scalars.with_columns(climate.alias("climate"))
        .group_by("climate", "economizer")
        .agg(
            pl.len().alias("buildings"),
            pl.col("heating_kwh_m2").mean().alias("heating"),
            pl.col("cooling_kwh_m2").mean().alias("cooling"),
            pl.col("peak_cooling_w_m2").max().alias("peak_cooling"),
        )
        .sort("climate", "economizer")
    )
    table = Table(
        title=escape("Mean annual loads [kWh/m2] and peak cooling [W/m2] by climate and economizer")
    )
    for col in ("climate", "economizer", "buildings", "heating", "cooling", "peak cooling"):
        table.add_column(col, justify="left" if col in ("climate", "economizer") else "right")
    for row in summary.iter_rows():
        c, e, n, h, cool, peak = row
        table.add_row(c, e, f"{n:,}", f"{h:.1f}", f"{cool:.1f}", f"{peak:.1f}")
    console.print(table)


def report_folder_of(run: ExperimentRun) -> Path:
    """Where the demo writes reports: ``reports/`` in a local storage root, else ``./scythe-reports``."""
    from scythe.storage import LocalStore

    if isinstance(run.store, LocalStore):
        return run.store.root / "reports"
    return Path("scythe-reports")


def write_report(run: ExperimentRun, console: Console, folder: Path) -> Path:
    """Write the run's HTML report into ``folder`` and print where it is."""
    from analysis.reporting import report

    started = time.perf_counter()
    path = report(run, folder / (run.run_id.replace("/", "_") + ".html"))
    seconds = time.perf_counter() - started
    console.print(f"[bold]report[/bold]  {path.resolve()}", soft_wrap=True)
    console.print(f"          written in {seconds:.1f} s: open it in a browser")
    return path


def main(
    n: int = 1000,
    *,
    seed: int = 0,
    storage: str | None = None,
    report_folder: str | Path | None = None,
) -> ExperimentRun:
    console = Console(highlight=False)
    console.print(f"Allocating {n:,} building simulations on the local engine...")
    started = time.perf_counter()
    run, ref = BaseExperiment(runnable=simulate_energy, storage=storage).allocate(
        sample_specs(n, seed=seed), version="bumpminor"
    )
    ref.result()
    summarise(run, console, time.perf_counter() - started)
    folder = Path(report_folder) if report_folder is not None else report_folder_of(run)
    write_report(run, console, folder)
    return run


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--storage", default=None)
    parser.add_argument("--reports", default=None, help="Folder of the HTML report")
    args = parser.parse_args()
    main(args.n, seed=args.seed, storage=args.storage, report_folder=args.reports)
