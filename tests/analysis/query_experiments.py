"""A tiny experiment the query, compare and CLI tests run (importable by name in subprocesses).

``PERTURB`` stands for a change of the simulator: an offset added to ``y`` of
the specs whose ``x`` it names. Runs made with ``LocalEngine(slots=0)`` run in
this process, so a test sets it, runs, and clears it.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from typing import Literal

import pandera.polars as pa
import polars as pl
from pandera.typing.polars import DataFrame
from pydantic import Field

from scythe import (
    BaseExperiment,
    ExperimentInputSpec,
    ExperimentOutputSpec,
    ExperimentRegistry,
    LocalEngine,
    RecursionMap,
)
from scythe.experiments import ExperimentRun
from scythe.storage import LocalStore, S3Store, Store

PERTURB: dict[float, float] = {}
FAILING: set[float] = set()  # the x of the specs that raise


class Panel(ExperimentInputSpec):
    """One panel: a width, a material and a count."""

    x: float = Field(..., ge=0, le=100, description="Width [m]")
    material: Literal["wood", "steel"] = "wood"
    n: int = Field(1, ge=1, description="Number of panels")

    @property
    def computed_features(self) -> dict[str, int | float | str]:
        return {"area": self.x * self.n}


class Point(pa.DataFrameModel):
    step: int = pa.Field(ge=0)
    value: float


class PanelOut(ExperimentOutputSpec):
    y: float = Field(..., description="2x, plus PERTURB's offset")
    z: float = Field(..., ge=0)
    label: str
    curve: DataFrame[Point]


@ExperimentRegistry.Register(name="query_panel")
def panel(spec: Panel) -> PanelOut:
    if spec.x in FAILING:
        raise ValueError(f"panel {spec.x} asked to fail")
    y = 2 * spec.x + PERTURB.get(spec.x, 0.0) + (1.0 if spec.material == "steel" else 0.0)
    curve = pl.DataFrame({"step": [0, 1, 2], "value": [spec.x, spec.x + 1, spec.x + 2]})
    return PanelOut(y=y, z=spec.x * spec.n, label=f"{spec.material}-{spec.n}", curve=curve)


def panels(count: int) -> list[Panel]:
    """``count`` distinct panels: ``x`` is the position, ``n`` cycles through 1 to 4."""
    return [
        Panel(x=float(i), material="steel" if i % 3 == 0 else "wood", n=1 + i % 4)
        for i in range(count)
    ]


@dataclass
class Runs:
    """The runs the analysis tests read: ``base``, ``same`` (its specs reversed) and ``changed``."""

    store: Store
    base: ExperimentRun
    same: ExperimentRun
    changed: ExperimentRun


COUNT = 12
BASE_FAILING = {5.0}
CHANGED_OFFSETS = {3.0: 0.5, 7.0: 0.25}  # y of these specs moves in the `changed` run
CHANGED_FAILING = {5.0, 8.0}  # ... and this one fails there too
TREE = RecursionMap(factor=4, max_depth=1)  # 4 terminal nodes: 4 data files per table


def run_panels(
    store: Store,
    specs: list[Panel],
    *,
    failing: set[float],
    offsets: dict[float, float] | None = None,
) -> ExperimentRun:
    """One run of ``specs`` in this process, with ``failing`` raising and ``offsets`` added to y."""
    FAILING.clear()
    FAILING.update(failing)
    PERTURB.clear()
    PERTURB.update(offsets or {})
    try:
        run, ref = BaseExperiment(panel, storage=store).allocate(
            specs, version="bumpminor", recursion_map=TREE, engine=LocalEngine(slots=0)
        )
        ref.result()
    finally:
        FAILING.clear()
        PERTURB.clear()
    return run


def build_runs(store: Store) -> Runs:
    specs = panels(COUNT)
    base = run_panels(store, specs, failing=BASE_FAILING)
    same = run_panels(store, list(reversed(specs)), failing=BASE_FAILING)
    changed = run_panels(store, specs, failing=CHANGED_FAILING, offsets=CHANGED_OFFSETS)
    return Runs(store, base, same, changed)


def s3_store(endpoint: str) -> S3Store:
    """A store in a new bucket on the moto server at ``endpoint``."""
    import boto3

    bucket = f"scythe-analysis-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return S3Store(bucket, "scythe", endpoint_url=endpoint, region="us-east-1")


_SHARED: dict[str, Runs] = {}


def shared_runs() -> Runs:
    """The runs of :func:`build_runs` in a local directory, built once per test session.

    Tests only read them; a test that changes a run makes its own.
    """
    if "local" not in _SHARED:
        root = tempfile.mkdtemp(prefix="scythe-analysis-")
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _SHARED["local"] = build_runs(LocalStore(root))
    return _SHARED["local"]


def shared_s3_runs(endpoint: str) -> Runs:
    """The runs of :func:`build_runs` in a bucket on the moto server, built once per session."""
    if endpoint not in _SHARED:
        _SHARED[endpoint] = build_runs(s3_store(endpoint))
    return _SHARED[endpoint]
