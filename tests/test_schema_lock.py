"""Schema locks: a stable export, every kind of change classified, reading across versions."""

from __future__ import annotations

import enum
import json
import sys
import textwrap
from datetime import date, datetime
from typing import Any, Literal

import pandera.polars as pa
import polars as pl
import pytest
from pandera.typing.polars import DataFrame
from pydantic import Field, create_model
from typer.testing import CliRunner

from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry, FileReference
from scythe.cli import app
from scythe.errors import ColumnNotFoundError, SchemaChangeError, SchemaMismatchError
from scythe.schema import compile_experiment
from scythe.schema.diff import (
    SchemaChange,
    align_frame,
    bump_of,
    diff_column,
    diff_entries,
    diff_locks,
    required_bump,
    unify_tables,
)
from scythe.schema.lock import dump_lock, experiment_entry, load_lock
from scythe.versions import SemVer

# --------------------------------------------------------------------------- the base experiment


class Side(enum.Enum):
    NORTH = "north"
    SOUTH = "south"


class Monthly(pa.DataFrameModel):
    month: int = pa.Field(ge=1, le=12)
    kwh: float = pa.Field(ge=0)


class MonthlyTighter(pa.DataFrameModel):
    month: int = pa.Field(ge=1, le=11)
    kwh: float = pa.Field(ge=0)


class MonthlyWider(pa.DataFrameModel):
    month: int = pa.Field(ge=1, le=12)
    kwh: float = pa.Field(ge=0)
    peak: float | None = pa.Field(nullable=True)


INPUTS: dict[str, Any] = {
    "r_value": (float, Field(..., ge=0, le=15, description="Wall R-value")),
    "economizer": (Literal["none", "drybulb"], "none"),
    "floors": (int | None, None),
    "side": (Side, Side.NORTH),
    "built": (date, date(2000, 1, 1)),
    "weather": (FileReference, ...),
    "tags": (list[str], []),
}
OUTPUTS: dict[str, Any] = {
    "heating": (float, Field(..., ge=0)),
    "label": (str, Field(..., max_length=8)),
    "count": (int, Field(..., multiple_of=2)),
    "note": (str | None, None),
    "at": (datetime, ...),
    "monthly": (DataFrame[Monthly], ...),
}


def entry(inputs: dict[str, Any] | None = None, outputs: dict[str, Any] | None = None) -> dict:
    """The lock entry of the base experiment with ``inputs`` / ``outputs`` fields changed
    (a value of None removes the field)."""
    ins = {k: v for k, v in {**INPUTS, **(inputs or {})}.items() if v is not None}
    outs = {k: v for k, v in {**OUTPUTS, **(outputs or {})}.items() if v is not None}
    in_cls = create_model("In", __base__=ExperimentInputSpec, **ins)
    out_cls = create_model("Out", __base__=ExperimentOutputSpec, **outs)
    return experiment_entry(in_cls, out_cls)


BASE = entry()

