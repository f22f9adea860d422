"""analysis.Catalog over real runs on a local directory and on moto's S3 server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from query_experiments import (
    BASE_FAILING,
    CHANGED_FAILING,
    COUNT,
    panels,
    run_panels,
    s3_store,
    shared_runs,
)
from rich.console import Console

from analysis import Catalog
from analysis.errors import AmbiguousRunError
from scythe.errors import RunNotFoundError, RunOptionError
from scythe.storage import LocalStore

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def runs():
    return shared_runs()


@pytest.fixture(scope="module")
def s3_runs(moto_server):
    store = s3_store(moto_server)  # a bucket of its own: its catalog holds just this run
    return store, run_panels(store, panels(4), failing=set())


def test_lists_every_run_newest_first_with_the_manifest_counts(runs):
    catalog = Catalog(runs.store)
    allocated = [runs.base, runs.same, runs.changed]
    assert [info.run_id for info in catalog] == [r.run_id for r in reversed(allocated)]
    for info in catalog:
        run = info.open()
        status = run.status()
        manifest = run.manifest
        assert (info.status, info.done, info.failed, info.spec_count) == (
            status.status,
            status.done,
            status.failed,
            status.total,
        )
        assert info.created_at == manifest.created_at
        assert info.duration == manifest.finished_at - manifest.created_at
        assert info.duration.total_seconds() > 0
    assert {info.status for info in catalog} == {"partial"}  # every run has a failing spec
    assert [info.failed for info in catalog] == [len(CHANGED_FAILING), *[len(BASE_FAILING)] * 2]
    assert len(catalog) == 3


def test_experiments_versions_and_filters(runs):
    catalog = Catalog(runs.store)
    assert catalog.experiments() == ["query_panel"]
    versions = [r.run_id.split("/")[1] for r in (runs.changed, runs.same, runs.base)]
    assert catalog.versions("query_panel") == versions
    assert [i.run_id for i in catalog.runs(version=versions[-1])] == [runs.base.run_id]
    assert catalog.runs("no_such_experiment") == []
    assert catalog.runs(status="complete") == []
    frame = catalog.to_polars()
    assert frame["run_id"].to_list() == [i.run_id for i in catalog]
    assert frame["specs"].to_list() == [COUNT] * 3


def test_run_opens_one_run_by_id_or_prefix(runs):
    catalog = Catalog(str(runs.store.root))
    assert catalog.run(runs.base.run_id).run_id == runs.base.run_id
    assert catalog.run(runs.base.run_id[:-4]).run_id == runs.base.run_id
    version = runs.same.run_id.rsplit("/", 1)[0]
    assert catalog.run(version).run_id == runs.same.run_id  # one run in that version
    with pytest.raises(AmbiguousRunError) as err:
        catalog.run("query_panel")
    assert "matches 3 runs" in str(err.value) and runs.base.run_id in str(err.value)
    with pytest.raises(RunNotFoundError, match=re.escape("no run 'query_panel/v9.9.9'")):
        catalog.run("query_panel/v9.9.9")
    with pytest.raises(RunOptionError, match="empty"):
        catalog.run("  ")


def test_notebook_and_terminal_renderings_show_every_run(runs):
    catalog = Catalog(runs.store)
    html = catalog._repr_html_()
    console = Console(width=250, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(catalog)
    text = console.export_text()
    for info in catalog:
        assert f"<td>{info.run_id}</td><td>{info.status}</td>" in html
        assert info.run_id in text
    assert "3 runs" in repr(catalog)


def test_a_corrupt_manifest_is_listed_as_unreadable(tmp_path):
    store = LocalStore(tmp_path)
    good = run_panels(store, panels(2), failing=set())
    bad = run_panels(store, panels(3), failing=set())
    (tmp_path / bad.layout.manifest).write_text("status: [unclosed\n")
    infos = {info.run_id: info for info in Catalog(store)}
    assert infos[good.run_id].status == "complete"
    assert infos[bad.run_id].status == "unreadable"
    assert "not valid YAML" in infos[bad.run_id].message


@pytest.mark.s3
def test_catalog_of_an_s3_store(s3_runs):
    store, run = s3_runs
    catalog = Catalog(store)
    assert [(i.run_id, i.status, i.done) for i in catalog] == [(run.run_id, "complete", 4)]
    assert catalog.run(run.run_id.split("/")[2][:16]).run_id == run.run_id


@pytest.mark.s3
def test_a_fresh_process_needs_only_the_storage_uri(s3_runs, moto_server):
    store, run = s3_runs
    code = (
        "import json, sys; from analysis import Catalog; "
        "c = Catalog(sys.argv[1]); "
        "print(json.dumps([[i.run_id, i.status, i.spec_count] for i in c]))"
    )
    env = {**os.environ, "SCYTHE_STORAGE_ENDPOINT_URL": moto_server}
    out = subprocess.run(
        [sys.executable, "-c", code, store.uri()],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=HERE,
        timeout=120,
    )
    assert json.loads(out.stdout) == [[run.run_id, "complete", 4]]
