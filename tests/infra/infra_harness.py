"""Run the Pulumi program under Pulumi's mocks: no CLI, no credentials, no cloud.

Imported by the tests of this folder after ``pytest.importorskip("pulumi")``.

``deploy(values)`` builds the stack from config ``values`` (keys as in
``Pulumi.<stack>.yaml``, without the ``scythe:`` namespace) and returns every
resource the program registered, with its inputs as the engine would receive them.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pulumi = pytest.importorskip("pulumi")  # --doctest-modules imports this file too

INFRA = Path(__file__).resolve().parents[2] / "infra"
if str(INFRA) not in sys.path:
    sys.path.insert(0, str(INFRA))

ACCOUNT, REGION = "123456789012", "eu-west-3"
TOKEN = "ey-synthetic-hatchet-token-7f3a"  # a value to look for: it must land in one place only
DB_PASSWORD = "synthetic-db-password-91c2"


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]
    state: dict[str, Any]


class RecordingMocks(pulumi.runtime.Mocks):
    """Resources get an id, an ARN and a name; invokes answer what the program asks."""

    def __init__(self) -> None:
        self.resources: list[Registered] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        kind = args.typ.split(":")[1].split("/")[0]
        state = dict(args.inputs)
        physical = state.get("name") or state.get("bucket") or f"{args.name}-mock"
        if args.typ == "aws:s3/bucket:Bucket":
            state.setdefault("bucket", physical)
            state["arn"] = f"arn:aws:s3:::{state['bucket']}"
        elif args.typ == "aws:ecr/repository:Repository":
            state["arn"] = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{physical}"
            state["repositoryUrl"] = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{physical}"
        elif args.typ == "aws:cloudwatch/logGroup:LogGroup":
            state["arn"] = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{physical}"
        elif args.typ == "aws:rds/instance:Instance":
            state["endpoint"] = f"{args.name}.abc.{REGION}.rds.amazonaws.com:5432"
            state["arn"] = f"arn:aws:rds:{REGION}:{ACCOUNT}:db:{args.name}"
        else:
            state.setdefault("arn", f"arn:aws:{kind}:{REGION}:{ACCOUNT}:{args.name}")
        state.setdefault("name", physical)
        if args.typ == "aws:ecs/taskDefinition:TaskDefinition":
            state["family"] = args.inputs["family"]
        self.resources.append(Registered(args.typ, args.name, dict(args.inputs), state))
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "aws:index/getRegion:getRegion":
            return {"region": REGION, "name": REGION, "id": REGION}
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {"names": [f"{REGION}a", f"{REGION}b", f"{REGION}c"], "id": REGION}
        if args.token == "aws:ec2/getVpc:getVpc":
            return {"id": args.args["id"], "cidrBlock": "172.31.0.0/16"}
        if args.token == "aws:ssm/getParameter:getParameter":
            return {"name": args.args["name"], "value": "ami-0123456789abcdef0", "type": "String"}
        raise AssertionError(f"the program made an unexpected call: {args.token}")


@dataclass
class Deployment:
    """What one mocked `pulumi up` registered."""

    resources: list[Registered]
    stack: Any
    facts: dict[str, Any]

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.type == typ]

    def one(self, typ: str, name: str | None = None) -> Registered:
        found = [r for r in self.of_type(typ) if name is None or r.name == name]
        assert len(found) == 1, f"{len(found)} resources of {typ} named {name}"
        return found[0]

    def containers(self, family: str) -> list[dict[str, Any]]:
        definition = self.one("aws:ecs/taskDefinition:TaskDefinition", family)
        return json.loads(definition.inputs["containerDefinitions"])


_LOOPS: list[asyncio.AbstractEventLoop] = []


def fresh_event_loop() -> None:
    """A current event loop for Pulumi's runtime, which asks for one (and finds none after
    another test's ``asyncio.run``); the one made for the previous deployment is closed."""
    while _LOOPS:
        _LOOPS.pop().close()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    _LOOPS.append(loop)


BASE_CONFIG = {"hatchetToken": TOKEN, "hatchetHostPort": "engine.example.org:443"}


def deploy(values: dict[str, Any] | None = None, probe=None) -> Deployment:
    """Build the stack from ``values`` under fresh mocks; ``probe(stack)`` may return an Output to resolve."""
    from scythe_infra.config import parse_config
    from scythe_infra.stack import build

    fresh_event_loop()
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="scythe", stack="test", preview=False)
    result: dict[str, Any] = {}

    @pulumi.runtime.test
    def run():
        result["stack"] = stack = build(parse_config(values if values is not None else BASE_CONFIG))
        if probe is None:
            return None
        return probe(stack).apply(lambda facts: result.update(facts=facts))

    run()
    return Deployment(mocks.resources, result["stack"], result.get("facts", {}))
