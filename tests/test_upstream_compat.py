"""Code written for scythe-engine 1.x runs unmodified (docs/migrating.md).

`upstream_study` is such a package: scalars, FileReference inputs and outputs,
pandas frames in `dataframes` indexed with `make_multiindex`, computed
features, and a worker `main.py` calling `ScytheWorkerConfig().start()`.
"""

from __future__ import annotations

import runpy
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from hatchet_sdk import Context
from test_hatchet_engine import synthetic_token
from upstream_study.experiments import WallResult, WallSpec, simulate_wall

import scythe.engines.hatchet as hx
from scythe.errors import SpecFailedError, UnsupportedOptionError
from scythe.experiments import BaseExperiment, ExperimentRun, SemVer
from scythe.scatter_gather import RecursionMap
from scythe.settings import ScytheStorageSettings
from scythe.utils.filesys import fetch_uri
from scythe.utils.results import make_onerow_multiindex_from_dict
from scythe.worker import ScytheWorkerConfig

TEMPERATURES = "-5 -3 2 8 13 18 21 20 15 9 3 -2"


@pytest.fixture
def weather(tmp_path: Path) -> Path:
    path = tmp_path / "boston.txt"
    path.write_text(TEMPERATURES)
    return path


def wall_specs(weather: Path, n: int = 6) -> list[WallSpec]:
    # upstream required experiment_id and sort_index: allocate overwrites them
    return [
        WallSpec(
            experiment_id="placeholder",
            sort_index=0,
            r_value=1.0 + i,
            climate="cold" if i % 2 else "hot",
            floors=None if i % 3 else i,
            weather_file=weather,
        )
        for i in range(n)
    ]


def check_complete_and_typed(run: ExperimentRun, n: int, scratch: Path) -> None:
    results = run.results()
    scalars = results.scalars
    assert scalars["sort_index"].to_list() == list(range(n))
    assert scalars.schema["peak_month"] == pl.Int64 and scalars.schema["floors"] == pl.Int64
    assert scalars["u_value"].to_list() == pytest.approx([1 / (1.0 + i) for i in range(n)])
    monthly = results.dataframes["monthly"]
    assert monthly.height == 12 * n
    first = monthly.filter(pl.col("sort_index") == 0)
    assert first["sort_subindex"].to_list() == list(range(12))  # make_multiindex's row order
    assert first["month"].to_list() == list(range(1, 13))
    assert monthly.schema["load"] == pl.Float64 and monthly.schema["r_value"] == pl.Float64
    reports = results.file_refs["report"].to_list()
    texts = [
        fetch_uri(uri, scratch / f"report-{i}.txt").read_text() for i, uri in enumerate(reports)
    ]
    assert texts[1].startswith("cold wall R2.0")
    assert results.failures.height == 0


def test_an_upstream_study_runs_on_the_local_engine(tmp_path, weather):
    from scythe.engines.local import LocalEngine

    experiment = BaseExperiment(runnable=simulate_wall, run_name="walls", storage=tmp_path / "data")
    specs = wall_specs(weather)
    run, ref = experiment.allocate(
        specs,
        "bumpminor",
        True,
        True,
        RecursionMap(factor=2, max_depth=1),
        engine=LocalEngine(slots=2, progress=False),
    )
    assert ref.result().status == "complete"
    check_complete_and_typed(run, len(specs), tmp_path)
    assert [v.version for v in experiment.list_versions()] == [SemVer.FromString("v1")]
    assert experiment.latest_run.run_id == run.run_id
    assert sorted(experiment.latest_results) == [
        "failures",
        "monthly",
        "result_file_refs",
        "scalars",
    ]
    assert experiment.resolve_next_version("bumpmajor") == SemVer(major=2)


