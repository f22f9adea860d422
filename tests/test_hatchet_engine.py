"""The Hatchet engine, run through the real ``hatchet_sdk`` task objects without an engine.

No Hatchet server can run here: the client is built from a synthetic JWT-shaped
token, tasks run with ``mock_run`` / ``aio_mock_run``, and the one call that
would reach the server (``run_children``: spawn children and wait) is replaced
by :class:`InProcessChildren`, which runs each child through its real task
object, retries it as Hatchet would, and sends inputs and outputs through the
tasks' own JSON validators (measuring them on the way).
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from scythe_test_experiments import Probe, probe

import scythe.engines.hatchet as hx
from scythe import (
    BaseExperiment,
    ExperimentInputSpec,
    ExperimentOutputSpec,
    ExperimentRegistry,
    RecursionMap,
)
from scythe.engines import RunRef, get_engine
from scythe.engines.local import LocalEngine
from scythe.errors import EngineError, HatchetConfigError, LeafAttemptError, RegistryError
from scythe.leaf import LeafResult
from scythe.nodes import ScatterGatherInput, ScatterGatherResult, handle_for, read_batch
from scythe.scatter_gather import iter_terminal_nodes, plan_children
from scythe.storage import LocalStore, Store
from scythe.tables import commit_count

RMAP = RecursionMap(factor=3, max_depth=2)
FAILING = {3: "raise", 11: "bad_output", 17: "wrong_type"}
ENGINE_COLUMNS = ("experiment_id", "workflow_run_id", "root_workflow_run_id")
PAYLOAD_LIMIT = 4096


def synthetic_token(server_url: str = "http://127.0.0.1:8888", grpc: str = "127.0.0.1:7077") -> str:
    """A JWT-shaped Hatchet token: base64url header.claims.signature, never checked client-side."""

    def part(data: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {
        "sub": "707d0855-80ab-4e1f-a156-f1c4546cbf52",
        "server_url": server_url,
        "grpc_broadcast_address": grpc,
    }
    return ".".join([part({"alg": "ES256", "typ": "JWT"}), part(claims), "c2lnbmF0dXJl"])


@pytest.fixture
def hatchet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A synthetic Hatchet connection, and no client or task left over from another test."""
    monkeypatch.setenv("HATCHET_CLIENT_TOKEN", synthetic_token())
    monkeypatch.setenv("HATCHET_CLIENT_TLS_STRATEGY", "none")
    monkeypatch.delenv("SCYTHE_HATCHET_EMBEDDED", raising=False)
    hx.reset_hatchet()
    yield
    hx.reset_hatchet()


class InProcessChildren:
    """Stands in for Hatchet's spawn-and-wait: each child runs here, through its real task."""

    def __init__(
        self,
        *,
        dying_leaves: frozenset[int] = frozenset(),
        failing_nodes: frozenset[str] = frozenset(),
        repeat_terminal: bool = False,
    ) -> None:
        self.dying_leaves = dying_leaves
        self.failing_nodes = failing_nodes
        self.repeat_terminal = (
            repeat_terminal  # deliver each terminal node twice, losing the first's manifest
        )
        self.payloads: list[tuple[str, str, int]] = []
        self.triggered: list[tuple[ScatterGatherInput, dict[str, str]]] = []

    async def __call__(self, task: Any, items: list[Any]) -> list[Any]:
        return list(
            await asyncio.gather(*(self.run(task, item) for item in items))
        )  # siblings run at once

    async def run(self, task: Any, item: Any) -> Any:
        self.payloads.append((task.name, "input", len(item.input)))
        inp = task.input_validator.validate_json(item.input)
        if isinstance(inp, hx.LeafInput) and inp.spec.sort_index in self.dying_leaves:
            return TimeoutError(f"task timed out after {task.tasks[0].execution_timeout}")
        if isinstance(inp, ScatterGatherInput) and inp.node.name in self.failing_nodes:
            return RuntimeError(f"node {inp.node.name} lost its worker")
        if self.repeat_terminal and isinstance(inp, ScatterGatherInput) and is_terminal(inp):
            await self.attempts(task, inp, item)
            run = handle_for(inp)
            forget(run.store, run.layout.node_manifest(inp.node.name))
        return await self.attempts(task, inp, item)

    async def attempts(self, task: Any, inp: Any, item: Any) -> Any:
        error: BaseException | None = None
        for retry_count in range(task.tasks[0].retries + 1):  # Hatchet's retries
            try:
                output = await self.once(task, inp, item.options.additional_metadata, retry_count)
            except Exception as exc:  # a failed attempt, as Hatchet sees it
                error = exc
                continue
            data = task.output_validator.dump_json(output)
            self.payloads.append((task.name, "output", len(data)))
            return task.output_validator.validate_json(data)
        return error

    async def once(self, task: Any, inp: Any, metadata: Any, retry_count: int) -> Any:
        if task.is_async_function:
            return await task.aio_mock_run(
                inp, additional_metadata=metadata, retry_count=retry_count
            )
        return await asyncio.to_thread(
            task.mock_run, inp, additional_metadata=metadata, retry_count=retry_count
        )


