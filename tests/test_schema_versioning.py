"""allocate() enforces semantic versioning against the schema stored with the latest run."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Literal

import pandera.polars as pa
import polars as pl
import pytest
import yaml
from pandera.typing.polars import DataFrame
from pydantic import Field

from scythe import (
    BaseExperiment,
    ExperimentInputSpec,
    ExperimentOutputSpec,
    ExperimentRegistry,
    LocalEngine,
)
from scythe.allocation import latest_run_schema
from scythe.errors import SchemaChangeError
from scythe.schema import compile_experiment, experiment_io_spec
from scythe.schema.diff import diff_entries
from scythe.schema.lock import entry_of


class Kind(enum.Enum):
    A = "a"
    B = "b"


class Wall(ExperimentInputSpec):
    r_value: float = Field(..., ge=0, le=15)
    side: Literal["north", "south"] = "north"
    kind: Kind = Kind.A
    floors: int | None = None

    @property
    def computed_features(self) -> dict[str, float]:
        return {"r_squared": self.r_value**2}


class Hourly(pa.DataFrameModel):
    hour: int = pa.Field(ge=0, le=23)
    load: float = pa.Field(ge=0)


class Loss(ExperimentOutputSpec):
    u_value: float = Field(..., ge=0)
    at: datetime
    hourly: DataFrame[Hourly]


class LossWithPeak(ExperimentOutputSpec):  # additive: a new output column
    u_value: float = Field(..., ge=0)
    at: datetime
    hourly: DataFrame[Hourly]
    peak: float | None = None


class LossAsInt(ExperimentOutputSpec):  # breaking: u_value is an int now
    u_value: int = Field(..., ge=0)
    at: datetime
    hourly: DataFrame[Hourly]


def _hourly() -> pl.DataFrame:
    return pl.DataFrame({"hour": [0, 1], "load": [1.0, 2.0]})


@ExperimentRegistry.Register(name="semver_base")
def base(spec: Wall) -> Loss:
    return Loss(u_value=1 / (1 + spec.r_value), at=datetime(2026, 1, 1), hourly=_hourly())


@ExperimentRegistry.Register(name="semver_additive")
def additive(spec: Wall) -> LossWithPeak:
    return LossWithPeak(u_value=1.0, at=datetime(2026, 1, 1), hourly=_hourly(), peak=2.0)


@ExperimentRegistry.Register(name="semver_breaking")
def breaking(spec: Wall) -> LossAsInt:
    return LossAsInt(u_value=1, at=datetime(2026, 1, 1), hourly=_hourly())


SPECS = [Wall(r_value=1.0), Wall(r_value=2.0, side="south", kind=Kind.B, floors=3)]


@pytest.fixture
def storage(tmp_path):
    """Storage holding one run of ``semver_base`` as the experiment ``walls`` (v1.0.0)."""
    _, ref = BaseExperiment(base, run_name="walls", storage=tmp_path).allocate(
        SPECS, engine=LocalEngine(slots=0)
    )
    assert ref.result().status == "complete"
    return tmp_path


def allocate(storage, runnable, version, **options):
    experiment = BaseExperiment(runnable, run_name="walls", storage=storage)
    run, ref = experiment.allocate(SPECS, version=version, engine=LocalEngine(slots=0), **options)
    assert ref.result().status == "complete"
    return run


def versions(storage) -> list[str]:
    return [str(v.version) for v in BaseExperiment(base, "walls", storage=storage).list_versions()]


def test_the_stored_schema_reads_back_as_the_compiled_one(storage):
    previous = latest_run_schema(BaseExperiment(base, "walls", storage=storage).store, "walls")
    assert previous is not None and previous.run_id.startswith("walls/v1.0.0/")
    schema = compile_experiment(Wall, Loss, computed_features={"r_squared": float})
    current = entry_of(schema.index, schema.result_tables, experiment_io_spec(Wall, Loss))
    assert diff_entries(previous.entry, current, experiment="walls") == []
    assert [c["name"] for c in previous.entry["index"]][-1] == "r_squared"


def test_an_unchanged_schema_keeps_its_version_and_records_nothing(storage):
    run = allocate(storage, base, "keep")
    assert run.run_id.startswith("walls/v1.0.0/")
    assert run.manifest.schema_change is None


@pytest.mark.parametrize("bump", ["keep", "bumppatch", "bumpminor"])
def test_a_breaking_change_under_a_smaller_bump_is_refused(storage, bump):
    with pytest.raises(SchemaChangeError) as err:
        allocate(storage, breaking, bump)
    text = str(err.value)
    assert "experiment 'walls'" in text and "walls/v1.0.0/" in text
    assert "table 'scalars', column 'u_value': dtype Float64 -> Int64" in text
    assert "need bumpmajor" in text and f"version={bump!r}" in text
    assert (err.value.required, err.value.given) == ("bumpmajor", bump)
    assert versions(storage) == ["v1.0.0"]  # nothing was written


def test_a_breaking_change_with_bumpmajor_is_accepted_and_recorded(storage):
    run = allocate(storage, breaking, "bumpmajor")
    assert run.run_id.startswith("walls/v2.0.0/")
    record = run.manifest.schema_change
    assert record is not None and record.required == "bumpmajor" and record.given == "bumpmajor"
    assert not record.allow_schema_change
    assert any("dtype Float64 -> Int64" in c for c in record.changes)


@pytest.mark.parametrize(
    ("version", "accepted"),
    [("keep", False), ("bumppatch", False), ("v1.0.7", False), ("bumpminor", True),
     ("bumpmajor", True), ("v1.4.0", True)],
)  # fmt: skip
def test_an_additive_change_needs_at_least_bumpminor(storage, version, accepted):
    if not accepted:
        with pytest.raises(SchemaChangeError, match="need bumpminor") as err:
            allocate(storage, additive, version)
        assert "additive: experiment 'walls', table 'scalars', column 'peak'" in str(err.value)
        assert versions(storage) == ["v1.0.0"]
        return
    run = allocate(storage, additive, version)
    assert run.manifest.schema_change.required == "bumpminor"
    assert run.manifest.version != "v1.0.0"


def test_allow_schema_change_overrides_and_is_recorded_in_the_manifest(storage):
    run = allocate(storage, breaking, "keep", allow_schema_change=True)
    assert run.run_id.startswith("walls/v1.0.0/")
    record = run.manifest.schema_change
    assert record.allow_schema_change and record.required == "bumpmajor" and record.given == "keep"
    stored = yaml.safe_load(run.store.get_bytes(run.layout.manifest))["schema_change"]
    assert stored["allow_schema_change"] is True and stored["previous_run"].startswith("walls/")
    assert any("dtype Float64 -> Int64" in c for c in stored["changes"])
    # The next run compares with this one: same schema, nothing to allow.
    assert allocate(storage, breaking, "keep").manifest.schema_change is None


def test_the_first_run_of_an_experiment_has_nothing_to_compare_with(tmp_path):
    run = allocate(tmp_path, breaking, "keep")
    assert run.run_id.startswith("walls/v1.0.0/") and run.manifest.schema_change is None
