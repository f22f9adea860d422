"""Stack config: defaults, validation errors naming the key and value, the documented keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pulumi = pytest.importorskip("pulumi")
pytest.importorskip("pulumi_aws")
yaml = pytest.importorskip("yaml")

from infra_harness import BASE_CONFIG, INFRA, TOKEN, fresh_event_loop  # noqa: E402

DOCS = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"


def config_keys() -> set[str]:
    from scythe_infra.config import StackConfig

    return set(StackConfig.model_json_schema(by_alias=True)["properties"])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"leaf": {"cpu": 3000}}, "scythe:leaf.cpu=3000 is invalid"),
        ({"leaf": {"cpu": 1024, "memory": 512}}, "scythe:leaf.memory=512 is invalid: does not fit"),
        (
            {"fan": {"minCount": 3, "maxCount": 2}},
            "scythe:fan.desiredCount=1 is invalid: needs minCount",
        ),
        ({"logRetentionDays": 10}, "scythe:logRetentionDays=10 is invalid"),
        (
            {"clientMemory": 1024},
            "scythe:clientMemory=1024 is invalid: does not fit clientCpu 1024",
        ),
        ({"vpcId": "vpc-1"}, "scythe:subnetIds=[] is invalid"),
        (
            {"subnetIds": ["subnet-1"]},
            "scythe:subnetIds=['subnet-1'] is invalid: subnets need vpcId",
        ),
        ({"hatchet": "cloud"}, "scythe:hatchet='cloud' is invalid"),
        ({"hatchet": "self-hosted"}, "scythe:hatchetDbPassword=None is invalid"),
        ({"specialLeaf": {"kind": "tpu"}}, "scythe:specialLeaf.kind='tpu' is invalid"),
        ({"leaf": {"maxCont": 4}}, "scythe:leaf.maxCont"),
        ({"logRetention": 7}, "did you mean scythe:logRetentionDays?"),
    ],
)
def test_bad_values_are_named_with_their_key(values, message):
    from scythe_infra.config import InfraConfigError, parse_config

    with pytest.raises(InfraConfigError) as caught:
        parse_config({**BASE_CONFIG, **values})
    assert message in str(caught.value)


def test_an_existing_engine_needs_a_token():
    from scythe_infra.config import InfraConfigError, parse_config

    with pytest.raises(InfraConfigError, match="scythe:hatchetToken=None is invalid"):
        parse_config({})


def test_gpu_sizes_are_not_checked_against_fargate():
    from scythe_infra.config import parse_config

    config = parse_config({**BASE_CONFIG, "specialLeaf": {"kind": "gpu"}})
    assert (config.special_leaf.cpu, config.special_leaf.memory) == (3072, 12288)
    high_memory = parse_config({**BASE_CONFIG, "specialLeaf": {}}).special_leaf
    assert (high_memory.kind, high_memory.cpu, high_memory.memory) == ("high-memory", 4096, 30720)


@pytest.fixture
def pulumi_config():
    """Set the process's Pulumi config as `pulumi up` would, then restore it."""
    from pulumi.runtime.config import _SECRET_KEYS, CONFIG

    saved = (dict(CONFIG.get()), set(_SECRET_KEYS.get()))
    fresh_event_loop()  # Outputs of secret config values need one

    def set_config(values: dict[str, str], secret: list[str]):
        pulumi.runtime.set_all_config(
            {f"scythe:{k}": v for k, v in values.items()}, [f"scythe:{k}" for k in secret]
        )

    yield set_config
    pulumi.runtime.set_all_config(*saved)


def test_load_config_reads_pulumi_config(pulumi_config):
    from scythe_infra.config import load_config

    pulumi_config(
        {
            "hatchetToken": TOKEN,
            "leaf": json.dumps({"maxCount": 40, "spot": False}),
            "experiments": json.dumps(["lab.models"]),
            "logRetentionDays": "90",
            "forceDestroy": "true",
            "imageTag": "007",
        },
        secret=["hatchetToken"],
    )
    config = load_config()
    assert (config.leaf.max_count, config.leaf.spot) == (40, False)
    assert (config.experiments, config.log_retention_days) == (["lab.models"], 90)
    assert (config.force_destroy, config.image_tag) == (True, "007")
    assert isinstance(config.hatchet_token, pulumi.Output)


@pytest.mark.parametrize("key", ["hatchetToken", "hatchetDbPassword"])
def test_load_config_refuses_a_plain_text_secret(pulumi_config, key):
    from scythe_infra.config import InfraConfigError, load_config

    other = {"hatchetToken": "hatchetDbPassword", "hatchetDbPassword": "hatchetToken"}[key]
    pulumi_config({"hatchetToken": TOKEN, "hatchetDbPassword": "pw"}, secret=[other])
    with pytest.raises(InfraConfigError, match=f"pulumi config set --secret {key}"):
        load_config()


def test_the_project_file_names_the_namespace_and_python():
    from scythe_infra.config import NAMESPACE

    project = yaml.safe_load((INFRA / "Pulumi.yaml").read_text())
    assert project["name"] == NAMESPACE
    assert project["runtime"]["name"] == "python"
    # the Makefile's venv, where `make` installs the infra extra
    venv = INFRA / project["runtime"]["options"]["virtualenv"]
    assert venv.resolve() == (INFRA.parent / ".venv").resolve()


def test_the_example_stack_file_is_valid_and_documents_every_key():
    from scythe_infra.config import parse_config

    text = (INFRA / "Pulumi.dev.yaml").read_text()
    values = {
        key.removeprefix("scythe:"): value
        for key, value in yaml.safe_load(text)["config"].items()
        if key.startswith("scythe:")
    }
    assert "hatchetToken" not in values  # secrets are never committed in plain text
    parse_config({**values, "hatchetToken": TOKEN})
    documented = {
        line.split("scythe:")[1].split(":")[0] for line in text.splitlines() if "scythe:" in line
    }
    assert config_keys() - documented == set()


def test_deployment_guide_lists_every_key():
    text = DOCS.read_text()
    missing = {key for key in config_keys() if f"`{key}`" not in text}
    assert not missing, f"docs/deployment.md does not describe {sorted(missing)}"


def test_the_config_module_examples_hold():
    import doctest

    import scythe_infra.config

    result = doctest.testmod(scythe_infra.config, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