@pytest.mark.s3
def test_an_upstream_study_runs_on_s3_with_its_storage_settings_and_client(
    moto_server, s3_bucket, weather, monkeypatch, tmp_path
):
    import boto3

    from scythe.engines.local import LocalEngine

    monkeypatch.setenv("SCYTHE_STORAGE_ENDPOINT_URL", moto_server)
    settings = ScytheStorageSettings(BUCKET=s3_bucket, BUCKET_PREFIX="studies")
    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    experiment = BaseExperiment(runnable=simulate_wall, storage_settings=settings)
    run, ref = experiment.allocate(
        wall_specs(weather, n=4), s3_client=client, engine=LocalEngine(slots=0)
    )
    assert ref.result().status == "complete"
    assert run.uri.startswith(f"s3://{s3_bucket}/studies/simulate_wall/v1.0.0/")
    check_complete_and_typed(run, 4, tmp_path)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert any(k.endswith("/final/monthly/_delta_log/00000000000000000001.json") for k in keys)


def test_a_single_spec_is_a_one_off_run_whose_ref_gives_the_output(tmp_path, weather):
    from scythe.engines.local import LocalEngine

    experiment = BaseExperiment(runnable=simulate_wall, storage=tmp_path / "data")
    spec = wall_specs(weather, n=3)[2]
    run, ref = experiment.allocate(
        spec, version="bumpminor", engine=LocalEngine(slots=1, progress=False)
    )
    output = ref.result()
    assert isinstance(output, WallResult) and output.peak_month == 1
    assert output.heat_loss == pytest.approx(run.results().scalars["heat_loss"][0])
    assert run.manifest.kind == "single" and run.status().total == 1
    assert run.store.exists(run.layout.workflow_spec)
    assert not run.store.list_keys(f"{run.run_id}/scatter-gather/nodes")[1:]  # one node, no tree
    assert output.dataframes["monthly"].height == 12
    fields = {"r_value": 3.0, "climate": "cold", "weather_file": str(weather)}
    _, from_fields = experiment.allocate(fields, engine=LocalEngine(slots=0))  # a dict is one spec
    assert from_fields.result().peak_month == output.peak_month


def test_a_failing_single_spec_is_a_failures_row_and_a_typed_error(tmp_path, weather):
    from scythe.engines.local import LocalEngine

    experiment = BaseExperiment(runnable=simulate_wall, storage=tmp_path / "data")
    spec = WallSpec(r_value=14.5, climate="hot", weather_file=weather)
    run, ref = experiment.allocate(spec, engine=LocalEngine(slots=0))
    with pytest.raises(SpecFailedError, match=r"after 2 attempt\(s\): ValueError: r_value 14.5"):
        ref.result()
    assert ref.summary().status == "partial"
    assert run.results().failures["error_type"].to_list() == ["ValueError"]


def test_options_upstream_had_and_scythe_does_not_are_refused_by_name(tmp_path, weather):
    experiment = BaseExperiment(runnable=simulate_wall, storage=tmp_path / "data")
    with pytest.raises(UnsupportedOptionError, match="overwrite_experiment_id=False"):
        experiment.allocate(wall_specs(weather), overwrite_experiment_id=False)
    assert experiment.list_versions() == []


def test_upstream_index_helpers_build_pandas_multiindexes(weather):
    spec = WallSpec(r_value=2.0, climate="hot", weather_file=weather, sort_index=4)
    index = spec.make_multiindex(n_rows=3, include_sort_subindex=False)
    assert "u_value" in index.names and "sort_subindex" not in index.names
    assert index.get_level_values("sort_index").tolist() == [4, 4, 4]
    one = make_onerow_multiindex_from_dict({"a": 1, "b": "x"})
    assert one.names == ["a", "b"] and len(one) == 1


# --------------------------------------------------------------------------- Hatchet


@pytest.fixture
def hatchet_env(monkeypatch):
    monkeypatch.setenv("HATCHET_CLIENT_TOKEN", synthetic_token())
    monkeypatch.setenv("HATCHET_CLIENT_TLS_STRATEGY", "none")
    hx.reset_hatchet()
    yield
    hx.reset_hatchet()


