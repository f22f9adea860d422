"""Where one run's files live, and the run manifest.

Same layout on a local directory and on S3 (DESIGN.md §3)::

    <experiment>/<vM.m.p>/<YYYY-MM-DDTHH-MM-SS.ffffffZ>/
      manifest.yml  experiment_io_spec.yml  input_artifacts.yml  table_schemas.yml
      specs/  artifacts/<field>/...  scatter-gather/...  results/<field>/...
      final/scalars/  final/result_file_refs/  final/failures/  final/<name>/
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from scythe.errors import ManifestError
from scythe.scatter_gather import RecursionMap
from scythe.storage import INTERMEDIATES

if TYPE_CHECKING:
    from scythe.schema import TableSchema
    from scythe.storage import Store

RunStatus = Literal[
    "allocated",
    "running",
    "complete",
    "partial",
    "failed",
    "incomplete",
    "cancelled",
    "interrupted",
]
REUSED_NODE = "reused"  # the node whose staged files hold rows copied from earlier runs
STALE_BEATS = 3  # a driver that missed this many heartbeats is taken for dead


@dataclass(frozen=True)
class RunLayout:
    """Storage keys of one run, relative to the store root.

    >>> layout = RunLayout("building/v1.0.0/2026-01-01T00-00-00.000000Z")
    >>> layout.table("scalars")
    'building/v1.0.0/2026-01-01T00-00-00.000000Z/final/scalars'
    """

    run_id: str
    round: int = 0
    """0 for the run's own tree; ``n`` for the tree of its ``n``-th retry of failed specs."""

    @property
    def _tree(self) -> str:
        base = f"{self.run_id}/{INTERMEDIATES}"
        return base if self.round == 0 else f"{base}/retry-{self.round}"

    def retry(self, round: int) -> RunLayout:
        """The layout of the run's ``round``-th retry (the same tables, its own tree)."""
        return RunLayout(self.run_id, round)

    @property
    def manifest(self) -> str:
        return f"{self.run_id}/manifest.yml"

    @property
    def io_spec(self) -> str:
        return f"{self.run_id}/experiment_io_spec.yml"

    @property
    def table_schemas(self) -> str:
        return f"{self.run_id}/table_schemas.yml"

    @property
    def heartbeat(self) -> str:
        """Written by the driver every few seconds while it runs the run."""
        return f"{self.run_id}/heartbeat.json"

    @property
    def workflow_spec(self) -> str:
        """The spec of a one-off (single-spec) run, as YAML."""
        return f"{self.run_id}/workflow_spec.yml"

    @property
    def input_artifacts(self) -> str:
        return f"{self.run_id}/input_artifacts.yml"

    @property
    def specs(self) -> str:
        return f"{self.run_id}/specs"

    def table(self, name: str) -> str:
        """The Delta table ``name``: ``specs``, or a result table under ``final/``."""
        return self.specs if name == "specs" else f"{self.run_id}/final/{name}"

    def artifact(self, field: str, digest: str, name: str) -> str:
        return f"{self.run_id}/artifacts/{field}/{digest}/{name}"

    def result_file(self, field: str, sort_index: int, name: str) -> str:
        """A file output of one spec, uploaded by its leaf."""
        return f"{self.run_id}/results/{field}/{sort_index}/{name}"

    def leaf_results(self, node: str) -> str:
        """Where a terminal node's leaves leave their rows for it (distributed engines)."""
        return f"{self._tree}/leaves/{node}"

    def leaf_result(self, node: str, sort_index: int) -> str:
        # One key per spec: a leaf delivered twice overwrites its own object, never adds one.
        return f"{self.leaf_results(node)}/{sort_index}.zip"

    def batch(self, node: str) -> str:
        return f"{self._tree}/batches/{node}.parquet"

    def inferred_schema(self, table: str) -> str:
        """The schema inferred for an undeclared frame output, from the first one stored."""
        return f"{self.run_id}/{INTERMEDIATES}/schemas/{table}.yml"

    def node_manifest(self, node: str) -> str:
        return f"{self._tree}/nodes/{node}.json"


# libyaml's C emitter and parser when PyYAML was built with it (10x faster), else Python's.
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def dump_yaml(data: Any) -> bytes:
    """YAML of plain data, keys in insertion order."""
    return yaml.dump(data, Dumper=_YAML_DUMPER, sort_keys=False, allow_unicode=True).encode()


def load_yaml(data: bytes) -> Any:
    return yaml.load(data, Loader=_YAML_LOADER)


def run_time_folder(now: datetime | None = None) -> str:
    """The run's time folder: UTC, microseconds, filesystem- and S3-safe."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return now.strftime("%Y-%m-%dT%H-%M-%S.%fZ")


def version_prefix(experiment: str, version: object) -> str:
    """The folder of one version of an experiment, holding one folder per run.

    >>> version_prefix("building", "v1.2.0")
    'building/v1.2.0'
    """
    return f"{experiment}/{version}"


def run_id_of(experiment: str, version: object, time_folder: str) -> str:
    """A run's id, which is also its folder: ``<experiment>/<vM.m.p>/<time>``."""
    return f"{version_prefix(experiment, version)}/{time_folder}"


