"""Allocating a run in two steps: a pure plan, then one write step.

:func:`plan_allocation` validates the specs, compiles the schema, plans the
tree and lists the local input files to upload. It touches no storage and no
engine, so everything that can be wrong with an allocation is reported before
anything is written. :func:`write_run` then claims a fresh run folder and
writes what the plan holds: artifacts, the ``specs`` table, one batch per
terminal node, the empty result tables, the stored schema and the manifest.

>>> from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry
>>> class In(ExperimentInputSpec):
...     x: float
>>> class Out(ExperimentOutputSpec):
...     y: float
>>> @ExperimentRegistry.Register(name="doctest_plan")
... def double(spec: In) -> Out:
...     return Out(y=2 * spec.x)
>>> plan = plan_allocation(double, [In(x=float(i)) for i in range(2500)], parallelism=2)
>>> plan.n_specs, plan.recursion_map, len(plan.terminal_nodes)
(2500, RecursionMap(factor=8, max_depth=1, path=()), 8)
>>> ExperimentRegistry.unregister("doctest_plan")
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from scythe import tables
from scythe.base import ExperimentInputSpec, parse_specs
from scythe.batches import check_specs_frame, specs_frame, write_batch
from scythe.errors import (
    FileReferenceError,
    RecursionMapError,
    RunFolderError,
    RunOptionError,
    SchemaChangeError,
    SpecValidationError,
)
from scythe.layout import (
    RunLayout,
    dump_yaml,
    load_yaml,
    run_id_of,
    run_time_folder,
    version_prefix,
)
from scythe.manifest import RetryRound, RunManifest, SchemaChangeRecord
from scythe.registry import ExperimentRunnable
from scythe.scatter_gather import MAX_DEPTH_LIMIT, RecursionMap, TreeNode, iter_terminal_nodes
from scythe.schema import (
    SPECS,
    ExperimentSchema,
    TableSchema,
    compile_experiment,
    computed_features_of,
    experiment_io_spec,
    feature_types,
    schema_to_dict,
)
from scythe.schema.diff import BUMP_RANK, bump_of, diff_entries, format_changes, required_bump
from scythe.schema.lock import entry_of, stored_entry
from scythe.storage import Store
from scythe.versions import SemVer, VersionBump

MAX_TERMINAL_SPECS = 1000
# Scalar-only outputs are a few values per spec: bigger nodes, fewer fixed costs.
MAX_TERMINAL_SPECS_SCALAR_ONLY = 10_000
# Threads writing a new run's tables and batches (see _write_tables).
WRITE_THREADS = 8
# The smallest terminal node the default tree makes for a failure policy.
MIN_POLICY_NODE = 10

Problem = tuple[int | None, str, object, str]


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


# --------------------------------------------------------------------------- input files


ArtifactKey = tuple[str, str, str]  # (field, content digest, file name)


@dataclass
class InputArtifacts:
    """Local input files of an allocation: one upload per distinct (field, content, name)."""

    uploads: dict[ArtifactKey, Path] = field(default_factory=dict)
    by_spec: list[dict[str, ArtifactKey]] = field(default_factory=list)  # [] if no fields


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:32]


def scan_artifacts(specs: Sequence[ExperimentInputSpec], fields: tuple[str, ...]) -> InputArtifacts:
    """Hash every local file input, reporting missing files for all specs at once."""
    found = InputArtifacts()
    if not fields:
        return found
    problems: list[Problem] = []
    digests: dict[Path, str] = {}
    for i, spec in enumerate(specs):
        entry: dict[str, ArtifactKey] = {}
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
        raise FileReferenceError.from_problems(f"{len(problems)} input file(s) not found", problems)
    return found


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class AllocationPlan:
    """Everything a run will be, decided before anything is written."""

    experiment: ExperimentRunnable
    schema: ExperimentSchema
    specs: pl.DataFrame
    """The ``specs`` table rows, row ``i`` for the caller's spec ``i`` (``experiment_id`` pending)."""
    features: dict[str, type]
    recursion_map: RecursionMap
    artifacts: InputArtifacts
    single: dict[str, Any] | None = None
    """The spec (as JSON data) of a one-off run: one spec allocated on its own, no tree."""
    max_failure_ratio: float | None = None
    """Stop the run once more than this share of its specs failed (None: run them all)."""
    schema_change: SchemaChangeRecord | None = None
    """How the schema differs from the latest run's, recorded in the manifest."""

    @property
    def n_specs(self) -> int:
        return self.specs.height

    @property
    def terminal_nodes(self) -> list[TreeNode]:
        return list(iter_terminal_nodes(self.n_specs, self.recursion_map))


