"""The Hatchet worker: which Scythe tasks it serves, with how many slots and which labels.

A worker has one or both roles:

- **fan** (``SCYTHE_WORKER_DOES_FAN``): runs the ``scythe_scatter_gather`` task, a
  durable task that waits in a *durable* slot while its children run, so fan
  nodes never hold the slots leaves need (see ``docs/deployment.md``);
- **leaf** (``SCYTHE_WORKER_DOES_LEAF``): runs the experiments' leaf tasks, one
  spec per *default* slot.

``ScytheWorkerConfig`` reads ``SCYTHE_WORKER_*`` when asked for; ``plan_worker``
turns it and the experiments into a :class:`WorkerPlan` (tasks built, nothing contacted), and
``build_worker`` makes the ``hatchet_sdk`` worker from the plan without starting it.

>>> config = ScytheWorkerConfig(NAME="fan-1", DOES_LEAF=False, DURABLE_SLOTS=50)
>>> (config.computed_name, config.labels)
('fan-1', {})
>>> ScytheWorkerConfig(HIGH_MEMORY=True, HAS_GPU=True).labels
{'high_memory': 'yes', 'has_gpu': 'yes'}
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from scythe.errors import WorkerConfigError
from scythe.registry import ExperimentRegistry, ExperimentRunnable, _is_hatchet_workflow
from scythe.settings import LABEL_ON, _read_settings, register_settings_class

if TYPE_CHECKING:
    from hatchet_sdk import Worker
    from hatchet_sdk.labels import DesiredWorkerLabel
    from hatchet_sdk.runnables.workflow import BaseWorkflow


class ScytheWorkerLabel(StrEnum):
    """Capabilities a worker advertises and an experiment can require.

    ``.worker_label`` is the ``desired_worker_labels`` entry that sends an
    experiment's leaves only to workers with that capability; combine several
    with ``{**a.worker_label, **b.worker_label}``::

        @ExperimentRegistry.Register(desired_worker_labels=ScytheWorkerLabel.HIGH_MEMORY.worker_label)
        def simulate(spec: Building) -> Energy: ...
    """

    HIGH_MEMORY = "high_memory"
    HIGH_CPU = "high_cpu"
    HAS_GPU = "has_gpu"

    @property
    def worker_label(self) -> dict[str, DesiredWorkerLabel]:
        """``{key: DesiredWorkerLabel(value="yes", required=True)}`` for ``desired_worker_labels``."""
        from hatchet_sdk.labels import DesiredWorkerLabel

        return {self.value: DesiredWorkerLabel(key=self.value, value=LABEL_ON, required=True)}


DEFAULT_DURABLE_SLOTS = 1000


def worker_location(environ: Mapping[str, str] | None = None) -> str:
    """Where this worker runs, for its name: AWS Batch array index, ECS, Fly region, else host name.

    >>> worker_location({"AWS_BATCH_JOB_ARRAY_INDEX": "7", "AWS_REGION": "us-east-1"})
    'aws-batch-us-east-1-0007'
    >>> worker_location({"FLY_REGION": "iad", "FLY_MACHINE_ID": "e784"})
    'fly-iad-e784'
    """
    env = os.environ if environ is None else environ
    host = env.get("HOSTNAME") or socket.gethostname()
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if env.get("AWS_BATCH_JOB_ARRAY_INDEX") is not None:
        index = int(env["AWS_BATCH_JOB_ARRAY_INDEX"])
        return "-".join(p for p in ("aws-batch", region, f"{index:04d}") if p)
    if env.get("ECS_CONTAINER_METADATA_URI_V4") or env.get("ECS_CONTAINER_METADATA_URI"):
        return "-".join(p for p in ("aws-ecs", region, host) if p)
    if env.get("FLY_REGION"):
        return f"fly-{env['FLY_REGION']}-{env.get('FLY_MACHINE_ID') or host}"
    return host


class ScytheWorkerConfig(BaseSettings):
    """How a ``scythe worker`` runs, from ``SCYTHE_WORKER_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="SCYTHE_WORKER_", env_ignore_empty=True)

    NAME: str | None = Field(
        default=None,
        description="Worker name shown in Hatchet; unset for scythe-<role>-<where it runs>.",
    )
    SLOTS: int | None = Field(
        default=None,
        ge=1,
        description="Leaves this worker runs at once (default slots); unset for os.cpu_count().",
    )
    DURABLE_SLOTS: int = Field(
        default=DEFAULT_DURABLE_SLOTS,
        ge=1,
        description="Scatter/gather nodes this worker holds at once (durable slots, mostly waiting).",
    )
    HIGH_MEMORY: bool = Field(default=False, description="Advertise the high_memory label.")
    HIGH_CPU: bool = Field(default=False, description="Advertise the high_cpu label.")
    HAS_GPU: bool = Field(default=False, description="Advertise the has_gpu label.")
    DOES_FAN: bool = Field(default=True, description="Serve the scatter/gather (fan) task.")
    DOES_LEAF: bool = Field(default=True, description="Serve the experiments' leaf tasks.")

    @property
    def labels(self) -> dict[str, str]:
        """The capability labels this worker advertises (only those switched on)."""
        # The keys are the values of scythe.worker.ScytheWorkerLabel.
        flags = {
            "high_memory": self.HIGH_MEMORY,
            "high_cpu": self.HIGH_CPU,
            "has_gpu": self.HAS_GPU,
        }
        return {label: LABEL_ON for label, on in flags.items() if on}

    @property
    def role(self) -> str:
        return "-".join(r for r, on in (("fan", self.DOES_FAN), ("leaf", self.DOES_LEAF)) if on)

    @property
    def computed_slots(self) -> int:
        return self.SLOTS or os.cpu_count() or 1

    @property
    def computed_name(self) -> str:
        return self.NAME or f"scythe-{self.role or 'idle'}-{worker_location()}"

    def plan(
        self,
        experiments: Sequence[Any] | None = None,
        additional_workflows: Sequence[Any] | None = None,
    ) -> WorkerPlan:
        """What :meth:`start` would serve: every registered experiment, plus ``experiments``.

        ``experiments`` may hold registered experiments or plain functions
        (registered here with ``ExperimentRegistry.Register()``);
        ``additional_workflows`` are Hatchet workflows served next to them.
        """
        for item in experiments or []:
            if not isinstance(item, ExperimentRunnable):
                ExperimentRegistry.Register()(item)
        workflows = list(ExperimentRegistry.workflows())
        workflows += [w for w in additional_workflows or [] if w not in workflows]
        return plan_worker(self, ExperimentRegistry.experiments(), workflows)

    def start(
        self,
        experiments: Sequence[Any] | None = None,
        additional_workflows: Sequence[Any] | None = None,
    ) -> None:
        """Start a worker as ``scythe worker`` does, serving what :meth:`plan` lists (blocks).

        scythe-engine 1.x's entry point: a ``main.py`` that imports the
        experiments' modules, then calls ``ScytheWorkerConfig().start()``.
        """
        build_worker(self.plan(experiments, additional_workflows)).start()


