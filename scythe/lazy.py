"""Module attributes imported on first use (PEP 562), so that importing a module stays cheap.

>>> getattr_ = lazy_attributes("demo", {"dumps": "json"}, namespace := {})
>>> getattr_("dumps") is __import__("json").dumps, "dumps" in namespace
(True, True)
>>> getattr_("nothing")
Traceback (most recent call last):
...
AttributeError: module 'demo' has no attribute 'nothing'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_attributes(
    module: str,
    sources: Mapping[str, str],
    namespace: dict[str, Any],
    *,
    submodules: Iterable[str] = (),
) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``name`` from ``sources[name]`` on first use and
    keeps it in ``namespace`` (the module's globals), so later lookups cost nothing.

    ``submodules`` are modules of the package ``module`` itself, which ``module.name``
    imports (the import makes them attributes of the package).
    """
    packaged = frozenset(submodules)

    def __getattr__(name: str) -> Any:
        if name in packaged:
            return importlib.import_module(f"{module}.{name}")
        source = sources.get(name)
        if source is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        namespace[name] = value
        return value

    return __getattr__
