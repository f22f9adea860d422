"""scythe.testing: generated specs are valid and cover the space; check_experiment finds
crashes and schema violations through the real leaf, and names the shrunk spec."""

from __future__ import annotations

import enum
import json
import re
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import pandera.polars as pa
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandera.typing.polars import DataFrame
from pydantic import BaseModel, Field, model_validator

from scythe import (
    BaseExperiment,
    ExperimentInputSpec,
    ExperimentOutputSpec,
    ExperimentRegistry,
    FileReference,
    OptionalFileReference,
)
from scythe.errors import ExperimentCheckError, FileReferenceError, SchemaCompileError
from scythe.leaf import index_values
from scythe.schema import compile_experiment, computed_feature_types
from scythe.testing import check_experiment, specs_strategy

DATA = Path(__file__).resolve().parent.parent / "examples" / "building_energy" / "data"
POOL = [DATA / "boston.parquet", DATA / "miami.parquet"]


class Tone(enum.Enum):
    WARM = "warm"
    COOL = "cool"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 3


class Point(BaseModel):
    x: int = Field(..., ge=0, le=9)
    y: float | None = None


class Rich(ExperimentInputSpec):
    """Every kind of field specs_strategy reads."""

    r_value: float = Field(..., gt=0, le=15)
    ratio: float = Field(..., ge=0.05, lt=0.9)
    step: float = Field(..., ge=0, le=2, multiple_of=0.25)
    floors: int | None = Field(None, ge=1, le=40)
    count: int = Field(..., ge=-3, lt=7, multiple_of=3)
    big: int
    mode: Literal["none", "drybulb", "enthalpy"]
    digits: Literal[1, 2, 5] = 1
    tone: Tone = Tone.WARM
    level: Level
    flag: bool
    name: str = Field(..., min_length=2, max_length=6)
    code: str = Field(..., pattern=r"^[A-Z]{2}-\d{3}$")
    note: str | None = Field(None, max_length=3)
    day: date = Field(..., ge=date(2020, 1, 1), lt=date(2021, 1, 1))
    at: datetime
    weather: FileReference
    extra: OptionalFileReference = None
    tags: list[str] = Field(default_factory=list, max_length=2)
    points: list[Point] = []
    lookup: dict[str, int] = {}

    @model_validator(mode="after")
    def _ratio_below_r(self) -> Rich:
        if self.ratio > self.r_value:
            raise ValueError("ratio must not exceed r_value")
        return self

    @property
    def computed_features(self) -> dict[str, float]:
        return {"r_per_ratio": self.r_value / max(self.ratio, 0.05)}


class Nothing(ExperimentOutputSpec):
    pass


RICH = specs_strategy(Rich, files=POOL)
SCHEMA = compile_experiment(Rich, Nothing, computed_features={"r_per_ratio": float})


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(RICH)
def test_every_generated_spec_validates(spec):
    assert isinstance(spec, Rich)
    again = Rich.model_validate(spec.model_dump())  # pydantic takes it as it is
    assert again == spec
    assert spec.weather in POOL and spec.extra in (None, *POOL)
    assert re.fullmatch(r"[A-Z]{2}-\d{3}", spec.code)
    # ... and so does the compiled schema of the index, constraint by constraint.
    assert computed_feature_types([spec]) == {"r_per_ratio": float}
    row = index_values(spec, SCHEMA)
    frame = pl.DataFrame({n: [row[n]] for n in SCHEMA.specs.index_names},
                         schema={c.name: c.dtype for c in SCHEMA.specs.index}, strict=True)  # fmt: skip
    index_only = pa.DataFrameSchema({c.name: c.pandera_column() for c in SCHEMA.specs.index})
    index_only.validate(frame, lazy=True)


