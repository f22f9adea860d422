"""The schema compiler: type map, constraints, tables, collisions, JSON Schema."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Literal

import pandera.polars as pa
import polars as pl
import pyarrow
import pytest
from pandera.typing.polars import DataFrame
from pydantic import BaseModel, Field

from scythe import ExperimentInputSpec, ExperimentOutputSpec, FileReference, OptionalFileReference
from scythe.errors import IndexCollisionError, SchemaCompileError, SpecValidationError
from scythe.schema import (
    compile_experiment,
    compile_field,
    computed_feature_types,
    experiment_io_spec,
    index_columns,
)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class AllTypes(ExperimentInputSpec):
    i: int
    f: float
    b: bool
    s: str
    lit: Literal["none", "drybulb", "enthalpy"]
    lit_int: Literal[1, 2, 3]
    color: Color
    level: Level
    when: datetime
    day: date
    weather: FileReference
    maybe_i: int | None = None
    maybe_f: float | None = None
    maybe_file: OptionalFileReference = None


TYPE_MAP = [
    ("i", pl.Int64(), False, None),
    ("f", pl.Float64(), False, None),
    ("b", pl.Boolean(), False, None),
    ("s", pl.String(), False, None),
    ("lit", pl.String(), False, ("none", "drybulb", "enthalpy")),
    ("lit_int", pl.Int64(), False, (1, 2, 3)),
    ("color", pl.String(), False, ("red", "blue")),
    ("level", pl.Int64(), False, (1, 2)),
    ("when", pl.Datetime("us", "UTC"), False, None),
    ("day", pl.Date(), False, None),
    ("weather", pl.String(), False, None),
    ("maybe_i", pl.Int64(), True, None),
    ("maybe_f", pl.Float64(), True, None),
    ("maybe_file", pl.String(), True, None),
]


@pytest.mark.parametrize(("name", "dtype", "nullable", "allowed"), TYPE_MAP)
def test_type_map(name, dtype, nullable, allowed):
    col = compile_field(AllTypes, name)
    assert col.dtype == dtype
    assert col.nullable is nullable
    isin = [c.value for c in col.constraints if c.kind == "isin"]
    assert isin == ([allowed] if allowed else [])


def test_arrow_schema_uses_exact_types():
    class Out(ExperimentOutputSpec):
        heating: float

    schema = compile_experiment(AllTypes, Out).scalars.arrow_schema()
    assert schema.field("i").type == pyarrow.int64()
    assert schema.field("maybe_i").nullable
    assert not schema.field("i").nullable
    assert schema.field("when").type == pyarrow.timestamp("us", tz="UTC")
    assert schema.field("day").type == pyarrow.date32()
    assert schema.field("s").type == pyarrow.string()
    assert schema.field("heating").type == pyarrow.float64()


def test_index_columns_order_skips_containers_and_appends_computed_features():
    class Nested(BaseModel):
        x: int

    class Spec(ExperimentInputSpec):
        b: float
        a: int
        tags: list[str] = []
        options: dict[str, int] = {}
        nested: Nested | None = None
        c: str = "x"

    names = [c.name for c in index_columns(Spec, {"area": 2.0, "zone": "A"})]
    assert names == [
        "experiment_id",
        "sort_index",
        "workflow_run_id",
        "root_workflow_run_id",
        "b",
        "a",
        "c",
        "area",
        "zone",
    ]


def test_sort_index_is_unique_and_non_negative():
    class Out(ExperimentOutputSpec):
        y: float

    schema = compile_experiment(AllTypes, Out).scalars.pandera_schema()
    assert schema.unique == ["sort_index"]
    sort_checks = [str(c) for c in schema.columns["sort_index"].checks]
    assert any("greater_than_or_equal_to(0)" in c for c in sort_checks)


class Hourly(pa.DataFrameModel):
    hour: int = pa.Field(ge=0, le=23)
    temp: float


class Rich(ExperimentOutputSpec):
    heating: float = Field(..., ge=0, description="kWh/m2")
    label: Literal["ok", "warn"] = "ok"
    timeseries: FileReference
    plot: OptionalFileReference = None
    hourly: DataFrame[Hourly]


class Small(ExperimentInputSpec):
    r_value: float = Field(..., ge=0, le=15, description="Wall R-value")
    floors: int | None = None


def test_tables_of_an_experiment():
    schema = compile_experiment(Small, Rich)
    assert list(schema.result_tables) == ["scalars", "result_file_refs", "failures", "hourly"]
    idx = schema.index_names
    assert schema.scalars.names == [*idx, "heating", "label"]
    assert schema.file_refs.names == [*idx, "timeseries", "plot"]
    assert schema.file_refs.column("plot").nullable
    assert schema.failures.names == [*idx, "error_type", "message", "traceback", "attempts"]
    assert schema.dataframes["hourly"].names == [*idx, "sort_subindex", "hour", "temp"]
    assert schema.dataframes["hourly"].sort_keys == ["sort_index", "sort_subindex"]
    assert schema.output_file_fields == ("timeseries", "plot")
    assert schema.specs.names == [*idx, "extra_json"]


def test_dataframe_output_table_enforces_the_model_checks():
    table = compile_experiment(Small, Rich).dataframes["hourly"]
    base = {
        "experiment_id": ["e", "e"],
        "sort_index": [0, 0],
        "workflow_run_id": [None, None],
        "root_workflow_run_id": [None, None],
        "r_value": [1.0, 1.0],
        "floors": [None, None],
        "sort_subindex": [0, 1],
        "temp": [1.0, 2.0],
    }
    good = pl.DataFrame({**base, "hour": [0, 1]}, schema=table.polars_schema())
    table.pandera_schema().validate(good)
    bad = pl.DataFrame({**base, "hour": [0, 24]}, schema=table.polars_schema())
    with pytest.raises(pa.errors.SchemaError, match="hour"):
        table.pandera_schema().validate(bad)


def test_input_constraints_apply_to_index_columns():
    table = compile_experiment(Small, Rich).scalars
    frame = pl.DataFrame(
        {
            "experiment_id": ["e"],
            "sort_index": [0],
            "workflow_run_id": [None],
            "root_workflow_run_id": [None],
            "r_value": [16.0],
            "floors": [None],
            "heating": [1.0],
            "label": ["ok"],
        },
        schema=table.polars_schema(),
    )
    with pytest.raises(pa.errors.SchemaError, match="r_value"):
        table.pandera_schema().validate(frame)


@pytest.mark.parametrize(
    "annotation",
    [bytes, int | str, tuple[int, int], list[float], dict[str, float]],
    ids=["bytes", "int|str", "tuple", "list", "dict"],
)
def test_unsupported_output_annotations_name_class_and_field(annotation):
    Out = type("Out", (ExperimentOutputSpec,), {"__annotations__": {"weird": annotation}})
    with pytest.raises(SchemaCompileError, match=r"Out\.weird"):
        compile_experiment(Small, Out)


def test_unsupported_input_annotation_names_class_and_field():
    class BadIn(ExperimentInputSpec):
        blob: bytes

    class Out(ExperimentOutputSpec):
        y: float

    with pytest.raises(SchemaCompileError, match=r"BadIn\.blob"):
        compile_experiment(BadIn, Out)


def test_mixed_literal_is_rejected():
    class In(ExperimentInputSpec):
        mode: Literal["a", 1]

    with pytest.raises(SchemaCompileError, match=r"In\.mode.*mixes types"):
        compile_field(In, "mode")


def test_output_named_like_an_index_column_collides():
    class Out(ExperimentOutputSpec):
        r_value: float

    with pytest.raises(IndexCollisionError, match="'r_value'"):
        compile_experiment(Small, Out)


def test_frame_column_named_like_an_index_column_collides():
    class Clash(pa.DataFrameModel):
        floors: int

    class Out(ExperimentOutputSpec):
        per_floor: DataFrame[Clash]

    with pytest.raises(IndexCollisionError, match="'floors'"):
        compile_experiment(Small, Out)


def test_input_field_named_like_a_failure_column_collides():
    class In(ExperimentInputSpec):
        message: str

    class Out(ExperimentOutputSpec):
        y: float

    with pytest.raises(IndexCollisionError, match="'message'"):
        compile_experiment(In, Out)


def test_frame_output_cannot_shadow_a_builtin_table():
    class Out(ExperimentOutputSpec):
        scalars: DataFrame[Hourly]

    with pytest.raises(SchemaCompileError, match="built-in table"):
        compile_experiment(Small, Out)


def test_compile_rejects_non_spec_classes():
    class NotASpec(BaseModel):
        x: int

    with pytest.raises(SchemaCompileError, match="subclass of ExperimentInputSpec"):
        compile_experiment(NotASpec, Rich)  # type: ignore[arg-type]


def test_computed_features_become_typed_index_columns():
    class Box(ExperimentInputSpec):
        width: float
        depth: float

        @property
        def computed_features(self):
            return {
                "area": self.width * self.depth,
                "shape": "square" if self.width == self.depth else "rect",
            }

    specs = [Box(width=2, depth=2), Box(width=2, depth=3)]
    types = computed_feature_types(specs)
    assert types == {"area": float, "shape": str}
    cols = {c.name: c.dtype for c in index_columns(Box, types)}
    assert cols["area"] == pl.Float64()
    assert cols["shape"] == pl.String()


def test_computed_features_must_agree_across_specs():
    class Flaky(ExperimentInputSpec):
        x: int

        @property
        def computed_features(self):
            return {"k": 1} if self.x == 0 else {"k": "one"}

    with pytest.raises(SpecValidationError, match="spec 1 computed_features"):
        computed_feature_types([Flaky(x=0), Flaky(x=1)])


def test_float_multiple_of_tolerates_rounding():
    class In(ExperimentInputSpec):
        step: float = Field(..., multiple_of=0.1)

    class Out(ExperimentOutputSpec):
        y: float

    table = compile_experiment(In, Out).scalars
    rows = {
        "experiment_id": ["e"] * 3,
        "sort_index": [0, 1, 2],
        "workflow_run_id": [None] * 3,
        "root_workflow_run_id": [None] * 3,
        "y": [0.0] * 3,
    }
    ok = pl.DataFrame({**rows, "step": [0.3, 0.7, 12.1]}, schema=table.polars_schema())
    table.pandera_schema().validate(ok)
    bad = pl.DataFrame({**rows, "step": [0.3, 0.75, 1.0]}, schema=table.polars_schema())
    with pytest.raises(pa.errors.SchemaError, match="multiple_of"):
        table.pandera_schema().validate(bad)


def test_experiment_io_spec_carries_descriptions():
    doc = experiment_io_spec(Small, Rich)
    assert doc["properties"]["input"]["properties"]["r_value"]["description"] == "Wall R-value"
    assert doc["properties"]["output"]["properties"]["heating"]["description"] == "kWh/m2"
    assert "hourly" in doc["properties"]["output"]["properties"]


def test_datetime_column_accepts_utc_values():
    class Out(ExperimentOutputSpec):
        y: float

    table = compile_experiment(AllTypes, Out).scalars
    assert table.column("when").dtype == pl.Datetime("us", "UTC")
    value = datetime(2026, 1, 1, tzinfo=UTC)
    series = pl.Series("when", [value], dtype=pl.Datetime("us", "UTC"))
    assert series[0] == value
    assert table.column("day").dtype == pl.Date()


def test_string_constraints_compile_to_checks():
    class In(ExperimentInputSpec):
        code: str = Field(..., pattern=r"^[A-Z]{2}\d+$", min_length=3, max_length=6)

    col = compile_field(In, "code")
    assert {(c.kind, c.value) for c in col.constraints} == {
        ("pattern", r"^[A-Z]{2}\d+$"),
        ("min_length", 3),
        ("max_length", 6),
    }


def test_unresolvable_annotation_is_a_compile_error():
    class Later(ExperimentInputSpec):
        thing: UndefinedType  # type: ignore[name-defined]  # noqa: F821

    class Out(ExperimentOutputSpec):
        y: float

    with pytest.raises(SchemaCompileError, match="Later has annotations that cannot be resolved"):
        compile_experiment(Later, Out)


# --------------------------------------------------------------------------- the stored form


def _round_trip(schema):
    from scythe.schema import schema_from_dict, schema_to_dict

    return schema_from_dict(schema_to_dict(schema), schema.input_spec, schema.output_spec)


def test_the_stored_form_rebuilds_every_table_with_its_checks():
    class Step(pa.DataFrameModel):
        month: int = pa.Field(ge=1, le=12)
        kwh: float = pa.Field(in_range={"min_value": 0, "max_value": 1e6})

    class In(ExperimentInputSpec):
        r: float = Field(..., ge=0, le=15)
        mode: Literal["a", "b"] = "a"

    class Out(ExperimentOutputSpec):
        y: float = Field(..., multiple_of=0.5)
        monthly: DataFrame[Step]

    schema = compile_experiment(In, Out)
    stored = _round_trip(schema)
    for name, table in schema.result_tables.items():
        again = stored.table(name)
        assert again.names == table.names and again.polars_schema() == table.polars_schema()
    bad = pl.DataFrame({"month": [13], "kwh": [-1.0]})
    cases = stored.dataframes["monthly"].outputs_pandera_schema()
    with pytest.raises(pa.errors.SchemaErrors) as caught:
        cases.validate(
            bad.with_columns(sort_index=pl.lit(0, pl.Int64), sort_subindex=pl.lit(0, pl.Int64)),
            lazy=True,
        )
    failed = set(caught.value.failure_cases["check"].to_list())
    assert {"less_than_or_equal_to(12)", "in_range(0, 1000000.0)"} <= failed
    assert stored.input_file_fields == schema.input_file_fields


def test_a_check_a_run_cannot_store_is_refused_when_compiling():
    class Step(pa.DataFrameModel):
        kwh: float

        @pa.check("kwh")
        def positive(cls, series):  # a plain function: nothing to rebuild it from storage
            return series > 0

    class In(ExperimentInputSpec):
        r: float

    class Out(ExperimentOutputSpec):
        monthly: DataFrame[Step]

    with pytest.raises(
        SchemaCompileError, match=r"custom checks \['positive'\].*register_check_method"
    ):
        compile_experiment(In, Out)


def test_a_registered_custom_check_is_stored_by_name():
    import pandera.extensions as extensions

    name = "scythe_test_is_even"
    if name not in pa.Check.REGISTERED_CUSTOM_CHECKS:

        @extensions.register_check_method(statistics=["divisor"])
        def scythe_test_is_even(polars_obj, *, divisor):
            return polars_obj.lazyframe.select(pl.col(polars_obj.key) % divisor == 0)

    class Step(pa.DataFrameModel):
        n: int = pa.Field(scythe_test_is_even={"divisor": 2})

    class In(ExperimentInputSpec):
        r: float

    class Out(ExperimentOutputSpec):
        steps: DataFrame[Step]

    stored = _round_trip(compile_experiment(In, Out)).dataframes["steps"]
    (check,) = stored.column("n").extra_checks
    assert (check.name, check.statistics) == (name, {"divisor": 2})


def test_runs_stored_in_the_first_format_still_open():
    from scythe.schema import schema_from_dict, table_to_dict

    class In(ExperimentInputSpec):
        r: float
        weather: FileReference

    class Out(ExperimentOutputSpec):
        y: float

    schema = compile_experiment(In, Out)
    first_format = {  # table_schemas.yml of the first runs: the tables at the top level
        name: table_to_dict(table)
        for name, table in {"specs": schema.specs, **schema.result_tables}.items()
    }
    again = schema_from_dict(first_format, In, Out)
    assert again.scalars.names == schema.scalars.names
    assert again.input_file_fields == ("weather",)
