"""Outputs are validated once per node, and a bad output still fails only its own spec."""

from __future__ import annotations

from typing import Annotated

import pandera.polars as pa
import polars as pl
import pytest
from pandera.config import get_config_context
from pandera.typing.polars import DataFrame
from pydantic import AfterValidator, ConfigDict

from scythe import (
    BaseExperiment,
    ExperimentInputSpec,
    ExperimentOutputSpec,
    ExperimentRegistry,
    LocalEngine,
    RecursionMap,
    tables,
)
from scythe.base import SPEC_SCOPE, SpecScope

IN_PROCESS = LocalEngine(slots=0, progress=False)
ONE_NODE = RecursionMap(factor=2, max_depth=0)  # every spec in one terminal node
N = 40
BAD = 17


class Day(ExperimentInputSpec):
    scale: float
    mode: str = "ok"


class Hourly(pa.DataFrameModel):
    hour: int = pa.Field(ge=0, le=23)
    load: float = pa.Field(ge=0)


class DayOut(ExperimentOutputSpec):
    peak: float
    hourly: DataFrame[Hourly]


def _load(spec: Day) -> list[float]:
    return [spec.scale * (h + 1) for h in range(24)]


@ExperimentRegistry.Register(name="batch_validation_day")
def day(spec: Day) -> DayOut:
    load = _load(spec)
    if spec.mode == "negative_load":
        load[5] = -2.5  # breaks load >= 0, built normally (no assignment after the fact)
    hours = list(range(24))
    if spec.mode == "hour_out_of_range":
        hours[23] = 24
    out = DayOut(peak=max(load), hourly=pl.DataFrame({"hour": hours, "load": load}))
    if spec.mode == "negative_peak":
        out.peak = float("nan")
    return out


def _run(tmp_path, bad_mode: str):
    specs = [Day(scale=1.0 + i, mode=bad_mode if i == BAD else "ok") for i in range(N)]
    run, ref = BaseExperiment(day, storage=tmp_path / "store").allocate(
        specs, engine=IN_PROCESS, recursion_map=ONE_NODE
    )
    summary = ref.result()
    return run, summary


@pytest.mark.parametrize(
    ("mode", "column", "check", "value"),
    [
        ("negative_load", "load", "greater_than_or_equal_to(0)", "-2.5"),
        ("hour_out_of_range", "hour", "less_than_or_equal_to(23)", "24"),
    ],
)
def test_one_bad_frame_among_many_fails_only_its_spec(tmp_path, mode, column, check, value):
    run, summary = _run(tmp_path, mode)
    assert (summary.specs, summary.done, summary.failed) == (N, N - 1, 1)
    results = run.results()
    failure = results.failures.row(0, named=True)
    assert failure["sort_index"] == BAD
    assert failure["error_type"] == "OutputValidationError"
    assert f"column {column!r} failed {check}" in failure["message"]
    assert value in failure["message"]
    hourly = results["hourly"]
    assert hourly.height == 24 * (N - 1)
    assert BAD not in hourly["sort_index"].to_list()
    assert BAD not in results.scalars["sort_index"].to_list()
    # the other specs' rows are whole, in order, with their own index values
    spec_3 = hourly.filter(pl.col("sort_index") == 3)
    assert spec_3["sort_subindex"].to_list() == list(range(24))
    assert spec_3["scale"].unique().to_list() == [4.0]
    assert spec_3["load"].to_list() == [4.0 * (h + 1) for h in range(24)]


def test_one_bad_scalar_among_many_fails_only_its_spec(tmp_path):
    run, summary = _run(tmp_path, "negative_peak")
    assert (summary.done, summary.failed) == (N - 1, 1)
    failure = run.results().failures.row(0, named=True)
    assert failure["sort_index"] == BAD
    assert "column 'peak'" in failure["message"]


def test_a_node_validates_each_table_once_not_each_spec(tmp_path, monkeypatch):
    checked: list[str] = []
    real = tables.failure_cases

    def counting(frame, table, **kwargs):
        checked.append(table.name)
        return real(frame, table, **kwargs)

    pandera_checks: list[str | None] = []
    validate = pa.DataFrameSchema.validate

    def pandera_counting(self, *args, **kwargs):
        if get_config_context().validation_enabled:  # a call that checks something
            pandera_checks.append(self.name)
        return validate(self, *args, **kwargs)

    monkeypatch.setattr(tables, "failure_cases", counting)
    monkeypatch.setattr(pa.DataFrameSchema, "validate", pandera_counting)
    run, summary = _run(tmp_path, "ok")
    assert summary.failed == 0
    # one check of each output table of the one node, none per spec's frame ...
    assert checked.count("hourly") == 1
    assert checked.count("scalars") == 1
    # ... and the DataFrame[Hourly] field was not validated by pandera as each output was built
    assert pandera_checks == []
    assert run.results()["hourly"].height == 24 * N


