"""The worker services: Spot with an on-demand base, real settings, real roles, scaling bounds."""

from __future__ import annotations

import base64
import warnings

import pytest

pytest.importorskip("pulumi")
pytest.importorskip("pulumi_aws")

from infra_harness import BASE_CONFIG, deploy

SERVICE = "aws:ecs/service:Service"
CONFIG = {
    **BASE_CONFIG,
    "fan": {"durableSlots": 300, "maxCount": 3},
    "leaf": {"cpu": 2048, "memory": 8192, "minCount": 2, "desiredCount": 4, "maxCount": 50},
    "specialLeaf": {"kind": "high-memory", "maxCount": 6},
    "experiments": ["examples.building_energy.experiment:simulate_energy", "lab.models"],
}


@pytest.fixture(scope="module")
def stack():
    return deploy(CONFIG)


def environment(stack, family: str) -> dict[str, str]:
    (container,) = stack.containers(family)
    return {e["name"]: e["value"] for e in container["environment"]}


def real_variables() -> set[str]:
    """Every variable scythe and hatchet_sdk read, from their settings classes themselves."""
    from hatchet_sdk.config import ClientConfig

    from scythe.settings import settings_reference
    from scythe.worker import ScytheWorkerConfig

    names = {row[0] for row in settings_reference()}
    models = (ScytheWorkerConfig, ClientConfig, ClientConfig.model_fields["tls_config"].annotation)
    for model in models:
        prefix = model.model_config["env_prefix"]
        names |= {f"{prefix}{field}".upper() for field in model.model_fields}
    return names


@pytest.mark.parametrize("family", ["fan", "leaf", "special", "client"])
def test_every_variable_is_a_real_setting(stack, family):
    env = environment(stack, f"scythe-test-{family}")
    unknown = set(env) - real_variables()
    assert not unknown, f"{family}: not settings of scythe or hatchet_sdk: {sorted(unknown)}"
    assert any(name.startswith("SCYTHE_STORAGE_") for name in env)
    assert any(name.startswith("HATCHET_CLIENT_") for name in env)


