"""The local engine's worker processes: started while a run is allocated, gone when idle,
and nothing of the engine left running once the user's script has returned."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from light_experiments import Anything, loaded_modules
from scythe_test_experiments import Probe, probe

from scythe import BaseExperiment, LocalEngine
from scythe.errors import SpecValidationError

TESTS = Path(__file__).resolve().parent


def _group(pgid: int) -> list[str]:
    """Command lines of the live (not zombie) processes of process group ``pgid``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        state, _ppid, group = stat.rsplit(")", 1)[1].split()[:3]
        if int(group) == pgid and state != "Z":
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def test_nothing_of_the_engine_outlives_the_users_script(tmp_path):
    # The script also reads its results back: Delta tables are created, committed and read
    # through deltalake's arro3 types and polars' Parquet reader, so a scalar sweep never
    # loads pyarrow, pandas or pandera.
    script = tmp_path / "sweep.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json, sys
            sys.path.insert(0, {str(TESTS)!r})
            from light_experiments import Anything, loaded_modules
            from scythe import BaseExperiment

            if __name__ == "__main__":
                specs = [Anything(x=float(i)) for i in range(20)]
                run, ref = BaseExperiment(loaded_modules, storage={str(tmp_path / "store")!r}).allocate(specs)
                status, rows = ref.result().status, run.results().scalars.height
                heavy = ["pyarrow", "pandas", "pandera", "hypothesis"]
                loaded = [m for m in heavy if m in sys.modules]
                print(json.dumps({{"status": status, "rows": rows, "loaded": loaded}}))
            """
        )
    )
    env = {**os.environ, "SCYTHE_SLOTS": "2"}
    process = subprocess.Popen(
        [sys.executable, str(script)],
        start_new_session=True,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = process.communicate(timeout=180)
    left = _group(process.pid)  # read at once: the script has returned
    assert process.returncode == 0, err.decode()[-2000:]
    report = json.loads(out.decode().strip().splitlines()[-1])
    assert report == {"status": "complete", "rows": 20, "loaded": []}
    assert left == []


def test_workers_start_while_the_run_is_allocated_and_are_reused(tmp_path):
    engine = LocalEngine(slots=2, progress=False)
    try:
        engine.prepare(probe, 50)
        started = [w.process.pid for w in engine._pool.workers]
        assert len(started) == 2 and all(w.process.is_alive() for w in engine._pool.workers)
        _, ref = BaseExperiment(probe, storage=tmp_path).allocate(
            [Probe(x=float(i)) for i in range(8)], engine=engine
        )
        assert ref.result().status == "complete"
        assert [w.process.pid for w in engine._pool.workers] == started
    finally:
        engine.close()


def test_idle_workers_exit_and_the_next_run_starts_new_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("SCYTHE_WORKER_IDLE", "1")
    engine = LocalEngine(slots=1, progress=False)
    experiment = BaseExperiment(probe, storage=tmp_path)
    try:
        _, ref = experiment.allocate([Probe(x=1.0), Probe(x=2.0)], engine=engine)
        assert ref.result().status == "complete"
        (first,) = engine._pool.workers
        first.process.join(timeout=30)
        assert first.process.exitcode == 0  # it left on its own, idle
        _, ref = experiment.allocate([Probe(x=3.0)], engine=engine, version="bumpminor")
        assert ref.result().status == "complete"
        (second,) = engine._pool.workers
        assert second.process.pid != first.process.pid
    finally:
        engine.close()


def test_the_drivers_objects_sit_out_collections_while_its_run_is_in_flight(tmp_path):
    engine = LocalEngine(slots=1, progress=False)
    experiment = BaseExperiment(probe, storage=tmp_path)
    try:
        assert gc.get_freeze_count() == 0
        _, ref = experiment.allocate(
            [Probe(x=float(i), mode="slow") for i in range(3)], engine=engine, wait=False
        )
        during = gc.get_freeze_count()  # the worker sleeps 0.6 s: the run is in flight
        assert ref.result().status == "complete"
        assert during > 0 and gc.get_freeze_count() == 0
        # an allocation that fails after the engine prepared its workers gives them back too
        with pytest.raises(SpecValidationError):
            experiment.allocate([{"x": "not a number"}], engine=engine, version="bumpminor")
        assert gc.get_freeze_count() == 0
    finally:
        engine.close()


def test_objects_the_program_froze_itself_stay_frozen(tmp_path):
    engine = LocalEngine(slots=1, progress=False)
    gc.freeze()
    try:
        mine = gc.get_freeze_count()
        _, ref = BaseExperiment(probe, storage=tmp_path).allocate([Probe(x=1.0)], engine=engine)
        assert ref.result().status == "complete"
        assert gc.get_freeze_count() > 0.9 * mine  # not thawed (a few were freed since)
    finally:
        gc.unfreeze()
        engine.close()


def test_a_prepared_pool_is_not_taken_from_a_run_in_flight(tmp_path):
    engine = LocalEngine(slots=1, progress=False)
    try:
        with engine._pool.lock:  # a run of this engine holds its workers
            engine.prepare(probe, 10)
            assert engine._pool.workers == []
    finally:
        engine.close()


def test_spawned_workers_import_only_what_a_leaf_needs(tmp_path, monkeypatch):
    monkeypatch.setenv("SCYTHE_WORKER_START", "spawn")  # a fresh interpreter: what does it load?
    engine = LocalEngine(slots=2, progress=False)
    try:
        run, ref = BaseExperiment(loaded_modules, storage=tmp_path).allocate(
            [Anything(x=float(i)) for i in range(4)], engine=engine
        )
        assert ref.result().status == "complete"
        # no pandas, pandera, hypothesis, deltalake, pyarrow, boto3 or Hatchet in a worker
        assert run.results().scalars["modules"].to_list() == [""] * 4
    finally:
        engine.close()


_ORIGIN_SCRIPT = """
import json, os, sys, threading
sys.path.insert(0, {tests!r})
import light_experiments
from light_experiments import Anything, worker_origin
from scythe import BaseExperiment, LocalEngine

