"""Open what runs wrote: a catalog of runs, scans and SQL over their tables, comparisons,
training sets, designs, sensitivity, plots and reports.

Every name loads on first use, so ``import analysis`` stays light (no
matplotlib, scipy or SALib until a plot, a sensitivity or a design needs it).

>>> import analysis
>>> analysis.scan.__module__, analysis.Catalog.__name__
('analysis.query', 'Catalog')

The functions live in modules of other names (``analysis.comparison``,
``analysis.reporting``, ``analysis.sensitivity_analysis``), so ``analysis.compare``
is always the function, whatever was imported before.

>>> import analysis.comparison
>>> analysis.compare.__module__
'analysis.comparison'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "Catalog": ("analysis.catalog", "Catalog"),
    "scan": ("analysis.query", "scan"),
    "sql": ("analysis.query", "sql"),
    "compare": ("analysis.comparison", "compare"),
    "training_set": ("analysis.training", "training_set"),
    "sample": ("analysis.design", "sample"),
    "sensitivity": ("analysis.sensitivity_analysis", "sensitivity"),
    "plots": ("analysis.plots", None),
    "report": ("analysis.reporting", "report"),
}

if TYPE_CHECKING:
    from analysis import plots
    from analysis.catalog import Catalog
    from analysis.comparison import compare
    from analysis.design import sample
    from analysis.query import scan, sql
    from analysis.reporting import report
    from analysis.sensitivity_analysis import sensitivity
    from analysis.training import training_set


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    module_name, attr = target
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "Catalog",
    "compare",
    "plots",
    "report",
    "sample",
    "scan",
    "sensitivity",
    "sql",
    "training_set",
]
