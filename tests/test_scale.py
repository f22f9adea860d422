"""The bounds of docs/scale.md, each measured on the Hatchet mock tree at two run sizes.

A run of 200 and one of 2000 specs go through the real ``hatchet_sdk`` task
objects (synthetic token, ``mock_run``; children run in process by
``test_hatchet_engine.InProcessChildren``) with the default tree, its
terminal-node cap lowered to 15 specs so the large run needs a deeper tree
(14 terminal nodes, then 144). What a bound says is independent of the number
of specs holds for both: node payloads, commits per table, rows held per node.

``python tests/test_scale.py`` prints the measurements docs/scale.md quotes
(CPU per spec of the three ways to run leaves, payload bytes per spec).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

import pandera.polars as pa
import polars as pl
import pytest
from pandera.typing.polars import DataFrame
from pydantic import Field
from test_hatchet_engine import InProcessChildren, TriggeredRoot, synthetic_token

import scythe.allocation as allocation
import scythe.engines.hatchet as hx
import scythe.nodes as nodes
from scythe import BaseExperiment, ExperimentInputSpec, ExperimentOutputSpec, ExperimentRegistry
from scythe.allocation import default_recursion_map
from scythe.scatter_gather import ScatterGatherResult
from scythe.storage import LocalStore
from scythe.tables import commit_count

SMALL, LARGE = 200, 2000
NODE_CAP = 15  # MAX_TERMINAL_SPECS for these runs (1000 by default)
PAYLOAD_LIMIT = 4 * 2**20  # Hatchet's payload limit, and hatchet-sdk's default gRPC message size


class Point(ExperimentInputSpec):
    """A small spec: the payload of a leaf grows with the spec class, not the run."""

    x: float = Field(..., ge=0)
    zone: Literal["north", "south"] = "north"
    floors: int | None = None


class Trace(pa.DataFrameModel):
    step: int = pa.Field(ge=0)
    value: float


class PointOut(ExperimentOutputSpec):
    y: float
    trace: DataFrame[Trace]


@ExperimentRegistry.Register(name="scale_point", retries=1)
def scale_point(spec: Point) -> PointOut:
    trace = pl.DataFrame({"step": [0, 1], "value": [spec.x, 2 * spec.x]})
    return PointOut(y=2 * spec.x, trace=trace)


def points(n: int) -> list[Point]:
    return [Point(x=float(i), zone="south" if i % 3 else "north") for i in range(n)]


# --------------------------------------------------------------------------- the instrumented tree


@dataclass
class Observed:
    """What one run on the mock tree moved and held, node by node."""

    payloads: dict[tuple[str, str], list[int]] = field(default_factory=lambda: defaultdict(list))
    leaf_inputs_per_node: list[tuple[int, int]] = field(default_factory=list)  # (specs, bytes)
    rows_staged: list[int] = field(default_factory=list)  # leaf results a terminal node held
    gathered: list[list[Any]] = field(default_factory=list)  # what each fan node held
    staged_files: dict[str, int] = field(default_factory=dict)  # per table, at the root
    staged_file_bytes: list[int] = field(default_factory=list)
    root_columns: list[tuple[str, int, pl.DataType]] = field(default_factory=list)
    commits: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class RecordingChildren(InProcessChildren):
    def __init__(self, observed: Observed) -> None:
        super().__init__()
        self.observed = observed

    async def __call__(self, task: Any, items: list[Any]) -> list[Any]:
        if task.name != hx.SCATTER_GATHER_TASK:  # a terminal node triggering its leaves
            self.observed.leaf_inputs_per_node.append(
                (len(items), sum(len(i.input) for i in items))
            )
        outcomes = await super().__call__(task, items)
        for name, kind, size in self.payloads:
            self.observed.payloads[name, kind].append(size)
        self.payloads.clear()
        return outcomes


def instrument(monkeypatch: pytest.MonkeyPatch, observed: Observed) -> None:
    """Record, without changing them, the calls where a node holds rows or commits."""
    stage, gather, collect = hx.stage_node, hx.gather_node, nodes.collect_staged
    sort_indices, commit = nodes._sort_indices, nodes.tables.commit_staged

    def staging(run, name, results, index):
        observed.rows_staged.append(len(results))
        return stage(run, name, results, index)

    def gathering(inp, children):
        observed.gathered.append(list(children))
        return gather(inp, children)

    def collecting(store, *keys):
        staged = collect(store, *keys)
        for table, files in staged.items():
            observed.staged_files[table] = len(files)
            observed.staged_file_bytes += [len(f.model_dump_json()) for f in files]
        return staged

    def reading(run, table):
        column = sort_indices(run, table)
        observed.root_columns.append((table, column.len(), column.dtype))
        return column

    def committing(store, key, table, files, **kwargs):
        observed.commits[table.name] += 1
        return commit(store, key, table, files, **kwargs)

    monkeypatch.setattr(hx, "stage_node", staging)
    monkeypatch.setattr(hx, "gather_node", gathering)
    monkeypatch.setattr(nodes, "collect_staged", collecting)
    monkeypatch.setattr(nodes, "_sort_indices", reading)
    monkeypatch.setattr(nodes.tables, "commit_staged", committing)


def mock_tree(monkeypatch: pytest.MonkeyPatch, observed: Observed) -> None:
    monkeypatch.setenv("HATCHET_CLIENT_TOKEN", synthetic_token())
    monkeypatch.setenv("HATCHET_CLIENT_TLS_STRATEGY", "none")
    monkeypatch.delenv("SCYTHE_HATCHET_EMBEDDED", raising=False)
    hx.reset_hatchet()
    children = RecordingChildren(observed)

    def trigger(root, *, wait_for_result, additional_metadata):
        size = len(hx.scatter_gather_task().input_validator.dump_json(root))
        observed.payloads[hx.SCATTER_GATHER_TASK, "input"].append(size)
        return TriggeredRoot(root, additional_metadata)

    monkeypatch.setattr(hx, "run_children", children)
    monkeypatch.setattr(hx.scatter_gather_task(), "run", trigger)


@dataclass
class Measured:
    n: int
    run: Any
    observed: Observed
    summary: Any


def run_on_mock_tree(n: int, tmp_path, monkeypatch: pytest.MonkeyPatch) -> Measured:
    observed = Observed()
    mock_tree(monkeypatch, observed)
    instrument(monkeypatch, observed)
    monkeypatch.setattr(allocation, "MAX_TERMINAL_SPECS", NODE_CAP)
    store = LocalStore(tmp_path / f"store-{n}")
    experiment = BaseExperiment(runnable=scale_point, storage=store)
    run, ref = experiment.allocate(points(n), engine=hx.HatchetEngine(parallelism=1))
    summary = ref.result(timeout=600)
    hx.reset_hatchet()
    return Measured(n, run, observed, summary)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, Measured]:
    """One small and one large run (module scope: the tests read what they recorded)."""
    out = {}
    for n in (SMALL, LARGE):
        with pytest.MonkeyPatch.context() as monkeypatch:  # each run its own instruments
            out[n] = run_on_mock_tree(n, tmp_path_factory.mktemp(f"scale-{n}"), monkeypatch)
    return out


# --------------------------------------------------------------------------- the bounds


def test_both_runs_finish_with_every_spec_once(runs):
    for n, measured in runs.items():
        assert (measured.summary.status, measured.summary.done) == ("complete", n)
        assert measured.run.results().scalars["sort_index"].to_list() == list(range(n))


def test_the_large_run_needs_a_deeper_tree(runs):
    small, large = (runs[n].run.manifest.recursion_map for n in (SMALL, LARGE))
    assert (small.max_depth, large.max_depth) == (1, 2)
    assert len(runs[LARGE].observed.rows_staged) > 5 * len(runs[SMALL].observed.rows_staged)


def test_node_payloads_do_not_grow_with_the_number_of_specs(runs):
    """Every payload is a reference; 10x the specs adds a digit and a path level, no more."""
    small, large = runs[SMALL].observed.payloads, runs[LARGE].observed.payloads
    assert (
        set(small)
        == set(large)
        == {
            (hx.SCATTER_GATHER_TASK, "input"),
            (hx.SCATTER_GATHER_TASK, "output"),
            ("scale_point", "input"),
            ("scale_point", "output"),
        }
    )
    for key in small:
        assert max(large[key]) < 1024, key
        # one more digit in each count, and one more path offset (",10") at most
        assert max(large[key]) - max(small[key]) <= 8, (key, max(small[key]), max(large[key]))


def test_a_terminal_nodes_trigger_is_linear_in_its_own_specs(runs):
    """Leaf inputs cost a constant number of bytes per spec: the node's batch, never the run."""
    per_spec = {
        n: [size / specs for specs, size in runs[n].observed.leaf_inputs_per_node] for n in runs
    }
    for n, ratios in per_spec.items():
        assert max(ratios) - min(ratios) < 8, n  # digits of sort_index and node names
    assert abs(max(per_spec[LARGE]) - max(per_spec[SMALL])) < 8
    # hatchet-sdk splits a bulk trigger at 1000 runs or its 4 MiB message size
    assert 1000 * max(per_spec[LARGE]) < PAYLOAD_LIMIT


