"""The Hatchet engine the workers connect to: an existing one, or hatchet-lite in the stack.

Either way the workers' token is a Secrets Manager secret, created from the
``hatchetToken`` secret config value and handed to the containers by ECS (the task
definitions name only its ARN). A self-hosted engine runs hatchet-lite on ECS with
an RDS Postgres, both reachable only from inside the VPC, at
``hatchet.<stack>.internal`` (Cloud Map DNS).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from scythe_infra import cluster as ecs
from scythe_infra.config import StackConfig
from scythe_infra.iam import execution_role, hatchet_task_role
from scythe_infra.network import Network, ingress_from

GRPC_PORT, HTTP_PORT, POSTGRES_PORT, NFS_PORT = 7077, 8888, 5432, 2049
TOKEN_VARIABLE = "HATCHET_CLIENT_TOKEN"


@dataclass(frozen=True)
class HatchetConnection:
    """What a worker needs to reach the engine: plain variables and the token's secret."""

    environment: dict[str, pulumi.Input[str]]
    token_secret: aws.secretsmanager.Secret
    token_version: aws.secretsmanager.SecretVersion | None
    engine: SelfHostedHatchet | None = None

    @property
    def secrets(self) -> dict[str, pulumi.Input[str]]:
        return {TOKEN_VARIABLE: self.token_secret.arn}


@dataclass(frozen=True)
class SelfHostedHatchet:
    host: str
    database: aws.rds.Instance
    database_url_secret: aws.secretsmanager.Secret
    service: aws.ecs.Service
    security_group: aws.ec2.SecurityGroup
    extra: dict[str, pulumi.Resource] = field(default_factory=dict)


def token_secret(
    name: str, config: StackConfig
) -> tuple[aws.secretsmanager.Secret, aws.secretsmanager.SecretVersion | None]:
    """The token's secret; its value only when the config has one (a new self-hosted stack has not)."""
    secret = aws.secretsmanager.Secret(
        f"{name}-hatchet-token",
        name_prefix=f"{name}/hatchet-token-",
        description="Hatchet API token of the Scythe workers (HATCHET_CLIENT_TOKEN)",
        recovery_window_in_days=0 if config.force_destroy else 7,
    )
    if config.hatchet_token is None:
        return secret, None
    version = aws.secretsmanager.SecretVersion(
        f"{name}-hatchet-token",
        secret_id=secret.id,
        secret_string=pulumi.Output.secret(config.hatchet_token),
        opts=pulumi.ResourceOptions(parent=secret),
    )
    return secret, version


def connect(
    name: str, config: StackConfig, network: Network, placement: ecs.Placement
) -> HatchetConnection:
    secret, version = token_secret(name, config)
    env: dict[str, pulumi.Input[str]] = {"HATCHET_CLIENT_TLS_STRATEGY": config.tls_strategy}
    if config.hatchet_namespace:
        env["HATCHET_CLIENT_NAMESPACE"] = config.hatchet_namespace
    engine = None
    if config.self_hosted:
        engine = self_hosted(name, config, network, placement)
        env["HATCHET_CLIENT_HOST_PORT"] = f"{engine.host}:{GRPC_PORT}"
        env["HATCHET_CLIENT_SERVER_URL"] = f"http://{engine.host}:{HTTP_PORT}"
    else:
        if config.hatchet_host_port:
            env["HATCHET_CLIENT_HOST_PORT"] = config.hatchet_host_port
        if config.hatchet_server_url:
            env["HATCHET_CLIENT_SERVER_URL"] = config.hatchet_server_url
    return HatchetConnection(env, secret, version, engine)


def self_hosted(
    name: str, config: StackConfig, network: Network, placement: ecs.Placement
) -> SelfHostedHatchet:
    """hatchet-lite on Fargate (on-demand: the engine is not interruptible), Postgres on RDS."""
    engine_sg = aws.ec2.SecurityGroup(
        f"{name}-hatchet",
        vpc_id=network.vpc_id,
        description="hatchet-lite: gRPC and HTTP from the workers only",
        ingress=[
            ingress_from(network.worker_security_group, GRPC_PORT, "workers: gRPC"),
            ingress_from(network.worker_security_group, HTTP_PORT, "workers: REST API"),
        ],
        egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}],
    )
    database, url_secret = _database(name, config, network, engine_sg)
    config_fs, volume = _config_volume(name, network, engine_sg)
    registry, host = _dns_name(name, network)
    logs = ecs.log_group(name, "hatchet", config)
    container = ecs.Container(
        name="hatchet-lite",
        image=config.hatchet_lite_image,
        log_group=logs,
        environment=hatchet_lite_environment(host),
        secrets={"DATABASE_URL": url_secret.arn},
        ports=(GRPC_PORT, HTTP_PORT),
        mounts=(("config", "/config"),),
    )
    roles = (
        execution_role(f"{name}-hatchet-exec", [url_secret.arn], [logs.arn]),
        hatchet_task_role(name),
    )
    definition = ecs.task_definition(
        f"{name}-hatchet",
        container,
        (config.hatchet_cpu, config.hatchet_memory),
        roles,
        volumes=[volume],
    )
    service = ecs.ecs_service(
        f"{name}-hatchet",
        definition,
        placement,
        desired_count=1,
        strategy=[{"capacity_provider": ecs.ON_DEMAND, "weight": 1, "base": 1}],
        security_groups=[engine_sg.id],
        service_registries={"registry_arn": registry.arn},
        enable_execute_command=True,
    )
    return SelfHostedHatchet(host, database, url_secret, service, engine_sg, {"config": config_fs})


