"""The scythe command's run and analysis commands: outputs and exit codes (CliRunner and a real process)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import query_experiments
from polars.testing import assert_frame_equal
from query_experiments import CHANGED_OFFSETS, COUNT, panels, shared_runs, shared_s3_runs
from typer.testing import CliRunner

import analysis
from analysis.cli import app
from scythe import ExperimentRun

HERE = Path(__file__).resolve().parent
SCYTHE = Path(sys.executable).parent / "scythe"
COMMANDS = ["run", "runs", "show", "results", "sql", "compare", "report", "resume"]
SCYTHE_COMMANDS = ["version", "demo", "worker"]
runner = CliRunner()


@pytest.fixture(scope="module")
def runs():
    return shared_runs()


def invoke(*args: str, store=None):
    storage = [] if store is None else ["--storage", store.uri()]
    return runner.invoke(app, [*args, *storage])


def _spec_file(tmp_path: Path, kind: str) -> Path:
    frame = pl.DataFrame([s.model_dump(include={"x", "material", "n"}) for s in panels(5)])
    path = tmp_path / f"specs.{kind}"
    {"csv": frame.write_csv, "parquet": frame.write_parquet, "jsonl": frame.write_ndjson}[kind](
        path
    )
    return path


@pytest.mark.parametrize("kind", ["csv", "parquet", "jsonl"])
def test_run_allocates_the_specs_of_a_file(tmp_path, kind):
    result = runner.invoke(
        app,
        ["run", "query_experiments:panel", "--specs", str(_spec_file(tmp_path, kind)), "--slots", "0",
         "--factor", "2", "--max-depth", "1", "--version", "v3.1.0", "--storage", str(tmp_path / "s")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run_id = result.stdout.splitlines()[0].removeprefix("run ")
    assert run_id.startswith("query_panel/v3.1.0/")
    assert result.stdout.splitlines()[1] == "complete: 5 done, 0 failed of 5"
    run = ExperimentRun.open(run_id, storage=tmp_path / "s")
    assert run.results().scalars["x"].to_list() == [s.x for s in panels(5)]
    assert run.manifest.recursion_map.factor == 2


def test_run_with_failures_exits_1_and_resume_retries_them(tmp_path):
    specs = _spec_file(tmp_path, "csv")
    query_experiments.FAILING.add(2.0)
    try:
        result = invoke("run", "query_experiments:panel", "--specs", str(specs), "--slots", "0",
                        "--storage", str(tmp_path))  # fmt: skip
    finally:
        query_experiments.FAILING.clear()
    assert result.exit_code == 1, result.output
    assert "partial: 4 done, 1 failed of 5" in result.stdout
    run_id = result.stdout.splitlines()[0].removeprefix("run ")
    again = invoke("resume", run_id[:-3], "--slots", "0", "--storage", str(tmp_path))
    assert again.exit_code == 1 and "partial: 4 done, 1 failed of 5" in again.stdout
    fixed = invoke("resume", run_id, "--slots", "0", "--retry-failed", "--storage", str(tmp_path))
    assert fixed.exit_code == 0, fixed.output
    assert fixed.stdout.splitlines()[-1] == "complete: 5 done, 0 failed of 5"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "query_experiments:nope", "--specs", "{specs}"], "query_experiments has no attribute 'nope'"),
        (["run", "query_experiments:panel", "--specs", "{tmp}/none.csv"], "none.csv: no such file"),
        (["run", "query_experiments:panel", "--specs", "{specs}", "--no-wait"], "--no-wait needs --engine hatchet"),
        (["run", "query_experiments:panel", "--specs", "{specs}", "--factor", "3"], "give --factor and --max-depth together"),
        (["run", "query_experiments:panel", "--specs", "{specs}", "--engine", "hatchet", "--no-wait"], "HATCHET_CLIENT_TOKEN is not set"),
        (["results", "query_panel/v9"], "no run 'query_panel/v9'"),
        (["results", "query_panel"], "matches 3 runs"),
        (["results", "{base}", "--table", "nope"], "has no table 'nope'"),
        (["results", "{base}", "--format", "parquet"], "give --output FILE"),
        (["sql", "SELECT nope FROM scalars", "--run", "{base}"], 'unable to find column "nope"'),
        (["compare", "{base}", "{same}", "--outputs", "label"], "output 'label' is String"),
    ],
)  # fmt: skip
def test_errors_are_one_line_naming_what_to_fix_and_exit_2(
    runs, tmp_path, monkeypatch, args, message
):
    monkeypatch.delenv("HATCHET_CLIENT_TOKEN", raising=False)
    values = {"specs": str(_spec_file(tmp_path, "csv")), "tmp": str(tmp_path),
              "base": runs.base.run_id, "same": runs.same.run_id}  # fmt: skip
    result = invoke(*[a.format(**values) for a in args], store=runs.store)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith(f"scythe {args[0]}: ")
    assert "Traceback" not in result.output


def test_debug_shows_the_error_itself(runs):
    result = invoke("results", "query_panel/v9", "--debug", store=runs.store)
    assert result.exit_code == 1
    assert type(result.exception).__name__ == "RunNotFoundError"


def test_runs_lists_the_catalog(runs):
    table = invoke("runs", store=runs.store)
    assert table.exit_code == 0, table.output
    for run in (runs.base, runs.same, runs.changed):
        assert run.run_id in table.stdout
    listed = json.loads(invoke("runs", "query_panel", "--format", "json", store=runs.store).stdout)
    assert [row["run_id"] for row in listed] == [i.run_id for i in analysis.Catalog(runs.store)]
    assert invoke("runs", "elsewhere", store=runs.store).stdout.count("query_panel") == 0


def test_show_describes_a_run(runs):
    result = invoke("show", runs.changed.run_id[:-6], store=runs.store)
    assert result.exit_code == 0, result.output
    status = runs.changed.status()
    assert (
        f"{status.status}: {status.total} specs, {status.done} done, {status.failed} failed"
        in result.stdout
    )
    results = runs.changed.results()
    assert f"scalars ({results.scalars.height} rows)" in result.stdout
    assert f"curve ({results.table('curve').height} rows)" in result.stdout
    assert f"ValueError x {status.failed}" in result.stdout


@pytest.mark.parametrize("kind", ["csv", "json", "parquet"])
def test_results_exports_a_table(runs, tmp_path, kind):
    expected = runs.base.results().scalars
    output = tmp_path / f"out.{kind}"
    result = invoke(
        "results", runs.base.run_id, "--format", kind, "--output", str(output), store=runs.store
    )
    assert result.exit_code == 0, result.output
    read = {"csv": pl.read_csv, "json": pl.read_json, "parquet": pl.read_parquet}[kind](output)
    assert_frame_equal(read, expected, check_dtypes=kind == "parquet")


def test_results_prints_a_table_or_csv(runs):
    shown = invoke("results", runs.base.run_id, "--limit", "3", store=runs.store)
    assert shown.exit_code == 0
    assert f"{runs.base.results().scalars.height} rows, 3 shown" in shown.stdout
    failures = invoke(
        "results", runs.base.run_id, "--table", "failures", "--format", "csv", store=runs.store
    )
    assert pl.read_csv(io.StringIO(failures.stdout))["sort_index"].to_list() == (
        runs.base.results().failures["sort_index"].to_list()
    )


def test_sql_prints_what_analysis_sql_returns(runs):
    query = "SELECT run, count(*) AS specs, sum(y) AS total FROM scalars GROUP BY run ORDER BY run"
    result = invoke("sql", query, "--run", runs.base.run_id, "--run", runs.changed.run_id,
                    "--format", "csv", store=runs.store)  # fmt: skip
    assert result.exit_code == 0, result.output
    expected = analysis.sql(query, [runs.base, runs.changed])
    assert_frame_equal(pl.read_csv(io.StringIO(result.stdout)), expected, check_dtypes=False)


def test_sql_as_of_reads_an_earlier_table_version(runs):
    query = "SELECT count(*) AS specs FROM scalars"
    args = ["sql", query, "--run", runs.base.run_id, "--format", "csv"]
    assert invoke(*args, "--as-of", "0", store=runs.store).stdout.splitlines() == ["specs", "0"]
    latest = runs.base.results().scalars.height
    assert invoke(*args, store=runs.store).stdout.splitlines() == ["specs", str(latest)]
    bad = invoke(*args, "--as-of", "yesterday", store=runs.store)
    assert bad.exit_code == 2 and "as_of='yesterday': give a table version" in bad.stderr


def test_compare_exit_codes_and_reports(runs, tmp_path):
    same = invoke("compare", runs.base.run_id, runs.same.run_id, store=runs.store)
    assert same.exit_code == 0, same.output
    assert same.stdout.splitlines()[-1].startswith("OK: ")
    report = tmp_path / "comparison.md"
    changed = invoke("compare", runs.base.run_id, runs.changed.run_id, "--format", "markdown",
                     "--output", str(report), store=runs.store)  # fmt: skip
    assert changed.exit_code == 1
    assert f"{len(CHANGED_OFFSETS)} spec(s) outside rtol=1e-05" in changed.stdout
    assert report.read_text().startswith("### ❌")
    loose = invoke("compare", runs.base.run_id, runs.changed.run_id, "--atol", "1", "--outputs", "y",
                   store=runs.store)  # fmt: skip
    assert loose.exit_code == 1 and "outside tolerance" not in loose.stdout  # the failed spec


def test_report_calls_analysis_report_with_the_runs(runs, tmp_path, monkeypatch):
    calls = []

    def fake_report(run, path, compare_to=None):
        calls.append((run.run_id, path, None if compare_to is None else compare_to.run_id))
        Path(path).write_text("<html></html>")

    monkeypatch.setattr("analysis.cli._report_function", lambda: fake_report)
    out = tmp_path / "report.html"
    result = invoke("report", runs.base.run_id, "--output", str(out), "--compare-to",
                    runs.same.run_id, store=runs.store)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert calls == [(runs.base.run_id, out, runs.same.run_id)]


def test_report_without_its_module_says_what_to_install(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "analysis.reporting", None)  # import fails as if not installed
    result = invoke(
        "report", runs.base.run_id, "--output", str(tmp_path / "r.html"), store=runs.store
    )
    assert result.exit_code == 2
    assert "no analysis.reporting module" in result.stderr


def test_report_writes_html_with_the_comparison(runs, tmp_path):

    out = tmp_path / "report.html"
    result = invoke("report", runs.base.run_id, "--output", str(out), "--compare-to",
                    runs.same.run_id, store=runs.store)  # fmt: skip
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert html.lstrip().lower().startswith(("<!doctype html", "<html"))
    verdict = analysis.compare(runs.base, runs.same).to_text().splitlines()[-1]
    assert verdict in html  # the comparison section shows compare()'s report


@pytest.mark.parametrize("command", COMMANDS + SCYTHE_COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert f"Example: scythe {command}" in result.stdout
    if command in COMMANDS:
        assert "--debug" in result.stdout and "--storage" in result.stdout


def _scythe(*args: str, cwd: Path = HERE, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCYTHE), *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=120)  # fmt: skip


def test_the_installed_script_runs_and_compares_in_a_real_process(runs, tmp_path):
    specs = _spec_file(tmp_path, "jsonl")
    made = _scythe("run", "query_experiments:panel", "--specs", str(specs), "--slots", "0",
                   "--storage", str(tmp_path / "s"))  # fmt: skip
    assert made.returncode == 0, made.stderr
    run_id = made.stdout.splitlines()[0].removeprefix("run ")
    assert ExperimentRun.open(run_id, storage=tmp_path / "s").status().done == 5
    storage = str(runs.store.root)
    changed = _scythe("compare", runs.base.run_id, runs.changed.run_id, "--storage", storage)
    assert changed.returncode == 1 and "DIFFERENT" in changed.stdout
    missing = _scythe("show", "query_panel/v9", "--storage", storage)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().startswith("scythe show: no run 'query_panel/v9'")


def test_the_script_loads_no_analysis_module_before_a_command_needs_it():
    code = (
        "import sys, analysis.cli; heavy = ('matplotlib', 'scipy', 'SALib', 'deltalake', "
        "'analysis.query', 'analysis.catalog'); print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert _scythe("worker", "--help").returncode == 0


@pytest.mark.s3
def test_runs_and_sql_on_s3(moto_server):
    remote = shared_s3_runs(moto_server)
    listed = invoke("runs", store=remote.store)
    assert listed.exit_code == 0, listed.output
    assert remote.base.run_id in listed.stdout and remote.changed.run_id in listed.stdout
    env = {"SCYTHE_STORAGE_URI": remote.store.uri(), "SCYTHE_STORAGE_ENDPOINT_URL": moto_server}
    counted = _scythe("sql", "SELECT count(*) AS specs FROM specs", "--run", "query_panel",
                      "--format", "csv", env=env)  # fmt: skip
    assert counted.returncode == 0, counted.stderr
    assert counted.stdout.splitlines() == ["specs", str(3 * COUNT)]
