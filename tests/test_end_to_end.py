"""End to end on the embedded engine: allocate -> scatter/gather -> Delta tables -> results().

Each invariant of DESIGN.md §4 has a test here, on a local directory and on S3
(moto's server over HTTP, used by boto3 and deltalake alike).
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
from deltalake import DeltaTable
from scythe_test_experiments import Nothing, Probe, SubmitOnlyEngine, gc_thresholds, probe

from scythe import BaseExperiment, LocalEngine, RecursionMap
from scythe.engines.local import WORKER_GC_THRESHOLDS
from scythe.errors import SpecValidationError
from scythe.nodes import (
    ScatterGatherInput,
    finalize_run,
    gather_node,
    handle_for,
    run_terminal_node,
    stored_result,
)
from scythe.scatter_gather import iter_terminal_nodes
from scythe.storage import LocalStore

RMAP = RecursionMap(factor=3, max_depth=2)


def specs_with(modes: dict[int, str], n: int = 40, **extra) -> list[Probe]:
    return [
        Probe(x=float(i), mode=modes.get(i, "ok"), floors=None if i % 4 else i, **extra)
        for i in range(n)
    ]


@pytest.fixture
def experiment(store):
    return BaseExperiment(runnable=probe, storage=store)


@pytest.fixture(scope="module")
def two_workers():
    return LocalEngine(slots=2, progress=False)


def outcome_indices(results) -> tuple[list[int], list[int]]:
    return results.scalars["sort_index"].to_list(), results.failures["sort_index"].to_list()


def test_every_spec_ends_as_exactly_one_row(experiment, two_workers):
    modes = {3: "raise", 11: "bad_output", 17: "wrong_type"}
    run, ref = experiment.allocate(specs_with(modes), recursion_map=RMAP, engine=two_workers)
    summary = ref.result()
    assert (summary.status, summary.done, summary.failed, summary.missing) == ("partial", 37, 3, 0)
    results = run.results()
    done, failed = outcome_indices(results)
    assert sorted(done + failed) == list(range(40))
    assert failed == [3, 11, 17]
    failures = {r["sort_index"]: r for r in results.failures.iter_rows(named=True)}
    assert failures[3]["error_type"] == "ValueError"
    assert failures[3]["attempts"] == 2  # retries=1
    assert "asked to fail" in failures[3]["message"] and "Traceback" in failures[3]["traceback"]
    assert failures[11]["error_type"] == "OutputValidationError"
    assert "'y'" in failures[11]["message"]
    assert failures[17]["error_type"] == "LeafError"
    assert "returned dict, expected ProbeOut" in failures[17]["message"]
    assert run.status().status == "partial" and run.manifest.failed == 3


def test_results_are_sorted_and_typed(experiment, two_workers):
    run, _ = experiment.allocate(specs_with({}, n=30), recursion_map=RMAP, engine=two_workers)
    results = run.results()
    scalars = results.scalars
    assert scalars["sort_index"].to_list() == list(range(30))
    assert scalars.schema["floors"] == pl.Int64 and scalars.schema["floors_out"] == pl.Int64
    assert scalars["floors"].null_count() == 30 - len(range(0, 30, 4))
    assert scalars.schema["x"] == pl.Float64 and scalars.schema["mode"] == pl.String
    assert scalars.schema["when"] == pl.Datetime("us", "UTC")
    assert scalars.schema["x_squared"] == pl.Float64
    rows = results.dataframes["rows"]
    assert rows.select("sort_index", "sort_subindex").rows() == sorted(
        rows.select("sort_index", "sort_subindex").rows()
    )
    assert rows.filter(pl.col("sort_index") == 5)["value"].to_list() == [0.0, 5.0, 10.0]
    # Each row names the terminal node that ran its spec, in every table alike.
    nodes = {f"local:{node.name}" for node in iter_terminal_nodes(30, RMAP)}
    assert set(scalars["workflow_run_id"]) == nodes
    by_spec = dict(scalars.select("sort_index", "workflow_run_id").iter_rows())
    assert all(by_spec[s] == w for s, w in rows.select("sort_index", "workflow_run_id").iter_rows())
    pdf = results.to_pandas("scalars")
    assert isinstance(pdf.index, pd.MultiIndex)
    assert pdf.index.get_level_values("floors").dtype == pd.Int64Dtype()
    assert pdf["floors_out"].dtype == pd.Int64Dtype()
    assert list(results.to_pandas("rows").index.names)[-1] == "sort_subindex"


def test_file_outputs_are_uploaded_and_readable(experiment, two_workers):
    run, _ = experiment.allocate(specs_with({}, n=5), engine=two_workers)
    refs = run.results().file_refs
    assert refs["sort_index"].to_list() == list(range(5))
    uri = refs.filter(pl.col("sort_index") == 3)["report"].item()
    key = f"{run.run_id}/results/report/3/report.txt"
    assert uri.endswith(key)
    assert run.store.get_bytes(key) == b"spec 3: x=3.0\n"


def test_killed_worker_never_duplicates_rows(experiment, two_workers, tmp_path):
    modes = {5: "crash_once", 22: "crash_once", 30: "crash_always"}
    specs = specs_with(modes, marker_dir=str(tmp_path))
    run, ref = experiment.allocate(specs, recursion_map=RMAP, engine=two_workers)
    summary = ref.result()
    results = run.results()
    done, failed = outcome_indices(results)
    assert len(done) == len(set(done)) and len(failed) == len(set(failed))
    assert sorted(done + failed) == list(range(40))
    assert failed == [30]  # crashed twice: retries=1 used up
    failure = results.failures.row(0, named=True)
    assert failure["error_type"] == "WorkerDied"
    assert "exited with code 17" in failure["message"] and failure["attempts"] == 2
    assert (tmp_path / "crashed-5").exists() and (tmp_path / "crashed-22").exists()
    assert summary.status == "partial"
    for name in ("rows", "result_file_refs"):
        keys = results.table(name).select(
            "sort_index", *(["sort_subindex"] if name == "rows" else [])
        )
        assert keys.is_duplicated().sum() == 0


def test_commits_per_table_do_not_grow_with_specs(experiment, two_workers):
    for n in (4, 60):
        run, _ = experiment.allocate(specs_with({}, n=n), recursion_map=RMAP, engine=two_workers)
        for table in ("scalars", "result_file_refs", "failures", "rows"):
            delta = DeltaTable(run.table_uri(table), storage_options=run.store.storage_options())
            assert len(delta.history()) == 2, (n, table)  # create + one commit by the root


def test_repeated_nodes_and_root_add_nothing(experiment):
    run, ref = experiment.allocate(
        specs_with({2: "raise"}, n=12), recursion_map=RMAP, engine=LocalEngine(slots=0)
    )
    ref.result()
    manifest = run.manifest
    root = ScatterGatherInput(
        storage_uri=run.store.uri(),
        run_id=run.run_id,
        experiment="probe",
        experiment_ref=probe.reference,
        n_specs=12,
        recursion_map=manifest.recursion_map,
    )
    handle = handle_for(root)
    root_result = stored_result(handle, "root")
    again = finalize_run(root, root_result)  # a retried root
    assert (again.done, again.failed, again.missing) == (11, 1, 0)
    resumed = run.resume(engine=LocalEngine(slots=0))  # every node already staged
    assert resumed.result().status == "partial"
    done, failed = outcome_indices(run.results())
    assert sorted(done + failed) == list(range(12))


def test_the_root_reports_specs_no_node_staged(experiment):
    engine = SubmitOnlyEngine()
    run, _ = experiment.allocate(
        specs_with({}, n=10), recursion_map=RecursionMap(factor=2, max_depth=1), engine=engine
    )
    root = engine.root
    first = run_terminal_node(root.child(0))  # node 1 (the odd sort indices) never runs
    summary = finalize_run(root, gather_node(root, [first]))
    assert (summary.status, summary.done, summary.missing) == ("incomplete", 5, 5)
    assert "first: [1, 3, 5, 7, 9]" in summary.message
    assert run.manifest.status == "incomplete" and run.manifest.missing == 5


def test_payloads_are_small_whatever_the_number_of_specs():
    sizes = []
    for n in (10, 1_000_000):
        root = ScatterGatherInput(
            storage_uri="s3://bucket/scythe",
            run_id="probe/v1.0.0/2026-01-01T00-00-00.000000Z",
            experiment="probe",
            experiment_ref="tests:probe",
            n_specs=n,
            recursion_map=RecursionMap(factor=10, max_depth=6),
        )
        deepest = max(
            iter_terminal_nodes(min(n, 10_000), root.recursion_map), key=lambda nd: nd.depth
        )
        node = root.model_copy(
            update={"recursion_map": root.recursion_map.model_copy(update={"path": deepest.path})}
        )
        sizes.append((len(root.model_dump_json()), len(node.model_dump_json())))
    assert all(size < 1024 for pair in sizes for size in pair)
    assert sizes[0][0] == sizes[1][0] - len(str(1_000_000)) + len("10")


def test_versions_across_allocations(experiment):
    engine = LocalEngine(slots=0)
    first, _ = experiment.allocate(specs_with({}, n=2), version="bumpminor", engine=engine)
    second, _ = experiment.allocate(specs_with({}, n=2), version="bumpminor", engine=engine)
    third, _ = experiment.allocate(specs_with({}, n=2), version="keep", engine=engine)
    assert [str(v.version) for v in experiment.list_versions()] == ["v1.0.0", "v1.1.0"]
    assert first.run_id.startswith("probe/v1.0.0/") and second.run_id.startswith("probe/v1.1.0/")
    assert third.run_id.startswith("probe/v1.1.0/") and third.run_id != second.run_id
    runs = experiment.version("v1.1.0").list_runs()
    assert [r.run_id for r in runs] == [second.run_id, third.run_id]
    assert experiment.latest_run.run_id == third.run_id
    assert experiment.latest_results.results().scalars.height == 2


def test_same_instant_allocations_get_distinct_folders(experiment, monkeypatch):
    import scythe.allocation as allocation_module

    instants = iter(["2026-01-01T00-00-00.000000Z"] * 2 + ["2026-01-01T00-00-00.000001Z"])
    monkeypatch.setattr(allocation_module, "run_time_folder", lambda now=None: next(instants))
    engine = LocalEngine(slots=0)
    first, _ = experiment.allocate(specs_with({}, n=1), version="v1.0.0", engine=engine)
    second, _ = experiment.allocate(specs_with({}, n=1), version="v1.0.0", engine=engine)
    assert first.run_id.endswith("00.000000Z") and second.run_id.endswith("00.000001Z")
    assert first.results().scalars.height == second.results().scalars.height == 1


def test_input_artifacts_are_uploaded_once_and_same_names_do_not_collide(experiment, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shared = tmp_path / "a" / "weather.csv"
    shared.write_text("climate A\n")
    other = tmp_path / "b" / "weather.csv"  # same name, different content
    other.write_text("climate B\n")
    specs = [
        Probe(x=1.0, data_file=shared),
        Probe(x=2.0, data_file=shared),
        Probe(x=3.0, data_file=other),
    ]
    run, _ = experiment.allocate(specs, engine=LocalEngine(slots=0))
    artifacts = [k for k in run.store.list_keys(f"{run.run_id}/artifacts")]
    assert len(artifacts) == 2
    scalars = run.results().scalars
    digests = scalars["file_digest"].to_list()
    assert digests[0] == digests[1] != digests[2]
    uris = scalars["data_file"].to_list()
    assert uris[0] == uris[1] != uris[2]
    assert specs[0].data_file == shared  # the caller's spec still points at the local file


def test_invalid_specs_are_all_reported_and_nothing_is_written(tmp_path):
    store = LocalStore(tmp_path / "store")
    experiment = BaseExperiment(runnable=probe, storage=store)
    bad = [
        {"x": -1.0},
        {"x": 1.0},
        {"x": 2.0, "mode": "explode"},
        {"x": 3.0, "data_file": str(tmp_path / "nope.csv")},
    ]
    with pytest.raises(SpecValidationError) as info:
        experiment.allocate(bad, engine=LocalEngine(slots=0))
    message = str(info.value)
    assert "spec 0 field 'x' = -1.0" in message and "spec 2 field 'mode' = 'explode'" in message
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*"))
    with pytest.raises(SpecValidationError, match=r"spec 1 field 'data_file'.*does not exist"):
        experiment.allocate(bad[1:2] + bad[3:], engine=LocalEngine(slots=0))
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*"))


def test_allocate_leaves_the_callers_specs_alone(experiment):
    specs = [Probe(x=1.0, sort_index=7), Probe(x=2.0, sort_index=9)]
    run, _ = experiment.allocate(specs, engine=LocalEngine(slots=0))
    assert [s.sort_index for s in specs] == [7, 9]
    assert [s.experiment_id for s in specs] == ["unassigned", "unassigned"]
    assert run.results().scalars["sort_index"].to_list() == [0, 1]


def test_kept_sort_indices_must_be_unique(experiment):
    specs = [Probe(x=1.0, sort_index=4), Probe(x=2.0, sort_index=4)]
    with pytest.raises(SpecValidationError, match="spec 1 field 'sort_index' = 4"):
        experiment.allocate(specs, overwrite_sort_index=False, engine=LocalEngine(slots=0))
    specs[1] = Probe(x=2.0, sort_index=2)
    run, _ = experiment.allocate(specs, overwrite_sort_index=False, engine=LocalEngine(slots=0))
    assert run.results().scalars["sort_index"].to_list() == [2, 4]


def test_a_run_opens_from_a_new_process(experiment, store, moto_server):
    run, _ = experiment.allocate(specs_with({1: "raise"}, n=6), engine=LocalEngine(slots=0))
    code = (
        "import json, sys; from scythe import ExperimentRun; from scythe.storage import S3Store, LocalStore\n"
        "store = eval(sys.argv[2])\n"
        "r = ExperimentRun.open(sys.argv[1], storage=store).results()\n"
        "print(json.dumps([r.scalars.height, r.failures.height, r.spec_count, str(r.scalars.schema['floors'])]))"
    )
    store_expr = (
        f"LocalStore({str(store.root)!r})"
        if isinstance(store, LocalStore)
        else f"S3Store({store.bucket!r}, {store.prefix!r}, endpoint_url={store.endpoint_url!r}, region='us-east-1')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, run.run_id, store_expr],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [5, 1, 6, "Int64"]


def test_wait_false_returns_before_the_run_ends(experiment):
    run, ref = experiment.allocate(
        specs_with({i: "slow" for i in range(6)}, n=6), wait=False, engine=LocalEngine(slots=0)
    )
    assert not ref.done()
    assert ref.result(timeout=60).status == "complete"
    assert run.status().status == "complete"


def test_cancel_then_resume_finishes_without_duplicates(experiment):
    engine = LocalEngine(slots=0)
    specs = specs_with({i: "slow" for i in range(12)}, n=12)
    run, ref = experiment.allocate(
        specs, recursion_map=RecursionMap(factor=4, max_depth=1), wait=False, engine=engine
    )
    ref.cancel()
    with pytest.raises(Exception, match="cancelled"):
        ref.result(timeout=60)
    assert run.status().status == "cancelled"
    assert run.resume(engine=engine).result().status == "complete"
    done, failed = outcome_indices(run.results())
    assert done == list(range(12)) and failed == []


def test_unimportable_experiment_is_refused_before_anything_is_written(tmp_path):
    from scythe import ExperimentOutputSpec, ExperimentRegistry
    from scythe.errors import RegistryError

    class Out(ExperimentOutputSpec):
        y: float

    @ExperimentRegistry.Register(name="local_only")
    def local_only(spec: Probe) -> Out:
        return Out(y=spec.x)

    try:
        experiment = BaseExperiment(runnable=local_only, storage=tmp_path / "store")
        with pytest.raises(RegistryError, match=r"defined inside a function.*slots=0"):
            experiment.allocate([Probe(x=1.0)], engine=LocalEngine(slots=2))
        assert not (tmp_path / "store").exists()
        run, _ = experiment.allocate([Probe(x=1.0)], engine=LocalEngine(slots=0))
        assert run.results().scalars["y"].to_list() == [1.0]
    finally:
        ExperimentRegistry.unregister("local_only")


def test_outputs_of_the_wrong_type_fail_only_their_spec(experiment):
    run, ref = experiment.allocate(
        specs_with({1: "bad_frame", 2: "bad_scalar"}, n=5), engine=LocalEngine(slots=0)
    )
    assert ref.result().status == "partial"
    results = run.results()
    assert results.scalars["sort_index"].to_list() == [0, 3, 4]
    failures = {r["sort_index"]: r for r in results.failures.iter_rows(named=True)}
    assert failures[1]["error_type"] == "OutputValidationError"
    assert failures[1]["message"] == (
        "dataframe output 'rows', column 'value' (spec 1): declared Float64 but holds String "
        "values (e.g. 'not a number'): values are not converted"
    )
    assert failures[1]["attempts"] == 1  # a wrong type is not retried
    assert failures[2]["error_type"] == "OutputValidationError"
    assert failures[2]["message"] == (
        "output field 'y' of ProbeOut (spec 2): declared Float64 but holds 'not a number' (str)"
    )


def test_timeout_kills_an_overrunning_spec_and_records_it(experiment):
    from scythe_test_experiments import slow_probe

    slow = BaseExperiment(runnable=slow_probe, storage=experiment.store)
    specs = [Probe(x=float(i), mode="slow" if i == 1 else "ok") for i in range(3)]
    run, ref = slow.allocate(specs, engine=LocalEngine(slots=1, progress=False))
    assert ref.result().status == "partial"
    failure = run.results().failures.row(0, named=True)
    assert failure["sort_index"] == 1 and failure["error_type"] == "WorkerDied"
    assert "execution timeout" in failure["message"]


def test_undeclared_frames_are_stored_in_a_table_of_their_own(experiment):
    run, ref = experiment.allocate(
        specs_with({2: "extra_frames"}, n=4), engine=LocalEngine(slots=0)
    )
    assert ref.result().status == "complete"
    results = run.results()
    loose = results.dataframes["loose"]
    assert loose.select("sort_index", "sort_subindex", "a").rows() == [(2, 0, 1)]
    assert loose.schema["x_squared"] == pl.Float64  # the spec's typed index, computed features too
    assert results.schema("loose").value_names == ["a"]
    assert sorted(run.list_results_files()) == [
        "failures",
        "loose",
        "result_file_refs",
        "rows",
        "scalars",
    ]


def test_a_node_that_fails_leaves_the_run_incomplete_and_resumable(experiment, monkeypatch):
    import scythe.batches as batches_module
    from scythe.errors import EngineError

    real_open_batch = batches_module.open_batch

    def flaky_open_batch(store, key, schema):
        if key.endswith("/batches/1.parquet"):
            raise OSError("storage went away")
        return real_open_batch(store, key, schema)

    monkeypatch.setattr(batches_module, "open_batch", flaky_open_batch)
    run, ref = experiment.allocate(
        specs_with({}, n=9),
        recursion_map=RecursionMap(factor=3, max_depth=1),
        wait=False,
        engine=LocalEngine(slots=0),
    )
    with pytest.raises(EngineError, match="storage went away"):
        ref.result(timeout=60)
    manifest = run.manifest
    assert manifest.status == "incomplete" and "resume" in manifest.message
    monkeypatch.setattr(batches_module, "open_batch", real_open_batch)
    assert run.resume(engine=LocalEngine(slots=0)).result().status == "complete"
    done, failed = outcome_indices(run.results())
    assert done == list(range(9)) and failed == []


def test_workers_collect_garbage_less_often_and_leave_the_caller_alone(store):
    experiment = BaseExperiment(runnable=gc_thresholds, storage=store)
    mine = gc.get_threshold()
    in_worker, _ = experiment.allocate([Nothing()], engine=LocalEngine(slots=1, progress=False))
    in_process, _ = experiment.allocate([Nothing()], engine=LocalEngine(slots=0))
    row = in_worker.results().scalars.row(0, named=True)
    assert (row["young"], row["middle"], row["old"]) == WORKER_GC_THRESHOLDS != mine
    row = in_process.results().scalars.row(0, named=True)
    assert (row["young"], row["middle"], row["old"]) == mine == gc.get_threshold()


def test_the_pool_starts_no_more_workers_than_the_run_has_terminal_nodes(tmp_path):
    import multiprocessing

    engine = LocalEngine(slots=2, progress=False)
    try:
        experiment = BaseExperiment(runnable=gc_thresholds, storage=tmp_path)
        before = {p.pid for p in multiprocessing.active_children()}
        run, _ = experiment.allocate(
            [Nothing()], recursion_map=RecursionMap(factor=10, max_depth=0), engine=engine
        )
        workers = [p for p in multiprocessing.active_children() if p.pid not in before]
        assert run.status().status == "complete"
        assert [p.name for p in workers] == ["scythe-local-worker"]
    finally:
        engine.close()