def test_commits_per_table_do_not_grow_with_the_number_of_specs(runs):
    for n, measured in runs.items():
        tables = [t for t in measured.run.table_schemas() if t != "specs"]
        assert set(tables) == {"scalars", "failures", "result_file_refs", "trace"}
        assert dict(measured.observed.commits) == dict.fromkeys(tables, 1), n  # one root commit
        store, layout = measured.run.store, measured.run.layout
        assert {t: commit_count(store, layout.table(t)) for t in tables} == dict.fromkeys(
            tables, 2
        )  # the create commit and the root's


def test_no_terminal_node_holds_more_than_its_capped_batch(runs):
    for n, measured in runs.items():
        held = measured.observed.rows_staged
        assert sum(held) == n
        assert max(held) <= NODE_CAP, n
        assert max(held) - min(held) <= 1  # grid-stride: siblings differ by one spec at most


def test_fan_nodes_hold_only_their_childrens_references(runs):
    for measured in runs.values():
        factor = measured.run.manifest.recursion_map.factor
        for children in measured.observed.gathered:
            assert 0 < len(children) <= factor
            assert all(isinstance(c, ScatterGatherResult) for c in children)
            assert all(len(c.model_dump_json()) < 256 for c in children)


def test_the_root_collects_one_staged_file_per_terminal_node_and_table(runs):
    for n, measured in runs.items():
        terminal = len(measured.observed.rows_staged)
        files = measured.observed.staged_files
        # no spec failed: the failures table is the one a node stages no file for
        expected = dict.fromkeys(("scalars", "trace", "result_file_refs"), terminal)
        assert files == {**expected, "failures": 0}, n
        assert max(measured.observed.staged_file_bytes) < 4096, n


