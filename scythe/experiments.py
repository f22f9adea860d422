"""Experiments, their versions and runs: allocate specs, find runs, read results.

>>> import tempfile
>>> from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry, LocalEngine
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
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

from scythe import tables
from scythe.errors import (
    ExperimentDefinitionError,
    ExperimentNameError,
    ManifestError,
    RunNotFoundError,
    RunOptionError,
    SpecValidationError,
    StorageURIError,
    TableMissingError,
    UnsupportedOptionError,
)
from scythe.layout import (
    RunLayout,
    driver_alive,
    read_manifest_data,
    run_id_of,
    stated_status,
    version_prefix,
)
from scythe.lazy import lazy_attributes
from scythe.results import Results, ResultTables, stored_table_schemas
from scythe.schema import FAILURES, SPECS, TableSchema
from scythe.storage import S3Store, Store, open_store, remember_store

if TYPE_CHECKING:
    from scythe.allocation import AllocationPlan, default_recursion_map
    from scythe.base import ExperimentInputSpec
    from scythe.engines import Engine, RunRef
    from scythe.engines.local import LocalEngine
    from scythe.manifest import RetryRound, RunManifest
    from scythe.registry import ExperimentRunnable
    from scythe.scatter_gather import RecursionMap, RunSummary
    from scythe.settings import StorageSettings
    from scythe.versions import SemVer, VersionBump

# Reading a run (``ExperimentRun.open(...).results()``) loads no allocation,
# engine or settings code, and no pydantic (the specs, the manifest's model,
# versions): those modules are imported where a run is allocated, resumed or
# its experiment resolved.
_LAZY = {
    "AllocationPlan": "scythe.allocation",
    "default_recursion_map": "scythe.allocation",
    "LocalEngine": "scythe.engines.local",
    "SemVer": "scythe.versions",
    "RecursionMap": "scythe.scatter_gather",
}


__getattr__ = lazy_attributes(__name__, _LAZY, globals())


__all__ = [
    "AllocationPlan",
    "BaseExperiment",
    "CorruptManifestWarning",
    "ExperimentRun",
    "LocalEngine",
    "ResultTables",
    "Results",
    "RunStatusCounts",
    "SpecRunRef",
    "UnfinishedRunWarning",
    "VersionedExperiment",
    "default_recursion_map",
]


T = TypeVar("T")
ReuseSource = Any  # an ExperimentRun, a VersionedExperiment, a run id, or a list of them


class _Keep:
    """The default of an option that keeps the run's stored value."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()


class UnfinishedRunWarning(UserWarning):
    """Results were read from a run that is not complete or partial."""


class CorruptManifestWarning(UserWarning):
    """A run opened with ``repair=True`` has a corrupt manifest: its tables are read without it."""


def _count(specs: Any) -> int | None:
    return len(specs) if isinstance(specs, Sized) else None


def _prepare(engine: Engine, runnable: ExperimentRunnable, n_specs: int | None) -> None:
    """Let an engine that can (the local one) start its workers while the run is allocated."""
    prepare = getattr(engine, "prepare", None)
    if prepare is not None:
        prepare(runnable, n_specs if n_specs is not None else engine.parallelism)


def _unprepare(engine: Engine) -> None:
    """Undo :func:`_prepare` for an allocation that failed before its run was submitted."""
    release = getattr(engine, "release", None)
    if release is not None:
        release()


def _as_store(storage: str | Path | Store | None) -> Store:
    store = (
        storage
        if isinstance(storage, Store)
        else open_store(None if storage is None else str(storage))
    )
    return remember_store(store)


