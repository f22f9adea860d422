"""The embedded local engine: the scatter/gather tree on this machine's processes.

The driver (a thread of the calling process) plans the tree, hands terminal
nodes to a pool of ``slots`` worker processes, gathers fan nodes bottom-up and
finalizes the root. A worker is forked from the driver when that is safe (Linux,
and no thread yet that could hold a lock: a fresh script, before polars runs
its first query; see :func:`can_fork`), which costs milliseconds; otherwise it
is spawned and imports the experiment's module itself (``SCYTHE_WORKER_START=spawn``
always spawns). Either way experiments must be importable: defined at the top
level of a module or of the script being run.

A worker that dies (segfault, ``os._exit``, OOM kill) or overruns the
execution timeout is replaced. The spec it was running is charged one attempt;
its node runs again from scratch (nothing of a node is kept until the node
finishes, so nothing is duplicated), and a spec that used up its retries
becomes a ``failures`` row instead of being run again.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
import warnings
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection, wait
from typing import Any

from scythe.engines import freeze
from scythe.errors import EngineConfigError, EngineError, ExperimentImportError
from scythe.layout import write_heartbeat
from scythe.manifest import update_manifest
from scythe.nodes import (
    failure_limit,
    finalize_run,
    finalize_stopped,
    gather_node,
    handle_for,
    load_run,
    run_terminal_node,
    stored_result,
)
from scythe.registry import ExperimentRunnable
from scythe.scatter_gather import (
    RunSummary,
    ScatterGatherInput,
    ScatterGatherResult,
    plan_children,
)
from scythe.settings import scythe_settings, timeout_settings
from scythe.storage import forget_stores, known_stores, remember_store

POLL_SECONDS = 0.2


# --------------------------------------------------------------------------- worker side

# Settings and credentials a worker must see as the driver sees them now, not
# as they were when the (long-lived) worker started.
_MIRRORED_PREFIXES = ("SCYTHE_", "AWS_", "HATCHET_")


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(_MIRRORED_PREFIXES)}


def _mirror_environment(environment: dict[str, str]) -> None:
    for key in [k for k in os.environ if k.startswith(_MIRRORED_PREFIXES)]:
        if key not in environment:
            del os.environ[key]
    os.environ.update(environment)


# Slots of a worker's shared progress array. Written by the worker at every
# leaf, read by the driver when it polls: no message per leaf.
CURRENT_SPEC, STARTED_AT, DONE, FAILED = range(4)
IDLE = -1.0
WORKER_GC_THRESHOLDS = (10_000, 10, 10)


class _SharedProgress:
    """A worker's leaf progress, written to its shared array (the driver reads it when it polls)."""

    def __init__(self, shared: Any) -> None:
        self.shared = shared

    def started(self, sort_index: int, attempt: int) -> None:
        # The driver needs to know which spec was running if this process dies.
        self.shared[STARTED_AT] = time.monotonic()
        self.shared[CURRENT_SPEC] = sort_index

    def finished(self, sort_index: int, ok: bool) -> None:
        self.shared[DONE if ok else FAILED] += 1

    def staging(self) -> None:
        self.shared[CURRENT_SPEC] = IDLE


PARENT_CHECK_SECONDS = 0.5
ORPHANED_EXIT_CODE = 70


def _die_with_parent(parent_pid: int) -> None:
    """Exit as soon as the driver process is gone (killed, crashed): never work for nobody.

    A thread watches the parent's pid; when the driver dies the worker is
    re-parented, and it exits at once, without writing anything more.
    """

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_SECONDS)
            if os.getppid() != parent_pid:
                os._exit(ORPHANED_EXIT_CODE)

    threading.Thread(target=watch, name="scythe-parent-watch", daemon=True).start()


def _preload(module: str | None) -> None:
    """Import the experiment's module while the driver is still allocating (errors are
    reported when the first node loads it)."""
    if module and module not in ("__main__", "__mp_main__"):  # spawn has run the script already
        with contextlib.suppress(Exception):
            importlib.import_module(module)


WORKER_PROCESS_NAME = b"scythe-worker"


