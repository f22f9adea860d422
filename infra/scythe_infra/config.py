"""The stack's configuration: ``pulumi config`` keys read into a validated pydantic model.

Every key lives in the project's namespace (``scythe:<key>``); nested services are
objects (``pulumi config set --path leaf.maxCount 40``). A bad value fails before
any resource is planned, with an error naming the key and the value.

>>> config = StackConfig.model_validate({"hatchetToken": "ey-token"})
>>> (config.fan.durable_slots, config.leaf.computed_slots, config.log_retention_days)
(1000, 1, 30)
>>> try:
...     parse_config({"logRetentionDays": 10, "hatchetToken": "t"})
... except InfraConfigError as err:
...     print(str(err)[:60])
scythe:logRetentionDays=10 is invalid: one of (1, 3, 5, 7, 1
"""

from __future__ import annotations

import difflib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

NAMESPACE = "scythe"
"""The Pulumi project name, and so the namespace of every config key (``scythe:leaf``)."""

RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827)
"""The retention periods CloudWatch Logs accepts (up to five years)."""

# Fargate's CPU units and, for each, the memory sizes (MiB) it accepts.
FARGATE_MEMORY: dict[int, range] = {
    256: range(512, 2049, 512),
    512: range(1024, 4097, 1024),
    1024: range(2048, 8193, 1024),
    2048: range(4096, 16385, 1024),
    4096: range(8192, 30721, 1024),
    8192: range(16384, 61441, 4096),
    16384: range(32768, 122881, 8192),
}
SECRET_KEYS = ("hatchetToken", "hatchetDbPassword")
"""Keys that must be set with ``pulumi config set --secret`` (never plain text in the stack file)."""

HatchetMode = Literal["existing", "self-hosted"]


def _check_fargate_size(
    cpu: int, memory: int, cpu_key: str = "cpu", memory_key: str = "memory"
) -> None:
    if cpu not in FARGATE_MEMORY:
        raise _KeyError(cpu_key, cpu, f"not a Fargate size: one of {list(FARGATE_MEMORY)}")
    sizes = FARGATE_MEMORY[cpu]
    if memory not in sizes:
        raise _KeyError(
            memory_key,
            memory,
            f"does not fit {cpu_key} {cpu} on Fargate: "
            f"{sizes.start}..{sizes.stop - 1} MiB in steps of {sizes.step}",
        )


