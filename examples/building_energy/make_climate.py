"""Synthesise hourly typical-year climate files from monthly climate normals.

The output is synthetic weather, not measured data. For each climate the script
turns twelve monthly normals into 8760 hourly values (year 2023, local standard
time, hour ``i`` covering ``[i, i + 1)`` h after 1 January 00:00):

* Dry-bulb temperature [degC]: the monthly means, interpolated periodically
  through mid-month, plus a seeded AR(1) day-to-day anomaly (lag-1 correlation
  0.7, standard deviation larger in winter), plus a diurnal cycle
  ``DR_day * s(hour)`` where ``s`` is the ASHRAE fractional daily-range profile
  made zero-mean and ``DR_day`` is the monthly mean daily range scaled by the
  day's cloudiness. Each month is then shifted so its mean equals the normal.
* Global horizontal irradiance [W/m2]: clear-sky shape from solar geometry,
  ``cos z = sin(lat) sin(dec) + cos(lat) cos(dec) cos(omega)`` with declination
  ``dec = 23.45 deg * sin(360/365 * (284 + n))`` and hour angle
  ``omega = 15 deg * (hour + 0.5 - 12)`` (solar time taken equal to standard
  time), and the Haurwitz clear-sky model ``1098 cos z exp(-0.057 / cos z)``.
  Each day's clear-sky profile is scaled by a daily clear-sky index in
  [0.1, 1] (seeded AR(1) cloudiness, shifted per month by bisection) so each
  month's mean daily total equals the normal [kWh/m2/day].
* Humidity: a humidity ratio that varies from day to day (seeded, partly
  correlated with the temperature anomaly) and is capped at saturation; each
  month's level is found by bisection so the mean hourly relative humidity equals
  the normal. Enthalpy follows from dry-bulb and humidity ratio at sea level.

Run from the repository root::

    python -m examples.building_energy.make_climate

The same seeds give byte-identical values, so the files can be regenerated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from examples.building_energy.climate import (
    DATA_DIR,
    HOURS_PER_YEAR,
    humidity_ratio,
    moist_air_enthalpy,
    relative_humidity,
)

YEAR = 2023
DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# ASHRAE Handbook - Fundamentals (ch. 14) fraction of the daily range below the
# daily maximum, for the hours ending 01:00 ... 24:00 local time.
ASHRAE_DAILY_RANGE_FRACTION = (
    0.87, 0.92, 0.96, 0.99, 1.00, 0.98, 0.93, 0.84, 0.71, 0.56, 0.39, 0.23,
    0.11, 0.03, 0.00, 0.03, 0.10, 0.21, 0.34, 0.47, 0.58, 0.68, 0.76, 0.82,
)  # fmt: skip

TEMPERATURE_AR1 = 0.7
CLOUDINESS_AR1 = 0.4
HUMIDITY_AR1 = 0.6
HUMIDITY_LOG_SD = 0.15
HUMIDITY_TEMPERATURE_CORRELATION = 0.5


@dataclass(frozen=True)
class MonthlyNormals:
    """Long-term monthly climate normals for one site, January to December.

    ``daily_sd_winter_k`` / ``daily_sd_summer_k`` and ``seed`` are generator
    settings (day-to-day variability of the daily mean temperature), not normals.
    """

    name: str
    latitude_deg: float
    drybulb_c: tuple[float, ...]
    daily_range_k: tuple[float, ...]
    relhum_pct: tuple[float, ...]
    ghi_kwh_m2_day: tuple[float, ...]
    daily_sd_winter_k: float
    daily_sd_summer_k: float
    seed: int


# Rounded long-term monthly normals: mean dry-bulb and mean daily range (daily
# max minus daily min) in the style of the NOAA 1991-2020 U.S. Climate Normals for
# the airport stations, mean relative humidity as in NOAA Comparative Climatic
# Data, mean daily global horizontal irradiation as in NREL long-term solar
# resource averages. Approximate; adequate for a demonstration, not for design.
NORMALS: dict[str, MonthlyNormals] = {
    "boston": MonthlyNormals(
        name="boston",
        latitude_deg=42.36,
        drybulb_c=(-1.2, -0.1, 3.5, 9.2, 14.7, 20.0, 23.4, 22.6, 18.7, 12.7, 7.1, 2.1),
        daily_range_k=(7.7, 7.9, 8.1, 8.9, 9.4, 9.4, 9.2, 9.0, 8.9, 8.6, 8.0, 7.6),
        relhum_pct=(62, 62, 63, 62, 66, 68, 68, 70, 71, 68, 67, 65),
        ghi_kwh_m2_day=(1.9, 2.7, 3.8, 4.8, 5.7, 6.1, 6.1, 5.4, 4.4, 3.1, 2.0, 1.6),
        daily_sd_winter_k=4.0,
        daily_sd_summer_k=2.5,
        seed=4201,
    ),
    "phoenix": MonthlyNormals(
        name="phoenix",
        latitude_deg=33.43,
        drybulb_c=(13.8, 15.8, 19.1, 22.9, 28.1, 33.4, 35.3, 34.7, 31.4, 24.9, 18.1, 13.3),
        daily_range_k=(11.9, 12.2, 12.8, 13.6, 14.0, 13.8, 11.4, 11.2, 11.8, 12.6, 12.4, 11.8),
        relhum_pct=(50, 44, 39, 28, 21, 17, 29, 34, 33, 35, 42, 51),
        ghi_kwh_m2_day=(3.3, 4.3, 5.6, 7.0, 7.8, 8.1, 7.4, 6.9, 6.1, 4.9, 3.7, 3.0),
        daily_sd_winter_k=2.5,
        daily_sd_summer_k=1.5,
        seed=3343,
    ),
    "miami": MonthlyNormals(
        name="miami",
        latitude_deg=25.79,
        drybulb_c=(20.1, 21.2, 22.4, 24.3, 26.4, 28.0, 28.7, 28.9, 28.3, 26.8, 23.9, 21.8),
        daily_range_k=(8.1, 8.1, 8.0, 7.7, 7.2, 6.6, 6.7, 6.7, 6.5, 6.4, 7.1, 7.7),
        relhum_pct=(72, 70, 69, 67, 71, 76, 75, 76, 78, 75, 74, 72),
        ghi_kwh_m2_day=(3.5, 4.3, 5.3, 6.2, 6.3, 5.9, 6.1, 5.7, 5.0, 4.5, 3.7, 3.3),
        daily_sd_winter_k=2.2,
        daily_sd_summer_k=0.8,
        seed=2579,
    ),
    "minneapolis": MonthlyNormals(
        name="minneapolis",
        latitude_deg=44.88,
        drybulb_c=(-8.8, -6.3, 0.7, 8.1, 14.9, 20.4, 22.9, 21.6, 16.9, 9.6, 1.3, -5.9),
        daily_range_k=(8.2, 8.8, 9.3, 11.0, 11.2, 10.9, 10.6, 10.4, 10.6, 10.0, 8.4, 7.8),
        relhum_pct=(73, 70, 68, 60, 60, 64, 64, 67, 69, 67, 72, 75),
        ghi_kwh_m2_day=(1.9, 2.9, 4.0, 5.0, 5.9, 6.4, 6.5, 5.6, 4.3, 2.9, 1.8, 1.5),
        daily_sd_winter_k=5.5,
        daily_sd_summer_k=3.0,
        seed=4488,
    ),
}


@dataclass(frozen=True)
class Calendar:
    """Index arrays for the 8760 hours of a non-leap year."""

    hour: np.ndarray  # 0..8759
    day: np.ndarray  # 0..364, per hour
    hour_of_day: np.ndarray  # 0..23
    month: np.ndarray  # 1..12, per hour
    day_month: np.ndarray  # 1..12, per day (365 entries)


def make_calendar() -> Calendar:
    hour = np.arange(HOURS_PER_YEAR, dtype=np.int64)
    day_month = np.repeat(np.arange(1, 13, dtype=np.int64), DAYS_IN_MONTH)
    day = hour // 24
    return Calendar(
        hour=hour, day=day, hour_of_day=hour % 24, month=day_month[day], day_month=day_month
    )


def ar1_series(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    """Unit-variance stationary AR(1) series ``z_t = phi z_{t-1} + sqrt(1-phi^2) e_t``."""
    shocks = rng.standard_normal(n)
    z = np.empty(n)
    z[0] = shocks[0]
    scale = np.sqrt(1.0 - phi * phi)
    for t in range(1, n):
        z[t] = phi * z[t - 1] + scale * shocks[t]
    return z


def periodic_monthly_interp(values: tuple[float, ...], hours: np.ndarray) -> np.ndarray:
    """Interpolate twelve monthly values placed at mid-month, wrapping around the year."""
    month_start_h = 24.0 * np.concatenate([[0.0], np.cumsum(DAYS_IN_MONTH[:-1])])
    mid_month_h = month_start_h + 12.0 * np.asarray(DAYS_IN_MONTH)
    return np.interp(hours + 0.5, mid_month_h, np.asarray(values, float), period=HOURS_PER_YEAR)


def daily_to_hourly(daily: np.ndarray, hours: np.ndarray) -> np.ndarray:
    """Interpolate day-centred values to hours so weather changes smoothly across midnight."""
    day_centre_h = 24.0 * np.arange(daily.size) + 12.0
    return np.interp(hours + 0.5, day_centre_h, daily, period=HOURS_PER_YEAR)


def monthly_mean(values: np.ndarray, month: np.ndarray) -> np.ndarray:
    return np.bincount(month - 1, weights=values, minlength=12) / np.bincount(
        month - 1, minlength=12
    )


def winter_weight(day: np.ndarray) -> np.ndarray:
    """1 in mid-January, 0 in mid-July (northern hemisphere)."""
    return 0.5 * (1.0 + np.cos(2.0 * np.pi * (day - 15) / 365.0))


def cos_zenith(latitude_deg: float, cal: Calendar) -> np.ndarray:
    """Cosine of the solar zenith angle at each hour's midpoint (negative at night)."""
    lat = np.radians(latitude_deg)
    declination = np.radians(23.45) * np.sin(2.0 * np.pi * (284 + cal.day + 1) / 365.0)
    hour_angle = np.radians(15.0 * (cal.hour_of_day + 0.5 - 12.0))
    return np.sin(lat) * np.sin(declination) + np.cos(lat) * np.cos(declination) * np.cos(
        hour_angle
    )


