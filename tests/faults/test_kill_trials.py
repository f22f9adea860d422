"""Kill trials: a run on the local engine survives its driver or a worker being killed.

Each seeded trial starts a driver process (tests/faults/kill_driver.py) that
allocates a run of ``kill_experiments.sleepy`` on a local-directory store with
``LocalEngine(slots=2)`` and a small recursion map (4 to 9 terminal nodes),
then kills the driver (SIGKILL or SIGTERM) or one of its worker processes
once the store shows the seeded point was reached: worker start-up, inside the
first leaves, while a node stages (data files staged, no node manifest yet),
after some nodes staged, during the root's commit (some tables committed, not
all) or after it. In some driver trials a worker is frozen (SIGSTOP) just
before the driver dies and woken (SIGCONT) only after the run was resumed: a
late orphan.

After a driver kill the orphaned workers must exit on their own (their
watchdog), ``status()`` from a new process must say ``interrupted``, and
``resume()`` from that process must finish the run. After a worker kill the
driver itself must finish the run. Every trial then checks that

- every spec is exactly once in ``scalars`` or ``failures`` (no loss, no
  duplicate) with the values the experiment computes for it;
- every committed version of every table (its ``_delta_log`` entry, the bytes
  of the data files it references, the frame polars reads) is byte-identical
  right after the run finished and once every orphan is gone, and versions
  committed before the kill are unchanged at the end;
- orphans never rewrote a file nor wrote into a ``_delta_log``.

Trials run two at a time (``KILL_TRIALS_PARALLEL``); ``KILL_TRIALS_SEEDS=3,7``
runs only those seeds. ``pytest -s`` prints a summary.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from scythe.scatter_gather import RecursionMap, iter_terminal_nodes

FAULTS = Path(__file__).resolve().parent
DRIVER = FAULTS / "kill_driver.py"
SEEDS = [int(s) for s in os.environ.get("KILL_TRIALS_SEEDS", "").split(",") if s] or list(range(20))
PARALLEL = int(os.environ.get("KILL_TRIALS_PARALLEL", "2"))
SLOTS = 2
HEARTBEAT = 0.2  # SCYTHE_HEARTBEAT of the drivers: stale after 3 beats + 1 s (scythe/layout.py)
# An orphan checks its parent every 0.5 s, but only once its imports are done: one whose
# driver died during its start-up (seconds, on a busy machine) lives that long, writing nothing.
ORPHAN_BOUND = 30.0
WATCHDOG_BOUND = 5.0  # s for orphans that already ran leaves (imports done) to exit
STATUS_BOUND = 15.0  # s for status() to turn from running to interrupted
RUN_BOUND = 120.0  # s for a driver or a resume to finish a run
POLL = 0.004  # s between looks at the store while waiting for a kill point
LOG_ENTRY = re.compile(r"\d{20}\.json")
STAGED = re.compile(r"part-(?P<node>.+)-[0-9a-f]{32}\.zstd\.parquet")

# The experiment's outputs, written again here: the test process does not import
# kill_experiments, and an independent oracle checks what the workers computed.


def expected_y(x: float) -> float:
    return 3.0 * x + 1.0


def expected_label(x: float) -> str:
    return f"x={x:g}"


def expected_rows(x: float) -> list[tuple[int, float]]:
    return [(i, x * i + 0.5) for i in range(int(x) % 3 + 1)]


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Proc:
    """A process by pid and start time (a reused pid is another process)."""

    pid: int
    start: int


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[19])


def alive(proc: Proc) -> bool:
    """Whether the process runs (a zombie nobody reaped yet has exited)."""
    stat = _stat(proc.pid)
    return stat is not None and stat[2] == proc.start and stat[0] not in ("Z", "X")


def workers_of(pid: int) -> list[Proc]:
    """The local engine's worker processes of ``pid``: spawned ones run ``spawn_main``,
    forked ones are named ``scythe-worker`` (another child, such as the resource
    tracker between its fork and its exec, has the driver's command line)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _stat(int(entry))
        if stat is None or stat[1] != pid or stat[0] in ("Z", "X"):
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            comm = Path(f"/proc/{entry}/comm").read_bytes().strip()
        except OSError:
            continue
        if b"spawn_main" in cmdline or comm == b"scythe-worker":
            found.append(Proc(int(entry), stat[2]))
    return sorted(found, key=lambda p: p.pid)


def wait_gone(procs: list[Proc], bound: float, since: float | None = None) -> float:
    """Seconds from ``since`` (default: now) until none of ``procs`` is alive.

    Gives up after ``bound`` seconds and returns more than ``bound``.
    """
    started = time.monotonic() if since is None else since
    while any(alive(p) for p in procs):
        if time.monotonic() - started > bound:
            return bound + 1.0
        time.sleep(0.01)
    return time.monotonic() - started


def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCYTHE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FAULTS), os.environ.get("PYTHONPATH")]))
    env["SCYTHE_HEARTBEAT"] = str(HEARTBEAT)
    env["SCYTHE_CACHE_DIR"] = str(tmp_path / "cache")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("POLARS_MAX_THREADS", "1")  # small frames; two trials share two cores
    return env


