"""The whole stack from one :class:`StackConfig`: ``build(config)`` creates every resource.

``infra/__main__.py`` calls it with the stack's ``pulumi config``; the tests call
it under Pulumi's mocks with configs of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from scythe_infra import cluster as ecs
from scythe_infra import hatchet, iam
from scythe_infra.config import StackConfig
from scythe_infra.gpu import gpu_capacity_provider
from scythe_infra.network import Network, create_network
from scythe_infra.storage import Storage, create_storage
from scythe_infra.workers import WorkerContext, client_task, worker_service


@dataclass(frozen=True)
class ScytheStack:
    """The resources tests and ``pulumi stack output`` care about."""

    config: StackConfig
    storage: Storage
    network: Network
    cluster: aws.ecs.Cluster
    hatchet: hatchet.HatchetConnection
    services: dict[str, aws.ecs.Service]
    client: aws.ecs.TaskDefinition
    log_groups: dict[str, aws.cloudwatch.LogGroup]
    repository: aws.ecr.Repository | None = None
    outputs: dict[str, pulumi.Input[object]] = field(default_factory=dict)


def build(config: StackConfig, name: str | None = None) -> ScytheStack:
    """Create the stack's resources; ``name`` (default: the Pulumi stack name) prefixes them."""
    name = name or f"scythe-{pulumi.get_stack()}"
    storage = create_storage(name, config)
    network = create_network(name, config)
    cluster = ecs.create_cluster(name)
    special = config.special_leaf
    gpu = None
    if special is not None and special.kind == "gpu":
        gpu = gpu_capacity_provider(name, cluster, network, special, config.assign_public_ip)
    providers = ecs.attach_providers(name, cluster, [gpu.name] if gpu else [])
    placement = ecs.Placement(cluster, providers, network, config.assign_public_ip)
    connection = hatchet.connect(name, config, network, placement)
    repository, image = _image(name, config)
    keys = ["fan", "leaf", "client"] + (["special"] if special else [])
    logs = {key: ecs.log_group(name, key, config) for key in keys}
    roles = (
        iam.execution_role(
            f"{name}-worker-exec",
            [connection.token_secret.arn],
            [group.arn for group in logs.values()],
            repository.arn if repository else None,
        ),
        iam.worker_task_role(name, storage.bucket.arn),
    )
    ctx = WorkerContext(name, config, image, storage.bucket, connection, placement, roles, logs)
    services = {
        "fan": worker_service("fan", "fan", config.fan, ctx),
        "leaf": worker_service("leaf", "leaf", config.leaf, ctx),
    }
    if special is not None:
        services["special"] = worker_service("special", "leaf", special, ctx, gpu)
    stack = ScytheStack(
        config, storage, network, cluster, connection, services, client_task(ctx), logs, repository
    )
    stack.outputs.update(_outputs(stack))
    return stack


def _image(name: str, config: StackConfig) -> tuple[aws.ecr.Repository | None, pulumi.Input[str]]:
    """The configured image, or the stack's own ECR repository (push docker/Dockerfile's build to it)."""
    if config.image:
        return None, config.image
    repository = aws.ecr.Repository(
        f"{name}-worker",
        image_tag_mutability="MUTABLE",
        image_scanning_configuration={"scan_on_push": True},
        force_delete=config.force_destroy,
    )
    return repository, pulumi.Output.concat(repository.repository_url, ":", config.image_tag)


def _outputs(stack: ScytheStack) -> dict[str, pulumi.Input[object]]:
    config = stack.config
    outputs: dict[str, pulumi.Input[object]] = {
        "bucketName": stack.storage.bucket.bucket,
        "storageUri": pulumi.Output.concat(
            "s3://", stack.storage.bucket.bucket, "/", config.bucket_prefix
        ),
        "clusterName": stack.cluster.name,
        "services": {key: service.name for key, service in stack.services.items()},
        "clientTaskDefinition": stack.client.family,
        "taskSubnetIds": stack.network.task_subnet_ids,
        "workerSecurityGroupId": stack.network.worker_security_group.id,
        "hatchetTokenSecretArn": stack.hatchet.token_secret.arn,
        "hatchetEnvironment": stack.hatchet.environment,
        "logGroups": {key: group.name for key, group in stack.log_groups.items()},
    }
    if stack.repository is not None:
        outputs["imageRepository"] = stack.repository.repository_url
    if stack.hatchet.engine is not None:
        outputs["hatchetService"] = stack.hatchet.engine.service.name
    if not config.workers_enabled:
        outputs["nextStep"] = (
            "create a token in hatchet-lite (docs/deployment.md), then "
            "`pulumi config set --secret hatchetToken <token>` and `pulumi up` again"
        )
    return outputs


def export(stack: ScytheStack) -> None:
    for key, value in stack.outputs.items():
        pulumi.export(key, value)
