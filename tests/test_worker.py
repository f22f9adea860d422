"""``scythe worker``: which tasks a worker serves for each role, its slots, labels and name.

Workers are built as real ``hatchet_sdk`` objects (from a synthetic token) and
never started: starting one needs a Hatchet server.
"""

from __future__ import annotations

import os
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import scythe_test_experiments
from hatchet_sdk import Context, EmptyModel, Worker
from scythe_test_experiments import probe
from test_hatchet_engine import synthetic_token
from typer.testing import CliRunner

import scythe.engines.hatchet as hx
from scythe.cli import app
from scythe.errors import SettingsError, WorkerConfigError
from scythe.registry import ExperimentRegistry, ExperimentRunnable
from scythe.worker import (
    ScytheWorkerConfig,
    ScytheWorkerLabel,
    build_worker,
    load_experiments,
    plan_worker,
    worker_config,
    worker_location,
)


@pytest.fixture
def hatchet_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A synthetic Hatchet connection and no SCYTHE_WORKER_* variable from the outside."""
    monkeypatch.setenv("HATCHET_CLIENT_TOKEN", synthetic_token())
    monkeypatch.setenv("HATCHET_CLIENT_TLS_STRATEGY", "none")
    for name in [n for n in os.environ if n.startswith("SCYTHE_WORKER_")]:
        monkeypatch.delenv(name)
    hx.reset_hatchet()
    yield
    hx.reset_hatchet()


@pytest.fixture
def signal_handlers() -> Iterator[None]:
    """Building a hatchet_sdk Worker installs its own SIGINT/SIGTERM handlers: put ours back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_fan_worker_serves_only_the_durable_scatter_gather_task(hatchet_env: None) -> None:
    plan = plan_worker(ScytheWorkerConfig(DOES_LEAF=False, DURABLE_SLOTS=64), [probe])

    assert plan.task_names == ["scythe_scatter_gather"]
    assert (plan.slots, plan.durable_slots) == (None, 64)  # no leaf slot to hold while waiting
    assert plan.name.startswith("scythe-fan-")


def test_leaf_worker_serves_the_experiments_with_default_slots_and_labels(
    hatchet_env: None,
) -> None:
    config = ScytheWorkerConfig(DOES_FAN=False, SLOTS=3, HIGH_CPU=True, HAS_GPU=True)
    plan = plan_worker(config, [probe])

    assert plan.task_names == ["probe"]
    assert plan.workflows[0] is hx.hatchet_task_for(probe)
    assert (plan.slots, plan.durable_slots) == (3, None)
    assert plan.labels == {"high_cpu": "yes", "has_gpu": "yes"}
    assert plan.name.startswith("scythe-leaf-")


def test_worker_with_both_roles_has_both_slot_pools(hatchet_env: None) -> None:
    plan = plan_worker(ScytheWorkerConfig(NAME="all-in-one", SLOTS=2), [probe])

    assert plan.task_names == ["scythe_scatter_gather", "probe"]
    assert (plan.name, plan.slots, plan.durable_slots) == ("all-in-one", 2, 1000)


def test_built_worker_is_a_hatchet_worker_with_the_plan_and_is_not_started(
    hatchet_env: None, signal_handlers: None
) -> None:
    plan = plan_worker(
        ScytheWorkerConfig(NAME="w1", SLOTS=4, DURABLE_SLOTS=8, HIGH_MEMORY=True), [probe]
    )
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", DeprecationWarning
        )  # the SDK's accessors below are deprecated
        worker = build_worker(plan)
        slot_config, labels = worker.slot_config, worker.labels

    assert isinstance(worker, Worker)
    assert worker.name == "w1"
    assert slot_config == {"default": 4, "durable": 8}
    assert labels == {"high_memory": "yes"}
    assert [w.name for w in worker._workflows] == ["scythe_scatter_gather", "probe"]
    assert worker.status.name == "INITIALIZED"


def test_a_worker_without_a_role_or_without_experiments_is_refused(hatchet_env: None) -> None:
    with pytest.raises(WorkerConfigError, match="at least one role"):
        plan_worker(ScytheWorkerConfig(DOES_FAN=False, DOES_LEAF=False), [probe])
    with pytest.raises(WorkerConfigError, match="--experiments module:attr"):
        plan_worker(ScytheWorkerConfig(DOES_FAN=False), [])


def ping(inp: EmptyModel, ctx: Context) -> dict[str, str]:
    """A plain Hatchet task a user includes next to their experiments."""
    return {"pong": "yes"}


