"""Experiments, their versions and runs: allocate specs, find runs, read results.

>>> import tempfile
>>> from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry
>>> class In(ExperimentInputSpec):
...     x: float
>>> class Out(ExperimentOutputSpec):
...     y: float
>>> @ExperimentRegistry.Register(name="doctest_double")
... def double(spec: In) -> Out:
...     return Out(y=2 * spec.x)
>>> experiment = BaseExperiment(runnable=double, storage=tempfile.mkdtemp())
>>> run, ref = experiment.allocate([In(x=1.0), In(x=2.5)], version="bumpminor", engine=LocalEngine(slots=0))
>>> ref.result().status
'complete'
>>> run.results().scalars["y"].to_list()
[2.0, 5.0]
>>> ExperimentRegistry.unregister("doctest_double")
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scythe.allocation import AllocationPlan, default_recursion_map, plan_allocation, write_run
from scythe.base import ExperimentInputSpec
from scythe.engines import Engine, RunRef, get_engine
from scythe.engines.local import LocalEngine
from scythe.errors import ExperimentDefinitionError, ExperimentNameError, RunNotFoundError
from scythe.layout import RunLayout, RunManifest, read_manifest, run_id_of, version_prefix
from scythe.nodes import resolve_experiment
from scythe.registry import ExperimentRunnable
from scythe.results import Results, stored_table_schemas
from scythe.scatter_gather import RecursionMap, ScatterGatherInput
from scythe.schema import TableSchema
from scythe.storage import Store, open_store, remember_store
from scythe.versions import SemVer, VersionBump, resolve_version

__all__ = [
    "AllocationPlan",
    "BaseExperiment",
    "ExperimentRun",
    "LocalEngine",
    "Results",
    "RunStatusCounts",
    "UnfinishedRunWarning",
    "VersionedExperiment",
    "default_recursion_map",
]


class UnfinishedRunWarning(UserWarning):
    """Results were read from a run that is not complete or partial."""


def _as_store(storage: str | Path | Store | None) -> Store:
    store = (
        storage
        if isinstance(storage, Store)
        else open_store(None if storage is None else str(storage))
    )
    return remember_store(store)


def _submit(engine: Engine, store: Store, manifest: RunManifest, *, wait: bool | None) -> RunRef:
    """Hand the run's root node to ``engine``; wait for the run if asked (or if the engine does)."""
    root = ScatterGatherInput(
        storage_uri=store.uri(),
        run_id=manifest.run_id,
        experiment=manifest.runnable or manifest.experiment,
        experiment_ref=manifest.function,
        n_specs=manifest.spec_count,
        recursion_map=manifest.recursion_map,
    )
    ref = engine.submit(root)
    if wait if wait is not None else engine.waits_by_default():
        ref.result()
    return ref