class MockedLeafRun:
    """What the leaf task's ``run_no_wait`` returns; ``result()`` runs the task through mock_run."""

    workflow_run_id = "leaf-workflow-run"

    def __init__(self, task, inp) -> None:
        self.task, self.inp = task, inp

    def result(self):
        error = None
        for retry_count in range(self.task.tasks[0].retries + 1):  # Hatchet's retries
            try:
                return self.task.mock_run(self.inp, retry_count=retry_count)
            except Exception as exc:
                error = exc
        raise error


def test_a_single_spec_runs_on_hatchet_as_its_leaf_task(
    hatchet_env, tmp_path, weather, monkeypatch
):
    leaf = hx.hatchet_task_for(simulate_wall)
    triggered = []

    def run_no_wait(inp, additional_metadata=None, **_):
        triggered.append(leaf.input_validator.dump_json(inp))
        return MockedLeafRun(leaf, inp)

    monkeypatch.setattr(leaf, "run_no_wait", run_no_wait)
    experiment = BaseExperiment(runnable=simulate_wall, storage=tmp_path / "data")
    good = WallSpec(r_value=3.0, climate="cold", weather_file=weather)
    run, ref = experiment.allocate(good, engine="hatchet")
    assert ref.result().peak_month == 1 and ref.workflow_run_id == "leaf-workflow-run"
    assert run.status().status == "complete" and len(triggered) == 1 and len(triggered[0]) < 4096

    bad = WallSpec(r_value=14.5, climate="cold", weather_file=weather)
    run, ref = experiment.allocate(bad, engine="hatchet")
    with pytest.raises(SpecFailedError, match="ValueError"):
        ref.result()
    assert run.status().status == "partial"
    assert run.results().failures["attempts"].to_list() == [2]


def test_upstream_timeout_settings_reach_the_hatchet_tasks_and_the_local_engine(
    hatchet_env, monkeypatch
):
    from scythe.registry import ExperimentOptions

    monkeypatch.setenv("SCYTHE_TIMEOUT_EXPERIMENT_EXECUTION", "10m")
    monkeypatch.setenv("SCYTHE_TIMEOUT_EXPERIMENT_SCHEDULE", "3h")
    monkeypatch.setenv("SCYTHE_TIMEOUT_SCATTER_GATHER_EXECUTION", "1d")
    monkeypatch.setenv("SCYTHE_TIMEOUT_SCATTER_GATHER_SCHEDULE", "90")
    (fan,) = hx.scatter_gather_task().tasks
    assert (fan.execution_timeout, fan.schedule_timeout) == (
        timedelta(days=1),
        timedelta(seconds=90),
    )
    (leaf,) = hx.hatchet_task_for(simulate_wall).tasks  # Register(execution_timeout="5m") wins
    assert (leaf.execution_timeout, leaf.schedule_timeout) == (
        timedelta(minutes=5),
        timedelta(hours=2),
    )
    defaults = ExperimentOptions()  # what a Register() without timeouts gets, on both engines
    assert defaults.resolved_execution_timeout() == timedelta(minutes=10)
    assert defaults.resolved_schedule_timeout() == timedelta(hours=3)


def test_the_upstream_worker_main_starts_a_worker_serving_the_study(hatchet_env, monkeypatch):
    from hatchet_sdk import Worker

    started = []
    monkeypatch.setattr(Worker, "start", lambda self: started.append(self))
    monkeypatch.setenv("SCYTHE_WORKER_DOES_FAN", "false")
    monkeypatch.setenv("SCYTHE_WORKER_SLOTS", "3")
    main = Path(__file__).parent / "upstream_study" / "main.py"
    runpy.run_path(str(main), run_name="__main__")
    (worker,) = started
    assert worker.slots == 3
    plan = ScytheWorkerConfig().plan()
    assert "simulate_wall" in plan.task_names and hx.SCATTER_GATHER_TASK not in plan.task_names


def test_the_study_imports_in_a_fresh_process_without_any_setting():
    code = "import upstream_study.experiments, upstream_study.main; print('imported')"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(Path(__file__).parent)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported"


