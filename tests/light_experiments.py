"""An experiment in a module that imports only scythe: what its workers load is Scythe's doing."""

from __future__ import annotations

import os
import sys

from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry

HEAVY_MODULES = (
    "pandas",
    "pandera",
    "hypothesis",
    "deltalake",
    "pyarrow",
    "numpy",
    "boto3",
    "hatchet_sdk",
    "grpc",
)


class Anything(ExperimentInputSpec):
    x: float = 0.0


class Loaded(ExperimentOutputSpec):
    modules: str


@ExperimentRegistry.Register(name="loaded_modules")
def loaded_modules(spec: Anything) -> Loaded:
    """Which heavy libraries the process running the leaf has imported."""
    return Loaded(modules=",".join(m for m in HEAVY_MODULES if m in sys.modules))


class Origin(ExperimentOutputSpec):
    mark: str
    parent: int
    name: str


@ExperimentRegistry.Register(name="worker_origin")
def worker_origin(spec: Anything) -> Origin:
    """What the process running the leaf inherited: a driver that sets ``MARK`` before it
    allocates is seen in a forked worker, not in a spawned one (which imports this anew)."""
    try:
        with open("/proc/self/comm") as comm:
            name = comm.read().strip()
    except OSError:  # not Linux
        name = ""
    return Origin(mark=str(globals().get("MARK", "")), parent=os.getppid(), name=name)
