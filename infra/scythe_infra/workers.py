"""The worker services: fan, leaf and the optional labelled leaf service, plus the client task.

Each runs the ``docker/Dockerfile`` image (``scythe worker`` as entrypoint) with
the roles, slots and labels of the ``SCYTHE_WORKER_*`` settings, the
``SCYTHE_STORAGE_*`` settings of the stack's bucket and the ``HATCHET_CLIENT_*``
connection; the token comes from Secrets Manager.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from scythe_infra import cluster as ecs
from scythe_infra.config import FanConfig, ServiceConfig, SpecialLeafConfig, StackConfig
from scythe_infra.hatchet import HatchetConnection

ROLES = {
    "fan": {"SCYTHE_WORKER_DOES_FAN": "true", "SCYTHE_WORKER_DOES_LEAF": "false"},
    "leaf": {"SCYTHE_WORKER_DOES_FAN": "false", "SCYTHE_WORKER_DOES_LEAF": "true"},
}


@dataclass(frozen=True)
class WorkerContext:
    """What every worker service shares."""

    name: str
    config: StackConfig
    image: pulumi.Input[str]
    bucket: aws.s3.Bucket
    hatchet: HatchetConnection
    placement: ecs.Placement
    roles: tuple[aws.iam.Role, aws.iam.Role]  # (execution, task)
    log_groups: dict[str, aws.cloudwatch.LogGroup]


def storage_environment(config: StackConfig, bucket: aws.s3.Bucket) -> dict[str, pulumi.Input[str]]:
    return {
        "SCYTHE_STORAGE_BUCKET": bucket.bucket,
        "SCYTHE_STORAGE_BUCKET_PREFIX": config.bucket_prefix,
        "SCYTHE_STORAGE_REGION": aws.get_region_output().region,
    }


def worker_environment(
    role: str, service: ServiceConfig, ctx: WorkerContext
) -> dict[str, pulumi.Input[str]]:
    """The variables of one service's workers: storage, connection, role, slots, labels."""
    env = {**storage_environment(ctx.config, ctx.bucket), **ctx.hatchet.environment, **ROLES[role]}
    if isinstance(service, FanConfig):
        env["SCYTHE_WORKER_DURABLE_SLOTS"] = str(service.durable_slots)
    else:
        env["SCYTHE_WORKER_SLOTS"] = str(service.computed_slots)
    if isinstance(service, SpecialLeafConfig):
        env[service.label_variable] = "true"
    return env


def worker_service(
    key: str,
    role: str,
    service: ServiceConfig,
    ctx: WorkerContext,
    gpu_provider: aws.ecs.CapacityProvider | None = None,
) -> aws.ecs.Service:
    """One auto-scaled service; no tasks until the connection has a token."""
    name = f"{ctx.name}-{key}"
    command: list[str] = []
    for experiment in ctx.config.experiments:
        command += ["--experiments", experiment]
    gpus = service.gpus if isinstance(service, SpecialLeafConfig) and service.kind == "gpu" else 0
    container = ecs.Container(
        name="worker",
        image=ctx.image,
        log_group=ctx.log_groups[key],
        environment=worker_environment(role, service, ctx),
        secrets=ctx.hatchet.secrets,
        command=command,
        gpus=gpus,
    )
    size = (service.cpu, service.memory)
    definition = ecs.task_definition(name, container, size, ctx.roles, fargate=not gpus)
    if gpu_provider is not None:
        strategy = [{"capacity_provider": gpu_provider.name, "weight": 1, "base": 0}]
    else:
        strategy = ecs.capacity_strategy(service)
    enabled = ctx.config.workers_enabled
    ecs_service = ecs.ecs_service(
        name,
        definition,
        ctx.placement,
        desired_count=service.desired_count if enabled else 0,
        strategy=strategy,
        awsvpc=not gpus,
    )
    if enabled:
        ecs.autoscale(name, ctx.placement.cluster, ecs_service, service)
    return ecs_service


def client_task(ctx: WorkerContext) -> aws.ecs.TaskDefinition:
    """A one-off task inside the VPC that runs ``python -c <code>`` as a Hatchet client.

    For a self-hosted engine, which only the VPC can reach: ``aws ecs run-task``
    with this definition allocates runs (docs/deployment.md).
    """
    env = {**storage_environment(ctx.config, ctx.bucket), **ctx.hatchet.environment}
    env["SCYTHE_ENGINE"] = "hatchet"
    container = ecs.Container(
        name="client",
        image=ctx.image,
        log_group=ctx.log_groups["client"],
        environment=env,
        secrets=ctx.hatchet.secrets,
        entry_point=["python", "-c"],
        command=["import scythe; print(scythe.__version__)"],
    )
    size = (ctx.config.client_cpu, ctx.config.client_memory)
    return ecs.task_definition(f"{ctx.name}-client", container, size, ctx.roles)
