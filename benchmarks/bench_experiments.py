"""Experiments the benchmarks run (a module, so worker processes can import them)."""

from __future__ import annotations

import time

from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry


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