class TriggeredRoot:
    """What ``Standalone.run(wait_for_result=False)`` returns; ``result()`` runs the tree here."""

    workflow_run_id = "root-workflow-run"

    def __init__(self, root: ScatterGatherInput, metadata: dict[str, str]) -> None:
        self.root = root
        self.metadata = metadata

    def result(self) -> ScatterGatherResult:
        task = hx.scatter_gather_task()
        return asyncio.run(task.aio_mock_run(self.root, additional_metadata=self.metadata))


@pytest.fixture
def children(hatchet_env: None, monkeypatch: pytest.MonkeyPatch) -> InProcessChildren:
    """Run trees in this process: children through ``InProcessChildren``, the root on ``result()``."""
    fake = InProcessChildren()

    def trigger(
        root: ScatterGatherInput, *, wait_for_result: bool, additional_metadata: dict[str, str]
    ):
        assert wait_for_result is False
        fake.triggered.append((root, additional_metadata))
        size = len(hx.scatter_gather_task().input_validator.dump_json(root))
        fake.payloads.append((hx.SCATTER_GATHER_TASK, "input", size))
        return TriggeredRoot(root, additional_metadata)

    monkeypatch.setattr(hx, "run_children", fake)
    monkeypatch.setattr(hx.scatter_gather_task(), "run", trigger)
    return fake


def is_terminal(inp: ScatterGatherInput) -> bool:
    return not plan_children(inp.node, inp.recursion_map)


def forget(store: Store, key: str) -> None:
    """Delete one object, as a worker crash between staging and the node manifest would leave it."""
    if isinstance(store, LocalStore):
        Path(store.uri(key)).unlink()
    else:
        store.delete_prefix(key)


def probe_specs(n: int, data_file: Path | None = None) -> list[Probe]:
    return [
        Probe(
            x=float(i),
            mode=FAILING.get(i, "ok"),
            floors=None if i % 4 else i,
            when=datetime(2026, 1, 1 + i % 28, tzinfo=UTC),
            data_file=data_file if data_file is not None and i % 10 == 0 else None,
        )
        for i in range(n)
    ]


def comparable(frame: pl.DataFrame, run_id: str) -> pl.DataFrame:
    """A results table without what differs by engine and run: run ids and the run's own URIs."""
    frame = frame.drop([c for c in ENGINE_COLUMNS if c in frame.columns])
    strings = [c for c, dtype in frame.schema.items() if dtype == pl.String]
    return frame.with_columns(pl.col(strings).str.replace_all(run_id, "<run>", literal=True))


def table_names(run: Any) -> list[str]:
    return sorted(run.table_schemas())


# --------------------------------------------------------------------------- registration


class Small(ExperimentInputSpec):
    x: float


