"""Experiments the benchmarks run (a module, so worker processes can import them)."""

from __future__ import annotations

import time
from pathlib import Path

from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry, FileReference


class Point(ExperimentInputSpec):
    x: float
    k: int


class Value(ExperimentOutputSpec):
    y: float


@ExperimentRegistry.Register(name="bench_trivial")
def trivial(spec: Point) -> Value:
    return Value(y=spec.x * 2 + spec.k)


@ExperimentRegistry.Register(name="bench_cpu")
def cpu_bound(spec: Point) -> Value:
    """About 20 ms of pure-Python CPU work."""
    deadline = time.process_time() + 0.020
    acc = spec.x
    while time.process_time() < deadline:
        for _ in range(200):
            acc = (acc * 1.000001 + 1.0) % 1000.0
    return Value(y=acc)


class Report(ExperimentOutputSpec):
    y: float
    report: FileReference


@ExperimentRegistry.Register(name="bench_files")
def file_output(spec: Point, tempdir: Path) -> Report:
    """Writes a small text file (about 200 bytes) the run stores under results/."""
    path = tempdir / "report.txt"
    path.write_text(f"x={spec.x}\nk={spec.k}\n" + "#" * 180)
    return Report(y=spec.x * 2 + spec.k, report=path)