def _name_this_process() -> None:
    """Show the worker as ``scythe-worker`` in ``ps`` and ``top`` (Linux; a forked worker
    otherwise looks exactly like the script that started it)."""
    if sys.platform == "linux":
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None).prctl(15, WORKER_PROCESS_NAME, 0, 0, 0)  # PR_SET_NAME


def _leave_the_drivers_state(peer: Connection) -> None:
    """In a forked worker: let go of what is the driver's, not this process's.

    The driver's objects are frozen (no collection here scans them, so their
    memory pages stay shared with the driver), its ends of the workers' pipes
    are closed (this worker's own included: a dead driver is seen as end of
    file), and its stores and run handles are dropped, so no S3 connection of
    the driver is ever used from here.
    """
    gc.freeze()
    peer.close()
    for pool in list(_POOLS):
        for worker in pool.workers:
            with contextlib.suppress(OSError):
                worker.conn.close()
    forget_stores()
    load_run.cache_clear()


def _worker_main(
    conn: Connection,
    shared: Any,
    parent_pid: int | None = None,
    preload: str | None = None,
    idle_seconds: float | None = None,
    peer: Connection | None = None,
) -> None:
    """Loop of one worker process: run terminal nodes sent by the driver.

    The worker exits when the driver says so, when the driver is gone, or after
    ``idle_seconds`` without a node (``SCYTHE_WORKER_IDLE``). ``peer`` is the
    driver's end of ``conn`` in a forked worker (None when spawned).
    """
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    _name_this_process()
    if peer is not None:
        _leave_the_drivers_state(peer)
    # Ctrl-C reaches the whole process group; the driver decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A node allocates a few objects per spec, nearly all freed by reference
    # counting: young collections every 10,000 allocations instead of 700 cost
    # less and keep at most that many cyclic objects waiting.
    gc.set_threshold(*WORKER_GC_THRESHOLDS)
    progress = _SharedProgress(shared)
    _preload(preload)
    while True:
        try:
            if idle_seconds is not None and not conn.poll(idle_seconds):
                return  # idle too long: the driver starts a new worker when it needs one
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        node_json, crashed, stores, environment = message
        _mirror_environment(environment)
        for store in stores:
            remember_store(store)
        try:
            inp = ScatterGatherInput.model_validate_json(node_json)
            result = run_terminal_node(
                inp, crashed=crashed, progress=progress, workflow_run_id=f"local:{inp.node.name}"
            )
            shared[CURRENT_SPEC] = IDLE
            conn.send(("result", result.model_dump_json()))
            # What outlives a node (modules, caches) need not be scanned by every
            # later collection: a full collection would otherwise grow with it.
            gc.freeze()
        except Exception as exc:
            shared[CURRENT_SPEC] = IDLE
            conn.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))


# --------------------------------------------------------------------------- driver side


@dataclass
class _NodeState:
    inp: ScatterGatherInput
    attempts: int = 0
    crashes: dict[int, int] = field(default_factory=dict)
    last_message: dict[int, str] = field(default_factory=dict)
    reported: tuple[int, int] = (0, 0)  # done, failed counted by the attempt in flight


@dataclass
class _Worker:
    process: Any
    conn: Connection
    shared: Any  # CURRENT_SPEC, STARTED_AT, DONE, FAILED
    state: _NodeState | None = None
    seen: tuple[int, int] = (0, 0)  # DONE and FAILED already counted
    forked: bool = False  # forked from the driver (else spawned)

    @property
    def spec(self) -> int | None:
        current = self.shared[CURRENT_SPEC]
        return None if current == IDLE else int(current)


