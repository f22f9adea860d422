"""Failure policy, retrying failed specs, and node memory bounds, end to end on real Delta tables."""

from __future__ import annotations

import polars as pl
import pytest
from deltalake import DeltaTable
from scythe_test_experiments import Probe, probe

from scythe import BaseExperiment, ExperimentRun, LocalEngine, RecursionMap
from scythe.errors import RunOptionError

IN_PROCESS = LocalEngine(slots=0, progress=False)


@pytest.fixture(scope="module")
def two_workers():
    return LocalEngine(slots=2, progress=False)


def _specs(n: int, failing: set[int], marker_dir: str) -> list[Probe]:
    return [
        Probe(x=float(i), mode="fail_until_fixed" if i in failing else "ok", marker_dir=marker_dir)
        for i in range(n)
    ]


def _snapshot(run: ExperimentRun, tables: tuple[str, ...]) -> dict[tuple[str, int], pl.DataFrame]:
    """Every committed version of each table, as read back."""
    out = {}
    for name in tables:
        uri = run.table_uri(name)
        for version in range(DeltaTable(uri).version() + 1):
            out[(name, version)] = pl.read_delta(uri, version=version).sort(
                ["sort_index", *(["sort_subindex"] if name == "rows" else [])]
            )
    return out


@pytest.mark.parametrize("engine", ["in-process", "workers"])
def test_retry_failed_runs_the_failed_specs_again_and_keeps_old_versions(
    tmp_path, two_workers, engine
):
    engine_ = IN_PROCESS if engine == "in-process" else two_workers
    marker = tmp_path / "marker"
    marker.mkdir()
    failing = {1, 4, 7, 10}
    run, ref = BaseExperiment(probe, storage=tmp_path / "store").allocate(
        _specs(12, failing, str(marker)), engine=engine_
    )
    assert (ref.result().status, ref.result().failed) == ("partial", 4)
    before = _snapshot(run, ("scalars", "failures", "rows"))

    (marker / "fixed").write_text("the simulator was fixed")
    again = ExperimentRun.open(run.run_id, storage=tmp_path / "store")
    summary = again.resume(engine=engine_, retry_failed=True).result()
    assert (summary.status, summary.done, summary.failed) == ("complete", 12, 0)
    results = again.results()
    assert results.scalars["sort_index"].to_list() == list(range(12))
    assert results.failures.height == 0
    assert sorted(results["rows"]["sort_index"].unique().to_list()) == list(range(12))
    assert again.manifest.retry is not None
    assert (again.manifest.retry.round, again.manifest.retry.specs) == (1, 4)
    # Every version committed before the retry reads exactly as it did.
    after = _snapshot(run, ("scalars", "failures", "rows"))
    assert all(after[key].equals(frame) for key, frame in before.items())
    assert after[("failures", 2)].height == 0 and before[("failures", 1)].height == 4

    # A plain resume afterwards commits nothing more and changes nothing.
    versions = {name: DeltaTable(run.table_uri(name)).version() for name in ("scalars", "failures")}
    assert again.resume(engine=engine_).result().status == "complete"
    assert versions == {n: DeltaTable(run.table_uri(n)).version() for n in versions}


def test_retry_failed_keeps_the_specs_that_fail_again(tmp_path):
    marker = tmp_path / "marker"
    marker.mkdir()
    run, ref = BaseExperiment(probe, storage=tmp_path / "store").allocate(
        _specs(6, {2, 3}, str(marker)), engine=IN_PROCESS
    )
    assert ref.result().failed == 2
    summary = run.resume(engine=IN_PROCESS, retry_failed=True).result()
    assert (summary.status, summary.done, summary.failed) == ("partial", 4, 2)
    assert run.results().failures["sort_index"].to_list() == [2, 3]
    (marker / "fixed").write_text("")
    summary = run.resume(engine=IN_PROCESS, retry_failed=True).result()
    assert (summary.status, summary.failed) == ("complete", 0)
    assert run.manifest.retry is not None and run.manifest.retry.round == 2


def test_retry_failed_needs_every_spec_to_have_a_row(tmp_path):
    experiment = BaseExperiment(probe, storage=tmp_path / "store")
    run, ref = experiment.allocate(
        [Probe(x=float(i), mode="raise" if i < 4 else "ok") for i in range(20)],
        engine=IN_PROCESS,
        max_failure_ratio=0.1,
        recursion_map=RecursionMap(factor=4, max_depth=1),
    )
    assert ref.result().status == "failed"
    with pytest.raises(RunOptionError, match=r"not run: resume\(\) it first"):
        run.resume(engine=IN_PROCESS, retry_failed=True)