register_settings_class(ScytheWorkerConfig)


def worker_config() -> ScytheWorkerConfig:
    """Read the ``SCYTHE_WORKER_*`` variables now (a bad value raises ``SettingsError``)."""
    return _read_settings(ScytheWorkerConfig)


# --------------------------------------------------------------------------- experiments


def load_experiments(references: Iterable[str]) -> list[ExperimentRunnable]:
    """Import ``module:attr`` (one experiment) or ``module`` (every experiment defined in it).

    A ``module:attr`` naming a Hatchet ``Standalone`` or ``Workflow`` is included
    with ``ExperimentRegistry.Include`` and served next to the experiments. The
    working directory is importable, as with ``python -m``.
    """
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    experiments: dict[str, ExperimentRunnable] = {}
    for reference in references:
        module_name, _, attr = reference.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise WorkerConfigError(
                f"cannot import {module_name!r} for --experiments {reference!r}: {exc}; "
                "run from the directory that holds the module or install it"
            ) from exc
        for obj in _objects(module, attr, reference):
            included = ExperimentRegistry.Include(obj)
            if isinstance(included, ExperimentRunnable):
                experiments[included.name] = included
    return list(experiments.values())


def _objects(module: Any, attr: str, reference: str) -> list[Any]:
    if not attr:
        found = [v for v in vars(module).values() if isinstance(v, ExperimentRunnable)]
        if not found:
            raise WorkerConfigError(
                f"module {module.__name__!r} defines no registered experiment; "
                "pass module:attr or register one with @ExperimentRegistry.Register()"
            )
        return found
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise WorkerConfigError(
                f"{reference!r}: module {module.__name__} has no attribute {attr!r}"
            )
        obj = getattr(obj, part)
    if not isinstance(obj, ExperimentRunnable) and not _is_hatchet_workflow(obj):
        raise WorkerConfigError(
            f"{reference!r} is a {type(obj).__name__}, not an experiment registered with "
            "@ExperimentRegistry.Register() nor a Hatchet Standalone or Workflow"
        )
    return [obj]