def _dns_name(name: str, network: Network) -> tuple[aws.servicediscovery.Service, str]:
    """``hatchet.<stack>.internal`` in the VPC (Cloud Map), pointing at the engine's task."""
    namespace = aws.servicediscovery.PrivateDnsNamespace(
        f"{name}-dns", name=f"{name}.internal", vpc=network.vpc_id
    )
    registry = aws.servicediscovery.Service(
        f"{name}-hatchet",
        name="hatchet",
        dns_config={
            "namespace_id": namespace.id,
            "dns_records": [{"type": "A", "ttl": 10}],
            "routing_policy": "MULTIVALUE",
        },
        force_destroy=True,
    )
    return registry, f"hatchet.{name}.internal"


def hatchet_lite_environment(host: str) -> dict[str, pulumi.Input[str]]:
    """hatchet-lite's settings (as in docker/compose.yml), addressed by its private DNS name."""
    return {
        "SERVER_MSGQUEUE_KIND": "postgres",
        "SERVER_GRPC_BIND_ADDRESS": "0.0.0.0",
        "SERVER_GRPC_INSECURE": "t",  # plain gRPC inside the VPC, as the compose stack
        "SERVER_GRPC_PORT": str(GRPC_PORT),
        "SERVER_GRPC_BROADCAST_ADDRESS": f"{host}:{GRPC_PORT}",
        "SERVER_URL": f"http://{host}:{HTTP_PORT}",
        "SERVER_AUTH_COOKIE_DOMAIN": host,
        "SERVER_AUTH_COOKIE_INSECURE": "t",
        "SERVER_AUTH_SET_EMAIL_VERIFIED": "t",
        "SERVER_DEFAULT_ENGINE_VERSION": "V1",
        "SERVER_INTERNAL_CLIENT_INTERNAL_GRPC_BROADCAST_ADDRESS": f"localhost:{GRPC_PORT}",
    }


def _database(
    name: str, config: StackConfig, network: Network, engine_sg: aws.ec2.SecurityGroup
) -> tuple[aws.rds.Instance, aws.secretsmanager.Secret]:
    """Postgres in the private subnets, reachable from hatchet-lite only; its URL a secret."""
    db_sg = aws.ec2.SecurityGroup(
        f"{name}-hatchet-db",
        vpc_id=network.vpc_id,
        description="Hatchet's Postgres: from hatchet-lite only",
        ingress=[ingress_from(engine_sg, POSTGRES_PORT, "hatchet-lite")],
    )
    subnets = aws.rds.SubnetGroup(f"{name}-hatchet-db", subnet_ids=network.private_subnet_ids)
    password = pulumi.Output.secret(config.hatchet_db_password)
    database = aws.rds.Instance(
        f"{name}-hatchet-db",
        engine="postgres",
        engine_version=config.hatchet_db_engine_version,
        instance_class=config.hatchet_db_instance_class,
        allocated_storage=config.hatchet_db_storage_gb,
        db_name="hatchet",
        username="hatchet",
        password=password,
        storage_encrypted=True,
        publicly_accessible=False,
        db_subnet_group_name=subnets.name,
        vpc_security_group_ids=[db_sg.id],
        backup_retention_period=7,
        skip_final_snapshot=config.force_destroy,
        final_snapshot_identifier=None if config.force_destroy else f"{name}-hatchet-db-final",
    )
    url = pulumi.Output.secret(
        pulumi.Output.format(
            "postgresql://hatchet:{0}@{1}/hatchet?sslmode=require", password, database.endpoint
        )
    )
    secret = aws.secretsmanager.Secret(
        f"{name}-hatchet-db-url",
        name_prefix=f"{name}/hatchet-database-url-",
        recovery_window_in_days=0,
    )
    aws.secretsmanager.SecretVersion(
        f"{name}-hatchet-db-url",
        secret_id=secret.id,
        secret_string=url,
        opts=pulumi.ResourceOptions(parent=secret),
    )
    return database, secret


def _config_volume(
    name: str, network: Network, engine_sg: aws.ec2.SecurityGroup
) -> tuple[aws.efs.FileSystem, dict[str, object]]:
    """hatchet-lite's /config (its generated keys: tokens stay valid across restarts) on EFS."""
    nfs_sg = aws.ec2.SecurityGroup(
        f"{name}-hatchet-config",
        vpc_id=network.vpc_id,
        description="hatchet-lite's /config: NFS from hatchet-lite only",
        ingress=[ingress_from(engine_sg, NFS_PORT, "hatchet-lite")],
    )
    fs = aws.efs.FileSystem(f"{name}-hatchet-config", encrypted=True)
    for i, subnet in enumerate(network.private_subnet_ids):
        aws.efs.MountTarget(
            f"{name}-hatchet-config-{i}",
            file_system_id=fs.id,
            subnet_id=subnet,
            security_groups=[nfs_sg.id],
            opts=pulumi.ResourceOptions(parent=fs),
        )
    volume = {
        "name": "config",
        "efs_volume_configuration": {"file_system_id": fs.id, "transit_encryption": "ENABLED"},
    }
    return fs, volume