class Progress:
    """Counts of a running run, optionally drawn as a rich progress bar."""

    def __init__(self, total: int, *, show: bool, label: str) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self._bar: Any = None
        if show and total:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("[red]{task.fields[failed]} failed"),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._task = self._bar.add_task(label, total=total, failed=0, rate="")
            self._started = time.monotonic()
            self._bar.start()

    def add(self, done: int, failed: int) -> None:
        self.done += done
        self.failed += failed
        if self._bar is not None and (done or failed):
            elapsed = max(time.monotonic() - self._started, 1e-9)
            rate = f"{(self.done + self.failed) / elapsed:,.0f} specs/s"
            self._bar.update(
                self._task, completed=self.done + self.failed, failed=self.failed, rate=rate
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


class LocalRunRef:
    """Handle on a run driven by the local engine in a background thread."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._finished = threading.Event()
        self._cancel = threading.Event()
        self._summary: RunSummary | None = None
        self._error: BaseException | None = None
        self.progress: Progress | None = None
        self._holds_objects = False  # the run ends a freeze.hold() of its allocation

    def result(self, timeout: float | None = None) -> RunSummary:
        """Wait for the run; Ctrl-C cancels it cleanly (resume it with ``run.resume()``).

        ``timeout`` defaults to ``SCYTHE_TIMEOUT_WAIT`` (unset: wait for as long as it takes).
        """
        timeout = timeout_settings().wait_seconds(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            # Short waits: a signal that lands on another thread must not leave us blocked.
            while not self._finished.wait(POLL_SECONDS):
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"run {self.run_id} still running after {timeout} s")
        except KeyboardInterrupt:
            self.cancel()
            self._finished.wait()
            raise
        if self._error is not None:
            raise EngineError(
                f"run {self.run_id} failed in the local engine: {self._error}"
            ) from self._error
        assert self._summary is not None
        return self._summary

    def done(self) -> bool:
        return self._finished.is_set()

    def cancel(self) -> None:
        self._cancel.set()

    def __repr__(self) -> str:
        state = "done" if self.done() else "running"
        return f"<LocalRunRef {self.run_id} {state}>"


class LocalEngine:
    """Run the tree on this machine: ``slots`` worker processes (0: in this process).

    ``slots`` defaults to ``SCYTHE_SLOTS``, else the number of cores. Worker
    processes start with the first run that needs them (never more than the
    run has terminal nodes) and are kept for the engine's next runs.

    >>> engine = LocalEngine(slots=0)     # in this process: no worker to start
    >>> engine.name, engine.parallelism, engine.waits_by_default()
    ('local', 1, True)
    >>> LocalEngine(slots=4).parallelism
    4
    """

    name = "local"

    def __init__(self, slots: int | None = None, *, progress: bool | None = None) -> None:
        if slots is None:
            slots = scythe_settings().SLOTS or os.cpu_count() or 1
        if slots < 0:
            raise EngineConfigError(f"slots must be >= 0, got {slots}")
        self.slots = slots
        self.show_progress = progress
        self._pool = _WorkerPool(slots)
        self._holding = False  # a freeze.hold() taken by prepare(), for the run it prepares
        _POOLS.add(self._pool)
        weakref.finalize(self, self._pool.close)

    @property
    def parallelism(self) -> int:
        """Terminal nodes that run at once: one per worker process (1 in this process)."""
        return max(self.slots, 1)

    def waits_by_default(self) -> bool:
        return True

    def check(self, experiment: ExperimentRunnable) -> None:
        """Fail before anything is written if worker processes could not import ``experiment``."""
        if experiment.workflow is not None:
            raise EngineConfigError(
                f"{experiment.name!r} is a Hatchet workflow: it runs on Hatchet, allocate it "
                "with engine='hatchet'"
            )
        if self.slots == 0:
            return
        problem = experiment.import_problem()
        if problem is not None:
            raise ExperimentImportError(
                f"experiment {experiment.name!r} {problem}; worker processes cannot import it: "
                "define it at the top level of a module or script, or run in this process "
                "with LocalEngine(slots=0)"
            )

    def prepare(self, experiment: ExperimentRunnable, n_specs: int) -> None:
        """Start the workers a run of ``n_specs`` will use now, so that their start-up (the
        interpreter, imports, the experiment's module) overlaps the allocation."""
        if self.slots == 0 or self._pool.lock.locked():
            return
        if not self._holding:  # before the workers fork, until the run is over
            self._holding = freeze.hold()
        with self._pool.lock:
            self._pool.start(n_specs, experiment.__module__)

    def release(self) -> None:
        """Undo :meth:`prepare` for an allocation that failed before its run was submitted."""
        if self._holding:
            self._holding = False
            freeze.release()

    def submit(self, root: ScatterGatherInput) -> LocalRunRef:
        """Drive the run in a background thread; the ref waits for it."""
        experiment = handle_for(root).experiment
        ref = LocalRunRef(root.run_id)
        ref._holds_objects, self._holding = self._holding, False
        show = self.show_progress if self.show_progress is not None else sys.stderr.isatty()
        ref.progress = Progress(root.n_specs, show=show, label=experiment.name)
        thread = threading.Thread(
            target=self._drive,
            args=(root, experiment, ref),
            name=f"scythe-local-{root.run_id}",
            daemon=True,
        )
        thread.start()
        return ref

    def submit_one(self, root: ScatterGatherInput) -> LocalRunRef:
        """A one-off run is one terminal node: its spec runs in a worker (or here, with slots=0)."""
        return self.submit(root)

    # ------------------------------------------------------------------ the tree

    def _drive(
        self, root: ScatterGatherInput, experiment: ExperimentRunnable, ref: LocalRunRef
    ) -> None:
        progress = ref.progress or Progress(root.n_specs, show=False, label=experiment.name)
        beating = _Heartbeat(root)
        try:
            beating.start()  # first, so a running run is never shown as interrupted
            self._set_status(root, "running", None)
            limit = failure_limit(handle_for(root))
            stop = _FailureStop(progress, limit)
            terminal = self._run_terminal_nodes(root, experiment, ref, progress, stop)
            if ref._cancel.is_set():
                self._set_status(
                    root, "cancelled", "cancelled; finished nodes are kept, resume to finish"
                )
                raise EngineError(f"run {root.run_id} was cancelled; resume it with run.resume()")
            if stop() and len(terminal) < len(root.terminal_inputs()):
                # the failure policy stopped the run before every node ran: commit what finished
                ref._summary = finalize_stopped(root, list(terminal.values()))
                return
            root_result = self._gather(root, terminal)
            ref._summary = finalize_run(root, root_result)
        except BaseException as exc:
            ref._error = exc
            if not ref._cancel.is_set():
                with contextlib.suppress(Exception):  # the storage itself may be what failed
                    self._set_status(
                        root, "incomplete", f"{type(exc).__name__}: {exc}"[:2000] + "; resume it"
                    )
        finally:
            beating.stop()
            progress.close()
            if ref._holds_objects:
                ref._holds_objects = False
                freeze.release()
            ref._finished.set()

    def _gather(
        self, inp: ScatterGatherInput, terminal: dict[str, ScatterGatherResult]
    ) -> ScatterGatherResult:
        node = inp.node
        children = plan_children(node, inp.recursion_map)
        if not children:
            return terminal[node.name]
        results = [self._gather(inp.child(c.path[-1]), terminal) for c in children]
        return gather_node(inp, results)

    def _run_terminal_nodes(
        self,
        root: ScatterGatherInput,
        experiment: ExperimentRunnable,
        ref: LocalRunRef,
        progress: Progress,
        stop: Callable[[], bool],
    ) -> dict[str, ScatterGatherResult]:
        run = handle_for(root)
        results: dict[str, ScatterGatherResult] = {}
        todo: list[ScatterGatherInput] = []
        for inp in root.terminal_inputs():
            finished = stored_result(run, inp.node.name)
            if finished is not None:  # resumed run: this node is already staged
                results[finished.node] = finished
                progress.add(finished.done, finished.failed)
            else:
                todo.append(inp)
        if not todo:
            return results
        if self.slots == 0:
            for inp in todo:
                if ref._cancel.is_set() or stop():
                    break
                result = run_terminal_node(
                    inp,
                    workflow_run_id=f"local:{inp.node.name}",
                    progress=_InProcessProgress(progress),
                )
                results[result.node] = result
            return results
        if self._pool.lock.acquire(blocking=False):
            try:
                results.update(self._pool.run(todo, experiment, progress, ref._cancel, stop))
            finally:
                self._pool.lock.release()
        else:  # another run of this engine holds the shared workers
            pool = _WorkerPool(min(self.slots, len(todo)))
            try:
                results.update(pool.run(todo, experiment, progress, ref._cancel, stop))
            finally:
                pool.close()
        return results

    def close(self) -> None:
        """Stop this engine's worker processes (they also stop when the program exits)."""
        self._pool.close()

    def _set_status(self, root: ScatterGatherInput, status: str, message: str | None) -> None:
        run = handle_for(root)
        update_manifest(run.store, run.layout, status=status, message=message)


class _FailureStop:
    """True once more specs failed than the run's failure policy tolerates."""

    def __init__(self, progress: Progress, limit: int | None) -> None:
        self.progress = progress
        self.limit = limit

    def __call__(self) -> bool:
        return self.limit is not None and self.progress.failed > self.limit


class _Heartbeat:
    """Writes the run's heartbeat while the driver runs it, so a dead driver shows."""

    def __init__(self, root: ScatterGatherInput) -> None:
        self.root = root
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        interval = scythe_settings().HEARTBEAT.total_seconds()
        run = handle_for(self.root)

        def beat() -> None:
            while not self._stop.wait(interval):
                with contextlib.suppress(Exception):  # a missed beat is not worth a failed run
                    write_heartbeat(run.store, run.layout, interval)

        with contextlib.suppress(Exception):  # the first beat lands before the run says running
            write_heartbeat(run.store, run.layout, interval)

        self._thread = threading.Thread(target=beat, name="scythe-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _InProcessProgress:
    """Leaf progress of a run executed in the driver's process (``slots=0``)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def started(self, sort_index: int, attempt: int) -> None:
        pass

    def finished(self, sort_index: int, ok: bool) -> None:
        if ok:
            self.progress.add(1, 0)
        else:
            self.progress.add(0, 1)

    def staging(self) -> None:
        pass


_POOLS: weakref.WeakSet[_WorkerPool] = weakref.WeakSet()
_STARTED_TRACKER = False


@atexit.register
def _close_at_exit() -> None:
    """At interpreter exit stop every worker and wait for them, and for the resource
    tracker process that spawning them started: nothing of the engine outlives the program."""
    for pool in list(_POOLS):
        with contextlib.suppress(Exception):
            pool.close()
    if _STARTED_TRACKER:
        with contextlib.suppress(Exception):
            resource_tracker._resource_tracker._stop()


# One worker per core already uses the cores: thread pools of their own in each
# worker would only fight over them. Users who set these variables keep theirs.
_THREAD_LIMITS = {"POLARS_MAX_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


@contextlib.contextmanager
def _single_threaded_libraries() -> Any:
    """Environment a worker starts with (it is copied when the process starts)."""
    added = {k: v for k, v in _THREAD_LIMITS.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


# Native threads of a process that has imported polars and not yet run a query:
# jemalloc's background threads (jemalloc's fork handlers take care of them) and
# polars' spill-file cleaner. Polars' thread pool and the Delta runtime, once
# started, are not among them: a forked child would wait on threads it lacks.
_IDLE_NATIVE_THREADS = frozenset({"jemalloc_bg_thd", "polars-ooc-clea"})


def _openblas_threads() -> int:
    """How many unnamed native threads numpy's OpenBLAS may have started at import.

    OpenBLAS stops its thread pool before a fork (a ``pthread_atfork`` handler)
    and starts it again when next needed, in the parent and in the child.
    """
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return 0
    try:
        blas = numpy.__config__.CONFIG["Build Dependencies"]["blas"]["name"]
    except Exception:
        return 0
    return (os.cpu_count() or 1) - 1 if "openblas" in str(blas).lower() else 0


def can_fork() -> bool:
    """Whether a worker may be forked from this process now: on Linux, with no other
    thread than the calling one and the idle native threads that importing polars
    (and numpy's OpenBLAS) starts.

    A thread that could hold a lock the child will need (another Python thread,
    polars' or the Delta runtime's thread pools, any other native thread) makes
    it spawn instead.
    """
    if sys.platform != "linux" or threading.active_count() != 1:
        return False
    try:
        tasks = os.listdir("/proc/self/task")
        with open("/proc/self/comm") as comm:
            own_name = comm.read().strip()  # what a thread nobody named is called
    except OSError:
        return False
    me = str(threading.get_native_id())
    unnamed = 0
    for task in tasks:
        if task == me:
            continue
        try:
            with open(f"/proc/self/task/{task}/comm") as comm:
                name = comm.read().strip()
        except OSError:
            continue  # the thread has ended
        if name == own_name:
            unnamed += 1
        elif name not in _IDLE_NATIVE_THREADS:
            return False
    return unnamed <= _openblas_threads()


@contextlib.contextmanager
def _fork_checked() -> Any:
    """Silence Python's (3.12+) warning about forking a process that has threads:
    :func:`can_fork` has checked that the ones running survive a fork."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
        yield


class _WorkerPool:
    """``size`` worker processes (forked or spawned), each running one terminal node at a time.

    Workers outlive a run so that the next run of the same engine skips their
    start-up (importing polars, pandera and the experiment's module).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.context = multiprocessing.get_context("spawn")
        self.fork_context = multiprocessing.get_context("fork") if sys.platform == "linux" else None
        self.workers: list[_Worker] = []
        self.preload: str | None = None  # the module of the experiment last run
        self.lock = threading.Lock()
        self.retries = 0
        self.timeout = float("inf")
        self.progress = Progress(0, show=False, label="")
        self.cancel = threading.Event()

    def _start_worker(self) -> _Worker:
        global _STARTED_TRACKER
        forked = scythe_settings().WORKER_START == "auto" and can_fork()
        context = self.fork_context if forked else self.context
        if not forked and not _STARTED_TRACKER and resource_tracker._resource_tracker._fd is None:
            _STARTED_TRACKER = True  # spawn starts it with the first worker: wait for it at exit
        parent, child = context.Pipe(duplex=True)
        shared = context.Array("d", [IDLE, 0.0, 0.0, 0.0], lock=False)
        idle = scythe_settings().WORKER_IDLE.total_seconds()
        process = context.Process(
            target=_worker_main,
            args=(child, shared, os.getpid(), self.preload, idle, parent if forked else None),
            daemon=True,
            name="scythe-local-worker",
        )
        with _single_threaded_libraries(), _fork_checked() if forked else contextlib.nullcontext():
            process.start()
        child.close()
        return _Worker(process=process, conn=parent, shared=shared, forked=forked)

    def start(self, count: int, preload: str | None) -> None:
        """Have ``count`` live workers (at most ``size``), importing ``preload`` as they start."""
        self.preload = preload
        self._prune()
        # One by one: a forked worker closes the pipes of the workers listed before it.
        while len(self.workers) < min(self.size, count):
            self.workers.append(self._start_worker())

    def _prune(self) -> None:
        """Forget workers that exited (idle too long): reap them so none is left a zombie."""
        for worker in [w for w in self.workers if not w.process.is_alive()]:
            worker.process.join()
            worker.conn.close()
            self.workers.remove(worker)

    def run(
        self,
        todo: list[ScatterGatherInput],
        experiment: ExperimentRunnable,
        progress: Progress,
        cancel: threading.Event,
        stop: Callable[[], bool] = lambda: False,
    ) -> dict[str, ScatterGatherResult]:
        """Run terminal nodes until all are done or the run is cancelled.

        Once ``stop()`` (the failure policy) is true no node is dispatched;
        the nodes in flight finish.
        """
        self.retries = experiment.options.retries
        self.timeout = experiment.options.resolved_execution_timeout().total_seconds()
        self.progress, self.cancel = progress, cancel
        # No more workers than nodes: a small run does not pay for idle processes.
        self.start(len(todo), experiment.__module__)
        pending: deque[_NodeState] = deque(_NodeState(inp) for inp in todo)
        results: dict[str, ScatterGatherResult] = {}
        try:
            while not self.cancel.is_set():
                busy = any(w.state for w in self.workers)
                if not busy and (not pending or stop()):
                    break
                for worker in self.workers:
                    if worker.state is None and pending and not stop():
                        self._dispatch(worker, pending.popleft())
                self._step(pending, results)
        except BaseException:
            self.close()
            raise
        if any(w.state for w in self.workers):
            self.close()  # cancelled with nodes in flight: their workers cannot be reused
        return results

    def _dispatch(self, worker: _Worker, state: _NodeState) -> None:
        crashed = {
            s: (n, state.last_message[s]) for s, n in state.crashes.items() if n > self.retries
        }
        state.attempts += 1
        state.reported = (0, 0)
        worker.state = state
        worker.seen = (int(worker.shared[DONE]), int(worker.shared[FAILED]))
        worker.conn.send((state.inp.model_dump_json(), crashed, known_stores(), _environment()))

    def _step(self, pending: deque[_NodeState], results: dict[str, ScatterGatherResult]) -> None:
        busy = [w for w in self.workers if w.state is not None]
        waitables: list[Any] = [w.conn for w in busy] + [w.process.sentinel for w in busy]
        ready = set(wait(waitables, timeout=POLL_SECONDS))
        now = time.monotonic()
        for worker in busy:
            self._poll_progress(worker)
            if worker.conn in ready:
                self._receive(worker, pending, results)
            elif worker.process.sentinel in ready or not worker.process.is_alive():
                self._replace(worker, pending)
            elif worker.spec is not None and now - worker.shared[STARTED_AT] > self.timeout:
                worker.process.kill()
                worker.process.join()
                self._replace(
                    worker, pending, f"exceeded the execution timeout of {self.timeout:g} s"
                )

    def _receive(
        self, worker: _Worker, pending: deque[_NodeState], results: dict[str, ScatterGatherResult]
    ) -> None:
        try:
            while worker.conn.poll():
                message = worker.conn.recv()
                kind = message[0]
                state = worker.state
                assert state is not None
                if kind == "result":
                    self._poll_progress(worker)
                    result = ScatterGatherResult.model_validate_json(message[1])
                    results[result.node] = result
                    worker.state = None
                    return
                if kind == "error":
                    _, text, tb = message
                    self._uncount(state)
                    worker.state = None
                    if state.attempts <= self.retries:
                        pending.append(state)
                        return
                    raise EngineError(
                        f"node {state.inp.node.name} failed {state.attempts} time(s): {text}\n{tb}"
                    )
        except (EOFError, OSError):
            self._replace(worker, pending)

    def _poll_progress(self, worker: _Worker) -> None:
        """Count the leaves a busy worker finished since the last poll."""
        state = worker.state
        if state is None:
            return
        done, failed = int(worker.shared[DONE]), int(worker.shared[FAILED])
        new_done, new_failed = done - worker.seen[0], failed - worker.seen[1]
        worker.seen = (done, failed)
        self.progress.add(new_done, new_failed)
        state.reported = (state.reported[0] + new_done, state.reported[1] + new_failed)

    def _uncount(self, state: _NodeState) -> None:
        """Take back the progress of an attempt that will run again."""
        self.progress.add(-state.reported[0], -state.reported[1])
        state.reported = (0, 0)

    def _replace(
        self, worker: _Worker, pending: deque[_NodeState], reason: str | None = None
    ) -> None:
        """A worker died under a node: charge the running spec, restart the worker, requeue the node."""
        state = worker.state
        assert state is not None
        crashed_spec = worker.spec
        self._uncount(state)
        worker.conn.close()
        worker.process.join(timeout=5)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        reason = reason or f"worker process exited with code {worker.process.exitcode}"
        if crashed_spec is not None:
            state.crashes[crashed_spec] = state.crashes.get(crashed_spec, 0) + 1
            state.last_message[crashed_spec] = (
                f"{reason} while running spec {crashed_spec} "
                f"(attempt {state.crashes[crashed_spec]} of {self.retries + 1})"
            )
        elif state.attempts > self.retries + 1:
            raise EngineError(
                f"node {state.inp.node.name}: {reason} outside any spec, {state.attempts} time(s). "
                "Worker processes import the experiment's module: a script that allocates must "
                'do so under `if __name__ == "__main__":`'
            )
        index = self.workers.index(worker)
        self.workers[index] = self._start_worker()
        pending.appendleft(state)

    def close(self) -> None:
        """Stop every worker (busy ones are killed after a grace period)."""
        self._shutdown()
        self.workers = []

    def _shutdown(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(OSError, ValueError):  # already gone
                worker.conn.send(None)
        deadline = time.monotonic() + 5
        for worker in self.workers:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
