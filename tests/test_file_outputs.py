"""File outputs: a file of the leaf's tempdir is moved into the run, any other file copied."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from scythe import (
    BaseExperiment,
    ExperimentInputSpec,
    ExperimentOutputSpec,
    ExperimentRegistry,
    FileReference,
    LocalEngine,
)
from scythe.utils.filesys import fetch_uri

IN_PROCESS = LocalEngine(slots=0, progress=False)


class Where(ExperimentInputSpec):
    keep_dir: str
    n: int


class Files(ExperimentOutputSpec):
    report: FileReference
    same_report: FileReference
    kept: FileReference


@ExperimentRegistry.Register(name="file_outputs_moved_or_copied")
def write_files(spec: Where, tempdir: Path) -> Files:
    report = tempdir / "report.txt"
    report.write_text(f"report {spec.n}")
    kept = Path(spec.keep_dir) / f"kept-{spec.n}.txt"
    kept.write_text(f"kept {spec.n}")
    return Files(report=report, same_report=report, kept=kept)


def test_tempdir_files_are_stored_and_the_users_own_files_are_left_alone(tmp_path):
    keep = tmp_path / "mine"
    keep.mkdir()
    run, ref = BaseExperiment(write_files, storage=tmp_path / "store").allocate(
        [Where(keep_dir=str(keep), n=i) for i in range(3)], engine=IN_PROCESS
    )
    assert ref.result().status == "complete"
    refs = run.results()["result_file_refs"].sort("sort_index")
    for row in refs.iter_rows(named=True):
        n = row["sort_index"]
        text = {
            field: fetch_uri(row[field], tmp_path / "read" / f"{field}-{n}.txt").read_text()
            for field in ("report", "same_report", "kept")
        }
        assert text == {"report": f"report {n}", "same_report": f"report {n}", "kept": f"kept {n}"}
    # the user's files outside the tempdir are still where they were, unchanged
    assert sorted(p.name for p in keep.iterdir()) == [f"kept-{i}.txt" for i in range(3)]
    assert (keep / "kept-1.txt").read_text() == "kept 1"
    # and the stored copy is a copy: changing the user's file changes nothing stored
    (keep / "kept-1.txt").write_text("changed")
    uri = refs.filter(pl.col("sort_index") == 1)["kept"].item()
    assert fetch_uri(uri, tmp_path / "again.txt").read_text() == "kept 1"
