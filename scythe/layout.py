"""Where one run's files live (the manifest's model is in ``scythe.manifest``).

Same layout on a local directory and on S3 (DESIGN.md §3)::

    <experiment>/<vM.m.p>/<YYYY-MM-DDTHH-MM-SS.ffffffZ>/
      manifest.yml  experiment_io_spec.yml  input_artifacts.yml  table_schemas.yml
      specs/  artifacts/<field>/...  scatter-gather/...  results/<field>/...
      final/scalars/  final/result_file_refs/  final/failures/  final/<name>/
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import yaml

from scythe.errors import ManifestError
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
RUN_STATUSES: frozenset[str] = frozenset(typing.get_args(RunStatus))
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


def read_manifest_data(store: Store, layout: RunLayout) -> Any:
    """The run's ``manifest.yml`` parsed as YAML; ``ManifestError`` (naming the file and line)
    if it is not YAML. :func:`scythe.manifest.read_manifest` checks it is a manifest."""
    data = store.get_bytes(layout.manifest)
    try:
        return load_yaml(data)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise ManifestError(
            f"the manifest {store.uri(layout.manifest)} is not valid YAML{where}: {problem}. Its "
            "tables may still be read: ExperimentRun.open(run_id, storage=..., repair=True).results()"
        ) from None


def stated_status(data: Any) -> str | None:
    """The status a parsed manifest states, if it is one a run can have (else None).

    Reading a run's results needs only its status: this takes it from the
    parsed YAML, without building the whole manifest (and without pydantic).
    """
    status = data.get("status") if isinstance(data, dict) else None
    return status if isinstance(status, str) and status in RUN_STATUSES else None


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
