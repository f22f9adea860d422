"""The token stays secret, logs expire, networks are the configured ones."""

from __future__ import annotations

import json

import pytest

pulumi = pytest.importorskip("pulumi")
pytest.importorskip("pulumi_aws")

from infra_harness import BASE_CONFIG, DB_PASSWORD, TOKEN, deploy  # noqa: E402

SECRET_SIG = "4dabf18193072939515e22adb298388d"  # how the Pulumi wire format marks a secret


def is_secret_value(value) -> bool:
    return isinstance(value, dict) and SECRET_SIG in value


def places_holding(stack, text: str) -> list[str]:
    """Each resource input (resource name/input key) whose serialised value contains ``text``."""
    return [
        f"{r.name}/{key}"
        for r in stack.resources
        for key, value in r.inputs.items()
        if text in json.dumps(value, default=str)
    ]


@pytest.fixture(scope="module")
def stack():
    def probe(s):
        version = s.hatchet.token_version
        return pulumi.Output.all(pulumi.Output.from_input(version.secret_string.is_secret())).apply(
            lambda flags: {"token_is_secret": flags[0]}
        )

    return deploy(BASE_CONFIG, probe=probe)


def test_token_is_a_secret_output(stack):
    assert stack.facts == {"token_is_secret": True}
    version = stack.one("aws:secretsmanager/secretVersion:SecretVersion")
    assert is_secret_value(version.inputs["secretString"])
    assert version.inputs["secretString"]["value"] == TOKEN


def test_token_is_in_the_secret_version_only(stack):
    assert places_holding(stack, TOKEN) == ["scythe-test-hatchet-token/secretString"]


def test_containers_get_the_token_from_secrets_manager(stack):
    secret = stack.one("aws:secretsmanager/secret:Secret")
    for family in ("fan", "leaf", "client"):
        (container,) = stack.containers(f"scythe-test-{family}")
        assert container["secrets"] == [
            {"name": "HATCHET_CLIENT_TOKEN", "valueFrom": secret.state["arn"]}
        ]
        assert "HATCHET_CLIENT_TOKEN" not in {e["name"] for e in container["environment"]}


def test_a_plain_string_token_is_made_secret():
    """build() wraps whatever it is given, not only what `pulumi config --secret` returned."""
    from scythe_infra.config import parse_config

    assert isinstance(parse_config(BASE_CONFIG).hatchet_token, str)
    stack = deploy(BASE_CONFIG)
    version = stack.one("aws:secretsmanager/secretVersion:SecretVersion")
    assert is_secret_value(version.inputs["secretString"])


def test_every_log_group_has_the_configured_retention():
    stack = deploy({**BASE_CONFIG, "logRetentionDays": 14, "specialLeaf": {"kind": "high-memory"}})
    groups = stack.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert {g.inputs["retentionInDays"] for g in groups} == {14}
    names = {g.inputs["name"] for g in groups}
    for definition in stack.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        for container in json.loads(definition.inputs["containerDefinitions"]):
            options = container["logConfiguration"]["options"]
            assert container["logConfiguration"]["logDriver"] == "awslogs"
            assert options["awslogs-group"] in names, definition.name


def test_default_log_retention_is_set(stack):
    groups = stack.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert len(groups) == 3 and all(g.inputs["retentionInDays"] == 30 for g in groups)


def test_a_new_vpc_has_two_zones_and_tasks_take_no_inbound_traffic(stack):
    vpc = stack.one("aws:ec2/vpc:Vpc")
    assert vpc.inputs["cidrBlock"] == "10.40.0.0/16"
    zones = {s.inputs["availabilityZone"] for s in stack.of_type("aws:ec2/subnet:Subnet")}
    assert len(zones) == 2
    workers = stack.one("aws:ec2/securityGroup:SecurityGroup", "scythe-test-workers")
    assert not workers.inputs.get("ingress")
    for service in stack.of_type("aws:ecs/service:Service"):
        network = service.inputs["networkConfiguration"]
        assert network["securityGroups"] == ["scythe-test-workers-id"]
        assert network["subnets"] == ["scythe-test-public-0-id", "scythe-test-public-1-id"]