def _submit(
    engine: Engine,
    store: Store,
    manifest: RunManifest,
    *,
    wait: bool | None,
    retry: RetryRound | None = None,
) -> RunRef:
    """Hand the run's root node to ``engine``; wait for the run if asked (or if the engine does).

    With ``retry``, the root of that retry round's tree (over the failed specs only).
    """
    from scythe.scatter_gather import ScatterGatherInput

    root = ScatterGatherInput(
        storage_uri=store.uri(),
        run_id=manifest.run_id,
        experiment=manifest.runnable or manifest.experiment,
        experiment_ref=manifest.function,
        n_specs=_tree_specs(manifest) if retry is None else retry.specs,
        recursion_map=manifest.recursion_map if retry is None else retry.recursion_map,
        round=0 if retry is None else retry.round,
    )
    ref = engine.submit_one(root) if manifest.kind == "single" else engine.submit(root)
    if wait if wait is not None else engine.waits_by_default():
        ref.result()
    return ref


def _tree_specs(manifest: RunManifest) -> int:
    return manifest.spec_count if manifest.tree_specs is None else manifest.tree_specs


def _store_of(storage: str | Path | Store | None, settings: StorageSettings | None) -> Store:
    if settings is not None and storage is not None:
        raise StorageURIError("pass storage= or storage_settings=, not both")
    if settings is not None:
        store = open_store(settings.resolved_uri())
        if isinstance(store, S3Store) and settings.ENDPOINT_URL:
            store = S3Store(store.bucket, store.prefix, settings.ENDPOINT_URL, settings.REGION)
        return remember_store(store)
    return _as_store(storage)