@pytest.fixture(scope="module")
def drawn() -> list[Rich]:
    """150 specs as hypothesis generates them (derandomized: the same specs every run)."""
    specs: list[Rich] = []

    @settings(max_examples=150, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(RICH)
    def collect(spec):
        specs.append(spec)

    collect()
    return specs


@pytest.mark.parametrize("value", ["none", "drybulb", "enthalpy"])
def test_every_literal_value_is_generated(drawn, value):
    assert value in {s.mode for s in drawn}


@pytest.mark.parametrize(
    ("field", "values"),
    [("digits", {1, 2, 5}), ("tone", set(Tone)), ("level", set(Level)), ("flag", {True, False})],
)
def test_every_enum_and_int_literal_value_is_generated(drawn, field, values):
    assert {getattr(s, field) for s in drawn} == values


@pytest.mark.parametrize("field", ["floors", "note", "extra"])
def test_optional_fields_are_both_none_and_not_none(drawn, field):
    seen = [getattr(s, field) for s in drawn]
    assert None in seen and any(v is not None for v in seen)


def test_bounds_are_reached_but_not_passed(drawn):
    floors = [s.floors for s in drawn if s.floors is not None]
    assert min(floors) == 1 and 30 <= max(floors) <= 40
    assert {s.count for s in drawn} == {-3, 0, 3, 6}  # the multiples of 3 in [-3, 7)
    assert max(s.step for s in drawn) == 2.0 and {s.step * 4 % 1 for s in drawn} == {0.0}
    assert max(s.r_value for s in drawn) == 15.0 and min(s.r_value for s in drawn) > 0
    assert max(s.ratio for s in drawn) < 0.9 and min(s.ratio for s in drawn) == 0.05
    assert {len(s.name) for s in drawn} <= set(range(2, 7)) and {2, 6} <= {
        len(s.name) for s in drawn
    }
    assert all(date(2020, 1, 1) <= s.day < date(2021, 1, 1) for s in drawn)
    assert all(s.ratio <= s.r_value for s in drawn)  # the model validator's rule


def test_a_field_strategy_can_be_replaced():
    pinned = specs_strategy(Rich, files=POOL, mode=st.just("drybulb"))
    modes = set()

    @settings(max_examples=10, database=None)
    @given(pinned)
    def collect(spec):
        modes.add(spec.mode)

    collect()
    assert modes == {"drybulb"}


def test_a_file_field_without_files_is_a_typed_error():
    with pytest.raises(FileReferenceError, match=r"Rich\.weather is a FileReference and no file"):
        specs_strategy(Rich)


def test_a_field_without_a_strategy_names_the_field():
    class Odd(ExperimentInputSpec):
        when: complex

    with pytest.raises(SchemaCompileError, match=r"Odd\.when: no strategy .* when=<a hypothesis"):
        specs_strategy(Odd)


# --------------------------------------------------------------------------- check_experiment


class Building(ExperimentInputSpec):
    r_value: float = Field(..., gt=0, le=15)
    economizer: Literal["none", "drybulb", "enthalpy"] = "none"
    floors: int | None = Field(None, ge=1, le=40)
    weather: FileReference


class Monthly(pa.DataFrameModel):
    month: int = pa.Field(ge=1, le=12)
    kwh: float = pa.Field(ge=0)


class Energy(ExperimentOutputSpec):
    heating: float = Field(..., ge=0)
    monthly: DataFrame[Monthly]
    hourly: FileReference


def _energy(spec: Building, tempdir: Path, month: int = 12) -> Energy:
    hourly = tempdir / "hourly.txt"
    hourly.write_text(f"{spec.r_value}\n")
    monthly = pl.DataFrame({"month": list(range(1, month + 1)), "kwh": [1.0] * month})
    return Energy(heating=10 / spec.r_value, monthly=monthly, hourly=hourly)


@ExperimentRegistry.Register(name="testing_sound")
def sound(spec: Building, tempdir: Path) -> Energy:
    return _energy(spec, tempdir)


@ExperimentRegistry.Register(name="testing_corner_crash")
def corner_crash(spec: Building, tempdir: Path) -> Energy:
    if spec.economizer == "enthalpy" and spec.floors is not None and spec.floors >= 35:
        raise RuntimeError(f"tall enthalpy building ({spec.floors} floors)")
    return _energy(spec, tempdir)


@ExperimentRegistry.Register(name="testing_bad_frame")
def bad_frame(spec: Building, tempdir: Path) -> Energy:
    # month 13 breaks the frame's le=12 check, which a run checks per node, not per spec
    return _energy(spec, tempdir, month=13 if spec.economizer == "drybulb" else 12)


@ExperimentRegistry.Register(name="testing_wrong_type")
def wrong_type(spec: Building) -> Energy:
    return {"heating": 1.0}  # type: ignore[return-value]


def test_a_sound_experiment_passes_every_example():
    assert check_experiment(sound, max_examples=15, files=POOL, seed=1) == 15
    assert check_experiment(BaseExperiment(sound), max_examples=5, files=POOL, seed=2) == 5


def test_a_crash_at_a_corner_is_found_and_the_spec_shrunk(capsys):
    with pytest.raises(ExperimentCheckError) as err:
        check_experiment(corner_crash, max_examples=200, files=POOL, seed=3)
    text = str(err.value)
    assert isinstance(err.value, AssertionError)  # pytest reports it as a failed test
    assert "experiment 'testing_corner_crash' failed on Building(" in text
    assert "RuntimeError: tall enthalpy building (35 floors)" in text
    # shrunk: the smallest failing floors, and the crash's other condition
    assert "floors=35" in text and "economizer='enthalpy'" in text
    assert "Traceback" in text and "corner_crash" in text


def test_a_frame_output_that_breaks_its_schema_is_found():
    with pytest.raises(ExperimentCheckError) as err:
        check_experiment(bad_frame, max_examples=60, files=POOL, seed=4)
    text = str(err.value)
    assert "returned an output that breaks its compiled schema on Building(" in text
    assert "economizer='drybulb'" in text
    assert "table 'monthly', column 'month': failed less_than_or_equal_to(12) (value 13" in text


def test_a_wrong_return_type_is_found():
    with pytest.raises(ExperimentCheckError, match="LeafError: testing_wrong_type returned dict"):
        check_experiment(wrong_type, max_examples=5, files=POOL, seed=5)


def test_a_scalar_that_breaks_its_check_is_found():
    class Out(ExperimentOutputSpec):
        heating: float = Field(..., ge=0)

    @ExperimentRegistry.Register(name="testing_negative")
    def negative(spec: Building) -> Out:
        # model_construct skips pydantic's check, as code building outputs by hand can
        return Out.model_construct(heating=-spec.r_value)

    try:
        with pytest.raises(ExperimentCheckError) as err:
            check_experiment(negative, max_examples=10, files=POOL, seed=6)
    finally:
        ExperimentRegistry.unregister("testing_negative")
    assert "table 'scalars', column 'heating': failed greater_than_or_equal_to(0)" in str(err.value)


def test_import_scythe_does_not_import_hypothesis():
    code = (
        "import json, sys; import scythe, scythe.cli, scythe.experiments, scythe.schema.diff;"
        "print(json.dumps('hypothesis' in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) is False