class Script:
    """kill_driver.py in a subprocess: its ``@@`` lines arrive on a queue, its workers are
    tracked (an orphan has another parent: it must be known before its driver dies)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._stderr = log.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, str(DRIVER), *args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            text=True,
            start_new_session=True,  # no Ctrl-C of the test reaches it
        )
        stat = _stat(self.popen.pid)
        self.proc = Proc(self.popen.pid, stat[2] if stat else -1)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._eof = threading.Event()
        self.workers: set[Proc] = set()  # every worker process it had
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._track, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            if line.startswith("@@ "):
                self.events.put(json.loads(line[3:]))
        self._eof.set()

    def _track(self) -> None:
        while alive(self.proc):
            self.workers.update(workers_of(self.proc.pid))
            time.sleep(0.15)

    def live_workers(self) -> list[Proc]:
        return sorted((w for w in self.workers if alive(w)), key=lambda w: w.pid)

    def event(self, name: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.events.get(timeout=0.1)
            except queue.Empty:
                if time.monotonic() > deadline or self._eof.is_set():
                    raise AssertionError(
                        f"no {name!r} event from {' '.join(map(str, self.popen.args[2:4]))} "
                        f"(exit code {self.popen.poll()}); stderr:\n{self.stderr()}"
                    ) from None
                continue
            if event["event"] == name:
                return event

    def stderr(self) -> str:
        self._stderr.flush()
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """Kill the process if it still runs (it is ours: we started it)."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()
        self._stderr.close()


# --------------------------------------------------------------------------- the store


@dataclass
class StoreState:
    """What a look at the run shows: leaves started, nodes staged, tables committed."""

    heartbeat: bool
    leaves: int  # leaves that started (their marker files)
    manifests: set[str]  # nodes with a node manifest
    staged: set[str]  # nodes with at least one staged data file
    committed: set[str]  # result tables with a version 1
    tables: list[str]  # result tables

    def point(self, terminals: list[str]) -> str:
        """Where the run stood, as a kill point."""
        if self.tables and len(self.committed) == len(self.tables):
            return "after_commit"
        if self.committed:
            return "during_commit"
        if self.staged - self.manifests:
            return "during_staging"
        if set(terminals) <= self.manifests:
            return "all_staged"
        if self.manifests:
            return "after_staging"
        return "mid_leaf" if self.leaves else "startup"


def leaf_pids(leaves: Path) -> set[int]:
    """Worker processes that started a leaf (markers are ``<sort_index>-<pid>-<ns>``)."""
    return {int(name.split("-")[1]) for name in os.listdir(leaves)}


def look(run_dir: Path, leaves: Path) -> StoreState:
    final = run_dir / "final"
    tables = sorted(os.listdir(final)) if final.is_dir() else []
    staged: set[str] = set()
    committed: set[str] = set()
    for table in tables:
        for name in os.listdir(final / table):
            match = STAGED.fullmatch(name)
            if match:
                staged.add(match["node"])
        if (final / table / "_delta_log" / f"{1:020d}.json").exists():
            committed.add(table)
    nodes = run_dir / "scatter-gather" / "nodes"
    manifests = {n.removesuffix(".json") for n in os.listdir(nodes)} if nodes.is_dir() else set()
    return StoreState(
        heartbeat=(run_dir / "heartbeat.json").exists(),
        leaves=len(os.listdir(leaves)),
        manifests=manifests,
        staged=staged,
        committed=committed,
        tables=tables,
    )


Listing = dict[str, tuple[int, int, int]]