class BaseExperiment:
    """An experiment: a registered function and where its runs are stored.

    ``run_name`` names the experiment's folder in storage (default: the
    registered name); ``storage`` is a path, ``file://`` or ``s3://`` URI or a
    store (default: ``SCYTHE_STORAGE_URI``, else ``./scythe-data``).
    """

    def __init__(
        self,
        runnable: ExperimentRunnable | str,
        run_name: str | None = None,
        *,
        storage: str | Path | Store | None = None,
        storage_settings: StorageSettings | None = None,
    ) -> None:
        from scythe.registry import ExperimentRegistry, ExperimentRunnable, _is_hatchet_workflow

        if isinstance(runnable, str):  # a registered name, as scythe-engine 1.x accepted
            runnable = ExperimentRegistry.get_runnable(runnable)
        if _is_hatchet_workflow(runnable):  # an included Workflow: one spec per run, on Hatchet
            runnable = ExperimentRegistry.workflow_experiment(runnable)
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
        self._storage_settings = storage_settings
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = _store_of(self._storage, self._storage_settings)
        return self._store

    @property
    def base_id(self) -> str:
        """The experiment's folder name in storage (``run_name``, else the registered name)."""
        return self.name

    @property
    def prefix(self) -> str:
        """Where the experiment's versions are stored (a path or an ``s3://`` URI)."""
        return self.store.uri(self.name)

    def __repr__(self) -> str:
        return f"BaseExperiment({self.name!r}, runnable={self.runnable!r})"

    # ------------------------------------------------------------------ versions and runs

    def list_versions(self) -> list[VersionedExperiment]:
        """Versions with at least one run, oldest first (``.version`` is each one's ``SemVer``)."""
        from scythe.versions import SemVer

        found = sorted(
            SemVer.parse(v) for v in self.store.list_children(self.name) if SemVer.is_version(v)
        )
        return [VersionedExperiment(self, v) for v in found]

    def latest_version(self) -> VersionedExperiment | None:
        versions = self.list_versions()
        return versions[-1] if versions else None

    def version(self, version: SemVer | str) -> VersionedExperiment:
        from scythe.versions import SemVer

        return VersionedExperiment(
            self, version if isinstance(version, SemVer) else SemVer.parse(version)
        )

    def resolve_next_version(self, version: VersionBump | SemVer | str) -> SemVer:
        """The version an allocation with ``version`` gets (v1.0.0 when none is stored yet)."""
        from scythe.versions import resolve_version

        return resolve_version([v.version for v in self.list_versions()], version)

    @property
    def latest_run(self) -> ExperimentRun:
        """The newest run of the newest version; ``RunNotFoundError`` when there is none."""
        latest = self.latest_version()
        if latest is None:
            raise RunNotFoundError(f"experiment {self.name!r} has no runs in {self.store.uri()}")
        return latest.latest_run

    @property
    def latest_results(self) -> ResultTables:
        """The tables of :attr:`latest_run`, by name (``.results()`` reads them validated)."""
        return self.latest_run.list_results_files()

    def latest_results_for_version(self, version: SemVer | str) -> ResultTables:
        """The tables of the newest run of ``version``, by name."""
        return self.version(version).latest_run_results

    def check_spec_type(self, spec: Any) -> None:
        """Raise ``SpecValidationError`` unless ``spec`` is an instance of the input spec."""
        self.check_spec_types([spec])

    def check_spec_types(self, specs: Sequence[Any]) -> None:
        """Raise ``SpecValidationError`` naming every spec that is not of the input spec's type."""
        expected = self.runnable.input_spec
        problems = [
            (i, "<spec>", type(s).__name__, f"is a {type(s).__name__}, not a {expected.__name__}")
            for i, s in enumerate(specs)
            if not isinstance(s, expected)
        ]
        if problems:
            raise SpecValidationError.from_problems(
                f"{len(problems)} spec(s) of the wrong type", problems
            )

    # ------------------------------------------------------------------ allocation

    @overload
    def allocate(
        self,
        specs: ExperimentInputSpec,
        version: VersionBump | SemVer | str = ...,
        overwrite_sort_index: bool = ...,
        overwrite_experiment_id: bool = ...,
        recursion_map: RecursionMap | None = ...,
        s3_client: Any = ...,
        *,
        engine: str | Engine | None = ...,
        wait: bool | None = ...,
        max_failure_ratio: float | None = ...,
        reuse: ReuseSource | None = ...,
        allow_schema_change: bool = ...,
    ) -> tuple[ExperimentRun, SpecRunRef]: ...

    @overload
    def allocate(
        self,
        specs: Iterable[ExperimentInputSpec | dict[str, Any]],
        version: VersionBump | SemVer | str = ...,
        overwrite_sort_index: bool = ...,
        overwrite_experiment_id: bool = ...,
        recursion_map: RecursionMap | None = ...,
        s3_client: Any = ...,
        *,
        engine: str | Engine | None = ...,
        wait: bool | None = ...,
        max_failure_ratio: float | None = ...,
        reuse: ReuseSource | None = ...,
        allow_schema_change: bool = ...,
    ) -> tuple[ExperimentRun, RunRef]: ...

    def allocate(
        self,
        specs: ExperimentInputSpec | Iterable[ExperimentInputSpec | dict[str, Any]],
        version: VersionBump | SemVer | str = "bumpmajor",
        overwrite_sort_index: bool = True,
        overwrite_experiment_id: bool = True,
        recursion_map: RecursionMap | None = None,
        s3_client: Any = None,
        *,
        engine: str | Engine | None = None,
        wait: bool | None = None,
        max_failure_ratio: float | None = None,
        reuse: ReuseSource | None = None,
        allow_schema_change: bool = False,
    ) -> tuple[ExperimentRun, RunRef | SpecRunRef]:
        """Validate ``specs``, store them, and submit the run to an engine.

        A sequence of specs runs as a scatter/gather tree; ``ref.result()``
        returns the run's summary. One spec on its own is a versioned one-off
        run (same folder, manifest and tables, plus ``workflow_spec.yml``; no
        tree): ``ref.result()`` returns its output spec, or raises
        ``SpecFailedError``. Every invalid spec is reported in one
        ``SpecValidationError`` before anything is written; the caller's spec
        objects are never modified. ``version`` is a bump of the latest stored
        version (``bumpmajor`` by default, ``bumpminor``, ``bumppatch``,
        ``keep``) or an explicit ``vM.m.p``; the first version is v1.0.0.
        Without ``recursion_map`` the tree is sized for the engine's
        parallelism. ``s3_client`` is a boto3 client to reach S3 storage with.
        ``wait`` blocks until the run ends (default: the engine's choice: the
        local engine waits, Hatchet does not).

        Failure policy: by default every spec runs and a run with failures
        ends ``partial``. With ``max_failure_ratio`` (a share from 0 to 1)
        the run stops dispatching nodes once more than that share of its specs
        failed, commits what finished and ends ``failed`` with the reason
        (the Hatchet engine applies it when the run ends). Raise
        ``scythe.errors.NonRetryableError`` in the function to fail a spec
        without retries.

        Caching (opt-in): with ``reuse`` (an ``ExperimentRun``, a
        ``VersionedExperiment``, a run id, or a list of them, in the same
        storage) a spec whose inputs (ids excluded, files by content) match a
        spec that succeeded there is not run: its rows are copied. The
        manifest's ``reused`` says how many rows came from which run.

        Schema versioning: the compiled schema is compared with the one stored
        with the experiment's latest run. A breaking change (a removed column,
        another dtype, a tighter check, a new required input) needs
        ``bumpmajor``, an additive one (a new output, a new optional input, a
        looser check) at least ``bumpminor``; a smaller bump raises
        ``SchemaChangeError`` naming the changes, unless
        ``allow_schema_change=True``, which the manifest records
        (``schema_change``) with the changes.

        >>> import tempfile
        >>> from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry, LocalEngine
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
        >>> run, ref = experiment.allocate(Wall(r_value=5.0), engine=LocalEngine(slots=0))
        >>> ref.result().u_value, run.run_id.split("/")[1]
        (0.2, 'v2.0.0')
        >>> ExperimentRegistry.unregister("doctest_allocate")
        """
        from scythe.allocation import latest_run_schema, plan_allocation, write_run
        from scythe.versions import resolve_version

        if not overwrite_experiment_id:
            raise UnsupportedOptionError(
                "overwrite_experiment_id=False is not supported: every row of a run's tables "
                "carries the run's id as experiment_id"
            )
        from pydantic import BaseModel

        single = isinstance(specs, BaseModel | Mapping)  # one spec (or its fields), not a list
        run_engine = self._engine_for(engine, single)
        try:
            _prepare(run_engine, self.runnable, 1 if single else _count(specs))
            plan = plan_allocation(
                self.runnable,
                [specs] if single else specs,  # type: ignore[list-item]
                recursion_map=recursion_map,
                overwrite_sort_index=overwrite_sort_index,
                parallelism=run_engine.parallelism,
                single=single,
                max_failure_ratio=max_failure_ratio,
                previous=latest_run_schema(self.store, self.name),
                version=version,
                allow_schema_change=allow_schema_change,
            )
            semver = resolve_version([v.version for v in self.list_versions()], version)
            store = self.store if s3_client is None else self._store_with_client(s3_client)
            if reuse is None:
                manifest = write_run(
                    store, plan, name=self.name, version=semver, engine=run_engine.name
                )
            else:
                manifest = self._write_reusing(store, plan, semver, run_engine, reuse)
            run = ExperimentRun(manifest.run_id, store=store, experiment=self.runnable)
            ref = _submit(run_engine, store, manifest, wait=wait)
        except BaseException:
            _unprepare(run_engine)
            raise
        return (run, SpecRunRef(run, ref)) if single else (run, ref)

    def _engine_for(self, engine: str | Engine | None, single: bool) -> Engine:
        """The engine a run of this experiment goes to, checked to be able to run it."""
        from scythe.engines import get_engine

        if self.runnable.workflow is not None and not single:
            raise ExperimentDefinitionError(
                f"{self.name!r} is a Hatchet workflow, which runs one spec per allocation: "
                "pass one spec, or register a function to run batches"
            )
        if engine is None and self.runnable.workflow is not None:
            engine = "hatchet"  # a workflow runs on Hatchet whatever SCYTHE_ENGINE says
        run_engine = get_engine(engine)
        run_engine.check(self.runnable)
        return run_engine

    def _write_reusing(
        self, store: Store, plan: AllocationPlan, semver: SemVer, engine: Engine, reuse: Any
    ) -> RunManifest:
        """Write the run, leaving out of its tree the specs whose rows ``reuse`` already has."""
        from scythe.allocation import write_run
        from scythe.manifest import update_manifest
        from scythe.reuse import plan_reuse, stage_reused

        sources = self._reuse_sources(reuse)
        by_spec = plan.artifacts.by_spec
        matches = plan_reuse(store, plan.schema, plan.specs, by_spec, sources)
        manifest = write_run(
            store, plan, name=self.name, version=semver, engine=engine.name, skip=matches.reused
        )
        if not matches.matches.height:
            return manifest
        layout = RunLayout(manifest.run_id)
        specs = tables.read_table(store, layout.table(SPECS), plan.schema.specs, validate=False)
        stage_reused(store, layout, plan.schema, specs, matches)
        return update_manifest(store, layout, reused=matches.counts())

    def _reuse_sources(self, reuse: Any) -> list[RunLayout]:
        """The runs to reuse rows from, newest first, checked to be in this storage."""
        items = reuse if isinstance(reuse, list | tuple) else [reuse]
        runs: list[ExperimentRun] = []
        for item in items:
            if isinstance(item, VersionedExperiment):
                runs.extend(reversed(item.list_runs()))
            elif isinstance(item, ExperimentRun):
                runs.append(item)
            elif isinstance(item, str):
                runs.append(ExperimentRun.open(item, storage=self.store))
            else:
                raise RunOptionError(
                    f"reuse={item!r}: give an ExperimentRun, a VersionedExperiment or a run id"
                )
        for run in runs:
            if run.store.uri() != self.store.uri():
                raise RunOptionError(
                    f"reuse: run {run.run_id} is stored in {run.store.uri()}, not in "
                    f"{self.store.uri()}: rows are copied within one storage only"
                )
        return [run.layout for run in runs]

    def _store_with_client(self, client: Any) -> Store:
        store = self.store
        if not isinstance(store, S3Store):
            raise StorageURIError(
                f"s3_client was given but runs are stored in {store.uri()}: point "
                "SCYTHE_STORAGE_URI (or SCYTHE_STORAGE_BUCKET) at an S3 bucket"
            )
        return remember_store(store.with_client(client))


