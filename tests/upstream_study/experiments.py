"""A study as a scythe-engine 1.x user wrote it: upstream import paths, upstream idioms.

Nothing here imports from ``scythe`` itself: every name comes from the module
scythe-engine 1.x had it in.
"""

from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import Field

from scythe.base import ExperimentInputSpec, ExperimentOutputSpec
from scythe.registry import ExperimentRegistry
from scythe.utils.filesys import FileReference


class WallSpec(ExperimentInputSpec):
    """One wall assembly in one climate."""

    r_value: float = Field(..., description="R-value [m2K/W]", ge=0.5, le=15)
    climate: Literal["hot", "cold"] = Field(..., description="Climate zone")
    floors: int | None = Field(default=None, description="Storeys (optional)")
    weather_file: FileReference = Field(..., description="Monthly outdoor temperatures")

    @property
    def computed_features(self) -> dict[str, float]:
        return {"u_value": 1 / self.r_value}


class WallResult(ExperimentOutputSpec):
    """Annual heat loss, a report file, and monthly loads in `dataframes`."""

    heat_loss: float = Field(..., description="Annual heat loss [kWh/m2]", ge=0)
    peak_month: int = Field(..., ge=1, le=12)
    report: FileReference = Field(..., description="A text report")


@ExperimentRegistry.Register(retries=1, execution_timeout="5m", schedule_timeout="2h")
def simulate_wall(input_spec: WallSpec, tempdir: Path) -> WallResult:
    """Degree-months times U-value: a tiny stand-in for a building simulation."""
    temperatures = [float(t) for t in Path(input_spec.weather_file).read_text().split()]
    if input_spec.r_value > 14:
        raise ValueError(f"r_value {input_spec.r_value} is off the model's chart")
    base = 18.0 if input_spec.climate == "cold" else 24.0
    loads = [max(base - t, 0.0) * input_spec.computed_features["u_value"] for t in temperatures]
    monthly = pd.DataFrame({"load": loads, "temperature": temperatures})
    monthly.index = input_spec.make_multiindex(
        additional_index_data=[{"month": m} for m in range(1, 13)], n_rows=12
    )
    report = tempdir / "report.txt"
    report.write_text(f"{input_spec.climate} wall R{input_spec.r_value}: {sum(loads):.2f}\n")
    input_spec.log(f"simulated spec {input_spec.sort_index}")
    return WallResult(
        heat_loss=sum(loads),
        peak_month=loads.index(max(loads)) + 1,
        report=report,
        dataframes={"monthly": monthly},
    )
