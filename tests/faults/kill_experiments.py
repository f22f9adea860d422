"""The experiment the kill trials run (tests/faults/test_kill_trials.py).

Imported by the trial's driver, resume and worker processes, which find it on
``PYTHONPATH`` (the test sets it to this directory) as ``kill_experiments``;
the test process itself never imports it.

Each leaf sleeps ``sleep`` seconds, so a run lasts long enough to be killed at
a chosen point; its outputs depend on ``x`` alone, so every attempt of a spec
(first run, retried node, resumed run, late orphan) produces the same values.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandera.polars as pa
import polars as pl
from pandera.typing.polars import DataFrame
from pydantic import Field

from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry

NAME = "kill_trial_sleepy"


class Sleepy(ExperimentInputSpec):
    """A spec whose leaf sleeps, then returns values derived from ``x`` (or raises)."""

    x: float = Field(..., ge=0)
    sleep: float = Field(0.0, ge=0)
    fail: bool = False
    marker_dir: str = Field("", description="If set, each leaf leaves a file here as it starts")


class SleepyRows(pa.DataFrameModel):
    step: int = pa.Field(ge=0)
    value: float


class SleepyOut(ExperimentOutputSpec):
    y: float
    label: str
    rows: DataFrame[SleepyRows]


def expected_y(x: float) -> float:
    return 3.0 * x + 1.0


def expected_rows(x: float) -> list[tuple[int, float]]:
    """The ``(step, value)`` rows of a spec's ``rows`` table."""
    return [(i, x * i + 0.5) for i in range(int(x) % 3 + 1)]


def expected_label(x: float) -> str:
    return f"x={x:g}"


# retries=1: a worker killed under a spec charges that spec one attempt; with a
# second one left, a single kill never turns a spec into a failure.
@ExperimentRegistry.Register(name=NAME, retries=1)
def sleepy(spec: Sleepy) -> SleepyOut:
    if spec.marker_dir:  # tells the test that leaves run (the store shows nothing yet)
        Path(spec.marker_dir, f"{spec.sort_index}-{os.getpid()}-{time.monotonic_ns()}").touch()
    time.sleep(spec.sleep)
    if spec.fail:
        raise ValueError(f"x={spec.x:g} asked to fail")
    steps = expected_rows(spec.x)
    rows = pl.DataFrame(
        {"step": [s for s, _ in steps], "value": [v for _, v in steps]},
        schema={"step": pl.Int64, "value": pl.Float64},
    )
    return SleepyOut(y=expected_y(spec.x), label=expected_label(spec.x), rows=rows)
