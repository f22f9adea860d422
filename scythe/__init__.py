"""Scythe: run thousands to millions of simulations from typed specs and get
back validated, typed dataframes.

Importing this package creates no client, reads no settings and needs no
environment variable; the heavier parts load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scythe.base import (
    BaseSpec,
    ExperimentInputSpec,
    ExperimentOutputSpec,
    FileReference,
    OptionalFileReference,
)
from scythe.errors import NonRetryableError
from scythe.lazy import lazy_attributes
from scythe.registry import ExperimentRegistry
from scythe.scatter_gather import RecursionMap, ScatterGatherInput, ScatterGatherResult

__version__ = "0.1.0"

_LAZY = {
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
    from scythe.engines.hatchet import HatchetEngine
    from scythe.engines.local import LocalEngine
    from scythe.experiments import BaseExperiment, ExperimentRun, VersionedExperiment
    from scythe.results import Results
    from scythe.versions import SemVer
    from scythe.worker import ScytheWorkerConfig, ScytheWorkerLabel


__getattr__ = lazy_attributes(__name__, _LAZY, globals())


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
