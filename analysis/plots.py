"""Plots of a run: output distributions, outputs against inputs, two runs compared, sensitivity.

Each public function writes one figure as PNG and SVG (``formats=``) into
``directory`` and returns the paths. Axis labels are the fields'
descriptions (``"Annual heating [kWh/m2]"``), panel titles the column names.
matplotlib is imported only when a figure is made, and drawn with its Agg
canvas (the global pyplot backend is left alone).

>>> import tempfile
>>> from pydantic import Field
>>> from scythe import BaseExperiment, ExperimentInputSpec, ExperimentOutputSpec
>>> from scythe import ExperimentRegistry, LocalEngine
>>> class Wall(ExperimentInputSpec):
...     r_value: float = Field(..., ge=1, le=8, description="Wall R-value [m2K/W]")
>>> class Loss(ExperimentOutputSpec):
...     u_value: float = Field(..., description="U-value [W/m2K]")
>>> @ExperimentRegistry.Register(name="doctest_plots")
... def conduct(spec: Wall) -> Loss:
...     return Loss(u_value=1 / spec.r_value)
>>> run, _ = BaseExperiment(conduct, storage=tempfile.mkdtemp()).allocate(
...     [Wall(r_value=r) for r in (1.0, 2.0, 4.0, 8.0)], engine=LocalEngine(slots=0))
>>> folder = tempfile.mkdtemp()
>>> [p.name for p in distributions(run, folder)]
['distributions.png', 'distributions.svg']
>>> [p.name for p in against_inputs(run, folder, formats=("png",))]
['u_value_vs_inputs.png']
>>> [p.name for p in compare_runs(run, run, folder, formats=("svg",))]
['comparison.svg']
>>> from analysis.sensitivity_analysis import sensitivity
>>> [p.name for p in sensitivity_bars(sensitivity(run), folder, formats=("png",))]
['sensitivity.png']
>>> ExperimentRegistry.unregister("doctest_plots")
"""

from __future__ import annotations

import base64
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from analysis.errors import PlotError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from analysis.sensitivity_analysis import Sensitivity
    from scythe.experiments import ExperimentRun

FORMATS = ("png", "svg")
MAX_LEVELS = 12  # a categorical input with more levels is not drawn as a box plot
COLOURS = ("#1f77b4", "#d95f02")  # run a, run b


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class RunPlotData:
    """What the plots of one run need: its scalars, labels and which columns are which."""

    run_id: str
    scalars: pl.DataFrame
    labels: dict[str, str]
    outputs: list[str]
    numeric_inputs: list[str]
    categorical_inputs: list[str]

    @classmethod
    def of(cls, run: ExperimentRun, outputs: Sequence[str] | None = None) -> RunPlotData:
        from analysis.sensitivity_analysis import chosen_outputs, input_columns

        schema = run.table_schemas()["scalars"]
        chosen = chosen_outputs(run, outputs)
        scalars = run.results().scalars
        inputs = [n for n in input_columns(run) if scalars.get_column(n).n_unique() > 1]
        kinds = {
            n: scalars.schema[n].is_numeric() or scalars.schema[n].is_temporal() for n in inputs
        }
        return cls(
            run_id=run.run_id,
            scalars=scalars,
            labels={c.name: axis_label(c.name, c.description) for c in schema.columns},
            outputs=chosen,
            numeric_inputs=[n for n in inputs if kinds[n]],
            categorical_inputs=[n for n in inputs if not kinds[n]],
        )


def axis_label(name: str, description: str | None) -> str:
    """A field's description as an axis label (units in brackets tidied), else its name.

    >>> axis_label("heating", "Annual heating [kWh/m2]"), axis_label("x", None)
    ('Annual heating [kWh/m²]', 'x')
    """
    if not description:
        return name

    def tidy(match: re.Match[str]) -> str:
        unit = re.sub(
            r"(?<=[A-Za-z])([23])(?![0-9])", lambda m: "²" if m[1] == "2" else "³", match[1]
        )
        return f"[{unit}]"

    return re.sub(r"\[([^\]]*)\]", tidy, description.strip())


