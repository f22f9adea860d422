"""Scythe: run thousands to millions of simulations from typed specs and get
back validated, typed dataframes.

Importing this package creates no client, reads no settings and needs no
environment variable.
"""

from scythe.base import (
    BaseSpec,
    ExperimentInputSpec,
    ExperimentOutputSpec,
    FileReference,
    OptionalFileReference,
)
from scythe.scatter_gather import RecursionMap

__version__ = "0.1.0"

__all__ = [
    "BaseSpec",
    "ExperimentInputSpec",
    "ExperimentOutputSpec",
    "FileReference",
    "OptionalFileReference",
    "RecursionMap",
    "__version__",
]
