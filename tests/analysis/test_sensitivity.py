"""sensitivity(): the true driver ranks first; Sobol' indices of the Ishigami function match theory.

Every run here is a real one: allocated with LocalEngine(slots=0) into a temporary folder.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import polars as pl
import pytest
from pydantic import Field

from analysis.design import sample
from analysis.errors import OutputNotFoundError, SensitivityError
from analysis.sensitivity_analysis import regression, sensitivity
from scythe import BaseExperiment, ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry
from scythe.errors import NonRetryableError
from scythe.experiments import LocalEngine

PI = math.pi


class Ishigami(ExperimentInputSpec):
    x1: float = Field(..., ge=-PI, le=PI)
    x2: float = Field(..., ge=-PI, le=PI)
    x3: float = Field(..., ge=-PI, le=PI)


class IshigamiOut(ExperimentOutputSpec):
    y: float = Field(..., description="Ishigami function (a=7, b=0.1) [-]")


def _ishigami(spec: Ishigami) -> IshigamiOut:
    if spec.x3 > 3.0 and spec.x1 > 3.0:  # a few specs fail: their blocks are left out
        raise NonRetryableError("outside the model's validity")
    s1 = math.sin(spec.x1)
    return IshigamiOut(y=s1 + 7 * math.sin(spec.x2) ** 2 + 0.1 * spec.x3**4 * s1)


class Wall(ExperimentInputSpec):
    thickness: float = Field(..., ge=0.1, le=0.5, description="Thickness [m]")
    conductivity: float = Field(..., ge=0.02, le=2.0, description="Conductivity [W/mK]")
    colour: Literal["white", "grey", "black"] = Field("white", description="Colour")
    panes: int = Field(1, ge=1, le=3, description="Glazing panes")
    noise: float = Field(0.0, ge=0, le=1, description="Unused input")


class WallOut(ExperimentOutputSpec):
    linear: float = Field(..., description="Linear in thickness [-]")
    by_colour: float = Field(..., description="Set by the colour [-]")
    monotonic: float = Field(..., description="exp of the conductivity [-]")
    steps: int = Field(..., description="Panes times ten [-]")
    ok: bool = Field(..., description="Not numeric: never analysed")


def _wall(spec: Wall) -> WallOut:
    colour = {"white": 0.0, "grey": 5.0, "black": 10.0}[spec.colour]
    return WallOut(
        linear=10 * spec.thickness + 0.5 * spec.conductivity + 0.1 * colour,
        by_colour=colour + spec.thickness,
        monotonic=math.exp(6 * spec.conductivity) + spec.thickness,
        steps=10 * spec.panes,
        ok=True,
    )


@pytest.fixture(scope="module")
def registered():
    names = {"test_sens_ishigami": _ishigami, "test_sens_wall": _wall}
    runnables = {n: ExperimentRegistry.Register(name=n)(f) for n, f in names.items()}
    yield runnables
    for n in names:
        ExperimentRegistry.unregister(n)


def _run(runnable, specs, storage):
    run, ref = BaseExperiment(runnable, storage=storage).allocate(
        specs, engine=LocalEngine(slots=0)
    )
    ref.result()
    return run


@pytest.fixture(scope="module")
def ishigami_run(registered, tmp_path_factory):
    specs = sample(Ishigami, 1024, method="saltelli", seed=2)
    return _run(registered["test_sens_ishigami"], specs, tmp_path_factory.mktemp("ishigami"))


@pytest.fixture(scope="module")
def wall_run(registered, tmp_path_factory):
    specs = sample(Wall, 400, method="lhs", seed=5)
    return _run(registered["test_sens_wall"], specs, tmp_path_factory.mktemp("wall"))


# Analytic indices of the Ishigami function with a=7, b=0.1 (Saltelli et al., Global Sensitivity Analysis: The Primer).
def _ishigami_indices() -> tuple[list[float], list[float]]:
    a, b = 7.0, 0.1
    v1 = 0.5 * (1 + b * PI**4 / 5) ** 2
    v2 = a**2 / 8
    v13 = b**2 * PI**8 * (1 / 18 - 1 / 50)
    total = v1 + v2 + v13
    return [v1 / total, v2 / total, 0.0], [(v1 + v13) / total, v2 / total, v13 / total]


TOLERANCE = 0.05  # absolute, on every index, with 1024 base samples (5120 specs)


def test_sobol_indices_of_the_ishigami_function_are_within_tolerance(ishigami_run):
    result = sensitivity(ishigami_run)
    assert result.saltelli and list(result.outputs) == ["y"]
    y = result["y"]
    assert y.method == "sobol"
    s1, st = _ishigami_indices()
    table = y.table.sort("input")
    assert table.get_column("input").to_list() == ["x1", "x2", "x3"]
    np.testing.assert_allclose(table.get_column("s1").to_numpy(), s1, atol=TOLERANCE)
    np.testing.assert_allclose(table.get_column("st").to_numpy(), st, atol=TOLERANCE)
    assert y.ranking == ["x1", "x2", "x3"]  # by total index: 0.56, 0.44, 0.24
    failed = ishigami_run.results().failures.height
    assert failed > 0 and "left out" in (y.note or "")
    assert y.rows < 1024 * 5 and y.rows % 5 == 0


def test_the_true_driver_ranks_first_in_a_regression(wall_run):
    result = sensitivity(wall_run)
    assert not result.saltelli
    assert result.factors == {
        "thickness": "numeric",
        "conductivity": "numeric",
        "colour": "categorical",
        "panes": "numeric",
        "noise": "numeric",
    }
    assert list(result.outputs) == ["linear", "by_colour", "monotonic", "steps"]  # ok is a bool
    assert result.ranking("linear")[0] == "thickness"
    assert result.ranking("by_colour")[0] == "colour"
    assert result.ranking("monotonic")[0] == "conductivity"
    assert result.ranking("steps")[0] == "panes"
    linear = result["linear"].table.row(0, named=True)
    assert linear["src"] > 0.9 and linear["rank_corr"] > 0.9 and result["linear"].r2 > 0.99
    colour = result["by_colour"].table.row(0, named=True)
    assert colour["kind"] == "categorical" and colour["src"] is None and colour["rank_corr"] > 0.9


def test_a_monotonic_non_linear_output_is_ranked_on_its_ranks(wall_run):
    monotonic = sensitivity(wall_run, ["monotonic"])["monotonic"]
    assert set(monotonic.table.get_column("basis")) == {"ranks"}
    top = monotonic.table.row(0, named=True)
    assert top["srrc"] > top["src"] > 0  # the rank model fits better than the linear one


def test_an_input_with_no_effect_ranks_below_the_drivers(wall_run):
    table = sensitivity(wall_run, ["linear"])["linear"].table
    importance = dict(zip(table["input"], table["importance"], strict=True))
    assert importance["noise"] < 0.01 < importance["thickness"]


def test_sobol_asked_of_a_run_without_a_saltelli_design_is_an_error(wall_run):
    with pytest.raises(SensitivityError, match="Saltelli"):
        sensitivity(wall_run, method="sobol")


def test_regression_can_be_asked_of_a_saltelli_run(ishigami_run):
    result = sensitivity(ishigami_run, method="regression")
    assert result["y"].method == "regression" and not result.saltelli


def test_unknown_or_non_numeric_outputs_are_typed_errors(wall_run):
    for name in ("nope", "ok"):
        with pytest.raises(OutputNotFoundError, match="linear"):
            sensitivity(wall_run, [name])


def test_to_frame_holds_every_output_ranked(wall_run):
    frame = sensitivity(wall_run).to_frame()
    assert frame.columns[:3] == ["output", "method", "rank"]
    assert frame.height == 4 * 5
    firsts = frame.filter(pl.col("rank") == 1)
    assert dict(zip(firsts["output"], firsts["input"], strict=True))["steps"] == "panes"


def test_regression_on_a_frame_with_a_categorical_driver():
    rng = np.random.default_rng(0)
    n = 300
    frame = pl.DataFrame(
        {
            "a": rng.random(n),
            "b": rng.random(n),
            "kind": rng.choice(["x", "y", "z"], n),
        }
    )
    frame = frame.with_columns(
        y=pl.col("a") + pl.when(pl.col("kind") == "z").then(4.0).otherwise(0.0) + 0.01 * pl.col("b")
    )
    table = regression(frame, ["a", "b", "kind"], "y")
    assert table.get_column("input").to_list() == ["kind", "a", "b"]
