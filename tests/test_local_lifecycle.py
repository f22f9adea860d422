"""The local engine's worker processes: started while a run is allocated, gone when idle,
and nothing of the engine left running once the user's script has returned."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from light_experiments import Anything, loaded_modules
from scythe_test_experiments import Probe, probe

from scythe import BaseExperiment, LocalEngine

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
    script = tmp_path / "sweep.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(TESTS)!r})
            from light_experiments import Anything, loaded_modules
            from scythe import BaseExperiment

            if __name__ == "__main__":
                specs = [Anything(x=float(i)) for i in range(20)]
                run, ref = BaseExperiment(loaded_modules, storage={str(tmp_path / "store")!r}).allocate(specs)
                print(ref.result().status)
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
    assert out.decode().strip() == "complete"
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


def test_a_prepared_pool_is_not_taken_from_a_run_in_flight(tmp_path):
    engine = LocalEngine(slots=1, progress=False)
    try:
        with engine._pool.lock:  # a run of this engine holds its workers
            engine.prepare(probe, 10)
            assert engine._pool.workers == []
    finally:
        engine.close()


def test_workers_import_only_what_a_leaf_needs(tmp_path):
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
