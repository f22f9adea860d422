"""Every bad input gets its exact error class and a message naming spec, field and value.

Each case runs against a store that already holds a committed run (the
witness); after every case the witness's files are byte-for-byte what they
were, so no bad input loses or changes anything already done.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from bad_inputs.experiments import Case, CaseOut, bad_inputs_case
from scythe import BaseExperiment, ExperimentRun, LocalEngine, RecursionMap
from scythe.errors import (
    ExperimentDefinitionError,
    ExperimentImportError,
    ExperimentOptionsError,
    FileReferenceError,
    ManifestError,
    RecursionMapError,
    RunNotFoundError,
    RunOptionError,
    SettingsError,
    SpecFailedError,
    SpecValidationError,
    TableMissingError,
    TableNotFoundError,
    UnsupportedOptionError,
    VersionError,
)
from scythe.experiments import CorruptManifestWarning

ENGINE = LocalEngine(slots=0)


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def witness_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding one committed run of the experiment."""
    storage = tmp_path_factory.mktemp("bad-inputs") / "store"
    _, ref = BaseExperiment(bad_inputs_case, storage=storage).allocate(
        [Case(x=1.0), Case(x=2.0)], engine=ENGINE
    )
    assert ref.result().status == "complete"
    return storage


@pytest.fixture
def storage(witness_store: Path) -> Iterator[Path]:
    """The shared store; after the case, every file of every earlier run is unchanged."""
    before = _tree(witness_store)
    yield witness_store
    after = _tree(witness_store)
    changed = [k for k, digest in before.items() if after.get(k) != digest]
    assert not changed, f"a bad input changed or removed committed files: {changed[:5]}"


@pytest.fixture
def experiment(storage: Path) -> BaseExperiment:
    return BaseExperiment(bad_inputs_case, storage=storage)


def _own_copy(storage: Path, run: ExperimentRun, tmp_path: Path) -> ExperimentRun:
    """A copy of ``run`` in a store of its own, for cases that damage a run on purpose."""
    target = tmp_path / "damaged"
    shutil.copytree(storage / run.run_id, target / run.run_id)
    return ExperimentRun.open(run.run_id, storage=target)


# --------------------------------------------------------------------------- specs at allocation

SPEC_CASES: list[tuple[str, Callable[[], list[Any]], str]] = [
    (
        "below a bound",
        lambda: [Case(), Case.model_construct(x=-1.0, mode="ok", meta={})],
        r"spec 1 field 'x' = -1\.0: fails greater_than_or_equal_to\(0\) \(Case\.x\)",
    ),
    ("NaN", lambda: [Case(), Case(y=math.nan)], r"spec 1 field 'y' = nan: is NaN"),
    ("wrong type in a dict", lambda: [{"x": 1.0}, {"x": "warm"}], r"spec 1 field 'x' = 'warm'"),
    (
        "missing field in a dict",
        lambda: [{"x": 1.0}, {"mode": "ok", "x": None}],
        r"spec 1 field 'x' = None",
    ),
    (
        "value not storable as JSON",
        lambda: [Case(), Case(meta={"mesh": object()})],
        r"spec 1 field 'meta' = \{'mesh': <object object at .*>\}: cannot be stored as JSON",
    ),
    (
        "mutated after construction",
        lambda: _mutated(),
        r"spec 0 field 'x' = -5\.0: fails greater_than_or_equal_to",
    ),
    (
        "several bad specs at once",
        lambda: [Case(), {"x": -1.0}, {"x": "cold"}],
        r"(?s)2 invalid spec\(s\).*spec 1 field 'x' = -1\.0.*spec 2 field 'x' = 'cold'",
    ),
]


def _mutated() -> list[Case]:
    spec = Case(x=1.0)
    spec.x = -5.0
    return [spec, Case()]


@pytest.mark.parametrize(("case", "make", "message"), SPEC_CASES, ids=[c[0] for c in SPEC_CASES])
def test_a_bad_spec_is_refused_before_anything_is_written(experiment, case, make, message):
    versions = _versions(experiment)
    with pytest.raises(SpecValidationError, match=message) as info:
        experiment.allocate(make(), engine=ENGINE, version="bumpminor")
    assert info.value.problems, "the problems are given as data too"
    assert _versions(experiment) == versions  # no run folder was claimed


