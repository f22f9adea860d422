"""What a node of the scatter/gather tree does, for every engine.

- A **terminal node** runs the leaf middleware over its batch of specs,
  validates the batch against the schema stored with the run at allocation,
  stages one data file per table and writes a small node manifest.
- A **fan node** gathers its children's results: references and counts only.
- The **root** commits every table once, checks that each spec ended as
  exactly one row of ``scalars`` or ``failures``, and records the outcome in
  ``manifest.yml``.

Engines decide where nodes run; this module decides what they do.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import polars as pl

from scythe import batches, tables
from scythe.errors import EngineError, ExperimentNotFoundError
from scythe.layout import REUSED_NODE, RunLayout, dump_yaml, load_yaml
from scythe.leaf import LeafContext, LeafResult, LeafRunner, crashed_leaf
from scythe.manifest import RunManifest, read_manifest, update_manifest
from scythe.registry import ExperimentRegistry, ExperimentRunnable, load_runnable
from scythe.scatter_gather import RunSummary, ScatterGatherInput, ScatterGatherResult
from scythe.schema import (
    FAILURES,
    FILE_REFS,
    SCALARS,
    SORT_SUBINDEX,
    SPECS,
    Column,
    ExperimentSchema,
    TableSchema,
    schema_from_dict,
    table_from_dict,
    table_to_dict,
)
from scythe.staged import StagedFile
from scythe.storage import Store, open_store

ROOT_COMMITTER = "root"
# Threads the root commits tables and reads their sort indices with.
ROOT_THREADS = 4
T = TypeVar("T")


class LeafProgress(Protocol):
    """What a terminal node reports while it runs; engines count and time leaves with it."""

    def started(self, sort_index: int, attempt: int) -> None:
        """Before each try of a leaf."""

    def finished(self, sort_index: int, ok: bool) -> None:
        """After a leaf's last try."""

    def staging(self) -> None:
        """Once every leaf is done, before the node's tables are staged."""


@dataclass(frozen=True)
class RunHandle:
    """Everything a node needs about its run, loaded once per process."""

    store: Store
    layout: RunLayout
    manifest: RunManifest
    experiment: ExperimentRunnable
    schema: ExperimentSchema


def resolve_experiment(name: str, reference: str) -> ExperimentRunnable:
    """The registered experiment: by name in this process, else imported from ``module:qualname``."""
    try:
        return ExperimentRegistry.get(name)
    except ExperimentNotFoundError:
        module, _, qualname = reference.partition(":")
        return load_runnable(module, qualname)


def stored_schema(
    store: Store, layout: RunLayout, experiment: ExperimentRunnable
) -> ExperimentSchema:
    """The schema stored with the run at allocation, bound to the experiment's spec classes."""
    stored = load_yaml(store.get_bytes(layout.table_schemas))
    return schema_from_dict(stored, experiment.input_spec, experiment.output_spec)


@functools.lru_cache(maxsize=16)
def load_run(
    storage_uri: str, run_id: str, experiment: str, experiment_ref: str, round: int = 0
) -> RunHandle:
    """The run a node belongs to, read once per process: its manifest, experiment and schema.

    ``round`` > 0: the tree of a retry of the run's failed specs (its own batches and nodes).
    """
    store = open_store(storage_uri)
    layout = RunLayout(run_id, round)
    manifest = read_manifest(store, layout)
    runnable = resolve_experiment(experiment, experiment_ref)
    return RunHandle(store, layout, manifest, runnable, stored_schema(store, layout, runnable))


def handle_for(inp: ScatterGatherInput) -> RunHandle:
    return load_run(inp.storage_uri, inp.run_id, inp.experiment, inp.experiment_ref, inp.round)


# --------------------------------------------------------------------------- terminal nodes


def read_batch(run: RunHandle, node: str) -> tuple[list[Any], pl.DataFrame]:
    """The specs of a terminal node and their index columns, read from its batch file."""
    return batches.read_batch(run.store, run.layout.batch(node), run.schema)


def open_batch(run: RunHandle, node: str) -> batches.Batch:
    """A terminal node's batch file, its specs validated as they are iterated."""
    return batches.open_batch(run.store, run.layout.batch(node), run.schema)


