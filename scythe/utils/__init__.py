"""scythe-engine 1.x's import paths, kept so that code written for it runs unmodified.

Each module here is a thin re-export or adapter over Scythe's own parts
(``docs/migrating.md`` lists them); new code imports from ``scythe`` itself.

>>> log_interval(1000)
50
"""

from __future__ import annotations

import math


def log_interval(total: int, *, max_logs: int = 20, min_interval: int = 5) -> int:
    """Log every this many items of ``total``: about ``max_logs`` lines, at least ``min_interval`` apart."""
    return max(min_interval, math.ceil(total / max_logs))


__all__ = ["log_interval"]