def _versions(experiment: BaseExperiment) -> list[tuple[str, int]]:
    return [(str(v.version), len(v.list_runs())) for v in experiment.list_versions()]


def test_a_spec_of_another_class_is_named_with_its_index(experiment):
    class Other(Case.__base__):  # type: ignore[name-defined,misc]
        y: int = 1

    with pytest.raises(SpecValidationError, match=r"spec 1"):
        experiment.check_spec_types([Case(), Other()])


def test_no_specs_at_all(experiment):
    with pytest.raises(SpecValidationError, match=r"no specs to allocate for 'bad_inputs_case'"):
        experiment.allocate([], engine=ENGINE)


def test_a_missing_input_file_names_spec_field_and_path(storage):
    from scythe_test_experiments import Probe, probe

    with pytest.raises(FileReferenceError, match=r"spec 1 field 'data_file' = .*nowhere\.csv"):
        BaseExperiment(probe, storage=storage).allocate(
            [Probe(x=1.0), Probe(x=1.0, data_file=Path("/nowhere.csv"))], engine=ENGINE
        )


# --------------------------------------------------------------------------- allocate's options


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"version": "v1.x"}, VersionError, r"v1\.x"),
        ({"version": "bumpsideways"}, VersionError, r"bumpsideways"),
        (
            {"recursion_map": RecursionMap(factor=2, max_depth=1, path=(0,))},
            RecursionMapError,
            r"path must be empty",
        ),
        ({"max_failure_ratio": 1.5}, RunOptionError, r"max_failure_ratio=1\.5: give a share"),
        ({"max_failure_ratio": "ten"}, RunOptionError, r"max_failure_ratio='ten'"),
        ({"overwrite_experiment_id": False}, UnsupportedOptionError, r"overwrite_experiment_id"),
    ],
    ids=["version", "bump", "recursion-path", "ratio-range", "ratio-type", "experiment-id"],
)
def test_a_bad_option_of_allocate(experiment, options, error, message):
    versions = _versions(experiment)
    with pytest.raises(error, match=message):
        experiment.allocate([Case()], engine=ENGINE, **options)
    assert _versions(experiment) == versions


# --------------------------------------------------------------------------- outputs


OUTPUT_CASES = [
    (
        "float_in_int",
        "OutputValidationError",
        "output field 'n' of CaseOut (spec 1): declared Int64 but holds 2.7 (float)",
    ),
    (
        "bool_in_int",
        "OutputValidationError",
        "output field 'n' of CaseOut (spec 1): declared Int64 but holds True (bool)",
    ),
    (
        "int_in_str",
        "OutputValidationError",
        "output field 'label' of CaseOut (spec 1): declared String but holds 5 (int)",
    ),
    (
        "frame_float_in_int",
        "OutputValidationError",
        "dataframe output 'steps', column 'step' (spec 1): declared Int64 but holds 1.7 (Float64): "
        "a float is never truncated into an integer column",
    ),
    (
        "frame_str_in_float",
        "OutputValidationError",
        "dataframe output 'steps', column 'value' (spec 1): declared Float64 but holds String "
        "values (e.g. 'zero'): values are not converted",
    ),
    (
        "frame_missing_column",
        "OutputValidationError",
        "dataframe output 'steps' (spec 1) lacks columns ['value']",
    ),
    (
        "frame_too_long",
        "OutputValidationError",
        "dataframe output 'steps' of spec 1 has 5,000 rows, more than SCYTHE_MAX_FRAME_ROWS=1,000",
    ),
    ("wrong_type", "LeafError", "bad_inputs_case returned dict, expected CaseOut (spec 1)"),
    ("non_retryable", "NonRetryableError", "spec 1: the mesh cannot be built"),
]