def test_scythe_finds_no_unknown_variable(stack):
    import scythe.worker  # noqa: F401  (makes SCYTHE_WORKER_* known)
    from scythe.settings import warn_unknown_settings

    for family in ("fan", "leaf", "special", "client"):
        env = environment(stack, f"scythe-test-{family}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert warn_unknown_settings(env) == [], family


def worker_settings(stack, family, monkeypatch):
    """The service's variables read by scythe's own settings classes, as the worker will."""
    from scythe.settings import storage_settings
    from scythe.worker import worker_config

    for name, value in environment(stack, family).items():
        monkeypatch.setenv(name, value)
    return worker_config(), storage_settings()


def test_fan_workers_only_fan(stack, monkeypatch):
    worker, storage = worker_settings(stack, "scythe-test-fan", monkeypatch)
    assert (worker.DOES_FAN, worker.DOES_LEAF) == (True, False)
    assert worker.DURABLE_SLOTS == 300
    bucket = stack.one("aws:s3/bucket:Bucket").state["bucket"]
    assert storage.resolved_uri() == f"s3://{bucket}/runs"


def test_leaf_workers_only_run_leaves_one_per_vcpu(stack, monkeypatch):
    worker, storage = worker_settings(stack, "scythe-test-leaf", monkeypatch)
    assert (worker.DOES_FAN, worker.DOES_LEAF) == (False, True)
    assert worker.computed_slots == 2  # 2048 CPU units
    assert worker.labels == {}
    assert storage.REGION == "eu-west-3"


def test_special_leaf_workers_advertise_their_label(stack, monkeypatch):
    worker, _ = worker_settings(stack, "scythe-test-special", monkeypatch)
    assert (worker.DOES_FAN, worker.DOES_LEAF) == (False, True)
    assert worker.labels == {"high_memory": "yes"}
    definition = stack.one("aws:ecs/taskDefinition:TaskDefinition", "scythe-test-special")
    assert (definition.inputs["cpu"], definition.inputs["memory"]) == ("4096", "30720")
    assert definition.inputs["requiresCompatibilities"] == ["FARGATE"]


def test_workers_serve_the_configured_experiments(stack):
    for family in ("fan", "leaf", "special"):
        (container,) = stack.containers(f"scythe-test-{family}")
        assert container["command"] == [
            "--experiments",
            "examples.building_energy.experiment:simulate_energy",
            "--experiments",
            "lab.models",
        ]
        assert "entryPoint" not in container  # the image's `scythe worker`


@pytest.mark.parametrize("key", ["fan", "leaf", "special"])
def test_services_use_spot_with_on_demand_fallback(stack, key):
    service = stack.one(SERVICE, f"scythe-test-{key}")
    strategy = {s["capacityProvider"]: s for s in service.inputs["capacityProviderStrategies"]}
    assert set(strategy) == {"FARGATE_SPOT", "FARGATE"}
    assert strategy["FARGATE_SPOT"]["weight"] > 0
    expected_base = {"fan": 1, "leaf": 1, "special": 0}[key]
    assert strategy["FARGATE"]["base"] == expected_base
    assert strategy["FARGATE"]["weight"] == 0
    providers = stack.one("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders")
    assert {"FARGATE", "FARGATE_SPOT"} <= set(providers.inputs["capacityProviders"])


def test_spot_can_be_switched_off():
    stack = deploy({**BASE_CONFIG, "leaf": {"spot": False, "onDemandBase": 0}})
    service = stack.one(SERVICE, "scythe-test-leaf")
    assert [s["capacityProvider"] for s in service.inputs["capacityProviderStrategies"]] == [
        "FARGATE"
    ]


@pytest.mark.parametrize(
    ("key", "bounds", "desired"), [("fan", (1, 3), 1), ("leaf", (2, 50), 4), ("special", (0, 6), 0)]
)
def test_services_scale_within_their_bounds(stack, key, bounds, desired):
    target = stack.one("aws:appautoscaling/target:Target", f"scythe-test-{key}-scaling")
    assert (target.inputs["minCapacity"], target.inputs["maxCapacity"]) == bounds
    assert target.inputs["resourceId"] == f"service/scythe-test-cluster-mock/scythe-test-{key}"
    assert stack.one(SERVICE, f"scythe-test-{key}").inputs["desiredCount"] == desired
    policy = stack.one("aws:appautoscaling/policy:Policy", f"scythe-test-{key}-cpu")
    tracking = policy.inputs["targetTrackingScalingPolicyConfiguration"]
    assert tracking["targetValue"] == 70
    assert tracking["predefinedMetricSpecification"]["predefinedMetricType"] == (
        "ECSServiceAverageCPUUtilization"
    )


def test_tasks_get_the_spot_warning_to_stop(stack):
    for family in ("fan", "leaf", "special"):
        (container,) = stack.containers(f"scythe-test-{family}")
        assert container["stopTimeout"] == 120


def test_no_special_service_unless_configured():
    stack = deploy(BASE_CONFIG)
    assert sorted(s.name for s in stack.of_type(SERVICE)) == ["scythe-test-fan", "scythe-test-leaf"]


def test_gpu_leaves_run_on_gpu_instances(monkeypatch):
    stack = deploy({**BASE_CONFIG, "specialLeaf": {"kind": "gpu", "gpus": 2, "maxCount": 3}})
    worker, _ = worker_settings(stack, "scythe-test-special", monkeypatch)
    assert worker.labels == {"has_gpu": "yes"}
    assert (worker.DOES_FAN, worker.DOES_LEAF) == (False, True)
    (container,) = stack.containers("scythe-test-special")
    assert container["resourceRequirements"] == [{"type": "GPU", "value": "2"}]
    definition = stack.one("aws:ecs/taskDefinition:TaskDefinition", "scythe-test-special")
    assert definition.inputs["requiresCompatibilities"] == ["EC2"]
    provider = stack.one("aws:ecs/capacityProvider:CapacityProvider")
    service = stack.one(SERVICE, "scythe-test-special")
    (strategy,) = service.inputs["capacityProviderStrategies"]
    assert strategy["capacityProvider"] == provider.state["name"]
    providers = stack.one("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders")
    assert provider.state["name"] in providers.inputs["capacityProviders"]
    group = stack.one("aws:autoscaling/group:Group")
    assert group.inputs["maxSize"] == 3
    distribution = group.inputs["mixedInstancesPolicy"]["instancesDistribution"]
    assert distribution["onDemandPercentageAboveBaseCapacity"] == 0  # Spot above the base
    template = stack.one("aws:ec2/launchTemplate:LaunchTemplate")
    cluster = stack.one("aws:ecs/cluster:Cluster").state["name"]
    user_data = base64.b64decode(template.inputs["userData"]).decode()
    assert f"echo ECS_CLUSTER={cluster} >> /etc/ecs/ecs.config" in user_data.splitlines()
    assert template.inputs["imageId"] == "ami-0123456789abcdef0"  # ECS's GPU AMI, from SSM


def test_the_client_task_allocates_with_the_configured_size():
    stack = deploy({**BASE_CONFIG, "clientCpu": 2048, "clientMemory": 16384})
    definition = stack.one("aws:ecs/taskDefinition:TaskDefinition", "scythe-test-client")
    assert (definition.inputs["cpu"], definition.inputs["memory"]) == ("2048", "16384")
    (container,) = stack.containers("scythe-test-client")
    assert container["entryPoint"] == ["python", "-c"]
    assert {"name": "SCYTHE_ENGINE", "value": "hatchet"} in container["environment"]
