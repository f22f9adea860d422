"""Physics sanity checks for the example building model and its synthetic climates."""

from __future__ import annotations

import math
from dataclasses import replace
from functools import cache
from itertools import pairwise
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from examples.building_energy import model
from examples.building_energy.climate import (
    HOURS_PER_YEAR,
    Climate,
    climate_path,
    load_climate,
    moist_air_enthalpy,
    relative_humidity,
)
from examples.building_energy.make_climate import NORMALS, synthesise
from examples.building_energy.model import BuildingParameters, simulate_building

CLIMATES = tuple(NORMALS)
COLD_CLIMATES = ("boston", "minneapolis")


@cache
def climate(name: str) -> Climate:
    return load_climate(climate_path(name))


@cache
def climate_frame(name: str) -> pl.DataFrame:
    return pl.read_parquet(climate_path(name))


def annual(params: BuildingParameters, name: str) -> tuple[float, float]:
    result = simulate_building(params, climate(name))
    return result.heating_kwh_m2, result.cooling_kwh_m2


# --- climate files -------------------------------------------------------------------


@pytest.mark.parametrize("name", CLIMATES)
def test_climate_file_loads_with_one_row_per_hour(name: str) -> None:
    path = climate_path(name)
    assert path.stat().st_size < 300 * 1024
    frame = climate_frame(name)
    assert frame.height == HOURS_PER_YEAR
    assert frame["hour"].dtype == pl.Int64
    assert frame["hour"].to_list() == list(range(HOURS_PER_YEAR))
    assert frame["month"].value_counts().sort("month")["count"].to_list() == [
        24 * d for d in (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    ]
    loaded = climate(name)
    assert loaded.drybulb_c.dtype == np.float64
    assert (loaded.ghi_w_m2 >= 0).all()


@pytest.mark.parametrize("name", CLIMATES)
def test_monthly_means_match_the_normals(name: str) -> None:
    normals = NORMALS[name]
    monthly = (
        climate_frame(name)
        .group_by("month")
        .agg(
            pl.col("drybulb_c").mean(),
            pl.col("relhum_pct").mean(),
            (pl.col("ghi_w_m2").sum() / pl.len() * 24 / 1000).alias("ghi_kwh_m2_day"),
        )
        .sort("month")
    )
    temperature_error = monthly["drybulb_c"].to_numpy() - np.asarray(normals.drybulb_c)
    assert np.abs(temperature_error).max() < 1.5
    assert np.allclose(monthly["relhum_pct"], normals.relhum_pct, atol=1.0)
    assert np.allclose(monthly["ghi_kwh_m2_day"], normals.ghi_kwh_m2_day, rtol=0.02)


@pytest.mark.parametrize("name", CLIMATES)
def test_humidity_columns_are_psychrometrically_consistent(name: str) -> None:
    frame = climate_frame(name)
    drybulb = frame["drybulb_c"].to_numpy()
    w = frame["humidity_ratio"].to_numpy()
    assert (w > 0).all()
    assert (relative_humidity(drybulb, w) <= 100.0 + 0.1).all()
    assert np.allclose(frame["enthalpy_kj_kg"], moist_air_enthalpy(drybulb, w), atol=1e-3)
    assert np.allclose(frame["relhum_pct"], relative_humidity(drybulb, w), atol=0.06)


def test_climate_files_are_what_the_script_generates() -> None:
    assert synthesise(NORMALS["miami"]).equals(climate_frame("miami"))


def test_load_climate_names_a_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    climate_frame("boston").drop("enthalpy_kj_kg").write_parquet(path)
    with pytest.raises(ValueError, match=r"broken\.parquet.*enthalpy_kj_kg"):
        load_climate(path)


def test_load_climate_rejects_a_partial_year(tmp_path: Path) -> None:
    path = tmp_path / "short.parquet"
    climate_frame("boston").head(8759).write_parquet(path)
    with pytest.raises(ValueError, match=r"short\.parquet.*8759 rows"):
        load_climate(path)


# --- building physics ----------------------------------------------------------------


@pytest.mark.parametrize("name", COLD_CLIMATES)
def test_more_wall_insulation_never_increases_heating(name: str) -> None:
    heating = [annual(BuildingParameters(r_value=r), name)[0] for r in (0.2, 0.5, 1, 2, 4, 8, 15)]
    assert all(later <= earlier * (1 + 1e-12) for earlier, later in pairwise(heating))
    assert heating[-1] < 0.8 * heating[0]


@pytest.mark.parametrize("name", CLIMATES)
def test_wider_setpoint_band_never_increases_total_load(name: str) -> None:
    bands = [(21.0, 22.0), (20.0, 23.0), (20.0, 24.0), (19.0, 25.0), (17.0, 27.0), (15.0, 30.0)]
    totals = [
        sum(annual(BuildingParameters(heating_setpoint_c=h, cooling_setpoint_c=c), name))
        for h, c in bands
    ]
    assert all(wider <= narrower * (1 + 1e-9) for narrower, wider in pairwise(totals))


def test_climates_rank_as_expected() -> None:
    params = BuildingParameters()
    heating = {name: annual(params, name)[0] for name in CLIMATES}
    cooling = {name: annual(params, name)[1] for name in CLIMATES}
    assert cooling["phoenix"] > cooling["minneapolis"]
    assert heating["minneapolis"] > heating["miami"]
    assert heating["minneapolis"] > heating["boston"] > heating["phoenix"]


@pytest.mark.parametrize("name", CLIMATES)
@pytest.mark.parametrize(
    "base",
    [
        BuildingParameters(),
        BuildingParameters(r_value=0.5, window_ratio=0.7, infiltration_ach=2.0, floors=3),
        BuildingParameters(heating_setpoint_c=22.0, cooling_setpoint_c=23.0, infiltration_ach=0),
    ],
)
def test_economizer_never_increases_cooling(name: str, base: BuildingParameters) -> None:
    without = simulate_building(base, climate(name))
    for economizer in ("drybulb", "enthalpy"):
        result = simulate_building(replace(base, economizer=economizer), climate(name))
        assert result.cooling_kwh_m2 <= without.cooling_kwh_m2
        assert (result.hourly["cooling_w"] <= without.hourly["cooling_w"]).all()
        # Free cooling only replaces the coil; it cannot change the zone or its heating.
        assert result.hourly["heating_w"].equals(without.hourly["heating_w"])
        assert result.hourly["zone_temp_c"].equals(without.hourly["zone_temp_c"])


def test_economizer_saves_energy_where_nights_are_cool() -> None:
    none = annual(BuildingParameters(), "boston")[1]
    drybulb = annual(BuildingParameters(economizer="drybulb"), "boston")[1]
    enthalpy = annual(BuildingParameters(economizer="enthalpy"), "boston")[1]
    assert drybulb < 0.9 * none
    # Sensible-only model: the enthalpy test just locks out humid hours.
    assert drybulb <= enthalpy < none


def test_more_storeys_dilute_roof_and_ground_losses() -> None:
    one = annual(BuildingParameters(floors=1), "minneapolis")[0]
    five = annual(BuildingParameters(floors=5), "minneapolis")[0]
    assert five < one
    assert annual(BuildingParameters(floors=None), "minneapolis")[0] == one


@pytest.mark.parametrize("name", CLIMATES)
def test_result_tables_are_consistent(name: str) -> None:
    params = BuildingParameters(r_value=2.0, window_ratio=0.5, economizer="drybulb")
    result = simulate_building(params, climate(name))
    monthly, hourly = result.monthly, result.hourly

    assert monthly.schema == pl.Schema(
        {"month": pl.Int64, "heating_kwh_m2": pl.Float64, "cooling_kwh_m2": pl.Float64}
    )
    assert monthly["month"].to_list() == list(range(1, 13))
    assert math.isclose(monthly["heating_kwh_m2"].sum(), result.heating_kwh_m2, rel_tol=1e-9)
    assert math.isclose(monthly["cooling_kwh_m2"].sum(), result.cooling_kwh_m2, rel_tol=1e-9)

    assert hourly.schema == pl.Schema(
        {
            "hour": pl.Int64,
            "drybulb_c": pl.Float64,
            "zone_temp_c": pl.Float64,
            "heating_w": pl.Float64,
            "cooling_w": pl.Float64,
        }
    )
    assert hourly.height == HOURS_PER_YEAR
    heating, cooling = hourly["heating_w"].to_numpy(), hourly["cooling_w"].to_numpy()
    assert not ((heating > 0) & (cooling > 0)).any()
    zone = hourly["zone_temp_c"].to_numpy()
    assert (zone >= params.heating_setpoint_c - 1e-9).all()
    assert (zone <= params.cooling_setpoint_c + 1e-9).all()
    floor_area = 400.0
    assert math.isclose(heating.max() / floor_area, result.peak_heating_w_m2, rel_tol=1e-12)
    assert math.isclose(
        heating.sum() / floor_area / 1000, result.heating_kwh_m2, rel_tol=1e-9, abs_tol=1e-12
    )


def _iso_13790_reference(params: BuildingParameters, weather: Climate) -> np.ndarray:
    """Heating minus cooling need [W], stepping ISO 13790 C.4 with its 10 W/m2 probe."""
    env = model._envelope(params)
    area, t_out = env.floor_area_m2, weather.drybulb_c
    h_ve = 1200.0 * params.infiltration_ach * env.volume_m3 / 3600.0
    a_t, a_m = 4.5 * area, 2.5 * area
    h_is, h_ms, h_w = 3.45 * a_t, 9.1 * a_m, env.h_window
    h_op = env.h_opaque_air + env.h_ground
    h_em = 1.0 / (1.0 / h_op - 1.0 / h_ms)
    t_op = (env.h_opaque_air * t_out + env.h_ground * t_out.mean()) / h_op
    cm = 165_000.0 * area / 3600.0
    h_1 = 1.0 / (1.0 / h_ve + 1.0 / h_is)
    h_2 = h_1 + h_w
    h_3 = 1.0 / (1.0 / h_2 + 1.0 / h_ms)
    gains = model._INTERNAL_GAINS_W_M2 * area
    radiant = 0.5 * gains + env.window_area_m2 * 0.4 * 0.45 * weather.ghi_w_m2
    phi_ia, phi_m = 0.5 * gains, a_m / a_t * radiant
    phi_st = (1.0 - a_m / a_t - h_w / (9.1 * a_t)) * radiant

    def step(t_m_prev: float, t: int, phi_hc: float) -> tuple[float, float]:
        inflow = (phi_ia[t] + phi_hc) / h_ve + t_out[t]
        phi_mtot = (
            phi_m[t] + h_em * t_op[t] + h_3 * (phi_st[t] + h_w * t_out[t] + h_1 * inflow) / h_2
        )
        half = 0.5 * (h_3 + h_em)
        t_m = (t_m_prev * (cm - half) + phi_mtot) / (cm + half)
        t_s = (h_ms * 0.5 * (t_m + t_m_prev) + phi_st[t] + h_w * t_out[t] + h_1 * inflow) / (
            h_ms + h_w + h_1
        )
        return t_m, (h_is * t_s + h_ve * t_out[t] + phi_ia[t] + phi_hc) / (h_is + h_ve)

    low, high = params.heating_setpoint_c, params.cooling_setpoint_c
    hours = [*range(HOURS_PER_YEAR - model.WARMUP_HOURS, HOURS_PER_YEAR), *range(HOURS_PER_YEAR)]
    t_m, phi = 0.5 * (low + high), []
    for t in hours:
        _, t_air_0 = step(t_m, t, 0.0)
        phi_hc = 0.0
        if not low <= t_air_0 <= high:
            _, t_air_10 = step(t_m, t, 10.0 * area)
            target = low if t_air_0 < low else high
            phi_hc = 10.0 * area * (target - t_air_0) / (t_air_10 - t_air_0)
        t_m, _ = step(t_m, t, phi_hc)
        phi.append(phi_hc)
    return np.asarray(phi[model.WARMUP_HOURS :])


@pytest.mark.parametrize("name", ["boston", "phoenix"])
def test_closed_form_loads_match_the_iso_13790_procedure(name: str) -> None:
    params = BuildingParameters(r_value=1.0, window_ratio=0.6, infiltration_ach=1.2, floors=2)
    hourly = simulate_building(params, climate(name)).hourly
    net = hourly["heating_w"].to_numpy() - hourly["cooling_w"].to_numpy()
    assert np.allclose(net, _iso_13790_reference(params, climate(name)), rtol=1e-9, atol=1e-6)


# --- parameter validation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "shown"),
    [
        ({"heating_setpoint_c": 21.0, "cooling_setpoint_c": 20.0}, "20.0"),
        ({"heating_setpoint_c": 21.0, "cooling_setpoint_c": 21.5}, "21.5"),
        ({"economizer": "evaporative"}, "evaporative"),
        ({"r_value": 0.0}, "0.0"),
        ({"r_value": 16.0}, "16.0"),
        ({"r_value": float("nan")}, "nan"),
        ({"window_ratio": 0.95}, "0.95"),
        ({"infiltration_ach": -0.1}, "-0.1"),
        ({"heating_setpoint_c": 10.0}, "10.0"),
        ({"floors": 0}, "0"),
        ({"floors": 2.5}, "2.5"),
    ],
)
def test_invalid_parameters_raise_with_the_value(overrides: dict, shown: str) -> None:
    with pytest.raises(ValueError, match=shown):
        BuildingParameters(**overrides)