def test_the_root_reads_three_sort_index_columns_and_no_rows(runs):
    """The completeness check is the one place a node holds O(n): 8 bytes per spec per column."""
    for n, measured in runs.items():
        columns = measured.observed.root_columns
        assert sorted(t for t, _, _ in columns) == ["failures", "scalars", "specs"]
        assert {(t, length) for t, length, _ in columns if t != "failures"} == {
            ("specs", n),
            ("scalars", n),
        }
        assert all(dtype == pl.Int64 for _, _, dtype in columns)


def test_ten_million_specs_get_a_two_level_tree_of_thousand_spec_nodes():
    """The plan docs/scale.md starts from (the planner is pure: no mock needed)."""
    tree = default_recursion_map(10**7, 64, max_node=allocation.MAX_TERMINAL_SPECS)
    assert (tree.factor, tree.max_depth) == (100, 2)
    nodes_total = sum(tree.factor**level for level in range(tree.max_depth + 1))
    assert nodes_total == 10_101
    assert math.ceil(10**7 / tree.factor**tree.max_depth) == allocation.MAX_TERMINAL_SPECS
    scalar_only = default_recursion_map(
        10**7, 64, max_node=allocation.MAX_TERMINAL_SPECS_SCALAR_ONLY
    )
    assert (scalar_only.factor, scalar_only.max_depth) == (32, 2)


# --------------------------------------------------------------------------- measurements


async def _in_process_terminal(inp, ctx, metadata):
    """A terminal node that runs its leaves in its own task (what the local engine does)."""
    return await asyncio.to_thread(
        nodes.run_terminal_node,
        inp,
        workflow_run_id=ctx.workflow_run_id,
        root_workflow_run_id=metadata[hx.ROOT_RUN_KEY],
    )