def stored_result(run: RunHandle, node: str) -> ScatterGatherResult | None:
    """The result of a node that already finished (a retried node does its work once)."""
    key = run.layout.node_manifest(node)
    if not run.store.exists(key):
        return None
    try:
        return ScatterGatherResult.model_validate(json.loads(run.store.get_bytes(key))["result"])
    except (ValueError, KeyError, TypeError):
        # A torn node manifest (a writer killed mid-write, before writes were atomic) is no
        # result: the node runs again and its new manifest replaces the torn one.
        return None


def leaf_context(
    run: RunHandle,
    *,
    workflow_run_id: str | None = None,
    root_workflow_run_id: str | None = None,
    log: Callable[[str], None] | None = None,
) -> LeafContext:
    from scythe.settings import scythe_settings

    settings = scythe_settings()
    return LeafContext(
        store=run.store,
        layout=run.layout,
        cache_dir=Path(settings.CACHE_DIR),
        workflow_run_id=workflow_run_id,
        root_workflow_run_id=root_workflow_run_id,
        log=log,
        max_frame_rows=settings.MAX_FRAME_ROWS,
        max_frame_bytes=settings.MAX_FRAME_BYTES,
    )


def run_terminal_node(
    inp: ScatterGatherInput,
    *,
    crashed: Mapping[int, tuple[int, str]] | None = None,
    progress: LeafProgress | None = None,
    workflow_run_id: str | None = None,
    root_workflow_run_id: str | None = None,
) -> ScatterGatherResult:
    """Run every leaf of a terminal node in this process and stage its tables.

    ``crashed`` maps a spec's ``sort_index`` to ``(attempts, message)`` for
    specs whose worker died under them too often: they become failure rows
    without being run again. ``progress`` hears of every leaf (see
    :class:`LeafProgress`).
    """
    run = handle_for(inp)
    name = inp.node.name
    done = stored_result(run, name)
    if done is not None:
        return done
    ctx = leaf_context(
        run, workflow_run_id=workflow_run_id, root_workflow_run_id=root_workflow_run_id
    )
    crashed = crashed or {}
    batch = open_batch(run, name)
    started = progress.started if progress is not None else None
    finished = progress.finished if progress is not None else None
    runner = LeafRunner(run.experiment, run.schema, ctx, before_attempt=started)
    chunker = _Chunker(run, name, batch.index)
    for spec in batch.specs():
        if crashed and spec.sort_index in crashed:
            attempts, message = crashed[spec.sort_index]
            chunker.add(crashed_leaf(spec, ctx, message=message, attempts=attempts))
            continue
        result = runner.run(spec)
        if finished is not None:
            finished(result.sort_index, result.failure is None)
        chunker.add(result)
    if progress is not None:
        progress.staging()
    return chunker.finish()


class _Chunker:
    """A terminal node's leaf results, staged in chunks so a node's frames fit in memory.

    Past ``SCYTHE_NODE_STAGE_BYTES`` of dataframe outputs, the results held so
    far are validated and staged (one more data file per table); the node
    manifest, written at the end, names every chunk's files.
    """

    def __init__(self, run: RunHandle, name: str, index: pl.DataFrame) -> None:
        from scythe.settings import scythe_settings

        self.run, self.name, self.index = run, name, index
        self.limit = scythe_settings().NODE_STAGE_BYTES
        self.results: list[LeafResult] = []
        self.size = 0
        self.start = 0  # row of ``index`` where the held results begin
        self.chunks: list[_Chunk] = []

    def add(self, result: LeafResult) -> None:
        self.results.append(result)
        if not (result.frames or result.extra_frames):
            return  # scalar outputs only: nothing that fills memory
        for frame in result.frames.values():
            self.size += frame.estimated_size()
        for frame in result.extra_frames.values():
            self.size += frame.estimated_size()
        if self.size >= self.limit:
            self._stage()

    def _stage(self) -> None:
        rows = self.index.slice(self.start, len(self.results))
        self.chunks.append(_stage_chunk(self.run, self.name, self.results, rows))
        self.start += len(self.results)
        self.results, self.size = [], 0

    def finish(self) -> ScatterGatherResult:
        if self.results or not self.chunks:
            self._stage()
        return _write_node_manifest(self.run, self.name, self.chunks)