# --- random valid parameters ---------------------------------------------------------

valid_parameters = st.builds(
    lambda heating, gap, **rest: BuildingParameters(
        heating_setpoint_c=heating, cooling_setpoint_c=min(heating + gap, 32.0), **rest
    ),
    heating=st.floats(15.0, 24.0),
    gap=st.floats(1.0, 8.0),
    r_value=st.floats(0.01, 15.0),
    window_ratio=st.floats(0.05, 0.9),
    economizer=st.sampled_from(model.ECONOMIZERS),
    infiltration_ach=st.floats(0.0, 3.0),
    floors=st.none() | st.integers(1, 12),
)


@settings(max_examples=40, deadline=None)
@given(params=valid_parameters, name=st.sampled_from(CLIMATES))
def test_any_valid_building_gives_finite_non_negative_loads(
    params: BuildingParameters, name: str
) -> None:
    result = simulate_building(params, climate(name))
    scalars = (
        result.heating_kwh_m2,
        result.cooling_kwh_m2,
        result.peak_heating_w_m2,
        result.peak_cooling_w_m2,
    )
    assert all(math.isfinite(v) and v >= 0.0 for v in scalars)
    assert result.monthly.height == 12
    for column in ("heating_kwh_m2", "cooling_kwh_m2"):
        values = result.monthly[column].to_numpy()
        assert np.isfinite(values).all() and (values >= 0).all()
    for column in ("zone_temp_c", "heating_w", "cooling_w"):
        assert np.isfinite(result.hourly[column].to_numpy()).all()
    assert (result.hourly["heating_w"] >= 0).all() and (result.hourly["cooling_w"] >= 0).all()
