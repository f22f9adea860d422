"""Experiments the end-to-end tests run (importable by worker processes), and an engine
that runs none of them.

Written with postponed annotations on purpose: the tempdir parameter and the
spec types must still be found.
"""

from __future__ import annotations

import gc
import hashlib
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pandera.polars as pa
import polars as pl
from pandera.typing.polars import DataFrame
from pydantic import Field

from scythe import (
    ExperimentInputSpec,
    ExperimentOutputSpec,
    ExperimentRegistry,
    FileReference,
    OptionalFileReference,
)


class Probe(ExperimentInputSpec):
    """A spec whose fields cover the type map and steer the function's behaviour."""

    x: float = Field(..., ge=0, description="An input value")
    mode: Literal[
        "ok",
        "raise",
        "crash_once",
        "crash_always",
        "bad_output",
        "wrong_type",
        "slow",
        "bad_frame",
        "bad_scalar",
        "extra_frames",
        "fail_until_fixed",
    ] = "ok"
    floors: int | None = None
    when: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    data_file: OptionalFileReference = None
    marker_dir: str = ""

    @property
    def computed_features(self) -> dict[str, int | float | str]:
        return {"x_squared": self.x**2}


class Rows(pa.DataFrameModel):
    step: int = pa.Field(ge=0)
    value: float


class ProbeOut(ExperimentOutputSpec):
    y: float = Field(..., ge=0)
    floors_out: int | None = None
    label: str
    file_digest: str | None = None
    report: FileReference
    rows: DataFrame[Rows]


@ExperimentRegistry.Register(name="probe", retries=1)
def probe(spec: Probe, tempdir: Path) -> ProbeOut:
    if spec.mode == "raise":
        raise ValueError(f"spec {spec.sort_index} asked to fail")
    if spec.mode == "fail_until_fixed" and not (Path(spec.marker_dir) / "fixed").exists():
        raise ValueError(f"spec {spec.sort_index} fails until {spec.marker_dir}/fixed exists")
    if spec.mode == "crash_always":
        os._exit(17)
    if spec.mode == "crash_once":
        marker = Path(spec.marker_dir) / f"crashed-{spec.sort_index}"
        if not marker.exists():
            marker.write_text("crashed once")
            os._exit(9)
    if spec.mode == "slow":
        time.sleep(0.2)
    if spec.mode == "wrong_type":
        return {"y": 1.0}  # type: ignore[return-value]
    digest = None
    if spec.data_file is not None:
        assert isinstance(spec.data_file, Path), "file inputs arrive as local paths"
        digest = hashlib.sha256(spec.data_file.read_bytes()).hexdigest()[:12]
    report = tempdir / "report.txt"
    report.write_text(f"spec {spec.sort_index}: x={spec.x}\n")
    n = int(spec.x) % 3 + 1
    rows = pl.DataFrame({"step": list(range(n)), "value": [spec.x * i for i in range(n)]})
    y: object = -1.0 if spec.mode == "bad_output" else spec.x * 2
    if spec.mode == "bad_frame":
        rows = rows.with_columns(pl.lit("not a number").alias("value"))
    if spec.mode == "bad_scalar":
        y = "not a number"
    # model_construct skips validation: these modes stand for outputs that slipped past it
    unchecked = spec.mode in ("bad_output", "bad_frame", "bad_scalar")
    out_cls = ProbeOut.model_construct if unchecked else ProbeOut
    extra = {"loose": pl.DataFrame({"a": [1]})} if spec.mode == "extra_frames" else {}
    return out_cls(
        dataframes=extra,
        y=y,
        floors_out=spec.floors,
        label=f"s{spec.sort_index}",
        file_digest=digest,
        report=report,
        rows=rows,
    )


@ExperimentRegistry.Register(name="slow_probe", execution_timeout=timedelta(seconds=2))
def slow_probe(spec: Probe) -> ProbeOut:
    """Overruns its 2 s execution timeout for mode 'slow'."""
    if spec.mode == "slow":
        time.sleep(60)
    return probe.fn(spec, Path(tempfile.mkdtemp()))


class Nothing(ExperimentInputSpec):
    pass


class GcThresholds(ExperimentOutputSpec):
    young: int
    middle: int
    old: int


@ExperimentRegistry.Register(name="gc_thresholds")
def gc_thresholds(spec: Nothing) -> GcThresholds:
    """The garbage collector thresholds of the process the leaf runs in."""
    young, middle, old = gc.get_threshold()
    return GcThresholds(young=young, middle=middle, old=old)


class SubmitOnlyEngine:
    """An engine that takes a run's root node and runs nothing: the test drives the nodes."""

    name = "local"
    parallelism = 1

    def __init__(self) -> None:
        self.root = None

    def check(self, experiment) -> None:
        pass

    def waits_by_default(self) -> bool:
        return False

    def submit(self, root):
        self.root = root
        return None
