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

import functools
import hashlib
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
from deltalake import write_deltalake

from scythe import tables
from scythe.base import ExperimentInputSpec, parse_specs
from scythe.batches import check_specs_frame, specs_frame, write_batch
from scythe.engines import Engine, RunRef, get_engine
from scythe.engines.local import LocalEngine
from scythe.errors import RunNotFoundError, SpecValidationError
from scythe.layout import (
    RunLayout,
    RunManifest,
    dump_yaml,
    load_yaml,
    read_manifest,
    run_time_folder,
)
from scythe.leaf import uri_of
from scythe.nodes import ScatterGatherInput, resolve_experiment
from scythe.registry import ExperimentRunnable
from scythe.scatter_gather import MAX_DEPTH_LIMIT, RecursionMap, iter_terminal_nodes
from scythe.schema import (
    FAILURES,
    FILE_REFS,
    SCALARS,
    SPECS,
    ExperimentSchema,
    TableSchema,
    compile_experiment,
    computed_features_of,
    experiment_io_spec,
    feature_types,
    table_from_dict,
    table_to_dict,
    to_pandas,
)
from scythe.storage import Store, open_store, remember_store
from scythe.versions import SemVer, VersionBump, resolve_version

__all__ = ["BaseExperiment", "ExperimentRun", "LocalEngine", "Results", "VersionedExperiment"]

MAX_TERMINAL_SPECS = 1000
# Scalar-only outputs are a few values per spec: bigger nodes, fewer fixed costs.
MAX_TERMINAL_SPECS_SCALAR_ONLY = 10_000
# Threads writing a new run's tables and batches (see BaseExperiment._write_tables).
WRITE_THREADS = 8


class UnfinishedRunWarning(UserWarning):
    """Results were read from a run that is not complete or partial."""


def default_recursion_map(
    n_specs: int, parallelism: int, *, max_factor: int = 100, max_node: int = MAX_TERMINAL_SPECS
) -> RecursionMap:
    """A tree with enough terminal nodes to keep ``parallelism`` workers busy.

    Terminal nodes hold about ``n / (4 · parallelism)`` specs (at most
    ``max_node``), so a slow node does not leave the other workers idle at the
    end, while each node's fixed costs (validation, one file per table) stay
    amortised.
    The tree is as shallow as a branching factor of at most ``max_factor`` allows.

    >>> default_recursion_map(1000, 2)
    RecursionMap(factor=8, max_depth=1, path=())
    >>> default_recursion_map(1_000_000, 2)
    RecursionMap(factor=32, max_depth=2, path=())
    >>> default_recursion_map(8, 8)
    RecursionMap(factor=7, max_depth=1, path=())
    """
    target = max(1, min(max_node, math.ceil(n_specs / (4 * max(parallelism, 1)))))
    nodes = math.ceil(n_specs / target)
    if nodes <= 1:
        return RecursionMap(factor=max_factor, max_depth=0)
    depth = 1
    while math.ceil(nodes ** (1 / depth)) > max_factor and depth < MAX_DEPTH_LIMIT:
        depth += 1
    # A node with n <= factor specs is terminal: stay below the node's size.
    factor = max(2, min(math.ceil(nodes ** (1 / depth)), n_specs - 1))
    return RecursionMap(factor=factor, max_depth=depth)


def _as_store(storage: str | Path | Store | None) -> Store:
    store = (
        storage
        if isinstance(storage, Store)
        else open_store(None if storage is None else str(storage))
    )
    return remember_store(store)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:32]


@dataclass
class _Artifacts:
    """Local input files of an allocation: one upload per distinct (field, content, name)."""

    uploads: dict[tuple[str, str, str], Path] = field(default_factory=dict)
    by_spec: list[dict[str, tuple[str, str, str]]] = field(default_factory=list)  # [] if no fields


