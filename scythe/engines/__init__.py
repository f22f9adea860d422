"""Engines run the scatter/gather tree: where nodes execute, not what they do.

An engine has one job, ``submit(root) -> RunRef``; the ref waits for
(``result``), polls (``done``) or stops (``cancel``) the run. Planning, the
leaf middleware and the tables are shared by every engine (``scythe.nodes``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from scythe.errors import EngineError
from scythe.nodes import RunSummary, ScatterGatherInput
from scythe.registry import ExperimentRunnable

ENGINES = ("local", "hatchet")


@runtime_checkable
class RunRef(Protocol):
    """A handle on a submitted run."""

    run_id: str

    def result(self, timeout: float | None = None) -> RunSummary:
        """Block until the run has finished and return its summary."""
        ...

    def done(self) -> bool:
        """Whether the run has finished."""
        ...

    def cancel(self) -> None:
        """Stop the run; finished nodes are kept, and the run can be resumed."""
        ...


class Engine(Protocol):
    """Runs the tree whose root is ``root``."""

    name: str

    def submit(self, root: ScatterGatherInput, experiment: ExperimentRunnable) -> RunRef: ...

    def waits_by_default(self) -> bool:
        """Whether ``allocate`` blocks until the run ends when ``wait`` is not given."""
        ...

    def check(self, experiment: ExperimentRunnable) -> None:
        """Raise if this engine cannot run ``experiment`` (called before anything is written)."""
        ...


def get_engine(engine: str | Engine | None = None) -> Engine:
    """The engine called ``engine`` (default: ``SCYTHE_ENGINE``, else ``local``)."""
    if engine is not None and not isinstance(engine, str):
        return engine
    if engine is None:
        from scythe.settings import scythe_settings

        engine = scythe_settings().ENGINE
    if engine == "local":
        from scythe.engines.local import LocalEngine

        return LocalEngine()
    if engine == "hatchet":
        from scythe.engines.hatchet import HatchetEngine  # type: ignore[import-not-found]

        return HatchetEngine()
    raise EngineError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
