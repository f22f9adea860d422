"""Typed errors of ``analysis``: each derives from a ``scythe.errors`` base and a builtin.

>>> issubclass(UnboundedFieldError, DesignError), issubclass(DesignError, ValueError)
(True, True)
"""

from __future__ import annotations

from scythe.errors import RunNotFoundError, ScytheError


class AnalysisError(ScytheError):
    """Base class of every error ``analysis`` raises on purpose."""


class DesignError(AnalysisError, ValueError):
    """A design cannot be sampled with these options (method, size, field names, ranges)."""


class UnboundedFieldError(DesignError):
    """A field to vary has no range or levels: the message names the class, the field and what to pass."""


class SensitivityError(AnalysisError, ValueError):
    """Sensitivity cannot be computed from this run (too few rows, no inputs that vary, ...)."""


class OutputNotFoundError(AnalysisError, LookupError):
    """An output named for an analysis is not a numeric scalar output of the run."""


class AmbiguousRunError(AnalysisError, RunNotFoundError):
    """A run id prefix matches more than one run: the message lists them."""


class CompareError(AnalysisError, ValueError):
    """Two runs cannot be compared (different input columns, an output that is not numeric)."""


class QueryError(AnalysisError, ValueError):
    """A SQL query or a scan option cannot be run over the runs' tables."""


class TrainingSetError(AnalysisError, ValueError):
    """A training set cannot be built (a split out of range, a column of the wrong type)."""


class PlotError(AnalysisError, ValueError):
    """A plot has nothing to draw (no successful specs, no numeric output, no indices)."""