class BaseExperiment:
    """An experiment: a registered function and where its runs are stored.

    ``run_name`` names the experiment's folder in storage (default: the
    registered name); ``storage`` is a path, ``file://`` or ``s3://`` URI or a
    store (default: ``SCYTHE_STORAGE_URI``, else ``./scythe-data``).
    """

    def __init__(
        self,
        runnable: ExperimentRunnable,
        run_name: str | None = None,
        *,
        storage: str | Path | Store | None = None,
    ) -> None:
        if not isinstance(runnable, ExperimentRunnable):
            raise ExperimentDefinitionError(
                f"runnable must be registered with @ExperimentRegistry.Register(), got {runnable!r}"
            )
        self.runnable = runnable
        self.name = run_name or runnable.name
        if "/" in self.name or not self.name.strip():
            raise ExperimentNameError(
                f"experiment name {self.name!r} must be non-empty and contain no '/': "
                "pass run_name=... or register the function under another name"
            )
        self._storage = storage
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = _as_store(self._storage)
        return self._store

    def __repr__(self) -> str:
        return f"BaseExperiment({self.name!r}, runnable={self.runnable!r})"

    # ------------------------------------------------------------------ versions and runs

    def list_versions(self) -> list[SemVer]:
        """Versions with at least one run, oldest first."""
        return sorted(
            SemVer.parse(v) for v in self.store.list_children(self.name) if SemVer.is_version(v)
        )

    def latest_version(self) -> SemVer | None:
        versions = self.list_versions()
        return versions[-1] if versions else None

    def version(self, version: SemVer | str) -> VersionedExperiment:
        return VersionedExperiment(
            self, version if isinstance(version, SemVer) else SemVer.parse(version)
        )

    def latest_run(self) -> ExperimentRun | None:
        latest = self.latest_version()
        return self.version(latest).latest_run() if latest else None

    def latest_results(self) -> Results:
        run = self.latest_run()
        if run is None:
            raise RunNotFoundError(f"experiment {self.name!r} has no runs in {self.store.uri()}")
        return run.results()

    # ------------------------------------------------------------------ allocation

    def allocate(
        self,
        specs: Iterable[ExperimentInputSpec | dict[str, Any]],
        *,
        version: VersionBump | SemVer | str = "bumpminor",
        recursion_map: RecursionMap | None = None,
        overwrite_sort_index: bool = True,
        engine: str | Engine | None = None,
        wait: bool | None = None,
    ) -> tuple[ExperimentRun, RunRef]:
        """Validate ``specs``, store them, and submit the run's root node to an engine.

        Every invalid spec is reported in one ``SpecValidationError`` before
        anything is written; the caller's spec objects are never modified.
        ``version`` is a bump of the latest stored version (``bumpmajor``,
        ``bumpminor``, ``bumppatch``, ``keep``) or an explicit ``vM.m.p``.
        Without ``recursion_map`` the tree is sized for the engine's
        parallelism. ``wait`` blocks until the run ends (default: the
        engine's choice: the local engine waits, Hatchet does not).

        >>> import tempfile
        >>> from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry
        >>> class Wall(ExperimentInputSpec):
        ...     r_value: float
        >>> class Loss(ExperimentOutputSpec):
        ...     u_value: float
        >>> @ExperimentRegistry.Register(name="doctest_allocate")
        ... def conduct(spec: Wall) -> Loss:
        ...     return Loss(u_value=1 / spec.r_value)
        >>> experiment = BaseExperiment(conduct, storage=tempfile.mkdtemp())
        >>> run, ref = experiment.allocate([Wall(r_value=2.0), Wall(r_value=4.0)],
        ...                                version="bumpminor", engine=LocalEngine(slots=0))
        >>> ref.result().status, run.run_id.split("/")[:2]
        ('complete', ['doctest_allocate', 'v1.0.0'])
        >>> ExperimentRegistry.unregister("doctest_allocate")
        """
        run_engine = get_engine(engine)
        plan = plan_allocation(
            self.runnable,
            specs,
            recursion_map=recursion_map,
            overwrite_sort_index=overwrite_sort_index,
            parallelism=run_engine.parallelism,
        )
        run_engine.check(self.runnable)
        semver = resolve_version(self.list_versions(), version)
        store = self.store
        manifest = write_run(store, plan, name=self.name, version=semver, engine=run_engine.name)
        run = ExperimentRun(manifest.run_id, store=store, experiment=self.runnable)
        return run, _submit(run_engine, store, manifest, wait=wait)


class VersionedExperiment:
    """One version of an experiment and its runs."""

    def __init__(self, experiment: BaseExperiment, version: SemVer) -> None:
        self.experiment = experiment
        self.version = version

    @property
    def prefix(self) -> str:
        return version_prefix(self.experiment.name, self.version)

    def list_runs(self) -> list[ExperimentRun]:
        """Runs of this version, oldest first."""
        store = self.experiment.store
        return [
            ExperimentRun(run_id, store=store, experiment=self.experiment.runnable)
            for run_id in (
                run_id_of(self.experiment.name, self.version, folder)
                for folder in sorted(store.list_children(self.prefix))
            )
            if store.exists(RunLayout(run_id).manifest)
        ]

    def latest_run(self) -> ExperimentRun | None:
        runs = self.list_runs()
        return runs[-1] if runs else None

    def __repr__(self) -> str:
        return f"VersionedExperiment({self.experiment.name!r}, {self.version})"


@dataclass(frozen=True)
class RunStatusCounts:
    """Where a run stands: status and counts of specs done, failed and in all."""

    status: str
    done: int
    failed: int
    total: int


