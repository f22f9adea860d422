"""analysis.compare on real runs: identical runs pass, an injected change is found exactly."""

from __future__ import annotations

import subprocess
import sys

import polars as pl
import pytest
from query_experiments import (
    BASE_FAILING,
    CHANGED_FAILING,
    CHANGED_OFFSETS,
    COUNT,
    shared_runs,
    shared_s3_runs,
)

from analysis import compare
from analysis.errors import CompareError, OutputNotFoundError
from scythe import (
    BaseExperiment,
    ExperimentInputSpec,
    ExperimentOutputSpec,
    ExperimentRegistry,
    LocalEngine,
)


@pytest.fixture(scope="module")
def runs():
    return shared_runs()


def test_identical_runs_in_another_order_pass(runs):
    result = compare(runs.base, runs.same)
    assert result.ok
    assert result.keys == ["x", "material", "n", "area"]  # inputs and the computed feature
    assert result.outputs == ["y", "z"]  # the numeric outputs; the string `label` is not
    assert result.matched == COUNT - len(BASE_FAILING)
    assert result.summary["count"].to_list() == [result.matched] * 2
    assert result.summary["max_abs_diff"].to_list() == [0.0, 0.0]
    assert result.summary["outside"].to_list() == [0, 0]
    assert result.outside.height == result.only_in_a.height == result.only_in_b.height == 0
    assert result.to_text().splitlines()[-1].startswith("OK: ")
    assert result.to_markdown().startswith("### ✅")


def test_an_injected_change_is_found_in_exactly_the_specs_changed(runs):
    result = compare(runs.base, runs.changed)
    assert not result.ok
    outside = result.outside
    assert sorted(outside["x"].to_list()) == sorted(CHANGED_OFFSETS)
    assert set(outside["output"]) == {"y"}  # z did not change
    diffs = dict(zip(outside["x"], outside["abs_diff"], strict=True))
    assert diffs == pytest.approx(CHANGED_OFFSETS)
    base = runs.base.results().scalars
    for row in outside.iter_rows(named=True):
        before = base.filter(pl.col("x") == row["x"])["y"].item()
        assert row["value_a"] == before
        assert row["value_b"] == pytest.approx(before + CHANGED_OFFSETS[row["x"]])
        assert row["rel_diff"] == pytest.approx(CHANGED_OFFSETS[row["x"]] / abs(before))
    summary = {row["output"]: row for row in result.summary.iter_rows(named=True)}
    assert summary["y"]["outside"] == len(CHANGED_OFFSETS)
    assert summary["y"]["max_abs_diff"] == pytest.approx(max(CHANGED_OFFSETS.values()))
    assert summary["z"]["outside"] == 0 and summary["z"]["max_abs_diff"] == 0


def test_specs_in_one_run_only_say_whether_the_other_run_failed_them(runs):
    result = compare(runs.base, runs.changed)
    newly_failed = CHANGED_FAILING - BASE_FAILING
    assert result.only_in_a["x"].to_list() == sorted(newly_failed)
    assert set(result.only_in_a["in_other"]) == {"failed"}
    assert result.only_in_b.height == 0
    reverse = compare(runs.changed, runs.base)
    assert reverse.only_in_b["x"].to_list() == sorted(newly_failed)
    assert reverse.only_in_a.height == 0


def test_tolerances_decide_what_is_outside(runs):
    # rel diff of each changed spec: offset / |y_a|; an rtol between the two keeps one outside
    base = runs.base.results().scalars
    rel = {
        x: off / abs(base.filter(pl.col("x") == x)["y"].item())
        for x, off in CHANGED_OFFSETS.items()
    }
    low, high = sorted(rel.values())
    between = compare(runs.base, runs.changed, rtol=(low + high) / 2, atol=0)
    assert between.outside["x"].to_list() == [max(rel, key=rel.get)]
    loose = compare(runs.base, runs.changed, atol=max(CHANGED_OFFSETS.values()), rtol=0)
    assert loose.outside.height == 0
    assert not loose.ok  # the spec that failed in the changed run still differs
    only_z = compare(runs.base, runs.changed, outputs=["z"])
    assert only_z.outputs == ["z"] and only_z.outside.height == 0


def test_text_and_markdown_name_the_changes(runs):
    result = compare(runs.base, runs.changed)
    text, markdown = result.to_text(), result.to_markdown()
    for rendering in (text, markdown):
        assert runs.base.run_id in rendering and runs.changed.run_id in rendering
        assert f"{len(CHANGED_OFFSETS)} spec(s) outside rtol=1e-05, atol=1e-08" in rendering
        assert f"{len(CHANGED_FAILING - BASE_FAILING)} spec(s) only in a" in rendering
    assert text.splitlines()[-1].startswith("DIFFERENT: ")
    assert markdown.startswith("### ❌") and "| y |" in markdown
    assert str(result) == text


def test_a_dataframe_output_compares_row_by_row(runs):
    result = compare(runs.base, runs.same, table="curve")
    assert result.ok and result.keys[-1] == "sort_subindex"
    assert result.matched == runs.base.results().table("curve").height


def test_bad_comparisons_are_typed_errors(runs):
    with pytest.raises(
        OutputNotFoundError, match=r"has no output 'nope'; outputs: \['y', 'z', 'label'\]"
    ):
        compare(runs.base, runs.same, outputs=["nope"])
    with pytest.raises(CompareError, match="output 'label' is String, not a number"):
        compare(runs.base, runs.same, outputs=["label"])
    with pytest.raises(CompareError, match="names 3 runs; compare takes one run"):
        compare("query_panel", runs.base, storage=runs.store)
    with pytest.raises(CompareError, match="tolerances must be >= 0"):
        compare(runs.base, runs.same, rtol=-1)


class Other(ExperimentInputSpec):
    width: float


class OtherOut(ExperimentOutputSpec):
    y: float


@ExperimentRegistry.Register(name="query_other")
def other(spec: Other) -> OtherOut:
    return OtherOut(y=spec.width)


def test_runs_with_other_inputs_cannot_be_matched(runs, tmp_path):
    run, _ = BaseExperiment(other, storage=tmp_path).allocate(
        [Other(width=1.0)], engine=LocalEngine(slots=0)
    )
    with pytest.raises(CompareError, match=r"only in the first \['x', 'material', 'n', 'area'\]"):
        compare(runs.base, run)


@pytest.mark.s3
def test_a_local_run_and_an_s3_run_of_the_same_specs_agree(runs, moto_server):
    remote = shared_s3_runs(moto_server)
    assert compare(runs.base, remote.same).ok
    found = compare(remote.base, remote.changed)
    assert sorted(found.outside["x"].to_list()) == sorted(CHANGED_OFFSETS)


def test_the_package_names_are_the_functions_whatever_was_imported_first(runs):
    import analysis

    assert analysis.compare(runs.base, runs.same).ok
    code = (
        "import analysis.comparison, analysis.reporting, analysis.sensitivity_analysis, analysis; "
        "print([f.__module__ + '.' + f.__name__ "
        "for f in (analysis.compare, analysis.report, analysis.sensitivity)])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (
        "['analysis.comparison.compare', 'analysis.reporting.report', "
        "'analysis.sensitivity_analysis.sensitivity']"
    )