def listing(run_dir: Path) -> Listing:
    """Every file of the run: (inode, size, mtime in ns), by path relative to the run."""
    out = {}
    for path in run_dir.rglob("*"):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        if path.is_file():
            out[str(path.relative_to(run_dir))] = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    return out


@dataclass
class Writes:
    """Files written between two listings."""

    new: list[str] = field(default_factory=list)
    # The same file, grown: a write in flight at the first listing went on (LocalStore's
    # put_if_absent creates the file, then writes it). Not a rewrite: a file seen half-written.
    completed: list[str] = field(default_factory=list)
    rewritten: list[str] = field(default_factory=list)  # replaced, shrunk or written over

    def __len__(self) -> int:
        return len(self.new) + len(self.completed) + len(self.rewritten)


def writes_between(before: Listing, after: Listing) -> Writes:
    writes = Writes(new=sorted(p for p in after if p not in before))
    for path in sorted(p for p in after if p in before and after[p] != before[p]):
        (inode_a, size_a, _), (inode_b, size_b, _) = before[path], after[path]
        grown = inode_a == inode_b and size_b > size_a
        (writes.completed if grown else writes.rewritten).append(path)
    return writes


def table_dirs(run_dir: Path) -> list[Path]:
    final = run_dir / "final"
    return [run_dir / "specs", *sorted(p for p in final.iterdir() if p.is_dir())]


Snapshot = dict[tuple[str, int], tuple[bytes, dict[str, bytes], pl.DataFrame]]


def snapshot(run_dir: Path) -> Snapshot:
    """Every committed version of every table: log entry, bytes of its data files, its frame."""
    from deltalake import DeltaTable

    out: Snapshot = {}
    for table in table_dirs(run_dir):
        log = table / "_delta_log"
        for entry in sorted(os.listdir(log)):
            if not LOG_ENTRY.fullmatch(entry):
                continue
            version = int(entry[:20])
            uris = DeltaTable(str(table), version=version).file_uris()
            files = {str(Path(u).relative_to(table)): Path(u).read_bytes() for u in uris}
            frame = pl.read_delta(str(table), version=version)
            out[(table.name, version)] = ((log / entry).read_bytes(), files, frame)
    return out


def compare(before: Snapshot, after: Snapshot, *, subset: bool = False) -> list[str]:
    """How ``after`` differs from ``before`` (with ``subset``: in the versions ``before`` has)."""
    problems = []
    if not subset and set(after) != set(before):
        problems.append(f"versions {sorted(before)} became {sorted(after)}")
    for key in sorted(before):
        if key not in after:
            problems.append(f"{key[0]} v{key[1]} disappeared")
            continue
        (log_a, files_a, frame_a), (log_b, files_b, frame_b) = before[key], after[key]
        if log_a != log_b:
            problems.append(f"{key[0]} v{key[1]}: its _delta_log entry changed")
        if files_a != files_b:
            changed = sorted(p for p in {*files_a, *files_b} if files_a.get(p) != files_b.get(p))
            problems.append(f"{key[0]} v{key[1]}: data files changed: {changed}")
        if not frame_a.equals(frame_b):
            problems.append(f"{key[0]} v{key[1]}: the frame polars reads changed")
    return problems


@dataclass
class Outcome:
    lost: list[int]
    duplicated: int
    changed: list[str]
    uncommitted: int  # staged data files no version references (left by killed attempts)


