"""What a store holds: its experiments, their versions and their runs, newest first.

A :class:`Catalog` needs only the storage URI (a path, ``file://`` or
``s3://bucket/prefix``), so it works from a fresh process, a notebook or CI:
it lists the run folders and reads each run's ``manifest.yml``.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from analysis.errors import AmbiguousRunError
from scythe.errors import ManifestError, ObjectNotFoundError, RunNotFoundError, RunOptionError
from scythe.experiments import BaseExperiment, ExperimentRun, VersionedExperiment
from scythe.layout import RunLayout, driver_alive, run_id_of
from scythe.manifest import read_manifest
from scythe.storage import Store, open_store, remember_store
from scythe.versions import SemVer

StorageLike = str | Path | Store | None
RunsLike = Any  # a run, a RunInfo, a run id or prefix, an experiment or version, or a list
_TIME_FORMAT = "%Y-%m-%dT%H-%M-%S.%fZ"
_SHOWN = 5  # run ids listed in an error


def as_store(storage: StorageLike) -> Store:
    """The store at ``storage`` (a path, URI or store; None: the configured one).

    >>> as_store("s3://my-bucket/scythe").uri()
    's3://my-bucket/scythe'
    """
    if isinstance(storage, Store):
        return storage
    return remember_store(open_store(None if storage is None else str(storage)))


@dataclass(frozen=True)
class RunInfo:
    """One run as the catalog lists it: its id, status, counts and times."""

    run_id: str
    experiment: str
    version: str
    created_at: datetime
    status: str
    spec_count: int
    done: int
    failed: int
    missing: int
    finished_at: datetime | None = None
    engine: str | None = None
    message: str | None = None
    store: Store | None = field(default=None, repr=False, compare=False)

    @property
    def duration(self) -> timedelta | None:
        """From allocation to the end of the run (None while it has not ended)."""
        return None if self.finished_at is None else self.finished_at - self.created_at

    def open(self) -> ExperimentRun:
        """The run itself (``results()``, ``status()``, ``manifest``)."""
        if self.store is None:
            raise RunOptionError(f"run {self.run_id}: this RunInfo was made without its store")
        return ExperimentRun.open(self.run_id, storage=self.store)

    def row(self) -> dict[str, Any]:
        duration = self.duration
        return {
            "run_id": self.run_id,
            "experiment": self.experiment,
            "version": self.version,
            "status": self.status,
            "specs": self.spec_count,
            "done": self.done,
            "failed": self.failed,
            "missing": self.missing,
            "created_at": self.created_at,
            "duration_s": None if duration is None else duration.total_seconds(),
        }


def _time_of(folder: str) -> datetime:
    try:
        return datetime.strptime(folder, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def _read_run_info(store: Store, run_id: str) -> RunInfo | None:
    """The catalog entry of one run; None when the folder holds no manifest (yet)."""
    layout = RunLayout(run_id)
    experiment, version, folder = run_id.split("/")
    try:
        manifest = read_manifest(store, layout)
    except ObjectNotFoundError:
        return None
    except ManifestError as err:
        return RunInfo(
            run_id, experiment, version, _time_of(folder), "unreadable", 0, 0, 0, 0,
            message=str(err), store=store,
        )  # fmt: skip
    status = manifest.status
    if status == "running" and not driver_alive(store, layout):
        status = "interrupted"
    return RunInfo(
        run_id=run_id,
        experiment=experiment,
        version=version,
        created_at=manifest.created_at,
        status=status,
        spec_count=manifest.spec_count,
        done=manifest.done,
        failed=manifest.failed,
        missing=manifest.missing,
        finished_at=manifest.finished_at,
        engine=manifest.engine,
        message=manifest.message,
        store=store,
    )


class Catalog:
    """The experiments, versions and runs in a store, newest first.

    ``storage`` is a path, a ``file://`` or ``s3://bucket/prefix`` URI or a
    store (default: ``SCYTHE_STORAGE_URI``, else ``./scythe-data``). The
    listing is read on first use; :meth:`refresh` reads it again.

    >>> import tempfile
    >>> from scythe import (BaseExperiment, ExperimentInputSpec, ExperimentOutputSpec,
    ...                     ExperimentRegistry, LocalEngine)
    >>> class Wall(ExperimentInputSpec):
    ...     r_value: float
    >>> class Loss(ExperimentOutputSpec):
    ...     u_value: float
    >>> @ExperimentRegistry.Register(name="doctest_catalog")
    ... def conduct(spec: Wall) -> Loss:
    ...     return Loss(u_value=1 / spec.r_value)
    >>> storage = tempfile.mkdtemp()
    >>> run, _ = BaseExperiment(conduct, storage=storage).allocate(
    ...     [Wall(r_value=2.0), Wall(r_value=4.0)], engine=LocalEngine(slots=0))
    >>> catalog = Catalog(storage)
    >>> [(info.experiment, info.version, info.status, info.done) for info in catalog]
    [('doctest_catalog', 'v1.0.0', 'complete', 2)]
    >>> catalog.run(run.run_id[:-5]).run_id == run.run_id        # a prefix is enough
    True
    >>> len(catalog.runs("doctest_catalog", status="complete")), catalog.versions("doctest_catalog")
    (1, ['v1.0.0'])
    >>> ExperimentRegistry.unregister("doctest_catalog")
    """

    def __init__(self, storage: StorageLike = None) -> None:
        self.store = as_store(storage)
        self._infos: list[RunInfo] | None = None

    def refresh(self) -> Catalog:
        """Forget the listing: the next use lists the store again."""
        self._infos = None
        return self

    def _run_ids(self) -> Iterator[str]:
        for experiment in self.store.list_children(""):
            for version in self.store.list_children(experiment):
                if not SemVer.is_version(version):
                    continue
                for folder in self.store.list_children(f"{experiment}/{version}"):
                    yield run_id_of(experiment, version, folder)

    @property
    def infos(self) -> list[RunInfo]:
        """Every run, newest first."""
        if self._infos is None:
            run_ids = list(self._run_ids())
            # One manifest read per run: in parallel, since each is a round trip on S3.
            with ThreadPoolExecutor(max_workers=min(16, len(run_ids) or 1)) as pool:
                found = list(pool.map(lambda run_id: _read_run_info(self.store, run_id), run_ids))
            self._infos = sorted(
                (info for info in found if info is not None),
                key=lambda info: (info.created_at, info.run_id),
                reverse=True,
            )
        return self._infos

    def runs(
        self, experiment: str | None = None, *, version: str | None = None,
        status: str | Sequence[str] | None = None,
    ) -> list[RunInfo]:  # fmt: skip
        """Runs newest first, of one experiment, one version and/or with a status."""
        statuses = [status] if isinstance(status, str) else status
        return [
            info
            for info in self.infos
            if (experiment is None or info.experiment == experiment)
            and (version is None or info.version == version)
            and (statuses is None or info.status in statuses)
        ]

    def experiments(self) -> list[str]:
        """Names of the experiments with at least one run, the most recently run first."""
        return list(dict.fromkeys(info.experiment for info in self.infos))

    def versions(self, experiment: str) -> list[str]:
        """The versions of ``experiment`` that have runs, the highest first."""
        found = {info.version for info in self.infos if info.experiment == experiment}
        return [str(v) for v in sorted((SemVer.parse(v) for v in found), reverse=True)]

    def find(self, selector: str) -> list[RunInfo]:
        """Runs a selector names: a run id, an experiment, ``experiment/version``, or an id prefix."""
        wanted = selector.strip().strip("/")
        if not wanted:
            raise RunOptionError("a run selector is empty: give a run id, or its first characters")
        exact = [info for info in self.infos if info.run_id == wanted]
        if exact:
            return exact
        whole = [
            info
            for info in self.infos
            if wanted in (info.experiment, f"{info.experiment}/{info.version}")
        ]
        if whole:
            return whole
        return [
            info
            for info in self.infos
            if info.run_id.startswith(wanted) or info.run_id.split("/")[2].startswith(wanted)
        ]

    def run(self, id_or_prefix: str) -> ExperimentRun:
        """Open the one run whose id is, or starts with, ``id_or_prefix``.

        Also matched: the start of the time folder alone (``2026-12-01T09``).
        No match is a ``RunNotFoundError``; several are an ``AmbiguousRunError``
        that lists them.
        """
        wanted = id_or_prefix.strip().strip("/")
        if wanted.count("/") == 2 and self.store.exists(RunLayout(wanted).manifest):
            return ExperimentRun.open(wanted, storage=self.store)  # no listing needed
        matches = self.find(wanted)
        if len(matches) == 1:
            return matches[0].open()
        if not matches:
            known = ", ".join(info.run_id for info in self.infos[:_SHOWN]) or "none"
            raise RunNotFoundError(
                f"no run {id_or_prefix!r} in {self.store.uri()}; newest runs: {known}"
            )
        shown = ", ".join(info.run_id for info in matches[:_SHOWN])
        more = f" and {len(matches) - _SHOWN} more" if len(matches) > _SHOWN else ""
        raise AmbiguousRunError(
            f"{id_or_prefix!r} matches {len(matches)} runs in {self.store.uri()} ({shown}{more}): "
            "give more of the run id"
        )

    def to_polars(self) -> pl.DataFrame:
        """One row per run, newest first: id, experiment, version, status, counts and times."""
        schema = {
            "run_id": pl.String, "experiment": pl.String, "version": pl.String,
            "status": pl.String, "specs": pl.Int64, "done": pl.Int64, "failed": pl.Int64,
            "missing": pl.Int64, "created_at": pl.Datetime("us", "UTC"), "duration_s": pl.Float64,
        }  # fmt: skip
        return pl.DataFrame([info.row() for info in self.infos], schema=schema, orient="row")

    def __iter__(self) -> Iterator[RunInfo]:
        return iter(self.infos)

    def __len__(self) -> int:
        return len(self.infos)

    def __repr__(self) -> str:
        return f"<Catalog of {self.store.uri()}: {len(self.infos)} runs>"

    def __rich__(self) -> Any:
        return rich_table(self.infos, title=f"Runs in {self.store.uri()}")

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in _HEADERS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(info)) + "</tr>"
            for info in self.infos
        )
        title = html.escape(f"Runs in {self.store.uri()}")
        return f"<table><caption>{title}</caption><tr>{head}</tr>{body}</table>"


_HEADERS = ("run", "status", "specs", "done", "failed", "created (UTC)", "duration")


def _duration_text(duration: timedelta | None) -> str:
    if duration is None:
        return "-"
    seconds = duration.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def _cells(info: RunInfo) -> list[str]:
    created = info.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return [
        info.run_id, info.status, str(info.spec_count), str(info.done), str(info.failed),
        created, _duration_text(info.duration),
    ]  # fmt: skip


def rich_table(infos: Sequence[RunInfo], *, title: str) -> Any:
    """A rich ``Table`` of runs (what ``scythe runs`` prints).

    >>> rich_table([], title="Runs").columns[0].header
    'run'
    """
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for header in _HEADERS:
        table.add_column(
            header, justify="right" if header in ("specs", "done", "failed") else "left"
        )
    for info in infos:
        table.add_row(*_cells(info))
    return table


def resolve_runs(runs: RunsLike, *, storage: StorageLike = None) -> list[ExperimentRun]:
    """The runs ``runs`` names, each once, in the order given.

    ``runs`` is a run, a :class:`RunInfo`, a run id or id prefix, an
    experiment name or ``experiment/version`` (every run of it), a
    ``BaseExperiment`` or ``VersionedExperiment``, or a list of these.
    Strings are looked up in ``storage`` (default: the configured store).

    >>> import tempfile
    >>> resolve_runs("building/v1.0.0", storage=tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    scythe.errors.RunNotFoundError: no run 'building/v1.0.0' in ...; newest runs: none
    """
    items = list(runs) if isinstance(runs, list | tuple) else [runs]
    catalog: Catalog | None = None
    found: dict[tuple[str, str], ExperimentRun] = {}
    for item in items:
        if isinstance(item, ExperimentRun):
            opened = [item]
        elif isinstance(item, RunInfo):
            opened = [item.open()]
        elif isinstance(item, VersionedExperiment):
            opened = item.list_runs()
        elif isinstance(item, BaseExperiment):
            opened = [r for v in item.list_versions() for r in v.list_runs()]
        elif isinstance(item, str):
            catalog = catalog or Catalog(storage)
            opened = _runs_named(catalog, item)
        else:
            raise RunOptionError(
                f"runs: {item!r} is not a run; give an ExperimentRun, a run id or prefix, an "
                "experiment name, experiment/version, a VersionedExperiment or a BaseExperiment"
            )
        for run in opened:
            found.setdefault((run.store.uri(), run.run_id), run)
    if not found:
        raise RunNotFoundError(f"runs: {runs!r} names no run")
    return list(found.values())


def _runs_named(catalog: Catalog, name: str) -> list[ExperimentRun]:
    wanted = name.strip().strip("/")
    if wanted.count("/") < 2:
        whole = [
            info
            for info in catalog.infos
            if wanted in (info.experiment, f"{info.experiment}/{info.version}")
        ]
        if whole:
            return [info.open() for info in reversed(whole)]  # oldest first
    return [catalog.run(wanted)]
