"""The distributed engine: the scatter/gather tree on Hatchet.

Two kinds of Hatchet task run a tree:

- ``scythe_scatter_gather`` (input :class:`~scythe.nodes.ScatterGatherInput`,
  output :class:`~scythe.nodes.ScatterGatherResult`), one run per tree node. A
  fan node spawns its children with ``run_many`` and gathers them; a terminal
  node spawns one leaf task per spec, turns leaf tasks that died into
  ``failures`` rows and stages its tables; the root also finalizes the run.
  It is a *durable* task: it waits in a durable slot (evictable while waiting
  on engines that support it), never in the slots leaves run in.
- one leaf task per experiment, a ``Standalone`` named after the experiment and
  built from its registration options (retries, timeouts, worker labels). A
  leaf runs one attempt of one spec; Hatchet owns the retries. It writes its
  rows to storage and returns only a reference (:class:`LeafOutput`), so no
  payload grows with the outputs.

What a node *does* is ``scythe.nodes`` (shared with the local engine); this
module decides where it runs. The Hatchet client is created on first use,
never at import.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import os
import threading
import time
import zipfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from typing import Any

import polars as pl
from hatchet_sdk import Context, DurableContext, Hatchet
from hatchet_sdk.clients.admin import WorkflowRunTriggerConfig
from hatchet_sdk.config import ClientConfig
from hatchet_sdk.labels import DesiredWorkerLabel
from hatchet_sdk.runnables.workflow import Standalone, TaskRunRef
from pydantic import BaseModel, ValidationError, create_model

from scythe.base import ExperimentInputSpec
from scythe.errors import (
    EngineConfigError,
    EngineError,
    ExperimentImportError,
    ExperimentOptionsError,
    HatchetConfigError,
    LeafAttemptError,
    NodeFailedError,
)
from scythe.leaf import LeafResult, crashed_leaf, run_leaf
from scythe.manifest import read_manifest
from scythe.nodes import (
    RunHandle,
    finalize_run,
    gather_node,
    handle_for,
    leaf_context,
    load_run,
    read_batch,
    stage_node,
    stored_result,
)
from scythe.registry import ExperimentRunnable
from scythe.scatter_gather import (
    RunSummary,
    ScatterGatherInput,
    ScatterGatherResult,
    plan_children,
)
from scythe.settings import LABEL_ON, scythe_settings, timeout_settings

SCATTER_GATHER_TASK = "scythe_scatter_gather"
FAN_RETRIES = 2
LEAF_READ_THREADS = 16
ROOT_RUN_KEY = "root_workflow_run_id"
WAIT_STEP_SECONDS = 0.5

# --------------------------------------------------------------------------- the client

_lock = threading.RLock()
_client: Hatchet | None = None
_leaf_tasks: dict[str, Standalone[Any, Any]] = {}
_fan_task: Standalone[Any, Any] | None = None


def hatchet_client() -> Hatchet:
    """The process's Hatchet client, created on first use.

    From the standard ``HATCHET_CLIENT_*`` settings (``HATCHET_CLIENT_TOKEN``
    names the server), or an embedded engine when ``SCYTHE_HATCHET_EMBEDDED=1``.
    """
    global _client
    with _lock:
        if _client is None:
            _client = _connect()
        return _client


def reset_hatchet() -> None:
    """Forget the client and every task built with it (after changing ``HATCHET_CLIENT_*``)."""
    global _client, _fan_task
    with _lock:
        _client = None
        _fan_task = None
        _leaf_tasks.clear()


_CONNECT_HELP = (
    "Set HATCHET_CLIENT_TOKEN to an API token of your Hatchet server (with hatchet-lite: "
    "see docs/deployment.md), or set SCYTHE_HATCHET_EMBEDDED=1 to run an embedded Hatchet "
    "engine on this machine."
)


def _connect() -> Hatchet:
    if scythe_settings().HATCHET_EMBEDDED:
        from_embedded = getattr(Hatchet, "from_embedded", None)
        if from_embedded is None:
            from importlib.metadata import version

            raise HatchetConfigError(
                f"SCYTHE_HATCHET_EMBEDDED=1 but hatchet-sdk {version('hatchet-sdk')} has no "
                "Hatchet.from_embedded(); upgrade hatchet-sdk, or unset it and set HATCHET_CLIENT_TOKEN"
            )
        return from_embedded()
    try:
        config = ClientConfig()
    except ValidationError as err:
        raise HatchetConfigError(_config_problem(err) + " " + _CONNECT_HELP) from err
    return Hatchet(config=config)


def _config_problem(err: ValidationError) -> str:
    messages = "; ".join(str(e.get("msg", "")) for e in err.errors())
    if "token is required" in messages:
        return "no Hatchet connection: HATCHET_CLIENT_TOKEN is not set."
    token = os.environ.get("HATCHET_CLIENT_TOKEN", "")
    return (
        f"no Hatchet connection: the HATCHET_CLIENT_* settings are invalid "
        f"(token starts with {token[:5]!r}): {messages}."
    )


# --------------------------------------------------------------------------- payloads


class LeafRunRef(BaseModel):
    """Which run and terminal node a leaf belongs to: a few hundred bytes."""

    storage_uri: str
    run_id: str
    experiment: str
    experiment_ref: str
    node: str
    finalize: bool = False  # a one-off run: the leaf also stages its node and finalizes the run
    round: int = 0  # the retry round of the run's tree (0: the run itself)

    @classmethod
    def of(cls, inp: ScatterGatherInput) -> LeafRunRef:
        return cls(
            storage_uri=inp.storage_uri,
            run_id=inp.run_id,
            experiment=inp.experiment,
            experiment_ref=inp.experiment_ref,
            node=inp.node.name,
            round=inp.round,
        )


class LeafInput(BaseModel):
    """The input of one leaf task: its run and its spec (typed per experiment)."""

    run: LeafRunRef
    spec: ExperimentInputSpec


class LeafOutput(BaseModel):
    """The output of one leaf task: where its rows were written, never the rows."""

    sort_index: int
    ok: bool
    key: str


@functools.cache
def leaf_input_model(input_spec: type[ExperimentInputSpec]) -> type[LeafInput]:
    """The leaf input model whose ``spec`` is ``input_spec`` (Hatchet validates with it)."""
    return create_model(
        f"{input_spec.__name__}LeafInput",
        __base__=LeafInput,
        __module__=__name__,
        spec=(input_spec, ...),
    )


# --------------------------------------------------------------------------- leaf results in storage


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    raise TypeError(f"cannot store a {type(value).__name__} in a leaf result: {value!r}")


def _json_object(obj: dict[str, Any]) -> Any:
    if obj.keys() == {"$datetime"}:
        return datetime.fromisoformat(obj["$datetime"])
    if obj.keys() == {"$date"}:
        return date.fromisoformat(obj["$date"])
    return obj


def encode_leaf_result(result: LeafResult) -> bytes:
    """One leaf's rows as a small zip: ``leaf.json`` plus one Arrow IPC file per dataframe output."""
    header = {
        "sort_index": result.sort_index,
        "workflow_run_id": result.workflow_run_id,
        "root_workflow_run_id": result.root_workflow_run_id,
        "scalars": result.scalars,
        "file_refs": None if result.file_refs is None else dict(result.file_refs),
        "failure": result.failure,
        "frames": sorted(result.frames),
        "extra_frames": sorted(result.extra_frames),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("leaf.json", json.dumps(header, default=_json_default))
        for folder, frames in (("frames", result.frames), ("extra", result.extra_frames)):
            for name, frame in frames.items():
                ipc = io.BytesIO()
                frame.write_ipc(ipc)
                archive.writestr(f"{folder}/{name}.arrow", ipc.getvalue())
    return buffer.getvalue()


def decode_leaf_result(data: bytes) -> LeafResult:
    """The :class:`LeafResult` written by :func:`encode_leaf_result`, with its exact types."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        header = json.loads(archive.read("leaf.json"), object_hook=_json_object)
        frames, extra = (
            {
                name: pl.read_ipc(io.BytesIO(archive.read(f"{folder}/{name}.arrow")))
                for name in header.get(key, [])
            }
            for folder, key in (("frames", "frames"), ("extra", "extra_frames"))
        )
    return LeafResult(
        header["sort_index"],
        header["workflow_run_id"],
        header["root_workflow_run_id"],
        scalars=header["scalars"],
        file_refs=header["file_refs"],
        frames=frames,
        failure=header["failure"],
        extra_frames=extra,
    )


def collect_leaf_results(
    run: RunHandle,
    specs: Sequence[ExperimentInputSpec],
    outcomes: Sequence[Any],
    *,
    workflow_run_id: str | None,
    root_workflow_run_id: str | None,
) -> list[LeafResult]:
    """Each spec's leaf result: read from storage, or a failure row when its leaf task died."""
    ctx = leaf_context(
        run, workflow_run_id=workflow_run_id, root_workflow_run_id=root_workflow_run_id
    )
    attempts = run.experiment.options.retries + 1

    def one(spec: ExperimentInputSpec, outcome: Any) -> LeafResult:
        if isinstance(outcome, LeafOutput):
            return decode_leaf_result(run.store.get_bytes(outcome.key))
        message = f"leaf task failed on Hatchet after {attempts} attempt(s): {outcome}"
        return crashed_leaf(
            spec,
            ctx,
            message=message,
            attempts=attempts,
            error_type=type(outcome).__name__,
        )

    with ThreadPoolExecutor(max_workers=LEAF_READ_THREADS) as pool:
        return list(pool.map(one, specs, outcomes))


# --------------------------------------------------------------------------- the leaf task


def hatchet_task_for(runnable: ExperimentRunnable) -> Standalone[Any, LeafOutput]:
    """The leaf ``Standalone`` of an experiment, built once per process from its registration.

    Name and description are the experiment's; ``retries``, ``execution_timeout``,
    ``schedule_timeout`` and ``desired_worker_labels`` come from ``Register()``;
    other ``Register(**task_options)`` (``concurrency``, ``rate_limits``, ...) pass through.
    """
    with _lock:
        task = _leaf_tasks.get(runnable.name)
        if task is None:
            task = _build_leaf_task(runnable)
            _leaf_tasks[runnable.name] = task
        return task


def _build_leaf_task(runnable: ExperimentRunnable) -> Standalone[Any, LeafOutput]:
    options = runnable.options
    extra = dict(options.task_options)
    decorate = hatchet_client().task
    try:
        return decorate(
            name=runnable.name,
            description=runnable.description,
            input_validator=leaf_input_model(runnable.input_spec),
            retries=options.retries,
            execution_timeout=options.resolved_execution_timeout(),
            schedule_timeout=options.resolved_schedule_timeout(),
            desired_worker_labels=desired_worker_labels(options.desired_worker_labels) or None,
            **extra,
        )(run_leaf_task)
    except TypeError as exc:
        raise ExperimentOptionsError(
            f"experiment {runnable.name!r}: task options {sorted(extra)} are not all "
            f"options of hatchet_sdk's Hatchet.task: {exc}"
        ) from exc


def desired_worker_labels(labels: Mapping[str, Any]) -> list[DesiredWorkerLabel]:
    """``Register(desired_worker_labels=...)`` as Hatchet labels with their keys set.

    A value may be a ``DesiredWorkerLabel`` (as ``ScytheWorkerLabel.X.worker_label`` gives),
    a mapping of its fields, ``True`` (the worker must advertise the label) or a required value.

    >>> [(d.key, d.value, d.required) for d in desired_worker_labels({"has_gpu": True, "zone": "a"})]
    [('has_gpu', 'yes', True), ('zone', 'a', True)]
    """
    out = []
    for key, value in labels.items():
        if isinstance(value, DesiredWorkerLabel):
            out.append(value.model_copy(update={"key": key}))
        elif isinstance(value, Mapping):
            out.append(DesiredWorkerLabel(**{**value, "key": key}))
        elif value is True:
            out.append(DesiredWorkerLabel(key=key, value=LABEL_ON, required=True))
        elif isinstance(value, str | int) and not isinstance(value, bool):
            out.append(DesiredWorkerLabel(key=key, value=value, required=True))
        else:
            raise ExperimentOptionsError(
                f"desired_worker_labels[{key!r}] = {value!r}: use True, a string or "
                "int value, or a DesiredWorkerLabel (e.g. ScytheWorkerLabel.HAS_GPU.worker_label)"
            )
    return out


def run_leaf_task(inp: LeafInput, ctx: Context) -> LeafOutput:
    """One attempt of one spec: run it, write its rows to storage, return their reference.

    A failed attempt that has retries left raises, so Hatchet schedules the next
    one (with its backoff, maybe on another worker); the last attempt's failure
    becomes a ``failures`` row like any other.
    """
    ref = inp.run
    run = load_run(ref.storage_uri, ref.run_id, ref.experiment, ref.experiment_ref, ref.round)
    root_id = str(ctx.additional_metadata.get(ROOT_RUN_KEY) or "") or None
    if inp.run.finalize:
        root_id = root_id or ctx.workflow_run_id  # a one-off run's leaf is its root
    leaf_ctx = leaf_context(
        run, workflow_run_id=ctx.workflow_run_id, root_workflow_run_id=root_id, log=ctx.log
    )
    result = run_leaf(
        run.experiment, run.schema, inp.spec, leaf_ctx, tries=1, first_attempt=ctx.attempt_number
    )
    if result.failure is not None and result.retryable and ctx.attempt_number < ctx.max_attempts:
        failure = result.failure
        raise LeafAttemptError(
            f"spec {result.sort_index} attempt {ctx.attempt_number} of {ctx.max_attempts} failed: "
            f"{failure['error_type']}: {failure['message']}"
        )
    key = run.layout.leaf_result(inp.run.node, result.sort_index)
    run.store.put_bytes(key, encode_leaf_result(result))
    if inp.run.finalize:
        finish_single_run(run, inp.run, result)
    return LeafOutput(sort_index=result.sort_index, ok=result.ok, key=key)


def finish_single_run(run: RunHandle, ref: LeafRunRef, result: LeafResult) -> RunSummary:
    """A one-off run's leaf is its only node: stage the node, then commit and finalize the run."""
    staged = stored_result(run, ref.node)
    if staged is None:  # a retried delivery after staging does not stage again
        _, index = read_batch(run, ref.node)
        staged = stage_node(run, ref.node, [result], index)
    root = ScatterGatherInput(
        storage_uri=ref.storage_uri,
        run_id=ref.run_id,
        experiment=ref.experiment,
        experiment_ref=ref.experiment_ref,
        n_specs=run.manifest.spec_count,
        recursion_map=run.manifest.recursion_map,
    )
    summary = finalize_run(root, staged)
    run.store.delete_prefix(run.layout.leaf_results(ref.node))
    return summary


# --------------------------------------------------------------------------- the scatter/gather task


def scatter_gather_task() -> Standalone[ScatterGatherInput, ScatterGatherResult]:
    """The durable ``scythe_scatter_gather`` task every tree node runs as (built once per process)."""
    global _fan_task
    with _lock:
        if _fan_task is None:
            timeouts = timeout_settings()
            _fan_task = hatchet_client().durable_task(
                name=SCATTER_GATHER_TASK,
                description="A node of a Scythe scatter/gather tree: fan out, or run a terminal "
                "node's leaves; gather; the root commits the run's tables.",
                input_validator=ScatterGatherInput,
                retries=FAN_RETRIES,
                execution_timeout=timeouts.SCATTER_GATHER_EXECUTION
                or scythe_settings().HATCHET_FAN_TIMEOUT,
                schedule_timeout=timeouts.scatter_gather_schedule,
            )(run_scatter_gather)
        return _fan_task


async def run_children(
    task: Standalone[Any, Any], items: list[WorkflowRunTriggerConfig]
) -> list[Any]:
    """Run ``items`` as children of the running task and wait for them all.

    One result per item, in order; a child that failed after its retries is its
    exception. In a durable task on an engine with durable eviction, the SDK
    spawns through the durable event log, so a replayed node does not spawn twice.
    """
    return await task.aio_run_many(items, return_exceptions=True)


def node_metadata(inp: ScatterGatherInput, ctx: Context) -> dict[str, str]:
    """The additional metadata of a node's children: the run, and the root's workflow run id."""
    inherited = {k: str(v) for k, v in (ctx.additional_metadata or {}).items()}
    return {
        **inherited,
        ROOT_RUN_KEY: inherited.get(ROOT_RUN_KEY) or ctx.workflow_run_id,
        "experiment_id": inp.run_id,
        "experiment_name": inp.experiment,
    }


async def run_scatter_gather(inp: ScatterGatherInput, ctx: DurableContext) -> ScatterGatherResult:
    """One tree node: fan out (or run the leaves), gather; the root also finalizes the run."""
    metadata = node_metadata(inp, ctx)
    if plan_children(inp.node, inp.recursion_map):
        result = await _fan_out(inp, metadata)
    else:
        result = await _run_terminal(inp, ctx, metadata)
    if inp.node.depth == 0:
        await asyncio.to_thread(finalize_run, inp, result)
    return result


async def _fan_out(inp: ScatterGatherInput, metadata: dict[str, str]) -> ScatterGatherResult:
    task = scatter_gather_task()
    children = [inp.child(c.path[-1]) for c in plan_children(inp.node, inp.recursion_map)]
    items = [
        task.create_bulk_run_item(
            input=child,
            child_key=f"node-{child.node.name}",
            additional_metadata={
                **metadata,
                "level": str(child.node.depth),
                "node": child.node.name,
            },
        )
        for child in children
    ]
    outcomes = await run_children(task, items)
    failed = [
        (c.node.name, o)
        for c, o in zip(children, outcomes, strict=True)
        if isinstance(o, BaseException)
    ]
    if failed:
        name, first = failed[0]
        raise NodeFailedError(
            f"node {inp.node.name} of run {inp.run_id}: {len(failed)} of {len(children)} child node(s) "
            f"failed after their retries (first: node {name}: {first}); finished nodes are kept, "
            "resume the run with run.resume(engine='hatchet')"
        )
    return await asyncio.to_thread(gather_node, inp, list(outcomes))


async def _run_terminal(
    inp: ScatterGatherInput, ctx: Context, metadata: dict[str, str]
) -> ScatterGatherResult:
    run = await asyncio.to_thread(handle_for, inp)
    name = inp.node.name
    finished = await asyncio.to_thread(stored_result, run, name)
    if finished is not None:  # a retried or resumed node does its work once
        return finished
    specs, index = await asyncio.to_thread(read_batch, run, name)
    leaf = hatchet_task_for(run.experiment)
    model = leaf_input_model(run.experiment.input_spec)
    ref = LeafRunRef.of(inp)
    items = [
        leaf.create_bulk_run_item(
            input=model(run=ref, spec=spec),
            child_key=f"leaf-{spec.sort_index}",
            additional_metadata={
                **metadata,
                "level": str(inp.node.depth + 1),
                "node": name,
                "sort_index": str(spec.sort_index),
            },
        )
        for spec in specs
    ]
    outcomes = await run_children(leaf, items)
    results = await asyncio.to_thread(
        collect_leaf_results,
        run,
        specs,
        outcomes,
        workflow_run_id=ctx.workflow_run_id,
        root_workflow_run_id=metadata[ROOT_RUN_KEY],
    )
    result = await asyncio.to_thread(stage_node, run, name, results, index)
    await asyncio.to_thread(run.store.delete_prefix, run.layout.leaf_results(name))
    return result


# --------------------------------------------------------------------------- the engine


def summary_from_manifest(inp: ScatterGatherInput) -> RunSummary:
    """The run's outcome as the root recorded it in ``manifest.yml``."""
    run = handle_for(inp)
    manifest = read_manifest(run.store, run.layout)
    return RunSummary(
        manifest.run_id,
        manifest.status,
        manifest.spec_count,
        manifest.done,
        manifest.failed,
        manifest.missing,
        manifest.message or manifest.status,
    )


class HatchetRunRef:
    """Handle on a run whose root node was triggered on Hatchet."""

    def __init__(self, root: ScatterGatherInput, task_ref: TaskRunRef[Any, Any]) -> None:
        self.run_id = root.run_id
        self.root = root
        self.workflow_run_id = task_ref.workflow_run_id
        self._task_ref = task_ref
        self._finished = threading.Event()
        self._error: BaseException | None = None
        self._waiter: threading.Thread | None = None

    def _wait_for_root(self) -> None:
        try:
            self._task_ref.result()
        except BaseException as exc:  # surfaced by result()
            self._error = exc
        finally:
            self._finished.set()

    def result(self, timeout: float | None = None) -> RunSummary:
        """Wait for the root node and return the run's summary.

        ``timeout`` (seconds) defaults to ``SCYTHE_TIMEOUT_WAIT`` (unset: as long as it
        takes). Ctrl-C stops waiting, not the run: it goes on on Hatchet.
        """
        timeout = timeout_settings().wait_seconds(timeout)
        with _lock:
            if self._waiter is None:
                self._waiter = threading.Thread(
                    target=self._wait_for_root,
                    daemon=True,
                    name=f"scythe-hatchet-{self.workflow_run_id}",
                )
                self._waiter.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        # short waits keep Ctrl-C responsive in the main thread
        while not self._finished.wait(WAIT_STEP_SECONDS):
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"run {self.run_id} (Hatchet workflow run {self.workflow_run_id}) "
                    f"still running after {timeout:g} s"
                )
        if self._error is not None:
            raise EngineError(
                f"run {self.run_id} failed on Hatchet (workflow run {self.workflow_run_id}): "
                f"{self._error}; finished nodes are kept, resume it with run.resume(engine='hatchet')"
            ) from self._error
        return summary_from_manifest(self.root)

    def done(self) -> bool:
        if self._finished.is_set():
            return True
        status = hatchet_client().runs.get_status(self.workflow_run_id)
        return str(getattr(status, "value", status)) in ("COMPLETED", "FAILED", "CANCELLED")

    def cancel(self) -> None:
        """Cancel the root run on Hatchet; finished nodes are kept and the run can be resumed."""
        hatchet_client().runs.cancel(self.workflow_run_id)

    def __repr__(self) -> str:
        return f"<HatchetRunRef {self.run_id} workflow run {self.workflow_run_id}>"