class BatchedChildren(InProcessChildren):
    """Leaves delivered in batches, as a ``BatchTaskConfig`` task would get them.

    Each member is still its own task run with its own input and output (the
    engine's count is unchanged); one handler call runs a whole batch.
    """

    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self.batch_size = batch_size

    async def __call__(self, task: Any, items: list[Any]) -> list[Any]:
        if task.name == hx.SCATTER_GATHER_TASK:
            return await super().__call__(task, items)
        batches = [items[i : i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        outcomes = await asyncio.gather(*(asyncio.to_thread(self.batch, task, b) for b in batches))
        return [o for batch in outcomes for o in batch]

    def batch(self, task: Any, items: list[Any]) -> list[Any]:
        from types import SimpleNamespace

        out = []
        for item in items:
            inp = task.input_validator.validate_json(item.input)
            ctx = SimpleNamespace(
                additional_metadata=item.options.additional_metadata,
                workflow_run_id=f"member-{inp.spec.sort_index}",
                log=lambda *_: None,
                attempt_number=1,
                max_attempts=1,
            )
            output = hx.run_leaf_task(inp, ctx)
            out.append(task.output_validator.validate_json(task.output_validator.dump_json(output)))
        return out


def measure(n: int = 4000, repeats: int = 3) -> None:  # pragma: no cover - run by hand
    """CPU per spec of the three ways to run leaves on the mock tree, and payload bytes."""
    import tempfile
    import time
    from pathlib import Path

    def once(mode: str) -> tuple[float, Observed]:
        with pytest.MonkeyPatch.context() as monkeypatch:
            observed = Observed()
            mock_tree(monkeypatch, observed)
            instrument(monkeypatch, observed)
            if mode == "in-process":
                monkeypatch.setattr(hx, "_run_terminal", _in_process_terminal)
            if mode == "batched":
                monkeypatch.setattr(hx, "run_children", BatchedChildren(100))
            store = LocalStore(Path(tempfile.mkdtemp()) / "store")
            experiment = BaseExperiment(runnable=scale_point, storage=store)
            specs = points(n)
            started = time.process_time()
            _, ref = experiment.allocate(specs, engine=hx.HatchetEngine(parallelism=1))
            summary = ref.result(timeout=600)
            spent = time.process_time() - started
            assert (summary.status, summary.done) == ("complete", n), summary
            hx.reset_hatchet()
            return spent, observed

    recorded = {}
    for mode in ("task per spec", "batched", "in-process"):
        best, recorded[mode] = min((once(mode) for _ in range(repeats)), key=lambda r: r[0])
        print(f"{mode:14s} {1000 * best / n:6.2f} ms CPU per spec ({n} specs, best of {repeats})")
    observed = recorded["task per spec"]
    sizes = {f"{k[0]} {k[1]}": max(v) for k, v in observed.payloads.items()}
    sizes["leaf inputs per spec of a terminal node's trigger"] = max(
        round(size / specs) for specs, size in observed.leaf_inputs_per_node
    )
    sizes["staged file entry at the root"] = max(observed.staged_file_bytes)
    print(json.dumps(sizes, indent=1))


ROOT_CHECK = """
import os, resource, sys, tempfile
import deltalake, polars as pl
import scythe.engines.hatchet, scythe.nodes, scythe.worker  # what a fan worker imports
from scythe import tables
from scythe.storage import LocalStore
n, root = int(sys.argv[1]), tempfile.mkdtemp()
if os.fork() == 0:  # write the three tables in a child, so this process's peak is the check's
    for name in ("specs", "scalars", "failures"):
        rows = pl.Series("sort_index", range(0 if name == "failures" else n), dtype=pl.Int64)
        deltalake.write_deltalake(os.path.join(root, name), pl.DataFrame([rows]).to_arrow())
    os._exit(0)
os.wait()
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
base, store = peak(), LocalStore(root)
expected, done, failed = (
    tables.read_column(store, t, "sort_index", pl.Int64()) for t in ("specs", "scalars", "failures")
)
outcome = pl.concat([done, failed])  # as scythe.nodes.check_completeness
expected.to_frame().join(outcome.to_frame(), on="sort_index", how="anti")["sort_index"].sort()
outcome.len() - outcome.n_unique()
print(f"root completeness check, {n} specs: imports {base:.0f} MiB, +{peak() - base:.0f} MiB")
"""

ALLOCATION = """
import resource, sys
from examples.building_energy.experiment import sample_specs, simulate_energy
from scythe.allocation import plan_allocation
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
n, base = int(sys.argv[1]), peak()
specs = sample_specs(n, seed=1)
objects = peak()
plan_allocation(simulate_energy, specs, parallelism=64)
print(f"allocating {n} building specs: objects +{objects - base:.0f} MiB, "
      f"planning peak +{peak() - base:.0f} MiB")
"""


def measure_memory() -> None:  # pragma: no cover - run by hand
    """Peak memory of the root's completeness check and of planning an allocation."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    for code, sizes in ((ROOT_CHECK, (10**6, 10**7)), (ALLOCATION, (10**5, 3 * 10**5))):
        for n in sizes:
            env = {**os.environ, "PYTHONPATH": str(repo)}
            subprocess.run([sys.executable, "-c", code, str(n)], check=True, env=env, cwd=repo)


if __name__ == "__main__":  # pragma: no cover
    measure()
    measure_memory()
