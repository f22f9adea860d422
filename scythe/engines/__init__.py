"""Engines run the scatter/gather tree: where nodes execute, not what they do.

An engine is a small seam with two real sides: the embedded
:class:`~scythe.engines.local.LocalEngine` (the default) and the distributed
:class:`~scythe.engines.hatchet.HatchetEngine`. Both take the root node of a
run and return a :class:`RunRef` that waits for (``result``), polls (``done``)
or stops (``cancel``) the run. Planning, the leaf middleware and the tables
are shared by every engine (``scythe.nodes``); nothing above this seam knows
which engine runs a tree.

>>> engine = get_engine("local")
>>> engine.name, engine.waits_by_default(), engine.parallelism >= 1
('local', True, True)
>>> get_engine("cloud")
Traceback (most recent call last):
...
scythe.errors.EngineConfigError: unknown engine 'cloud': use one of local, hatchet
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from scythe.errors import EngineConfigError
from scythe.registry import ExperimentRunnable
from scythe.scatter_gather import RunSummary, ScatterGatherInput

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


@runtime_checkable
class Engine(Protocol):
    """Runs the tree whose root is ``root``; every engine has these six members."""

    name: str
    """Recorded in each run's manifest (``local``, ``hatchet``)."""

    @property
    def parallelism(self) -> int:
        """How many terminal nodes run at once: the default tree is sized for it (>= 1)."""
        ...

    def check(self, experiment: ExperimentRunnable) -> None:
        """Raise if this engine cannot run ``experiment`` (called before anything is written)."""
        ...

    def submit(self, root: ScatterGatherInput) -> RunRef:
        """Start the run whose root node is ``root`` (its experiment is ``root.experiment``)."""
        ...

    def submit_one(self, root: ScatterGatherInput) -> RunRef:
        """Start a one-off run (one spec, no tree): its spec is triggered directly."""
        ...

    def waits_by_default(self) -> bool:
        """Whether ``allocate`` blocks until the run ends when ``wait`` is not given."""
        ...


def get_engine(engine: str | Engine | None = None) -> Engine:
    """The engine called ``engine`` (default: ``SCYTHE_ENGINE``, else ``local``); an engine as is."""
    if engine is not None and not isinstance(engine, str):
        return engine
    if engine is None:
        from scythe.settings import scythe_settings

        engine = scythe_settings().ENGINE
    if engine == "local":
        from scythe.engines.local import LocalEngine

        return LocalEngine()
    if engine == "hatchet":
        from scythe.engines.hatchet import HatchetEngine

        return HatchetEngine()
    raise EngineConfigError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")


__all__ = ["ENGINES", "Engine", "RunRef", "get_engine"]
