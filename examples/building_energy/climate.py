"""Hourly typical-year climate data and the moist-air relations used with it.

A climate file is a Parquet table of 8760 hourly rows (a non-leap year in local
standard time) with at least the columns in ``REQUIRED_COLUMNS``.

Psychrometrics at sea level (total pressure ``P = 101325 Pa``):

* saturation vapour pressure over water (Magnus form, Alduchov & Eskridge 1996),
  ``p_ws = 610.94 * exp(17.625 * t / (t + 243.04))``  [Pa], ``t`` in degC
* humidity ratio ``W = 0.621945 * p_w / (P - p_w)``  [kg water / kg dry air]
* specific enthalpy ``h = 1.006 * t + W * (2501 + 1.86 * t)``  [kJ / kg dry air]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

HOURS_PER_YEAR = 8760
ATMOSPHERIC_PRESSURE_PA = 101_325.0
DATA_DIR = Path(__file__).resolve().parent / "data"

REQUIRED_COLUMNS = ("month", "drybulb_c", "humidity_ratio", "enthalpy_kj_kg", "ghi_w_m2")

_WATER_TO_AIR_MOLAR_MASS = 0.621945


def saturation_pressure_pa(drybulb_c: np.ndarray | float) -> np.ndarray:
    """Saturation vapour pressure over liquid water [Pa]."""
    t = np.asarray(drybulb_c, dtype=np.float64)
    return 610.94 * np.exp(17.625 * t / (t + 243.04))


def humidity_ratio(drybulb_c: np.ndarray | float, relhum_pct: np.ndarray | float) -> np.ndarray:
    """Humidity ratio [kg/kg] of air at ``drybulb_c`` and relative humidity ``relhum_pct``."""
    p_w = np.asarray(relhum_pct, dtype=np.float64) / 100.0 * saturation_pressure_pa(drybulb_c)
    return _WATER_TO_AIR_MOLAR_MASS * p_w / (ATMOSPHERIC_PRESSURE_PA - p_w)


def relative_humidity(
    drybulb_c: np.ndarray | float, humidity_ratio_kg_kg: np.ndarray | float
) -> np.ndarray:
    """Relative humidity [%] of air at ``drybulb_c`` holding ``humidity_ratio_kg_kg``."""
    w = np.asarray(humidity_ratio_kg_kg, dtype=np.float64)
    p_w = w * ATMOSPHERIC_PRESSURE_PA / (_WATER_TO_AIR_MOLAR_MASS + w)
    return 100.0 * p_w / saturation_pressure_pa(drybulb_c)


def moist_air_enthalpy(
    drybulb_c: np.ndarray | float, humidity_ratio_kg_kg: np.ndarray | float
) -> np.ndarray:
    """Specific enthalpy of moist air [kJ/kg dry air]."""
    t = np.asarray(drybulb_c, dtype=np.float64)
    w = np.asarray(humidity_ratio_kg_kg, dtype=np.float64)
    return 1.006 * t + w * (2501.0 + 1.86 * t)


@dataclass(frozen=True, eq=False)
class Climate:
    """One typical year of hourly weather; every array has 8760 read-only entries."""

    drybulb_c: np.ndarray
    humidity_ratio: np.ndarray
    enthalpy_kj_kg: np.ndarray
    ghi_w_m2: np.ndarray
    month: np.ndarray
    name: str = ""

    def __post_init__(self) -> None:
        for field in ("drybulb_c", "humidity_ratio", "enthalpy_kj_kg", "ghi_w_m2", "month"):
            values = getattr(self, field)
            if values.shape != (HOURS_PER_YEAR,):
                raise ValueError(
                    f"climate {self.name!r}: {field} has shape {values.shape}, "
                    f"expected ({HOURS_PER_YEAR},)"
                )
            # Frozen dataclass alone would still let callers mutate the arrays in place.
            values.setflags(write=False)


def climate_path(name: str) -> Path:
    """Path of a bundled climate file, e.g. ``climate_path("boston")``."""
    path = DATA_DIR / f"{name.lower()}.parquet"
    if not path.is_file():
        available = sorted(p.stem for p in DATA_DIR.glob("*.parquet"))
        raise ValueError(f"unknown climate {name!r}; available: {available}")
    return path


def load_climate(path: str | Path) -> Climate:
    """Read and validate a climate Parquet file.

    Raises ``ValueError`` naming the file when a required column is missing, the
    row count is not 8760, or values are out of range.
    """
    path = Path(path)
    frame = pl.read_parquet(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"climate file {path}: missing column(s) {', '.join(missing)}")
    if frame.height != HOURS_PER_YEAR:
        raise ValueError(f"climate file {path}: has {frame.height} rows, expected {HOURS_PER_YEAR}")

    def column(name: str) -> np.ndarray:
        values = frame.get_column(name).cast(pl.Float64).to_numpy().copy()
        if not np.all(np.isfinite(values)):
            raise ValueError(f"climate file {path}: column {name} has missing or non-finite values")
        return values

    month = column("month").astype(np.int64)
    if month.min() < 1 or month.max() > 12:
        raise ValueError(f"climate file {path}: month values must lie in 1..12")
    ghi = column("ghi_w_m2")
    if ghi.min() < 0.0:
        raise ValueError(f"climate file {path}: ghi_w_m2 has negative values")
    return Climate(
        drybulb_c=column("drybulb_c"),
        humidity_ratio=column("humidity_ratio"),
        enthalpy_kj_kg=column("enthalpy_kj_kg"),
        ghi_w_m2=ghi,
        month=month,
        name=path.stem,
    )
