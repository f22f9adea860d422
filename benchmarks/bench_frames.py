"""The typed-frame experiment of the benchmarks: its own module, because it imports pandera
(the scalar experiments' workers should not pay for that import)."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from bench_experiments import Point
from pandera.typing.polars import DataFrame

from scythe import ExperimentOutputSpec, ExperimentRegistry


class Hourly(pa.DataFrameModel):
    hour: int = pa.Field(ge=0, le=23)
    load: float = pa.Field(ge=0)


class Profile(ExperimentOutputSpec):
    peak: float
    hourly: DataFrame[Hourly]


def hourly_load(x: float, k: int) -> list[float]:
    return [abs(x) + h * (k + 1) for h in range(24)]


@ExperimentRegistry.Register(name="bench_frames")
def frames(spec: Point) -> Profile:
    """A 24-row typed frame (two checked columns) and one scalar."""
    load = hourly_load(spec.x, spec.k)
    return Profile(peak=max(load), hourly=pl.DataFrame({"hour": list(range(24)), "load": load}))