class SpecRunRef:
    """Handle on a one-off run of one spec: ``result()`` returns the spec's output.

    The output is rebuilt from the run's tables (what was stored is what you
    get back); a spec that failed raises ``SpecFailedError`` with its
    failures row's error type and message.
    """

    def __init__(self, run: ExperimentRun, ref: RunRef) -> None:
        self.run = run
        self.run_id = run.run_id
        self._ref = ref

    @property
    def workflow_run_id(self) -> str | None:
        """The engine's id of the run (Hatchet's workflow run id; None on the local engine)."""
        return getattr(self._ref, "workflow_run_id", None)

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the run and return its output spec (a workflow's own output, for workflows)."""
        self._ref.result(timeout)
        output = self.run.results().output(self.run.experiment.output_spec)  # raises if failed
        if self.run.experiment.workflow is not None:
            return getattr(self._ref, "workflow_output", None)
        return output

    def summary(self, timeout: float | None = None) -> RunSummary:
        """Wait for the run and return its summary (status, counts, message)."""
        return self._ref.result(timeout)

    def done(self) -> bool:
        return self._ref.done()

    def cancel(self) -> None:
        self._ref.cancel()

    def __repr__(self) -> str:
        return f"<SpecRunRef {self.run_id}>"


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

    @property
    def base_experiment(self) -> BaseExperiment:
        return self.experiment

    @property
    def base_id(self) -> str:
        """``<experiment>/<vM.m.p>``."""
        return self.prefix

    @property
    def latest_run(self) -> ExperimentRun:
        """The newest run of this version; ``RunNotFoundError`` when there is none."""
        runs = self.list_runs()
        if not runs:
            raise RunNotFoundError(
                f"version {self.prefix} has no runs in {self.experiment.store.uri()}"
            )
        return runs[-1]

    @property
    def latest_run_results(self) -> ResultTables:
        """The tables of :attr:`latest_run`, by name."""
        return self.latest_run.list_results_files()

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
        self,
        run_id: str,
        *,
        store: Store,
        experiment: ExperimentRunnable | None = None,
        repair: bool = False,
    ) -> None:
        self.run_id = run_id
        self.store = store
        self.layout = RunLayout(run_id)
        self._experiment = experiment
        self.repair = repair

    @classmethod
    def open(
        cls, run_id: str, *, storage: str | Path | Store | None = None, repair: bool = False
    ) -> ExperimentRun:
        """Open a stored run by its id, e.g. from another process; needs only the storage.

        A run whose ``manifest.yml`` is corrupt raises ``ManifestError`` on
        ``status()`` and ``results()``; opened with ``repair=True`` its
        results are read from the tables (with a ``CorruptManifestWarning``)
        and its status is counted from them. The manifest file is left as it is.

        >>> import tempfile
        >>> from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry, LocalEngine
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
        run = cls(run_id.strip("/"), store=store, repair=repair)
        if not store.exists(run.layout.manifest):
            raise RunNotFoundError(f"no run {run_id!r} in {store.uri()} (no {run.layout.manifest})")
        return run

    @property
    def experiment_id(self) -> str:
        return self.run_id

    @property
    def uri(self) -> str:
        return self.store.uri(self.run_id)

    prefix = uri

    def list_results_files(self) -> ResultTables:
        """The run's result tables by name, as Delta table URIs (``.results()`` reads them)."""
        return ResultTables(self.store, self.layout)

    def table_uri(self, name: str) -> str:
        """URI of a Delta table of the run (``specs`` or a result table), for deltalake or polars."""
        return self.store.table_uri(self.layout.table(name))

    @property
    def manifest(self) -> RunManifest:
        from scythe.manifest import read_manifest

        return read_manifest(self.store, self.layout)

    @property
    def experiment(self) -> ExperimentRunnable:
        """The run's registered experiment, imported from its reference if needed."""
        if self._experiment is None:
            from scythe.nodes import resolve_experiment

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
        """Status and counts from the manifest (complete, partial, running...).

        A ``running`` run whose driver stopped writing its heartbeat (killed,
        or its machine lost) is ``interrupted``: resume it.
        """
        manifest = self._readable_manifest()
        if manifest is None:
            return self._status_from_tables()
        status = manifest.status
        if status == "running" and not driver_alive(self.store, self.layout):
            status = "interrupted"
        return RunStatusCounts(status, manifest.done, manifest.failed, manifest.spec_count)

    def _readable_manifest(self) -> RunManifest | None:
        """The manifest; None (with a warning) if it is corrupt and the run was opened to repair."""
        return self._unless_corrupt(lambda: self.manifest)

    def _readable_status(self) -> str:
        """The status the manifest states, for reading the results: only the YAML and its
        ``status`` are needed (and no pydantic); any other status is checked in full (see
        :attr:`manifest`). A corrupt manifest of a run opened to repair counts as complete."""
        status = self._unless_corrupt(
            lambda: (
                stated_status(read_manifest_data(self.store, self.layout)) or self.manifest.status
            )
        )
        return "complete" if status is None else status

    def _unless_corrupt(self, read: Callable[[], T]) -> T | None:
        """``read()``; None (with a warning) for a corrupt manifest of a run opened to repair."""
        try:
            return read()
        except ManifestError as err:
            if not self.repair:
                raise
            warnings.warn(f"{err}; reading the run's tables", CorruptManifestWarning, stacklevel=4)
            return None

    def _status_from_tables(self) -> RunStatusCounts:
        """Counts from what the tables hold (for a run whose manifest cannot be read)."""
        results = Results(self.store, self.layout, validate=False)
        total = results.table(SPECS).height
        done, failed = results.scalars.height, results.failures.height
        status = (
            "complete" if done == total else "partial" if done + failed == total else "incomplete"
        )
        return RunStatusCounts(status, done, failed, total)

    def results(self, *, validate: bool = True) -> Results:
        """The run's results: validated polars frames in ``sort_index`` order.

        Tables are checked against the schema stored with the run. Warns
        (``UnfinishedRunWarning``) when the run has not finished: its tables
        hold only what the root has committed so far.

        >>> import tempfile
        >>> from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry, LocalEngine
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
        status = self._readable_status()
        if status not in ("complete", "partial", "failed"):
            warnings.warn(
                f"run {self.run_id} is {status}: its results are not all committed yet",
                UnfinishedRunWarning,
                stacklevel=2,
            )
        return Results(self.store, self.layout, validate=validate)

    def resume(
        self,
        *,
        engine: str | Engine | None = None,
        wait: bool | None = None,
        max_failure_ratio: float | _Keep | None = KEEP,
        retry_failed: bool = False,
    ) -> RunRef:
        """Run the nodes that have not finished (after a cancel, a crash or a policy stop).

        With ``retry_failed`` the specs that have a ``failures`` row run again
        (all of them, once more), in a tree of their own: a spec that now
        succeeds gets its rows, and the ``failures`` table is replaced by the
        rows of the specs that failed again, in one new table version each
        (earlier versions keep what they showed). It needs a run whose every
        spec has a row: resume it without ``retry_failed`` first.

        Nodes that finished are not run again and no row is committed twice,
        so resuming a complete run only checks it again. The run keeps its
        failure policy unless ``max_failure_ratio`` is given (``1.0`` or
        ``None`` lifts it, to finish a run the policy stopped); the new value
        is recorded in the manifest.

        >>> import tempfile
        >>> from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry, LocalEngine
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
        from scythe.allocation import check_failure_ratio
        from scythe.engines import get_engine
        from scythe.manifest import update_manifest

        manifest = self.manifest
        keep_policy = isinstance(max_failure_ratio, _Keep)
        if not keep_policy:
            check_failure_ratio(max_failure_ratio)
        self.experiment  # noqa: B018 - importable here, or ExperimentImportError before any change
        self._check_tables()
        if not keep_policy:
            manifest = update_manifest(self.store, self.layout, max_failure_ratio=max_failure_ratio)
        run_engine = get_engine(engine)
        retry = manifest.retry
        if retry_failed and (retry is None or self._retry_committed(retry)):
            retry = self._start_retry(manifest, run_engine)
            if retry is None:  # nothing failed: check the run again
                return _submit(run_engine, self.store, manifest, wait=wait)
            manifest = update_manifest(self.store, self.layout, retry=retry)
        # After a retry, the latest round is what a resume finishes (or checks again).
        return _submit(run_engine, self.store, manifest, wait=wait, retry=retry)

    def _retry_committed(self, retry: RetryRound) -> bool:
        from scythe.nodes import root_transaction

        transaction = root_transaction(self.run_id, retry.round)
        return tables.holds_transaction(self.store, self.layout.table(FAILURES), transaction)

    def _start_retry(self, manifest: RunManifest, engine: Engine) -> RetryRound | None:
        """Write the tree of a new retry round over the failed specs (None if none failed)."""
        if manifest.status not in ("complete", "partial", "failed") or manifest.missing:
            raise RunOptionError(
                f"run {self.run_id} is {manifest.status} with {manifest.missing} spec(s) not "
                "run: resume() it first, then resume(retry_failed=True) retries its failed specs"
            )
        from scythe.allocation import write_retry_round

        failed = Results(self.store, self.layout, validate=False).failures
        if not failed.height:
            return None
        return write_retry_round(
            self.store,
            self.layout,
            self.table_schemas()[SPECS],
            failed.get_column("sort_index").to_list(),
            round=(manifest.retry.round if manifest.retry else 0) + 1,
            parallelism=engine.parallelism,
        )

    def _check_tables(self) -> None:
        """``TableMissingError`` if a table the run's schema names is gone from storage."""
        missing = [
            name
            for name in [SPECS, *self.table_schemas()]
            if not tables.table_exists(self.store, self.layout.table(name))
        ]
        if missing:
            raise TableMissingError(
                f"run {self.run_id} cannot be resumed: its table(s) {missing} are missing from "
                f"{self.store.uri(self.run_id)}; the manifest is left as it was"
            )

    def __repr__(self) -> str:
        return f"ExperimentRun({self.run_id!r})"
