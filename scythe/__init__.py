"""Scythe: run thousands to millions of simulations from typed specs and get
back validated, typed dataframes.

Importing this package creates no client, reads no settings, needs no
environment variable and loads nothing else: each name loads its module on
first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scythe.errors import NonRetryableError
from scythe.lazy import lazy_attributes

__version__ = "0.1.0"

# Every name loads its module on first use: a script that only reads a run's
# results imports no pydantic (the spec classes, the registry and the tree's
# models are pydantic models).
_LAZY = {
    "BaseSpec": "scythe.base",
    "ExperimentInputSpec": "scythe.base",
    "ExperimentOutputSpec": "scythe.base",
    "FileReference": "scythe.base",
    "OptionalFileReference": "scythe.base",
    "ExperimentRegistry": "scythe.registry",
    "RecursionMap": "scythe.scatter_gather",
    "ScatterGatherInput": "scythe.scatter_gather",
    "ScatterGatherResult": "scythe.scatter_gather",
    "BaseExperiment": "scythe.experiments",
    "ExperimentRun": "scythe.experiments",
    "VersionedExperiment": "scythe.experiments",
    "Results": "scythe.results",
    "SemVer": "scythe.versions",
    "LocalEngine": "scythe.engines.local",
    "HatchetEngine": "scythe.engines.hatchet",
    "ScytheWorkerConfig": "scythe.worker",
    "ScytheWorkerLabel": "scythe.worker",
}

if TYPE_CHECKING:
    from scythe.base import (
        BaseSpec,
        ExperimentInputSpec,
        ExperimentOutputSpec,
        FileReference,
        OptionalFileReference,
    )
    from scythe.engines.hatchet import HatchetEngine
    from scythe.engines.local import LocalEngine
    from scythe.experiments import BaseExperiment, ExperimentRun, VersionedExperiment
    from scythe.registry import ExperimentRegistry
    from scythe.results import Results
    from scythe.scatter_gather import RecursionMap, ScatterGatherInput, ScatterGatherResult
    from scythe.versions import SemVer
    from scythe.worker import ScytheWorkerConfig, ScytheWorkerLabel


# ``import scythe`` loaded these submodules before its names were lazy: ``scythe.base``
# (and the others) still work after a bare ``import scythe``, as scythe-engine 1.x had it.
__getattr__ = lazy_attributes(
    __name__, _LAZY, globals(), submodules=("base", "registry", "scatter_gather")
)


__all__ = [
    "BaseExperiment",
    "BaseSpec",
    "ExperimentInputSpec",
    "ExperimentOutputSpec",
    "ExperimentRegistry",
    "ExperimentRun",
    "FileReference",
    "HatchetEngine",
    "LocalEngine",
    "NonRetryableError",
    "OptionalFileReference",
    "RecursionMap",
    "Results",
    "ScatterGatherInput",
    "ScatterGatherResult",
    "ScytheWorkerConfig",
    "ScytheWorkerLabel",
    "SemVer",
    "VersionedExperiment",
    "__version__",
]
