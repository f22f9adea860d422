"""analysis.scan and analysis.sql over real runs: run columns, pushdown, time travel, SQL = polars."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime

import polars as pl
import pytest
import query_experiments
from deltalake import DeltaTable
from polars.testing import assert_frame_equal
from query_experiments import COUNT, panels, run_panels, shared_runs, shared_s3_runs

from analysis import scan, sql
from analysis.errors import QueryError
from analysis.query import files_read
from scythe import ExperimentRun, LocalEngine
from scythe.errors import TableNotFoundError
from scythe.storage import LocalStore

RUN_COLUMNS = ["experiment", "version", "run"]


@pytest.fixture(scope="module")
def runs():
    return shared_runs()


def _with_run(run: ExperimentRun, frame: pl.DataFrame) -> pl.DataFrame:
    experiment, version, _ = run.run_id.split("/")
    return frame.with_columns(
        experiment=pl.lit(experiment), version=pl.lit(version), run=pl.lit(run.run_id)
    )


def _results(runs: list[ExperimentRun], table: str = "scalars") -> pl.DataFrame:
    """What run.results() holds, with the run columns scan() adds (the polars reference)."""
    return pl.concat([_with_run(r, r.results().table(table)) for r in runs])


def test_scan_adds_run_columns_and_holds_what_results_hold(runs):
    chosen = [runs.base, runs.changed]
    frame = scan(chosen).collect()
    assert frame.columns[-3:] == RUN_COLUMNS
    expected = _results(chosen)
    assert_frame_equal(frame.sort("run", "sort_index"), expected.sort("run", "sort_index"))
    assert frame.group_by("run").len().sort("run")["len"].to_list() == [
        r.results().scalars.height for r in sorted(chosen, key=lambda r: r.run_id)
    ]


def test_scan_by_experiment_or_version_reads_every_run_of_it(runs, tmp_path):
    everything = scan("query_panel", storage=runs.store).collect()
    assert set(everything["run"]) == {runs.base.run_id, runs.same.run_id, runs.changed.run_id}
    version = runs.same.run_id.rsplit("/", 1)[0]
    one = scan(version, storage=runs.store).collect()
    assert set(one["run"]) == {runs.same.run_id}
    curve = scan(runs.base, table="curve").collect()
    assert_frame_equal(curve.sort("sort_index", "sort_subindex"), _results([runs.base], "curve"))
    with pytest.raises(TableNotFoundError, match=r"has no table 'nope'; tables: \['curve'"):
        scan(runs.base, table="nope")


def test_scan_takes_catalog_entries_versions_and_experiments(runs):
    from analysis import Catalog
    from scythe import BaseExperiment
    from scythe.errors import RunOptionError

    catalog = Catalog(runs.store)
    newest = catalog.runs()[:2]
    assert set(scan(newest).collect()["run"]) == {runs.changed.run_id, runs.same.run_id}
    experiment = BaseExperiment(query_experiments.panel, storage=runs.store)
    assert scan(experiment).collect()["run"].n_unique() == 3
    first_version = experiment.list_versions()[0]
    assert set(scan(first_version).collect()["run"]) == {runs.base.run_id}
    with pytest.raises(RunOptionError, match="42 is not a run"):
        scan([runs.base, 42])


def _files_with_n(run: ExperimentRun, value: int) -> int:
    """The data files whose Delta statistics say they may hold rows with n == value."""
    table = DeltaTable(run.table_uri("scalars"), storage_options=run.store.storage_options())
    actions = pl.DataFrame(table.get_add_actions(flatten=True)).to_dict(as_series=False)
    return sum(lo <= value <= hi for lo, hi in zip(actions["min.n"], actions["max.n"], strict=True))


def test_filters_and_columns_are_pushed_into_each_delta_scan(runs):
    lazy = scan([runs.base, runs.same])
    every_file = sum(
        len(DeltaTable(r.table_uri("scalars")).file_uris()) for r in (runs.base, runs.same)
    )
    assert files_read(lazy) == every_file == 8  # 4 terminal nodes, one file each, per run
    filtered = lazy.filter(pl.col("n") == 2).select("run", "x", "y")
    assert files_read(filtered) == _files_with_n(runs.base, 2) + _files_with_n(runs.same, 2)
    assert files_read(filtered) < every_file
    plan = filtered.explain()
    columns = len(runs.base.table_schemas()["scalars"].names)
    assert 'SELECTION: col("n") == 2' in plan  # the filter reaches the Parquet scan
    assert f"PROJECT 3/{columns} COLUMNS" in plan  # run, x, y read; n for the filter
    assert files_read(scan(runs.base).filter(pl.col("n") == 2)) == _files_with_n(runs.base, 2)


def test_pruned_files_are_not_read_at_all(runs, tmp_path):
    shutil.copytree(runs.store.root, tmp_path / "copy")
    run = ExperimentRun.open(runs.base.run_id, storage=tmp_path / "copy")
    actions = pl.DataFrame(DeltaTable(run.table_uri("scalars")).get_add_actions(flatten=True))
    actions = actions.to_dict(as_series=False)
    for path, lo, hi in zip(actions["path"], actions["min.n"], actions["max.n"], strict=True):
        if not lo <= 2 <= hi:
            (tmp_path / "copy" / run.layout.table("scalars") / path).unlink()
    got = scan(run).filter(pl.col("n") == 2).select("sort_index", "y").collect().sort("sort_index")
    expected = runs.base.results().scalars.filter(pl.col("n") == 2).select("sort_index", "y")
    assert got.height > 0
    assert_frame_equal(got, expected)
    with pytest.raises(FileNotFoundError):  # the control: a filter the deleted files may match
        scan(run).filter(pl.col("n") >= 2).collect()


def test_as_of_reads_a_table_version_or_a_time(tmp_path):
    store = LocalStore(tmp_path)
    run = run_panels(store, panels(6), failing={5.0})
    between = datetime.now(UTC)
    run.resume(engine=LocalEngine(slots=0), retry_failed=True).result()  # spec 5 succeeds now
    assert not query_experiments.FAILING  # run_panels cleared it: the retry succeeds
    assert scan(run, table="failures").collect().height == 0
    assert scan(run, table="failures", as_of=1).collect()["sort_index"].to_list() == [5]
    assert scan(run, table="failures", as_of=between).collect()["sort_index"].to_list() == [5]
    assert scan(run, table="failures", as_of=between.replace(tzinfo=None)).collect().height == 1
    assert scan(run, as_of=0).collect().height == 0
    assert scan(run, as_of=1).collect().height == 5 and scan(run).collect().height == 6
    with pytest.raises(QueryError, match=r"has no version as of 9 \(versions 0 to"):
        scan(run, as_of=9)
    with pytest.raises(QueryError, match="the table was created at"):
        scan(run, as_of=datetime(2000, 1, 1, tzinfo=UTC))
    with pytest.raises(QueryError, match="give a table version"):
        scan(run, as_of=-1)


QUERIES = {
    "group_by": (
        "SELECT run, material, count(*) AS specs, avg(y) AS mean_y, max(z) AS max_z "
        "FROM scalars WHERE n >= 2 GROUP BY run, material ORDER BY run, material",
        lambda f: (
            f["scalars"]
            .filter(pl.col("n") >= 2)
            .group_by("run", "material")
            .agg(
                pl.len().cast(pl.Int64).alias("specs"),
                pl.col("y").mean().alias("mean_y"),
                pl.col("z").max().alias("max_z"),
            )
            .sort("run", "material")
        ),
    ),
    "join_frame_output": (
        "SELECT s.run, s.sort_index, s.y, sum(c.value) AS total FROM scalars s "
        "JOIN curve c ON s.run = c.run AND s.sort_index = c.sort_index "
        "GROUP BY s.run, s.sort_index, s.y ORDER BY s.run, s.sort_index",
        lambda f: (
            f["scalars"]
            .join(f["curve"], on=["run", "sort_index"])
            .group_by("run", "sort_index", "y")
            .agg(pl.col("value").sum().alias("total"))
            .sort("run", "sort_index")
        ),
    ),
    "failures": (
        "SELECT run, sort_index, error_type, attempts FROM failures ORDER BY run, sort_index",
        lambda f: (
            f["failures"]
            .select("run", "sort_index", "error_type", "attempts")
            .sort("run", "sort_index")
        ),
    ),
    "specs": (
        "SELECT version, count(*) AS specs FROM specs GROUP BY version ORDER BY version",
        lambda f: (
            f["specs"]
            .group_by("version")
            .agg(pl.len().cast(pl.Int64).alias("specs"))
            .sort("version")
        ),
    ),
}


@pytest.mark.parametrize("name", list(QUERIES))
def test_sql_equals_the_polars_equivalent(runs, name):
    query, polars_query = QUERIES[name]
    chosen = [runs.base, runs.same, runs.changed]
    frames = {t: _results(chosen, t) for t in ("scalars", "curve", "failures", "specs")}
    expected = polars_query(frames)
    got = sql(query, chosen)
    assert got.height > 0
    assert_frame_equal(got, expected)
    assert_frame_equal(sql(query, chosen, lazy=True).collect(), expected)


def test_sql_errors_name_what_to_fix(runs):
    with pytest.raises(QueryError, match='unable to find column "nope"'):
        sql("SELECT nope FROM scalars", runs.base)
    with pytest.raises(QueryError, match=r"names none of the runs' tables \['curve'"):
        sql("SELECT 1 AS one FROM elsewhere", runs.base)


@pytest.mark.s3
def test_scan_and_sql_on_s3_match_the_local_runs(runs, moto_server):
    remote = shared_s3_runs(moto_server)
    values = ["x", "material", "n", "y", "z"]
    local = scan(runs.changed).select(values).collect().sort("x")
    on_s3 = scan(remote.changed).select(values).collect().sort("x")
    assert_frame_equal(on_s3, local)
    assert remote.changed.store.uri().startswith("s3://")
    total = sql("SELECT count(*) AS specs FROM specs", [remote.base, remote.same])
    assert total["specs"].to_list() == [2 * COUNT]
    pruned = scan([remote.base, remote.same]).filter(pl.col("n") == 2)
    expected = _files_with_n(remote.base, 2) + _files_with_n(remote.same, 2)
    assert files_read(pruned) == expected < files_read(scan([remote.base, remote.same]))


def test_import_analysis_loads_no_heavy_module():
    code = (
        "import sys, analysis; heavy = ('matplotlib', 'scipy', 'SALib', 'analysis.query', "
        "'analysis.plots', 'deltalake'); print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