if __name__ == "__main__":
    if sys.argv[1] == "thread":  # a thread of the user's, alive while workers start
        stop = threading.Event()
        threading.Thread(target=stop.wait, daemon=True).start()
    light_experiments.MARK = "set by the driver"
    engine = LocalEngine(slots=2, progress=False)
    experiment = BaseExperiment(worker_origin, storage={storage!r})
    if sys.argv[1] == "storage-first":  # the store's client has talked to S3 before the fork
        experiment.list_versions()
    run, ref = experiment.allocate([Anything(x=float(i)) for i in range(6)], engine=engine)
    status = ref.result().status
    frame = run.results().scalars
    print(json.dumps({{
        "status": status,
        "forked": [w.forked for w in engine._pool.workers],
        "marks": sorted(set(frame["mark"].to_list())),
        "parents": sorted(set(frame["parent"].to_list())),
        "names": sorted(set(frame["name"].to_list())),
        "driver": os.getpid(),
    }}))
"""


def _origin(tmp_path: Path, storage: str, mode: str = "plain", **env: str) -> dict:
    script = tmp_path / f"origin_{mode}.py"
    script.write_text(_ORIGIN_SCRIPT.format(tests=str(TESTS), storage=storage))
    done = subprocess.run(
        [sys.executable, str(script), mode],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(sys.platform != "linux", reason="workers are forked on Linux only")
def test_a_fresh_script_forks_its_workers_and_they_run_the_same_run(tmp_path):
    seen = _origin(tmp_path, str(tmp_path / "store"))
    assert seen["status"] == "complete"
    assert seen["forked"] == [True, True]
    assert seen["marks"] == ["set by the driver"]  # the driver's memory, not a new import
    assert seen["parents"] == [seen["driver"]]
    assert seen["names"] == ["scythe-worker"]  # what ps and top show


@pytest.mark.s3
@pytest.mark.skipif(sys.platform != "linux", reason="workers are forked on Linux only")
def test_forked_workers_write_to_s3_through_clients_of_their_own(tmp_path, s3_store):
    # The driver's store has used its S3 client before the workers fork; the run still
    # completes on S3 (each node uses the stores the driver sends, unpickled afresh).
    seen = _origin(
        tmp_path,
        s3_store.uri(),
        "storage-first",
        SCYTHE_STORAGE_ENDPOINT_URL=s3_store.endpoint_url or "",
    )
    assert seen["status"] == "complete" and seen["forked"] == [True, True]


@pytest.mark.parametrize(
    ("mode", "env"),
    [("thread", {}), ("plain", {"SCYTHE_WORKER_START": "spawn"})],
    ids=["a-thread-of-the-users", "spawn-setting"],
)
def test_workers_are_spawned_when_forking_is_not_safe_or_not_wanted(tmp_path, mode, env):
    seen = _origin(tmp_path, str(tmp_path / "store"), mode, **env)
    assert seen["status"] == "complete"
    assert seen["forked"] == [False, False]
    assert seen["marks"] == [""]  # a new interpreter imported the experiment's module
    assert seen["parents"] == [seen["driver"]]


def test_forking_waits_for_no_thread_pool(tmp_path):
    code = textwrap.dedent(
        """
        import polars as pl
        from scythe.engines.local import can_fork
        fresh = can_fork()
        import numpy  # OpenBLAS starts its pool (it stops it itself before a fork)
        with_numpy = can_fork()
        pl.DataFrame({"a": list(range(200_000))}).sort("a")  # polars starts its thread pool
        pooled = can_fork()
        print(fresh, with_numpy, pooled)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    fresh, with_numpy, pooled = done.stdout.split()
    assert pooled == "False"
    expected = "True" if sys.platform == "linux" else "False"
    assert (fresh, with_numpy) == (expected, expected)