_RUN_IDS = ("workflow_run_id", "root_workflow_run_id")


def _leaf_index(results: list[LeafResult], index: pl.DataFrame) -> pl.DataFrame:
    """The index columns of ``results``: the batch's ``index`` rows plus each leaf's run ids.

    ``results`` must be in the batch's order (one per row of ``index``).
    """
    order = [r.sort_index for r in results]
    if order != index.get_column("sort_index").to_list():
        raise EngineError(
            f"{len(results)} leaf result(s) do not match the {index.height} spec(s) of their batch"
        )
    return index.with_columns(
        pl.Series(name, [getattr(r, name) for r in results], dtype=pl.String) for name in _RUN_IDS
    )


def _table_frame(
    rows: pl.DataFrame, parts: list[dict[str, Any]], table: tables.TableSchema
) -> tuple[pl.DataFrame, dict[int, str]]:
    """One built-in table's frame: index ``rows`` beside the values in ``parts``, column-wise.

    If a value does not fit its column, rows are tried one by one to set the
    culprits aside.
    """
    if not table.values:
        return rows.select(table.names), {}
    try:
        values = pl.DataFrame(
            {name: [p[name] for p in parts] for name in table.value_names},
            schema={c.name: c.dtype for c in table.values},
            strict=True,
        )
        return pl.concat([rows, values], how="horizontal").select(table.names), {}
    except Exception:
        return _frame_of_rows(rows.to_dicts(), parts, table)


def _frame_of_rows(
    index_rows: list[dict[str, Any]], parts: list[dict[str, Any]], table: tables.TableSchema
) -> tuple[pl.DataFrame, dict[int, str]]:
    """A table's frame from row dicts; rows whose values do not fit its types are set aside."""
    good, bad = [], {}
    for index, part in zip(index_rows, parts, strict=True):
        row = {**index, **part}
        try:
            tables.frame_from_rows([row], table)
            good.append(row)
        except Exception as exc:
            bad[int(row["sort_index"])] = f"output does not fit table {table.name!r}: {exc}"
    return tables.frame_from_rows(good, table), bad


def _validated_frames(
    run: RunHandle, results: list[LeafResult], index: pl.DataFrame
) -> dict[str, pl.DataFrame]:
    """Frames per table; specs whose outputs break the schema move to ``failures``.

    Index columns were checked at allocation and are copied from the batch, so
    nodes check the outputs (and that ``sort_index`` is unique); ``results()``
    checks every column again when it reads the tables.
    """
    schema = run.schema
    ok = [r for r in results if r.failure is None]
    failed = [r for r in results if r.failure is not None]
    mask = pl.Series([r.failure is None for r in results], dtype=pl.Boolean)
    ok_index, failed_index = index.filter(mask), index.filter(~mask)
    frames: dict[str, pl.DataFrame] = {}
    invalid: dict[int, str] = {}
    for name, rows, parts in (
        (SCALARS, ok_index, [r.scalars or {} for r in ok]),
        (FILE_REFS, ok_index, [r.file_refs or {} for r in ok]),
        (FAILURES, failed_index, [r.failure or {} for r in failed]),
    ):
        frames[name], bad = _table_frame(rows, parts, schema.table(name))
        for s, message in bad.items():
            invalid.setdefault(s, message)
    for name, table in schema.dataframes.items():
        frames[name] = _frame_table(ok_index, [r.frames.get(name) for r in ok], table)
    undeclared, bad = _undeclared_frames(run, ok)
    frames.update(undeclared)
    for s, message in bad.items():
        invalid.setdefault(s, message)
    # A batch lists its specs by rising sort_index, and the tables built here keep that
    # order (a frame's rows by sort_subindex): repeated keys would be neighbours.
    ordered = _rising(index.get_column("sort_index"))
    for name, table in {**schema.result_tables, **run_tables(run, undeclared)}.items():
        if name == FAILURES or (name != SCALARS and not table.values):
            continue  # an index-only table holds the same index values as scalars
        _, bad = tables.split_invalid(
            frames[name],
            table,
            outputs_only=True,
            sorted_by_keys=ordered and name not in undeclared,
        )
        for s, message in bad.items():
            invalid.setdefault(s, message)
    return _move_invalid(frames, invalid, index, schema.failures) if invalid else frames


