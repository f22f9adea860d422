"""The ECS cluster, log groups, task definitions and auto-scaled worker services."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from scythe_infra.config import ServiceConfig, StackConfig
from scythe_infra.network import Network

ON_DEMAND, SPOT = "FARGATE", "FARGATE_SPOT"
STOP_TIMEOUT = 120  # seconds between SIGTERM and SIGKILL: Fargate's most, Spot's warning


@dataclass(frozen=True)
class Container:
    """What one task runs: image, command, plain variables, secret variables, logs."""

    name: str
    image: pulumi.Input[str]
    log_group: aws.cloudwatch.LogGroup
    environment: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    command: Sequence[str] | None = None
    entry_point: Sequence[str] | None = None
    gpus: int = 0
    ports: Sequence[int] = ()
    mounts: Sequence[tuple[str, str]] = ()  # (volume name, container path)


def create_cluster(name: str) -> aws.ecs.Cluster:
    return aws.ecs.Cluster(
        f"{name}-cluster", settings=[{"name": "containerInsights", "value": "enabled"}]
    )


def attach_providers(
    name: str, cluster: aws.ecs.Cluster, extra: Sequence[pulumi.Input[str]] = ()
) -> aws.ecs.ClusterCapacityProviders:
    """FARGATE and FARGATE_SPOT (and ``extra``, e.g. the GPU instances) for the cluster."""
    return aws.ecs.ClusterCapacityProviders(
        f"{name}-capacity",
        cluster_name=cluster.name,
        capacity_providers=[ON_DEMAND, SPOT, *extra],
        default_capacity_provider_strategies=[{"capacity_provider": ON_DEMAND, "weight": 1}],
        opts=pulumi.ResourceOptions(parent=cluster),
    )


def log_group(name: str, key: str, config: StackConfig) -> aws.cloudwatch.LogGroup:
    return aws.cloudwatch.LogGroup(
        f"{name}-{key}",
        name=f"/scythe/{name}/{key}",
        retention_in_days=config.log_retention_days,
    )


def container_definitions(container: Container) -> pulumi.Output[str]:
    """The task's container definitions as ECS's JSON; secrets appear only as ARNs."""
    return pulumi.Output.all(
        container.image,
        dict(container.environment),
        dict(container.secrets),
        container.log_group.name,
        aws.get_region_output().region,
    ).apply(lambda args: json.dumps([_definition(container, *args)]))


def _definition(
    container: Container, image: str, env: dict, secrets: dict, group: str, region: str
) -> dict[str, object]:
    definition: dict[str, object] = {
        "name": container.name,
        "image": image,
        "essential": True,
        "environment": [{"name": k, "value": str(v)} for k, v in sorted(env.items())],
        "secrets": [{"name": k, "valueFrom": arn} for k, arn in sorted(secrets.items())],
        "stopTimeout": STOP_TIMEOUT,
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": group,
                "awslogs-region": region,
                "awslogs-stream-prefix": container.name,
            },
        },
        "portMappings": [{"containerPort": p, "protocol": "tcp"} for p in container.ports],
        "mountPoints": [{"sourceVolume": v, "containerPath": p} for v, p in container.mounts],
    }
    if container.command is not None:
        definition["command"] = list(container.command)
    if container.entry_point is not None:
        definition["entryPoint"] = list(container.entry_point)
    if container.gpus:
        definition["resourceRequirements"] = [{"type": "GPU", "value": str(container.gpus)}]
    return definition


def task_definition(
    name: str,
    container: Container,
    size: tuple[int, int],
    roles: tuple[aws.iam.Role, aws.iam.Role | None],
    *,
    fargate: bool = True,
    volumes: Sequence[dict[str, object]] = (),
) -> aws.ecs.TaskDefinition:
    """A task of one container; ``roles`` is (execution role, task role).

    Fargate tasks get their own network interface (``awsvpc``); EC2 (GPU) tasks use
    the instance's (``bridge``), which has the public address Fargate gives a task.
    """
    execution, task = roles
    cpu, memory = size
    return aws.ecs.TaskDefinition(
        name,
        family=name,
        cpu=str(cpu),
        memory=str(memory),
        network_mode="awsvpc" if fargate else "bridge",
        requires_compatibilities=["FARGATE" if fargate else "EC2"],
        runtime_platform={"operating_system_family": "LINUX", "cpu_architecture": "X86_64"},
        execution_role_arn=execution.arn,
        task_role_arn=task.arn if task is not None else None,
        container_definitions=container_definitions(container),
        volumes=list(volumes),
    )


def capacity_strategy(
    service: ServiceConfig, spot: str = SPOT, on_demand: str = ON_DEMAND
) -> list[dict[str, object]]:
    """Spot by default; the first ``onDemandBase`` tasks on on-demand capacity.

    ECS does not move tasks to on-demand capacity when Spot capacity runs out:
    the on-demand base is what keeps running then (docs/deployment.md).
    """
    if not service.spot:
        return [{"capacity_provider": on_demand, "weight": 1, "base": service.on_demand_base}]
    return [
        {"capacity_provider": spot, "weight": 1, "base": 0},
        {"capacity_provider": on_demand, "weight": 0, "base": service.on_demand_base},
    ]


@dataclass(frozen=True)
class Placement:
    cluster: aws.ecs.Cluster
    providers: aws.ecs.ClusterCapacityProviders
    network: Network
    assign_public_ip: bool


def ecs_service(
    name: str,
    definition: aws.ecs.TaskDefinition,
    placement: Placement,
    *,
    desired_count: int,
    strategy: list[dict[str, object]],
    security_groups: Sequence[pulumi.Input[str]] = (),
    awsvpc: bool = True,
    **extra: object,
) -> aws.ecs.Service:
    """A service of ``definition``'s tasks; its count belongs to auto-scaling after creation."""
    network = placement.network
    if awsvpc:
        extra["network_configuration"] = {
            "subnets": network.task_subnet_ids,
            "security_groups": [network.worker_security_group.id, *security_groups],
            "assign_public_ip": placement.assign_public_ip,
        }
    return aws.ecs.Service(
        name,
        name=name,
        cluster=placement.cluster.arn,
        task_definition=definition.arn,
        desired_count=desired_count,
        capacity_provider_strategies=strategy,
        deployment_circuit_breaker={"enable": True, "rollback": True},
        propagate_tags="SERVICE",
        opts=pulumi.ResourceOptions(
            depends_on=[placement.providers], ignore_changes=["desiredCount"]
        ),
        **extra,
    )


def autoscale(
    name: str, cluster: aws.ecs.Cluster, service: aws.ecs.Service, config: ServiceConfig
) -> aws.appautoscaling.Policy:
    """Keep the service's average CPU near ``cpuTarget``, within ``minCount..maxCount`` tasks."""
    target = aws.appautoscaling.Target(
        f"{name}-scaling",
        service_namespace="ecs",
        scalable_dimension="ecs:service:DesiredCount",
        resource_id=pulumi.Output.concat("service/", cluster.name, "/", service.name),
        min_capacity=config.min_count,
        max_capacity=config.max_count,
        opts=pulumi.ResourceOptions(parent=service),
    )
    return aws.appautoscaling.Policy(
        f"{name}-cpu",
        policy_type="TargetTrackingScaling",
        service_namespace=target.service_namespace,
        scalable_dimension=target.scalable_dimension,
        resource_id=target.resource_id,
        target_tracking_scaling_policy_configuration={
            "predefined_metric_specification": {
                "predefined_metric_type": "ECSServiceAverageCPUUtilization"
            },
            "target_value": float(config.cpu_target),
            "scale_in_cooldown": 300,
            "scale_out_cooldown": 60,
        },
        opts=pulumi.ResourceOptions(parent=target),
    )
