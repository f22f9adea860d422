"""Overhead of the local engine against a plain process pool, measured in one run.

    python benchmarks/local_overhead.py [--n 100000] [--cpu-n 2000]

1. ``n`` trivial specs end to end (allocate -> Delta tables -> ``results()``)
   against a baseline that maps the same function over the same specs with
   ``concurrent.futures.ProcessPoolExecutor`` (chunked) and writes one Parquet
   file. Target: ratio <= 1.5.
2. ``cpu_n`` specs of ~20 ms of CPU each: wall time against the ideal
   ``total CPU work / cores``. Target: ratio <= 1.2.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_experiments import Point, cpu_bound, trivial

from scythe import BaseExperiment, LocalEngine, RecursionMap


def _apply(fn, specs):  # runs in the baseline's workers
    return [fn(s).y for s in specs]


def baseline(fn, specs: list[Point], workers: int, out: Path) -> float:
    """Map ``fn`` over ``specs`` with a chunked process pool and write one Parquet file."""
    started = time.perf_counter()
    chunk = max(1, len(specs) // (workers * 8))
    chunks = [specs[i : i + chunk] for i in range(0, len(specs), chunk)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        ys = [y for part in pool.map(_apply, [fn] * len(chunks), chunks) for y in part]
    pl.DataFrame(
        {"sort_index": range(len(specs)), "x": [s.x for s in specs], "y": ys}
    ).write_parquet(out)
    return time.perf_counter() - started


def scythe_run(
    experiment, specs: list[Point], engine: LocalEngine, storage: str
) -> tuple[float, int]:
    started = time.perf_counter()
    run, ref = BaseExperiment(runnable=experiment, storage=storage).allocate(specs, engine=engine)
    summary = ref.result()
    rows = run.results().scalars.height
    assert summary.status == "complete" and rows == len(specs), summary
    return time.perf_counter() - started, rows


def _times(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in values) + ")"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--cpu-n", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs of [1]; medians are compared")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"machine: {cores} cores, python {sys.version.split()[0]}")

    with tempfile.TemporaryDirectory() as tmp:
        engine = LocalEngine(slots=cores, progress=False)
        # Warm every worker once (process start-up is paid once per engine, not per run).
        warm = [Point(x=float(i), k=0) for i in range(4 * cores)]
        BaseExperiment(runnable=trivial, storage=f"{tmp}/warm").allocate(
            warm, engine=engine, recursion_map=RecursionMap(factor=2 * cores, max_depth=1)
        )

        specs = [Point(x=i * 0.5, k=i % 7) for i in range(args.n)]
        bases, ours = [], []
        for attempt in range(args.repeat):
            bases.append(baseline(trivial, specs, cores, Path(tmp) / f"baseline-{attempt}.parquet"))
            seconds, _rows = scythe_run(trivial, specs, engine, f"{tmp}/trivial-{attempt}")
            ours.append(seconds)
        base, mine = statistics.median(bases), statistics.median(ours)
        print(f"\n[1] {args.n:,} trivial specs end to end (median of {args.repeat} runs)")
        print(
            f"    baseline (ProcessPoolExecutor + one Parquet file): {base:6.2f} s {_times(bases)}"
        )
        print(
            f"    scythe local engine (allocate -> Delta -> results): {mine:6.2f} s {_times(ours)}"
        )
        print(f"    ratio: {mine / base:.2f}  (target <= 1.1)")

        if args.cpu_n <= 0:
            engine.close()
            return
        cpu_specs = [Point(x=float(i), k=0) for i in range(args.cpu_n)]
        one = time.process_time()
        for s in cpu_specs[:50]:
            cpu_bound(s)
        per_spec = (time.process_time() - one) / 50
        ideal = per_spec * args.cpu_n / cores
        wall, _ = scythe_run(cpu_bound, cpu_specs, engine, f"{tmp}/cpu")
        print(f"\n[2] {args.cpu_n:,} specs of {per_spec * 1000:.1f} ms CPU each on {cores} cores")
        print(f"    ideal (total CPU / cores): {ideal:8.2f} s")
        print(f"    scythe wall time:          {wall:8.2f} s")
        print(f"    ratio: {wall / ideal:.2f}  (target <= 1.2)")
        engine.close()


if __name__ == "__main__":
    main()