class Doubled(ExperimentOutputSpec):
    y: float


def test_leaf_task_carries_exactly_the_registered_options(hatchet_env: None) -> None:
    from hatchet_sdk import WorkerLabelComparator
    from hatchet_sdk.labels import DesiredWorkerLabel

    from scythe.worker import ScytheWorkerLabel

    at_least = WorkerLabelComparator.GREATER_THAN_OR_EQUAL

    @ExperimentRegistry.Register(
        name="hatchet_options_probe",
        description="Doubles x.",
        retries=3,
        execution_timeout=timedelta(minutes=7),
        schedule_timeout=timedelta(hours=2),
        desired_worker_labels={
            **ScytheWorkerLabel.HIGH_MEMORY.worker_label,
            "zone": "eu",
            "gpus": DesiredWorkerLabel(value=2, comparator=at_least),
        },
        backoff_factor=2.0,
        backoff_max_seconds=60,
    )
    def doubled(spec: Small) -> Doubled:
        return Doubled(y=2 * spec.x)

    try:
        task = hx.hatchet_task_for(doubled)
        (leaf,) = task.tasks
        labels = {d.key: (d.value, d.required, d.comparator) for d in leaf.desired_worker_labels}
        proto = task.to_proto()

        assert task is hx.hatchet_task_for(doubled)  # built once per process
        assert (task.name, leaf.name, proto.description) == (
            "hatchet_options_probe",
            "hatchet_options_probe",
            "Doubles x.",
        )
        assert (leaf.retries, leaf.execution_timeout, leaf.schedule_timeout) == (
            3,
            timedelta(minutes=7),
            timedelta(hours=2),
        )
        assert (leaf.backoff_factor, leaf.backoff_max_seconds) == (2.0, 60)
        assert labels == {
            "high_memory": ("yes", True, None),
            "zone": ("eu", True, None),
            "gpus": (2, False, at_least),
        }
        assert task.input_validator_type.model_fields["spec"].annotation is Small
        assert issubclass(task.input_validator_type, hx.LeafInput)
        assert task.output_validator_type is hx.LeafOutput
        assert (
            proto.tasks[0].retries,
            proto.tasks[0].timeout,
            proto.tasks[0].schedule_timeout,
        ) == (3, "7m", "2h")
        assert set(proto.tasks[0].worker_labels) == {"high_memory", "zone", "gpus"}
        assert not proto.tasks[0].is_durable and dict(proto.tasks[0].slot_requests) == {
            "default": 1
        }
    finally:
        ExperimentRegistry.unregister("hatchet_options_probe")


