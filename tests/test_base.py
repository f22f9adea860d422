"""Spec base classes and file references (this module uses postponed annotations on purpose)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from pydantic import AnyUrl, Field

from scythe import ExperimentInputSpec, ExperimentOutputSpec, FileReference, OptionalFileReference
from scythe.base import file_reference_uri, is_file_reference_field, parse_specs
from scythe.errors import SpecValidationError


class Building(ExperimentInputSpec):
    r_value: float = Field(..., ge=0, le=15, description="Wall R-value [m2K/W]")
    economizer: Literal["none", "drybulb", "enthalpy"] = "none"
    floors: int | None = None
    weather_file: FileReference
    extra_file: OptionalFileReference = None
    notes: str = ""


class Energy(ExperimentOutputSpec):
    heating: float = Field(..., ge=0)
    timeseries: FileReference


def test_file_reference_fields_are_found_under_postponed_annotations():
    assert Building.file_reference_fields() == ["weather_file", "extra_file"]
    assert Energy.file_reference_fields() == ["timeseries"]
    assert not is_file_reference_field(Building.model_fields["notes"])


def test_file_reference_fields_are_found_with_eager_annotations():
    source = (
        "from scythe import ExperimentInputSpec, FileReference, OptionalFileReference\n"
        "class Eager(ExperimentInputSpec):\n"
        "    a: FileReference\n"
        "    b: OptionalFileReference = None\n"
        "    c: str = ''\n"
    )
    namespace: dict = {}
    # dont_inherit: compile without this module's postponed annotations.
    exec(compile(source, "<eager>", "exec", dont_inherit=True), namespace)
    assert namespace["Eager"].file_reference_fields() == ["a", "b"]


@pytest.mark.parametrize(
    ("value", "kind", "uri"),
    [
        ("s3://bucket/weather/boston.parquet", AnyUrl, "s3://bucket/weather/boston.parquet"),
        ("https://example.org/w.csv", AnyUrl, "https://example.org/w.csv"),
        ("file:///tmp/w.csv", AnyUrl, "file:///tmp/w.csv"),
        ("data/boston.parquet", Path, "data/boston.parquet"),
        (Path("/abs/w.csv"), Path, "/abs/w.csv"),
    ],
)
def test_file_reference_accepts_uris_and_paths(value, kind, uri):
    spec = Building(r_value=1.0, weather_file=value)
    assert isinstance(spec.weather_file, kind)
    assert file_reference_uri(spec.weather_file) == uri


def test_spec_defaults_and_base_fields():
    spec = Building(r_value=2.0, weather_file="w.csv")
    assert spec.sort_index == 0
    assert spec.experiment_id == "unassigned"
    assert spec.workflow_run_id is None and spec.root_workflow_run_id is None
    assert spec.computed_features == {}


def test_negative_sort_index_is_rejected():
    with pytest.raises(ValueError, match="sort_index"):
        Building(r_value=1.0, weather_file="w.csv", sort_index=-1)


def test_parse_specs_reports_every_bad_spec_with_field_and_value():
    items = [
        {"r_value": 1.0, "weather_file": "a.csv"},
        {"r_value": -3.0, "weather_file": "a.csv"},
        {"r_value": 1.0, "weather_file": "a.csv", "economizer": "turbo"},
    ]
    with pytest.raises(SpecValidationError) as info:
        parse_specs(Building, items)
    err = info.value
    assert "2 invalid spec(s) of Building" in str(err)
    assert "spec 1 field 'r_value' = -3.0" in str(err)
    assert "spec 2 field 'economizer' = 'turbo'" in str(err)
    assert [(p[0], p[1]) for p in err.problems] == [(1, "r_value"), (2, "economizer")]


def test_parse_specs_passes_instances_through_and_builds_dicts():
    original = Building(r_value=1.0, weather_file="a.csv", sort_index=5)
    parsed, built = parse_specs(Building, [original, {"r_value": 2.0, "weather_file": "b.csv"}])
    assert parsed is original  # validated when it was built; never copied or modified
    assert isinstance(built, Building) and built.r_value == 2.0


def test_parse_specs_returns_instances_of_its_class_as_they_are():
    specs = [Building(r_value=1.0, weather_file="a.csv", sort_index=i) for i in range(3)]
    parsed = parse_specs(Building, specs)
    assert all(p is s for p, s in zip(parsed, specs, strict=True))


def test_parse_specs_revalidates_instances_when_the_class_asks_for_it():
    # A class that sets revalidate_instances has its instances checked again: one changed
    # after it was built (no validate_assignment) is reported like a bad dict.
    from pydantic import ConfigDict

    class Strict(ExperimentInputSpec):
        model_config = ConfigDict(revalidate_instances="always")
        r_value: float = Field(..., ge=0)

    spec = Strict(r_value=1.0)
    spec.r_value = -2.0
    with pytest.raises(SpecValidationError, match=r"spec 0 field 'r_value' = -2\.0"):
        parse_specs(Strict, [spec])


def test_parse_specs_runs_the_model_validators_of_the_class_on_instances():
    # pydantic runs a class's after (and wrap) model validators on its instances too: a
    # cross-field check sees a spec changed after it was built, as it did before.
    from pydantic import model_validator

    class Ordered(ExperimentInputSpec):
        low: float = 0.0
        high: float = 1.0

        @model_validator(mode="after")
        def _low_below_high(self) -> Ordered:
            if self.low > self.high:
                raise ValueError(f"low {self.low} is above high {self.high}")
            return self

    good = Ordered(low=0.0, high=1.0)
    assert parse_specs(Ordered, [good])[0] is good
    changed = Ordered(low=0.0, high=1.0)
    changed.low = 5.0
    with pytest.raises(SpecValidationError, match=r"low 5\.0 is above high 1\.0"):
        parse_specs(Ordered, [good, changed])


def test_parse_specs_rejects_a_spec_of_another_class():
    class Other(ExperimentInputSpec):
        x: int = 0

    with pytest.raises(SpecValidationError, match="is a Other, not a Building"):
        parse_specs(Building, [Other()])


def test_output_spec_holds_extra_dataframes_outside_its_dump():
    out = Energy(heating=1.0, timeseries="out.parquet", dataframes={"extra": [1, 2]})
    assert "dataframes" not in out.model_dump()
    assert out.dataframes == {"extra": [1, 2]}


def test_unknown_fields_are_rejected():
    with pytest.raises(ValueError, match="r_valu"):
        Building(r_valu=1.0, weather_file="w.csv")


def test_file_references_survive_a_json_round_trip():
    spec = Building(r_value=1.0, weather_file="file:///tmp/w.csv", extra_file="s3://b/k.csv")
    again = Building.model_validate_json(spec.model_dump_json())
    assert file_reference_uri(again.weather_file) == "file:///tmp/w.csv"
    assert file_reference_uri(again.extra_file) == "s3://b/k.csv"
    local = Building.model_validate_json(
        Building(r_value=1.0, weather_file="data/w.csv").model_dump_json()
    )
    assert local.weather_file == Path("data/w.csv")