@pytest.mark.parametrize(
    ("mode", "error_type", "message"), OUTPUT_CASES, ids=[c[0] for c in OUTPUT_CASES]
)
def test_a_bad_output_fails_only_its_spec(experiment, monkeypatch, mode, error_type, message):
    monkeypatch.setenv("SCYTHE_MAX_FRAME_ROWS", "1000")
    run, ref = experiment.allocate(
        [Case(x=1.0), Case(x=2.0, mode=mode), Case(x=3.0)], engine=ENGINE, version="bumpminor"
    )
    assert ref.result().status == "partial"
    results = run.results()
    assert results.scalars["sort_index"].to_list() == [0, 2]
    assert results["steps"]["sort_index"].unique().sort().to_list() == [0, 2]
    row = results.failures.row(0, named=True)
    assert (row["sort_index"], row["error_type"]) == (1, error_type)
    assert message in row["message"]
    deterministic = error_type in ("OutputValidationError", "NonRetryableError")
    assert row["attempts"] == (1 if deterministic else 3)  # retries=2, skipped when pointless


def test_a_failed_one_off_spec_raises_spec_failed_error(experiment):
    _, ref = experiment.allocate(Case(mode="raise"), engine=ENGINE, version="bumpminor")
    with pytest.raises(SpecFailedError, match=r"ValueError: spec 0 asked to fail") as info:
        ref.result()
    assert (info.value.error_type, info.value.attempts) == ("ValueError", 3)


# --------------------------------------------------------------------------- stored runs


@pytest.fixture
def committed(experiment) -> ExperimentRun:
    run, ref = experiment.allocate([Case(x=1.0), Case(x=2.0)], engine=ENGINE, version="bumppatch")
    assert ref.result().status == "complete"
    return run


def test_opening_a_run_that_does_not_exist(storage):
    with pytest.raises(RunNotFoundError, match=r"no run 'bad_inputs_case/v9\.9\.9/x'"):
        ExperimentRun.open("bad_inputs_case/v9.9.9/x", storage=storage)


def test_a_corrupt_manifest_names_file_and_line_and_tables_still_read(storage, committed, tmp_path):
    run = _own_copy(storage, committed, tmp_path)
    manifest = Path(run.store.uri(run.layout.manifest).removeprefix("file://"))
    text = manifest.read_text().splitlines()
    text[3] = "status: [unclosed"
    manifest.write_text("\n".join(text))
    for call in (run.status, run.results):
        with pytest.raises(ManifestError, match=r"manifest\.yml is not valid YAML at line \d+"):
            call()
    repaired = ExperimentRun.open(run.run_id, storage=run.store, repair=True)
    with pytest.warns(CorruptManifestWarning):
        assert repaired.results().scalars["sort_index"].to_list() == [0, 1]
    with pytest.warns(CorruptManifestWarning):
        assert repaired.status().status == "complete"


def test_a_manifest_with_a_wrong_value_names_the_field(storage, committed, tmp_path):
    run = _own_copy(storage, committed, tmp_path)
    manifest = Path(run.store.uri(run.layout.manifest).removeprefix("file://"))
    data = yaml.safe_load(manifest.read_text())
    data["spec_count"] = "many"
    manifest.write_text(yaml.safe_dump(data))
    with pytest.raises(ManifestError, match=r"spec_count: Input should be a valid integer"):
        run.status()


def test_results_need_only_a_readable_status_and_a_bad_status_is_named(
    storage, committed, tmp_path
):
    run = _own_copy(storage, committed, tmp_path)
    manifest = Path(run.store.uri(run.layout.manifest).removeprefix("file://"))
    data = yaml.safe_load(manifest.read_text())
    data["spec_count"] = "many"
    manifest.write_text(yaml.safe_dump(data))
    # the results need the status alone; the rest of the manifest is checked where it is read
    assert run.results().scalars["sort_index"].to_list() == [0, 1]
    with pytest.raises(ManifestError, match=r"spec_count: Input should be a valid integer"):
        run.status()
    data["status"] = "finished-ish"
    manifest.write_text(yaml.safe_dump(data))
    with pytest.raises(ManifestError, match=r"status: Input should be 'allocated'"):
        run.results()


def test_a_deleted_table_is_a_typed_error_and_resume_leaves_the_manifest(
    storage, committed, tmp_path
):
    run = _own_copy(storage, committed, tmp_path)
    manifest_before = run.store.get_bytes(run.layout.manifest)
    root = Path(run.store.uri(run.layout.table("steps")).removeprefix("file://"))
    shutil.rmtree(root)
    with pytest.raises(TableMissingError, match=r"no Delta table at .*final/steps"):
        run.results().table("steps")
    with pytest.raises(TableMissingError, match=r"table\(s\) \['steps'\] are missing"):
        run.resume(engine=ENGINE)
    assert run.store.get_bytes(run.layout.manifest) == manifest_before
    assert run.status().status == "complete"