class TriggeredWorkflow:
    """What a workflow's ``run_no_wait`` returns; ``result()`` is its task outputs (or raises)."""

    workflow_run_id = "workflow-run-1"

    def __init__(self, spec: WallSpec) -> None:
        self.spec = spec

    def result(self) -> dict:
        if self.spec.r_value > 14:
            raise RuntimeError("task 'check' failed: wall too thick")
        return {"check": {"u_value": 1 / self.spec.r_value}}


def test_an_included_workflow_is_allocated_as_a_one_off_run(
    hatchet_env, tmp_path, weather, monkeypatch
):
    from scythe.errors import EngineConfigError, ExperimentDefinitionError
    from scythe.hatchet import hatchet
    from scythe.registry import ExperimentRegistry

    pipeline = hatchet.workflow(name="wall_pipeline", input_validator=WallSpec)

    @pipeline.task()
    def check(input: WallSpec, ctx: Context) -> dict:
        return {"u_value": 1 / input.r_value}

    ExperimentRegistry.Include(pipeline)
    triggered = []

    def run_no_wait(spec, additional_metadata=None, **_):
        triggered.append((spec, additional_metadata))
        return TriggeredWorkflow(spec)

    monkeypatch.setattr(pipeline, "run_no_wait", run_no_wait)
    try:
        experiment = BaseExperiment(runnable=pipeline, storage=tmp_path / "data")
        run, ref = experiment.allocate(WallSpec(r_value=4.0, climate="hot", weather_file=weather))
        assert ref.result() == {"check": {"u_value": 0.25}}
        assert run.status().status == "complete" and run.manifest.kind == "single"
        (row,) = run.results().scalars.iter_rows(named=True)
        assert (row["r_value"], row["workflow_run_id"]) == (4.0, "workflow-run-1")
        assert triggered[0][1]["experiment_id"] == run.run_id

        run, ref = experiment.allocate(WallSpec(r_value=14.5, climate="hot", weather_file=weather))
        with pytest.raises(SpecFailedError, match="wall too thick"):
            ref.result()
        assert run.status().status == "partial"

        with pytest.raises(ExperimentDefinitionError, match="one spec per allocation"):
            experiment.allocate(wall_specs(weather, n=2))
        with pytest.raises(EngineConfigError, match="engine='hatchet'"):
            experiment.allocate(
                WallSpec(r_value=2.0, climate="hot", weather_file=weather), engine="local"
            )
    finally:
        ExperimentRegistry.unregister("wall_pipeline")


def test_an_undeclared_frame_that_breaks_the_inferred_schema_fails_only_its_spec(tmp_path):
    from scythe import ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry
    from scythe.engines.local import LocalEngine

    class Step(ExperimentInputSpec):
        k: int

    class Out(ExperimentOutputSpec):
        total: float

    @ExperimentRegistry.Register(name="compat_frames")
    def steps(input_spec: Step) -> Out:
        import pandas as pd

        values = [1.5, 2.5] if input_spec.k != 2 else ["a", "b"]  # spec 2 changes the type
        frame = pd.DataFrame({"value": values})
        frame.index = input_spec.make_multiindex(n_rows=2)
        return Out(total=float(input_spec.k), dataframes={"trace": frame})

    try:
        run, ref = BaseExperiment(runnable="compat_frames", storage=tmp_path).allocate(
            [Step(k=k) for k in range(4)], engine=LocalEngine(slots=0)
        )
        assert ref.result().status == "partial"
        results = run.results()
        assert results.dataframes["trace"]["sort_index"].unique().sort().to_list() == [0, 1, 3]
        (failure,) = results.failures.iter_rows(named=True)
        assert failure["sort_index"] == 2 and failure["error_type"] == "OutputValidationError"
        assert "column 'value' is String, expected Float64" in failure["message"]
    finally:
        ExperimentRegistry.unregister("compat_frames")