# (id, inputs, outputs, severity, table, column or input, text in the change)
CASES = [
    (
        "new optional input",
        {"wall": (float, 1.0)},
        None,
        "additive",
        "(index)",
        "wall",
        "new optional input (default 1.0)",
    ),
    (
        "new required input",
        {"wall": (float, ...)},
        None,
        "breaking",
        "(index)",
        "wall",
        "new required input",
    ),
    ("removed input", {"floors": None}, None, "breaking", "(index)", "floors", "removed"),
    (
        "input bound looser",
        {"r_value": (float, Field(..., ge=0, le=20, description="Wall R-value"))},
        None,
        "additive",
        "(index)",
        "r_value",
        "looser check: le 15 -> le 20",
    ),
    (
        "input bound tighter",
        {"r_value": (float, Field(..., gt=0, le=15, description="Wall R-value"))},
        None,
        "breaking",
        "(index)",
        "r_value",
        "tighter check: ge 0 -> gt 0",
    ),
    (
        "Literal value added",
        {"economizer": (Literal["none", "drybulb", "enthalpy"], "none")},
        None,
        "additive",
        "(index)",
        "economizer",
        "looser check: isin",
    ),
    (
        "Literal value removed",
        {"economizer": (Literal["none"], "none")},
        None,
        "breaking",
        "(index)",
        "economizer",
        "tighter check: isin",
    ),
    (
        "optional input no longer nullable",
        {"floors": (int, 1)},
        None,
        "breaking",
        "(index)",
        "floors",
        "nulls no longer allowed",
    ),
    (
        "input lost its default",
        {"economizer": (Literal["none", "drybulb"], ...)},
        None,
        "breaking",
        None,
        "economizer",
        "now required",
    ),
    (
        "input gained a default",
        {"r_value": (float, Field(1.0, ge=0, le=15, description="Wall R-value"))},
        None,
        "additive",
        None,
        "r_value",
        "now optional (default 1.0)",
    ),
    (
        "input default changed",
        {"economizer": (Literal["none", "drybulb"], "drybulb")},
        None,
        "additive",
        None,
        "economizer",
        "default 'none' -> 'drybulb'",
    ),
    (
        "non-index input type changed",
        {"tags": (list[int], [])},
        None,
        "breaking",
        None,
        "tags",
        "type changed",
    ),
    (
        "new non-index input",
        {"notes": (dict[str, str], {})},
        None,
        "additive",
        None,
        "notes",
        "new optional input",
    ),
    (
        "new output column",
        None,
        {"cooling": (float, ...)},
        "additive",
        "scalars",
        "cooling",
        "new output column (Float64)",
    ),
    (
        "removed output column",
        None,
        {"note": None},
        "breaking",
        "scalars",
        "note",
        "removed (String, nullable)",
    ),
    (
        "renamed output column",
        None,
        {"count": None, "n": (int, Field(..., multiple_of=2))},
        "breaking",
        "scalars",
        "count",
        "renamed to 'n'",
    ),
    (
        "output dtype changed",
        None,
        {"count": (float, Field(..., multiple_of=2))},
        "breaking",
        "scalars",
        "count",
        "dtype Int64 -> Float64",
    ),
    (
        "output bound tighter",
        None,
        {"heating": (float, Field(..., ge=1))},
        "breaking",
        "scalars",
        "heating",
        "tighter check: ge 0 -> ge 1",
    ),
    (
        "output bound removed",
        None,
        {"heating": (float, ...)},
        "additive",
        "scalars",
        "heating",
        "looser check: ge 0 -> none",
    ),
    (
        "max_length tighter",
        None,
        {"label": (str, Field(..., max_length=4))},
        "breaking",
        "scalars",
        "label",
        "tighter check: max_length 8 -> 4",
    ),
    (
        "max_length looser",
        None,
        {"label": (str, Field(..., max_length=16))},
        "additive",
        "scalars",
        "label",
        "looser check: max_length 8 -> 16",
    ),
    (
        "new pattern",
        None,
        {"label": (str, Field(..., max_length=8, pattern="^[a-z]+$"))},
        "breaking",
        "scalars",
        "label",
        "tighter check: pattern",
    ),
    (
        "multiple_of coarser",
        None,
        {"count": (int, Field(..., multiple_of=4))},
        "breaking",
        "scalars",
        "count",
        "tighter check: multiple_of 2 -> 4",
    ),
    (
        "multiple_of finer",
        None,
        {"count": (int, Field(..., multiple_of=1))},
        "additive",
        "scalars",
        "count",
        "looser check: multiple_of 2 -> 1",
    ),
    (
        "output now nullable",
        None,
        {"label": (str | None, Field(None, max_length=8))},
        "additive",
        "scalars",
        "label",
        "now nullable",
    ),
    (
        "output no longer nullable",
        None,
        {"note": (str, "")},
        "breaking",
        "scalars",
        "note",
        "nulls no longer allowed",
    ),
    (
        "frame column check tighter",
        None,
        {"monthly": (DataFrame[MonthlyTighter], ...)},
        "breaking",
        "monthly",
        "month",
        "tighter check: le 12 -> le 11",
    ),
    (
        "frame column added",
        None,
        {"monthly": (DataFrame[MonthlyWider], ...)},
        "additive",
        "monthly",
        "peak",
        "new output column (Float64, nullable)",
    ),
    (
        "new frame table",
        None,
        {"yearly": (DataFrame[Monthly], ...)},
        "additive",
        "yearly",
        None,
        "new output table",
    ),
    ("frame table removed", None, {"monthly": None}, "breaking", "monthly", None, "table removed"),
    (
        "new file output",
        None,
        {"report": (FileReference, ...)},
        "additive",
        "result_file_refs",
        "report",
        "new output column (String)",
    ),
]