def check_outcome(run_dir: Path, xs: list[float], fails: set[int]) -> Outcome:
    """Every spec exactly once in scalars or failures, with the values it must have."""
    from deltalake import DeltaTable

    final = run_dir / "final"
    read = {t.name: pl.read_delta(str(t)) for t in table_dirs(run_dir)[1:]}
    scalars, failures, rows = read["scalars"], read["failures"], read["rows"]
    refs = read["result_file_refs"]
    seen = Counter(scalars["sort_index"].to_list()) + Counter(failures["sort_index"].to_list())
    lost = [i for i in range(len(xs)) if seen[i] == 0]
    duplicated = sum(n - 1 for n in seen.values() if n > 1)
    duplicated += refs.height - refs["sort_index"].n_unique()
    changed: list[str] = []
    unknown = set(seen) - set(range(len(xs)))
    if unknown:
        changed.append(f"rows of unknown specs {sorted(unknown)}")
    by_index = {r["sort_index"]: r for r in scalars.iter_rows(named=True)}
    failed = {r["sort_index"]: r for r in failures.iter_rows(named=True)}
    steps: dict[int, list[tuple[int, float]]] = {}
    for r in rows.sort("sort_index", "sort_subindex").iter_rows(named=True):
        steps.setdefault(r["sort_index"], []).append((r["step"], r["value"]))
    for i, x in enumerate(xs):
        if i in fails:
            if i in by_index or i in steps:
                changed.append(f"spec {i} must fail but has result rows")
            elif i in failed and failed[i]["error_type"] != "ValueError":
                changed.append(f"spec {i} failed with {failed[i]['error_type']}")
            continue
        if i in failed:
            changed.append(f"spec {i} failed: {failed[i]['error_type']}: {failed[i]['message']}")
            continue
        row = by_index.get(i)
        if row is None:
            continue  # lost: counted above
        if (row["x"], row["y"], row["label"]) != (x, expected_y(x), expected_label(x)):
            changed.append(f"spec {i}: x, y, label = {row['x']}, {row['y']}, {row['label']!r}")
        if steps.get(i) != expected_rows(x):
            changed.append(f"spec {i}: rows {steps.get(i)}, expected {expected_rows(x)}")
    if set(refs["sort_index"].to_list()) != set(by_index):
        changed.append("result_file_refs does not hold the specs of scalars")
    referenced = {
        str(Path(u).relative_to(final))
        for t in table_dirs(run_dir)[1:]
        for u in DeltaTable(str(t)).file_uris()
    }
    staged = {
        f"{t.name}/{p.name}"
        for t in table_dirs(run_dir)[1:]
        for p in t.iterdir()
        if STAGED.fullmatch(p.name)
    }
    return Outcome(lost, duplicated, changed, len(staged - referenced))