class InfraConfigError(ValueError):
    """A ``pulumi config`` value the stack cannot be built from."""


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=lambda n: _camel(n)
    )


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class ServiceConfig(_Model):
    """One ECS service of workers: size, count, capacity and scaling bounds."""

    cpu: int = Field(1024, description="Fargate CPU units of one task (1024 = 1 vCPU).")
    memory: int = Field(2048, description="Memory of one task, MiB.")
    desired_count: int = Field(2, ge=0, description="Tasks started by the first `pulumi up`.")
    min_count: int = Field(1, ge=0, description="Fewest tasks auto-scaling leaves running.")
    max_count: int = Field(20, ge=1, description="Most tasks auto-scaling starts.")
    cpu_target: int = Field(70, ge=10, le=95, description="Average CPU % auto-scaling keeps.")
    spot: bool = Field(True, description="FARGATE_SPOT capacity, with FARGATE for the base.")
    on_demand_base: int = Field(1, ge=0, description="Tasks always placed on FARGATE.")
    slots: int | None = Field(None, ge=1, description="SCYTHE_WORKER_SLOTS; unset: vCPUs.")

    @property
    def computed_slots(self) -> int:
        """Leaves one task runs at once: ``slots``, else one per vCPU."""
        return self.slots or max(1, self.cpu // 1024)

    @model_validator(mode="after")
    def _consistent(self) -> ServiceConfig:
        if not self.min_count <= self.desired_count <= self.max_count:
            raise _KeyError(
                "desiredCount",
                self.desired_count,
                f"needs minCount <= desiredCount <= maxCount, got {self.min_count}, "
                f"{self.desired_count}, {self.max_count}",
            )
        if self.on_demand_base > self.max_count:
            raise _KeyError(
                "onDemandBase", self.on_demand_base, f"exceeds maxCount {self.max_count}"
            )
        self._check_fargate_size()
        return self

    def _check_fargate_size(self) -> None:
        _check_fargate_size(self.cpu, self.memory)


class FanConfig(ServiceConfig):
    """Fan workers: scatter/gather nodes only (``SCYTHE_WORKER_DOES_LEAF=false``)."""

    cpu: int = 512
    memory: int = 1024
    desired_count: int = Field(1, ge=0)
    min_count: int = Field(1, ge=0)
    max_count: int = Field(4, ge=1)
    on_demand_base: int = Field(1, ge=0)
    durable_slots: int = Field(1000, ge=1, description="SCYTHE_WORKER_DURABLE_SLOTS.")


class SpecialLeafConfig(ServiceConfig):
    """An optional third service of leaf workers that advertise a capability label.

    ``kind: high-memory`` runs on Fargate with ``SCYTHE_WORKER_HIGH_MEMORY=true``;
    ``kind: gpu`` runs on EC2 GPU instances (Fargate has no GPUs) with
    ``SCYTHE_WORKER_HAS_GPU=true``.
    """

    kind: Literal["high-memory", "gpu"] = "high-memory"
    cpu: int = Field(0, description="Unset: 4096 (high-memory) or 3072 (gpu, fits g4dn.xlarge).")
    memory: int = Field(0, description="Unset: 30720 MiB (high-memory) or 12288 MiB (gpu).")
    desired_count: int = Field(0, ge=0)
    min_count: int = Field(0, ge=0)
    max_count: int = Field(4, ge=1)
    on_demand_base: int = Field(0, ge=0)
    gpus: int = Field(1, ge=1, description="GPUs per task (kind gpu).")
    instance_type: str = Field("g4dn.xlarge", description="EC2 instance type (kind gpu).")

    @model_validator(mode="before")
    @classmethod
    def _kind_sizes(cls, values: Any) -> Any:
        if isinstance(values, dict):
            gpu = values.get("kind") == "gpu"
            values = {"cpu": 3072 if gpu else 4096, "memory": 12288 if gpu else 30720, **values}
        return values

    def _check_fargate_size(self) -> None:
        if self.kind == "high-memory":
            super()._check_fargate_size()

    @property
    def label_variable(self) -> str:
        return "SCYTHE_WORKER_HAS_GPU" if self.kind == "gpu" else "SCYTHE_WORKER_HIGH_MEMORY"


class StackConfig(_Model):
    """Everything ``pulumi config`` can set, with its default."""

    image: str | None = Field(None, description="Worker image; unset: the stack's ECR repo.")
    image_tag: str = Field("latest", description="Tag of the stack's ECR image.")
    experiments: list[str] = Field(
        default_factory=lambda: ["examples.building_energy.experiment:simulate_energy"],
        min_length=1,
        description="module:attr the workers serve (`scythe worker --experiments`).",
    )
    bucket_name: str | None = Field(None, description="Bucket name; unset: generated.")
    bucket_prefix: str = Field("runs", description="SCYTHE_STORAGE_BUCKET_PREFIX.")
    force_destroy: bool = Field(False, description="Let `pulumi destroy` empty the bucket.")
    intermediates_expire_days: int = Field(30, ge=1, description="Days tagged intermediates live.")
    log_retention_days: int = Field(30, description="CloudWatch log retention, days.")
    vpc_id: str | None = Field(None, description="An existing VPC; unset: a new one.")
    subnet_ids: list[str] = Field(default_factory=list, description="Task subnets (with vpcId).")
    private_subnet_ids: list[str] = Field(default_factory=list, description="RDS/EFS subnets.")
    assign_public_ip: bool = Field(True, description="Tasks get public IPs (no NAT needed).")
    vpc_cidr: str = Field("10.40.0.0/16", description="CIDR of the new VPC.")
    hatchet: HatchetMode = Field("existing", description="existing engine or self-hosted.")
    hatchet_token: Any = Field(None, description="Secret: the workers' Hatchet API token.")
    hatchet_host_port: str | None = Field(None, description="HATCHET_CLIENT_HOST_PORT.")
    hatchet_server_url: str | None = Field(None, description="HATCHET_CLIENT_SERVER_URL.")
    hatchet_tls_strategy: Literal["tls", "mtls", "none"] | None = None
    hatchet_namespace: str | None = Field(None, description="HATCHET_CLIENT_NAMESPACE.")
    hatchet_lite_image: str = "ghcr.io/hatchet-dev/hatchet/hatchet-lite:latest"
    hatchet_cpu: int = 1024
    hatchet_memory: int = 2048
    hatchet_db_password: Any = Field(None, description="Secret: RDS master password.")
    hatchet_db_instance_class: str = "db.t4g.micro"
    hatchet_db_storage_gb: int = Field(20, ge=20)
    hatchet_db_engine_version: str = "16"
    client_cpu: int = Field(1024, description="CPU units of the client (allocate) task.")
    client_memory: int = Field(4096, description="Memory of the client task, MiB.")
    fan: FanConfig = Field(default_factory=FanConfig)
    leaf: ServiceConfig = Field(default_factory=ServiceConfig)
    special_leaf: SpecialLeafConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> StackConfig:
        if self.log_retention_days not in RETENTION_DAYS:
            raise _KeyError("logRetentionDays", self.log_retention_days, f"one of {RETENTION_DAYS}")
        _check_fargate_size(self.client_cpu, self.client_memory, "clientCpu", "clientMemory")
        if self.vpc_id and not self.subnet_ids:
            raise _KeyError("subnetIds", [], "set the subnets of vpcId the tasks run in")
        if not self.vpc_id and (self.subnet_ids or self.private_subnet_ids):
            raise _KeyError("subnetIds", self.subnet_ids, "subnets need vpcId")
        if self.hatchet == "existing" and self.hatchet_token is None:
            raise _KeyError("hatchetToken", None, "hatchet: existing needs the engine's token")
        if self.hatchet == "self-hosted" and self.hatchet_db_password is None:
            raise _KeyError("hatchetDbPassword", None, "hatchet: self-hosted needs it")
        if self.hatchet == "self-hosted" and (self.hatchet_host_port or self.hatchet_server_url):
            raise _KeyError("hatchetHostPort", self.hatchet_host_port, "the stack names its own")
        return self

    @property
    def tls_strategy(self) -> str:
        """TLS of the workers' connection: none inside the VPC, else Hatchet's default."""
        return self.hatchet_tls_strategy or ("none" if self.self_hosted else "tls")

    @property
    def self_hosted(self) -> bool:
        return self.hatchet == "self-hosted"

    @property
    def workers_enabled(self) -> bool:
        """False until a self-hosted stack has its token: services are created with no tasks."""
        return self.hatchet_token is not None


class _KeyError(ValueError):
    """A bad value of ``key`` (relative to the model that raises it) and why."""

    def __init__(self, key: str, value: object, why: str) -> None:
        super().__init__(why)
        self.key, self.value, self.why = key, value, why


def parse_config(values: dict[str, Any]) -> StackConfig:
    """``values`` (config keys without the namespace) as a :class:`StackConfig`, or an error naming the key."""
    known = set(StackConfig.model_json_schema(by_alias=True)["properties"])
    for key in values:
        if key.split(".")[0] not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {NAMESPACE}:{close[0]}?" if close else ""
            raise InfraConfigError(f"{NAMESPACE}:{key} is not a config key of this stack{hint}")
    try:
        return StackConfig.model_validate(values)
    except ValidationError as err:
        raise InfraConfigError(_describe(err, values)) from None


def _describe(err: ValidationError, values: dict[str, Any]) -> str:
    problems = []
    for error in err.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        path = ".".join(str(p) for p in error["loc"])
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, _KeyError):
            key = f"{path}.{cause.key}" if path else cause.key
            problems.append(f"{NAMESPACE}:{key}={cause.value!r} is invalid: {cause.why}")
            continue
        value: Any = values
        for part in error["loc"]:
            value = value.get(part) if isinstance(value, dict) else None
        shown = error.get("input") if value is None else value
        problems.append(f"{NAMESPACE}:{path}={shown!r} is invalid: {message}")
    return "\n".join(problems)


def load_config() -> StackConfig:
    """Read the running stack's ``pulumi config`` (secrets stay Pulumi secret Outputs)."""
    import pulumi
    from pulumi.runtime.config import CONFIG, is_config_secret

    prefix = f"{NAMESPACE}:"
    keys = sorted(k.removeprefix(prefix) for k in CONFIG.get() if k.startswith(prefix))
    config = pulumi.Config(NAMESPACE)
    values: dict[str, Any] = {}
    for key in keys:
        if key in SECRET_KEYS:
            if not is_config_secret(prefix + key):
                raise InfraConfigError(
                    f"{prefix}{key} is stored in plain text: set it with "
                    f"`pulumi config set --secret {key} ...`"
                )
            values[key] = config.require_secret(key)
        else:
            values[key] = _plain_value(config.get(key))
    return parse_config(values)


def _plain_value(raw: str | None) -> Any:
    """A config value: objects and lists are JSON (``--path`` writes them so); the rest is text.

    Text is left to pydantic, which reads ``"20"`` as 20 for an int field and
    ``"true"`` as True for a bool one, and keeps ``"007"`` a string for a str one.
    """
    if raw is not None and raw[:1] in "[{":
        return json.loads(raw)
    return raw