# --------------------------------------------------------------------------- the worker


@dataclass(frozen=True)
class WorkerPlan:
    """Everything a worker is started with; ``build_worker`` turns it into a Hatchet worker."""

    name: str
    slots: int | None
    durable_slots: int | None
    labels: dict[str, str]
    workflows: list[BaseWorkflow[Any]] = field(default_factory=list)

    @property
    def task_names(self) -> list[str]:
        return [w.name for w in self.workflows]

    def describe(self) -> str:
        lines = [
            f"worker   {self.name}",
            f"slots    {self.slots or 0} leaf (default), {self.durable_slots or 0} scatter/gather (durable)",
            f"labels   {self.labels or 'none'}",
            f"tasks    {', '.join(self.task_names)}",
        ]
        return "\n".join(lines)


def plan_worker(
    config: ScytheWorkerConfig,
    experiments: Sequence[ExperimentRunnable],
    extra_workflows: Sequence[Any] = (),
) -> WorkerPlan:
    """The tasks, slots and labels of a worker with ``config``'s roles (needs a Hatchet client).

    Fan workers get only durable slots and leaf workers only default slots, so a
    waiting scatter/gather node can never take the slot a leaf needs.
    """
    from scythe.engines.hatchet import hatchet_task_for, scatter_gather_task

    if not (config.DOES_FAN or config.DOES_LEAF):
        raise WorkerConfigError(
            "SCYTHE_WORKER_DOES_FAN and SCYTHE_WORKER_DOES_LEAF are both false: "
            "a worker needs at least one role"
        )
    serves_leaves = config.DOES_LEAF and bool(experiments or extra_workflows)
    if config.DOES_LEAF and not serves_leaves and not config.DOES_FAN:
        raise WorkerConfigError(
            "a leaf worker needs experiments: pass --experiments module:attr "
            "(e.g. examples.building_energy.experiment:simulate_energy)"
        )
    workflows: list[Any] = [scatter_gather_task()] if config.DOES_FAN else []
    if serves_leaves:
        workflows += [hatchet_task_for(e) for e in experiments]
        workflows += list(extra_workflows)
    return WorkerPlan(
        name=config.computed_name,
        slots=config.computed_slots if serves_leaves else None,
        durable_slots=config.DURABLE_SLOTS if config.DOES_FAN else None,
        labels=config.labels,
        workflows=workflows,
    )


def build_worker(plan: WorkerPlan) -> Worker:
    """The ``hatchet_sdk`` worker of ``plan``, registered with its tasks but not started."""
    from scythe.engines.hatchet import hatchet_client

    with warnings.catch_warnings():
        # hatchet-sdk 1.43's Hatchet.worker() only takes labels as a dict, then warns about it
        warnings.filterwarnings(
            "ignore", message="Passing worker labels as a dict", category=DeprecationWarning
        )
        return hatchet_client().worker(
            name=plan.name,
            slots=plan.slots,
            durable_slots=plan.durable_slots,
            labels=dict(plan.labels),
            workflows=plan.workflows,
        )


def start_worker(references: Iterable[str], *, config: ScytheWorkerConfig | None = None) -> None:
    """Import the experiments and run a worker until it is stopped (Ctrl-C or SIGTERM)."""
    config = config or worker_config()
    experiments = load_experiments(references)
    build_worker(plan_worker(config, experiments, ExperimentRegistry.workflows())).start()


__all__ = [
    "LABEL_ON",
    "ScytheWorkerConfig",
    "ScytheWorkerLabel",
    "WorkerPlan",
    "build_worker",
    "load_experiments",
    "plan_worker",
    "start_worker",
    "worker_config",
    "worker_location",
]
