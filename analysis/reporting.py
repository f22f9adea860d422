"""One self-contained HTML report of a run: manifest, counts, failures, schema, statistics,
plots, sensitivity and, when asked, a comparison with another run.

The page needs no network: the figures are PNGs embedded as base64 and the
styles are inline. It is built with jinja2 from ``analysis/templates/report.html.j2``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from analysis.errors import AnalysisError, PlotError, SensitivityError

if TYPE_CHECKING:
    from analysis.plots import RunPlotData
    from scythe.experiments import ExperimentRun
    from scythe.results import Results
    from scythe.schema import TableSchema

QUANTILES = (0.05, 0.5, 0.95)
EXAMPLES = 5  # failed sort indices shown per error type


@dataclass
class EmbeddedFigure:
    """One embedded figure of the report."""

    title: str
    caption: str
    uri: str


def report(
    run: ExperimentRun,
    path: str | Path,
    *,
    compare_to: ExperimentRun | None = None,
    outputs: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Write the HTML report of ``run`` to ``path`` (a file, or a folder for ``<run>.html``).

    ``outputs`` limits the statistics, plots and sensitivity to those numeric
    scalar outputs; ``compare_to`` adds a comparison with that run
    (``analysis.compare(run, compare_to)``: ``run`` is a, the other b).

    >>> import tempfile
    >>> from pathlib import Path
    >>> from pydantic import Field
    >>> from scythe import BaseExperiment, ExperimentInputSpec, ExperimentOutputSpec
    >>> from scythe import ExperimentRegistry, LocalEngine
    >>> class Wall(ExperimentInputSpec):
    ...     r_value: float = Field(..., ge=1, le=8, description="Wall R-value [m2K/W]")
    >>> class Loss(ExperimentOutputSpec):
    ...     u_value: float = Field(..., description="U-value [W/m2K]")
    >>> @ExperimentRegistry.Register(name="doctest_report")
    ... def conduct(spec: Wall) -> Loss:
    ...     return Loss(u_value=1 / spec.r_value)
    >>> run, _ = BaseExperiment(conduct, storage=tempfile.mkdtemp()).allocate(
    ...     [Wall(r_value=r) for r in (1.0, 2.0, 4.0, 8.0)], engine=LocalEngine(slots=0))
    >>> page = report(run, Path(tempfile.mkdtemp()) / "report.html")
    >>> "data:image/png;base64," in page.read_text()
    True
    >>> ExperimentRegistry.unregister("doctest_report")
    """
    target = Path(path)
    if target.is_dir():
        target = target / (run.run_id.replace("/", "_") + ".html")
    html = _page(run, compare_to=compare_to, outputs=outputs, title=title)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(html, encoding="utf-8")
    return target


def _page(
    run: ExperimentRun,
    *,
    compare_to: ExperimentRun | None = None,
    outputs: Sequence[str] | None = None,
    title: str | None = None,
) -> str:
    """The report's HTML (what :func:`report` writes)."""
    from analysis.plots import RunPlotData

    results = run.results()
    data = RunPlotData.of(run, outputs)
    context = {
        "title": title or f"Run report: {run.run_id}",
        "run_id": run.run_id,
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "status": run.status(),
        "manifest": _manifest_rows(run),
        "tables": _table_counts(results),
        "failures": _failure_groups(results.failures),
        "schema": _schema_tables(results.schemas),
        "statistics": _output_statistics(data),
        "other_outputs": _other_output_counts(results),
        "plots": _plots(data),
        "sensitivity": _sensitivity(run, data.outputs),
        "comparison": _comparison(run, compare_to, data) if compare_to is not None else None,
    }
    return _template().render(**context)