def _rising(values: pl.Series) -> bool:
    """Whether ``values`` (no nulls) rise strictly from row to row: sorted, none repeated."""
    return values.null_count() == 0 and values.is_sorted() and values.n_unique() == values.len()


def _frame_table(
    index: pl.DataFrame, parts: list[pl.DataFrame | None], table: tables.TableSchema
) -> pl.DataFrame:
    """A frame output's table for a batch: each spec's value rows after its index values.

    ``parts[i]`` is the frame of the spec in row ``i`` of ``index`` (its value
    columns only, from the leaf); the index columns and ``sort_subindex`` are
    added here for the whole batch at once.
    """
    positions, heights, frames = [], [], []
    for i, frame in enumerate(parts):
        if frame is not None and (height := frame.height):
            positions.append(i)
            heights.append(height)
            frames.append(frame)
    if not frames:
        return table.empty_frame()
    counts = pl.Series(heights, dtype=pl.Int64)
    rows = pl.select(  # per value row: its spec's row of ``index``, and its row in the frame
        pl.lit(pl.Series(positions, dtype=pl.Int64)).repeat_by(counts).explode().alias("row"),
        pl.int_ranges(0, counts, dtype=pl.Int64).explode().alias(SORT_SUBINDEX),
    )
    keys = index.select(c.name for c in table.index).gather(rows.get_column("row"))
    # one chunk: the checks, statistics and the Parquet writer that follow each walk
    # every chunk, and there would be one per spec
    values = pl.concat(frames, how="vertical", rechunk=True)
    return pl.concat([keys, rows.drop("row"), values], how="horizontal").select(table.names)


def _move_invalid(
    frames: dict[str, pl.DataFrame],
    invalid: dict[int, str],
    index: pl.DataFrame,
    failures: tables.TableSchema,
) -> dict[str, pl.DataFrame]:
    """Every row of the ``invalid`` specs out of every table, and one failures row each in."""
    keep = ~pl.col("sort_index").is_in(list(invalid))
    frames = {name: f.filter(keep) for name, f in frames.items()}
    messages = pl.DataFrame(
        {"sort_index": list(invalid), "message": list(invalid.values())},
        schema={"sort_index": pl.Int64, "message": pl.String},
    )
    extra = index.join(messages, on="sort_index", how="inner").with_columns(
        error_type=pl.lit("OutputValidationError"),
        traceback=pl.lit(None, dtype=pl.String),
        attempts=pl.lit(1, dtype=pl.Int64),
    )
    frames[FAILURES] = pl.concat([frames[FAILURES], tables.conform(extra, failures)]).sort(
        "sort_index"
    )
    return frames


# --------------------------------------------------------------------------- undeclared frames


def inferred_table(run: RunHandle, name: str, sample: pl.DataFrame | None = None) -> TableSchema:
    """The schema of the undeclared frame ``name``: inferred from the first frame any node
    stored it for, once per run (put-if-absent), then the same for every node."""
    key = run.layout.inferred_schema(name)
    if sample is not None and not run.store.exists(key):
        taken = {*run.schema.index_names, SORT_SUBINDEX}
        values = tuple(
            Column(c, dtype, nullable=True) for c, dtype in sample.schema.items() if c not in taken
        )
        table = TableSchema(
            name,
            run.schema.index,
            values,
            multi_row=True,
            description="Inferred from the first frame stored under this name",
        )
        run.store.put_if_absent(key, dump_yaml(table_to_dict(table)))
    return table_from_dict(load_yaml(run.store.get_bytes(key)))


def run_tables(run: RunHandle, names: Iterable[str]) -> dict[str, TableSchema]:
    """The inferred tables among ``names`` (the declared tables are in ``run.schema``)."""
    return {n: inferred_table(run, n) for n in names if n not in run.schema.result_tables}