def plan_allocation(
    experiment: ExperimentRunnable,
    specs: Iterable[ExperimentInputSpec | dict[str, Any]],
    *,
    recursion_map: RecursionMap | None = None,
    overwrite_sort_index: bool = True,
    parallelism: int = 1,
    single: bool = False,
    max_failure_ratio: float | None = None,
    previous: PreviousRun | None = None,
    version: VersionBump | SemVer | str = "bumpmajor",
    allow_schema_change: bool = False,
) -> AllocationPlan:
    """Validate ``specs``, compile the schema, plan the tree and list the files to upload.

    Pure: no storage, no engine. Every invalid spec is reported in one
    ``SpecValidationError``; the caller's spec objects are never modified.
    ``single`` plans a one-off run of one spec: one node, no tree. With
    ``max_failure_ratio`` the default tree has smaller nodes, so that a run
    stops soon after passing it (engines stop between nodes). The schema is
    checked against ``previous`` (the latest run's, :func:`latest_run_schema`)
    for the ``version`` asked for (:func:`check_schema_change`).
    """
    check_failure_ratio(max_failure_ratio)
    parsed = parse_specs(experiment.input_spec, specs)
    if not parsed:
        raise SpecValidationError(f"no specs to allocate for {experiment.name!r}")
    sort_index = _sort_index(parsed, overwrite=overwrite_sort_index)
    feature_rows = computed_features_of(parsed)
    features = feature_types(feature_rows)
    schema = compile_experiment(
        experiment.input_spec, experiment.output_spec, computed_features=features
    )
    change = check_schema_change(schema, previous, version, allow=allow_schema_change)
    frame = specs_frame(parsed, schema, sort_index, feature_rows)
    check_specs_frame(frame, schema)
    max_node = MAX_TERMINAL_SPECS if schema.dataframes else MAX_TERMINAL_SPECS_SCALAR_ONLY
    if max_failure_ratio is not None:  # a node is at most a quarter of the failure budget
        budget = max_failure_ratio * len(parsed) / 4
        max_node = max(MIN_POLICY_NODE, min(max_node, math.floor(budget)))
    rmap = recursion_map or default_recursion_map(len(parsed), parallelism, max_node=max_node)
    document = None
    if single:
        rmap = RecursionMap(factor=1, max_depth=0)
        document = parsed[0].model_dump(
            mode="json", exclude={"workflow_run_id", "root_workflow_run_id"}
        )
        document["sort_index"] = sort_index[0]
    if rmap.path:
        raise RecursionMapError(f"recursion_map.path must be empty at allocation, got {rmap.path}")
    artifacts = scan_artifacts(parsed, schema.input_file_fields)
    return AllocationPlan(
        experiment, schema, frame, features, rmap, artifacts, document, max_failure_ratio, change
    )


# --------------------------------------------------------------------------- schema versions


@dataclass(frozen=True)
class PreviousRun:
    """The schema stored with the latest run of an experiment, as a lock entry."""

    experiment: str
    """The experiment's folder name (``BaseExperiment.name``)."""
    run_id: str
    version: SemVer
    entry: dict[str, Any]