def test_resuming_a_run_whose_experiment_moved(storage, committed, tmp_path):
    run = _own_copy(storage, committed, tmp_path)
    manifest = Path(run.store.uri(run.layout.manifest).removeprefix("file://"))
    data = yaml.safe_load(manifest.read_text())
    data["runnable"] = "an_experiment_nobody_registered"
    data["function"] = "bad_inputs.experiments:renamed_function"
    manifest.write_text(yaml.safe_dump(data))
    with pytest.raises(ExperimentImportError, match=r"renamed_function.*was it renamed or moved"):
        run.resume(engine=ENGINE)
    data["function"] = "no_such_package.experiments:fn"
    manifest.write_text(yaml.safe_dump(data))
    with pytest.raises(
        ExperimentImportError, match=r"cannot import the experiment no_such_package"
    ):
        run.resume(engine=ENGINE)


def test_a_table_the_run_does_not_have(committed):
    with pytest.raises(TableNotFoundError, match=r"has no table 'nope'"):
        committed.results().table("nope")


# --------------------------------------------------------------------------- settings and registry


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SCYTHE_SLOTS", "0", r"SCYTHE_SLOTS"),
        ("SCYTHE_HEARTBEAT", "soon", r"SCYTHE_HEARTBEAT"),
        ("SCYTHE_MAX_FRAME_ROWS", "-3", r"SCYTHE_MAX_FRAME_ROWS"),
        ("SCYTHE_ENGINE", "cluster", r"SCYTHE_ENGINE"),
    ],
)
def test_a_bad_setting_names_the_variable(experiment, monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=message):
        _, ref = experiment.allocate([Case()], version="bumpminor")
        ref.result()


def test_registering_a_function_without_spec_types():
    from scythe import ExperimentRegistry

    with pytest.raises(ExperimentDefinitionError):

        @ExperimentRegistry.Register(name="bad_inputs_untyped")
        def untyped(spec):  # type: ignore[no-untyped-def]
            return spec


def test_registering_with_an_unknown_option():
    from scythe import ExperimentRegistry

    with pytest.raises(ExperimentOptionsError, match=r"retires"):

        @ExperimentRegistry.Register(name="bad_inputs_typo", retires=3)  # type: ignore[call-arg]
        def typo(spec: Case) -> Any:
            return spec


def test_a_negative_timeout_option():
    from scythe import ExperimentRegistry

    with pytest.raises(ExperimentOptionsError, match=r"execution_timeout=.*must be positive"):

        @ExperimentRegistry.Register(
            name="bad_inputs_timeout", execution_timeout=timedelta(seconds=-1)
        )
        def negative(spec: Case) -> CaseOut:
            return spec


def test_outputs_are_exact_in_a_polars_read_too(committed):
    # What was committed holds exactly the declared dtypes (no truncated or parsed values).
    schema = pl.read_delta(committed.table_uri("steps")).schema
    assert (schema["step"], schema["value"]) == (pl.Int64, pl.Float64)


@pytest.mark.parametrize(
    "uri", ["s3:/nobucket", "file://remotehost/data", "   ", "gs://bucket/prefix"]
)
def test_a_malformed_storage_uri_never_becomes_a_local_folder(tmp_path, monkeypatch, uri):
    from scythe.errors import StorageURIError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageURIError, match=r"s3://bucket/prefix"):
        BaseExperiment(bad_inputs_case, storage=uri).allocate([Case()], engine=ENGINE)
    assert list(tmp_path.iterdir()) == []  # nothing was created in the working directory


def test_credentials_in_an_endpoint_url_are_masked(monkeypatch):
    from scythe.errors import StorageError

    monkeypatch.setenv("SCYTHE_STORAGE_ENDPOINT_URL", "http://AKIAEXAMPLE:hunter2@127.0.0.1:1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(StorageError) as info:
        BaseExperiment(bad_inputs_case, storage="s3://scythe-bad-inputs/x").allocate(
            [Case()], engine=ENGINE
        )
    assert "hunter2" not in str(info.value) and "AKIAEXAMPLE" not in str(info.value)