def _misfit(frame: pl.DataFrame, table: TableSchema) -> str | None:
    """Why ``frame`` does not have exactly the table's value columns and types, or None."""
    taken = {*table.index_names}
    columns = [c for c in frame.columns if c not in taken]
    if sorted(columns) != sorted(table.value_names):
        return f"columns {columns}, expected {table.value_names}"
    for col in table.values:
        got = frame.schema[col.name]
        if got != col.dtype and got != pl.Null:  # never cast a value into another type
            return f"column {col.name!r} is {got}, expected {col.dtype}"
    return None


def _undeclared_frames(
    run: RunHandle, ok: list[LeafResult]
) -> tuple[dict[str, pl.DataFrame], dict[int, str]]:
    """Undeclared frames by name, each checked against its inferred schema; and the misfits."""
    frames: dict[str, pl.DataFrame] = {}
    invalid: dict[int, str] = {}
    for name in dict.fromkeys(n for r in ok for n in r.extra_frames):
        parts = [(r.sort_index, r.extra_frames[name]) for r in ok if name in r.extra_frames]
        table = inferred_table(run, name, parts[0][1])
        fitting = []
        for sort_index, frame in parts:
            problem = _misfit(frame, table)
            if problem is None:
                fitting.append(tables.conform(frame, table))
            else:
                invalid[sort_index] = (
                    f"dataframes[{name!r}] does not fit the schema inferred from the run's first "
                    f"frame of that name: {problem}"
                )
        frames[name] = pl.concat(fitting, how="vertical") if fitting else table.empty_frame()
    return frames, invalid


def stage_node(
    run: RunHandle, name: str, results: list[LeafResult], index: pl.DataFrame
) -> ScatterGatherResult:
    """Validate a terminal node's leaf results, stage one file per table, write its manifest.

    ``index`` holds the index columns of the node's batch, one row per result.
    """
    return _write_node_manifest(run, name, [_stage_chunk(run, name, results, index)])


@dataclass
class _Chunk:
    """What one chunk of a terminal node staged: files per table, and its counts."""

    staged: dict[str, list[dict[str, Any]]]
    specs: int
    failed: int


def _stage_chunk(
    run: RunHandle, name: str, results: list[LeafResult], index: pl.DataFrame
) -> _Chunk:
    """Validate leaf results (``index``: their batch rows) and stage one file per table."""
    index = _leaf_index(results, index)
    frames = _validated_frames(run, results, index)
    staged: dict[str, list[dict[str, Any]]] = {}
    for table_name, table in {**run.schema.result_tables, **run_tables(run, frames)}.items():
        staged_file = tables.stage_frame(
            run.store, run.layout.table(table_name), table, frames[table_name], name=name
        )
        staged[table_name] = [staged_file.model_dump()] if staged_file else []
    return _Chunk(staged, len(results), frames[FAILURES].height)


def _write_node_manifest(run: RunHandle, name: str, chunks: list[_Chunk]) -> ScatterGatherResult:
    """Write the node manifest naming every chunk's files, unless another attempt did first."""
    staged: dict[str, list[dict[str, Any]]] = {}
    for chunk in chunks:
        for table_name, files in chunk.staged.items():
            staged.setdefault(table_name, []).extend(files)
    specs = sum(c.specs for c in chunks)
    failed = sum(c.failed for c in chunks)
    result = ScatterGatherResult(
        node=name,
        specs=specs,
        done=specs - failed,
        failed=failed,
        manifest_key=run.layout.node_manifest(name),
    )
    body = {"result": result.model_dump(), "tables": staged}
    if not run.store.put_if_absent(result.manifest_key, json.dumps(body).encode()):
        # Another attempt of this node finished first: its files are the node's, ours are not.
        winner = stored_result(run, name)
        if winner is not None:
            return winner
        run.store.put_bytes(result.manifest_key, json.dumps(body).encode())  # it was torn
    return result


# --------------------------------------------------------------------------- fan nodes and root