def test_the_failure_policy_stops_commits_what_finished_and_resume_lifts_it(tmp_path, two_workers):
    specs = [Probe(x=float(i), mode="raise" if i % 2 else "ok") for i in range(200)]
    run, ref = BaseExperiment(probe, storage=tmp_path / "store").allocate(
        specs, engine=two_workers, max_failure_ratio=0.1
    )
    summary = ref.result()
    assert summary.status == "failed"
    assert summary.missing > 0 and summary.failed > 20
    assert "more than max_failure_ratio=0.1 allows (20)" in summary.message
    assert run.status().status == "failed"
    committed = run.results()
    assert committed.scalars.height + committed.failures.height == 200 - summary.missing
    assert committed.scalars.height == summary.done  # what finished is committed

    summary = run.resume(engine=two_workers, max_failure_ratio=1.0).result()
    assert (summary.status, summary.done, summary.failed, summary.missing) == (
        "partial",
        100,
        100,
        0,
    )
    assert run.manifest.max_failure_ratio == 1.0
    assert run.results().scalars["sort_index"].n_unique() == 100


def test_without_a_policy_a_run_with_failures_is_partial(tmp_path):
    run, ref = BaseExperiment(probe, storage=tmp_path / "store").allocate(
        [Probe(x=float(i), mode="raise" if i % 2 else "ok") for i in range(10)], engine=IN_PROCESS
    )
    assert ref.result().status == "partial"
    assert run.manifest.max_failure_ratio is None


def test_a_node_stages_in_chunks_past_its_memory_bound(tmp_path, monkeypatch):
    monkeypatch.setenv("SCYTHE_NODE_STAGE_BYTES", "300")
    run, ref = BaseExperiment(probe, storage=tmp_path / "store").allocate(
        [Probe(x=float(i)) for i in range(12)],
        engine=IN_PROCESS,
        recursion_map=RecursionMap(factor=2, max_depth=0),  # one node holds every spec
    )
    assert ref.result().status == "complete"
    parts = [k for k in run.store.list_keys(run.run_id) if "/final/rows/part-root-" in k]
    assert len(parts) > 1, "the node should have staged more than one chunk"
    rows = run.results()["rows"]
    expected = sum(int(x) % 3 + 1 for x in range(12))
    assert rows.height == expected
    assert rows.select("sort_index", "sort_subindex").is_unique().all()


def test_reuse_copies_rows_of_specs_already_computed(tmp_path):
    data = tmp_path / "weather.csv"
    data.write_text("t,1\n")
    experiment = BaseExperiment(probe, storage=tmp_path / "store")
    first, ref = experiment.allocate(
        [
            Probe(x=float(i), mode="raise" if i == 3 else "ok", data_file=data if i == 2 else None)
            for i in range(6)
        ],
        engine=IN_PROCESS,
    )
    assert ref.result().failed == 1
    specs = [Probe(x=float(i), data_file=data if i == 2 else None) for i in range(2, 9)]
    second, ref = experiment.allocate(specs, engine=IN_PROCESS, reuse=first)
    assert ref.result().status == "complete"
    # x = 2 (same file content), 4 and 5 succeeded before; 3 failed there and runs again
    assert second.manifest.reused == {first.run_id: 3}
    assert second.manifest.tree_specs == 4
    results = second.results()
    by_x = {r["x"]: r for r in results.scalars.iter_rows(named=True)}
    assert sorted(by_x) == [float(x) for x in range(2, 9)]
    assert {x for x, r in by_x.items() if r["workflow_run_id"].startswith("reused:")} == {
        2.0,
        4.0,
        5.0,
    }
    assert all(r["experiment_id"] == second.run_id for r in by_x.values())
    assert all(r["y"] == 2 * x for x, r in by_x.items())
    rows = results["rows"].group_by("sort_index").len().sort("sort_index")
    assert rows["len"].to_list() == [int(x) % 3 + 1 for x in range(2, 9)]
    # a changed input file is not the same spec
    data.write_text("t,2\n")
    third, ref = experiment.allocate(specs[:1], engine=IN_PROCESS, reuse=[second, first])
    assert ref.result().status == "complete"
    assert third.manifest.reused == {}


def test_reuse_refuses_a_run_with_another_schema(tmp_path):
    from scythe_test_experiments import Nothing, gc_thresholds

    other, _ = BaseExperiment(gc_thresholds, storage=tmp_path / "store").allocate(
        [Nothing()], engine=IN_PROCESS
    )
    with pytest.raises(RunOptionError, match=r"has another schema"):
        BaseExperiment(probe, storage=tmp_path / "store").allocate(
            [Probe(x=1.0)], engine=IN_PROCESS, reuse=other
        )
    with pytest.raises(RunOptionError, match=r"rows are copied within one storage only"):
        BaseExperiment(probe, storage=tmp_path / "elsewhere").allocate(
            [Probe(x=1.0)], engine=IN_PROCESS, reuse=other
        )