class RetryRound(BaseModel):
    """The latest retry of a run's failed specs: its own tree over just those specs."""

    round: int = Field(ge=1)
    specs: int = Field(ge=0, description="How many failed specs it runs again")
    recursion_map: RecursionMap


class SchemaChangeRecord(BaseModel):
    """How a run's schema differs from the latest run's before it (``allocate()`` checks it)."""

    previous_run: str = Field(description="The run compared with: the latest run before this one")
    required: str = Field(description="The version bump the changes need (bumpmajor, bumpminor)")
    given: str = Field(description="The version asked for (a bump or vM.m.p)")
    allow_schema_change: bool = Field(
        default=False, description="True: allow_schema_change=True let a smaller bump through"
    )
    changes: list[str] = Field(default_factory=list)


class RunManifest(BaseModel):
    """``manifest.yml``: what a run is, how it was split and how it ended."""

    run_id: str
    experiment: str = Field(description="The experiment's folder name (BaseExperiment.name)")
    runnable: str | None = Field(
        default=None, description="Registered name of the experiment's function"
    )
    version: str
    created_at: datetime
    storage_uri: str
    engine: str
    function: str = Field(description="module:qualname of the registered experiment")
    input_spec: str
    output_spec: str
    spec_count: int
    recursion_map: RecursionMap
    kind: Literal["batch", "single"] = Field(
        default="batch", description="single: a one-off run of one spec, triggered directly"
    )
    computed_features: dict[str, str] = Field(default_factory=dict)
    tree_specs: int | None = Field(
        default=None, description="Specs the tree runs, if fewer than spec_count (reuse)"
    )
    reused: dict[str, int] = Field(
        default_factory=dict, description="Rows copied from earlier runs, by run id (reuse)"
    )
    retry: RetryRound | None = Field(
        default=None, description="The latest retry of the failed specs (resume(retry_failed=True))"
    )
    max_failure_ratio: float | None = Field(
        default=None, description="Failure policy: stop once more than this share of specs failed"
    )
    schema_change: SchemaChangeRecord | None = Field(
        default=None, description="Schema changes since the previous run, and the bump given"
    )
    status: RunStatus = "allocated"
    done: int = 0
    failed: int = 0
    missing: int = 0
    finished_at: datetime | None = None
    message: str | None = None

    def to_yaml(self) -> bytes:
        return dump_yaml(self.model_dump(mode="json"))

    @classmethod
    def from_yaml(cls, data: bytes) -> RunManifest:
        return cls.model_validate(load_yaml(data))


def read_manifest(store: Store, layout: RunLayout) -> RunManifest:
    """The run's ``manifest.yml``; ``ManifestError`` (naming the file and line) if it is corrupt."""
    uri = store.uri(layout.manifest)
    data = store.get_bytes(layout.manifest)
    try:
        return RunManifest.from_yaml(data)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise ManifestError(
            f"the manifest {uri} is not valid YAML{where}: {problem}. Its tables may still be "
            "read: ExperimentRun.open(run_id, storage=..., repair=True).results()"
        ) from None
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(document)'}: {e['msg']}" for e in err.errors()
        )
        raise ManifestError(
            f"the manifest {uri} does not hold a valid run manifest: {problems}. Its tables may "
            "still be read: ExperimentRun.open(run_id, storage=..., repair=True).results()"
        ) from None


def stored_table_schemas(store: Store, layout: RunLayout) -> dict[str, TableSchema]:
    """The schemas the run's tables were written with (``table_schemas.yml``), by table name."""
    from scythe.schema import tables_from_dict

    return tables_from_dict(load_yaml(store.get_bytes(layout.table_schemas)))


def write_heartbeat(store: Store, layout: RunLayout, interval: float) -> None:
    """Record that the run's driver is alive now, and how often it says so."""
    beat = {"at": datetime.now(UTC).isoformat(), "interval": interval}
    store.put_bytes(layout.heartbeat, json.dumps(beat).encode())


def driver_alive(store: Store, layout: RunLayout, now: datetime | None = None) -> bool:
    """Whether the driver of a ``running`` run has written a heartbeat recently enough."""
    if not store.exists(layout.heartbeat):
        return False
    beat = json.loads(store.get_bytes(layout.heartbeat))
    age = ((now or datetime.now(UTC)) - datetime.fromisoformat(beat["at"])).total_seconds()
    return age <= STALE_BEATS * float(beat["interval"]) + 1.0


def update_manifest(store: Store, layout: RunLayout, **changes: Any) -> RunManifest:
    """Rewrite ``manifest.yml`` with ``changes`` (status, counts, message...); return it."""
    manifest = read_manifest(store, layout).model_copy(update=changes)
    store.put_bytes(layout.manifest, manifest.to_yaml())
    return manifest