def latest_run_schema(store: Store, experiment: str) -> PreviousRun | None:
    """The schema stored with the newest run of the newest version (None: no run yet).

    Reads ``table_schemas.yml`` and ``experiment_io_spec.yml``; a run folder
    without a stored schema (an allocation that stopped half way) is passed over.

    >>> import tempfile
    >>> from scythe.storage import LocalStore
    >>> latest_run_schema(LocalStore(tempfile.mkdtemp()), "walls") is None
    True
    """
    versions = [SemVer.parse(v) for v in store.list_children(experiment) if SemVer.is_version(v)]
    for version in sorted(versions, reverse=True):
        for folder in reversed(store.list_children(version_prefix(experiment, version))):
            layout = RunLayout(run_id_of(experiment, version, folder))
            if not store.exists(layout.table_schemas):
                continue
            stored = load_yaml(store.get_bytes(layout.table_schemas))
            io_spec = (
                load_yaml(store.get_bytes(layout.io_spec)) if store.exists(layout.io_spec) else None
            )
            return PreviousRun(experiment, layout.run_id, version, stored_entry(stored, io_spec))
    return None


def check_schema_change(
    schema: ExperimentSchema,
    previous: PreviousRun | None,
    version: VersionBump | SemVer | str,
    *,
    allow: bool = False,
) -> SchemaChangeRecord | None:
    """Semantic versioning of the schema: what it needs against the latest run's, and a check.

    A breaking change needs ``bumpmajor``, an additive one at least
    ``bumpminor`` (:mod:`scythe.schema.diff`); a smaller bump (``keep``,
    ``bumppatch``, or an explicit version that moves less) raises
    ``SchemaChangeError`` naming the changes and the bump they need, unless
    ``allow`` (``allow_schema_change=True``). Returns what the manifest records:
    None when nothing changed and nothing was allowed.

    >>> from scythe import ExperimentInputSpec, ExperimentOutputSpec
    >>> from scythe.schema.lock import experiment_entry
    >>> class In(ExperimentInputSpec):
    ...     x: float
    >>> class Out(ExperimentOutputSpec):
    ...     y: float
    >>> class Out2(ExperimentOutputSpec):
    ...     y: float
    ...     z: float
    >>> before = PreviousRun("e", "e/v1.0.0/t", SemVer(), experiment_entry(In, Out))
    >>> check_schema_change(compile_experiment(In, Out2), before, "bumpminor").required
    'bumpminor'
    >>> check_schema_change(compile_experiment(In, Out2), before, "keep")
    Traceback (most recent call last):
    ...
    scythe.errors.SchemaChangeError: experiment 'e': the schema changed since run e/v1.0.0/t in ways that need bumpminor, but version='keep':
      additive: experiment 'e', table 'scalars', column 'z': new output column (Float64)
    allocate with version='bumpminor', or pass allow_schema_change=True to allocate anyway (the manifest records it)
    """
    if previous is None:
        return None
    io_spec = experiment_io_spec(schema.input_spec, schema.output_spec)
    entry = entry_of(schema.index, schema.result_tables, io_spec)
    changes = diff_entries(previous.entry, entry, experiment=previous.experiment)
    if not changes and not allow:
        return None
    required, given = required_bump(changes), bump_of(previous.version, version)
    if BUMP_RANK[given] < BUMP_RANK[required] and not allow:
        asked = f"version={str(version)!r}" + ("" if str(version) == given else f" is {given}")
        raise SchemaChangeError(
            f"experiment {previous.experiment!r}: the schema changed since run {previous.run_id} "
            f"in ways that need {required}, but {asked}:\n{format_changes(changes)}\n"
            f"allocate with version={required!r}, or pass allow_schema_change=True to allocate "
            "anyway (the manifest records it)",
            changes=changes,
            required=required,
            given=given,
        )
    return SchemaChangeRecord(
        previous_run=previous.run_id,
        required=required,
        given=str(version),
        allow_schema_change=allow,
        changes=[str(c) for c in changes],
    )