class HatchetWorkflowRunRef(HatchetRunRef):
    """A one-off run of an included Hatchet workflow; waiting for it records its outcome.

    The workflow is the user's own: it declares no typed outputs, so the run
    stores one index-only ``scalars`` row when it succeeds, or a ``failures``
    row, and ``workflow_output`` is what the workflow returned.
    """

    workflow_output: Any = None

    def _wait_for_root(self) -> None:
        outcome: BaseException | None = None
        try:
            self.workflow_output = self._task_ref.result()
        except BaseException as exc:  # the workflow failed: a failures row, not an error
            outcome = exc
        try:
            record_workflow_outcome(self.root, self.workflow_run_id, outcome)
        except BaseException as exc:
            self._error = exc
        finally:
            self._finished.set()


def record_workflow_outcome(
    root: ScatterGatherInput, workflow_run_id: str, error: BaseException | None
) -> RunSummary:
    """Stage the one row of a workflow's one-off run (success or failure) and finalize the run."""
    run = handle_for(root)
    node = root.node.name
    staged = stored_result(run, node)
    if staged is None:
        (spec,), index = read_batch(run, node)
        if error is None:
            result = LeafResult(
                spec.sort_index, workflow_run_id, workflow_run_id, scalars={}, file_refs={}
            )
        else:
            ctx = leaf_context(
                run, workflow_run_id=workflow_run_id, root_workflow_run_id=workflow_run_id
            )
            message = f"Hatchet workflow run {workflow_run_id} failed: {error}"
            result = crashed_leaf(
                spec, ctx, message=message, attempts=1, error_type=type(error).__name__
            )
        staged = stage_node(run, node, [result], index)
    return finalize_run(root, staged)


