"""report(): one self-contained HTML page with every section, embedded images, the failures by
error type and, when asked, the comparison from analysis.compare. The runs are real."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser
from typing import Literal

import pytest
from PIL import Image
from pydantic import Field

from analysis.design import sample
from analysis.reporting import number, report
from scythe import BaseExperiment, ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry
from scythe.errors import NonRetryableError
from scythe.experiments import LocalEngine

SECTIONS = ["counts", "failures", "statistics", "plots", "sensitivity", "schema", "manifest"]


class Beam(ExperimentInputSpec):
    span_m: float = Field(..., ge=1, le=10, description="Span [m]")
    depth_m: float = Field(..., ge=0.1, le=0.6, description="Depth [m]")
    grade: Literal["C16", "C24"] = Field("C16", description="Timber grade")


class BeamOut(ExperimentOutputSpec):
    deflection_mm: float = Field(..., ge=0, description="Mid-span deflection [mm]")
    utilisation: float = Field(..., ge=0, description="Bending utilisation [-]")


class TooSlender(NonRetryableError):
    pass


class NoTable(NonRetryableError):
    pass


def _beam(spec: Beam) -> BeamOut:
    if spec.span_m / spec.depth_m > 60:
        raise TooSlender(f"span/depth {spec.span_m / spec.depth_m:.0f} is over 60")
    if spec.grade == "C24" and spec.span_m > 8.5:
        raise NoTable("no load table for C24 beyond 8.5 m")
    stiffness = 1.0 if spec.grade == "C16" else 1.4
    return BeamOut(
        deflection_mm=spec.span_m**3 / (stiffness * 200 * spec.depth_m**3) / 10,
        utilisation=spec.span_m**2 / (stiffness * 40 * spec.depth_m**2) / 10,
    )


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.images: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "img":
            self.images.append(attrs["src"])
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            if value and not value.startswith(("data:", "#")):
                self.external.append(value)
        if tag in ("script", "link"):
            self.external.append(tag)


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    storage = tmp_path_factory.mktemp("report")
    runnable = ExperimentRegistry.Register(name="test_report_beam")(_beam)
    experiment = BaseExperiment(runnable, storage=storage)
    found = {}
    for key, seed in (("a", 1), ("b", 2)):
        specs = sample(Beam, 64, method="lhs", seed=seed)
        found[key], ref = experiment.allocate(specs, engine=LocalEngine(slots=0))
        ref.result()
    found["again"], ref = experiment.allocate(
        sample(Beam, 64, method="lhs", seed=1), engine=LocalEngine(slots=0)
    )
    ref.result()
    yield found
    ExperimentRegistry.unregister("test_report_beam")


@pytest.fixture(scope="module")
def page(runs, tmp_path_factory):
    path = report(runs["a"], tmp_path_factory.mktemp("page") / "beam.html", compare_to=runs["b"])
    return path.read_text(encoding="utf-8")


def test_every_section_is_there(page):
    parsed = _parse(page)
    assert [i for i in parsed.ids if i in [*SECTIONS, "comparison"]] == [
        "counts", "failures", "statistics", "plots", "sensitivity", "comparison", "schema", "manifest"
    ]  # fmt: skip


def test_images_are_embedded_pngs_and_nothing_is_fetched(page):
    parsed = _parse(page)
    assert parsed.external == []
    # distributions, one per output against the inputs, sensitivity bars, the comparison
    assert len(parsed.images) == 1 + 2 + 1 + 1
    for src in parsed.images:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as image:
            assert image.format == "PNG" and image.width > 400


def test_failures_are_grouped_by_error_type(runs, page):
    failures = runs["a"].results().failures
    counts = dict(failures.group_by("error_type").len().iter_rows())
    assert set(counts) == {"TooSlender", "NoTable"}  # the design reaches both
    for error_type, count in counts.items():
        assert f'<td class="key">{error_type}</td><td class="num">{count}</td>' in page
    assert "is over 60" in page and "no load table for C24" in page


def test_counts_statistics_schema_and_manifest(runs, page):
    run = runs["a"]
    status = run.status()
    assert f"{status.done} done, {status.failed} failed of {status.total} specs" in page
    deflection = run.results().scalars.get_column("deflection_mm")
    for value in (deflection.mean(), deflection.max(), deflection.median()):
        assert f'<td class="num">{number(value)}</td>' in page
    assert "Mid-span deflection [mm]" in page and "in {C16, C24}" in page and "≥ 1, ≤ 10" in page
    assert run.run_id in page and "test_report_beam" in page
    assert "Method: <strong>regression</strong>" in page


def test_the_comparison_uses_analysis_compare(runs, page):
    from analysis.comparison import compare

    comparison = compare(runs["a"], runs["b"])
    last_line = comparison.to_text().splitlines()[-1]
    assert last_line and last_line in page
    assert ("agree" if comparison.ok else "differ") in page


def test_a_rerun_of_the_same_specs_compares_as_agreeing(runs, tmp_path):
    text = report(runs["a"], tmp_path, compare_to=runs["again"]).read_text()
    assert "badge ok" in text and "agree" in text


def test_without_compare_to_there_is_no_comparison_and_a_folder_names_the_file(runs, tmp_path):
    path = report(runs["b"], tmp_path, outputs=["utilisation"])
    assert path.parent == tmp_path and path.name == runs["b"].run_id.replace("/", "_") + ".html"
    parsed = _parse(path.read_text())
    assert "comparison" not in parsed.ids and set(SECTIONS) <= set(parsed.ids)
    assert len(parsed.images) == 1 + 1 + 1  # one output: distributions, vs inputs, sensitivity


def test_a_saltelli_run_reports_sobol_indices(runs, tmp_path):
    runnable = ExperimentRegistry.get_runnable("test_report_beam")
    specs = sample(
        Beam, 16, method="saltelli", seed=0, vary=["span_m", "depth_m"], bounds={"span_m": (1, 4)}
    )
    run, ref = BaseExperiment(runnable, storage=tmp_path / "store").allocate(
        specs, engine=LocalEngine(slots=0)
    )
    ref.result()
    text = report(run, tmp_path / "s.html").read_text()
    assert "Sobol&#39; indices (Saltelli design)" in text and "No spec failed." in text
