"""``manifest.yml``: what a run is, how it was split and how it ended (a pydantic model).

Reading a run's results needs only the manifest's status
(:func:`scythe.layout.stated_status`); everything else reads it whole, here.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, ValidationError

from scythe.errors import ManifestError
from scythe.layout import RunLayout, RunStatus, dump_yaml, read_manifest_data
from scythe.scatter_gather import RecursionMap

if TYPE_CHECKING:
    from scythe.storage import Store


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


def read_manifest(store: Store, layout: RunLayout) -> RunManifest:
    """The run's ``manifest.yml``; ``ManifestError`` (naming the file and line, or the field)
    if it is corrupt."""
    data = read_manifest_data(store, layout)
    try:
        return RunManifest.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(document)'}: {e['msg']}" for e in err.errors()
        )
        raise ManifestError(
            f"the manifest {store.uri(layout.manifest)} does not hold a valid run manifest: "
            f"{problems}. Its tables may still be read: "
            "ExperimentRun.open(run_id, storage=..., repair=True).results()"
        ) from None


def update_manifest(store: Store, layout: RunLayout, **changes: Any) -> RunManifest:
    """Rewrite ``manifest.yml`` with ``changes`` (status, counts, message...); return it."""
    manifest = read_manifest(store, layout).model_copy(update=changes)
    store.put_bytes(layout.manifest, manifest.to_yaml())
    return manifest