def short_level(value: Any) -> str:
    """A categorical level as a tick label: a path or URI by its file name.

    >>> short_level("s3://bucket/climates/boston.parquet"), short_level(None)
    ('boston.parquet', 'None')
    """
    text = str(value)
    return text.rsplit("/", 1)[-1] if "/" in text else text


# --------------------------------------------------------------------------- figures


def _figure(
    panels: int, *, columns: int = 3, size: tuple[float, float] = (4.2, 3.2)
) -> tuple[Figure, list[Axes]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = max(1, min(columns, panels))
    rows = max(1, math.ceil(panels / cols))
    fig = Figure(figsize=(size[0] * cols, size[1] * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax in axes[panels:]:
        ax.set_visible(False)
    return fig, axes[:panels]


def _values(frame: pl.DataFrame, column: str) -> Any:
    series = frame.get_column(column)
    series = series.to_physical() if series.dtype.is_temporal() else series
    return series.cast(pl.Float64).drop_nulls().drop_nans().to_numpy()


def distributions_figure(data: RunPlotData) -> Figure:
    """One histogram per output, with its median."""
    import numpy as np

    _need_rows(data)
    fig, axes = _figure(len(data.outputs))
    for ax, name in zip(axes, data.outputs, strict=True):
        values = _values(data.scalars, name)
        ax.hist(
            values,
            bins=_bins(values),
            color=COLOURS[0],
            alpha=0.85,
            edgecolor="white",
            linewidth=0.4,
        )
        if values.size:
            median = float(np.median(values))
            ax.axvline(
                median, color="black", linestyle="--", linewidth=1, label=f"median {median:.3g}"
            )
            ax.legend(fontsize=8, frameon=False)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(data.labels[name])
        ax.set_ylabel("specs")
    fig.suptitle(f"Output distributions ({data.scalars.height:,} specs)", fontsize=11)
    return fig


def _bins(values: Any) -> Any:
    import numpy as np

    if values.size == 0 or np.ptp(values) == 0:
        return 10
    return min(50, max(10, len(np.histogram_bin_edges(values, bins="auto")) - 1))


def output_figure(data: RunPlotData, output: str) -> Figure:
    """``output`` against each numeric input (scatter) and each categorical one (box plot)."""
    inputs = [
        *data.numeric_inputs,
        *(c for c in data.categorical_inputs if _levels(data, c) <= MAX_LEVELS),
    ]
    _need_rows(data)
    fig, axes = _figure(max(1, len(inputs)))
    alpha = min(1.0, max(0.15, 300 / max(1, data.scalars.height)))
    for ax, name in zip(axes, inputs, strict=False):
        rows = data.scalars.select(name, output).drop_nulls()
        if name in data.numeric_inputs:
            if data.scalars.schema[name].is_integer():
                from matplotlib.ticker import MaxNLocator

                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.scatter(_values(rows, name), rows.get_column(output).cast(pl.Float64).to_numpy(),
                       s=9, alpha=alpha, color=COLOURS[0], linewidths=0)  # fmt: skip
        else:
            _box(ax, rows, name, output)
        left_out = data.scalars.height - rows.height
        ax.set_title(name + (f" ({left_out:,} null left out)" if left_out else ""), fontsize=10)
        ax.set_xlabel(data.labels[name])
        ax.set_ylabel(data.labels[output])
    if not inputs:
        axes[0].text(
            0.5, 0.5, "no input varies", ha="center", va="center", transform=axes[0].transAxes
        )
    fig.suptitle(f"{output} against the inputs", fontsize=11)
    return fig


def _levels(data: RunPlotData, column: str) -> int:
    return data.scalars.get_column(column).n_unique()


def _box(ax: Axes, rows: pl.DataFrame, name: str, output: str) -> None:
    groups = rows.group_by(name).agg(pl.col(output).cast(pl.Float64))
    pairs = sorted(
        (short_level(level), list(values))
        for level, values in zip(groups.get_column(name), groups.get_column(output), strict=True)
    )
    labels, values = [p[0] for p in pairs], [p[1] for p in pairs]
    parts = ax.boxplot(values, patch_artist=True, widths=0.6, showfliers=False)
    for patch in parts["boxes"]:
        patch.set_facecolor(COLOURS[0])
        patch.set_alpha(0.5)
    ax.set_xticks(
        range(1, len(labels) + 1),
        labels,
        rotation=30 if len(labels) > 3 else 0,
        ha="right" if len(labels) > 3 else "center",
    )


def comparison_figure(
    a: RunPlotData, b: RunPlotData, *, labels: tuple[str, str] | None = None
) -> Figure:
    """Each output common to both runs: the two distributions overlaid on the same bins."""
    import numpy as np

    outputs = [o for o in a.outputs if o in b.outputs]
    if not outputs:
        raise PlotError(f"runs {a.run_id} and {b.run_id} have no numeric output in common")
    names = labels or (run_label(a.run_id), run_label(b.run_id))
    fig, axes = _figure(len(outputs))
    for ax, name in zip(axes, outputs, strict=True):
        va, vb = _values(a.scalars, name), _values(b.scalars, name)
        both = np.concatenate([va, vb])
        edges = np.histogram_bin_edges(both, bins=_bins(both)) if both.size else 10
        for values, colour in ((va, COLOURS[0]), (vb, COLOURS[1])):
            ax.hist(values, bins=edges, histtype="step", linewidth=1.6, color=colour)
        ax.set_title(f"{name} (n={va.size:,} / {vb.size:,})", fontsize=10)
        ax.set_xlabel(a.labels[name])
        ax.set_ylabel("specs")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, linewidth=1.6) for c in COLOURS]
    fig.legend(handles, [f"a: {names[0]}", f"b: {names[1]}"], loc="outside lower center",
               ncols=2, frameon=False, fontsize=9)  # fmt: skip
    fig.suptitle("Two runs compared: output distributions", fontsize=11)
    return fig


def run_label(run_id: str) -> str:
    """A short name of a run for a legend: its version and time.

    >>> run_label("building/v1.2.0/2026-12-02T16-40-11.123456Z")
    'v1.2.0 2026-12-02 16:40:11'
    """
    parts = run_id.split("/")
    if len(parts) < 3:
        return run_id
    day, _, clock = parts[2].partition("T")
    return f"{parts[1]} {day} {clock[:8].replace('-', ':')}".strip()


def sensitivity_figure(result: Sensitivity) -> Figure:
    """One panel per output: the inputs' importance, most influential on top."""
    outputs = [
        o for o, s in result.outputs.items() if s.table.get_column("importance").drop_nulls().len()
    ]
    if not outputs:
        raise PlotError(f"run {result.run_id}: no output has sensitivity indices to draw")
    height = max(2.6, 0.35 * len(result.factors) + 1.4)
    fig, axes = _figure(len(outputs), columns=2, size=(5.2, height))
    for ax, name in zip(axes, outputs, strict=True):
        _bars(ax, result.outputs[name])
    kind = "Sobol' indices" if result.saltelli else "linear regression"
    fig.suptitle(f"Sensitivity of the outputs to the inputs ({kind})", fontsize=11)
    return fig


def _bars(ax: Axes, output: Any) -> None:
    import numpy as np

    table = output.table.reverse()  # most influential on top
    y = np.arange(table.height)
    names = table.get_column("input").to_list()
    if output.method == "sobol":
        for column, offset, colour, label in (
            ("st", 0.2, COLOURS[0], "total (st)"),
            ("s1", -0.2, COLOURS[1], "first order (s1)"),
        ):
            ax.barh(y + offset, table.get_column(column).fill_null(0).to_numpy(), height=0.38,
                    xerr=table.get_column(f"{column}_conf").fill_null(0).to_numpy(),
                    color=colour, label=label, capsize=2,
                    error_kw={"linewidth": 0.8, "ecolor": "#444444"})  # fmt: skip
        ax.set_xlabel("share of the output's variance")
        ax.legend(fontsize=7, frameon=False, loc="lower right")
        ax.set_title(output.output, fontsize=10)
        shown = table.get_column("st").fill_null(0).to_numpy()
        reach = shown + table.get_column("st_conf").fill_null(0).to_numpy()
    else:
        shown = table.get_column("importance").fill_null(0).to_numpy()
        ax.barh(y, shown, height=0.6, color=COLOURS[0])
        basis = table.get_column("basis")[0] if "basis" in table.columns else "values"
        ax.set_xlabel(f"variance share lost without the input (fit on {basis})")
        ax.set_title(f"{output.output} (R² {output.r2:.2f})", fontsize=10)
        reach = shown
    offset = 0.2 if output.method == "sobol" else 0.0  # the label sits by the st bar
    for yi, value, end in zip(y, shown, reach, strict=True):
        ax.text(max(end, 0) + 0.015, yi + offset, f"{value:.2f}", va="center", fontsize=7)
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlim(0, max(1.0, float(reach.max(initial=0))) + 0.12)


def _need_rows(data: RunPlotData) -> None:
    if not data.scalars.height:
        raise PlotError(f"run {data.run_id} has no successful specs to plot")
    if not data.outputs:
        raise PlotError(f"run {data.run_id} has no numeric scalar output to plot")


# --------------------------------------------------------------------------- files


def save(
    fig: Figure, directory: str | Path, name: str, *, formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Write ``fig`` as ``<directory>/<name>.<format>`` for each format; return the paths.

    SVG text stays text (searchable, selectable), not outlines.

    >>> import tempfile
    >>> from matplotlib.figure import Figure
    >>> fig = Figure()
    >>> _ = fig.subplots().set_xlabel("Heat loss [W/m²]")
    >>> [p.suffix for p in save(fig, tempfile.mkdtemp(), "blank")]
    ['.png', '.svg']
    """
    import matplotlib

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = folder / f"{name}.{fmt}"
        with matplotlib.rc_context({"svg.fonttype": "none"}):
            fig.savefig(path, format=fmt, dpi=110, metadata=_metadata(fmt))
        paths.append(path)
    return paths


def _metadata(fmt: str) -> dict[str, Any] | None:
    return {"Date": None} if fmt == "svg" else None


def png_data_uri(fig: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI, to embed in HTML.

    >>> from matplotlib.figure import Figure
    >>> png_data_uri(Figure(figsize=(1, 1)))[:22]
    'data:image/png;base64,'
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def distributions(
    run: ExperimentRun,
    directory: str | Path,
    *,
    outputs: Sequence[str] | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """A histogram of each numeric scalar output: ``distributions.png`` and ``.svg`` (module example)."""
    return save(
        distributions_figure(RunPlotData.of(run, outputs)),
        directory,
        "distributions",
        formats=formats,
    )


def against_inputs(
    run: ExperimentRun,
    directory: str | Path,
    *,
    outputs: Sequence[str] | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """For each output, ``<output>_vs_inputs``: points on numeric inputs, boxes on categorical ones.

    See the module's example.
    """
    data = RunPlotData.of(run, outputs)
    return [
        path
        for name in data.outputs
        for path in save(output_figure(data, name), directory, f"{name}_vs_inputs", formats=formats)
    ]


def compare_runs(
    run_a: ExperimentRun,
    run_b: ExperimentRun,
    directory: str | Path,
    *,
    outputs: Sequence[str] | None = None,
    labels: tuple[str, str] | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """The distributions of two runs' common outputs overlaid: ``comparison.png`` and ``.svg``."""
    fig = comparison_figure(
        RunPlotData.of(run_a, outputs), RunPlotData.of(run_b, outputs), labels=labels
    )
    return save(fig, directory, "comparison", formats=formats)


def sensitivity_bars(
    result: Sensitivity, directory: str | Path, *, formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Bars of each output's input importance (from ``analysis.sensitivity_analysis``): ``sensitivity``.

    See the module's example.
    """
    return save(sensitivity_figure(result), directory, "sensitivity", formats=formats)