def run_metadata(root: ScatterGatherInput) -> dict[str, str]:
    """Additional metadata of a run's root: searchable in the Hatchet dashboard."""
    return {
        "experiment_id": root.run_id,
        "experiment_name": root.experiment,
        "level": "0",
        "node": root.node.name,
    }


class HatchetEngine:
    """Run the tree on Hatchet workers started with ``scythe worker``.

    ``submit`` triggers the root node and returns at once (``waits_by_default``
    is False): ``ref.result()`` waits for the run, from this or any process.
    ``parallelism`` (default ``SCYTHE_HATCHET_PARALLELISM``) is about the
    number of leaf slots of the fleet: the default tree has enough terminal
    nodes to keep them busy. Nothing connects to Hatchet until a run is checked
    or submitted.

    >>> engine = HatchetEngine(parallelism=200)
    >>> engine.name, engine.parallelism, engine.waits_by_default()
    ('hatchet', 200, False)
    """

    name = "hatchet"

    def __init__(self, *, parallelism: int | None = None) -> None:
        if parallelism is not None and parallelism < 1:
            raise EngineConfigError(f"parallelism must be >= 1, got {parallelism}")
        self._parallelism = parallelism

    @property
    def parallelism(self) -> int:
        return self._parallelism or scythe_settings().HATCHET_PARALLELISM

    def waits_by_default(self) -> bool:
        return False

    def check(self, experiment: ExperimentRunnable) -> None:
        """Fail before anything is written: an experiment no worker could import, no
        Hatchet connection, or bad task options."""
        problem = experiment.import_problem()
        if problem is not None:
            raise ExperimentImportError(
                f"experiment {experiment.name!r} {problem}; Hatchet workers cannot import it: "
                "define it at the top level of a module and serve it with "
                "`scythe worker --experiments module:attr`"
            )
        if experiment.workflow is not None:
            hatchet_client()  # the workflow is the user's own task: only the connection to check
            return
        scatter_gather_task()
        hatchet_task_for(experiment)

    def submit(self, root: ScatterGatherInput) -> HatchetRunRef:
        task_ref = scatter_gather_task().run(
            root, wait_for_result=False, additional_metadata=run_metadata(root)
        )
        return HatchetRunRef(root, task_ref)

    def submit_one(self, root: ScatterGatherInput) -> HatchetRunRef:
        """Trigger the leaf task of a one-off run's spec directly (``run_no_wait``), no tree.

        The leaf stages its row and finalizes the run itself, so the run ends
        complete or partial in storage whoever waits for it.
        """
        run = handle_for(root)
        (spec,), _ = read_batch(run, root.node.name)
        workflow = run.experiment.workflow
        if workflow is not None:
            ref = workflow.run_no_wait(spec, additional_metadata=run_metadata(root))
            return HatchetWorkflowRunRef(root, ref)
        model = leaf_input_model(run.experiment.input_spec)
        leaf_input = model(run=LeafRunRef.of(root).model_copy(update={"finalize": True}), spec=spec)
        task_ref = hatchet_task_for(run.experiment).run_no_wait(
            leaf_input, additional_metadata=run_metadata(root)
        )
        return HatchetRunRef(root, task_ref)

    def __repr__(self) -> str:
        return f"HatchetEngine(parallelism={self._parallelism})"


__all__ = [
    "SCATTER_GATHER_TASK",
    "HatchetEngine",
    "HatchetRunRef",
    "LeafInput",
    "LeafOutput",
    "LeafRunRef",
    "collect_leaf_results",
    "decode_leaf_result",
    "desired_worker_labels",
    "encode_leaf_result",
    "hatchet_client",
    "hatchet_task_for",
    "reset_hatchet",
    "run_children",
    "scatter_gather_task",
]