def gather_node(
    inp: ScatterGatherInput, children: list[ScatterGatherResult]
) -> ScatterGatherResult:
    """Gather a fan node's children: sum their counts, keep their manifest keys."""
    run = handle_for(inp)
    name = inp.node.name
    result = ScatterGatherResult(
        node=name,
        specs=sum(c.specs for c in children),
        done=sum(c.done for c in children),
        failed=sum(c.failed for c in children),
        manifest_key=run.layout.node_manifest(name),
    )
    body = {"result": result.model_dump(), "children": [c.manifest_key for c in children]}
    run.store.put_bytes(result.manifest_key, json.dumps(body).encode())
    return result


def collect_staged(store: Store, *manifest_keys: str) -> dict[str, list[StagedFile]]:
    """Every staged file under these nodes, per table, walking node manifests down the tree."""
    out: dict[str, list[StagedFile]] = {}
    stack = list(reversed(manifest_keys))
    while stack:
        body = json.loads(store.get_bytes(stack.pop()))
        stack.extend(reversed(body.get("children", [])))
        for table_name, files in body.get("tables", {}).items():
            out.setdefault(table_name, []).extend(StagedFile.model_validate(f) for f in files)
    return out


def _sort_indices(run: RunHandle, table: str) -> pl.Series:
    return tables.read_column(run.store, run.layout.table(table), "sort_index", pl.Int64())


def commit_run(run: RunHandle, root: ScatterGatherResult) -> None:
    """Commit every table's staged files once, under the root's app-transaction id."""
    keys = [root.manifest_key]
    reused = run.layout.node_manifest(REUSED_NODE)
    if not run.layout.round and run.store.exists(reused):  # rows copied from earlier runs
        keys.append(reused)
    commit_staged_files(run, collect_staged(run.store, *keys))


def root_transaction(run_id: str, round: int = 0) -> str:
    """The app-transaction id the root commits a run (or its retry ``round``) under."""
    return tables.app_id(run_id, f"{ROOT_COMMITTER}:retry-{round}" if round else ROOT_COMMITTER)


def commit_staged_files(run: RunHandle, staged: dict[str, list[StagedFile]]) -> None:
    """Commit these staged files, per table, under the root's app-transaction id (once each).

    In a retry round the ``failures`` table is replaced, last: every failed
    spec ran again, and its new failures row (if it failed again) is in this
    round's files. Earlier table versions keep the earlier rows.
    """
    retry = run.layout.round
    transaction = root_transaction(run.layout.run_id, retry)
    inferred = run_tables(run, staged)
    if inferred:
        record_inferred_tables(run, inferred)
    everything = {**run.schema.result_tables, **inferred}
    failures = everything.pop(FAILURES)

    def commit(table_name: str, table: TableSchema) -> None:
        tables.commit_staged(
            run.store,
            run.layout.table(table_name),
            table,
            staged.get(table_name, []),
            transaction=transaction,
            replace=bool(retry) and table_name == FAILURES,
        )

    # The other tables are independent commits (on S3 each waits on the network); the
    # failures table is committed after all of them have been.
    _on_threads([functools.partial(commit, n, t) for n, t in everything.items()])
    commit(FAILURES, failures)


def _on_threads(jobs: list[Callable[[], T]]) -> list[T]:
    """Run ``jobs`` on a few threads; their results in order (the first error is raised)."""
    if len(jobs) <= 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=min(len(jobs), ROOT_THREADS)) as pool:
        futures = [pool.submit(job) for job in jobs]
        return [future.result() for future in futures]


def record_inferred_tables(run: RunHandle, inferred: dict[str, TableSchema]) -> None:
    """Create the inferred tables and add them to the run's stored schema (the root alone does)."""
    for name, table in inferred.items():
        tables.create_table(run.store, run.layout.table(name), table)
    stored = load_yaml(run.store.get_bytes(run.layout.table_schemas))
    if "format" not in stored:  # a run stored in the first format: the tables at the top level
        stored = {"format": 2, "tables": stored}
    missing = {n: t for n, t in inferred.items() if n not in stored["tables"]}
    if missing:
        stored["tables"].update(
            {n: {**table_to_dict(t), "inferred": True} for n, t in missing.items()}
        )
        run.store.put_bytes(run.layout.table_schemas, dump_yaml(stored))


