"""The building-energy experiment: specs, outputs and the registered function.

One spec is one building in one climate; one run of the function is a year of
hourly simulation with the ISO 13790 5R1C model in ``model.py``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import numpy as np
import pandera.polars as pa
from pandera.typing.polars import DataFrame
from pydantic import Field, model_validator

from examples.building_energy.climate import Climate, climate_path, load_climate
from examples.building_energy.model import BuildingParameters, simulate_building
from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry, FileReference

CLIMATES = ("boston", "phoenix", "miami", "minneapolis")


class BuildingSpec(ExperimentInputSpec):
    """Inputs of one building energy simulation."""

    r_value: float = Field(..., gt=0, le=15, description="Wall R-value [m2K/W]")
    window_ratio: float = Field(..., ge=0.05, le=0.9, description="Window-to-wall ratio [-]")
    heating_setpoint_c: float = Field(20.0, ge=15, le=24, description="Heating setpoint [C]")
    cooling_setpoint_c: float = Field(24.0, ge=16, le=30, description="Cooling setpoint [C]")
    economizer: Literal["none", "drybulb", "enthalpy"] = Field("none", description="Free cooling")
    infiltration_ach: float = Field(0.5, ge=0, le=3, description="Infiltration [air changes/h]")
    floors: int | None = Field(None, ge=1, le=40, description="Storeys; None for one")
    weather_file: FileReference = Field(..., description="Hourly climate (Parquet)")

    @model_validator(mode="after")
    def _cooling_above_heating(self) -> BuildingSpec:
        if self.cooling_setpoint_c < self.heating_setpoint_c + 1.0:
            raise ValueError(
                f"cooling_setpoint_c={self.cooling_setpoint_c!r} must be at least 1 K above "
                f"heating_setpoint_c={self.heating_setpoint_c!r}"
            )
        return self

    @property
    def computed_features(self) -> dict[str, int | float | str]:
        return {"setpoint_band_c": self.cooling_setpoint_c - self.heating_setpoint_c}


class MonthlyEnergy(pa.DataFrameModel):
    """Energy use per calendar month."""

    month: int = pa.Field(ge=1, le=12)
    heating_kwh_m2: float = pa.Field(ge=0)
    cooling_kwh_m2: float = pa.Field(ge=0)


class BuildingEnergy(ExperimentOutputSpec):
    """Outputs of one building energy simulation."""

    heating_kwh_m2: float = Field(..., ge=0, description="Annual heating [kWh/m2]")
    cooling_kwh_m2: float = Field(..., ge=0, description="Annual cooling [kWh/m2]")
    peak_heating_w_m2: float = Field(..., ge=0, description="Peak heating load [W/m2]")
    peak_cooling_w_m2: float = Field(..., ge=0, description="Peak cooling load [W/m2]")
    monthly: DataFrame[MonthlyEnergy] = Field(..., description="Monthly energy")
    timeseries: FileReference = Field(..., description="Hourly loads and temperatures (Parquet)")


@functools.lru_cache(maxsize=16)
def _climate(path: str) -> Climate:
    # A worker runs many specs of the same few climates: parse each file once.
    return load_climate(path)


@ExperimentRegistry.Register(
    name="building_energy",
    description="Annual heating and cooling of a box building (ISO 13790 5R1C, hourly).",
    retries=1,
)
def simulate_energy(spec: BuildingSpec, tempdir: Path) -> BuildingEnergy:
    """Simulate one building for a year and report its loads."""
    params = BuildingParameters(
        r_value=spec.r_value,
        window_ratio=spec.window_ratio,
        heating_setpoint_c=spec.heating_setpoint_c,
        cooling_setpoint_c=spec.cooling_setpoint_c,
        economizer=spec.economizer,
        infiltration_ach=spec.infiltration_ach,
        floors=spec.floors,
    )
    result = simulate_building(params, _climate(str(spec.weather_file)))
    hourly = tempdir / "hourly.parquet"
    result.hourly.write_parquet(hourly, compression="zstd")
    return BuildingEnergy(
        heating_kwh_m2=result.heating_kwh_m2,
        cooling_kwh_m2=result.cooling_kwh_m2,
        peak_heating_w_m2=result.peak_heating_w_m2,
        peak_cooling_w_m2=result.peak_cooling_w_m2,
        monthly=result.monthly,
        timeseries=hourly,
    )


def sample_specs(
    n: int, *, seed: int = 0, climates: tuple[str, ...] = CLIMATES
) -> list[BuildingSpec]:
    """``n`` buildings drawn uniformly over the design space (reproducible for a seed).

    >>> [s.economizer for s in sample_specs(3, seed=1)]
    ['drybulb', 'enthalpy', 'enthalpy']
    """
    rng = np.random.default_rng(seed)
    specs = []
    for _ in range(n):
        heating = float(rng.uniform(17, 22))
        floors = int(rng.integers(1, 11))
        specs.append(
            BuildingSpec(
                r_value=round(float(rng.uniform(0.5, 8.0)), 3),
                window_ratio=round(float(rng.uniform(0.1, 0.7)), 3),
                heating_setpoint_c=round(heating, 2),
                cooling_setpoint_c=round(heating + float(rng.uniform(2, 6)), 2),
                economizer=str(rng.choice(["none", "drybulb", "enthalpy"])),
                infiltration_ach=round(float(rng.uniform(0.1, 1.5)), 3),
                floors=None if floors == 1 else floors,
                weather_file=climate_path(str(rng.choice(list(climates)))),
            )
        )
    return specs