@pytest.mark.parametrize(
    ("inputs", "outputs", "severity", "table", "name", "text"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_each_kind_of_change_is_classified(inputs, outputs, severity, table, name, text):
    changes = diff_entries(BASE, entry(inputs, outputs), experiment="walls")
    real = [c for c in changes if c.severity != "cosmetic"]
    # The change itself, and nothing more severe (a default that changed with it is additive).
    matching = [c for c in real if c.severity == severity and name in (c.column, c.input)]
    assert len(matching) == 1, [str(c) for c in real]
    assert len(real) == 1 or severity == "breaking", [str(c) for c in real]
    change = matching[0]
    assert change.table == table
    assert name in (change.column, change.input)
    assert text in change.what, str(change)
    assert required_bump(changes) == ("bumpmajor" if severity == "breaking" else "bumpminor")


def test_a_description_change_is_cosmetic_and_needs_no_bump():
    changed = {"r_value": (float, Field(..., ge=0, le=15, description="Thermal resistance"))}
    changes = diff_entries(BASE, entry(changed), experiment="walls")
    assert [c.severity for c in changes] == ["cosmetic"]
    assert "Thermal resistance" in changes[0].what
    assert required_bump(changes) == "keep"


def test_equal_entries_have_no_changes():
    assert diff_entries(BASE, entry(), experiment="walls") == []
    assert required_bump([]) == "keep"


def test_a_change_names_the_experiment_table_and_column():
    changes = diff_entries(BASE, entry(None, {"count": (float, ...)}), experiment="walls")
    text = str(next(c for c in changes if c.severity == "breaking"))
    assert text.startswith("breaking: experiment 'walls', table 'scalars', column 'count': ")


def test_experiments_added_to_or_removed_from_a_lock():
    changes = diff_locks({"a": BASE, "b": BASE}, {"b": BASE, "c": BASE})
    assert [(c.experiment, c.severity) for c in changes] == [("a", "breaking"), ("c", "additive")]


@pytest.mark.parametrize(
    ("version", "bump"),
    [("keep", "keep"), ("bumpminor", "bumpminor"), ("v2.0.0", "bumpmajor"),
     ("v1.3.0", "bumpminor"), ("v1.2.4", "bumppatch"), ("v1.2.3", "keep"), ("v1.0.9", "keep")],
)  # fmt: skip
def test_an_explicit_version_counts_as_the_bump_it_makes(version, bump):
    assert bump_of(SemVer.parse("v1.2.3"), version) == bump


# --------------------------------------------------------------------------- a stable export


def _reversed(value: Any) -> Any:
    """The same data with every dict's keys in the opposite order."""
    if isinstance(value, dict):
        return {k: _reversed(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed(v) for v in value]
    return value


def test_the_lock_text_does_not_depend_on_dict_order():
    text = dump_lock({"walls": BASE, "roofs": entry({"wall": (float, 1.0)})})
    again = dump_lock(_reversed({"walls": BASE, "roofs": entry({"wall": (float, 1.0)})}))
    assert text == again
    assert list(json.loads(text)) == ["roofs", "walls"]  # one experiment per top-level key, sorted
    assert load_lock(text) == json.loads(text)
    assert dump_lock(load_lock(text)) == text


def test_compiling_twice_gives_the_same_bytes():
    assert dump_lock({"walls": entry()}) == dump_lock({"walls": entry()})


def test_a_lock_holds_dtypes_nullability_checks_and_the_json_schema():
    tables = BASE["tables"]
    assert sorted(tables) == ["failures", "monthly", "result_file_refs", "scalars"]
    heating = next(c for c in tables["scalars"]["columns"] if c["name"] == "heating")
    assert (heating["dtype"], heating["nullable"], heating["checks"]) == (
        "Float64",
        False,
        [{"kind": "ge", "value": 0}],
    )
    month = next(c for c in tables["monthly"]["columns"] if c["name"] == "month")
    assert month["checks"] == [{"kind": "ge", "value": 1}, {"kind": "le", "value": 12}]
    floors = next(c for c in BASE["index"] if c["name"] == "floors")
    assert (floors["dtype"], floors["nullable"]) == ("Int64", True)
    assert BASE["inputs"]["weather"] == {"required": True}
    assert BASE["json_schema"]["properties"]["input"]["required"] == ["r_value", "weather"]


def test_a_file_that_is_not_a_lock_is_refused():
    with pytest.raises(SchemaMismatchError, match="not JSON"):
        load_lock("{", source="x.json")
    with pytest.raises(SchemaMismatchError, match=r"entries \['walls'\] hold no tables"):
        load_lock('{"walls": 1}', source="x.json")


# --------------------------------------------------------------------------- the CLI


runner = CliRunner()

MODULE = """
from pydantic import Field
from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry


class Wall(ExperimentInputSpec):
    r_value: float = Field(..., ge=0)


class Loss(ExperimentOutputSpec):
    u_value: float = Field(..., {check})


@ExperimentRegistry.Register(name="lock_walls")
def conduct(spec: Wall) -> Loss:
    return Loss(u_value=1 / spec.r_value)
"""


@pytest.fixture
def module(tmp_path, monkeypatch):
    """Write ``lockmod.py`` with a given check on its output; import it afresh on each CLI call."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(check: str) -> str:
        (tmp_path / "lockmod.py").write_text(textwrap.dedent(MODULE.format(check=check)))
        sys.modules.pop("lockmod", None)
        ExperimentRegistry.unregister("lock_walls")
        return "lockmod"

    yield write
    sys.modules.pop("lockmod", None)
    ExperimentRegistry.unregister("lock_walls")


def test_export_then_check_passes_and_export_is_byte_stable(module, tmp_path):
    lock = tmp_path / "scythe.schema.json"
    name = module("ge=0")
    exported = runner.invoke(app, ["schema", "export", name, "--output", str(lock)])
    assert exported.exit_code == 0, exported.output
    first = lock.read_bytes()
    module("ge=0")
    assert (
        runner.invoke(app, ["schema", "export", f"{name}:conduct", "-o", str(lock)]).exit_code == 0
    )
    assert lock.read_bytes() == first
    assert list(json.loads(first)) == ["lock_walls"]
    module("ge=0")
    checked = runner.invoke(app, ["schema", "check", name, "--lock", str(lock)])
    assert checked.exit_code == 0, checked.output
    assert "1 experiment(s) match the code" in checked.output


@pytest.mark.parametrize(
    ("check", "severity", "needs"),
    [("ge=1", "breaking", "bumpmajor"), ("ge=-1", "additive", "bumpminor")],
)
def test_check_fails_with_a_readable_classified_diff(module, tmp_path, check, severity, needs):
    lock = tmp_path / "scythe.schema.json"
    assert runner.invoke(app, ["schema", "export", module("ge=0"), "-o", str(lock)]).exit_code == 0
    checked = runner.invoke(app, ["schema", "check", module(check), "--lock", str(lock)])
    assert checked.exit_code == 1
    assert f"needs {needs}" in checked.output
    assert (
        f"{severity}: experiment 'lock_walls', table 'scalars', column 'u_value': "
        in checked.output
    )
    assert "scythe schema export lockmod" in checked.output


def test_check_flags_an_experiment_the_module_no_longer_registers(module, tmp_path):
    lock = tmp_path / "scythe.schema.json"
    assert runner.invoke(app, ["schema", "export", module("ge=0"), "-o", str(lock)]).exit_code == 0
    locked = json.loads(lock.read_text())
    locked["lock_gone"] = {**locked["lock_walls"], "function": "lockmod:gone"}
    lock.write_text(dump_lock(locked))
    checked = runner.invoke(app, ["schema", "check", module("ge=0"), "--lock", str(lock)])
    assert checked.exit_code == 1
    assert "breaking: experiment 'lock_gone': experiment removed from the code" in checked.output


def test_cli_errors_are_one_line_and_exit_2(module, tmp_path):
    missing = runner.invoke(
        app, ["schema", "check", module("ge=0"), "-l", str(tmp_path / "no.json")]
    )
    assert missing.exit_code == 2 and "no lock file" in missing.output
    unknown = runner.invoke(app, ["schema", "export", "lockmod:nothing", "-o", "-"])
    assert unknown.exit_code == 2 and "no experiment named 'nothing'" in unknown.output
    absent = runner.invoke(app, ["schema", "export", "no_such_module_here", "-o", "-"])
    assert (
        absent.exit_code == 2 and "cannot import the module 'no_such_module_here'" in absent.output
    )


# --------------------------------------------------------------------------- across versions


class V1(ExperimentOutputSpec):
    heating: float = Field(..., ge=0)
    label: str


class V2(ExperimentOutputSpec):  # additive: a new column, a looser check
    heating: float = Field(..., ge=-1)
    label: str
    cooling: float


class V3(ExperimentOutputSpec):  # breaking from V2: label is gone, heating is an int
    heating: int
    cooling: float


class Walls(ExperimentInputSpec):
    r_value: float


def scalars(out: type[ExperimentOutputSpec]):
    return compile_experiment(Walls, out).scalars


def test_additive_changes_unify_with_missing_columns_as_nulls():
    unified = unify_tables([scalars(V1), scalars(V2)], labels=["v1.0.0", "v1.1.0"])
    assert unified.value_names == ["heating", "label", "cooling"]
    assert unified.column("cooling").nullable and not unified.column("heating").nullable
    old = pl.DataFrame(
        {"sort_index": [0], "r_value": [1.0], "heating": [2.0], "label": ["a"]},
        schema_overrides={"sort_index": pl.Int64},
    )
    aligned = align_frame(old, unified)
    assert aligned.columns == unified.names
    assert aligned["cooling"].dtype == pl.Float64 and aligned["cooling"].null_count() == 1
    lazy = align_frame(old.lazy(), unified).collect()
    assert lazy.equals(aligned)


def test_breaking_changes_are_refused_naming_table_columns_and_versions():
    with pytest.raises(SchemaChangeError) as err:
        unify_tables([scalars(V2), scalars(V3)], labels=["v1.1.0", "v2.0.0"])
    text = str(err.value)
    assert "table 'scalars' cannot be read across versions ['v1.1.0', 'v2.0.0']" in text
    assert "column 'heating': dtype Float64 -> Int64" in text
    assert "column 'label': removed" in text
    assert "columns=[" in text and "'cooling'" in text
    assert {c.column for c in err.value.changes} == {"heating", "label"}
    assert all(isinstance(c, SchemaChange) for c in err.value.changes)


def test_selecting_compatible_columns_reads_across_a_breaking_change():
    unified = unify_tables([scalars(V2), scalars(V3)], columns=["r_value", "cooling"])
    assert unified.names == ["sort_index", "r_value", "cooling"]


def test_a_tighter_check_in_the_newest_version_is_refused():
    with pytest.raises(SchemaChangeError, match="tighter check: ge -1 -> ge 0"):
        unify_tables([scalars(V2), scalars(V1)], columns=["heating"])


def test_a_column_no_version_has_is_a_typed_error():
    with pytest.raises(ColumnNotFoundError, match="no column \\['nope'\\] in any version"):
        unify_tables([scalars(V1)], columns=["nope"])
    with pytest.raises(SchemaMismatchError):
        unify_tables([])


# --------------------------------------------------------------------------- checks one by one


def _col(*checks: tuple, nullable: bool = False, unique: bool = False) -> dict[str, Any]:
    return {
        "dtype": "Int64",
        "nullable": nullable,
        "unique": unique,
        "checks": [
            {"kind": k, "name": v[0], "statistics": v[1]}
            if k == "check"
            else {"kind": k, "value": v}
            for k, v in checks
        ],
    }


CHECK_CASES = [
    ("isin added", _col(), _col(("isin", [1, 2])), "breaking"),
    ("isin removed", _col(("isin", [1, 2])), _col(), "additive"),
    ("isin grown", _col(("isin", [1, 2])), _col(("isin", [1, 2, 3])), "additive"),
    ("isin swapped", _col(("isin", [1, 2])), _col(("isin", [1, 3])), "breaking"),
    ("notin added", _col(), _col(("notin", [0])), "breaking"),
    ("notin grown", _col(("notin", [0])), _col(("notin", [0, 1])), "breaking"),
    ("notin shrunk", _col(("notin", [0, 1])), _col(("notin", [0])), "additive"),
    ("pattern removed", _col(("pattern", "^a")), _col(), "additive"),
    ("pattern replaced", _col(("pattern", "^a")), _col(("pattern", "^b")), "breaking"),
    ("ge to gt at one value", _col(("ge", 0)), _col(("gt", 0)), "breaking"),
    ("gt to ge at one value", _col(("gt", 0)), _col(("ge", 0)), "additive"),
    ("lt up", _col(("lt", 5)), _col(("lt", 6)), "additive"),
    ("le to lt at one value", _col(("le", 5)), _col(("lt", 5)), "breaking"),
    ("lower bound below a stricter one", _col(("ge", 1), ("gt", 3)), _col(("ge", 1)), "additive"),
    ("min_length added", _col(), _col(("min_length", 2)), "breaking"),
    ("now unique", _col(), _col(unique=True), "breaking"),
    ("no longer unique", _col(unique=True), _col(), "additive"),
    ("custom check added", _col(), _col(("check", ("is_even", {}))), "breaking"),
    ("custom check removed", _col(("check", ("is_even", {}))), _col(), "additive"),
    (
        "custom check changed",
        _col(("check", ("near", {"x": 1}))),
        _col(("check", ("near", {"x": 2}))),
        "breaking",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "severity"), [pytest.param(*c[1:], id=c[0]) for c in CHECK_CASES]
)
def test_each_check_change_is_tighter_or_looser(old, new, severity):
    changes = diff_column(old, new)
    assert [s for s, _ in changes] == [severity], changes
    text = changes[0][1]
    if "unique" in text:
        assert text == ("now unique" if severity == "breaking" else "no longer unique")
    else:
        assert text.startswith("tighter check: " if severity == "breaking" else "looser check: ")
