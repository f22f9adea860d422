"""analysis.plots: every figure is written as PNG and SVG, labelled from the field descriptions,
and draws the run's data (not an empty axis). The runs are real (LocalEngine(slots=0))."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Literal

import numpy as np
import pytest
from PIL import Image
from pydantic import Field

from analysis import plots
from analysis.design import sample
from analysis.errors import OutputNotFoundError, PlotError
from analysis.sensitivity_analysis import sensitivity
from scythe import BaseExperiment, ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry
from scythe.errors import NonRetryableError
from scythe.experiments import LocalEngine


class Panel(ExperimentInputSpec):
    width: float = Field(..., ge=0.5, le=3.0, description="Panel width [m]")
    conductivity: float = Field(..., ge=0.1, le=2.0, description="Conductivity [W/mK]")
    finish: Literal["matt", "gloss"] = Field("matt", description="Surface finish")
    layers: int | None = Field(None, ge=1, le=4, description="Layers; None for one")


class PanelOut(ExperimentOutputSpec):
    heat_loss: float = Field(..., ge=0, description="Heat loss [W/m2]")
    mass_kg: float = Field(..., description="Mass [kg]")
    cracked: bool = Field(..., description="Cracked under load")


class TooWide(NonRetryableError):
    pass


def _panel(spec: Panel) -> PanelOut:
    if spec.width > 2.9:
        raise TooWide(f"width {spec.width:.2f} m does not fit the press")
    layers = spec.layers or 1
    return PanelOut(
        heat_loss=10 * spec.conductivity * spec.width / layers,
        mass_kg=4 * spec.width * layers + (1 if spec.finish == "gloss" else 0),
        cracked=spec.width > 2.5,
    )


def _never(spec: Panel) -> PanelOut:
    raise TooWide("always")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    storage = tmp_path_factory.mktemp("plots")
    panel = ExperimentRegistry.Register(name="test_plots_panel")(_panel)
    never = ExperimentRegistry.Register(name="test_plots_never")(_never)
    levels = {"layers": [None, 2, 3]}
    found = {}
    for key, runnable, specs in (
        ("a", panel, sample(Panel, 48, method="lhs", seed=1, levels=levels)),
        ("b", panel, sample(Panel, 40, method="lhs", seed=2, levels=levels)),
        (
            "saltelli",
            panel,
            sample(Panel, 16, method="saltelli", seed=3, vary=["width", "conductivity"]),
        ),
        ("failed", never, sample(Panel, 4, method="lhs", seed=4)),
    ):
        run, ref = BaseExperiment(runnable, storage=storage).allocate(
            specs, engine=LocalEngine(slots=0)
        )
        ref.result()
        found[key] = run
    yield found
    ExperimentRegistry.unregister("test_plots_panel")
    ExperimentRegistry.unregister("test_plots_never")


def _check_files(paths, names):
    assert [p.name for p in paths] == [f"{n}.{fmt}" for n in names for fmt in ("png", "svg")]
    texts = []
    for path in paths:
        assert path.stat().st_size > 5_000, path
        if path.suffix == ".png":
            with Image.open(path) as image:
                assert image.format == "PNG" and image.width >= 400 and image.height >= 250
                pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
                assert (pixels < 250).any(axis=1).mean() > 0.02  # more than a blank canvas
        else:
            root = ET.parse(path).getroot()
            assert root.tag.endswith("svg")
            texts.append(path.read_text())
    return "\n".join(texts)


def test_distributions_are_written_with_labels_and_units(runs, tmp_path):
    svg = _check_files(plots.distributions(runs["a"], tmp_path), ["distributions"])
    assert "Heat loss [W/m²]" in svg and "Mass [kg]" in svg and "heat_loss" in svg


def test_distributions_draw_every_successful_spec(runs):
    data = plots.RunPlotData.of(runs["a"])
    assert data.outputs == ["heat_loss", "mass_kg"]  # the bool output is not numeric
    fig = plots.distributions_figure(data)
    for ax in fig.axes:
        if ax.get_visible():
            assert sum(p.get_height() for p in ax.patches) == data.scalars.height


def test_each_output_against_each_input(runs, tmp_path):
    paths = plots.against_inputs(runs["a"], tmp_path)
    svg = _check_files(paths, ["heat_loss_vs_inputs", "mass_kg_vs_inputs"])
    for label in (
        "Panel width [m]",
        "Conductivity [W/mK]",
        "Layers; None for one",
        "Surface finish",
    ):
        assert label in svg
    data = plots.RunPlotData.of(runs["a"])
    assert data.numeric_inputs == ["width", "conductivity", "layers"]
    assert data.categorical_inputs == ["finish"]
    fig = plots.output_figure(data, "heat_loss")
    width_panel = fig.axes[0]
    assert len(width_panel.collections[0].get_offsets()) == data.scalars.height
    layers_panel = fig.axes[2]
    nulls = data.scalars.get_column("layers").null_count()
    assert nulls and f"{nulls} null left out" in layers_panel.get_title()


def test_two_runs_compared(runs, tmp_path):
    svg = _check_files(plots.compare_runs(runs["a"], runs["b"], tmp_path), ["comparison"])
    assert "a: v" in svg and "b: v" in svg  # legend names both runs by version and time
    fig = plots.comparison_figure(plots.RunPlotData.of(runs["a"]), plots.RunPlotData.of(runs["b"]))
    first = fig.axes[0]
    assert len(first.patches) == 2  # one outline per run


@pytest.mark.parametrize("which", ["a", "saltelli"])
def test_sensitivity_bars(runs, tmp_path, which):
    result = sensitivity(runs[which])
    svg = _check_files(plots.sensitivity_bars(result, tmp_path), ["sensitivity"])
    assert ("total (st)" in svg) == (which == "saltelli")
    assert "heat_loss" in svg and "width" in svg


def test_nothing_to_draw_is_a_plot_error(runs, tmp_path):
    with pytest.raises(PlotError, match="no successful specs"):
        plots.distributions(runs["failed"], tmp_path)
    with pytest.raises(OutputNotFoundError, match="heat_loss"):
        plots.distributions(runs["a"], tmp_path, outputs=["cracked"])
    assert not list(tmp_path.iterdir())


def test_matplotlib_loads_only_for_a_figure_and_pyplot_never(runs, tmp_path):
    """In a fresh process: importing plots loads no matplotlib; drawing loads it without pyplot
    (which would pick and switch the global backend)."""
    import subprocess
    import sys

    run = runs["a"]
    script = f"""
import sys
from analysis import plots
from scythe.experiments import ExperimentRun
assert "matplotlib" not in sys.modules
run = ExperimentRun.open({run.run_id!r}, storage={str(run.store.root)!r})
print(len(plots.distributions(run, {str(tmp_path)!r})))
assert "matplotlib" in sys.modules and "matplotlib.pyplot" not in sys.modules
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"