def test_an_existing_vpc_is_used_as_it_is():
    stack = deploy(
        {
            **BASE_CONFIG,
            "vpcId": "vpc-0abc",
            "subnetIds": ["subnet-1", "subnet-2"],
            "assignPublicIp": False,
        }
    )
    assert not stack.of_type("aws:ec2/vpc:Vpc")
    assert not stack.of_type("aws:ec2/subnet:Subnet")
    workers = stack.one("aws:ec2/securityGroup:SecurityGroup", "scythe-test-workers")
    assert workers.inputs["vpcId"] == "vpc-0abc"
    for service in stack.of_type("aws:ecs/service:Service"):
        network = service.inputs["networkConfiguration"]
        assert network["subnets"] == ["subnet-1", "subnet-2"]
        assert network["assignPublicIp"] is False


def test_self_hosted_hatchet_is_private_to_the_vpc():
    stack = deploy(
        {"hatchet": "self-hosted", "hatchetToken": TOKEN, "hatchetDbPassword": DB_PASSWORD}
    )
    database = stack.one("aws:rds/instance:Instance")
    assert database.inputs["publiclyAccessible"] is False
    assert database.inputs["storageEncrypted"] is True
    assert is_secret_value(database.inputs["password"])
    subnets = stack.one("aws:rds/subnetGroup:SubnetGroup")
    assert subnets.inputs["subnetIds"] == ["scythe-test-private-0-id", "scythe-test-private-1-id"]
    groups = {g.name: g for g in stack.of_type("aws:ec2/securityGroup:SecurityGroup")}
    (db_rule,) = groups["scythe-test-hatchet-db"].inputs["ingress"]
    assert (db_rule["fromPort"], db_rule["securityGroups"]) == (5432, ["scythe-test-hatchet-id"])
    engine_rules = groups["scythe-test-hatchet"].inputs["ingress"]
    assert {r["fromPort"] for r in engine_rules} == {7077, 8888}
    assert all(r["securityGroups"] == ["scythe-test-workers-id"] for r in engine_rules)
    assert all("cidrBlocks" not in r for g in groups.values() for r in g.inputs.get("ingress", []))
    engine = stack.one("aws:ecs/service:Service", "scythe-test-hatchet")
    assert [s["capacityProvider"] for s in engine.inputs["capacityProviderStrategies"]] == [
        "FARGATE"
    ]
    # the password reaches hatchet-lite only inside the DATABASE_URL secret
    assert sorted(places_holding(stack, DB_PASSWORD)) == [
        "scythe-test-hatchet-db-url/secretString",
        "scythe-test-hatchet-db/password",
    ]
    (container,) = stack.containers("scythe-test-hatchet")
    assert [s["name"] for s in container["secrets"]] == ["DATABASE_URL"]


def test_workers_reach_the_self_hosted_engine_by_its_private_name(monkeypatch):
    stack = deploy(
        {"hatchet": "self-hosted", "hatchetToken": TOKEN, "hatchetDbPassword": DB_PASSWORD}
    )
    (container,) = stack.containers("scythe-test-leaf")
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env["HATCHET_CLIENT_HOST_PORT"] == "hatchet.scythe-test.internal:7077"
    assert env["HATCHET_CLIENT_SERVER_URL"] == "http://hatchet.scythe-test.internal:8888"
    assert env["HATCHET_CLIENT_TLS_STRATEGY"] == "none"
    (engine,) = stack.containers("scythe-test-hatchet")
    engine_env = {e["name"]: e["value"] for e in engine["environment"]}
    assert engine_env["SERVER_GRPC_BROADCAST_ADDRESS"] == env["HATCHET_CLIENT_HOST_PORT"]
    namespace = stack.one("aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace")
    assert namespace.inputs["name"] == "scythe-test.internal"


def test_a_self_hosted_stack_without_a_token_starts_no_workers():
    stack = deploy({"hatchet": "self-hosted", "hatchetDbPassword": DB_PASSWORD})
    assert not stack.of_type("aws:secretsmanager/secretVersion:SecretVersion") or all(
        v.name != "scythe-test-hatchet-token"
        for v in stack.of_type("aws:secretsmanager/secretVersion:SecretVersion")
    )
    services = {s.name: s.inputs["desiredCount"] for s in stack.of_type("aws:ecs/service:Service")}
    assert services == {"scythe-test-fan": 0, "scythe-test-leaf": 0, "scythe-test-hatchet": 1}
    assert not stack.of_type("aws:appautoscaling/target:Target")
    assert "hatchetToken" in stack.stack.outputs["nextStep"]