def check_failure_ratio(ratio: float | None) -> None:
    """``RunOptionError`` unless ``ratio`` is None or a number from 0 to 1."""
    if ratio is None:
        return
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
        raise RunOptionError(
            f"max_failure_ratio={ratio!r}: give a share of the run's specs from 0 to 1 "
            "(0.05 stops the run once more than 5% of its specs failed), or None"
        )


def _sort_index(specs: Sequence[ExperimentInputSpec], *, overwrite: bool) -> list[int]:
    if overwrite:
        return list(range(len(specs)))
    seen: dict[int, int] = {}
    problems: list[Problem] = []
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
    return [s.sort_index for s in specs]


# --------------------------------------------------------------------------- the write step


def write_run(
    store: Store,
    plan: AllocationPlan,
    *,
    name: str,
    version: SemVer,
    engine: str,
    skip: set[int] | None = None,
) -> RunManifest:
    """Claim a fresh folder for the run and write everything the plan holds; return its manifest.

    A plan of one spec allocated on its own (``plan.single``) also gets
    ``workflow_spec.yml``, the spec as YAML. The specs whose ``sort_index``
    is in ``skip`` (rows reused from earlier runs) are left out of the tree.
    """
    tree_specs = plan.n_specs - len(skip) if skip else None
    manifest = claim_run_folder(
        store, plan, name=name, version=version, engine=engine, tree_specs=tree_specs
    )
    layout = RunLayout(manifest.run_id)
    uploaded = upload_artifacts(store, layout, plan.artifacts)
    frame = _with_run_values(plan, manifest.run_id, uploaded)
    if plan.single is not None:
        files = {name: frame.get_column(name)[0] for name in plan.schema.input_file_fields}
        document = {**plan.single, **files, "experiment_id": manifest.run_id}
        store.put_bytes(layout.workflow_spec, dump_yaml(document))
    # Specs are usually given in sort_index order already: no copy of the frame then.
    ordered = frame if frame.get_column("sort_index").is_sorted() else frame.sort("sort_index")
    _write_tables(store, layout, plan.schema, ordered, plan.recursion_map, skip or set())
    experiment = plan.experiment
    store.put_bytes(
        layout.io_spec, dump_yaml(experiment_io_spec(experiment.input_spec, experiment.output_spec))
    )
    listing: dict[str, dict[str, str]] = {}
    for key, path in plan.artifacts.uploads.items():
        listing.setdefault(key[0], {})[str(path)] = uploaded[key]
    store.put_bytes(layout.input_artifacts, dump_yaml(listing))
    store.put_bytes(layout.table_schemas, dump_yaml(schema_to_dict(plan.schema)))
    return manifest


def write_retry_round(
    store: Store,
    layout: RunLayout,
    specs: TableSchema,
    failed: list[int],
    *,
    round: int,
    parallelism: int,
) -> RetryRound:
    """Write the batches of a tree over the ``failed`` specs only, for retry ``round``."""
    frame = tables.read_table(store, layout.table(SPECS), specs, validate=False)
    frame = frame.filter(pl.col("sort_index").is_in(failed)).sort("sort_index")
    rmap = default_recursion_map(frame.height, parallelism)
    retry_layout = layout.retry(round)
    for node, batch in _batches(frame, rmap):
        write_batch(store, retry_layout.batch(node), batch)
    return RetryRound(round=round, specs=frame.height, recursion_map=rmap)


def _batches(frame: pl.DataFrame, rmap: RecursionMap) -> Iterator[tuple[str, pl.DataFrame]]:
    """Each terminal node of the tree over ``frame``'s rows, with its rows (its batch)."""
    for node in iter_terminal_nodes(frame.height, rmap):
        yield node.name, _rows(frame, node.positions)


def _rows(frame: pl.DataFrame, positions: range) -> pl.DataFrame:
    """The rows of ``frame`` at ``positions``, a grid-stride range (to the frame's end): a
    strided slice, with no list of row numbers."""
    if not len(positions):
        return frame.clear()
    return frame.gather_every(positions.step, positions.start).head(len(positions))