def test_leaf_timeouts_default_to_scythe_settings_not_hatchets_one_minute(
    hatchet_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCYTHE_TIMEOUT_EXECUTION", "PT3H")
    (leaf,) = hx.hatchet_task_for(probe).tasks

    assert leaf.execution_timeout == timedelta(hours=3)
    assert leaf.schedule_timeout == timedelta(days=1)
    assert leaf.retries == probe.options.retries == 1


def test_unknown_task_option_is_refused_when_registering(hatchet_env: None) -> None:
    with pytest.raises(RegistryError, match=r"\['flavour'\] are neither Scythe's nor Hatchet task"):

        @ExperimentRegistry.Register(name="hatchet_bad_option", flavour="spicy")
        def bad(spec: Small) -> Doubled:
            return Doubled(y=spec.x)

    assert "hatchet_bad_option" not in ExperimentRegistry.names()


def test_scatter_gather_task_is_durable_and_never_takes_a_leaf_slot(
    hatchet_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCYTHE_HATCHET_FAN_TIMEOUT", "P2D")
    task = hx.scatter_gather_task()
    (node,) = task.to_proto().tasks

    assert (task.name, node.readable_id) == ("scythe_scatter_gather", "scythe_scatter_gather")
    assert node.is_durable and dict(node.slot_requests) == {"durable": 1}
    assert node.timeout == "48h" and node.retries == hx.FAN_RETRIES
    assert task.input_validator_type is ScatterGatherInput
    assert task.output_validator_type is ScatterGatherResult
    assert task.is_async_function


# --------------------------------------------------------------------------- one tree, two engines


def test_tree_on_hatchet_tasks_writes_the_local_engines_tables(
    store: Store, children: InProcessChildren, tmp_path: Path
) -> None:
    n = 50
    data = tmp_path / "input.txt"
    data.write_text("weather")
    specs = probe_specs(n, data_file=data)
    experiment = BaseExperiment(runnable=probe, storage=store)

    hatchet_run, ref = experiment.allocate(specs, recursion_map=RMAP, engine=hx.HatchetEngine())
    assert isinstance(ref, RunRef) and ref.run_id == hatchet_run.run_id
    summary = ref.result(timeout=120)
    local_run, _ = experiment.allocate(
        specs, recursion_map=RMAP, engine=LocalEngine(slots=0, progress=False)
    )

    assert (summary.status, summary.done, summary.failed, summary.missing) == (
        "partial",
        n - 3,
        3,
        0,
    )
    assert hatchet_run.manifest.status == "partial" and hatchet_run.manifest.engine == "hatchet"
    hatchet_results, local_results = hatchet_run.results(), local_run.results()
    assert table_names(hatchet_run) == table_names(local_run)
    for name in table_names(hatchet_run):
        ours = comparable(hatchet_results.table(name), hatchet_run.run_id)
        theirs = comparable(local_results.table(name), local_run.run_id)
        assert ours.schema == theirs.schema, name
        assert ours.equals(theirs), name
    failures = hatchet_results.failures.rows_by_key("sort_index", named=True, unique=True)
    assert failures[3]["error_type"] == "ValueError" and failures[3]["attempts"] == 2
    scalars = hatchet_results.scalars
    assert (
        scalars["root_workflow_run_id"].n_unique(),
        scalars["root_workflow_run_id"].null_count(),
    ) == (1, 0)
    assert scalars["workflow_run_id"].n_unique() == scalars.height  # one leaf task per spec
    ((_, metadata),) = children.triggered
    assert metadata == {
        "experiment_id": hatchet_run.run_id,
        "experiment_name": "probe",
        "level": "0",
        "node": "root",
    }
    assert not store.list_keys(
        f"{hatchet_run.run_id}/scatter-gather/leaves"
    )  # leaf rows cleaned up
    assert_payloads_are_small_references(children)


def assert_payloads_are_small_references(children: InProcessChildren) -> None:
    """Invariant 3: every node and leaf payload is a few hundred bytes, whatever the number of specs."""
    sizes: dict[tuple[str, str], int] = {}
    for task, kind, size in children.payloads:
        sizes[task, kind] = max(size, sizes.get((task, kind), 0))
    root = children.triggered[0][0]
    billion = root.model_copy(update={"n_specs": 10**9})
    deepest = ScatterGatherResult(
        node="9-" * 7 + "9",
        specs=10**9,
        done=10**9 - 10**6,
        failed=10**6,
        manifest_key=f"{root.run_id}/scatter-gather/nodes/{'9-' * 7}9.json",
    )
    fan = hx.scatter_gather_task()

    assert set(sizes) == {
        ("scythe_scatter_gather", "input"),
        ("scythe_scatter_gather", "output"),
        ("probe", "input"),
        ("probe", "output"),
    }
    assert max(sizes.values()) < PAYLOAD_LIMIT, sizes
    # a billion specs changes the root's input by the digits of n_specs, nothing else
    digits = len(str(10**9)) - len(str(root.n_specs))
    assert (
        len(fan.input_validator.dump_json(billion)) - len(fan.input_validator.dump_json(root))
        == digits
    )
    assert len(fan.output_validator.dump_json(deepest)) < 1024


def test_retried_terminal_nodes_and_a_retried_root_add_no_rows(
    local_store: Store, children: InProcessChildren
) -> None:
    children.repeat_terminal = True
    experiment = BaseExperiment(runnable=probe, storage=local_store)
    run, ref = experiment.allocate(probe_specs(24), recursion_map=RMAP, engine=hx.HatchetEngine())
    ref.result(timeout=120)
    results = run.results()
    tables = {
        name: commit_count(local_store, run.layout.table(name))
        for name in table_names(run)
        if name != "specs"
    }

    children.repeat_terminal = False
    root = children.triggered[0][0]
    asyncio.run(hx.scatter_gather_task().aio_mock_run(root))  # Hatchet delivers the root again
    again = run.results()

    outcome = results.scalars["sort_index"].to_list() + results.failures["sort_index"].to_list()
    assert sorted(outcome) == list(range(24))
    assert results.table("rows").height == sum(
        int(i) % 3 + 1 for i in range(24) if i not in FAILING
    )
    assert all(count == 2 for count in tables.values()), tables  # create + one commit
    assert {n: commit_count(local_store, run.layout.table(n)) for n in tables} == tables
    for name in table_names(run):
        assert again.table(name).equals(results.table(name)), name


def test_a_leaf_task_that_dies_becomes_a_failure_row(
    local_store: Store, children: InProcessChildren
) -> None:
    children.dying_leaves = frozenset({5})
    experiment = BaseExperiment(runnable=probe, storage=local_store)
    run, ref = experiment.allocate(probe_specs(20), recursion_map=RMAP, engine=hx.HatchetEngine())
    summary = ref.result(timeout=120)
    failures = run.results().failures.rows_by_key("sort_index", named=True, unique=True)

    assert (summary.done, summary.failed, summary.missing) == (16, 4, 0)
    assert failures[5]["error_type"] == "TimeoutError"
    assert (
        "leaf task failed on Hatchet after 2 attempt(s): task timed out" in failures[5]["message"]
    )
    assert failures[5]["attempts"] == 2


def test_a_failed_child_node_fails_the_run_with_a_resume_hint(
    local_store: Store, children: InProcessChildren
) -> None:
    children.failing_nodes = frozenset({"1"})
    experiment = BaseExperiment(runnable=probe, storage=local_store)
    run, ref = experiment.allocate(probe_specs(30), recursion_map=RMAP, engine=hx.HatchetEngine())

    with pytest.raises(
        EngineError, match=r"1 of 3 child node\(s\) failed.*run.resume\(engine='hatchet'\)"
    ):
        ref.result(timeout=120)
    assert run.manifest.status == "allocated"  # never finalized with a missing subtree


def test_a_failing_leaf_raises_until_its_last_attempt_then_reports_its_failure(
    local_store: Store, children: InProcessChildren
) -> None:
    experiment = BaseExperiment(runnable=probe, storage=local_store)
    run, _ = experiment.allocate(probe_specs(4), recursion_map=RMAP, engine=hx.HatchetEngine())
    node = next(n for n in iter_terminal_nodes(4, RMAP) if 3 in n.positions)
    ref = hx.LeafRunRef(
        storage_uri=local_store.uri(),
        run_id=run.run_id,
        experiment="probe",
        experiment_ref=probe.reference,
        node=node.name,
    )
    spec = next(
        s
        for s in read_batch(handle_for(children.triggered[0][0]), node.name)[0]
        if s.sort_index == 3
    )
    leaf = hx.hatchet_task_for(probe)
    inp = hx.leaf_input_model(Probe)(run=ref, spec=spec)

    with pytest.raises(LeafAttemptError, match="spec 3 attempt 1 of 2 failed: ValueError"):
        leaf.mock_run(inp, retry_count=0)
    output = leaf.mock_run(inp, retry_count=1)
    stored = hx.decode_leaf_result(local_store.get_bytes(output.key))

    assert (output.sort_index, output.ok) == (3, False)
    assert (stored.failure["error_type"], stored.failure["attempts"]) == ("ValueError", 2)


def test_leaf_results_keep_their_exact_types_through_storage() -> None:
    frame = pl.DataFrame({"step": [0, 1], "value": [0.5, float("nan")]})
    result = LeafResult(
        7,
        "wf-7",
        None,
        scalars={
            "y": float("inf"),
            "label": "s7",
            "when": datetime(2026, 3, 1, 12, tzinfo=UTC),
            "day": datetime(2026, 3, 1, tzinfo=UTC).date(),
            "floors": None,
        },
        file_refs={"report": "s3://b/k/report.txt"},
        frames={"rows": frame},
        extra_frames={"hourly": frame.with_columns(pl.col("step").cast(pl.Int32))},
    )
    back = hx.decode_leaf_result(hx.encode_leaf_result(result))
    assert back.extra_frames["hourly"].equals(result.extra_frames["hourly"])
    assert back.extra_frames["hourly"].schema["step"] == pl.Int32

    assert (back.sort_index, back.workflow_run_id, back.root_workflow_run_id) == (7, "wf-7", None)
    assert (back.file_refs, back.failure) == (result.file_refs, None)
    assert back.scalars == result.scalars
    assert back.frames["rows"].schema == frame.schema and back.frames["rows"].equals(frame)


# --------------------------------------------------------------------------- connection


def test_missing_token_error_names_both_ways_to_connect(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("HATCHET_CLIENT_TOKEN", raising=False)
    monkeypatch.delenv("SCYTHE_HATCHET_EMBEDDED", raising=False)
    monkeypatch.chdir(tmp_path)  # hatchet_sdk also reads ./.env
    hx.reset_hatchet()

    with pytest.raises(HatchetConfigError) as caught:
        hx.hatchet_client()

    assert "HATCHET_CLIENT_TOKEN" in str(caught.value)
    assert "SCYTHE_HATCHET_EMBEDDED=1" in str(caught.value)
    assert isinstance(caught.value, EngineError)


def test_a_malformed_token_error_shows_its_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HATCHET_CLIENT_TOKEN", "not-a-jwt")
    monkeypatch.chdir(tmp_path)
    hx.reset_hatchet()

    with pytest.raises(HatchetConfigError, match="token starts with 'not-a'"):
        hx.hatchet_client()


def test_embedded_setting_uses_hatchet_from_embedded_when_the_sdk_has_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hatchet_sdk import Hatchet

    monkeypatch.setenv("SCYTHE_HATCHET_EMBEDDED", "1")
    monkeypatch.delenv("HATCHET_CLIENT_TOKEN", raising=False)
    sentinel = object()
    monkeypatch.setattr(Hatchet, "from_embedded", classmethod(lambda cls: sentinel))
    hx.reset_hatchet()
    try:
        assert hx.hatchet_client() is sentinel
        hx.reset_hatchet()
        monkeypatch.delattr(Hatchet, "from_embedded")
        with pytest.raises(HatchetConfigError, match=r"no Hatchet\.from_embedded"):
            hx.hatchet_client()
    finally:
        hx.reset_hatchet()


def test_allocate_checks_the_connection_and_the_experiment_before_writing(
    local_store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    @ExperimentRegistry.Register(name="hatchet_local_function")
    def local_function(spec: Small) -> Doubled:
        return Doubled(y=spec.x)

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HATCHET_CLIENT_TOKEN", raising=False)
    monkeypatch.delenv("SCYTHE_HATCHET_EMBEDDED", raising=False)
    hx.reset_hatchet()
    try:
        with pytest.raises(HatchetConfigError, match="HATCHET_CLIENT_TOKEN"):
            BaseExperiment(runnable=probe, storage=local_store).allocate(
                probe_specs(3), engine=hx.HatchetEngine()
            )
        with pytest.raises(RegistryError, match="defined inside a function"):
            BaseExperiment(runnable=local_function, storage=local_store).allocate(
                [Small(x=1.0)], engine=hx.HatchetEngine()
            )
    finally:
        ExperimentRegistry.unregister("hatchet_local_function")

    assert local_store.list_keys() == []


class BlockedRoot:
    """A root run that finishes, failing, when released."""

    workflow_run_id = "blocked-root"

    def __init__(self) -> None:
        self.release = threading.Event()

    def result(self) -> None:
        self.release.wait(30)
        raise RuntimeError("root failed: boom")


def test_run_ref_times_out_then_reports_a_failed_root_with_a_resume_hint() -> None:
    root = ScatterGatherInput(
        storage_uri="/nowhere",
        run_id="e/v1.0.0/t",
        experiment="probe",
        experiment_ref=probe.reference,
        n_specs=1,
        recursion_map=RecursionMap(),
    )
    blocked = BlockedRoot()
    ref = hx.HatchetRunRef(root, blocked)

    with pytest.raises(TimeoutError, match=r"still running after 0\.1 s"):
        ref.result(timeout=0.1)
    blocked.release.set()
    with pytest.raises(EngineError, match=r"failed on Hatchet.*root failed: boom.*resume"):
        ref.result(timeout=10)
    assert ref.done() and isinstance(ref, RunRef)


def test_hatchet_engine_is_found_by_name_and_does_not_wait() -> None:
    engine = get_engine("hatchet")

    assert isinstance(engine, hx.HatchetEngine) and engine.name == "hatchet"
    assert engine.waits_by_default() is False


def test_import_creates_no_hatchet_client() -> None:
    code = (
        "import gc, json, sys; import scythe, scythe.cli;"
        "light = 'hatchet_sdk' not in sys.modules;"
        "import scythe.worker, scythe.engines.hatchet as hx; from hatchet_sdk import Hatchet;"
        "clients = [o for o in gc.get_objects() if isinstance(o, Hatchet)];"
        "print(json.dumps({'light': light, 'clients': len(clients), 'client': hx._client is None}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "light": True,
        "clients": 0,
        "client": True,
    }


def test_retry_failed_and_reuse_run_on_hatchet_tasks(
    local_store: Store, children: InProcessChildren, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    marker.mkdir()
    specs = [
        Probe(x=float(i), mode="fail_until_fixed" if i in (1, 5) else "ok", marker_dir=str(marker))
        for i in range(8)
    ]
    experiment = BaseExperiment(runnable=probe, storage=local_store)
    run, ref = experiment.allocate(specs, recursion_map=RMAP, engine=hx.HatchetEngine())
    assert (ref.result(timeout=120).status, ref.result(timeout=120).failed) == ("partial", 2)

    (marker / "fixed").write_text("")
    retry = run.resume(engine=hx.HatchetEngine(), retry_failed=True)
    summary = retry.result(timeout=120)
    assert (summary.status, summary.done, summary.failed) == ("complete", 8, 0)
    retried_root = children.triggered[-1][0]
    assert (retried_root.round, retried_root.n_specs) == (1, 2)  # a tree over the failed specs

    again, ref = experiment.allocate(
        specs, recursion_map=RMAP, engine=hx.HatchetEngine(), reuse=run
    )
    assert ref.result(timeout=120).status == "complete"
    assert again.manifest.reused == {run.run_id: 8}
    assert again.results().scalars["y"].to_list() == [2.0 * i for i in range(8)]


def test_a_scalar_only_leaf_result_goes_through_storage(tmp_path) -> None:
    # A runner's result of scalar outputs alone shares one read-only empty mapping for its
    # files and frames; a Hatchet leaf still stores and reads it back.
    from scythe.leaf import NO_VALUES

    result = LeafResult(3, "wf-3", None, {"y": 1.5}, NO_VALUES, NO_VALUES, None, NO_VALUES)
    back = hx.decode_leaf_result(hx.encode_leaf_result(result))
    assert (back.sort_index, back.scalars, back.file_refs) == (3, {"y": 1.5}, {})
    assert dict(back.frames) == {} and dict(back.extra_frames) == {}
