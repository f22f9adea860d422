"""Driver of the kill trials (tests/faults/test_kill_trials.py), run as a subprocess.

    python kill_driver.py allocate STORE CONFIG_JSON   # allocate, print the run id, wait
    python kill_driver.py resume STORE RUN_ID TIMEOUT SLOTS  # wait for "interrupted", resume
    python kill_driver.py status STORE RUN_ID          # print status() once

Every line it prints for the test is ``@@ <json>``. ``kill_experiments`` must be
importable (the test puts this directory on ``PYTHONPATH``); it is imported in
``main`` only, so collecting this file as a doctest module imports nothing.
"""

from __future__ import annotations

import json
import sys
import time


def say(**fields: object) -> None:
    print("@@", json.dumps(fields), flush=True)


def allocate(store: str, config: dict) -> None:
    from kill_experiments import Sleepy, sleepy

    from scythe import RecursionMap
    from scythe.experiments import BaseExperiment, LocalEngine

    specs = [Sleepy(**fields) for fields in config["specs"]]
    engine = LocalEngine(slots=config["slots"], progress=False)
    run, ref = BaseExperiment(sleepy, storage=store).allocate(
        specs,
        version="bumpminor",
        recursion_map=RecursionMap(factor=config["factor"], max_depth=config["max_depth"]),
        engine=engine,
        wait=False,
    )
    say(event="allocated", run_id=run.run_id)
    summary = ref.result()
    say(event="finished", status=summary.status, done=summary.done, failed=summary.failed)


def resume(store: str, run_id: str, timeout: float, slots: int) -> None:
    import kill_experiments  # noqa: F401  (registers the experiment by its name)

    from scythe.experiments import ExperimentRun, LocalEngine

    run = ExperimentRun.open(run_id, storage=store)
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        status = run.status().status
        if not seen or seen[-1] != status:
            seen.append(status)
        if status != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    say(event="status", seen=seen, waited=round(timeout - (deadline - time.monotonic()), 2))
    summary = run.resume(engine=LocalEngine(slots=slots, progress=False)).result()
    say(event="resumed", status=summary.status, done=summary.done, failed=summary.failed)


def status(store: str, run_id: str) -> None:
    from scythe.experiments import ExperimentRun

    counts = ExperimentRun.open(run_id, storage=store).status()
    say(event="status", status=counts.status, done=counts.done, total=counts.total)


def main(argv: list[str]) -> None:
    command, store, *rest = argv
    if command == "allocate":
        allocate(store, json.loads(rest[0]))
    elif command == "resume":
        resume(store, rest[0], float(rest[1]), int(rest[2]))
    elif command == "status":
        status(store, rest[0])
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