def test_included_hatchet_workflows_are_served_by_leaf_workers(hatchet_env: None) -> None:
    extra = hx.hatchet_client().task(name="scythe_test_ping")(ping)
    try:
        assert ExperimentRegistry.Include(extra) is extra
        plan = plan_worker(
            ScytheWorkerConfig(DOES_FAN=False), [probe], ExperimentRegistry.workflows()
        )
        fan_only = plan_worker(
            ScytheWorkerConfig(DOES_LEAF=False), [probe], ExperimentRegistry.workflows()
        )
    finally:
        ExperimentRegistry.unregister("scythe_test_ping")

    assert plan.task_names == ["probe", "scythe_test_ping"]
    assert fan_only.task_names == ["scythe_scatter_gather"]


def test_worker_label_asks_for_the_label_workers_advertise() -> None:
    (label,) = ScytheWorkerLabel.HAS_GPU.worker_label.values()
    advertised = ScytheWorkerConfig(HAS_GPU=True).labels

    assert (label.key, label.value, label.required) == ("has_gpu", "yes", True)
    assert advertised == {label.key: label.value}
    assert set(
        {**ScytheWorkerLabel.HIGH_MEMORY.worker_label, **ScytheWorkerLabel.HIGH_CPU.worker_label}
    ) == {"high_memory", "high_cpu"}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"AWS_BATCH_JOB_ARRAY_INDEX": "12", "AWS_REGION": "eu-west-1", "HOSTNAME": "ip-10"},
            "aws-batch-eu-west-1-0012",
        ),
        (
            {
                "ECS_CONTAINER_METADATA_URI_V4": "http://169.254.170.2/v4/x",
                "AWS_DEFAULT_REGION": "us-east-2",
                "HOSTNAME": "ip-10-0-0-1",
            },
            "aws-ecs-us-east-2-ip-10-0-0-1",
        ),
        ({"FLY_REGION": "iad", "FLY_MACHINE_ID": "3d8d9", "HOSTNAME": "x"}, "fly-iad-3d8d9"),
        ({"HOSTNAME": "lab-box-7"}, "lab-box-7"),
    ],
)
def test_worker_names_say_where_the_worker_runs(environ: dict[str, str], expected: str) -> None:
    assert worker_location(environ) == expected


def test_worker_config_reads_scythe_worker_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCYTHE_WORKER_SLOTS", "6")
    monkeypatch.setenv("SCYTHE_WORKER_DOES_FAN", "false")
    monkeypatch.setenv("SCYTHE_WORKER_HIGH_MEMORY", "1")
    config = worker_config()

    assert (config.SLOTS, config.DOES_FAN, config.DOES_LEAF, config.labels) == (
        6,
        False,
        True,
        {"high_memory": "yes"},
    )

    monkeypatch.setenv("SCYTHE_WORKER_SLOTS", "zero")
    with pytest.raises(SettingsError, match="SCYTHE_WORKER_SLOTS='zero' is invalid"):
        worker_config()


def test_experiments_are_loaded_from_module_attr_references() -> None:
    assert load_experiments(["scythe_test_experiments:probe"]) == [probe]
    everything = load_experiments(["scythe_test_experiments"])  # every experiment in the module
    assert probe in everything
    assert {e.name for e in everything} == {
        v.name for v in vars(scythe_test_experiments).values() if isinstance(v, ExperimentRunnable)
    }
    with pytest.raises(WorkerConfigError, match="cannot import 'no_such_module'"):
        load_experiments(["no_such_module:x"])
    with pytest.raises(WorkerConfigError, match="has no attribute 'nope'"):
        load_experiments(["scythe_test_experiments:nope"])
    with pytest.raises(WorkerConfigError, match="is a ModelMetaclass, not an experiment"):
        load_experiments(["scythe_test_experiments:Probe"])


def test_cli_dry_run_prints_the_workers_tasks_slots_and_labels(
    hatchet_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCYTHE_WORKER_HIGH_CPU", "true")
    monkeypatch.setenv("SCYTHE_WORKER_SLOTS", "2")
    done = CliRunner().invoke(app, ["worker", "-e", "scythe_test_experiments:probe", "--dry-run"])

    assert done.exit_code == 0, done.output
    assert "tasks    scythe_scatter_gather, probe" in done.output
    assert "slots    2 leaf (default), 1000 scatter/gather (durable)" in done.output
    assert "high_cpu" in done.output


def test_cli_without_a_token_names_both_ways_to_connect(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("HATCHET_CLIENT_TOKEN", raising=False)
    monkeypatch.delenv("SCYTHE_HATCHET_EMBEDDED", raising=False)
    monkeypatch.chdir(tmp_path)  # hatchet_sdk also reads ./.env
    hx.reset_hatchet()
    done = CliRunner().invoke(app, ["worker", "-e", "scythe_test_experiments:probe", "--dry-run"])

    assert done.exit_code == 2
    assert "HATCHET_CLIENT_TOKEN" in done.output and "SCYTHE_HATCHET_EMBEDDED=1" in done.output