class ExperimentRun:
    """One allocation of an experiment: its files, its manifest and its results.

    ``experiment_id`` (also ``run_id``) is ``<experiment>/<vM.m.p>/<time>``.
    """

    def __init__(
        self, run_id: str, *, store: Store, experiment: ExperimentRunnable | None = None
    ) -> None:
        self.run_id = run_id
        self.store = store
        self.layout = RunLayout(run_id)
        self._experiment = experiment

    @classmethod
    def open(cls, run_id: str, *, storage: str | Path | Store | None = None) -> ExperimentRun:
        """Open a stored run by its id, e.g. from another process; needs only the storage.

        >>> import tempfile
        >>> from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry
        >>> class Wall(ExperimentInputSpec):
        ...     r_value: float
        >>> class Loss(ExperimentOutputSpec):
        ...     u_value: float
        >>> @ExperimentRegistry.Register(name="doctest_open")
        ... def conduct(spec: Wall) -> Loss:
        ...     return Loss(u_value=1 / spec.r_value)
        >>> storage = tempfile.mkdtemp()
        >>> run, ref = BaseExperiment(conduct, storage=storage).allocate(
        ...     [Wall(r_value=2.0), Wall(r_value=4.0)], engine=LocalEngine(slots=0))
        >>> ExperimentRun.open(run.run_id, storage=storage).status()
        RunStatusCounts(status='complete', done=2, failed=0, total=2)
        >>> ExperimentRegistry.unregister("doctest_open")
        """
        store = _as_store(storage)
        run = cls(run_id.strip("/"), store=store)
        if not store.exists(run.layout.manifest):
            raise RunNotFoundError(f"no run {run_id!r} in {store.uri()} (no {run.layout.manifest})")
        return run

    @property
    def experiment_id(self) -> str:
        return self.run_id

    @property
    def uri(self) -> str:
        return self.store.uri(self.run_id)

    def table_uri(self, name: str) -> str:
        """URI of a Delta table of the run (``specs`` or a result table), for deltalake or polars."""
        return self.store.table_uri(self.layout.table(name))

    @property
    def manifest(self) -> RunManifest:
        return read_manifest(self.store, self.layout)

    @property
    def experiment(self) -> ExperimentRunnable:
        """The run's registered experiment, imported from its reference if needed."""
        if self._experiment is None:
            manifest = self.manifest
            self._experiment = resolve_experiment(
                manifest.runnable or manifest.experiment, manifest.function
            )
        return self._experiment

    def table_schemas(self) -> dict[str, TableSchema]:
        """The schemas the run's tables were written with (``table_schemas.yml``), by table name.

        Read from storage, so results open without importing the experiment's code.
        """
        return stored_table_schemas(self.store, self.layout)

    def status(self) -> RunStatusCounts:
        """Status and counts from the manifest (complete, partial, running...)."""
        manifest = self.manifest
        return RunStatusCounts(manifest.status, manifest.done, manifest.failed, manifest.spec_count)

    def results(self, *, validate: bool = True) -> Results:
        """The run's results: validated polars frames in ``sort_index`` order.

        Tables are checked against the schema stored with the run. Warns
        (``UnfinishedRunWarning``) when the run has not finished: its tables
        hold only what the root has committed so far.

        >>> import tempfile
        >>> from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry
        >>> class Wall(ExperimentInputSpec):
        ...     r_value: float
        >>> class Loss(ExperimentOutputSpec):
        ...     u_value: float
        >>> @ExperimentRegistry.Register(name="doctest_results")
        ... def conduct(spec: Wall) -> Loss:
        ...     return Loss(u_value=1 / spec.r_value)
        >>> storage = tempfile.mkdtemp()
        >>> run, ref = BaseExperiment(conduct, storage=storage).allocate(
        ...     [Wall(r_value=2.0), Wall(r_value=4.0)], engine=LocalEngine(slots=0))
        >>> run.results().scalars.select("r_value", "u_value").rows()
        [(2.0, 0.5), (4.0, 0.25)]
        >>> run.results().failures.height
        0
        >>> ExperimentRegistry.unregister("doctest_results")
        """
        status = self.manifest.status
        if status not in ("complete", "partial"):
            warnings.warn(
                f"run {self.run_id} is {status}: its results are not all committed yet",
                UnfinishedRunWarning,
                stacklevel=2,
            )
        return Results(self.store, self.layout, validate=validate)

    def resume(self, *, engine: str | Engine | None = None, wait: bool | None = None) -> RunRef:
        """Run the nodes that have not finished (after a cancel or a crash) and finalize again.

        Nodes that finished are not run again and no row is committed twice,
        so resuming a complete run only checks it again.

        >>> import tempfile
        >>> from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry
        >>> class Wall(ExperimentInputSpec):
        ...     r_value: float
        >>> class Loss(ExperimentOutputSpec):
        ...     u_value: float
        >>> @ExperimentRegistry.Register(name="doctest_resume")
        ... def conduct(spec: Wall) -> Loss:
        ...     return Loss(u_value=1 / spec.r_value)
        >>> storage = tempfile.mkdtemp()
        >>> run, ref = BaseExperiment(conduct, storage=storage).allocate(
        ...     [Wall(r_value=2.0), Wall(r_value=4.0)], engine=LocalEngine(slots=0))
        >>> run.resume(engine=LocalEngine(slots=0)).result().status
        'complete'
        >>> ExperimentRegistry.unregister("doctest_resume")
        """
        return _submit(get_engine(engine), self.store, self.manifest, wait=wait)

    def __repr__(self) -> str:
        return f"ExperimentRun({self.run_id!r})"