def _write_batch(store: Store, key: str, frame: pl.DataFrame, positions: range) -> None:
    write_batch(store, key, _rows(frame, positions))


def claim_run_folder(
    store: Store,
    plan: AllocationPlan,
    *,
    name: str,
    version: SemVer,
    engine: str,
    tree_specs: int | None = None,
) -> RunManifest:
    """Write ``manifest.yml`` into a fresh time folder; put-if-absent makes the folder ours."""
    experiment = plan.experiment
    for _ in range(100):
        now = datetime.now(UTC)
        run_id = run_id_of(name, version, run_time_folder(now))
        manifest = RunManifest(
            run_id=run_id,
            experiment=name,
            runnable=experiment.name,
            version=str(version),
            created_at=now,
            storage_uri=store.uri(),
            engine=engine,
            function=experiment.reference,
            input_spec=_class_reference(experiment.input_spec),
            output_spec=_class_reference(experiment.output_spec),
            spec_count=plan.n_specs,
            recursion_map=plan.recursion_map,
            kind="single" if plan.single is not None else "batch",
            computed_features={k: v.__name__ for k, v in plan.features.items()},
            max_failure_ratio=plan.max_failure_ratio,
            tree_specs=tree_specs,
            schema_change=plan.schema_change,
        )
        if store.put_if_absent(RunLayout(run_id).manifest, manifest.to_yaml()):
            return manifest
        time.sleep(1e-6)
    raise RunFolderError(
        f"could not claim a run folder for {name}/{version} in {store.uri()} after 100 tries: "
        "check that the store is writable"
    )


def _class_reference(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def upload_artifacts(
    store: Store, layout: RunLayout, artifacts: InputArtifacts
) -> dict[ArtifactKey, str]:
    """Upload each distinct local input file once; return the URI of each."""
    uris = {}
    for key, path in artifacts.uploads.items():
        field_name, digest, file_name = key
        target = layout.artifact(field_name, digest, file_name)
        store.upload_file(path, target)
        uris[key] = store.file_uri(target)
    return uris


def _with_run_values(
    plan: AllocationPlan, run_id: str, uploaded: dict[ArtifactKey, str]
) -> pl.DataFrame:
    """The specs rows with the run's id and the URIs their local input files were uploaded to."""
    frame = plan.specs.with_columns(pl.lit(run_id).alias("experiment_id"))
    by_spec = plan.artifacts.by_spec
    for name in plan.schema.input_file_fields:
        if any(name in entry for entry in by_spec):
            column = frame.get_column(name).to_list()
            for i, entry in enumerate(by_spec):
                if name in entry:
                    column[i] = uploaded[entry[name]]
            frame = frame.with_columns(pl.Series(name, column, dtype=pl.String))
    return frame


def _write_tables(
    store: Store,
    layout: RunLayout,
    schema: ExperimentSchema,
    frame: pl.DataFrame,
    rmap: RecursionMap,
    skip: set[int],
) -> None:
    """Write the ``specs`` table, one batch per terminal node and the empty result tables.

    The writes are independent, so they run on a few threads: Parquet
    encoding and Delta commits release the GIL, and on S3 each one waits on
    the network.
    """
    # The longest jobs first: the specs table, then the Delta commits of the empty tables.
    jobs: list[Callable[[], object]] = [
        functools.partial(tables.write_table, store, layout.table(SPECS), schema.specs, frame)
    ]
    for table_name, table in schema.result_tables.items():
        jobs.append(functools.partial(tables.create_table, store, layout.table(table_name), table))
    tree = frame.filter(~pl.col("sort_index").is_in(list(skip))) if skip else frame
    for node in iter_terminal_nodes(tree.height, rmap):  # each job takes its rows
        jobs.append(
            functools.partial(_write_batch, store, layout.batch(node.name), tree, node.positions)
        )
    with ThreadPoolExecutor(max_workers=min(WRITE_THREADS, len(jobs))) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()