def check_completeness(run: RunHandle) -> RunSummary:
    """Whether every spec ended as exactly one row of ``scalars`` or ``failures``."""
    run_id = run.layout.run_id
    expected, done, failed = _on_threads(
        [functools.partial(_sort_indices, run, name) for name in (SPECS, SCALARS, FAILURES)]
    )
    missing, duplicated = _missing_and_duplicated(expected, pl.concat([done, failed]))
    if missing or duplicated:
        status = "incomplete"
        message = (
            f"run {run_id} is INCOMPLETE: {len(missing)} spec(s) missing "
            f"(first: {missing[:10]}), {duplicated} duplicated; resume it to finish"
        )
    elif failed.len():
        status = "partial"
        message = f"run {run_id}: {len(done)} done, {len(failed)} failed of {len(expected)}"
    else:
        status = "complete"
        message = f"run {run_id}: all {len(expected)} specs done"
    return RunSummary(run_id, status, len(expected), len(done), len(failed), len(missing), message)


def _missing_and_duplicated(expected: pl.Series, outcome: pl.Series) -> tuple[list[int], int]:
    """The expected sort indices (unique) that no outcome row has, and how many rows repeat one."""
    if outcome.len() == expected.len() and outcome.sort().equals(
        expected.sort(), check_names=False
    ):
        return [], 0  # one row each: the usual case, without a join
    missing = (
        expected.alias("sort_index")
        .to_frame()
        .join(outcome.alias("sort_index").to_frame(), on="sort_index", how="anti")
        .get_column("sort_index")
        .sort()
        .to_list()
    )
    return missing, outcome.len() - outcome.n_unique()


def finalize_run(inp: ScatterGatherInput, root: ScatterGatherResult) -> RunSummary:
    """Commit every table once, check completeness, record the outcome in ``manifest.yml``."""
    run = handle_for(inp)
    commit_run(run, root)
    return _record_outcome(run, apply_failure_policy(run, check_completeness(run)))


def _failure_policy(run: RunHandle) -> tuple[float | None, int | None]:
    """The run's ``max_failure_ratio`` and how many failed specs it tolerates (None: no policy).

    Read from the stored manifest, not the cached one: ``resume`` may change it.
    """
    ratio = read_manifest(run.store, run.layout).max_failure_ratio
    return ratio, None if ratio is None else math.floor(ratio * run.manifest.spec_count)


def failure_limit(run: RunHandle) -> int | None:
    """How many failed specs the run's failure policy tolerates (None: no policy)."""
    return _failure_policy(run)[1]


def apply_failure_policy(run: RunHandle, summary: RunSummary) -> RunSummary:
    """``summary`` marked ``failed`` if more specs failed than the failure policy tolerates."""
    ratio, limit = _failure_policy(run)
    if limit is None or summary.failed <= limit:
        return summary
    not_run = f"; {summary.missing} spec(s) were not run" if summary.missing else ""
    message = (
        f"run {summary.run_id} FAILED: {summary.failed} of {summary.specs} specs failed, more "
        f"than max_failure_ratio={ratio:g} allows ({limit}){not_run}. Fix the cause, then "
        "run.resume(max_failure_ratio=1.0) runs what is left"
    )
    return dataclasses.replace(summary, status="failed", message=message)


def finalize_stopped(inp: ScatterGatherInput, finished: list[ScatterGatherResult]) -> RunSummary:
    """Commit what the finished terminal nodes staged and mark the run ``failed`` (policy stop)."""
    run = handle_for(inp)
    commit_staged_files(run, collect_staged(run.store, *[r.manifest_key for r in finished]))
    return _record_outcome(run, apply_failure_policy(run, check_completeness(run)))


def _record_outcome(run: RunHandle, summary: RunSummary) -> RunSummary:
    update_manifest(
        run.store,
        run.layout,
        status=summary.status,
        done=summary.done,
        failed=summary.failed,
        missing=summary.missing,
        finished_at=datetime.now(UTC),
        message=summary.message,
    )
    return summary