def clear_sky_ghi(cosz: np.ndarray) -> np.ndarray:
    """Haurwitz clear-sky global horizontal irradiance [W/m2]."""
    up = np.clip(cosz, 1e-6, None)
    return np.where(cosz > 0.0, 1098.0 * up * np.exp(-0.057 / up), 0.0)


def synthesise_ghi(
    normals: MonthlyNormals, cal: Calendar, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Hourly GHI [W/m2] and the daily clear-sky index relative to its monthly mean."""
    clear = clear_sky_ghi(cos_zenith(normals.latitude_deg, cal))
    clear_daily_wh = np.bincount(cal.day, weights=clear, minlength=365)
    target_daily_wh = 1000.0 * np.asarray(normals.ghi_kwh_m2_day)[cal.day_month - 1]
    clearness = target_daily_wh / clear_daily_wh  # monthly-normal clear-sky index per day

    # Spread shrinks as the month approaches clear sky: a sunny month has few dull days.
    spread = 0.8 * (1.0 - np.clip(clearness, 0.0, 0.95))
    noisy = clearness + spread * ar1_series(rng, 365, CLOUDINESS_AR1)
    index = np.clip(noisy, 0.1, 1.0)
    # Shift each month's index so its mean daily total equals the normal while no
    # day exceeds clear sky; the monthly total rises monotonically with the shift.
    target_monthly = monthly_mean(target_daily_wh, cal.day_month)
    low, high = np.full(12, -1.0), np.full(12, 1.0)
    for _ in range(60):
        mid = 0.5 * (low + high)
        index = np.clip(noisy + mid[cal.day_month - 1], 0.1, 1.0)
        too_bright = monthly_mean(index * clear_daily_wh, cal.day_month) > target_monthly
        high = np.where(too_bright, mid, high)
        low = np.where(too_bright, low, mid)
    index = np.clip(noisy + (0.5 * (low + high))[cal.day_month - 1], 0.1, 1.0)
    daily_wh = index * clear_daily_wh

    ghi = clear * (daily_wh / clear_daily_wh)[cal.day]
    relative_index = index / monthly_mean(index, cal.day_month)[cal.day_month - 1]
    return ghi, relative_index


def synthesise_drybulb(
    normals: MonthlyNormals, cal: Calendar, rng: np.random.Generator, relative_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Hourly dry-bulb [degC] and the hourly unit-variance weather anomaly driving it."""
    days = np.arange(365)
    daily_sd = normals.daily_sd_summer_k + (
        normals.daily_sd_winter_k - normals.daily_sd_summer_k
    ) * winter_weight(days)
    anomaly_z = ar1_series(rng, 365, TEMPERATURE_AR1)
    anomaly_c = daily_to_hourly(daily_sd * anomaly_z, cal.hour)

    fraction = np.asarray(ASHRAE_DAILY_RANGE_FRACTION)
    diurnal_shape = fraction.mean() - fraction  # zero mean, +0.5..+0.6 mid-afternoon
    # Clear days have larger swings than overcast ones; the multiplier averages 1 per month.
    range_k = periodic_monthly_interp(normals.daily_range_k, cal.hour) * (
        0.6 + 0.4 * relative_index[cal.day]
    )
    drybulb = (
        periodic_monthly_interp(normals.drybulb_c, cal.hour)
        + anomaly_c
        + range_k * diurnal_shape[cal.hour_of_day]
    )
    correction = np.asarray(normals.drybulb_c) - monthly_mean(drybulb, cal.month)
    return drybulb + correction[cal.month - 1], daily_to_hourly(anomaly_z, cal.hour)


def capped_humidity_ratio(drybulb_c: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Limit a humidity ratio to saturation at the given dry-bulb."""
    return np.minimum(w, humidity_ratio(drybulb_c, 100.0))


def synthesise_humidity_ratio(
    normals: MonthlyNormals,
    cal: Calendar,
    rng: np.random.Generator,
    drybulb_c: np.ndarray,
    temperature_z: np.ndarray,
) -> np.ndarray:
    """Hourly humidity ratio [kg/kg] whose monthly mean RH equals the normals."""
    rho = HUMIDITY_TEMPERATURE_CORRELATION
    own_z = daily_to_hourly(ar1_series(rng, 365, HUMIDITY_AR1), cal.hour)
    z = rho * temperature_z + np.sqrt(1.0 - rho * rho) * own_z
    first_guess = humidity_ratio(np.asarray(normals.drybulb_c), np.asarray(normals.relhum_pct))
    shape = periodic_monthly_interp(tuple(first_guess), cal.hour) * np.exp(HUMIDITY_LOG_SD * z)

    target = np.asarray(normals.relhum_pct, dtype=float)
    low, high = np.full(12, 0.05), np.full(12, 5.0)
    for _ in range(60):  # mean RH rises monotonically with the multiplier
        mid = 0.5 * (low + high)
        w = capped_humidity_ratio(drybulb_c, shape * mid[cal.month - 1])
        too_humid = monthly_mean(relative_humidity(drybulb_c, w), cal.month) > target
        high = np.where(too_humid, mid, high)
        low = np.where(too_humid, low, mid)
    return capped_humidity_ratio(drybulb_c, shape * (0.5 * (low + high))[cal.month - 1])


def synthesise(normals: MonthlyNormals) -> pl.DataFrame:
    """Hourly climate table for one site."""
    cal = make_calendar()
    rng = np.random.default_rng(normals.seed)
    ghi, relative_index = synthesise_ghi(normals, cal, rng)
    drybulb, temperature_z = synthesise_drybulb(normals, cal, rng, relative_index)
    w = synthesise_humidity_ratio(normals, cal, rng, drybulb, temperature_z)

    # Rounding to instrument-like resolution keeps the Parquet files small.
    drybulb = np.round(drybulb, 2)
    w = np.round(np.minimum(w, humidity_ratio(drybulb, 100.0)), 6)
    return pl.DataFrame(
        {
            "hour": pl.Series(cal.hour, dtype=pl.Int64),
            "month": pl.Series(cal.month, dtype=pl.Int64),
            "drybulb_c": drybulb,
            "relhum_pct": np.round(np.minimum(relative_humidity(drybulb, w), 100.0), 1),
            "humidity_ratio": w,
            "enthalpy_kj_kg": np.round(moist_air_enthalpy(drybulb, w), 3),
            "ghi_w_m2": np.round(np.maximum(ghi, 0.0), 1),
        }
    )


def write_all(out_dir: Path = DATA_DIR) -> list[Path]:
    """Write one zstd-compressed Parquet file per climate; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, normals in NORMALS.items():
        path = out_dir / f"{name}.parquet"
        synthesise(normals).write_parquet(path, compression="zstd", compression_level=19)
        paths.append(path)
    return paths


def main() -> None:
    for path in write_all():
        print(f"{path}  {path.stat().st_size / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
