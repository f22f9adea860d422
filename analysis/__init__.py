"""Open what runs wrote: a catalog of runs, scans and SQL over their tables, comparisons,
training sets, designs, sensitivity, plots and reports.

Every name loads on first use, so ``import analysis`` stays light (no
matplotlib, scipy or SALib until a plot, a sensitivity or a design needs it).

>>> import analysis
>>> analysis.scan.__module__, analysis.Catalog.__name__
('analysis.query', 'Catalog')

``analysis.compare``, ``analysis.report`` and ``analysis.sensitivity`` are
modules that call their function when called: ``analysis.compare(a, b)`` is
``analysis.compare.compare(a, b)``.

>>> callable(analysis.compare), analysis.compare.compare.__name__
(True, 'compare')
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

_LAZY = {
    "Catalog": ("analysis.catalog", "Catalog"),
    "scan": ("analysis.query", "scan"),
    "sql": ("analysis.query", "sql"),
    "compare": ("analysis.compare", "compare"),
    "training_set": ("analysis.training", "training_set"),
    "sample": ("analysis.design", "sample"),
    "sensitivity": ("analysis.sensitivity", "sensitivity"),
    "plots": ("analysis.plots", None),
    "report": ("analysis.report", "report"),
}

# Exports whose module has their name: the module is exported, callable as the function.
_SAME_NAME = {name for name, (module, attr) in _LAZY.items() if module == f"analysis.{attr}"}

if TYPE_CHECKING:
    from analysis import plots
    from analysis.catalog import Catalog
    from analysis.compare import compare
    from analysis.design import sample
    from analysis.query import scan, sql
    from analysis.report import report
    from analysis.sensitivity import sensitivity
    from analysis.training import training_set


class _CallableModule(types.ModuleType):
    """A module named like its main function (``analysis.compare``): calling it calls that."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Package(types.ModuleType):
    """``analysis`` itself. Importing ``analysis.compare`` makes the package attribute
    ``compare`` that module (the import system sets it), so each such module is made
    callable: ``analysis.compare(a, b)`` works whatever was imported first."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in _SAME_NAME:
            value.__class__ = _CallableModule
        super().__setattr__(name, value)


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    module_name, attr = target
    module = importlib.import_module(module_name)
    value = module if attr is None or name in _SAME_NAME else getattr(module, attr)
    globals()[name] = value
    return value


sys.modules[__name__].__class__ = _Package


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