def test_outside_a_run_building_the_output_still_validates_the_frame():
    with pytest.raises(ValueError, match="load"):
        DayOut(peak=1.0, hourly=pl.DataFrame({"hour": [0], "load": [-1.0]}))
    assert day(Day(scale=2.0)).hourly.height == 24


def _has_wrap_validator(cls: type[ExperimentOutputSpec]) -> bool:
    return "_frames_checked_per_node" in cls.__pydantic_decorators__.model_validators


def _has_field_validator(cls: type[ExperimentOutputSpec], name: str) -> bool:
    metadata = cls.model_fields[name].metadata
    return any(getattr(getattr(m, "func", None), "scythe_frame_field", False) for m in metadata)


def test_pandera_fields_carry_their_own_validator_and_no_complete_class_the_model_wide_one():
    class Scalars(ExperimentOutputSpec):
        peak: float

    class WithFrame(Scalars):  # a frame added to a scalar-only output
        hourly: DataFrame[Hourly]

    class Again(WithFrame):  # inherits the field and its validator: not given a second one
        note: str = ""

    for cls in (Scalars, DayOut, WithFrame, Again):
        assert not _has_wrap_validator(cls), cls
    assert _has_field_validator(DayOut, "hourly") and _has_field_validator(WithFrame, "hourly")
    validators = [m for m in Again.model_fields["hourly"].metadata if hasattr(m, "func")]
    assert len(validators) == 1
    # the scalar-only class still validates its own fields...
    with pytest.raises(ValueError, match="peak"):
        Scalars(peak="not a number")
    # ... and the subclasses still have their frame checked by pandera outside a run
    for cls in (WithFrame, Again):
        with pytest.raises(ValueError, match="load"):
            cls(peak=1.0, hourly=pl.DataFrame({"hour": [0], "load": [-1.0]}))


@pytest.fixture
def in_a_run():
    """A spec scope, as the leaf sets it around the user's function."""
    token = SPEC_SCOPE.set(SpecScope(prefix="p", log=lambda spec, msg: None, fetch=None))
    yield
    SPEC_SCOPE.reset(token)


BAD_FRAME = {"hour": [0, 1], "load": [-1.0, 2.0]}  # load >= 0 fails


def test_in_a_run_a_frame_field_skips_pandera_and_keeps_its_own_validators(monkeypatch, in_a_run):
    seen: list[int] = []

    def count_rows(frame: pl.DataFrame) -> pl.DataFrame:
        seen.append(frame.height)
        return frame

    class Annotated_(ExperimentOutputSpec):
        hourly: Annotated[DataFrame[Hourly], AfterValidator(count_rows)]
        maybe: DataFrame[Hourly] | None = None

    pandera_calls: list[object] = []
    real = DataFrame.pydantic_validate.__func__

    def counting(cls, obj, schema_model):
        pandera_calls.append(obj)
        return real(cls, obj, schema_model)

    monkeypatch.setattr(DataFrame, "pydantic_validate", classmethod(counting))
    Annotated_.model_rebuild(force=True)  # its field validators now call the counting one
    frame = pl.DataFrame(BAD_FRAME)
    out = Annotated_(hourly=frame, maybe=frame)
    assert out.hourly is frame and out.maybe is frame  # kept as given, for the node to check
    assert pandera_calls == []  # pandera did not look at a plain polars frame
    assert seen == [2]  # the field's own validator ran
    # other values still go through pandera, with its checks off: converted, not checked
    converted = Annotated_(hourly=BAD_FRAME)
    assert isinstance(converted.hourly, pl.DataFrame) and converted.hourly.height == 2
    assert len(pandera_calls) == 1 and converted.maybe is None


def test_outside_a_run_a_frame_field_is_validated_by_pandera_as_before():
    class Optional_(ExperimentOutputSpec):
        maybe: DataFrame[Hourly] | None = None

    assert Optional_().maybe is None
    with pytest.raises(ValueError, match="load"):
        Optional_(maybe=pl.DataFrame(BAD_FRAME))


def test_a_class_pydantic_builds_later_keeps_the_model_wide_validator(in_a_run):
    class Deferred(ExperimentOutputSpec):
        model_config = ConfigDict(defer_build=True)
        hourly: DataFrame[Hourly]

    assert _has_wrap_validator(Deferred)
    assert Deferred(hourly=pl.DataFrame(BAD_FRAME)).hourly.height == 2  # checked by the node
    SPEC_SCOPE.set(None)
    with pytest.raises(ValueError, match="load"):
        Deferred(hourly=pl.DataFrame(BAD_FRAME))