def _scan_artifacts(specs: Sequence[ExperimentInputSpec], fields: tuple[str, ...]) -> _Artifacts:
    """Hash every local file input, reporting missing files for all specs at once."""
    found = _Artifacts()
    if not fields:
        return found
    problems: list[tuple[int | None, str, object, str]] = []
    digests: dict[Path, str] = {}
    for i, spec in enumerate(specs):
        entry: dict[str, tuple[str, str, str]] = {}
        for name in fields:
            value = getattr(spec, name)
            if not isinstance(value, Path):
                continue
            path = value.expanduser().absolute()
            if not path.is_file():
                problems.append((i, name, str(value), "file does not exist"))
                continue
            if path not in digests:
                digests[path] = _file_digest(path)
            key = (name, digests[path], path.name)
            found.uploads.setdefault(key, path)
            entry[name] = key
        found.by_spec.append(entry)
    if problems:
        raise SpecValidationError.from_problems(
            f"{len(problems)} input file(s) not found", problems
        )
    return found


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
            from scythe.errors import RegistryError

            raise RegistryError(
                f"runnable must be registered with @ExperimentRegistry.Register(), got {runnable!r}"
            )
        self.runnable = runnable
        self.name = run_name or runnable.name
        if "/" in self.name or not self.name.strip():
            raise SpecValidationError(
                f"experiment name {self.name!r} must be non-empty and contain no '/'"
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
        ``wait`` blocks until the run ends (default: the engine's choice, which
        is to wait for the local engine). Returns ``(run, ref)``.
        """
        runnable = self.runnable
        parsed = parse_specs(runnable.input_spec, specs)
        if not parsed:
            raise SpecValidationError(f"no specs to allocate for {self.name!r}")
        if overwrite_sort_index:
            sort_index = list(range(len(parsed)))
        else:
            _check_unique_sort_index(parsed)
            sort_index = [s.sort_index for s in parsed]
        feature_rows = computed_features_of(parsed)
        features = feature_types(feature_rows)
        schema = compile_experiment(
            runnable.input_spec, runnable.output_spec, computed_features=features
        )
        frame = specs_frame(parsed, schema, sort_index, feature_rows)
        check_specs_frame(frame, schema)
        artifacts = _scan_artifacts(parsed, schema.input_file_fields)
        run_engine = get_engine(engine)
        check = getattr(run_engine, "check", None)
        if check is not None:
            check(runnable)
        parallelism = getattr(run_engine, "slots", 0) or 1
        max_node = MAX_TERMINAL_SPECS if schema.dataframes else MAX_TERMINAL_SPECS_SCALAR_ONLY
        rmap = recursion_map or default_recursion_map(len(parsed), parallelism, max_node=max_node)
        if rmap.path:
            raise SpecValidationError(
                f"recursion_map.path must be empty at allocation, got {rmap.path}"
            )

        store = self.store
        semver = resolve_version(self.list_versions(), version)
        manifest = self._claim_run_folder(
            store, semver, runnable, len(parsed), rmap, features, run_engine.name
        )
        layout = RunLayout(manifest.run_id)
        uploaded = self._upload_artifacts(store, layout, artifacts)
        frame = frame.with_columns(pl.lit(manifest.run_id).alias("experiment_id"))
        for name in schema.input_file_fields:
            if any(name in entry for entry in artifacts.by_spec):
                column = frame.get_column(name).to_list()
                for i, entry in enumerate(artifacts.by_spec):
                    if name in entry:
                        column[i] = uploaded[entry[name]]
                frame = frame.with_columns(pl.Series(name, column, dtype=pl.String))
        self._write_tables(store, layout, schema, frame.sort("sort_index"), rmap)
        store.put_bytes(
            layout.io_spec,
            dump_yaml(experiment_io_spec(runnable.input_spec, runnable.output_spec)),
        )
        listing: dict[str, dict[str, str]] = {}
        for key, path in artifacts.uploads.items():
            listing.setdefault(key[0], {})[str(path)] = uploaded[key]
        store.put_bytes(layout.input_artifacts, dump_yaml(listing))
        stored = {
            name: table_to_dict(table)
            for name, table in {"specs": schema.specs, **schema.result_tables}.items()
        }
        store.put_bytes(layout.table_schemas, dump_yaml(stored))

        run = ExperimentRun(manifest.run_id, store=store, experiment=runnable)
        root = ScatterGatherInput(
            storage_uri=store.uri(),
            run_id=manifest.run_id,
            experiment=runnable.name,
            experiment_ref=runnable.reference,
            n_specs=len(parsed),
            recursion_map=rmap,
        )
        ref = run_engine.submit(root, runnable)
        if wait if wait is not None else run_engine.waits_by_default():
            ref.result()
        return run, ref

    def _claim_run_folder(
        self,
        store: Store,
        semver: SemVer,
        runnable: ExperimentRunnable,
        n_specs: int,
        rmap: RecursionMap,
        features: dict[str, type],
        engine: str,
    ) -> RunManifest:
        """Write ``manifest.yml`` into a fresh time folder; put-if-absent makes the folder ours."""
        for _ in range(100):
            now = datetime.now(UTC)
            run_id = f"{self.name}/{semver}/{run_time_folder(now)}"
            manifest = RunManifest(
                run_id=run_id,
                experiment=self.name,
                version=str(semver),
                created_at=now,
                storage_uri=store.uri(),
                engine=engine,
                function=runnable.reference,
                input_spec=f"{runnable.input_spec.__module__}:{runnable.input_spec.__qualname__}",
                output_spec=f"{runnable.output_spec.__module__}:{runnable.output_spec.__qualname__}",
                spec_count=n_specs,
                recursion_map=rmap,
                computed_features={k: v.__name__ for k, v in features.items()},
            )
            if store.put_if_absent(RunLayout(run_id).manifest, manifest.to_yaml()):
                return manifest
            time.sleep(1e-6)
        raise RunNotFoundError(f"could not claim a run folder for {self.name}/{semver}")

    @staticmethod
    def _upload_artifacts(
        store: Store, layout: RunLayout, artifacts: _Artifacts
    ) -> dict[tuple[str, str, str], str]:
        uris = {}
        for key, path in artifacts.uploads.items():
            field_name, digest, name = key
            target = layout.artifact(field_name, digest, name)
            store.upload_file(path, target)
            uris[key] = uri_of(store, target)
        return uris

    @staticmethod
    def _write_tables(
        store: Store,
        layout: RunLayout,
        schema: ExperimentSchema,
        frame: pl.DataFrame,
        rmap: RecursionMap,
    ) -> None:
        """Write the ``specs`` table, one batch per terminal node and the empty result tables.

        The writes are independent, so they run on a few threads: Parquet
        encoding and Delta commits release the GIL, and on S3 each one waits on
        the network.
        """
        jobs: list[Callable[[], object]] = [
            functools.partial(
                write_deltalake,
                store.table_uri(layout.specs),
                frame.to_arrow().cast(schema.specs.arrow_schema()),
                mode="error",
                storage_options=store.storage_options(),
                name="specs",
            )
        ]
        for node in iter_terminal_nodes(frame.height, rmap):
            positions = node.positions
            batch = frame.clear() if not len(positions) else frame.gather(list(positions))
            jobs.append(functools.partial(write_batch, store, layout.batch(node.name), batch))
        for name, table in schema.result_tables.items():
            jobs.append(functools.partial(tables.create_table, store, layout.table(name), table))
        with ThreadPoolExecutor(max_workers=min(WRITE_THREADS, len(jobs))) as pool:
            for future in [pool.submit(job) for job in jobs]:
                future.result()


def _check_unique_sort_index(specs: Sequence[ExperimentInputSpec]) -> None:
    seen: dict[int, int] = {}
    problems: list[tuple[int | None, str, object, str]] = []
    for i, spec in enumerate(specs):
        if spec.sort_index in seen:
            problems.append(
                (i, "sort_index", spec.sort_index, f"repeats spec {seen[spec.sort_index]}'s")
            )
        seen.setdefault(spec.sort_index, i)
    if problems:
        raise SpecValidationError.from_problems(
            f"{len(problems)} repeated sort_index value(s) "
            "(pass overwrite_sort_index=True to renumber)",
            problems,
        )


class VersionedExperiment:
    """One version of an experiment and its runs."""

    def __init__(self, experiment: BaseExperiment, version: SemVer) -> None:
        self.experiment = experiment
        self.version = version

    @property
    def prefix(self) -> str:
        return f"{self.experiment.name}/{self.version}"

    def list_runs(self) -> list[ExperimentRun]:
        """Runs of this version, oldest first."""
        store = self.experiment.store
        return [
            ExperimentRun(
                f"{self.prefix}/{folder}", store=store, experiment=self.experiment.runnable
            )
            for folder in sorted(store.list_children(self.prefix))
            if store.exists(RunLayout(f"{self.prefix}/{folder}").manifest)
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
        """Open a stored run by its id, e.g. from another process."""
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
        key = self.layout.specs if name == SPECS else self.layout.table(name)
        return self.store.table_uri(key)

    @property
    def manifest(self) -> RunManifest:
        return read_manifest(self.store, self.layout)

    @property
    def experiment(self) -> ExperimentRunnable:
        if self._experiment is None:
            manifest = self.manifest
            self._experiment = resolve_experiment(manifest.experiment, manifest.function)
        return self._experiment

    def table_schemas(self) -> dict[str, TableSchema]:
        """The schemas the run's tables were written with (``table_schemas.yml``), by table name.

        Read from storage, so results open without importing the experiment's code.
        """
        stored = load_yaml(self.store.get_bytes(self.layout.table_schemas))
        return {name: table_from_dict(data) for name, data in stored.items()}

    def status(self) -> RunStatusCounts:
        """Status and counts from the manifest (complete, partial, running...)."""
        manifest = self.manifest
        return RunStatusCounts(manifest.status, manifest.done, manifest.failed, manifest.spec_count)

    def results(self, *, validate: bool = True) -> Results:
        """The run's results: validated polars frames in ``sort_index`` order.

        Warns (``UnfinishedRunWarning``) when the run has not finished: its tables
        hold only what the root has committed so far.
        """
        status = self.manifest.status
        if status not in ("complete", "partial"):
            warnings.warn(
                f"run {self.run_id} is {status}: its results are not all committed yet",
                UnfinishedRunWarning,
                stacklevel=2,
            )
        return Results(self, validate=validate)

    def resume(self, *, engine: str | Engine | None = None, wait: bool | None = None) -> RunRef:
        """Run the nodes that have not finished (after a cancel or a crash) and finalize again."""
        manifest = self.manifest
        run_engine = get_engine(engine)
        root = ScatterGatherInput(
            storage_uri=self.store.uri(),
            run_id=self.run_id,
            experiment=manifest.experiment,
            experiment_ref=manifest.function,
            n_specs=manifest.spec_count,
            recursion_map=manifest.recursion_map,
        )
        ref = run_engine.submit(root, self.experiment)
        if wait if wait is not None else run_engine.waits_by_default():
            ref.result()
        return ref

    def __repr__(self) -> str:
        return f"ExperimentRun({self.run_id!r})"


class Results:
    """A run's result tables, read (and validated) on first access."""

    def __init__(self, run: ExperimentRun, *, validate: bool = True) -> None:
        self.run = run
        self.schemas = run.table_schemas()
        self.validate = validate
        self._frames: dict[str, pl.DataFrame] = {}

    def schema(self, name: str) -> TableSchema:
        try:
            return self.schemas[name]
        except KeyError:
            raise KeyError(
                f"run {self.run.run_id} has no table {name!r}; tables: {sorted(self.schemas)}"
            ) from None

    @property
    def frame_outputs(self) -> list[str]:
        """Names of the run's dataframe outputs."""
        return [n for n in self.schemas if n not in (SPECS, SCALARS, FILE_REFS, FAILURES)]

    def table(self, name: str) -> pl.DataFrame:
        """The table ``name`` as a polars frame (read once, then cached)."""
        if name not in self._frames:
            table = self.schema(name)
            key = self.run.layout.specs if name == SPECS else self.run.layout.table(name)
            self._frames[name] = tables.read_table(
                self.run.store, key, table, validate=self.validate
            )
        return self._frames[name]

    __getitem__ = table

    @property
    def scalars(self) -> pl.DataFrame:
        return self.table(SCALARS)

    @property
    def file_refs(self) -> pl.DataFrame:
        return self.table(FILE_REFS)

    @property
    def failures(self) -> pl.DataFrame:
        return self.table(FAILURES)

    @property
    def dataframes(self) -> _LazyFrames:
        return _LazyFrames(self)

    @property
    def spec_count(self) -> int:
        return self.run.manifest.spec_count

    def to_pandas(self, name: str = SCALARS) -> pd.DataFrame:
        """A table as pandas, indexed by the input ``MultiIndex``."""
        return to_pandas(self.table(name), self.schema(name))

    def __repr__(self) -> str:
        return f"<Results of {self.run.run_id}: tables {sorted(self.schemas)}>"


class _LazyFrames:
    def __init__(self, results: Results) -> None:
        self._results = results

    def __getitem__(self, name: str) -> pl.DataFrame:
        if name not in self._results.frame_outputs:
            raise KeyError(f"no dataframe output {name!r}; outputs: {self._results.frame_outputs}")
        return self._results.table(name)

    def keys(self) -> list[str]:
        return self._results.frame_outputs

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())
