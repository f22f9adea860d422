"""Typed errors of ``analysis``: each derives from a ``scythe.errors`` base and a builtin.

>>> issubclass(UnboundedFieldError, DesignError), issubclass(DesignError, ValueError)
(True, True)
"""

from __future__ import annotations

from scythe.errors import ScytheError


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