def manifest_of(run_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((run_dir / "manifest.yml").read_text())


# --------------------------------------------------------------------------- one trial

DRIVER_POINTS = [
    "startup",
    "mid_leaf",
    "during_staging",
    "after_staging",
    "during_commit",
    "after_commit",
]
WORKER_POINTS = ["startup", "mid_leaf", "during_staging", "after_staging"]
# Seed s kills at SCHEDULE[s % 10]: 20 seeds hit each (victim, point) twice; the rest
# of a trial (signal, specs, tree, timing, frozen worker...) is drawn from its seed.
SCHEDULE = [("driver", p) for p in DRIVER_POINTS] + [("worker", p) for p in WORKER_POINTS]


@dataclass
class Plan:
    """Everything a trial does, drawn from its seed before anything runs."""

    seed: int
    xs: list[float]
    sleeps: list[float]
    fails: set[int]
    factor: int
    max_depth: int
    victim: str  # "driver" or "worker"
    sig: signal.Signals
    target: str  # the kill point
    count: int  # mid_leaf: leaves started; after_staging: terminal nodes staged
    delay: float  # seconds more before the kill
    worker_pick: float  # which worker is killed or frozen
    frozen: bool  # driver trials: freeze a worker before the kill, wake it after the resume
    resume_slots: int

    @property
    def terminals(self) -> list[str]:
        rmap = RecursionMap(factor=self.factor, max_depth=self.max_depth)
        return [n.name for n in iter_terminal_nodes(len(self.xs), rmap)]

    @property
    def kind(self) -> str:
        return f"{self.victim}:{self.sig.name}" + ("+frozen-worker" if self.frozen else "")


def make_plan(seed: int) -> Plan:
    rng = random.Random(seed)
    n = rng.choice([24, 32])
    factor, max_depth = rng.choice([(2, 2), (2, 3), (3, 2)])
    victim, target = SCHEDULE[seed % len(SCHEDULE)]
    sig = rng.choices([signal.SIGKILL, signal.SIGTERM], weights=[2, 1])[0]
    plan = Plan(
        seed=seed,
        xs=[i + rng.choice([0.0, 0.25, 0.5]) for i in range(n)],
        sleeps=[round(rng.uniform(0.02, 0.06), 3) for _ in range(n)],
        fails=set(rng.sample(range(n), 2)),
        factor=factor,
        max_depth=max_depth,
        victim=victim,
        sig=sig,
        target=target,
        count=0,
        delay=0.0,
        worker_pick=rng.random(),
        frozen=victim == "driver" and rng.random() < 0.4,
        # Worker processes cost seconds of CPU to start: a third of the resumes use them.
        resume_slots=SLOTS if seed % 3 == 0 else 0,
    )
    plan.count = rng.randint(1, 3 if target == "mid_leaf" else len(plan.terminals) - 1)
    # The staging and commit windows last milliseconds: kill as soon as they show.
    plan.delay = {"startup": rng.uniform(0, 0.5), "mid_leaf": rng.uniform(0, 0.05)}.get(
        target, rng.uniform(0, 0.05) if target in ("after_staging", "after_commit") else 0.0
    )
    return plan


@dataclass
class Report:
    seed: int
    kind: str
    target: str
    point: str = "?"  # where the run stood when the kill landed
    ok: bool = False
    orphan_exit: float = 0.0  # s from the kill until the orphans that ran leaves were gone
    startup_orphan_exit: float = 0.0  # ... until every orphan was (some were still starting)
    status_seen: list[str] = field(default_factory=list)
    orphan_writes: int = 0  # files orphans wrote after the driver died, before the resume
    orphan_manifests: int = 0  # of which node manifests: an orphan finished its node
    late_orphan_writes: int = 0  # files written after the run finished (frozen orphans)
    half_written: int = 0  # files seen created but not fully written yet
    lost: int = 0
    duplicated: int = 0
    changed: int = 0
    version_diffs: int = 0
    uncommitted: int = 0
    seconds: float = 0.0


def wait_for_point(plan: Plan, driver: Script, run_dir: Path, leaves: Path) -> str:
    """Poll the store until the plan's kill point: "reached", or why not."""
    deadline = time.monotonic() + RUN_BOUND
    while True:
        if driver.popen.poll() is not None:
            return "driver finished first"
        if time.monotonic() > deadline:
            return "timeout"
        state = look(run_dir, leaves)
        if state.heartbeat and _reached(plan, state):
            if plan.delay:
                time.sleep(plan.delay)
            return "reached"
        time.sleep(POLL)


def _reached(plan: Plan, state: StoreState) -> bool:
    if plan.target == "startup":
        return True  # the driver runs the run: its workers start
    if plan.target == "mid_leaf":
        return state.leaves >= plan.count or bool(state.staged)
    if plan.target == "during_staging":
        return bool(state.staged - state.manifests) or set(plan.terminals) <= state.manifests
    if plan.target == "after_staging":
        return len(state.manifests & set(plan.terminals)) >= plan.count
    if plan.target == "during_commit":
        return bool(state.committed)
    assert plan.target == "after_commit"
    return bool(state.tables) and len(state.committed) == len(state.tables)


def run_trial(plan: Plan, tmp_path: Path, report: Report) -> None:
    started = time.monotonic()
    store, leaves = tmp_path / "store", tmp_path / "leaves"
    leaves.mkdir()
    env = environment(tmp_path)
    specs = [
        {"x": x, "sleep": s, "fail": i in plan.fails, "marker_dir": str(leaves)}
        for i, (x, s) in enumerate(zip(plan.xs, plan.sleeps, strict=True))
    ]
    config = {"slots": SLOTS, "factor": plan.factor, "max_depth": plan.max_depth, "specs": specs}
    seed = f"seed {plan.seed} ({plan.kind} at {plan.target})"
    scripts: list[Script] = []
    frozen = None
    try:
        driver = Script(["allocate", str(store), json.dumps(config)], env, tmp_path / "driver.log")
        scripts.append(driver)
        run_id = driver.event("allocated", timeout=RUN_BOUND)["run_id"]
        run_dir = store / run_id
        why = wait_for_point(plan, driver, run_dir, leaves)
        assert why != "timeout", f"{seed}: the kill point was not reached in {RUN_BOUND} s"
        # A fresh scan of /proc takes milliseconds: late points use the tracked workers.
        workers = workers_of(driver.proc.pid) if plan.target == "startup" else []
        workers = workers or driver.live_workers()
        at_kill = look(run_dir, leaves)  # where the run stands as the signal goes
        report.point = at_kill.point(plan.terminals) if why == "reached" else "too_late"
        kill_time = time.monotonic()
        if why == "reached" and plan.victim == "driver":
            if plan.frozen and workers:
                frozen = workers[int(plan.worker_pick * len(workers))]
                try:
                    os.kill(frozen.pid, signal.SIGSTOP)
                except ProcessLookupError:  # it left as the run ended: nothing to freeze
                    frozen = None
            os.kill(driver.proc.pid, plan.sig)
        elif why == "reached" and workers:
            with contextlib.suppress(ProcessLookupError):  # it left as the run ended
                os.kill(workers[int(plan.worker_pick * len(workers))].pid, plan.sig)
        killed = listing(run_dir)

        if plan.victim == "driver":
            driver.popen.wait(timeout=30)
            orphans = [w for w in workers if w != frozen]
            ran = leaf_pids(leaves)
            busy = [w for w in orphans if w.pid in ran]
            report.orphan_exit = wait_gone(busy, WATCHDOG_BOUND, since=kill_time)
            assert report.orphan_exit <= WATCHDOG_BOUND, (
                f"{seed}: orphaned workers {[w.pid for w in busy if alive(w)]} "
                f"still alive {WATCHDOG_BOUND} s after their driver died"
            )
            report.startup_orphan_exit = wait_gone(orphans, ORPHAN_BOUND, since=kill_time)
            assert report.startup_orphan_exit <= ORPHAN_BOUND, (
                f"{seed}: orphaned workers {[w.pid for w in orphans if alive(w)]} "
                f"(still starting at the kill) alive {ORPHAN_BOUND} s after their driver died"
            )
            # The committed versions at the kill (orphans never commit), then what orphans wrote.
            before = snapshot(run_dir)
            status_at_kill = manifest_of(run_dir)["status"]
            writes = writes_between(killed, listing(run_dir))
            report.orphan_writes, report.half_written = len(writes), len(writes.completed)
            report.orphan_manifests = sum("scatter-gather/nodes/" in p for p in writes.new)
            assert not writes.rewritten, f"{seed}: orphans rewrote {writes.rewritten}"
            assert not [p for p in writes.new if "_delta_log" in p], (
                f"{seed}: orphans wrote Delta log entries: {writes.new}"
            )
            resumer = Script(
                ["resume", str(store), run_id, str(STATUS_BOUND), str(plan.resume_slots)],
                env,
                tmp_path / "resume.log",
            )
            scripts.append(resumer)
            status = resumer.event("status", timeout=RUN_BOUND)
            report.status_seen = status["seen"]
            expected = "interrupted" if status_at_kill == "running" else status_at_kill
            assert status["seen"][-1] == expected, (
                f"{seed}: status() said {' -> '.join(status['seen'])} after the driver was "
                f"killed (its manifest said {status_at_kill!r}); expected {expected!r}"
            )
            finished = resumer.event("resumed", timeout=RUN_BOUND)
            resumer.popen.wait(timeout=30)
        else:
            before = snapshot(run_dir)
            finished = driver.event("finished", timeout=RUN_BOUND)
            driver.popen.wait(timeout=30)
        n_failed = len(plan.fails)
        assert (finished["status"], finished["done"], finished["failed"]) == (
            "partial",
            len(plan.xs) - n_failed,
            n_failed,
        ), f"{seed}: the run ended {finished}"

        # Right after the run finished, then once every orphan is gone.
        finished_snapshot, finished_listing = snapshot(run_dir), listing(run_dir)
        if frozen is not None:
            woken = time.monotonic()
            os.kill(frozen.pid, signal.SIGCONT)
            waited = wait_gone([frozen], ORPHAN_BOUND, since=woken)
            assert waited <= ORPHAN_BOUND, f"{seed}: the woken orphan {frozen.pid} lives on"
            frozen = None
        everyone = [w for s in scripts for w in s.workers]
        assert wait_gone(everyone, ORPHAN_BOUND) <= ORPHAN_BOUND, (
            f"{seed}: workers {[w.pid for w in everyone if alive(w)]} outlived the run"
        )
        late = writes_between(finished_listing, listing(run_dir))
        report.late_orphan_writes = len(late)
        report.half_written += len(late.completed)
        assert not late.rewritten, f"{seed}: late orphans rewrote {late.rewritten}"
        final = snapshot(run_dir)
        diffs = compare(finished_snapshot, final) + compare(before, final, subset=True)
        outcome = check_outcome(run_dir, plan.xs, plan.fails)
        report.version_diffs = len(diffs)
        report.lost, report.duplicated = len(outcome.lost), outcome.duplicated
        report.changed, report.uncommitted = len(outcome.changed), outcome.uncommitted
        manifest = manifest_of(run_dir)
        assert not diffs, f"{seed}: committed versions changed: {diffs}"
        assert not outcome.lost, f"{seed}: specs lost: {outcome.lost}"
        assert not outcome.duplicated, f"{seed}: {outcome.duplicated} duplicated rows"
        assert not outcome.changed, f"{seed}: wrong results: {outcome.changed}"
        assert (manifest["status"], manifest["missing"]) == ("partial", 0), (
            f"{seed}: the manifest says {manifest['status']}: {manifest['message']}"
        )
        report.ok = True
    finally:
        report.seconds = time.monotonic() - started
        if frozen is not None:  # a failed trial: wake it, its watchdog ends it
            os.kill(frozen.pid, signal.SIGCONT)
        for script in scripts:
            script.stop()


def summary(reports: list[Report], seconds: float) -> str:
    def total(name: str) -> int:
        return sum(getattr(r, name) for r in reports)

    def counts(values: Any) -> str:
        return ", ".join(f"{k} {n}" for k, n in sorted(Counter(values).items()))

    statuses = (" -> ".join(r.status_seen) for r in reports if r.status_seen)
    lines = [
        f"kill trials: {len(reports)} ({sum(not r.ok for r in reports)} failed) in {seconds:.0f} s",
        f"  kills by kind:          {counts(r.kind for r in reports)}",
        f"  kill points targeted:   {counts(r.target for r in reports)}",
        f"  kill points landed:     {counts(r.point for r in reports)}",
        f"  specs lost {total('lost')}, duplicated {total('duplicated')}, "
        f"changed {total('changed')}; committed versions changed {total('version_diffs')}",
        f"  orphan writes detected: {total('orphan_writes')} after their driver died (before "
        f"the resume; {total('orphan_manifests')} node manifests), {total('late_orphan_writes')} by woken frozen orphans after the run "
        "finished; files rewritten: 0",
        f"  files seen half-written (created, then written): {total('half_written')}",
        f"  staged files left uncommitted: {total('uncommitted')}",
        f"  slowest orphan exit after the kill: "
        f"{max((r.orphan_exit for r in reports), default=0):.2f} s for workers that ran leaves, "
        f"{max((r.startup_orphan_exit for r in reports), default=0):.2f} s for all "
        "(a worker still importing starts its watchdog after)",
        f"  status() after driver kills: {counts(statuses)}",
    ]
    lines += [
        f"    seed {r.seed:2d} {'ok    ' if r.ok else 'FAILED'} {r.kind:26s} {r.target:14s} "
        f"landed {r.point:14s} orphan writes {r.orphan_writes}+{r.late_orphan_writes} "
        f"{r.seconds:4.1f} s"
        for r in sorted(reports, key=lambda r: r.seed)
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- tests


@pytest.mark.slow
@pytest.mark.timeout(900)  # 20 trials of whole processes; about 2 min on an idle 2-core machine
def test_kill_trials(tmp_path: Path) -> None:
    """20 seeded kill trials, two at a time; a failure names its seeds."""
    plans = [make_plan(seed) for seed in SEEDS]
    reports = {p.seed: Report(p.seed, p.kind, p.target) for p in plans}
    errors: dict[int, str] = {}

    def trial(plan: Plan) -> None:
        folder = tmp_path / f"seed-{plan.seed}"
        folder.mkdir()
        try:
            run_trial(plan, folder, reports[plan.seed])
        except Exception as exc:
            errors[plan.seed] = f"{type(exc).__name__}: {exc}"

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        list(pool.map(trial, plans))
    print("\n" + summary(list(reports.values()), time.monotonic() - started))
    assert not errors, f"kill trials failed for seeds {sorted(errors)}:\n" + "\n".join(
        f"--- seed {s}: {m}" for s, m in sorted(errors.items())
    )


@pytest.mark.slow
def test_killed_driver_orphans_exit_and_status_is_interrupted(tmp_path: Path) -> None:
    """Workers busy under a SIGKILLed driver exit on their own; status() says interrupted."""
    from scythe.experiments import ExperimentRun

    store, leaves = tmp_path / "store", tmp_path / "leaves"
    leaves.mkdir()
    # Two terminal nodes of four 2-second leaves: the workers are busy when the driver dies.
    specs = [{"x": float(i), "sleep": 2.0, "marker_dir": str(leaves)} for i in range(8)]
    config = {"slots": SLOTS, "factor": 2, "max_depth": 1, "specs": specs}
    env = environment(tmp_path)
    driver = Script(["allocate", str(store), json.dumps(config)], env, tmp_path / "driver.log")
    try:
        run_id = driver.event("allocated", timeout=RUN_BOUND)["run_id"]
        run_dir = store / run_id
        deadline = time.monotonic() + RUN_BOUND
        while len(os.listdir(leaves)) < SLOTS:  # both workers are inside a leaf
            assert time.monotonic() < deadline, f"leaves did not start:\n{driver.stderr()}"
            time.sleep(0.02)
        workers = workers_of(driver.proc.pid)
        assert len(workers) == SLOTS
        run = ExperimentRun.open(run_id, storage=store)
        assert run.status().status == "running", "a live driver's run shows as running"
        killed = listing(run_dir)
        kill_time = time.monotonic()
        os.kill(driver.proc.pid, signal.SIGKILL)
        driver.popen.wait(timeout=10)
        exited = wait_gone(workers, WATCHDOG_BOUND, since=kill_time)
        assert exited <= WATCHDOG_BOUND, (
            f"workers {[w.pid for w in workers if alive(w)]} outlived their driver by more "
            f"than {WATCHDOG_BOUND} s"
        )
        assert not writes_between(killed, listing(run_dir)), "orphans wrote after the kill"
        assert manifest_of(run_dir)["status"] == "running"  # nobody could record the kill
        stale_after = 3 * HEARTBEAT + 1.0  # STALE_BEATS beats and a second (scythe/layout.py)
        deadline = time.monotonic() + stale_after + STATUS_BOUND
        while (status := run.status().status) == "running":
            assert time.monotonic() < deadline, "status() still says running"
            time.sleep(0.05)
        assert status == "interrupted"
        print(f"\nworkers exited {exited:.2f} s after their driver was SIGKILLed")
    finally:
        driver.stop()


# --------------------------------------------------------------------------- torn writes


def test_put_if_absent_killed_mid_write_leaves_no_torn_file(tmp_path: Path) -> None:
    """A key is absent or whole after its writer is killed (the store's contract: atomic)."""
    size = 64 << 20  # takes long enough to write that the kill lands inside the write
    code = (
        "import sys; from scythe.storage import LocalStore; "
        f"LocalStore(sys.argv[1]).put_if_absent('run/scatter-gather/nodes/0.json', b'x' * {size})"
    )
    target = tmp_path / "run" / "scatter-gather" / "nodes" / "0.json"
    writer = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)])
    try:
        deadline = time.monotonic() + 60
        while not target.exists() and writer.poll() is None and time.monotonic() < deadline:
            time.sleep(0.0005)
    finally:
        writer.kill()
        writer.wait()
    assert not target.exists() or target.stat().st_size == size, (
        f"{target.name} exists with {target.stat().st_size} of {size} bytes"
    )


def test_resume_after_a_torn_node_manifest(tmp_path: Path) -> None:
    """What a worker killed inside put_if_absent of its node manifest leaves: resume must
    run that node again, not fail on it forever."""
    code = """
import sys
from pathlib import Path
from kill_experiments import Sleepy, sleepy
from scythe import RecursionMap
from scythe.experiments import BaseExperiment, ExperimentRun, LocalEngine

class SubmitNothing:
    name, parallelism = "local", 1
    def check(self, experiment): pass
    def waits_by_default(self): return False
    def submit(self, root): return None

store = sys.argv[1]
run, _ = BaseExperiment(sleepy, storage=store).allocate(
    [Sleepy(x=float(i)) for i in range(4)],
    recursion_map=RecursionMap(factor=2, max_depth=1), engine=SubmitNothing())
torn = Path(store, run.layout.node_manifest("0"))
torn.parent.mkdir(parents=True, exist_ok=True)
torn.write_bytes(b"")  # created by open(path, "xb"), killed before write()
try:
    print(run.resume(engine=LocalEngine(slots=0)).result().status)
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}")
print(ExperimentRun.open(run.run_id, storage=store).status().status)
"""
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "store")],
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=RUN_BOUND,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["complete", "complete"], done.stdout