def _template() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("analysis", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = number
    return env.get_template("report.html.j2")


def number(value: Any) -> str:
    """A cell value for the page: ints with separators, floats to 4 significant digits.

    >>> number(12345), number(0.000123456), number(None), number(float("nan"))
    ('12,345', '0.0001235', '-', 'NaN')
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "NaN" if value != value else f"{value:.4g}"
    return str(value)


# --------------------------------------------------------------------------- sections


def _manifest_rows(run: ExperimentRun) -> list[tuple[str, str]]:
    """Every field of the run's manifest as (name, text)."""
    rows = []
    for key, value in run.manifest.model_dump(mode="json").items():
        text = value if isinstance(value, str) else json.dumps(value)
        rows.append((key, "" if value is None else text))
    return rows


def _table_counts(results: Results) -> list[tuple[str, int, str]]:
    """(table, rows, description) of every table of the run, specs first."""
    names = ["specs", *(n for n in results.schemas if n != "specs")]
    return [(n, results.table(n).height, results.schema(n).description) for n in names]


def _failure_groups(failures: pl.DataFrame) -> list[dict[str, Any]]:
    """Failed specs grouped by error type, most frequent first, with an example message."""
    if not failures.height:
        return []
    groups = (
        failures.sort("sort_index")
        .group_by("error_type", maintain_order=True)
        .agg(
            pl.len().alias("count"),
            pl.col("sort_index").head(EXAMPLES).alias("examples"),
            pl.col("message").first().alias("message"),
            pl.col("attempts").max().alias("attempts"),
        )
        .sort("count", "error_type", descending=[True, False])
    )
    return [
        {**row, "message": _first_line(row["message"], 300)} for row in groups.iter_rows(named=True)
    ]


def _first_line(text: str | None, limit: int) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _schema_tables(schemas: dict[str, TableSchema]) -> list[dict[str, Any]]:
    """Each stored table schema: its columns with role, type, nullability, checks, description."""
    tables = []
    for name, table in schemas.items():
        index = set(table.index_names)
        columns = [
            {
                "name": c.name,
                "role": "index" if c.name in index else "value",
                "dtype": str(c.dtype),
                "nullable": c.nullable,
                "checks": ", ".join(_constraint(k.kind, k.value) for k in c.constraints),
                "description": c.description or "",
            }
            for c in table.columns
        ]
        tables.append({"name": name, "description": table.description, "columns": columns})
    return tables


def _constraint(kind: str, value: Any) -> str:
    symbols = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    if kind in symbols:
        return f"{symbols[kind]} {number(value)}"
    if kind == "isin":
        return "in {" + ", ".join(str(v) for v in value) + "}"
    return f"{kind} {value}"


def _output_statistics(data: RunPlotData) -> list[dict[str, Any]]:
    """Count, nulls, mean, std, min, 5/50/95 % quantiles and max of each numeric output."""
    rows = []
    for name in data.outputs:
        column = data.scalars.get_column(name).cast(pl.Float64)
        values = column.drop_nulls()
        row: dict[str, Any] = {
            "name": name,
            "label": data.labels[name],
            "count": values.len(),
            "nulls": column.null_count(),
        }
        stats = ("mean", "std", "min", *(f"p{round(q * 100):02d}" for q in QUANTILES), "max")
        if values.len():
            found = [values.mean(), values.std(), values.min()]
            found += [values.quantile(q, "linear") for q in QUANTILES] + [values.max()]
        else:
            found = [None] * len(stats)
        row.update(zip(stats, found, strict=True))
        rows.append(row)
    return rows


def _other_output_counts(results: Results) -> list[dict[str, Any]]:
    """The most frequent values of each scalar output that is not numeric (bools, strings)."""
    schema = results.schema("scalars")
    rows = []
    for column in schema.values:
        if column.dtype.is_numeric() or not results.scalars.height:
            continue
        counts = results.scalars.get_column(column.name).cast(pl.String).value_counts(sort=True)
        top = [(str(v), n) for v, n in counts.head(5).iter_rows()]
        label = column.description or ""
        rows.append({"name": column.name, "label": label, "top": top, "distinct": counts.height})
    return rows


# --------------------------------------------------------------------------- figures


def _plots(data: RunPlotData) -> dict[str, Any]:
    from analysis import plots

    section: dict[str, Any] = {"figures": [], "notes": []}
    try:
        section["figures"].append(
            EmbeddedFigure(
                "Output distributions",
                "Histogram of each numeric output over the specs that succeeded; dashed: median.",
                _embed(plots.distributions_figure(data)),
            )
        )
        for name in data.outputs:
            fig = plots.output_figure(data, name)
            caption = (
                f"{data.labels[name]} against each input that varies: points for numeric inputs, "
                "boxes (quartiles, whiskers to 1.5 IQR) for categorical ones."
            )
            section["figures"].append(
                EmbeddedFigure(f"{name} against the inputs", caption, _embed(fig))
            )
    except PlotError as err:
        section["notes"].append(str(err))
    return section


def _embed(fig: Any) -> str:
    from analysis.plots import png_data_uri

    return png_data_uri(fig)


def _sensitivity(run: ExperimentRun, outputs: list[str]) -> dict[str, Any]:
    from analysis import plots
    from analysis.sensitivity_analysis import ASSUMPTIONS, sensitivity

    section: dict[str, Any] = {"notes": [], "outputs": [], "figure": None}
    if not outputs:
        section["notes"].append("the run has no numeric scalar output")
        return section
    try:
        result = sensitivity(run, outputs)
    except SensitivityError as err:
        section["notes"].append(str(err))
        return section
    section["method"] = "Sobol' indices (Saltelli design)" if result.saltelli else "regression"
    section["assumptions"] = ASSUMPTIONS["sobol" if result.saltelli else "regression"]
    section["left_out"] = sorted(result.left_out.items())
    for name, output in result.outputs.items():
        section["outputs"].append(
            {
                "name": name,
                "rows": output.rows,
                "r2": output.r2,
                "note": output.note,
                "columns": output.table.columns,
                "table": output.table.rows(),
            }
        )
    try:
        section["figure"] = EmbeddedFigure(
            "Input importance",
            "Most influential input on top.",
            _embed(plots.sensitivity_figure(result)),
        )
    except PlotError as err:
        section["notes"].append(str(err))
    return section


def _comparison(run: ExperimentRun, other: ExperimentRun, data: RunPlotData) -> dict[str, Any]:
    from analysis import plots
    from analysis.plots import RunPlotData

    section: dict[str, Any] = {"run_a": run.run_id, "run_b": other.run_id, "notes": []}
    section.update(_compare_text(run, other))
    try:
        other_data = RunPlotData.of(other, [o for o in data.outputs if o in _numeric(other)])
        fig = plots.comparison_figure(data, other_data)
        section["figure"] = EmbeddedFigure(
            "Distributions of both runs",
            f"a: {run.run_id}; b: {other.run_id}. Same bins for both runs.",
            _embed(fig),
        )
    except (PlotError, AnalysisError) as err:
        section["figure"] = None
        section["notes"].append(str(err))
    return section


def _numeric(run: ExperimentRun) -> list[str]:
    from analysis.sensitivity_analysis import numeric_outputs

    return numeric_outputs(run)


def _compare_text(run: ExperimentRun, other: ExperimentRun) -> dict[str, Any]:
    """The spec-by-spec comparison of ``analysis.compare`` (if installed), as text and a table."""
    try:
        from analysis.comparison import compare
    except ImportError:
        return {
            "text": None,
            "ok": None,
            "summary": None,
            "error": "analysis.compare is not available",
        }
    try:
        comparison = compare(run, other)
    except AnalysisError as err:
        return {"text": None, "ok": None, "summary": None, "error": str(err)}
    summary = comparison.summary
    return {
        "text": comparison.to_text(),
        "ok": comparison.ok,
        "summary": {"columns": summary.columns, "rows": summary.rows()},
        "error": None,
    }
